//! Properties of decoding and of batch processing, over generated inputs.

use reactor_monitor_local::testing as support;

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, FixedOffset, TimeZone};
use proptest::collection::{btree_map, vec};
use proptest::prelude::*;
use reactor_monitor::domain::{MAX_REACTOR_ID_CHARS, Reading, SequenceNumber, Severity};
use reactor_monitor::operation::AwsOperation;
use reactor_monitor::pipeline::{InboundRecord, Outcome, RecordReport};
use serde_json::{Map, Number, Value, json};
use support::{MemoryPipeline, memory_pipeline, payload, record};

const ABSOLUTE_ZERO_C: f64 = -273.15;

/// What every reading that decodes must satisfy (DESIGN §1).
fn assert_contract(reading: &Reading) -> Result<(), TestCaseError> {
    prop_assert!(reading.temp_c.is_finite());
    prop_assert!(reading.temp_c >= ABSOLUTE_ZERO_C);
    prop_assert!(!reading.reactor.is_empty());
    prop_assert!(reading.reactor.chars().count() <= MAX_REACTOR_ID_CHARS);
    prop_assert!(!reading.reactor.chars().any(char::is_control));
    Ok(())
}

/// Decodes, checking that the answer is a reading within the contract or a rejection.
fn decode(bytes: &[u8]) -> Result<(), TestCaseError> {
    match Reading::parse(bytes) {
        Ok(reading) => assert_contract(&reading),
        Err(rejection) => {
            prop_assert!(!rejection.reason.code().is_empty());
            Ok(())
        }
    }
}

/// The record contract as a model: what a JSON object should decode to.
fn model(
    object: &Map<String, Value>,
) -> Result<(f64, String, DateTime<FixedOffset>), &'static str> {
    let temp = match object.get("temp") {
        None | Some(Value::Null) => return Err("missing_temp"),
        Some(Value::Number(n)) => n.as_f64().ok_or("temp_not_finite")?,
        Some(_) => return Err("temp_not_a_number"),
    };
    if temp < ABSOLUTE_ZERO_C {
        return Err("temp_below_absolute_zero");
    }
    let reactor = match object.get("reactor") {
        None | Some(Value::Null) => return Err("missing_reactor"),
        Some(Value::String(s)) => s.clone(),
        Some(_) => return Err("reactor_not_a_string"),
    };
    if reactor.is_empty() {
        return Err("reactor_empty");
    }
    let bidi = |c: char| matches!(c, '\u{061C}' | '\u{200E}' | '\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}');
    if reactor.chars().any(|c| c.is_control() || bidi(c)) {
        return Err("reactor_control_characters");
    }
    if reactor.chars().count() > MAX_REACTOR_ID_CHARS {
        return Err("reactor_too_long");
    }
    let date = match object.get("date") {
        None | Some(Value::Null) => return Err("missing_date"),
        Some(Value::String(s)) => {
            DateTime::parse_from_rfc3339(s).map_err(|_| "date_not_rfc3339")?
        }
        Some(_) => return Err("date_not_a_string"),
    };
    Ok((temp, reactor, date))
}

fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_filter_map("finite", |f| Number::from_f64(f).map(Value::Number)),
        ".{0,12}".prop_map(Value::String),
    ];
    leaf.prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            vec(inner.clone(), 0..4).prop_map(Value::Array),
            btree_map(".{0,6}", inner, 0..4).prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

fn temp_value() -> impl Strategy<Value = Value> {
    prop_oneof![
        4 => (-1_000.0..6_000.0f64).prop_map(|t| json!(t)),
        2 => prop::sample::select(vec![
            ABSOLUTE_ZERO_C, -273.16, 0.0, -0.0, 699.99, 700.0, 799.99, 800.0, 5_000.0,
            1e308, -1e308, f64::MIN_POSITIVE,
        ])
        .prop_map(|t| json!(t)),
        1 => any::<i64>().prop_map(|t| json!(t)),
        1 => json_value(),
    ]
}

fn reactor_value() -> impl Strategy<Value = Value> {
    prop_oneof![
        4 => "[a-z0-9-]{1,16}".prop_map(Value::String),
        1 => ".{0,40}".prop_map(Value::String),
        1 => "[\\x00-\\x1f\\x7f-\\u{9f}a-z]{1,8}".prop_map(Value::String),
        1 => "[a-z\\u{200e}\\u{202a}-\\u{202e}\\u{2066}-\\u{2069}]{1,8}".prop_map(Value::String),
        1 => "[a-zé]{125,131}".prop_map(Value::String),
        1 => Just(json!("")),
        1 => json_value(),
    ]
}

