//! The AWS adapters on mocked SDK clients: what DynamoDB, SNS and S3 partial failures and
//! throttling do to the records of a batch. No request leaves the process.

use reactor_monitor_local::testing as support;

use std::collections::HashMap;
use std::sync::Arc;

use crate::mocked::{Log, TABLE, TOPIC_ARN, log, pipeline};
use aws_sdk_dynamodb::operation::batch_get_item::BatchGetItemOutput;
use aws_sdk_dynamodb::operation::batch_write_item::{BatchWriteItemInput, BatchWriteItemOutput};
use aws_sdk_dynamodb::types::{AttributeValue, WriteRequest};
use aws_sdk_s3::operation::put_object::{PutObjectInput, PutObjectOutput};
use aws_sdk_sns::operation::publish_batch::{PublishBatchInput, PublishBatchOutput};
use aws_sdk_sns::types::{
    BatchResultErrorEntry, PublishBatchRequestEntry, PublishBatchResultEntry,
};
use aws_smithy_mocks::{Rule, mock};
use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use aws_smithy_runtime_api::http::StatusCode;
use aws_smithy_types::body::SdkBody;
use reactor_monitor::adapters::dynamodb::{KIND_READING, attr};
use reactor_monitor::adapters::s3::{KeptLetter, read_object};
use reactor_monitor::adapters::sns::{self};
use reactor_monitor::domain::Severity;
use reactor_monitor::operation::AwsOperation;
use reactor_monitor::pipeline::{BatchReport, Outcome};
use reactor_monitor::ports::FailureKind;
use support::{batch, payload};

/// Calls BatchWriteItem makes for one chunk before giving up on what stays unprocessed
/// (`adapters::retry::UNPROCESSED_ATTEMPTS`, private to the crate).
const UNPROCESSED_ATTEMPTS: usize = 4;

const STORE_ONLY_C: f64 = 300.0;
const WARNING_C: f64 = 750.0;
const EMERGENCY_C: f64 = 850.0;

fn logged<T: Clone>(log: &Log<T>) -> Vec<T> {
    log.lock().unwrap().clone()
}

// --- DynamoDB -------------------------------------------------------------------------

fn write_requests(input: &BatchWriteItemInput) -> &[WriteRequest] {
    input
        .request_items()
        .and_then(|tables| tables.get(TABLE))
        .map(Vec::as_slice)
        .unwrap_or_default()
}

fn put_items(input: &BatchWriteItemInput) -> Vec<&HashMap<String, AttributeValue>> {
    write_requests(input)
        .iter()
        .filter_map(|w| w.put_request())
        .map(|p| p.item())
        .collect()
}

/// `reading_id` ends in the record's sequence number, for readings and ledger entries alike.
fn sequence_number_of(item: &HashMap<String, AttributeValue>) -> String {
    let reading_id = item[attr::READING_ID]
        .as_s()
        .expect("reading_id is a string");
    reading_id
        .rsplit('#')
        .next()
        .unwrap_or_default()
        .to_string()
}

fn written_sequence_numbers(input: &BatchWriteItemInput) -> Vec<String> {
    put_items(input)
        .into_iter()
        .map(sequence_number_of)
        .collect()
}

fn writes_kind(input: &BatchWriteItemInput, kind: &str) -> bool {
    put_items(input).iter().all(|item| {
        item.get(attr::KIND)
            .and_then(|v| v.as_s().ok())
            .map(String::as_str)
            == Some(kind)
    })
}

/// Readings writes: the first `times` calls leave the readings of `sequence_numbers`
/// unprocessed; every call's sequence numbers go to `calls`.
fn readings_left_unprocessed(
    sequence_numbers: &'static [&'static str],
    times: usize,
    calls: &Log<Vec<String>>,
) -> Rule {
    let calls = Arc::clone(calls);
    mock!(aws_sdk_dynamodb::Client::batch_write_item)
        .match_requests(|req| writes_kind(req, KIND_READING))
        .then_compute_output(move |req| {
            let mut calls = calls.lock().unwrap();
            calls.push(written_sequence_numbers(req));
            let unprocessed: Vec<WriteRequest> = write_requests(req)
                .iter()
                .filter(|w| {
                    let item = w.put_request().expect("a put request").item();
                    sequence_numbers.contains(&sequence_number_of(item).as_str())
                })
                .cloned()
                .collect();
            let out = BatchWriteItemOutput::builder();
            if calls.len() <= times && !unprocessed.is_empty() {
                out.unprocessed_items(TABLE, unprocessed).build()
            } else {
                out.build()
            }
        })
}

