//! Errors by what must happen next, on mocked SDK clients that answer as AWS does: a value a
//! sink cannot take (a DynamoDB number out of range), an item a sink refuses for good
//! (isolated, dead-lettered, its neighbours stored), a configuration error (the invocation
//! fails, nothing is dead-lettered) and a transient error (reported for a retry).

use reactor_monitor_local::testing as support;

use std::collections::HashMap;
use std::sync::Arc;

use crate::mocked::{Log, TABLE, log, pipeline};
use aws_sdk_dynamodb::operation::batch_get_item::BatchGetItemOutput;
use aws_sdk_dynamodb::operation::batch_write_item::{BatchWriteItemInput, BatchWriteItemOutput};
use aws_sdk_dynamodb::types::AttributeValue;
use aws_sdk_s3::operation::put_object::PutObjectOutput;
use aws_sdk_sns::operation::publish_batch::{PublishBatchInput, PublishBatchOutput};
use aws_sdk_sns::types::PublishBatchResultEntry;
use aws_smithy_mocks::{Rule, mock};
use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use aws_smithy_runtime_api::http::StatusCode;
use aws_smithy_types::body::SdkBody;
use reactor_monitor::adapters::dynamodb::{KIND_READING, attr};
use reactor_monitor::adapters::s3::read_object;
use reactor_monitor::domain::RejectReason;
use reactor_monitor::lambda;
use reactor_monitor::operation::AwsOperation;
use reactor_monitor::pipeline::{BatchReport, Outcome};
use reactor_monitor::ports::{FailureClass, FailureKind};
use reactor_monitor::sinks;
use support::{batch, kinesis_event, lambda_event, payload};

type Item = HashMap<String, AttributeValue>;

/// Whether DynamoDB accepts `text` as a number, as its documentation states it (written
/// independently of `sinks`): at most 38 significant digits, magnitude 1E-130 to
/// 9.9999999999999999999999999999999999999E+125, or zero.
pub fn dynamodb_accepts_number(text: &str) -> bool {
    let unsigned = text.strip_prefix('-').unwrap_or(text);
    let (mantissa, exponent) = match unsigned.find(['e', 'E']) {
        Some(at) => (&unsigned[..at], &unsigned[at + 1..]),
        None => (unsigned, "0"),
    };
    let Ok(exponent) = exponent.trim_start_matches('+').parse::<i64>() else {
        return false;
    };
    let (int, frac) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    if int.is_empty() || !int.bytes().chain(frac.bytes()).all(|b| b.is_ascii_digit()) {
        return false;
    }
    let digits = format!("{int}{frac}");
    let leading = digits.len() - digits.trim_start_matches('0').len();
    let significant = digits.trim_matches('0');
    if significant.is_empty() {
        return true;
    }
    // The written digits count, as text: a 121-digit integer is refused even if it ends in zeros.
    if digits.len() - leading > 38 {
        return false;
    }
    // Decimal exponent of the first significant digit.
    let magnitude = exponent + int.len() as i64 - 1 - leading as i64;
    (-130..=125).contains(&magnitude)
}

fn numbers_of(item: &Item) -> Vec<String> {
    item.values()
        .filter_map(|v| v.as_n().ok().cloned())
        .collect()
}

fn put_items(input: &BatchWriteItemInput) -> Vec<Item> {
    input
        .request_items()
        .and_then(|tables| tables.get(TABLE))
        .into_iter()
        .flatten()
        .filter_map(|w| w.put_request())
        .map(|p| p.item().clone())
        .collect()
}

fn kind_of(item: &Item) -> &str {
    item.get(attr::KIND)
        .and_then(|v| v.as_s().ok())
        .map(String::as_str)
        .unwrap_or_default()
}

fn dynamodb_error(status: u16, error_type: &str, message: &str) -> HttpResponse {
    let body = format!(
        r#"{{"__type":"com.amazonaws.dynamodb.v20120810#{error_type}","message":"{message}"}}"#
    );
    HttpResponse::new(StatusCode::try_from(status).unwrap(), SdkBody::from(body))
}

