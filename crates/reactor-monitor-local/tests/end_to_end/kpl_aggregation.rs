//! KPL aggregated records: every user record is a reading of its own, failures are reported
//! on the Kinesis record that carried them, and a corrupt aggregate is dead-lettered whole.

use reactor_monitor_local::testing as support;

use aws_lambda_events::event::kinesis::KinesisEvent;
use reactor_monitor::adapters::dynamodb::DynamoDbStore;
use reactor_monitor::domain::{FlowType, Reading, RejectReason, SequenceNumber};
use reactor_monitor::lambda;
use reactor_monitor::pipeline::{BatchReport, InboundRecord, Outcome};
use reactor_monitor::ports::Located;
use reactor_monitor_local::generate::{self, Intent, Mix};
use reactor_monitor_local::run::{self, LocalOptions};
use support::{lambda_event, memory_pipeline, payload, record};

const FIXTURE: &[u8] = include_bytes!("../../../../events/kinesis-event-aggregated.json");

/// One aggregated record holding these payloads, partition key `reactor-<i % 3>`.
fn aggregate(seq: u64, payloads: &[Vec<u8>]) -> InboundRecord {
    let mut aggregator = reactor_monitor_local::kpl::Aggregator::new(usize::MAX);
    for (i, p) in payloads.iter().enumerate() {
        assert!(aggregator.try_add(&format!("reactor-{}", i % 3), p));
    }
    record(seq, aggregator.finish().unwrap().data)
}

fn failed(report: &BatchReport) -> Vec<String> {
    report
        .failed_sequence_numbers()
        .iter()
        .map(|s| s.to_string())
        .collect()
}

