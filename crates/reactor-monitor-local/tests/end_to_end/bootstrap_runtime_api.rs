//! The deployable `bootstrap` binary under a Lambda Runtime API (cargo-lambda's emulator),
//! answering a real Kinesis event, against the local AWS emulator.

use reactor_monitor_local::testing as support;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use reactor_monitor::config::env;

/// Kills a child process when the test ends, pass or fail.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn cargo_lambda() -> PathBuf {
    let path = reactor_monitor_local::project_root().join(".venv/bin/cargo-lambda");
    assert!(
        path.is_file(),
        "{} is missing: run scripts/setup-local",
        path.display()
    );
    path
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn wait_listening(port: u16) {
    let until = Instant::now() + Duration::from_secs(60);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < until, "nothing listens on {port}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn runtime_api() -> (Running, u16) {
    let port = free_port();
    let child = Command::new(cargo_lambda())
        .args([
            "lambda",
            "watch",
            "--only-lambda-apis",
            "-A",
            "127.0.0.1",
            "-P",
            &port.to_string(),
        ])
        .current_dir(reactor_monitor_local::project_root())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let running = Running(child);
    wait_listening(port);
    (running, port)
}

fn bootstrap(port: u16, endpoint: &str, vars: &[(&str, &str)]) -> Command {
    let mut command = Command::new(support::bootstrap_binary());
    command
        .env_clear()
        .env(
            "AWS_LAMBDA_RUNTIME_API",
            format!("http://127.0.0.1:{port}/.rt"),
        )
        .env("AWS_LAMBDA_FUNCTION_NAME", "_")
        .env("AWS_LAMBDA_FUNCTION_VERSION", "1")
        .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128")
        .env("AWS_LAMBDA_LOG_STREAM_NAME", "local")
        .env("AWS_LAMBDA_LOG_GROUP_NAME", "local")
        .env("AWS_ENDPOINT_URL", endpoint)
        .env("AWS_REGION", "us-east-1")
        .env("AWS_ACCESS_KEY_ID", "local-emulator")
        .env("AWS_SECRET_ACCESS_KEY", "local-emulator")
        .envs(vars.iter().copied());
    command
}

fn invoke(port: u16, event: &Path) -> Output {
    Command::new(cargo_lambda())
        .args([
            "lambda",
            "invoke",
            "-A",
            "127.0.0.1",
            "-P",
            &port.to_string(),
            "--data-file",
        ])
        .arg(event)
        .arg("_")
        .current_dir(reactor_monitor_local::project_root())
        .output()
        .unwrap()
}

/// Sends events/kinesis-event.json through the Runtime API; the invocation must succeed.
async fn invoke_fixture(port: u16) -> Output {
    let fixture = reactor_monitor_local::project_root().join("events/kinesis-event.json");
    let output = tokio::task::spawn_blocking(move || invoke(port, &fixture))
        .await
        .unwrap();
    crate::assert_success(&output);
    output
}

#[tokio::test(flavor = "multi_thread")]
async fn the_bootstrap_binary_answers_a_kinesis_event_with_its_failed_records() {
    let (_emulator, _sdk, resources) = support::emulator_with_resources(1).await;
    // Every S3 request fails as S3 fails under load (throttling, 5xx, dropped connections):
    // the corrupted record's dead letter cannot be written, every other record can.
    let proxy = reactor_monitor_local::faults::FaultProxy::start(
        _emulator.endpoint(),
        &"s3=1.0".parse().unwrap(),
    )
    .await
    .unwrap();
    let (_api, port) = runtime_api();
    let _function = Running(
        bootstrap(
            port,
            proxy.endpoint(),
            &[
                (env::TABLE_NAME, &resources.names.table),
                (env::ALERT_TOPIC_ARN, &resources.alert_topic_arn),
                (env::DEAD_LETTER_BUCKET, &resources.names.dead_letter_bucket),
            ],
        )
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap(),
    );
    let output = invoke_fixture(port).await;
    let response: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(
        response,
        serde_json::json!({"batchItemFailures": [
            {"itemIdentifier": "49656865813316372830357373633619430814930082556787245058"}
        ]})
    );
    let items = aws_sdk_dynamodb::Client::new(&_sdk)
        .scan()
        .table_name(&resources.names.table)
        .send()
        .await
        .unwrap();
    // Three readings, two of them with their alert's message id (the ledger).
    assert_eq!(items.count, 3);
    let alerted = items
        .items()
        .iter()
        .filter(|i| i.contains_key("message_id"))
        .count();
    assert_eq!(alerted, 2);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_missing_dead_letter_bucket_fails_the_whole_invocation_and_dead_letters_nothing() {
    let (_emulator, _sdk, resources) = support::emulator_with_resources(1).await;
    let (_api, port) = runtime_api();
    // A configuration error, not a record's fault: the invocation fails so that the
    // function's Errors alarm fires; no reading is reported as if it were bad.
    let _function = Running(
        bootstrap(
            port,
            _emulator.endpoint(),
            &[
                (env::TABLE_NAME, &resources.names.table),
                (env::ALERT_TOPIC_ARN, &resources.alert_topic_arn),
                (env::DEAD_LETTER_BUCKET, "no-such-bucket"),
            ],
        )
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap(),
    );
    let fixture = reactor_monitor_local::project_root().join("events/kinesis-event.json");
    let output = tokio::task::spawn_blocking(move || invoke(port, &fixture))
        .await
        .unwrap();

    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("BatchFailed"), "{stderr}");
    assert!(stderr.contains("NoSuchBucket"), "{stderr}");
}