/// Whether a write carries an alert's record: a reading with its alert's message id.
fn carries_alert(input: &BatchWriteItemInput) -> bool {
    write_requests(input)
        .iter()
        .filter_map(|w| w.put_request())
        .any(|put| put.item().contains_key(attr::MESSAGE_ID))
}

/// Readings writes that carry no alert.
fn readings_stored() -> Rule {
    mock!(aws_sdk_dynamodb::Client::batch_write_item)
        .match_requests(|req| writes_kind(req, KIND_READING) && !carries_alert(req))
        .then_output(|| BatchWriteItemOutput::builder().build())
}

/// Readings writes of the chunk holding `sequence_number` fail with a DynamoDB error as it
/// comes over the wire (awsJson 1.0).
fn readings_chunk_rejected(sequence_number: &'static str, error_type: &'static str) -> Rule {
    mock!(aws_sdk_dynamodb::Client::batch_write_item)
        .match_requests(move |req| {
            writes_kind(req, KIND_READING)
                && written_sequence_numbers(req).iter().any(|s| s == sequence_number)
        })
        .then_http_response(move || {
            let body = format!(
                r#"{{"__type":"com.amazonaws.dynamodb.v20120810#{error_type}","message":"Rate of requests exceeds the allowed throughput."}}"#
            );
            HttpResponse::new(StatusCode::try_from(400).unwrap(), SdkBody::from(body))
        })
}

/// Readings writes that record alerts as published (readings with their message ids); the
/// sequence numbers of each call's alerting readings go to `calls`.
fn ledger_records(calls: &Log<Vec<String>>) -> Rule {
    let calls = Arc::clone(calls);
    mock!(aws_sdk_dynamodb::Client::batch_write_item)
        .match_requests(move |req| {
            let ledger = carries_alert(req);
            if ledger {
                let recorded = write_requests(req)
                    .iter()
                    .filter_map(|w| w.put_request())
                    .filter(|put| put.item().contains_key(attr::MESSAGE_ID))
                    .map(|put| sequence_number_of(put.item()))
                    .collect();
                calls.lock().unwrap().push(recorded);
            }
            ledger
        })
        .then_output(|| BatchWriteItemOutput::builder().build())
}

/// Ledger lookups: the alerts of `sequence_numbers` were published before (their readings
/// are stored with a message id); the other alerts' readings are absent.
fn ledger_holding(sequence_numbers: &'static [&'static str]) -> Rule {
    mock!(aws_sdk_dynamodb::Client::batch_get_item).then_compute_output(move |req| {
        let found: Vec<HashMap<String, AttributeValue>> = req
            .request_items()
            .and_then(|tables| tables.get(TABLE))
            .map(|request| request.keys().to_vec())
            .unwrap_or_default()
            .into_iter()
            .filter(|key| sequence_numbers.contains(&sequence_number_of(key).as_str()))
            .map(|mut key| {
                key.insert(attr::MESSAGE_ID.into(), AttributeValue::S("earlier".into()));
                key
            })
            .collect();
        BatchGetItemOutput::builder()
            .responses(TABLE, found)
            .build()
    })
}

fn ledger_empty() -> Rule {
    ledger_holding(&[])
}

// --- SNS ------------------------------------------------------------------------------

fn message_attribute<'a>(entry: &'a PublishBatchRequestEntry, name: &str) -> Option<&'a str> {
    entry
        .message_attributes()
        .and_then(|attrs| attrs.get(name))
        .and_then(|value| value.string_value())
}

/// PublishBatch: entries for the reactors in `failing_reactors` come back in `Failed`, the
/// others in `Successful`; every request goes to `requests`.
fn sns_publishes_except(
    failing_reactors: &'static [&'static str],
    requests: &Log<PublishBatchInput>,
) -> Rule {
    let requests = Arc::clone(requests);
    mock!(aws_sdk_sns::Client::publish_batch)
        .match_requests(move |req| {
            requests.lock().unwrap().push(req.clone());
            true
        })
        .then_compute_output(move |req| {
            let mut out = PublishBatchOutput::builder();
            for entry in req.publish_batch_request_entries() {
                let reactor = message_attribute(entry, sns::attr::REACTOR).unwrap_or_default();
                out = if failing_reactors.contains(&reactor) {
                    out.failed(
                        BatchResultErrorEntry::builder()
                            .id(entry.id())
                            .code("InternalError")
                            .message("Internal error")
                            .sender_fault(false)
                            .build()
                            .unwrap(),
                    )
                } else {
                    out.successful(
                        PublishBatchResultEntry::builder()
                            .id(entry.id())
                            .message_id(format!("message-{reactor}"))
                            .build(),
                    )
                };
            }
            out.build()
        })
}

