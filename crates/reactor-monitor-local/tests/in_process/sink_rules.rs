//! Properties of the values handed to each sink: generated at and beyond each documented rule
//! (`reactor_monitor::sinks`), every value DynamoDB, CloudWatch and S3 receive obeys the rule,
//! checked by tests written apart from the code that formats them.

use reactor_monitor_local::testing as support;

use chrono::{TimeZone, Utc};
use proptest::prelude::*;
use reactor_monitor::adapters::dynamodb::{DynamoDbStore, attr};
use reactor_monitor::adapters::s3::{S3DeadLetters, read_object};
use reactor_monitor::domain::{Reading, RejectReason, SequenceNumber};
use reactor_monitor::ports::{DeadLetter, Located, Origin};
use reactor_monitor::sinks;
use reactor_monitor::telemetry::emf;
use serde_json::Value;
use support::{batch, memory_pipeline};

use crate::sink_faults::dynamodb_accepts_number;

/// Temperatures at and beyond DynamoDB's and CloudWatch's edges, and ordinary ones.
fn temperature() -> impl Strategy<Value = f64> {
    prop_oneof![
        -273.15f64..2000.0,
        (1.0f64..10.0, -140i32..=140).prop_map(|(m, e)| m * 10f64.powi(e)),
        (-140i32..=140).prop_map(|e| 10f64.powi(e)),
        (1i32..=140).prop_map(|e| -(10f64.powi(-e))),
        any::<f64>().prop_filter("a reading", |t| t.is_finite() && *t >= -273.15),
        Just(f64::MAX),
        Just(f64::MIN_POSITIVE),
        Just(5e-324),
    ]
}

/// Reactor ids the record contract accepts: ASCII, non-ASCII, whitespace only, `%`, 128
/// four-byte characters.
fn reactor() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-z0-9-]{1,16}",
        "\\PC{1,128}",
        " {1,8}",
        "[%a-f0-9 ]{1,32}",
        Just("😀".repeat(128)),
        Just("réacteur-7".to_string()),
    ]
}

fn origin(shard_id: String, partition_key: String) -> Origin {
    Origin {
        shard_id,
        sequence_number: SequenceNumber::new(
            "49590338271490256608559692538361571095921575989136588898",
        ),
        partition_key,
        arrival: Utc.timestamp_opt(1_583_591_390, 0).unwrap(),
    }
}

/// Reasons of dead letters, sink refusals among them.
const REASONS: [RejectReason; 4] = [
    RejectReason::NotJson,
    RejectReason::CorruptAggregate,
    RejectReason::StoreRejected,
    RejectReason::EnvelopeUnreadable,
];

/// CloudWatch's rule for a dimension value, written from its API reference.
fn cloudwatch_accepts_dimension(value: &str) -> bool {
    (1..=1024).contains(&value.chars().count())
        && value.is_ascii()
        && value.chars().any(|c| !c.is_whitespace())
}