fn sns_error(status: u16, code: &str) -> HttpResponse {
    let body = format!(
        r#"<ErrorResponse xmlns="http://sns.amazonaws.com/doc/2010-03-31/"><Error><Type>Sender</Type><Code>{code}</Code><Message>{code}</Message></Error><RequestId>8f3c1d2e-0000-4000-8000-000000000000</RequestId></ErrorResponse>"#
    );
    HttpResponse::new(StatusCode::try_from(status).unwrap(), SdkBody::from(body))
}

fn s3_error(status: u16, code: &str) -> HttpResponse {
    let body = format!("<Error><Code>{code}</Code><Message>{code}</Message></Error>");
    HttpResponse::new(StatusCode::try_from(status).unwrap(), SdkBody::from(body))
}

/// BatchWriteItem as AWS answers it: the whole call refused with a `ValidationException`
/// when one item holds a number DynamoDB cannot take or matches `refuse`; otherwise every
/// item is kept in `items`.
fn dynamodb_validating(items: &Log<Item>, refuse: fn(&Item) -> bool) -> [Rule; 2] {
    let invalid = move |req: &BatchWriteItemInput| {
        put_items(req).iter().any(|item| {
            refuse(item) || !numbers_of(item).iter().all(|n| dynamodb_accepts_number(n))
        })
    };
    let refused = mock!(aws_sdk_dynamodb::Client::batch_write_item)
        .match_requests(invalid)
        .then_http_response(|| {
            dynamodb_error(
                400,
                "ValidationException",
                "Number overflow. Attempting to store a number with magnitude larger than supported range",
            )
        });
    let items = Arc::clone(items);
    let kept = mock!(aws_sdk_dynamodb::Client::batch_write_item).then_compute_output(move |req| {
        items.lock().unwrap().extend(put_items(req));
        BatchWriteItemOutput::builder().build()
    });
    [refused, kept]
}

fn ledger_empty() -> Rule {
    mock!(aws_sdk_dynamodb::Client::batch_get_item)
        .then_output(|| BatchGetItemOutput::builder().build())
}

fn reactor_of(entry: &aws_sdk_sns::types::PublishBatchRequestEntry) -> String {
    entry
        .message_attributes()
        .and_then(|a| a.get("reactor"))
        .and_then(|v| v.string_value())
        .unwrap_or_default()
        .to_string()
}

/// PublishBatch: refused as a whole (`InvalidParameter`) when it carries an alert of reactor
/// `refused_reactor`, else every entry published; each accepted request goes to `published`.
fn sns_validating(published: &Log<PublishBatchInput>, refused_reactor: &'static str) -> [Rule; 2] {
    let refused = mock!(aws_sdk_sns::Client::publish_batch)
        .match_requests(move |req| {
            req.publish_batch_request_entries()
                .iter()
                .any(|e| reactor_of(e) == refused_reactor)
        })
        .then_http_response(|| sns_error(400, "InvalidParameter"));
    let published = Arc::clone(published);
    let ok = mock!(aws_sdk_sns::Client::publish_batch).then_compute_output(move |req| {
        published.lock().unwrap().push(req.clone());
        let mut out = PublishBatchOutput::builder();
        for entry in req.publish_batch_request_entries() {
            out = out.successful(
                PublishBatchResultEntry::builder()
                    .id(entry.id())
                    .message_id(format!("m-{}", entry.id()))
                    .build(),
            );
        }
        out.build()
    });
    [refused, ok]
}

/// Dead letters kept; (object key, payload, reason) of each letter goes to `puts`.
fn dead_letters_kept(puts: &Log<(String, Vec<u8>, String)>) -> Rule {
    let puts = Arc::clone(puts);
    mock!(aws_sdk_s3::Client::put_object)
        .match_requests(move |req| {
            let key = req.key().unwrap_or_default().to_string();
            let body = req.body().bytes().unwrap_or_default();
            let letters = read_object(body).expect("a dead-letter object");
            puts.lock().unwrap().extend(
                letters
                    .into_iter()
                    .map(|l| (key.clone(), l.payload, l.reason)),
            );
            true
        })
        .then_output(|| PutObjectOutput::builder().build())
}

