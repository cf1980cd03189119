//! Batch outcomes over in-memory ports: every record ends in exactly one outcome.

use reactor_monitor_local::testing as support;

use std::time::Duration;

use reactor_monitor::domain::{FlowType, Severity};
use reactor_monitor::pipeline::Outcome;
use support::{batch, memory_pipeline, payload};

fn flows(report: &reactor_monitor::pipeline::BatchReport) -> Vec<FlowType> {
    report.records.iter().map(|r| r.flow).collect()
}

#[tokio::test]
async fn a_mixed_batch_is_stored_alerted_and_dead_lettered() {
    let pipeline = memory_pipeline();
    let records = batch(vec![
        payload("r1", 650.0),
        payload("r1", 700.0),
        b"not json".to_vec(),
        payload("r2", 800.0),
        payload("r2", 699.99),
    ]);

    let report = pipeline.process(records, None).await;

    assert_eq!(
        flows(&report),
        [
            FlowType::StoreOnly,
            FlowType::StoreAndAlert,
            FlowType::ParseError,
            FlowType::StoreAndAlert,
            FlowType::StoreOnly
        ]
    );
    assert!(report.failed_sequence_numbers().is_empty());
    assert_eq!(pipeline.store.readings.lock().unwrap().len(), 4);
    let published = pipeline.publisher.published.lock().unwrap();
    let severities: Vec<Severity> = published.iter().map(|p| p.1).collect();
    assert_eq!(severities, [Severity::Warning, Severity::Emergency]);
    let letters = pipeline.dead_letters.letters.lock().unwrap();
    assert_eq!(letters.values().next().unwrap().0, b"not json");
    assert!(matches!(
        report.records[2].outcome,
        Outcome::DeadLettered(_)
    ));
}

#[tokio::test]
async fn replayed_batch_stores_no_reading_twice_and_publishes_no_second_alert() {
    let pipeline = memory_pipeline();
    let payloads = vec![
        payload("r1", 750.0),
        payload("r1", 10.0),
        payload("r2", 900.0),
    ];

    pipeline.process(batch(payloads.clone()), None).await;
    let replay = pipeline.process(batch(payloads), None).await;

    assert_eq!(pipeline.store.readings.lock().unwrap().len(), 3);
    assert_eq!(pipeline.publisher.published.lock().unwrap().len(), 2);
    assert!(matches!(
        replay.records[0].outcome,
        Outcome::StoredAndAlerted {
            published_now: false,
            ..
        }
    ));
}

#[tokio::test]
async fn a_failed_write_reports_only_that_record_and_the_retry_completes_it() {
    let pipeline = memory_pipeline();
    pipeline.store.faults.fail_once("3");
    let payloads: Vec<Vec<u8>> = (0..6).map(|i| payload("r1", 100.0 + i as f64)).collect();

    let first = pipeline.process(batch(payloads.clone()), None).await;
    let failed: Vec<String> = first
        .failed_sequence_numbers()
        .iter()
        .map(|s| s.to_string())
        .collect();
    assert_eq!(failed, ["3"]);
    assert_eq!(first.response().batch_item_failures.len(), 1);

    // Lambda retries from the lowest reported sequence number onwards.
    let retry: Vec<_> = batch(payloads).into_iter().skip(2).collect();
    let second = pipeline.process(retry, None).await;
    assert!(second.failed_sequence_numbers().is_empty());
    assert_eq!(pipeline.store.readings.lock().unwrap().len(), 6);
}

#[tokio::test]
async fn a_failed_publish_fails_the_record_and_the_retry_alerts_once() {
    let pipeline = memory_pipeline();
    pipeline.publisher.faults.fail_once("2");
    let payloads = vec![payload("r1", 710.0), payload("r1", 810.0)];

    let first = pipeline.process(batch(payloads.clone()), None).await;
    assert_eq!(first.failed_sequence_numbers().len(), 1);
    assert_eq!(first.records[1].flow, FlowType::StoreAndAlert);
    let second = pipeline.process(batch(payloads), None).await;

    assert!(second.failed_sequence_numbers().is_empty());
    let published = pipeline.publisher.published.lock().unwrap();
    let seqs: Vec<&str> = published.iter().map(|p| p.2.as_str()).collect();
    assert_eq!(seqs, ["1", "2"]);
}

#[tokio::test]
async fn a_dead_letter_failure_is_retried_not_lost() {
    let pipeline = memory_pipeline();
    pipeline.dead_letters.faults.fail_once("2");

    let report = pipeline
        .process(batch(vec![payload("r", 1.0), b"{".to_vec()]), None)
        .await;

    assert!(matches!(report.records[1].outcome, Outcome::Failed(_)));
    assert_eq!(report.records[1].flow, FlowType::ParseError);
    assert!(!report.nothing_done());
}