/// CloudWatch's rule for a metric value (the tighter of the two published ranges).
fn cloudwatch_accepts_value(value: f64) -> bool {
    value == 0.0 || (value.is_finite() && (8.515920e-109..=1.174271e108).contains(&value.abs()))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn a_dynamodb_number_is_written_exactly_when_dynamodb_accepts_it(t in temperature()) {
        let shortest = format!("{t:e}");
        match sinks::dynamodb::number(t) {
            Some(text) => {
                prop_assert!(dynamodb_accepts_number(&text), "{text}");
                prop_assert_eq!(text.parse::<f64>().unwrap(), t, "{}", text);
            }
            None => prop_assert!(!dynamodb_accepts_number(&shortest), "{shortest} refused"),
        }
    }

    #[test]
    fn every_reading_item_obeys_dynamodb(
        t in temperature(),
        reactor in reactor(),
        shard in "[a-zA-Z0-9_.-]{1,128}",
        partition_key in "\\PC{1,256}",
    ) {
        let reading = Reading {
            reactor,
            temp_c: t,
            date: Utc.timestamp_opt(1_583_591_390, 0).unwrap().fixed_offset(),
            traceparent: None,
        };
        let origin = origin(shard, partition_key);
        let located = Located { reading: &reading, origin: &origin };
        let item = DynamoDbStore::reading_item(&located);
        let bytes = |v: &aws_sdk_dynamodb::types::AttributeValue| v.as_s().map(String::len).unwrap_or(0);
        prop_assert!(bytes(&item[attr::REACTOR]) <= sinks::dynamodb::PARTITION_KEY_MAX_BYTES);
        prop_assert!(bytes(&item[attr::READING_ID]) <= sinks::dynamodb::SORT_KEY_MAX_BYTES);
        let size: usize = item.iter().map(|(k, v)| k.len() + bytes(v) + v.as_n().map(String::len).unwrap_or(8)).sum();
        prop_assert!(size <= sinks::dynamodb::ITEM_MAX_BYTES);
        for n in item.values().filter_map(|v| v.as_n().ok()) {
            prop_assert!(dynamodb_accepts_number(n), "{n}");
        }
        // The temperature is always there, as a number or as text.
        prop_assert!(item.contains_key(attr::TEMP_C) != item.contains_key(attr::TEMP_C_TEXT));
    }

    #[test]
    fn every_emf_dimension_and_value_obeys_cloudwatch(
        readings in proptest::collection::vec((reactor(), temperature()), 1..8),
    ) {
        let payloads: Vec<Vec<u8>> = readings
            .iter()
            .map(|(reactor, t)| {
                let temp = serde_json::to_string(t).unwrap();
                let reactor = serde_json::to_string(reactor).unwrap();
                format!(r#"{{"temp":{temp},"reactor":{reactor},"date":"2020-03-07T16:29:50Z"}}"#).into_bytes()
            })
            .collect();
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let report = runtime.block_on(memory_pipeline().process(batch(payloads), None));
        prop_assert_eq!(report.records.iter().filter(|r| r.reading.is_some()).count(), readings.len());
        let mut reactors = std::collections::BTreeSet::new();
        for line in emf::batch_lines(&report, false, 0) {
            let doc: Value = serde_json::from_str(&line).unwrap();
            let directive = &doc["_aws"]["CloudWatchMetrics"][0];
            for dim in directive["Dimensions"][0].as_array().unwrap() {
                let value = doc[dim.as_str().unwrap()].as_str().unwrap();
                prop_assert!(cloudwatch_accepts_dimension(value), "{value:?}");
                if dim == "Reactor" {
                    reactors.insert(value.to_string());
                }
            }
            for metric in directive["Metrics"].as_array().unwrap() {
                let values = &doc[metric["Name"].as_str().unwrap()];
                let values = values.as_array().cloned().unwrap_or_else(|| vec![values.clone()]);
                for v in values {
                    prop_assert!(cloudwatch_accepts_value(v.as_f64().unwrap()), "{v}");
                }
            }
        }
        // One dimension value per reactor: distinct ids never merge.
        let distinct: std::collections::BTreeSet<&String> = readings.iter().map(|(r, _)| r).collect();
        prop_assert_eq!(reactors.len(), distinct.len());
    }

    #[test]
    fn every_dead_letter_key_and_metadata_obeys_s3_and_every_line_reads_back(
        shard in "[a-zA-Z0-9_.-]{1,128}",
        partition_key in "\\PC{1,256}",
        digits in prop::collection::vec("[1-9][0-9]{0,128}", 1..4),
        subsequence in prop::option::of(any::<u64>()),
        reasons in prop::collection::vec(0usize..REASONS.len(), 1..4),
    ) {
        let origins: Vec<Origin> = digits
            .iter()
            .map(|d| {
                let mut origin = origin(shard.clone(), partition_key.clone());
                origin.sequence_number = match subsequence {
                    Some(index) => SequenceNumber::new(d.clone()).user_record(index),
                    None => SequenceNumber::new(d.clone()),
                };
                origin
            })
            .collect();
        let letters: Vec<DeadLetter<'_>> = origins
            .iter()
            .zip(reasons.iter().cycle())
            .map(|(origin, &r)| DeadLetter { payload: b"x", origin, reason: REASONS[r] })
            .collect();

        let key = S3DeadLetters::object_key(&letters).unwrap();
        prop_assert!(sinks::s3::is_valid_object_key(&key) && key.len() <= 1024, "{key}");
        prop_assert!(key.bytes().all(|b| (0x21..0x7f).contains(&b)), "{key:?}");
        let metadata = S3DeadLetters::metadata(&letters, "2020-03-07T14:29:50.000Z");
        let total: usize = metadata.iter().map(|(k, v)| k.len() + v.len()).sum();
        prop_assert!(total <= 2048, "{total}");
        for (_, value) in &metadata {
            prop_assert!(value.bytes().all(|b| (0x20..0x7f).contains(&b)), "{value:?}");
        }
        let body = S3DeadLetters::body(&letters, "2020-03-07T14:29:50.000Z");
        let read = read_object(&body).unwrap();
        prop_assert_eq!(read.len(), letters.len());
        for (kept, letter) in read.iter().zip(&letters) {
            prop_assert_eq!(&kept.partition_key, &letter.origin.partition_key);
            prop_assert_eq!(&kept.sequence_number, &letter.origin.sequence_number);
            prop_assert_eq!(kept.reason.as_str(), letter.reason.code());
        }
    }
}

#[test]
fn alert_subjects_and_attribute_names_obey_sns() {
    use reactor_monitor::adapters::sns::attr;
    use reactor_monitor::domain::Severity;
    for severity in [Severity::Warning, Severity::Emergency] {
        assert!(sinks::sns::is_valid_subject(severity.as_str()));
    }
    let names = [
        attr::SEVERITY,
        attr::REACTOR,
        attr::SHARD_ID,
        attr::SEQUENCE_NUMBER,
    ];
    assert!(names.len() <= sinks::sns::MAX_MESSAGE_ATTRIBUTES);
    for name in names {
        assert!(sinks::sns::is_valid_attribute_name(name), "{name}");
    }
}
