//! One record's CPU path: decode + validate + classify + DynamoDB item, beside a baseline
//! that only parses the same payload into a plain struct with serde_json, and the floor of
//! the SDK's item type: the same ten attributes, already formatted, copied into the owned
//! `HashMap<String, AttributeValue>` that `PutRequest` takes.
//!
//! cargo bench --bench hot_path

use std::collections::HashMap;
use std::hint::black_box;

use aws_sdk_dynamodb::types::AttributeValue;

use chrono::{TimeZone, Utc};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use reactor_monitor::adapters::dynamodb::DynamoDbStore;
use reactor_monitor::domain::{Reading, SequenceNumber, Thresholds};
use reactor_monitor::ports::{Located, Origin};

const PAYLOAD: &[u8] =
    br#"{"temp":712.4,"reactor":"reactor-17","date":"2026-11-01T10:00:00.250+02:00"}"#;

#[derive(serde::Deserialize)]
#[allow(dead_code)]
struct Plain {
    temp: f64,
    reactor: String,
    date: String,
}

fn hot_path(c: &mut Criterion) {
    let thresholds = Thresholds::default();
    let origin = Origin {
        shard_id: "shardId-000000000000".into(),
        sequence_number: SequenceNumber::new(
            "49656865813316372830357373633617012963290853298437832706",
        ),
        partition_key: "reactor-17".into(),
        arrival: Utc.timestamp_opt(1_780_000_000, 0).unwrap(),
    };
    let mut group = c.benchmark_group("per record");
    group.throughput(Throughput::Elements(1));
    group.bench_function("baseline: serde_json into a plain struct", |b| {
        b.iter(|| serde_json::from_slice::<Plain>(black_box(PAYLOAD)).unwrap())
    });
    group.bench_function("decode + validate + classify", |b| {
        b.iter(|| {
            let reading = Reading::parse(black_box(PAYLOAD)).unwrap();
            black_box(thresholds.classify(reading.temp_c));
            reading
        })
    });
    group.bench_function("decode + validate + classify + DynamoDB item", |b| {
        b.iter(|| {
            let reading = Reading::parse(black_box(PAYLOAD)).unwrap();
            black_box(thresholds.classify(reading.temp_c));
            DynamoDbStore::reading_item(&Located {
                reading: &reading,
                origin: &origin,
            })
        })
    });
    let item = DynamoDbStore::reading_item(&Located {
        reading: &Reading::parse(PAYLOAD).unwrap(),
        origin: &origin,
    });
    let attributes: Vec<(&str, &AttributeValue)> =
        item.iter().map(|(k, v)| (k.as_str(), v)).collect();
    group.bench_function(
        "floor: the item's attributes copied into the SDK's map",
        |b| {
            b.iter(|| {
                let mut map = HashMap::with_capacity(attributes.len());
                for (k, v) in black_box(&attributes) {
                    map.insert(k.to_string(), (*v).clone());
                }
                map
            })
        },
    );
    group.finish();
}

criterion_group!(benches, hot_path);
criterion_main!(benches);
