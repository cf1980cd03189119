//! The `reactor-monitor` command line as a user runs it.

use crate::cli;
use base64::Engine;

#[test]
fn local_with_an_input_file_prints_one_json_object_that_accounts_for_every_record() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("records.jsonl");
    let b64 = |p: &[u8]| base64::engine::general_purpose::STANDARD.encode(p);
    let lines = [
        format!(
            r#"{{"data":"{}","partitionKey":"1"}}"#,
            b64(br#"{"temp":750,"reactor":"reactor-1","date":"2020-03-07T16:29:50+02:00"}"#)
        ),
        format!(
            r#"{{"data":"{}"}}"#,
            b64(br#"{"temp":820.5,"reactor":"reactor-2","date":"2020-03-07T16:29:51+02:00"}"#)
        ),
        format!(
            r#"{{"data":"{}"}}"#,
            b64(br#"{"temp":20,"reactor":"reactor-3","date":"2020-03-07T16:29:52+02:00"}"#)
        ),
        format!(r#"{{"data":"{}"}}"#, b64(b"corrupted \x00 payload")),
    ];
    std::fs::write(&input, lines.join("\n")).unwrap();

    let output = cli()
        .args(["local", "--json", "--input"])
        .arg(&input)
        .output()
        .unwrap();

    crate::assert_success(&output);
    let stdout = String::from_utf8(output.stdout).unwrap();
    assert_eq!(stdout.trim().lines().count(), 1, "{stdout}");
    let report: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(report["produced"], 4);
    assert_eq!(report["stored"], 3);
    assert_eq!(
        report["alerted"],
        serde_json::json!({"warning": 1, "emergency": 1})
    );
    assert_eq!(report["dead_lettered"], 1);
    assert_eq!(report["retried"], 0);
    assert_eq!(report["verified"]["items"], 3);
    assert_eq!(report["verified"]["alerts_delivered"], 2);
    assert_eq!(report["verified"]["dead_letters"], 1);
    assert_eq!(report["lost"], 0);
    let flows = report["flows"].as_array().unwrap();
    let alerting = flows
        .iter()
        .find(|f| f["flow_type"] == "store+alert")
        .unwrap();
    assert_eq!(alerting["count"], 2);
    assert_eq!(alerting["entry_point"], "Kinesis indications-stream");
    assert_eq!(report["outcome_flows"].as_array().unwrap().len(), 3);
}

#[test]
fn local_refuses_an_input_line_that_is_not_base64_and_says_where() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("bad.jsonl");
    std::fs::write(&input, "{\"data\":\"not base64!\"}\n").unwrap();

    let output = cli()
        .args(["local", "--input"])
        .arg(&input)
        .output()
        .unwrap();

    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("bad.jsonl:1") && stderr.contains("not base64"),
        "{stderr}"
    );
}

#[test]
fn invoke_runs_the_handler_once_on_a_lambda_event_file() {
    let output = cli()
        .args(["invoke", "--event", "events/kinesis-event.json"])
        .output()
        .unwrap();

    crate::assert_success(&output);
    let response: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(response, serde_json::json!({"batchItemFailures": []}));
}

#[test]
fn help_explains_each_command() {
    let output = cli().arg("--help").output().unwrap();
    let help = String::from_utf8(output.stdout).unwrap();
    for command in ["local", "generate", "invoke"] {
        assert!(help.contains(command), "{help}");
    }
}

#[test]
fn generate_help_explains_what_aggregation_is_and_why() {
    let output = cli().args(["generate", "--help"]).output().unwrap();
    let help = String::from_utf8(output.stdout).unwrap();

    assert!(help.contains("--aggregate <N>"), "{help}");
    for teaches in ["Kinesis Producer Library", "1,000 records/s", "1 MiB"] {
        assert!(help.contains(teaches), "{teaches}: {help}");
    }
}
