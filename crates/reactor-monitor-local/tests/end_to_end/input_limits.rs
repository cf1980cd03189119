//! Every record Kinesis takes, the tools take: a local run from a file with a 0-byte record,
//! a record of 1 MiB with its partition key, and a 256-character key ends with a verdict.

use base64::Engine;
use reactor_monitor_local::generate::{DEFAULT_MAX_RECORD_KIB, PARTITION_KEY_CHARS};

use crate::cli;

#[test]
fn local_takes_records_at_the_limits_of_kinesis_and_accounts_for_each() {
    let b64 = |d: &[u8]| base64::engine::general_purpose::STANDARD.encode(d);
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("limits.jsonl");
    let key = "k".repeat(*PARTITION_KEY_CHARS.end());
    let largest = vec![b'x'; DEFAULT_MAX_RECORD_KIB * 1024 - 1];
    let lines = [
        serde_json::json!({"data": "", "partitionKey": "empty"}),
        serde_json::json!({"data": b64(&largest), "partitionKey": "k"}),
        serde_json::json!({
            "data": b64(br#"{"temp":650,"reactor":"reactor-1","date":"2020-03-07T16:29:50+02:00"}"#),
            "partitionKey": key,
        }),
    ];
    let text: Vec<String> = lines.iter().map(|l| l.to_string()).collect();
    std::fs::write(&input, text.join("\n")).unwrap();

    let output = cli()
        .args(["local", "--json", "--input"])
        .arg(&input)
        .output()
        .unwrap();

    crate::assert_success(&output);
    let report: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(report["produced"], 3);
    assert_eq!(report["stored"], 1);
    assert_eq!(report["dead_lettered"], 2);
    assert_eq!(report["verified"]["dead_letters"], 2);
    assert_eq!(report["lost"], 0);
}