fn outcome<'a>(report: &'a BatchReport, sequence_number: &str) -> &'a Outcome {
    &report
        .records
        .iter()
        .find(|r| r.origin.sequence_number.as_str() == sequence_number)
        .expect("a record with this sequence number")
        .outcome
}

const HOT: &[u8] =
    br#"{"temp":8.04040404040404e126,"reactor":"reactor-1","date":"2020-03-07T16:40:10+02:00"}"#;
const HUGE_BUT_STORABLE: &[u8] =
    br#"{"temp":1e120,"reactor":"reactor-2","date":"2020-03-07T16:40:11+02:00"}"#;

// --- A value the sink cannot represent -------------------------------------------------

#[tokio::test]
async fn an_emergency_too_hot_for_a_dynamodb_number_is_stored_as_text_and_alerted_once() {
    let (items, puts, published) = (log(), log(), log());
    let [refused, kept] = dynamodb_validating(&items, |_| false);
    let lookups = ledger_empty();
    let [sns_refused, sns_ok] = sns_validating(&published, "none");
    let dead_letters = dead_letters_kept(&puts);
    let pipeline = pipeline(
        &[&refused, &lookups, &kept],
        &[&sns_refused, &sns_ok],
        &[&dead_letters],
    );
    let mut payloads: Vec<Vec<u8>> = (0..30).map(|_| payload("reactor-1", 500.0)).collect();
    payloads[14] = HOT.to_vec();
    payloads[20] = HUGE_BUT_STORABLE.to_vec();

    let report = pipeline.process(batch(payloads), None).await;

    assert!(report.response().batch_item_failures.is_empty());
    assert_eq!(refused.num_calls(), 0, "DynamoDB refused a write");
    let items = items.lock().unwrap().clone();
    let readings: Vec<&Item> = items
        .iter()
        .filter(|i| kind_of(i) == KIND_READING)
        .collect();
    assert_eq!(readings.len(), 30, "every reading stored");
    let hot: Vec<&Item> = items
        .iter()
        .filter(|i| i.contains_key(attr::TEMP_C_TEXT))
        .collect();
    assert_eq!(hot.len(), 1, "the reading, written once with its alert");
    for item in hot {
        assert_eq!(
            item[attr::TEMP_C_TEXT].as_s().unwrap(),
            "8.04040404040404E126"
        );
        assert_eq!(
            item[attr::TEMP_NOT_REPRESENTABLE],
            AttributeValue::Bool(true)
        );
        assert!(!item.contains_key(attr::TEMP_C));
    }
    assert!(
        items
            .iter()
            .any(|i| i.get(attr::TEMP_C) == Some(&AttributeValue::N("1E120".into())))
    );
    for n in items.iter().flat_map(numbers_of) {
        assert!(dynamodb_accepts_number(&n), "{n}");
    }
    // Both hot readings are emergencies, each published once and recorded once.
    let published = published.lock().unwrap().clone();
    let entries: Vec<_> = published
        .iter()
        .flat_map(|p| p.publish_batch_request_entries().to_vec())
        .collect();
    assert_eq!(entries.len(), 2);
    for entry in &entries {
        assert_eq!(entry.subject(), Some("emergency"));
        assert!(sinks::sns::is_valid_subject(entry.subject().unwrap()));
    }
    assert!(
        entries
            .iter()
            .any(|e| e.message().contains("8.04040404040404E126 °C"))
    );
    assert_eq!(
        items
            .iter()
            .filter(|i| i.contains_key(attr::MESSAGE_ID))
            .count(),
        2,
        "each alert recorded once, on its reading"
    );
    assert!(puts.lock().unwrap().is_empty(), "nothing dead-lettered");
}

// --- Permanent for one record ----------------------------------------------------------