#[test]
fn a_bad_configuration_stops_the_bootstrap_at_init_with_a_clear_error() {
    let output = bootstrap(
        free_port(),
        "http://127.0.0.1:9",
        &[
            (env::TABLE_NAME, "t"),
            (env::ALERT_TOPIC_ARN, "arn:aws:sns:us-east-1:123456789012:t"),
            (env::DEAD_LETTER_BUCKET, "b"),
            (env::WARNING_THRESHOLD_C, "900"),
        ],
    )
    .output()
    .unwrap();

    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains(
            "the warning threshold (900 °C) must be below the emergency threshold (800 °C)"
        ),
        "{stderr}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_bootstrap_flushes_its_spans_and_metrics_before_it_answers() {
    let (emulator, _sdk, resources) = support::emulator_with_resources(1).await;
    let receiver = reactor_monitor_local::otlp::OtlpReceiver::start()
        .await
        .unwrap();
    let (_api, port) = runtime_api();
    let dir = tempfile::tempdir().unwrap();
    let stdout = std::fs::File::create(dir.path().join("stdout")).unwrap();
    let _function = Running(
        bootstrap(
            port,
            emulator.endpoint(),
            &[
                (env::TABLE_NAME, &resources.names.table),
                (env::ALERT_TOPIC_ARN, &resources.alert_topic_arn),
                (env::DEAD_LETTER_BUCKET, &resources.names.dead_letter_bucket),
                ("OTEL_EXPORTER_OTLP_ENDPOINT", &receiver.endpoint),
                (env::OTEL_PROPAGATORS, "tracecontext,xray-lambda"),
            ],
        )
        .stdout(stdout)
        .stderr(std::fs::File::create(dir.path().join("stderr")).unwrap())
        .spawn()
        .unwrap(),
    );
    invoke_fixture(port).await;
    // Read as soon as the response is back: the record spans left before it.
    let records_at_response = receiver.spans().iter().filter(|s| s.is_record()).count();
    assert_eq!(records_at_response, 4);
    // The invocation span closes once the runtime has posted the response; the runtime
    // layer flushes it before asking for the next event.
    let until = std::time::Instant::now() + Duration::from_secs(10);
    while !receiver
        .spans()
        .iter()
        .any(|s| s.attr("faas.trigger") == Some("pubsub"))
    {
        assert!(
            std::time::Instant::now() < until,
            "the invocation span never arrived"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let spans = receiver.spans();
    let invocation = spans
        .iter()
        .find(|s| s.attr("faas.trigger") == Some("pubsub"))
        .unwrap();
    assert!(
        !invocation.parent_span_id.is_empty(),
        "the invocation joins the Lambda's X-Ray trace"
    );
    let records: Vec<_> = spans.iter().filter(|s| s.is_record()).collect();
    assert_eq!(records.len(), 4);
    assert!(
        records
            .iter()
            .all(|r| r.trace_id == invocation.trace_id && r.parent_span_id == invocation.span_id)
    );
    let emf = std::fs::read_to_string(dir.path().join("stdout")).unwrap();
    let records_metric: u64 = emf
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter_map(|v| v["Records"].as_u64())
        .sum();
    assert_eq!(records_metric, 4);
    let logs = std::fs::read_to_string(dir.path().join("stderr")).unwrap();
    let batch_line: serde_json::Value = logs
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .find(|l| l["fields"]["message"] == "batch processed")
        .expect("one JSON line per batch");
    assert!(
        batch_line["fields"]["xray_trace_id"]
            .as_str()
            .unwrap()
            .starts_with("Root=1-"),
        "{batch_line}"
    );
    assert!(
        !logs.contains("reactor-2\",\"date"),
        "no payload in the logs"
    );
}
