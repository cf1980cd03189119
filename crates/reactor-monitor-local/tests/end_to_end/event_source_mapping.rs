//! The emulated event source mapping against the emulator's Kinesis, with a scripted function.

use reactor_monitor_local::testing as support;

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aws_lambda_events::event::kinesis::KinesisEvent;
use aws_lambda_events::event::streams::KinesisEventResponse;
use reactor_monitor_local::esm::{self, Invoke, MappingProgress, MappingSettings};
use reactor_monitor_local::generate::{self, OutgoingRecord};
use reactor_monitor_local::verify;
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
    ) -> Result<KinesisEventResponse, String> {
        let event: KinesisEvent = serde_json::from_slice(&event).map_err(|e| e.to_string())?;
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
        let failed = (self.script)(&seqs, n)?;
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
    let settings = MappingSettings {
        batch_size,
        batching_window: Duration::from_millis(50),
        maximum_retry_attempts: retries,
        maximum_record_age: None,
        bisect_batch_on_function_error: true,
        region: "us-east-1".into(),
        stream_arn: resources.stream_arn.clone(),
        on_failure_queue_url: Some(resources.on_failure_queue_url.clone()),
        function_timeout: Duration::from_secs(10),
        starting_positions: HashMap::new(),
        only_started_shards: false,
    };
    let mapping = tokio::spawn(esm::run(
        kinesis,
        aws_sdk_sqs::Client::new(&sdk),
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
    let on_failure = verify::drain(
        &aws_sdk_sqs::Client::new(&sdk),
        &resources.on_failure_queue_url,
    )
    .await
    .unwrap()
    .iter()
    .map(|b| serde_json::from_str(b).unwrap())
    .collect();
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
}
