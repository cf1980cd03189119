//! Shared test factories.
#![allow(dead_code)]

use chrono::{TimeZone, Utc};
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
    reactor_monitor::local::emulator::Emulator,
    aws_config::SdkConfig,
    reactor_monitor::local::resources::Resources,
) {
    let emulator = reactor_monitor::local::emulator::Emulator::start()
        .await
        .expect("the emulator starts (run scripts/setup-local first)");
    let sdk = reactor_monitor::aws::local_sdk_config(emulator.endpoint()).await;
    let resources = reactor_monitor::local::resources::create(
        &sdk,
        &reactor_monitor::local::resources::ResourceNames::default(),
        shards,
    )
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

/// The `reactor-monitor` binary as a user runs it from the project's root, with no emulator
/// endpoint inherited from the environment.
pub fn cli() -> std::process::Command {
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_reactor-monitor"));
    command
        .env_remove("AWS_ENDPOINT_URL")
        .current_dir(env!("CARGO_MANIFEST_DIR"));
    command
}