fn sns_publishes(requests: &Log<PublishBatchInput>) -> Rule {
    sns_publishes_except(&[], requests)
}

/// PublishBatch throttled, as SNS says it over the wire (awsQuery XML).
fn sns_throttles() -> Rule {
    mock!(aws_sdk_sns::Client::publish_batch).then_http_response(|| {
        let body = r#"<ErrorResponse xmlns="http://sns.amazonaws.com/doc/2010-03-31/"><Error><Type>Sender</Type><Code>Throttling</Code><Message>Rate exceeded</Message></Error><RequestId>8f3c1d2e-0000-4000-8000-000000000000</RequestId></ErrorResponse>"#;
        HttpResponse::new(StatusCode::try_from(400).unwrap(), SdkBody::from(body))
    })
}

// --- S3 -------------------------------------------------------------------------------

fn dead_letters_kept() -> Rule {
    mock!(aws_sdk_s3::Client::put_object).then_output(|| PutObjectOutput::builder().build())
}

/// A PutObject request as the mocked S3 saw it.
#[derive(Clone)]
struct Put {
    key: String,
    content_type: Option<String>,
    metadata: HashMap<String, String>,
    letters: Vec<KeptLetter>,
}

fn put_of(req: &PutObjectInput) -> Put {
    Put {
        key: req.key().unwrap_or_default().to_string(),
        content_type: req.content_type().map(str::to_string),
        metadata: req.metadata().cloned().unwrap_or_default(),
        letters: read_object(req.body().bytes().unwrap_or_default()).expect("a dead-letter object"),
    }
}

fn service_unavailable() -> HttpResponse {
    let body = "<Error><Code>ServiceUnavailable</Code><Message>Service is unable to handle request.</Message></Error>";
    HttpResponse::new(StatusCode::try_from(503).unwrap(), SdkBody::from(body))
}

/// PutObject answered with 503 Service Unavailable; every request goes to `puts`.
fn dead_letters_unavailable(puts: &Log<Put>) -> Rule {
    let puts = Arc::clone(puts);
    mock!(aws_sdk_s3::Client::put_object)
        .match_requests(move |req| {
            puts.lock().unwrap().push(put_of(req));
            true
        })
        .then_http_response(service_unavailable)
}

/// PutObject answered with 503 the first time, then kept; every request goes to `puts`.
fn dead_letters_unavailable_once(puts: &Log<Put>) -> Rule {
    let puts = Arc::clone(puts);
    mock!(aws_sdk_s3::Client::put_object)
        .match_requests(move |req| {
            puts.lock().unwrap().push(put_of(req));
            true
        })
        .sequence()
        .http_response(service_unavailable)
        .output(|| PutObjectOutput::builder().build())
        .repeatedly()
        .build()
}

/// PutObject kept; every request goes to `puts`.
fn dead_letters_logged(puts: &Log<Put>) -> Rule {
    let puts = Arc::clone(puts);
    mock!(aws_sdk_s3::Client::put_object)
        .match_requests(move |req| {
            puts.lock().unwrap().push(put_of(req));
            true
        })
        .then_output(|| PutObjectOutput::builder().build())
}

// --- Report ---------------------------------------------------------------------------

fn outcome<'a>(report: &'a BatchReport, sequence_number: &str) -> &'a Outcome {
    let record = report
        .records
        .iter()
        .find(|r| r.origin.sequence_number.as_str() == sequence_number)
        .expect("a record with this sequence number");
    &record.outcome
}

fn failure_kind(report: &BatchReport, sequence_number: &str) -> Option<FailureKind> {
    match outcome(report, sequence_number) {
        Outcome::Failed(e) => Some(e.kind),
        _ => None,
    }
}

fn failed(report: &BatchReport) -> Vec<String> {
    report
        .failed_sequence_numbers()
        .iter()
        .map(|s| s.as_str().to_string())
        .collect()
}

fn response_item_identifiers(report: &BatchReport) -> Vec<String> {
    report
        .response()
        .batch_item_failures
        .into_iter()
        .filter_map(|f| f.item_identifier)
        .collect()
}

fn store_only_batch(count: usize) -> Vec<Vec<u8>> {
    (0..count).map(|_| payload("r1", STORE_ONLY_C)).collect()
}

// --- DynamoDB: UnprocessedItems and throttling -----------------------------------------