#[tokio::test]
async fn an_item_dynamodb_refuses_is_isolated_dead_lettered_and_its_neighbours_stored() {
    let (items, puts, published) = (log(), log(), log());
    let [refused, kept] = dynamodb_validating(&items, |item| {
        item.get(attr::REACTOR) == Some(&AttributeValue::S("refused".into()))
    });
    let lookups = ledger_empty();
    let [sns_refused, sns_ok] = sns_validating(&published, "none");
    let dead_letters = dead_letters_kept(&puts);
    let pipeline = pipeline(
        &[&refused, &lookups, &kept],
        &[&sns_refused, &sns_ok],
        &[&dead_letters],
    );
    let mut payloads: Vec<Vec<u8>> = (0..25).map(|_| payload("reactor-1", 500.0)).collect();
    payloads[6] = payload("refused", 500.0);

    let report = pipeline.process(batch(payloads.clone()), None).await;

    assert!(report.response().batch_item_failures.is_empty());
    assert!(report.fatal().is_none());
    assert!(matches!(
        outcome(&report, "7"),
        Outcome::DeadLettered(RejectReason::StoreRejected)
    ));
    assert_eq!(items.lock().unwrap().len(), 24, "the neighbours are stored");
    assert_eq!(
        *puts.lock().unwrap(),
        [(
            "parse-errors/shardId-000000000000/7-7.jsonl".to_string(),
            payloads[6].clone(),
            "store_rejected".to_string()
        )]
    );
    // Bisecting 25 items to one takes a handful of calls, not one per item.
    assert!(refused.num_calls() <= 6, "{}", refused.num_calls());
}

#[tokio::test]
async fn refused_readings_go_in_a_second_object_after_the_parse_errors_of_the_batch() {
    let (items, puts, published) = (log(), log(), log());
    let [refused, kept] = dynamodb_validating(&items, |item| {
        item.get(attr::REACTOR) == Some(&AttributeValue::S("refused".into()))
    });
    let lookups = ledger_empty();
    let [sns_refused, sns_ok] = sns_validating(&published, "none");
    let dead_letters = dead_letters_kept(&puts);
    let pipeline = pipeline(
        &[&refused, &lookups, &kept],
        &[&sns_refused, &sns_ok],
        &[&dead_letters],
    );
    let mut payloads: Vec<Vec<u8>> = (0..12).map(|_| payload("reactor-1", 500.0)).collect();
    payloads[1] = b"{".to_vec();
    payloads[4] = payload("refused", 500.0);
    payloads[8] = payload("refused", 600.0);
    payloads[10] = b"[]".to_vec();

    let report = pipeline.process(batch(payloads.clone()), None).await;

    assert!(report.response().batch_item_failures.is_empty());
    let put_objects = report
        .requests
        .iter()
        .find(|(op, _)| *op == AwsOperation::S3PutObject)
        .map(|(_, n)| *n);
    assert_eq!(put_objects, Some(2));
    // In the order written: the parse errors' object during the batch, the refused readings'
    // once the sinks answered.
    assert_eq!(
        *puts.lock().unwrap(),
        [
            (
                "parse-errors/shardId-000000000000/2-11.jsonl".to_string(),
                payloads[1].clone(),
                "not_json".to_string()
            ),
            (
                "parse-errors/shardId-000000000000/2-11.jsonl".to_string(),
                payloads[10].clone(),
                "not_an_object".to_string()
            ),
            (
                "parse-errors/shardId-000000000000/5-9.jsonl".to_string(),
                payloads[4].clone(),
                "store_rejected".to_string()
            ),
            (
                "parse-errors/shardId-000000000000/5-9.jsonl".to_string(),
                payloads[8].clone(),
                "store_rejected".to_string()
            ),
        ]
    );
    assert_eq!(
        items.lock().unwrap().len(),
        8,
        "the other readings are stored"
    );
}

#[tokio::test]
async fn a_batch_that_a_sink_refused_nothing_of_writes_no_second_object() {
    let (items, puts, published) = (log(), log(), log());
    let [refused, kept] = dynamodb_validating(&items, |_| false);
    let lookups = ledger_empty();
    let [sns_refused, sns_ok] = sns_validating(&published, "none");
    let dead_letters = dead_letters_kept(&puts);
    let pipeline = pipeline(
        &[&refused, &lookups, &kept],
        &[&sns_refused, &sns_ok],
        &[&dead_letters],
    );

    let clean = pipeline
        .process(batch(vec![payload("reactor-1", 500.0); 3]), None)
        .await;
    let with_errors = pipeline
        .process(
            batch(vec![
                b"{".to_vec(),
                payload("reactor-1", 500.0),
                b"".to_vec(),
            ]),
            None,
        )
        .await;

    let put_objects = |report: &BatchReport| {
        report
            .requests
            .iter()
            .filter(|(op, _)| *op == AwsOperation::S3PutObject)
            .map(|(_, n)| *n)
            .sum::<usize>()
    };
    assert_eq!(put_objects(&clean), 0);
    assert_eq!(put_objects(&with_errors), 1);
    assert_eq!(dead_letters.num_calls(), 1);
    assert_eq!(puts.lock().unwrap().len(), 2);
}

