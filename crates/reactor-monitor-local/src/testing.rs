//! What the tests and benchmarks share: record and event factories, the in-memory pipeline, a
//! fresh emulator with the template's resources, and the paths of the project's files.

use std::path::{Path, PathBuf};

use chrono::{DateTime, SecondsFormat, TimeZone, Utc};
use reactor_monitor::adapters::memory::{MemoryAlerts, MemoryDeadLetters, MemoryStore};
use reactor_monitor::domain::SequenceNumber;
use reactor_monitor::pipeline::{InboundRecord, Pipeline};
use reactor_monitor::ports::Origin;

pub type MemoryPipeline = Pipeline<MemoryStore, MemoryStore, MemoryAlerts, MemoryDeadLetters>;

pub fn memory_pipeline() -> MemoryPipeline {
    reactor_monitor::adapters::memory::pipeline(4)
}

pub fn payload(reactor: &str, temp: f64) -> Vec<u8> {
    format!(r#"{{"temp":{temp},"reactor":"{reactor}","date":"2020-03-07T16:29:50+02:00"}}"#)
        .into_bytes()
}

pub fn record(seq: u64, data: impl Into<Vec<u8>>) -> InboundRecord {
    InboundRecord {
        origin: Origin {
            shard_id: "shardId-000000000000".into(),
            sequence_number: SequenceNumber::new(seq.to_string()),
            partition_key: format!("pk-{seq}"),
            arrival: Utc.timestamp_opt(1_583_591_390, 0).unwrap(),
        },
        data: data.into(),
    }
}

/// A record of `shard_id` (`shardId-000000000001`, …), for deliveries of several shards.
pub fn record_on(shard_id: &str, seq: u64, data: impl Into<Vec<u8>>) -> InboundRecord {
    let mut record = record(seq, data);
    record.origin.shard_id = shard_id.into();
    record
}

/// The payload of one reading of `reactor` at `date`.
pub fn reading_at(reactor: &str, temp: f64, date: DateTime<Utc>) -> Vec<u8> {
    format!(
        r#"{{"temp":{temp},"reactor":"{reactor}","date":"{}"}}"#,
        date.to_rfc3339_opts(SecondsFormat::Millis, true)
    )
    .into_bytes()
}

/// Records numbered from 1 with the given payloads.
pub fn batch(payloads: Vec<Vec<u8>>) -> Vec<InboundRecord> {
    payloads
        .into_iter()
        .enumerate()
        .map(|(i, p)| record(i as u64 + 1, p))
        .collect()
}

/// A fresh emulator on 127.0.0.1 with the template's resources created in it.
pub async fn emulator_with_resources(
    shards: u32,
) -> (
    crate::emulator::Emulator,
    aws_config::SdkConfig,
    crate::resources::Resources,
) {
    let emulator = crate::emulator::Emulator::start()
        .await
        .expect("the emulator starts (run scripts/setup-local first)");
    let sdk = reactor_monitor::aws::local_sdk_config(emulator.endpoint()).await;
    let resources =
        crate::resources::create(&sdk, &crate::resources::ResourceNames::default(), shards)
            .await
            .expect("resources are created");
    (emulator, sdk, resources)
}

/// A Kinesis event as Lambda sends it, for the given payloads on one shard.
pub fn kinesis_event(
    payloads: &[Vec<u8>],
    first_seq: u64,
) -> aws_lambda_events::event::kinesis::KinesisEvent {
    use base64::Engine;
    let records: Vec<serde_json::Value> = payloads
        .iter()
        .enumerate()
        .map(|(i, p)| {
            let seq = (first_seq + i as u64).to_string();
            serde_json::json!({
                "kinesis": {
                    "kinesisSchemaVersion": "1.0",
                    "partitionKey": format!("pk-{i}"),
                    "sequenceNumber": seq,
                    "data": base64::engine::general_purpose::STANDARD.encode(p),
                    "approximateArrivalTimestamp": 1583591390.5
                },
                "eventSource": "aws:kinesis",
                "eventVersion": "1.0",
                "eventID": format!("shardId-000000000000:{seq}"),
                "eventName": "aws:kinesis:record",
                "invokeIdentityArn": "arn:aws:iam::123456789012:role/test",
                "awsRegion": "us-east-1",
                "eventSourceARN": "arn:aws:kinesis:us-east-1:123456789012:stream/indications-stream"
            })
        })
        .collect();
    serde_json::from_value(serde_json::json!({ "Records": records })).expect("a valid event")
}

pub fn lambda_event(
    event: aws_lambda_events::event::kinesis::KinesisEvent,
) -> lambda_runtime::LambdaEvent<aws_lambda_events::event::kinesis::KinesisEvent> {
    let mut context = lambda_runtime::Context::default();
    context.deadline =
        (chrono::Utc::now() + chrono::Duration::seconds(60)).timestamp_millis() as u64;
    lambda_runtime::LambdaEvent::new(event, context)
}

/// A file of the project, by its path from the root (`events/kinesis-event.json`).
pub fn project_file(path: &str) -> PathBuf {
    crate::project_root().join(path)
}

/// The `bootstrap` binary of the same build as the running test: `cargo test --workspace`
/// builds it beside the test binaries (`target/<profile>/`).
///
/// # Panics
/// When it is not there (a test run of this package alone): build it with
/// `cargo build -p reactor-monitor --bin bootstrap`.
pub fn bootstrap_binary() -> PathBuf {
    let exe = std::env::current_exe().expect("the test binary's path");
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("test binaries live in target/<profile>/deps");
    let bootstrap = profile_dir.join("bootstrap");
    assert!(
        bootstrap.is_file(),
        "{} is missing: run the tests with `cargo test --workspace` (or `cargo build -p \
         reactor-monitor --bin bootstrap` first)",
        bootstrap.display()
    );
    bootstrap
}

/// The on-call scenario, as `reactor-monitor generate --scenario episodes` writes it: one
/// definition for the tooling and the tests.
pub use crate::scenario::episodes as episode_scenario;