#[tokio::test]
async fn unprocessed_readings_are_written_again_and_nothing_fails() {
    let calls = log();
    let writes = readings_left_unprocessed(&["2", "5"], 1, &calls);
    let pipeline = pipeline(&[&writes], &[], &[]);

    let report = pipeline.process(batch(store_only_batch(6)), None).await;

    assert!(failed(&report).is_empty());
    assert!(response_item_identifiers(&report).is_empty());
    assert!(
        report
            .records
            .iter()
            .all(|r| matches!(r.outcome, Outcome::Stored))
    );
    assert_eq!(
        logged(&calls),
        [vec!["1", "2", "3", "4", "5", "6"], vec!["2", "5"]]
    );
}

#[tokio::test]
async fn readings_unprocessed_on_every_attempt_fail_alone() {
    let calls = log();
    let writes = readings_left_unprocessed(&["2", "5"], usize::MAX, &calls);
    let pipeline = pipeline(&[&writes], &[], &[]);

    let report = pipeline.process(batch(store_only_batch(6)), None).await;

    assert_eq!(failed(&report), ["2", "5"]);
    assert_eq!(failure_kind(&report, "2"), Some(FailureKind::Unprocessed));
    assert_eq!(failure_kind(&report, "5"), Some(FailureKind::Unprocessed));
    for stored in ["1", "3", "4", "6"] {
        assert!(matches!(outcome(&report, stored), Outcome::Stored));
    }
    assert_eq!(writes.num_calls(), UNPROCESSED_ATTEMPTS);
    assert_eq!(response_item_identifiers(&report), ["2", "5"]);
}

/// 30 readings make two BatchWriteItem chunks (1–25, 26–30); the first is throttled.
async fn a_throttled_chunk_fails_alone(error_type: &'static str) {
    let throttled = readings_chunk_rejected("1", error_type);
    let stored = readings_stored();
    let pipeline = pipeline(&[&throttled, &stored], &[], &[]);

    let report = pipeline.process(batch(store_only_batch(30)), None).await;

    let first_chunk: Vec<String> = (1..=25).map(|n| n.to_string()).collect();
    assert_eq!(failed(&report), first_chunk);
    for seq in &first_chunk {
        assert_eq!(
            failure_kind(&report, seq),
            Some(FailureKind::Throttled),
            "{error_type}"
        );
    }
    for seq in 26..=30 {
        assert!(matches!(
            outcome(&report, &seq.to_string()),
            Outcome::Stored
        ));
    }
    assert_eq!((throttled.num_calls(), stored.num_calls()), (1, 1));
    assert_eq!(response_item_identifiers(&report), first_chunk);
}

#[tokio::test]
async fn provisioned_throughput_exceeded_fails_every_record_of_its_chunk_and_no_other() {
    a_throttled_chunk_fails_alone("ProvisionedThroughputExceededException").await;
}

#[tokio::test]
async fn a_throttling_exception_fails_every_record_of_its_chunk_and_no_other() {
    a_throttled_chunk_fails_alone("ThrottlingException").await;
}

// --- SNS: partial failures and throttling ----------------------------------------------

#[tokio::test]
async fn an_sns_entry_in_failed_fails_only_its_record_and_is_not_recorded_in_the_ledger() {
    let (requests, ledger_calls) = (log(), log());
    let (readings, lookups, ledger) = (
        readings_stored(),
        ledger_empty(),
        ledger_records(&ledger_calls),
    );
    let publish = sns_publishes_except(&["r3"], &requests);
    let pipeline = pipeline(&[&readings, &lookups, &ledger], &[&publish], &[]);
    let records = batch(vec![
        payload("r1", STORE_ONLY_C),
        payload("r2", WARNING_C),
        payload("r3", EMERGENCY_C),
        payload("r4", WARNING_C),
    ]);

    let report = pipeline.process(records, None).await;

    assert_eq!(failed(&report), ["3"]);
    assert_eq!(failure_kind(&report, "3"), Some(FailureKind::Unprocessed));
    assert!(matches!(outcome(&report, "1"), Outcome::Stored));
    for alerted in ["2", "4"] {
        assert!(matches!(
            outcome(&report, alerted),
            Outcome::StoredAndAlerted {
                severity: Severity::Warning,
                published_now: true
            }
        ));
    }
    assert_eq!(publish.num_calls(), 1);
    assert_eq!(logged(&ledger_calls), [vec!["2", "4"]]);
    assert_eq!(response_item_identifiers(&report), ["3"]);
}