#[tokio::test]
async fn an_alert_sns_refuses_is_isolated_dead_lettered_and_the_other_alerts_published() {
    let (items, puts, published) = (log(), log(), log());
    let [refused, kept] = dynamodb_validating(&items, |_| false);
    let lookups = ledger_empty();
    let [sns_refused, sns_ok] = sns_validating(&published, "refused");
    let dead_letters = dead_letters_kept(&puts);
    let pipeline = pipeline(
        &[&refused, &lookups, &kept],
        &[&sns_refused, &sns_ok],
        &[&dead_letters],
    );
    let mut payloads: Vec<Vec<u8>> = (0..6).map(|i| payload(&format!("r{i}"), 850.0)).collect();
    payloads[3] = payload("refused", 850.0);

    let report = pipeline.process(batch(payloads.clone()), None).await;

    assert!(report.response().batch_item_failures.is_empty());
    assert!(matches!(
        outcome(&report, "4"),
        Outcome::DeadLettered(RejectReason::AlertRejected)
    ));
    let published: Vec<String> = published
        .lock()
        .unwrap()
        .iter()
        .flat_map(|p| p.publish_batch_request_entries().iter().map(reactor_of))
        .collect();
    let mut published = published;
    published.sort();
    assert_eq!(published, ["r0", "r1", "r2", "r4", "r5"]);
    assert_eq!(puts.lock().unwrap().len(), 1);
    assert_eq!(puts.lock().unwrap()[0].1, payloads[3]);
    assert_eq!(puts.lock().unwrap()[0].2, "alert_rejected");
    // The reading itself is stored: only its alert could not go out.
    assert_eq!(
        items
            .lock()
            .unwrap()
            .iter()
            .filter(|i| kind_of(i) == KIND_READING)
            .count(),
        6
    );
}

// --- Permanent for the function --------------------------------------------------------

