//! The pipeline against the local AWS emulator: the real SDK, real event JSON.

use reactor_monitor_local::testing as support;

use aws_sdk_dynamodb::types::AttributeValue;
use reactor_monitor::{aws, lambda};
use reactor_monitor_local::generate::{self, Intent, Mix};
use reactor_monitor_local::run::{self, LocalOptions};
use reactor_monitor_local::verify;
use support::{emulator_with_resources, kinesis_event, lambda_event, payload};

#[tokio::test]
async fn a_local_run_on_a_known_mixed_dataset_gives_exact_counts() {
    let emulator = reactor_monitor_local::emulator::Emulator::start()
        .await
        .unwrap();
    let mix = Mix {
        seed: 42,
        ..Mix::default()
    };
    let expected = generate::generate(&mix, 1_500);
    let count = |intent| expected.iter().filter(|r| r.intent == Some(intent)).count();
    let options = LocalOptions {
        endpoint: Some(emulator.endpoint().to_string()),
        readings: 1_500,
        batch_size: 200,
        shards: 2,
        mix,
        ..LocalOptions::default()
    };

    let report = run::run(options).await.unwrap();

    assert_eq!(report.produced, 1_500);
    assert_eq!(report.stored, 1_500 - count(Intent::Corrupt));
    assert_eq!(report.alerted.warning, count(Intent::Warning));
    assert_eq!(report.alerted.emergency, count(Intent::Emergency));
    assert_eq!(report.dead_lettered, count(Intent::Corrupt));
    assert_eq!(report.verified.items, report.stored);
    assert_eq!(report.verified.dead_letters, report.dead_lettered);
    assert_eq!(
        report.verified.alerts_delivered,
        count(Intent::Warning) + count(Intent::Emergency)
    );
    assert_eq!(
        report.verified.alerts_by_severity.get("emergency"),
        Some(&count(Intent::Emergency))
    );
    assert_eq!(report.lost, 0);
    assert!(report.ok(), "{}", report.verdict);
    let flows: usize = report.flows.iter().map(|f| f.count).sum();
    assert_eq!(flows, 1_500);
}

#[tokio::test]
async fn a_local_run_writes_the_emf_lines_of_the_deployed_function_and_they_count_what_was_read_back()
 {
    let emulator = reactor_monitor_local::emulator::Emulator::start()
        .await
        .unwrap();
    let options = LocalOptions {
        endpoint: Some(emulator.endpoint().to_string()),
        readings: 800,
        batch_size: 100,
        mix: Mix {
            seed: 7,
            ..Mix::default()
        },
        ..LocalOptions::default()
    };

    let report = run::run(options).await.unwrap();

    // Every line passed CloudWatch's EMF structure checks on the way (from_lines); one set of
    // lines per invocation at least.
    let emf = &report.metrics;
    assert!(emf.lines >= report.invocations, "{emf:?}");
    assert_eq!(report.retried, 0, "a run without faults retries nothing");
    let records = |flow: &str| emf.records.get(flow).copied().unwrap_or(0) as usize;
    assert_eq!(emf.records_total() as usize, report.produced);
    assert_eq!(
        records("store-only") + records("store+alert"),
        report.verified.items
    );
    assert_eq!(records("store+alert"), report.verified.alerts_delivered);
    assert_eq!(records("parse-error"), report.verified.dead_letters);
    assert_eq!(emf.dead_lettered as usize, report.verified.dead_letters);
    assert_eq!(emf.readings as usize, report.verified.items);
    for (severity, delivered) in &report.verified.alerts_by_severity {
        assert_eq!(
            emf.alerts.get(severity).copied().unwrap_or(0) as usize,
            *delivered
        );
    }
    assert!(report.verified.dead_letters > 0 && report.verified.alerts_delivered > 0);
}