#[tokio::test]
async fn a_throttled_publish_fails_only_the_alerting_records_and_writes_no_ledger_entry() {
    let ledger_calls = log();
    let (readings, lookups, ledger) = (
        readings_stored(),
        ledger_empty(),
        ledger_records(&ledger_calls),
    );
    let publish = sns_throttles();
    let pipeline = pipeline(&[&readings, &lookups, &ledger], &[&publish], &[]);
    let records = batch(vec![
        payload("r1", STORE_ONLY_C),
        payload("r2", WARNING_C),
        payload("r3", STORE_ONLY_C),
        payload("r4", EMERGENCY_C),
    ]);

    let report = pipeline.process(records, None).await;

    assert_eq!(failed(&report), ["2", "4"]);
    assert_eq!(failure_kind(&report, "2"), Some(FailureKind::Throttled));
    assert_eq!(failure_kind(&report, "4"), Some(FailureKind::Throttled));
    assert!(matches!(outcome(&report, "1"), Outcome::Stored));
    assert!(matches!(outcome(&report, "3"), Outcome::Stored));
    assert_eq!(publish.num_calls(), 1);
    assert_eq!(ledger.num_calls(), 0);
    assert!(logged(&ledger_calls).is_empty());
    assert_eq!(response_item_identifiers(&report), ["2", "4"]);
}

#[tokio::test]
async fn published_alerts_carry_the_severity_as_subject_and_the_filter_attributes() {
    let (requests, ledger_calls) = (log(), log());
    let (readings, lookups, ledger) = (
        readings_stored(),
        ledger_empty(),
        ledger_records(&ledger_calls),
    );
    let publish = sns_publishes(&requests);
    let pipeline = pipeline(&[&readings, &lookups, &ledger], &[&publish], &[]);
    let records = batch(vec![payload("r1", WARNING_C), payload("r2", EMERGENCY_C)]);

    let report = pipeline.process(records, None).await;

    assert!(failed(&report).is_empty());
    let requests = logged(&requests);
    assert_eq!(requests.len(), 1);
    assert_eq!(requests[0].topic_arn(), Some(TOPIC_ARN));
    let entries: Vec<(Option<&str>, Option<&str>, Option<&str>)> = requests[0]
        .publish_batch_request_entries()
        .iter()
        .map(|e| {
            (
                e.subject(),
                message_attribute(e, sns::attr::SEVERITY),
                message_attribute(e, sns::attr::REACTOR),
            )
        })
        .collect();
    assert_eq!(
        entries,
        [
            (Some("warning"), Some("warning"), Some("r1")),
            (Some("emergency"), Some("emergency"), Some("r2")),
        ]
    );
    assert_eq!(logged(&ledger_calls), [vec!["1", "2"]]);
}

// --- The alert ledger ------------------------------------------------------------------

#[tokio::test]
async fn an_alert_already_in_the_ledger_is_not_published_again() {
    let (requests, ledger_calls) = (log(), log());
    let (readings, lookups, ledger) = (
        readings_stored(),
        ledger_holding(&["1"]),
        ledger_records(&ledger_calls),
    );
    let publish = sns_publishes(&requests);
    let pipeline = pipeline(&[&readings, &lookups, &ledger], &[&publish], &[]);

    let report = pipeline
        .process(batch(vec![payload("r1", EMERGENCY_C)]), None)
        .await;

    assert!(matches!(
        outcome(&report, "1"),
        Outcome::StoredAndAlerted {
            severity: Severity::Emergency,
            published_now: false
        }
    ));
    assert_eq!(lookups.num_calls(), 1);
    assert_eq!(publish.num_calls(), 0);
    assert_eq!(ledger.num_calls(), 0);
    assert!(failed(&report).is_empty());
}

#[tokio::test]
async fn only_alerts_missing_from_the_ledger_are_published() {
    let (requests, ledger_calls) = (log(), log());
    let (readings, lookups, ledger) = (
        readings_stored(),
        ledger_holding(&["1"]),
        ledger_records(&ledger_calls),
    );
    let publish = sns_publishes(&requests);
    let pipeline = pipeline(&[&readings, &lookups, &ledger], &[&publish], &[]);
    let records = batch(vec![payload("r1", EMERGENCY_C), payload("r2", WARNING_C)]);

    let report = pipeline.process(records, None).await;

    assert!(matches!(
        outcome(&report, "1"),
        Outcome::StoredAndAlerted {
            published_now: false,
            ..
        }
    ));
    assert!(matches!(
        outcome(&report, "2"),
        Outcome::StoredAndAlerted {
            published_now: true,
            ..
        }
    ));
    let published: Vec<Option<String>> = logged(&requests)
        .iter()
        .flat_map(|r| r.publish_batch_request_entries().to_vec())
        .map(|e| message_attribute(&e, sns::attr::REACTOR).map(str::to_string))
        .collect();
    assert_eq!(published, [Some("r2".to_string())]);
    assert_eq!(logged(&ledger_calls), [vec!["2"]]);
}

