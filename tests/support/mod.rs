//! Shared test factories.
#![allow(dead_code)]

use chrono::{TimeZone, Utc};
use reactor_monitor::adapters::memory::{MemoryAlerts, MemoryDeadLetters, MemoryStore};
use reactor_monitor::domain::{SequenceNumber, Thresholds};
use reactor_monitor::pipeline::{InboundRecord, Limits, Pipeline};
use reactor_monitor::ports::Origin;

pub type MemoryPipeline = Pipeline<MemoryStore, MemoryStore, MemoryAlerts, MemoryDeadLetters>;

pub fn memory_pipeline() -> MemoryPipeline {
    Pipeline {
        store: MemoryStore::default(),
        ledger: MemoryStore::default(),
        publisher: MemoryAlerts::default(),
        dead_letters: MemoryDeadLetters::default(),
        thresholds: Thresholds::default(),
        limits: Limits {
            max_in_flight: 4,
            deadline_margin: std::time::Duration::from_millis(200),
        },
    }
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