#[tokio::test]
async fn an_aggregated_record_from_lambda_becomes_one_outcome_per_reading() {
    let pipeline = memory_pipeline();
    let event: KinesisEvent = serde_json::from_slice(FIXTURE).unwrap();

    let (response, report) = lambda::handle(&pipeline, lambda_event(event))
        .await
        .unwrap();

    assert!(response.batch_item_failures.is_empty());
    let flows: Vec<FlowType> = report.records.iter().map(|r| r.flow).collect();
    assert_eq!(
        flows,
        [
            FlowType::StoreOnly,
            FlowType::StoreAndAlert,
            FlowType::ParseError,
            FlowType::StoreAndAlert,
            FlowType::StoreOnly,
        ]
    );
    let aggregate = "49656865813316372830357373633620639740749697185961951234";
    let places: Vec<(String, &str, Option<u64>)> = report
        .records
        .iter()
        .map(|r| {
            let seq = &r.origin.sequence_number;
            (
                r.origin.partition_key.clone(),
                seq.as_str(),
                seq.subsequence(),
            )
        })
        .collect();
    assert_eq!(
        places[..4],
        [
            ("reactor-1".to_string(), aggregate, Some(0)),
            ("reactor-2".to_string(), aggregate, Some(1)),
            ("reactor-1".to_string(), aggregate, Some(2)),
            ("reactor-2".to_string(), aggregate, Some(3)),
        ]
    );
    assert_eq!(places[4].0, "reactor-3");
    assert_eq!(places[4].2, None);
    assert_eq!(pipeline.store.readings.lock().unwrap().len(), 4);
    assert_eq!(pipeline.publisher.published.lock().unwrap().len(), 2);
    let letters = pipeline.dead_letters.letters.lock().unwrap();
    let (bytes, reason) = letters.values().next().unwrap();
    assert_eq!(bytes, br#"{"temp":712.4,"reactor":"reac"#);
    assert_eq!(*reason, RejectReason::NotJson);
}

#[tokio::test]
async fn a_failed_reading_reports_its_aggregate_once_and_the_retry_duplicates_nothing() {
    let pipeline = memory_pipeline();
    let readings: Vec<Vec<u8>> = (0..30)
        .map(|i| payload("r", if i % 10 == 0 { 750.0 } else { 100.0 + i as f64 }))
        .collect();
    let batch = vec![
        record(1, payload("r", 1.0)),
        aggregate(2, &readings),
        record(3, payload("r", 2.0)),
    ];
    // 32 readings, 3 of them alerting (user records 0, 10, 20). The 29 that do not alert are
    // written at once in full chunks of 25: record 1 and the aggregate's user records up to
    // 26 in the one chunk, which fails; the other 4 are written with the alerting ones after
    // their publish.
    pipeline.store.faults.fail_next_calls(1);

    let first = pipeline.process(batch.clone(), None).await;

    assert_eq!(first.records.len(), 32);
    assert_eq!(failed(&first), ["1", "2"]);
    let identifiers: Vec<String> = first
        .response()
        .batch_item_failures
        .into_iter()
        .map(|f| f.item_identifier.unwrap_or_default())
        .collect();
    assert_eq!(identifiers, ["1", "2"]);
    assert!(first.records[28..].iter().all(|r| !r.is_failure()));
    for hot in [1, 11, 21] {
        assert!(!first.records[hot].is_failure());
    }
    assert!(!first.nothing_done());

    // Lambda delivers everything from the lowest reported sequence number again.
    let retry = pipeline.process(batch, None).await;

    assert!(failed(&retry).is_empty());
    assert_eq!(pipeline.store.readings.lock().unwrap().len(), 32);
    assert_eq!(pipeline.publisher.published.lock().unwrap().len(), 3);
}

#[tokio::test]
async fn nothing_done_when_every_reading_of_the_only_aggregate_failed() {
    let pipeline = memory_pipeline();
    pipeline.store.faults.fail_next_calls(1);
    let readings: Vec<Vec<u8>> = (0..5).map(|i| payload("r", i as f64)).collect();

    let report = pipeline.process(vec![aggregate(7, &readings)], None).await;

    assert!(report.nothing_done());
    assert_eq!(failed(&report), ["7"]);
}

#[tokio::test]
async fn a_corrupt_aggregate_is_dead_lettered_whole_and_the_batch_goes_on() {
    let pipeline = memory_pipeline();
    let mut bad_digest = aggregate(2, &[payload("r", 1.0), payload("r", 2.0)]).data;
    *bad_digest.last_mut().unwrap() ^= 0x01;
    let truncated = aggregate(3, &[payload("r", 3.0)]).data[..20].to_vec();
    let batch = vec![
        record(1, payload("r", 1.0)),
        record(2, bad_digest.clone()),
        record(3, truncated.clone()),
        aggregate(4, &[payload("r", 4.0)]),
    ];

    let report = pipeline.process(batch, None).await;

    assert!(failed(&report).is_empty());
    assert_eq!(report.records.len(), 4);
    for (at, bytes) in [(1, &bad_digest), (2, &truncated)] {
        let r = &report.records[at];
        assert_eq!(r.flow, FlowType::ParseError);
        assert_eq!(r.reject_reason, Some(RejectReason::CorruptAggregate));
        assert_eq!(r.origin.sequence_number.subsequence(), None);
        assert_eq!(r.payload_len, bytes.len());
        let letters = pipeline.dead_letters.letters.lock().unwrap();
        let key = (r.origin.shard_id.clone(), r.origin.sequence_number.clone());
        assert_eq!(&letters[&key].0, bytes);
        assert_eq!(letters[&key].1.code(), "corrupt_kpl_aggregate");
    }
    assert!(matches!(report.records[3].outcome, Outcome::Stored));
    assert_eq!(pipeline.store.readings.lock().unwrap().len(), 2);
}

#[tokio::test]
async fn the_readings_of_an_aggregate_have_their_own_keys_and_a_replay_keeps_them() {
    let pipeline = memory_pipeline();
    let readings = vec![
        payload("r", 100.0),
        payload("r", 850.0),
        b"{\"temp\":".to_vec(),
        payload("r", 101.0),
    ];
    let batch = vec![aggregate(9, &readings)];

    pipeline.process(batch.clone(), None).await;
    let replay = pipeline.process(batch, None).await;

    assert_eq!(pipeline.store.readings.lock().unwrap().len(), 3);
    assert_eq!(pipeline.dead_letters.letters.lock().unwrap().len(), 1);
    assert_eq!(pipeline.publisher.published.lock().unwrap().len(), 1);
    assert!(matches!(
        replay.records[1].outcome,
        Outcome::StoredAndAlerted {
            published_now: false,
            ..
        }
    ));
    let reading = Reading::parse(&readings[0]).unwrap();
    let ids: Vec<String> = replay
        .records
        .iter()
        .map(|r| {
            DynamoDbStore::reading_id(&Located {
                reading: &reading,
                origin: &r.origin,
            })
        })
        .collect();
    assert_eq!(
        ids[0],
        "2020-03-07T14:29:50.000000000Z#shardId-000000000000#9:0"
    );
    assert_eq!(
        ids[3],
        "2020-03-07T14:29:50.000000000Z#shardId-000000000000#9:3"
    );
    let distinct: std::collections::HashSet<&String> = ids.iter().collect();
    assert_eq!(distinct.len(), ids.len());
    let plain = record(9, payload("r", 100.0)).origin;
    assert_eq!(plain.sequence_number, SequenceNumber::new("9"));
    assert_eq!(
        DynamoDbStore::reading_id(&Located {
            reading: &reading,
            origin: &plain
        }),
        "2020-03-07T14:29:50.000000000Z#shardId-000000000000#9"
    );
}

#[tokio::test]
async fn a_local_run_of_aggregated_readings_accounts_for_every_reading() {
    let emulator = reactor_monitor_local::emulator::Emulator::start()
        .await
        .expect("the emulator starts (run scripts/setup-local first)");
    let mix = Mix {
        seed: 11,
        ..Mix::default()
    };
    let expected = generate::generate(&mix, 600);
    let count = |intent| expected.iter().filter(|r| r.intent == Some(intent)).count();
    let options = LocalOptions {
        endpoint: Some(emulator.endpoint().to_string()),
        readings: 600,
        aggregate: Some(25),
        batch_size: 5,
        shards: 2,
        mix,
        ..LocalOptions::default()
    };

    let report = run::run(options).await.unwrap();

    assert!(report.ok(), "{}", report.verdict);
    assert_eq!(report.produced, 600);
    assert_eq!(report.kinesis_records, 24);
    assert!(count(Intent::Corrupt) > 0);
    assert_eq!(report.stored, 600 - count(Intent::Corrupt));
    assert_eq!(report.dead_lettered, count(Intent::Corrupt));
    assert_eq!(report.verified.items, report.stored);
    assert_eq!(report.verified.dead_letters, report.dead_lettered);
    assert_eq!(
        report.verified.alerts_delivered,
        count(Intent::Warning) + count(Intent::Emergency)
    );
    assert_eq!(report.verified.duplicate_alerts, 0);
    assert_eq!(report.lost, 0);
    // One outcome and one record subtree per reading and delivery: the readings of an
    // aggregate whose reactor's episode state another shard moved on are delivered again
    // (the whole aggregate: Kinesis knows only it), and counted and traced again, as the EMF
    // lines count them.
    let outcome_records: usize = report.flows.iter().map(|f| f.count).sum();
    assert!(outcome_records >= 600, "one outcome per reading");
    assert_eq!(
        outcome_records % 25,
        0,
        "whole aggregates of 25 redelivered"
    );
    assert_eq!(outcome_records as u64, report.metrics.records_total());
    let traced_records: usize = report.trace_flows.iter().map(|f| f.count).sum();
    assert_eq!(
        traced_records, outcome_records,
        "every delivery of every reading traced"
    );
}