#[tokio::test]
async fn the_same_batch_delivered_twice_stores_no_duplicate_and_alerts_once() {
    let (_emulator, sdk, resources) = emulator_with_resources(1).await;
    let pipeline = aws::pipeline(&sdk, &resources.config());
    let payloads = vec![
        payload("r1", 500.0),
        payload("r1", 750.0),
        payload("r2", 850.0),
        b"{oops".to_vec(),
    ];
    let event = kinesis_event(&payloads, 100);

    let (first, _) = lambda::handle(&pipeline, lambda_event(event.clone()))
        .await
        .unwrap();
    let (second, report) = lambda::handle(&pipeline, lambda_event(event))
        .await
        .unwrap();

    assert!(first.batch_item_failures.is_empty());
    assert!(second.batch_item_failures.is_empty());
    let items = aws_sdk_dynamodb::Client::new(&sdk)
        .scan()
        .table_name(&resources.names.table)
        .send()
        .await
        .unwrap()
        .items
        .unwrap_or_default();
    let readings = items
        .iter()
        .filter(|i| i.get("kind") == Some(&AttributeValue::S("reading".into())))
        .count();
    let ledger = items
        .iter()
        .filter(|i| i.contains_key("message_id"))
        .count();
    assert_eq!(readings, 3);
    assert_eq!(ledger, 2);
    let alerts = verify::drain(&aws_sdk_sqs::Client::new(&sdk), &resources.alerts_queue_url)
        .await
        .unwrap();
    assert_eq!(alerts.len(), 2, "{alerts:?}");
    assert!(
        alerts
            .iter()
            .any(|a| a.contains("\"Subject\" : \"emergency\"")
                || a.contains("\"Subject\": \"emergency\""))
    );
    assert!(matches!(
        report.records[1].outcome,
        reactor_monitor::pipeline::Outcome::StoredAndAlerted {
            published_now: false,
            ..
        }
    ));
}

#[tokio::test]
async fn corrupted_records_in_the_middle_are_dead_lettered_byte_for_byte_and_the_rest_stored() {
    let (_emulator, sdk, resources) = emulator_with_resources(1).await;
    let pipeline = aws::pipeline(&sdk, &resources.config());
    let mut huge = b"{\"temp\": ".to_vec();
    huge.resize(1024 * 1024, b'9');
    let corrupted: Vec<Vec<u8>> = vec![
        b"\xff\xfe\x00binary".to_vec(),
        b"{\"temp\":1,\"reactor\":\"a\\u001b[2J\",\"date\":\"2020-03-07T16:29:50Z\"}".to_vec(),
        huge,
    ];
    let payloads = vec![
        payload("r1", 10.0),
        corrupted[0].clone(),
        payload("r1", 20.0),
        corrupted[1].clone(),
        corrupted[2].clone(),
        payload("r2", 30.0),
    ];

    let (response, report) = lambda::handle(&pipeline, lambda_event(kinesis_event(&payloads, 7)))
        .await
        .unwrap();

    assert!(response.batch_item_failures.is_empty());
    let stored = report
        .records
        .iter()
        .filter(|r| matches!(r.outcome, reactor_monitor::pipeline::Outcome::Stored))
        .count();
    assert_eq!(stored, 3);
    let s3 = aws::s3_client(&sdk);
    let objects = object_keys(&s3, &resources.names.dead_letter_bucket).await;
    assert_eq!(
        objects,
        ["parse-errors/shardId-000000000000/8-11.jsonl"],
        "one object for the batch's parse errors"
    );
    let kept = verify::kept_dead_letters(&s3, &resources.names.dead_letter_bucket)
        .await
        .unwrap();
    assert_eq!(kept.len(), 3);
    for (record, expected) in [(1, &corrupted[0]), (3, &corrupted[1]), (4, &corrupted[2])] {
        let origin = &report.records[record].origin;
        let letter = &kept[&(origin.shard_id.clone(), origin.sequence_number.clone())];
        assert!(
            letter.payload == *expected,
            "record {record}: the bytes differ"
        );
        assert_eq!(
            Some(letter.reason.as_str()),
            report.records[record].reject_reason.map(|r| r.code())
        );
        assert_eq!(letter.partition_key, origin.partition_key);
        assert_eq!(letter.arrived_at, origin.arrival);
    }
    assert_eq!(
        report.records[3].reject_reason.unwrap().code(),
        "reactor_control_characters"
    );
}