// --- S3 dead letters -------------------------------------------------------------------

#[tokio::test]
async fn a_dead_letter_put_answered_with_503_fails_only_the_parse_error_record() {
    let (puts, requests, ledger_calls) = (log(), log(), log());
    let (readings, lookups, ledger) = (
        readings_stored(),
        ledger_empty(),
        ledger_records(&ledger_calls),
    );
    let publish = sns_publishes(&requests);
    let dead_letters = dead_letters_unavailable(&puts);
    let pipeline = pipeline(
        &[&readings, &lookups, &ledger],
        &[&publish],
        &[&dead_letters],
    );
    let records = batch(vec![
        payload("r1", STORE_ONLY_C),
        b"not json".to_vec(),
        payload("r3", WARNING_C),
    ]);

    let report = pipeline.process(records, None).await;

    assert_eq!(failed(&report), ["2"]);
    assert_eq!(failure_kind(&report, "2"), Some(FailureKind::Service));
    assert!(matches!(outcome(&report, "1"), Outcome::Stored));
    assert!(matches!(
        outcome(&report, "3"),
        Outcome::StoredAndAlerted {
            published_now: true,
            ..
        }
    ));
    let puts = logged(&puts);
    assert_eq!(puts.len(), 1);
    assert_eq!(puts[0].key, "parse-errors/shardId-000000000000/2-2.jsonl");
    assert_eq!(puts[0].letters[0].payload, b"not json");
    assert_eq!(response_item_identifiers(&report), ["2"]);
}

/// Payloads no reading could come from, each with the reason it is rejected for.
fn parse_errors() -> Vec<(Vec<u8>, &'static str)> {
    vec![
        (b"\xff\xfe\x00 not UTF-8 \n\r\"".to_vec(), "not_utf8"),
        (Vec::new(), "not_json"),
        (b"{\"temp\":\n".to_vec(), "not_json"),
        ((0..=255u8).rev().collect(), "not_utf8"),
        (b"[750]".to_vec(), "not_an_object"),
    ]
}

#[tokio::test]
async fn the_parse_errors_of_a_batch_are_one_put_object_with_every_payload_byte_for_byte() {
    let (puts, requests, ledger_calls) = (log(), log(), log());
    let (readings, lookups, ledger) = (
        readings_stored(),
        ledger_empty(),
        ledger_records(&ledger_calls),
    );
    let publish = sns_publishes(&requests);
    let dead_letters = dead_letters_logged(&puts);
    let pipeline = pipeline(
        &[&readings, &lookups, &ledger],
        &[&publish],
        &[&dead_letters],
    );
    // reading, bad, reading, bad, …, reading: the bad ones are 2, 4, 6, 8 and 10.
    let mut payloads = vec![payload("r0", STORE_ONLY_C)];
    for (i, (bad, _)) in parse_errors().into_iter().enumerate() {
        payloads.push(bad);
        payloads.push(payload(&format!("r{i}"), STORE_ONLY_C));
    }

    let report = pipeline.process(batch(payloads), None).await;

    assert!(report.response().batch_item_failures.is_empty());
    assert_eq!(dead_letters.num_calls(), 1, "one object for the batch");
    let put_objects = report
        .requests
        .iter()
        .find(|(op, _)| *op == AwsOperation::S3PutObject)
        .map(|(_, n)| *n);
    assert_eq!(put_objects, Some(1));
    let puts = logged(&puts);
    let put = &puts[0];
    assert_eq!(put.key, "parse-errors/shardId-000000000000/2-10.jsonl");
    assert_eq!(put.content_type.as_deref(), Some("application/jsonl"));
    assert_eq!(put.metadata["count"], "5");
    assert_eq!(
        put.metadata["reasons"],
        "not_an_object=1,not_json=2,not_utf8=2"
    );
    assert_eq!(put.metadata["first-sequence-number"], "2");
    assert_eq!(put.metadata["last-sequence-number"], "10");
    let expected = parse_errors();
    assert_eq!(put.letters.len(), expected.len());
    for (i, (letter, (bytes, reason))) in put.letters.iter().zip(&expected).enumerate() {
        let seq = (2 * i + 2).to_string();
        assert_eq!(letter.sequence_number.to_string(), seq);
        assert_eq!(letter.shard_id, "shardId-000000000000");
        assert_eq!(letter.partition_key, format!("pk-{seq}"));
        assert!(letter.payload == *bytes, "record {seq}: the bytes differ");
        assert_eq!(letter.reason, *reason, "record {seq}");
        assert!(matches!(outcome(&report, &seq), Outcome::DeadLettered(_)));
        let record = report
            .records
            .iter()
            .find(|r| r.origin.sequence_number.as_str() == seq)
            .unwrap();
        // The one call is on each record's span.
        let calls: Vec<_> = record
            .calls
            .iter()
            .filter(|c| c.operation == AwsOperation::S3PutObject)
            .collect();
        assert_eq!(calls.len(), 1, "record {seq}");
        assert_eq!(calls[0].started, report.records[1].calls[0].started);
    }
}

