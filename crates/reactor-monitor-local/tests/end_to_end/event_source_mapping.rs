//! The emulated event source mapping against the emulator's Kinesis, with a scripted function.

use reactor_monitor_local::testing as support;

use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aws_lambda_events::event::kinesis::KinesisEvent;
use aws_lambda_events::event::streams::KinesisEventResponse;
use reactor_monitor_local::esm::{
    self, FunctionError, Invoke, MappingProgress, MappingSettings, ShardProgress, StartingPosition,
};
use reactor_monitor_local::generate::{self, OutgoingRecord};
use reactor_monitor_local::resources::Resources;
use tokio::time::Instant;

/// What the scripted function does with a batch, given its sequence numbers and the
/// number of the invocation.
type Script = dyn Fn(&[u64], usize) -> Result<Vec<u64>, String> + Send + Sync;

struct ScriptedFunction {
    script: Box<Script>,
    batches: Mutex<Vec<Vec<u64>>>,
}

impl Invoke for ScriptedFunction {
    async fn invoke(
        &self,
        event: Vec<u8>,
        _deadline: Instant,
    ) -> Result<KinesisEventResponse, FunctionError> {
        let event: KinesisEvent =
            serde_json::from_slice(&event).map_err(|e| FunctionError::new("InvalidEvent", e))?;
        let seqs: Vec<u64> = event
            .records
            .iter()
            .map(|r| r.kinesis.sequence_number.parse().unwrap())
            .collect();
        let n = {
            let mut batches = self.batches.lock().unwrap();
            batches.push(seqs.clone());
            batches.len()
        };
        let failed = (self.script)(&seqs, n).map_err(|e| FunctionError::new("Scripted", e))?;
        let mut response = KinesisEventResponse::default();
        for seq in failed {
            response.add_failure(seq.to_string());
        }
        Ok(response)
    }
}

struct Run {
    batches: Vec<Vec<u64>>,
    progress: Arc<MappingProgress>,
    on_failure: Vec<serde_json::Value>,
    produced: Vec<u64>,
}

fn settings(
    resources: &Resources,
    batch_size: usize,
    retries: u32,
    starting_position: StartingPosition,
) -> MappingSettings {
    MappingSettings {
        batch_size,
        batching_window: Duration::from_millis(50),
        maximum_retry_attempts: retries,
        maximum_record_age: None,
        bisect_batch_on_function_error: true,
        region: "us-east-1".into(),
        stream_arn: resources.stream_arn.clone(),
        on_failure_bucket: Some(resources.names.on_failure_bucket.clone()),
        function_timeout: Duration::from_secs(10),
        starting_position,
    }
}