#[tokio::test]
async fn readings_of_a_reactor_between_two_instants_are_one_query() {
    let (_emulator, sdk, resources) = emulator_with_resources(1).await;
    let pipeline = aws::pipeline(&sdk, &resources.config());
    let at =
        |r: &str, t: &str| format!(r#"{{"temp":500,"reactor":"{r}","date":"{t}"}}"#).into_bytes();
    let payloads = vec![
        at("r1", "2024-01-01T09:59:59Z"),
        at("r1", "2024-01-01T10:00:00Z"),
        at("r1", "2024-01-01T12:00:00+02:00"),
        at("r2", "2024-01-01T10:30:00Z"),
        at("r1", "2024-01-01T11:00:01Z"),
    ];
    lambda::handle(&pipeline, lambda_event(kinesis_event(&payloads, 1)))
        .await
        .unwrap();

    let out = aws_sdk_dynamodb::Client::new(&sdk)
        .query()
        .table_name(&resources.names.table)
        .key_condition_expression("reactor = :r AND reading_id BETWEEN :t1 AND :t2")
        .expression_attribute_values(":r", AttributeValue::S("r1".into()))
        .expression_attribute_values(":t1", AttributeValue::S("2024-01-01T10:00:00".into()))
        .expression_attribute_values(":t2", AttributeValue::S("2024-01-01T11:00:00~".into()))
        .send()
        .await
        .unwrap();

    // 10:00:00Z and 12:00:00+02:00 (= 10:00:00Z) are in; 09:59:59Z and 11:00:01Z are out.
    assert_eq!(out.count, 2);
}

/// The keys of every object in `bucket`.
async fn object_keys(s3: &aws_sdk_s3::Client, bucket: &str) -> Vec<String> {
    let listed = s3.list_objects_v2().bucket(bucket).send().await.unwrap();
    listed
        .contents()
        .iter()
        .filter_map(|o| o.key().map(str::to_string))
        .collect()
}

#[tokio::test]
async fn a_replayed_batch_overwrites_its_dead_letter_object() {
    let (_emulator, sdk, resources) = emulator_with_resources(1).await;
    let pipeline = aws::pipeline(&sdk, &resources.config());
    let payloads = vec![
        b"{".to_vec(),
        payload("r1", 500.0),
        b"\xc3\x28".to_vec(),
        b"null".to_vec(),
    ];
    let event = kinesis_event(&payloads, 40);
    let s3 = aws::s3_client(&sdk);
    let bucket = &resources.names.dead_letter_bucket;

    lambda::handle(&pipeline, lambda_event(event.clone()))
        .await
        .unwrap();
    let first = object_keys(&s3, bucket).await;
    let (response, report) = lambda::handle(&pipeline, lambda_event(event))
        .await
        .unwrap();

    assert!(response.batch_item_failures.is_empty());
    assert_eq!(first, ["parse-errors/shardId-000000000000/40-43.jsonl"]);
    assert_eq!(
        object_keys(&s3, bucket).await,
        first,
        "the same object, written again"
    );
    let kept = verify::kept_dead_letters(&s3, bucket).await.unwrap();
    let payloads_kept: Vec<&[u8]> = kept.values().map(|l| l.payload.as_slice()).collect();
    assert_eq!(
        payloads_kept,
        [&payloads[0][..], &payloads[2][..], &payloads[3][..]]
    );
    let put_objects: usize = report
        .requests
        .iter()
        .filter(|(op, _)| *op == reactor_monitor::operation::AwsOperation::S3PutObject)
        .map(|(_, n)| n)
        .sum();
    assert_eq!(put_objects, 1);
}

#[tokio::test]
async fn a_ten_mib_payload_is_dead_lettered_byte_for_byte() {
    let (_emulator, sdk, resources) = emulator_with_resources(1).await;
    let pipeline = aws::pipeline(&sdk, &resources.config());
    // Kinesis' largest record (UpdateMaxRecordSize 10,240 KiB), every byte value in it.
    let ten_mib: Vec<u8> = (0..10 * 1024 * 1024u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8)
        .collect();
    let payloads = vec![payload("r1", 500.0), ten_mib.clone(), b"{".to_vec()];

    let (response, report) = lambda::handle(&pipeline, lambda_event(kinesis_event(&payloads, 5)))
        .await
        .unwrap();

    assert!(response.batch_item_failures.is_empty());
    let s3 = aws::s3_client(&sdk);
    let kept = verify::kept_dead_letters(&s3, &resources.names.dead_letter_bucket)
        .await
        .unwrap();
    let origin = &report.records[1].origin;
    let letter = &kept[&(origin.shard_id.clone(), origin.sequence_number.clone())];
    assert_eq!(letter.payload.len(), ten_mib.len());
    assert!(letter.payload == ten_mib, "the 10 MiB dead letter differs");
    assert_eq!(letter.reason, "not_utf8");
    assert_eq!(kept.len(), 2);
}