fn date_value() -> impl Strategy<Value = Value> {
    prop_oneof![
        4 => (0i64..4_102_444_800, -1_439i32..=1_439).prop_map(|(secs, offset_min)| {
            let offset = FixedOffset::east_opt(offset_min * 60).expect("within a day");
            json!(offset.timestamp_opt(secs, 0).unwrap().to_rfc3339())
        }),
        1 => ".{0,30}".prop_map(Value::String),
        1 => json_value(),
    ]
}

/// Objects shaped like a reading: each field present or not, right or wrong, plus extras.
fn reading_object() -> impl Strategy<Value = Map<String, Value>> {
    (
        proptest::option::of(temp_value()),
        proptest::option::of(reactor_value()),
        proptest::option::of(date_value()),
        proptest::option::of(json_value()),
        btree_map("[a-z_]{1,8}", json_value(), 0..3),
    )
        .prop_map(|(temp, reactor, date, traceparent, extras)| {
            let mut object: Map<String, Value> = extras.into_iter().collect();
            for (key, value) in [
                ("temp", temp),
                ("reactor", reactor),
                ("date", date),
                ("traceparent", traceparent),
            ] {
                object.remove(key);
                if let Some(value) = value {
                    object.insert(key.into(), value);
                }
            }
            object
        })
}

fn json_token() -> impl Strategy<Value = &'static str> {
    prop::sample::select(vec![
        "{",
        "}",
        "[",
        "]",
        ",",
        ":",
        " ",
        "\"temp\"",
        "\"reactor\"",
        "\"date\"",
        "\"r-1\"",
        "\"2024-05-01T10:00:00Z\"",
        "500",
        "-273.16",
        "1e999",
        "NaN",
        "null",
        "true",
        "\"",
        "\\u0000",
        "\\ud800",
        "\u{feff}",
        "\u{85}",
        "é",
        "-",
        "0",
        ".",
        "e",
    ])
}