enum Broken {
    DynamoDb(u16, &'static str),
    Sns(u16, &'static str),
    S3(u16, &'static str),
}

async fn invocation_with(broken: Broken) {
    let (items, puts, published) = (log(), log(), log());
    let [refused, kept] = dynamodb_validating(&items, |_| false);
    let lookups = ledger_empty();
    let [sns_refused, sns_ok] = sns_validating(&published, "none");
    let dead_letters = dead_letters_kept(&puts);
    let broken_rule = match &broken {
        Broken::DynamoDb(status, code) => {
            let (status, code) = (*status, *code);
            mock!(aws_sdk_dynamodb::Client::batch_write_item)
                .then_http_response(move || dynamodb_error(status, code, "configuration"))
        }
        Broken::Sns(status, code) => {
            let (status, code) = (*status, *code);
            mock!(aws_sdk_sns::Client::publish_batch)
                .then_http_response(move || sns_error(status, code))
        }
        Broken::S3(status, code) => {
            let (status, code) = (*status, *code);
            mock!(aws_sdk_s3::Client::put_object).then_http_response(move || s3_error(status, code))
        }
    };
    let pipeline = match broken {
        Broken::DynamoDb(..) => pipeline(
            &[&broken_rule, &lookups],
            &[&sns_refused, &sns_ok],
            &[&dead_letters],
        ),
        Broken::Sns(..) => pipeline(
            &[&refused, &lookups, &kept],
            &[&broken_rule],
            &[&dead_letters],
        ),
        Broken::S3(..) => pipeline(
            &[&refused, &lookups, &kept],
            &[&sns_refused, &sns_ok],
            &[&broken_rule],
        ),
    };
    let payloads = vec![
        payload("reactor-1", 500.0),
        payload("reactor-2", 850.0),
        b"not json".to_vec(),
        payload("reactor-3", 500.0),
    ];

    let (report, result) =
        lambda::handle_batch(&pipeline, lambda_event(kinesis_event(&payloads, 1))).await;

    let fatal = report
        .fatal()
        .expect("a failure permanent for the function");
    assert_eq!(fatal.kind, FailureKind::Misconfigured);
    assert_eq!(fatal.kind.class(), FailureClass::PermanentForFunction);
    assert!(
        !report.nothing_done(),
        "some records were done, yet the invocation fails"
    );
    let failed = result.expect_err("the invocation fails loudly");
    assert_eq!(failed.first.kind, FailureKind::Misconfigured);
    // No good reading is dead-lettered for a configuration error.
    for (key, _, reason) in puts.lock().unwrap().iter() {
        assert_eq!(reason, "not_json", "{key} dead-lettered as {reason}");
    }
}

#[tokio::test]
async fn a_missing_table_fails_the_invocation() {
    invocation_with(Broken::DynamoDb(400, "ResourceNotFoundException")).await;
}

#[tokio::test]
async fn access_denied_on_the_table_fails_the_invocation() {
    invocation_with(Broken::DynamoDb(400, "AccessDeniedException")).await;
}

#[tokio::test]
async fn a_missing_topic_fails_the_invocation() {
    invocation_with(Broken::Sns(404, "NotFound")).await;
}

#[tokio::test]
async fn a_denied_or_disabled_topic_key_fails_the_invocation() {
    invocation_with(Broken::Sns(403, "AuthorizationError")).await;
    invocation_with(Broken::Sns(400, "KMSDisabled")).await;
    invocation_with(Broken::Sns(400, "KMSAccessDenied")).await;
}

#[tokio::test]
async fn a_missing_or_denied_bucket_fails_the_invocation() {
    invocation_with(Broken::S3(404, "NoSuchBucket")).await;
    invocation_with(Broken::S3(403, "AccessDenied")).await;
}

// --- Transient -------------------------------------------------------------------------

#[tokio::test]
async fn a_server_error_is_retried_through_the_partial_batch_response_not_fatal() {
    let (puts, published) = (log(), log());
    let lookups = ledger_empty();
    let [sns_refused, sns_ok] = sns_validating(&published, "none");
    let dead_letters = dead_letters_kept(&puts);
    let down = mock!(aws_sdk_dynamodb::Client::batch_write_item)
        .then_http_response(|| dynamodb_error(500, "InternalServerError", "internal"));
    let pipeline = pipeline(
        &[&down, &lookups],
        &[&sns_refused, &sns_ok],
        &[&dead_letters],
    );
    let payloads = vec![payload("reactor-1", 500.0), b"{".to_vec()];

    let (report, result) =
        lambda::handle_batch(&pipeline, lambda_event(kinesis_event(&payloads, 1))).await;

    assert!(report.fatal().is_none());
    let response = result.expect("not a whole-invocation failure: the parse error was done");
    let failed: Vec<_> = response
        .batch_item_failures
        .into_iter()
        .filter_map(|f| f.item_identifier)
        .collect();
    assert_eq!(failed, ["1"]);
    match outcome(&report, "1") {
        Outcome::Failed(e) => assert_eq!(e.kind.class(), FailureClass::Transient),
        other => panic!("{other:?}"),
    }
    assert_eq!(puts.lock().unwrap().len(), 1, "only the parse error");
}

#[test]
fn the_independent_number_check_agrees_with_the_documented_edges() {
    assert!(dynamodb_accepts_number(
        "9.9999999999999999999999999999999999999E+125"
    ));
    assert!(!dynamodb_accepts_number("1E+126"));
    assert!(dynamodb_accepts_number("1E-130"));
    assert!(!dynamodb_accepts_number("9E-131"));
    assert!(!dynamodb_accepts_number(&format!("1{}", "0".repeat(120))));
    assert!(dynamodb_accepts_number("-273.15"));
    assert!(dynamodb_accepts_number("0"));
}