#[tokio::test]
async fn a_transient_put_object_failure_reports_every_record_in_it_and_the_retry_loses_nothing() {
    let (puts, requests, ledger_calls) = (log(), log(), log());
    let (readings, lookups, ledger) = (
        readings_stored(),
        ledger_empty(),
        ledger_records(&ledger_calls),
    );
    let publish = sns_publishes(&requests);
    let dead_letters = dead_letters_unavailable_once(&puts);
    let pipeline = pipeline(
        &[&readings, &lookups, &ledger],
        &[&publish],
        &[&dead_letters],
    );
    let payloads = vec![
        payload("r1", STORE_ONLY_C),
        b"{".to_vec(),
        payload("r3", STORE_ONLY_C),
        b"\xff".to_vec(),
        payload("r5", STORE_ONLY_C),
        b"".to_vec(),
    ];
    let records = batch(payloads.clone());

    let first = pipeline.process(records.clone(), None).await;

    assert_eq!(failed(&first), ["2", "4", "6"]);
    for seq in ["2", "4", "6"] {
        assert_eq!(
            failure_kind(&first, seq),
            Some(FailureKind::Service),
            "{seq}"
        );
    }
    assert!(first.fatal().is_none());
    assert!(matches!(outcome(&first, "3"), Outcome::Stored));
    // Lambda delivers again from the lowest reported sequence number.
    let retry: Vec<_> = records.into_iter().skip(1).collect();
    let second = pipeline.process(retry, None).await;

    assert!(second.response().batch_item_failures.is_empty());
    let puts = logged(&puts);
    assert_eq!(puts.len(), 2);
    assert_eq!(puts[0].key, puts[1].key, "the retry writes the same object");
    let kept: Vec<(String, Vec<u8>)> = puts[1]
        .letters
        .iter()
        .map(|l| (l.sequence_number.to_string(), l.payload.clone()))
        .collect();
    assert_eq!(
        kept,
        [
            ("2".to_string(), payloads[1].clone()),
            ("4".to_string(), payloads[3].clone()),
            ("6".to_string(), payloads[5].clone()),
        ]
    );
}

// --- The partial batch response --------------------------------------------------------

#[tokio::test]
async fn the_partial_batch_response_lists_exactly_the_failed_sequence_numbers() {
    let (write_calls, requests, ledger_calls, puts) = (log(), log(), log(), log());
    let readings = readings_left_unprocessed(&["9"], usize::MAX, &write_calls);
    let (lookups, ledger) = (ledger_empty(), ledger_records(&ledger_calls));
    let publish = sns_publishes_except(&["r11"], &requests);
    let dead_letters = dead_letters_unavailable(&puts);
    let pipeline = pipeline(
        &[&readings, &lookups, &ledger],
        &[&publish],
        &[&dead_letters],
    );
    let mut payloads = store_only_batch(12);
    payloads[2] = b"not json".to_vec();
    payloads[9] = payload("r10", WARNING_C);
    payloads[10] = payload("r11", EMERGENCY_C);

    let report = pipeline.process(batch(payloads), None).await;

    assert_eq!(failed(&report), ["3", "9", "11"]);
    assert_eq!(
        serde_json::to_value(report.response()).unwrap(),
        serde_json::json!({"batchItemFailures": [
            {"itemIdentifier": "3"},
            {"itemIdentifier": "9"},
            {"itemIdentifier": "11"},
        ]})
    );
    assert!(matches!(
        outcome(&report, "10"),
        Outcome::StoredAndAlerted {
            severity: Severity::Warning,
            published_now: true
        }
    ));
    assert!(!report.nothing_done());
    // One write carries the readings with the alerting ones: "10" with its message id (the
    // ledger's record, no write of its own), "11" without; then "9" alone, again and again.
    let writes = logged(&write_calls);
    assert_eq!(writes[0].len(), 11);
    assert!(writes[1..].iter().all(|call| call == &["9"]));
    assert!(logged(&ledger_calls).is_empty());
}