async fn run_mapping(records: usize, batch_size: usize, retries: u32, script: Box<Script>) -> Run {
    let (_emulator, sdk, resources) = support::emulator_with_resources(1).await;
    let kinesis = aws_sdk_kinesis::Client::new(&sdk);
    let outgoing: Vec<OutgoingRecord> = (0..records)
        .map(|i| OutgoingRecord {
            partition_key: "p".into(),
            data: support::payload("r", i as f64),
            intent: None,
        })
        .collect();
    let placements = generate::put_records(
        &kinesis,
        &resources.names.stream,
        &outgoing,
        None,
        &indicatif::ProgressBar::hidden(),
        &Default::default(),
    )
    .await
    .unwrap();
    let function = Arc::new(ScriptedFunction {
        script,
        batches: Mutex::new(Vec::new()),
    });
    let progress = Arc::new(MappingProgress::default());
    let settings = settings(
        &resources,
        batch_size,
        retries,
        StartingPosition::TrimHorizon,
    );
    let mapping = tokio::spawn(esm::run(
        kinesis,
        reactor_monitor::aws::s3_client(&sdk),
        settings,
        function.clone(),
        progress.clone(),
    ));
    let until = Instant::now() + Duration::from_secs(60);
    while progress.settled.load(Ordering::Relaxed) < records && Instant::now() < until {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    progress.stop.store(true, Ordering::Relaxed);
    mapping.await.unwrap().unwrap();
    let s3 = reactor_monitor::aws::s3_client(&sdk);
    let listed = s3
        .list_objects_v2()
        .bucket(&resources.names.on_failure_bucket)
        .send()
        .await
        .unwrap();
    let mut on_failure = Vec::new();
    for object in listed.contents() {
        let key = object.key().unwrap().to_string();
        let body = s3
            .get_object()
            .bucket(&resources.names.on_failure_bucket)
            .key(&key)
            .send()
            .await
            .unwrap()
            .body
            .collect()
            .await
            .unwrap()
            .into_bytes();
        let mut record: serde_json::Value = serde_json::from_slice(&body).unwrap();
        record["key"] = key.into();
        on_failure.push(record);
    }
    let batches = function.batches.lock().unwrap().clone();
    Run {
        batches,
        progress,
        on_failure,
        produced: placements
            .iter()
            .map(|p| p.sequence_number.parse().unwrap())
            .collect(),
    }
}

#[tokio::test]
async fn batches_respect_the_batch_size_and_cover_every_record_once() {
    let run = run_mapping(23, 5, 2, Box::new(|_, _| Ok(vec![]))).await;

    assert!(
        run.batches.iter().all(|b| !b.is_empty() && b.len() <= 5),
        "{:?}",
        run.batches
    );
    let delivered: Vec<u64> = run.batches.concat();
    assert_eq!(delivered, run.produced);
    assert_eq!(run.progress.settled.load(Ordering::Relaxed), 23);
}

#[tokio::test]
async fn a_partial_failure_is_retried_from_the_lowest_reported_sequence_number() {
    // The first invocation reports records 3 and 5 (of 1..=6) as failed.
    let run = run_mapping(
        6,
        10,
        3,
        Box::new(|seqs, n| {
            Ok(if n == 1 {
                vec![seqs[4], seqs[2]]
            } else {
                vec![]
            })
        }),
    )
    .await;

    assert_eq!(run.batches.len(), 2);
    assert_eq!(run.batches[1], run.produced[2..].to_vec());
    assert_eq!(run.progress.redelivered.load(Ordering::Relaxed), 4);
    assert!(run.on_failure.is_empty());
}

#[tokio::test]
async fn a_function_error_bisects_the_batch_to_isolate_the_poison_record() {
    // Any batch holding the fourth record fails as a whole; the others succeed.
    let run = run_mapping(
        8,
        8,
        10,
        Box::new(|seqs, _| {
            if seqs.len() > 1 && seqs.contains(&4) {
                Err("boom".into())
            } else {
                Ok(vec![])
            }
        }),
    )
    .await;

    let delivered_alone: Vec<&Vec<u64>> =
        run.batches.iter().filter(|b| b.as_slice() == [4]).collect();
    assert_eq!(delivered_alone.len(), 1, "{:?}", run.batches);
    assert!(run.on_failure.is_empty());
    assert_eq!(run.progress.settled.load(Ordering::Relaxed), 8);
}

#[tokio::test]
async fn exhausted_retries_send_the_batch_to_the_on_failure_destination() {
    let run = run_mapping(3, 10, 2, Box::new(|_, _| Err("always failing".into()))).await;

    // Bounded: never more than (retries + 1) deliveries of any record.
    let deliveries_of_first = run
        .batches
        .iter()
        .filter(|b| b.contains(&run.produced[0]))
        .count();
    assert!(deliveries_of_first <= 3, "{:?}", run.batches);
    let batch_infos: Vec<&serde_json::Value> = run
        .on_failure
        .iter()
        .map(|m| &m["KinesisBatchInfo"])
        .collect();
    let covered: u64 = batch_infos
        .iter()
        .map(|i| i["batchSize"].as_u64().unwrap())
        .sum();
    assert_eq!(covered, 3);
    assert_eq!(
        run.on_failure[0]["requestContext"]["condition"],
        "RetryAttemptsExhausted"
    );
    assert_eq!(run.progress.exhausted_records.load(Ordering::Relaxed), 3);
    // The S3 destination's record: the whole invocation event in `payload` (a JSON string), and
    // AWS's key format aws/lambda/<ESM-UUID>/<shardID>/YYYY/MM/DD/YYYY-MM-DDTHH.MM.SS-<UUID>.
    let mut carried = Vec::new();
    for record in &run.on_failure {
        for field in ["requestContext", "responseContext", "version", "timestamp"] {
            assert!(!record[field].is_null(), "{field} missing: {record}");
        }
        let event: aws_lambda_events::event::kinesis::KinesisEvent =
            serde_json::from_str(record["payload"].as_str().expect("payload is a string")).unwrap();
        assert_eq!(
            event.records.len() as u64,
            record["KinesisBatchInfo"]["batchSize"].as_u64().unwrap()
        );
        for r in &event.records {
            carried.push(r.kinesis.sequence_number.parse::<u64>().unwrap());
            assert!(
                !r.kinesis.data.is_empty(),
                "the record's data travels with it"
            );
        }
        let key = record["key"].as_str().unwrap();
        let parts: Vec<&str> = key.split('/').collect();
        assert_eq!(parts.len(), 8, "{key}");
        assert_eq!(&parts[..2], ["aws", "lambda"], "{key}");
        assert_eq!(parts[2].len(), 36, "mapping UUID: {key}");
        assert_eq!(parts[3], record["KinesisBatchInfo"]["shardId"], "{key}");
        let day = format!("{}-{}-{}T", parts[4], parts[5], parts[6]);
        assert!(parts[7].starts_with(&day), "{key}");
        assert_eq!(parts[7].len(), "YYYY-MM-DDTHH.MM.SS-".len() + 36, "{key}");
        assert_eq!(&parts[7][13..14], ".", "{key}");
    }
    carried.sort();
    assert_eq!(
        carried, run.produced,
        "every exhausted record is in a payload"
    );
}

/// Puts `count` readings into the stream; their sequence numbers, in order.
async fn put_readings(kinesis: &aws_sdk_kinesis::Client, stream: &str, count: usize) -> Vec<u64> {
    let outgoing: Vec<OutgoingRecord> = (0..count)
        .map(|i| OutgoingRecord {
            partition_key: "p".into(),
            data: support::payload("r", i as f64),
            intent: None,
        })
        .collect();
    generate::put_records(
        kinesis,
        stream,
        &outgoing,
        None,
        &indicatif::ProgressBar::hidden(),
        &Default::default(),
    )
    .await
    .unwrap()
    .iter()
    .map(|p| p.sequence_number.parse().unwrap())
    .collect()
}

/// Runs an opened mapping until `expected` records are settled (or 60 s pass), then stops it.
async fn drain(
    mapping: esm::Mapping,
    sdk: &aws_config::SdkConfig,
    expected: usize,
) -> (Vec<Vec<u64>>, Arc<MappingProgress>) {
    let function = Arc::new(ScriptedFunction {
        script: Box::new(|_, _| Ok(vec![])),
        batches: Mutex::new(Vec::new()),
    });
    let progress = Arc::new(MappingProgress::default());
    let running = tokio::spawn(mapping.run(
        reactor_monitor::aws::s3_client(sdk),
        function.clone(),
        progress.clone(),
    ));
    let until = Instant::now() + Duration::from_secs(60);
    while progress.settled.load(Ordering::Relaxed) < expected && Instant::now() < until {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // A little longer: a record delivered beyond those expected would show.
    tokio::time::sleep(Duration::from_millis(200)).await;
    progress.stop.store(true, Ordering::Relaxed);
    running.await.unwrap().unwrap();
    let batches = function.batches.lock().unwrap().clone();
    (batches, progress)
}

#[tokio::test]
async fn a_latest_start_skips_the_records_already_in_the_stream() {
    let (_emulator, sdk, resources) = support::emulator_with_resources(1).await;
    let kinesis = aws_sdk_kinesis::Client::new(&sdk);
    let before = put_readings(&kinesis, &resources.names.stream, 3).await;

    let mapping = esm::Mapping::open(
        kinesis.clone(),
        settings(&resources, 10, 2, StartingPosition::Latest),
    )
    .await
    .unwrap();
    let after = put_readings(&kinesis, &resources.names.stream, 2).await;
    let (batches, progress) = drain(mapping, &sdk, after.len()).await;

    assert_eq!(before.len(), 3);
    assert_eq!(batches.concat(), after);
    assert_eq!(progress.settled.load(Ordering::Relaxed), 2);
}

#[tokio::test]
async fn an_at_timestamp_start_begins_at_the_first_record_that_arrived_at_or_after_it() {
    let (_emulator, sdk, resources) = support::emulator_with_resources(1).await;
    let kinesis = aws_sdk_kinesis::Client::new(&sdk);
    let earlier = put_readings(&kinesis, &resources.names.stream, 3).await;
    tokio::time::sleep(Duration::from_millis(50)).await;
    let later = put_readings(&kinesis, &resources.names.stream, 2).await;
    // The arrival time of the first later record, as Kinesis reports it (milliseconds).
    let iterator = kinesis
        .get_shard_iterator()
        .stream_arn(&resources.stream_arn)
        .shard_id("shardId-000000000000")
        .shard_iterator_type(aws_sdk_kinesis::types::ShardIteratorType::TrimHorizon)
        .send()
        .await
        .unwrap()
        .shard_iterator
        .unwrap();
    let stored = kinesis
        .get_records()
        .stream_arn(&resources.stream_arn)
        .shard_iterator(iterator)
        .send()
        .await
        .unwrap()
        .records;
    assert_eq!(stored[3].sequence_number(), later[0].to_string());
    let at = chrono::DateTime::from_timestamp_millis(
        stored[3]
            .approximate_arrival_timestamp()
            .unwrap()
            .to_millis()
            .unwrap(),
    )
    .unwrap();

    let mapping = esm::Mapping::open(
        kinesis,
        settings(&resources, 10, 2, StartingPosition::AtTimestamp(at)),
    )
    .await
    .unwrap();
    let (batches, _) = drain(mapping, &sdk, later.len()).await;

    assert_eq!(earlier.len(), 3);
    assert_eq!(batches.concat(), later);
}

#[tokio::test]
async fn the_iterator_age_of_each_shard_is_the_age_of_the_last_record_delivered() {
    let (_emulator, sdk, resources) = support::emulator_with_resources(2).await;
    let kinesis = aws_sdk_kinesis::Client::new(&sdk);
    let put_at = chrono::Utc::now();
    let produced = put_readings(&kinesis, &resources.names.stream, 6).await;
    let waited = Duration::from_millis(400);
    tokio::time::sleep(waited).await;

    let mapping = esm::Mapping::open(
        kinesis,
        settings(&resources, 100, 2, StartingPosition::TrimHorizon),
    )
    .await
    .unwrap();
    assert_eq!(mapping.shard_ids().len(), 2);
    let (batches, progress) = drain(mapping, &sdk, produced.len()).await;
    let shards = progress.shards();

    assert_eq!(shards.len(), 2, "every shard read is listed: {shards:?}");
    let delivered: usize = shards.values().map(|s| s.records).sum();
    assert_eq!(delivered, produced.len());
    assert_eq!(
        shards.values().map(|s| s.batches).sum::<usize>(),
        batches.len()
    );
    for (shard_id, shard) in &shards {
        if shard.records == 0 {
            assert_eq!(shard, &ShardProgress::default(), "{shard_id}");
            continue;
        }
        let age = shard
            .iterator_age_ms
            .expect("an age once a batch is delivered");
        let delivered_at = shard.delivered_at.expect("a delivery time");
        let bound = (delivered_at - put_at).num_milliseconds() as u64;
        assert!(
            age >= waited.as_millis() as u64 && age <= bound,
            "{shard_id}: iterator age {age} ms, waited {waited:?}, at most {bound} ms"
        );
        assert!(!shard.last_sequence_number.is_empty());
    }
}