#[tokio::test]
async fn a_failed_dead_letter_object_fails_every_record_in_it_and_the_retry_keeps_them_all() {
    let pipeline = memory_pipeline();
    // The one object of the batch carries record 4: its write fails whole.
    pipeline.dead_letters.faults.fail_once("4");
    let payloads = vec![
        payload("r", 1.0),
        b"{".to_vec(),
        payload("r", 2.0),
        b"\xff".to_vec(),
        b"[]".to_vec(),
    ];

    let first = pipeline.process(batch(payloads.clone()), None).await;
    let failed: Vec<String> = first
        .failed_sequence_numbers()
        .iter()
        .map(|s| s.to_string())
        .collect();
    assert_eq!(failed, ["2", "4", "5"]);
    assert!(pipeline.dead_letters.letters.lock().unwrap().is_empty());
    let retry: Vec<_> = batch(payloads.clone()).into_iter().skip(1).collect();
    let second = pipeline.process(retry, None).await;

    assert!(second.failed_sequence_numbers().is_empty());
    let letters = pipeline.dead_letters.letters.lock().unwrap();
    let kept: Vec<(String, &[u8])> = letters
        .iter()
        .map(|((_, seq), (bytes, _))| (seq.to_string(), bytes.as_slice()))
        .collect();
    assert_eq!(
        kept,
        [
            ("2".to_string(), &payloads[1][..]),
            ("4".to_string(), &payloads[3][..]),
            ("5".to_string(), &payloads[4][..]),
        ]
    );
    assert_eq!(pipeline.dead_letters.objects.lock().unwrap().len(), 1);
    assert_eq!(pipeline.store.readings.lock().unwrap().len(), 2);
}

#[tokio::test]
async fn nothing_done_when_every_record_failed() {
    let pipeline = memory_pipeline();
    pipeline.store.faults.fail_next_calls(1);

    let report = pipeline
        .process(batch(vec![payload("r", 1.0), payload("r", 2.0)]), None)
        .await;

    assert!(report.nothing_done());
    assert_eq!(report.failed_sequence_numbers().len(), 2);
}

#[tokio::test]
async fn work_that_cannot_finish_before_the_deadline_is_reported_as_failures() {
    let pipeline = memory_pipeline();
    // The first dead-letter write hangs past the deadline; the store is quick.
    pipeline
        .dead_letters
        .delays
        .lock()
        .unwrap()
        .push_back(Duration::from_secs(30));
    let deadline = tokio::time::Instant::now() + Duration::from_millis(400);
    let started = std::time::Instant::now();

    let report = pipeline
        .process(
            batch(vec![b"[]".to_vec(), payload("r", 1.0)]),
            Some(deadline),
        )
        .await;

    assert!(started.elapsed() < Duration::from_secs(5));
    assert!(
        matches!(&report.records[0].outcome, Outcome::Failed(e) if e.kind == reactor_monitor::ports::FailureKind::Timeout)
    );
    assert!(matches!(report.records[1].outcome, Outcome::Stored));
}

#[tokio::test]
async fn no_request_starts_once_the_deadline_margin_is_reached() {
    let pipeline = memory_pipeline();
    let deadline = tokio::time::Instant::now() + Duration::from_millis(50);

    let report = pipeline
        .process(batch(vec![payload("r", 1.0)]), Some(deadline))
        .await;

    assert!(
        matches!(&report.records[0].outcome, Outcome::Failed(e) if e.kind == reactor_monitor::ports::FailureKind::NotStarted)
    );
    assert!(pipeline.store.readings.lock().unwrap().is_empty());
}

#[tokio::test]
async fn requests_are_counted_by_operation() {
    let pipeline = memory_pipeline();
    let payloads: Vec<Vec<u8>> = (0..60)
        .map(|i| payload("r", if i == 0 { 750.0 } else { 1.0 }))
        .collect();

    let report = pipeline.process(batch(payloads), None).await;

    let count = |op: &str| {
        report
            .requests
            .iter()
            .find(|(o, _)| o.name() == op)
            .map(|(_, n)| *n)
    };
    // 60 readings in 3 writes of ≤25: two full ones at once, then the last with the alerting
    // reading and its message id (the ledger's record, no write of its own); the reactor's new
    // episode state in one transaction; the ledger lookup reads the state too (one read).
    assert_eq!(count("BatchWriteItem"), Some(3));
    assert_eq!(count("TransactWriteItems"), Some(1));
    assert_eq!(count("BatchGetItem"), Some(1));
    assert_eq!(count("PublishBatch"), Some(1));
    // The on-call page of the opened episode, counted apart from the alert topic's publish.
    assert_eq!(count("OnCallPublishBatch"), Some(1));
    assert_eq!(report.requests.iter().map(|(_, n)| n).sum::<usize>(), 7);
}