#[tokio::test]
async fn a_kept_dead_letter_and_stored_readings_leave_the_response_empty() {
    let (requests, ledger_calls) = (log(), log());
    let (readings, lookups, ledger) = (
        readings_stored(),
        ledger_empty(),
        ledger_records(&ledger_calls),
    );
    let publish = sns_publishes(&requests);
    let dead_letters = dead_letters_kept();
    let pipeline = pipeline(
        &[&readings, &lookups, &ledger],
        &[&publish],
        &[&dead_letters],
    );
    let records = batch(vec![
        payload("r1", STORE_ONLY_C),
        b"{".to_vec(),
        payload("r3", EMERGENCY_C),
    ]);

    let report = pipeline.process(records, None).await;

    assert!(report.response().batch_item_failures.is_empty());
    assert!(matches!(outcome(&report, "2"), Outcome::DeadLettered(_)));
    assert_eq!(dead_letters.num_calls(), 1);
    assert_eq!(publish.num_calls(), 1);
}

// --- The trace an alert carries ----------------------------------------------------------

#[tokio::test(flavor = "multi_thread")]
async fn each_published_alert_carries_the_traceparent_of_its_emitted_publish_span() {
    use opentelemetry::trace::SpanKind;
    use opentelemetry_sdk::trace::InMemorySpanExporter;
    use reactor_monitor::function::Function;
    use reactor_monitor::telemetry::function::{FunctionTelemetry, MetricsSink, SpanExport};
    use reactor_monitor::telemetry::traces::{self, CallTargets, TracePlan};

    let (requests, ledger_calls) = (log(), log());
    let (readings, lookups, ledger) = (
        readings_stored(),
        ledger_empty(),
        ledger_records(&ledger_calls),
    );
    let publish = sns_publishes(&requests);
    let exporter = InMemorySpanExporter::default();
    let provider = traces::provider_builder()
        .with_simple_exporter(exporter.clone())
        .build();
    let function = Function {
        pipeline: pipeline(&[&readings, &lookups, &ledger], &[&publish], &[]),
        telemetry: FunctionTelemetry::new(
            Some(SpanExport {
                provider: provider.clone(),
                // Two records a trace: the third alert is published from an overflow trace.
                plan: TracePlan {
                    store_only_ratio: 1.0,
                    max_records_per_trace: 2,
                },
                targets: CallTargets {
                    topic_arn: TOPIC_ARN.into(),
                    ..CallTargets::default()
                },
                join_xray_trace: false,
            }),
            MetricsSink::Collect(Default::default()),
        ),
    };
    let payloads = vec![
        payload("r1", STORE_ONLY_C),
        payload("r2", WARNING_C),
        payload("r3", EMERGENCY_C),
        payload("r4", WARNING_C),
    ];

    let invocation = function
        .invoke(support::lambda_event(support::kinesis_event(&payloads, 1)))
        .await;

    assert!(failed(&invocation.report).is_empty());
    provider.force_flush().unwrap();
    let spans = exporter.get_finished_spans().unwrap();
    let requests = logged(&requests);
    let entries: Vec<&PublishBatchRequestEntry> = requests
        .iter()
        .flat_map(|r| r.publish_batch_request_entries())
        .collect();
    assert_eq!(entries.len(), 3);
    let mut traces = std::collections::HashSet::new();
    for entry in entries {
        assert!(
            entry.message_attributes().unwrap().len() <= 10,
            "SNS's limit"
        );
        let traceparent = message_attribute(entry, sns::attr::TRACEPARENT).unwrap();
        let publish = spans
            .iter()
            .find(|s| {
                traceparent
                    == format!(
                        "00-{}-{}-{:02x}",
                        s.span_context.trace_id(),
                        s.span_context.span_id(),
                        s.span_context.trace_flags().to_u8()
                    )
            })
            .unwrap_or_else(|| panic!("no span has the context {traceparent}"));
        assert_eq!(publish.span_kind, SpanKind::Producer);
        assert_eq!(publish.name, "publish reactor-alerts");
        traces.insert(publish.span_context.trace_id());
    }
    assert_eq!(
        traces.len(),
        2,
        "the invocation's trace and an overflow trace"
    );
}