proptest! {
    #[test]
    fn arbitrary_bytes_decode_to_a_reading_or_a_rejection(bytes in vec(any::<u8>(), 0..2_048)) {
        decode(&bytes)?;
    }

    #[test]
    fn json_like_token_soup_decodes_to_a_reading_or_a_rejection(tokens in vec(json_token(), 0..64)) {
        decode(tokens.concat().as_bytes())?;
    }

    #[test]
    fn a_valid_reading_corrupted_anywhere_decodes_to_a_reading_or_a_rejection(
        edits in vec((any::<prop::sample::Index>(), any::<u8>(), 0..3u8), 1..6),
    ) {
        let mut bytes = payload("reactor-1", 750.5);
        for (at, byte, edit) in edits {
            let i = at.index(bytes.len().max(1));
            match edit {
                0 if !bytes.is_empty() => { bytes.remove(i); }
                1 => bytes.insert(i.min(bytes.len()), byte),
                _ if !bytes.is_empty() => bytes[i] = byte,
                _ => {}
            }
        }
        decode(&bytes)?;
    }

    #[test]
    fn json_objects_decode_as_the_record_contract_says(object in reading_object()) {
        let bytes = serde_json::to_vec(&object).unwrap();
        let got = Reading::parse(&bytes);
        match (model(&object), got) {
            (Ok((temp, reactor, date)), Ok(reading)) => {
                assert_contract(&reading)?;
                prop_assert_eq!(reading.temp_c, temp);
                prop_assert_eq!(reading.reactor, reactor);
                prop_assert_eq!(reading.date, date);
                prop_assert_eq!(
                    reading.traceparent.as_deref(),
                    object.get("traceparent").and_then(Value::as_str)
                );
            }
            (Err(expected), Err(rejection)) => prop_assert_eq!(rejection.reason.code(), expected),
            (expected, got) => prop_assert!(false, "expected {:?}, got {:?}", expected, got),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Kind {
    Normal,
    Warning,
    Emergency,
    Corrupt,
}

/// One record of a generated batch and the faults its calls will meet.
#[derive(Debug, Clone)]
struct Planned {
    kind: Kind,
    /// Next calls that carry this record and fail: store, publish, dead letter.
    item_faults: (usize, usize, usize),
    /// Gap to the previous record's sequence number.
    gap: u64,
}

#[derive(Debug, Clone)]
struct Scenario {
    first_seq: u64,
    records: Vec<Planned>,
    /// Whole calls that fail next: store, publish, dead letter.
    call_faults: (usize, usize, usize),
}

impl Scenario {
    fn faults(&self) -> usize {
        let (s, p, d) = self.call_faults;
        s + p
            + d
            + self
                .records
                .iter()
                .map(|r| r.item_faults.0 + r.item_faults.1 + r.item_faults.2)
                .sum::<usize>()
    }

    /// The batch, with sequence numbers that cross digit boundaries (99 → 100), and the
    /// pipeline with every fault scripted.
    fn arrange(&self) -> (MemoryPipeline, Vec<InboundRecord>) {
        let pipeline = memory_pipeline();
        let mut seq = self.first_seq;
        let mut batch = Vec::new();
        for (i, planned) in self.records.iter().enumerate() {
            seq += planned.gap;
            let data = match planned.kind {
                Kind::Normal => payload(&format!("reactor-{}", i % 3), 450.0),
                Kind::Warning => payload(&format!("reactor-{}", i % 3), 750.0),
                Kind::Emergency => payload(&format!("reactor-{}", i % 3), 900.0),
                Kind::Corrupt => format!("{{\"temp\":{i},\"reactor\":").into_bytes(),
            };
            let (store, publish, dead_letter) = planned.item_faults;
            for _ in 0..store {
                pipeline.store.faults.fail_once(&seq.to_string());
            }
            for _ in 0..publish {
                pipeline.publisher.faults.fail_once(&seq.to_string());
            }
            for _ in 0..dead_letter {
                pipeline.dead_letters.faults.fail_once(&seq.to_string());
            }
            batch.push(record(seq, data));
        }
        let (store, publish, dead_letter) = self.call_faults;
        pipeline.store.faults.fail_next_calls(store);
        pipeline.publisher.faults.fail_next_calls(publish);
        pipeline.dead_letters.faults.fail_next_calls(dead_letter);
        (pipeline, batch)
    }
}

fn scenario() -> impl Strategy<Value = Scenario> {
    let kind = prop_oneof![
        6 => Just(Kind::Normal),
        2 => Just(Kind::Warning),
        1 => Just(Kind::Emergency),
        2 => Just(Kind::Corrupt),
    ];
    let faults = || prop_oneof![6 => Just(0usize), 2 => Just(1usize), 1 => 2..4usize];
    let planned =
        (kind, (faults(), faults(), faults()), 1..30u64).prop_map(|(kind, item_faults, gap)| {
            Planned {
                kind,
                item_faults,
                gap,
            }
        });
    (
        0..1_000u64,
        vec(planned, 1..80),
        (0..3usize, 0..3usize, 0..3usize),
    )
        .prop_map(|(first_seq, records, call_faults)| Scenario {
            first_seq,
            records,
            call_faults,
        })
}

fn block_on<F: std::future::Future>(future: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap()
        .block_on(future)
}

/// Whether a record's alert went out in this delivery and its reading was not written after.
fn published_then_not_written(record: &RecordReport) -> bool {
    let published = record
        .calls
        .iter()
        .any(|c| c.operation == AwsOperation::SnsPublishBatch && c.error.is_none());
    matches!(&record.outcome, Outcome::Failed(e) if e.operation == AwsOperation::DynamoDbBatchWriteItem)
        && published
}

fn severity(kind: Kind) -> Option<Severity> {
    match kind {
        Kind::Warning => Some(Severity::Warning),
        Kind::Emergency => Some(Severity::Emergency),
        _ => None,
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn every_record_ends_in_exactly_one_outcome_and_every_failure_is_reported(s in scenario()) {
        let (pipeline, batch) = s.arrange();

        let report = block_on(pipeline.process(batch.clone(), None));

        prop_assert_eq!(report.records.len(), batch.len());
        let mut failed = BTreeSet::new();
        for ((r, sent), planned) in report.records.iter().zip(&batch).zip(&s.records) {
            prop_assert_eq!(&r.origin, &sent.origin);
            let seq = &r.origin.sequence_number;
            let key = (r.origin.shard_id.clone(), seq.clone());
            match (&r.outcome, planned.kind) {
                (Outcome::Failed(_), _) => { failed.insert(seq.clone()); }
                (Outcome::Stored, Kind::Normal) => {
                    prop_assert!(pipeline.store.readings.lock().unwrap().contains_key(&key));
                }
                (Outcome::StoredAndAlerted { severity: got, .. }, kind) if Some(*got) == severity(kind) => {
                    prop_assert!(pipeline.store.readings.lock().unwrap().contains_key(&key));
                    prop_assert!(pipeline.publisher.published.lock().unwrap().iter().any(|(_, _, s)| s == seq));
                }
                (Outcome::DeadLettered(_), Kind::Corrupt) => {
                    let letters = pipeline.dead_letters.letters.lock().unwrap();
                    prop_assert_eq!(letters.get(&key).map(|(bytes, _)| bytes), Some(&sent.data));
                }
                (outcome, kind) => prop_assert!(false, "{:?} record ended {:?}", kind, outcome),
            }
        }
        let reported: Vec<SequenceNumber> = report
            .response()
            .batch_item_failures
            .iter()
            .map(|f| SequenceNumber::new(f.item_identifier.clone().unwrap_or_default()))
            .collect();
        prop_assert_eq!(reported.len(), failed.len());
        prop_assert!(reported.is_sorted(), "lowest first: {:?}", reported);
        prop_assert_eq!(reported.into_iter().collect::<BTreeSet<_>>(), failed.clone());
        prop_assert_eq!(report.nothing_done(), failed.len() == batch.len());
    }

    #[test]
    fn retrying_from_the_lowest_reported_failure_converges_without_duplicate_alerts(s in scenario()) {
        let (pipeline, batch) = s.arrange();
        let mut pending = batch.clone();
        let mut deliveries = 0;
        // The window the alert contract allows: an alert published whose reading (the
        // ledger's record) then failed to be written goes out again on the retry.
        let mut window: Vec<SequenceNumber> = Vec::new();

        // Lambda's rule: checkpoint before the lowest reported sequence number and deliver
        // everything from it again (a batch where nothing was done fails as a whole, which
        // comes to the same: its lowest record is its first).
        loop {
            deliveries += 1;
            prop_assert!(deliveries <= s.faults() + 1, "no progress after {} deliveries", deliveries);
            let report = block_on(pipeline.process(pending.clone(), None));
            window.extend(report.records.iter().filter(|r| published_then_not_written(r)).map(|r| r.origin.sequence_number.clone()));
            let Some(lowest) = report.failed_sequence_numbers().first().map(|s| (*s).clone()) else {
                break;
            };
            for r in report.records.iter().filter(|r| r.origin.sequence_number < lowest) {
                prop_assert!(!r.is_failure());
            }
            pending.retain(|r| r.origin.sequence_number >= lowest);
        }

        let expected = |wanted: &dyn Fn(Kind) -> bool| -> BTreeSet<SequenceNumber> {
            batch
                .iter()
                .zip(&s.records)
                .filter(|(_, p)| wanted(p.kind))
                .map(|(r, _)| r.origin.sequence_number.clone())
                .collect()
        };
        let stored: BTreeSet<SequenceNumber> =
            pipeline.store.readings.lock().unwrap().keys().map(|(_, seq)| seq.clone()).collect();
        prop_assert_eq!(stored, expected(&|k| k != Kind::Corrupt));
        let dead: BTreeMap<SequenceNumber, Vec<u8>> = pipeline
            .dead_letters
            .letters
            .lock()
            .unwrap()
            .iter()
            .map(|((_, seq), (bytes, _))| (seq.clone(), bytes.clone()))
            .collect();
        prop_assert_eq!(dead.keys().cloned().collect::<BTreeSet<_>>(), expected(&|k| k == Kind::Corrupt));
        for r in batch.iter().filter(|r| dead.contains_key(&r.origin.sequence_number)) {
            prop_assert_eq!(&dead[&r.origin.sequence_number], &r.data);
        }
        let published: Vec<SequenceNumber> =
            pipeline.publisher.published.lock().unwrap().iter().map(|(_, _, s)| s.clone()).collect();
        let hot = expected(&|k| severity(k).is_some());
        prop_assert_eq!(published.len(), hot.len() + window.len(), "duplicate or missing alerts: {:?} (window {:?})", published, window);
        prop_assert_eq!(published.into_iter().collect::<BTreeSet<_>>(), hot);
    }
}
