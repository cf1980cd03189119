//! Alert episodes against the emulator: the on-call scenario through the real DynamoDB and SNS
//! adapters, read back from the queue subscribed to the on-call topic; replayed, through the
//! fault-injecting proxy, and from two shards carrying the same reactor.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aws_lambda_events::event::kinesis::KinesisEvent;
use aws_lambda_events::event::streams::KinesisEventResponse;
use reactor_monitor::aws::AwsPipeline;
use reactor_monitor::domain::episode::EpisodeAction;
use reactor_monitor::operation::AwsOperation;
use reactor_monitor::pipeline::{BatchReport, InboundRecord};
use reactor_monitor::ports::{EpisodeStore, FailureKind};
use reactor_monitor_local::esm::{
    self, FunctionError, Invoke, MappingProgress, MappingSettings, StartingPosition,
};
use reactor_monitor_local::faults::{FaultProxy, FaultSpec};
use reactor_monitor_local::testing::{self as support, episode_scenario as scenario};
use reactor_monitor_local::verify;
use tokio::time::Instant;

async fn deliver(pipeline: &reactor_monitor::aws::AwsPipeline, mut records: Vec<InboundRecord>) {
    for _ in 0..10 {
        let report = pipeline.process(records.clone(), None).await;
        let Some(lowest) = report.failed_sequence_numbers().first().cloned() else {
            return;
        };
        records.retain(|r| r.origin.sequence_number >= lowest);
    }
    panic!("no progress after 10 deliveries");
}

#[tokio::test]
async fn the_on_call_queue_gets_one_message_per_transition_even_when_every_batch_is_replayed() {
    let (_emulator, sdk, resources) = support::emulator_with_resources(1).await;
    let config = resources.config();
    let pipeline = reactor_monitor::aws::pipeline(&sdk, &config);
    let policy = config.episodes.as_ref().unwrap().policy;
    let records = support::batch(scenario::heard());

    for chunk in records.chunks(100) {
        deliver(&pipeline, chunk.to_vec()).await;
        deliver(&pipeline, chunk.to_vec()).await;
    }
    for _ in 0..2 {
        reactor_monitor::silence::check(
            &pipeline.ledger,
            &pipeline.publisher,
            &policy,
            scenario::at(scenario::SILENCE_CHECK_SECOND),
        )
        .await
        .unwrap();
    }
    let back = support::record(
        1_000_000,
        scenario::payload(scenario::EPISODE_RETURN_SECOND),
    );
    deliver(&pipeline, vec![back.clone()]).await;
    deliver(&pipeline, vec![back]).await;

    let sqs = aws_sdk_sqs::Client::new(&sdk);
    let bodies = verify::drain(&sqs, &resources.on_call_queue_url)
        .await
        .unwrap();
    let mut got: Vec<(String, String, serde_json::Value)> = bodies
        .iter()
        .map(|body| {
            let envelope: serde_json::Value = serde_json::from_str(body).unwrap();
            let message: serde_json::Value =
                serde_json::from_str(envelope["Message"].as_str().unwrap()).unwrap();
            (
                message["last_reading_at"].as_str().unwrap().to_owned(),
                message["action"].as_str().unwrap().to_owned(),
                message,
            )
        })
        .collect();
    got.sort_by(|a, b| (&a.0, &a.1).cmp(&(&b.0, &b.1)));
    let mut expected: Vec<(String, String)> = scenario::EXPECTED
        .iter()
        .map(|&(action, second)| {
            let at = scenario::at(second).to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
            (at, action.as_str().to_owned())
        })
        .collect();
    expected.sort();
    let got_keys: Vec<(String, String)> =
        got.iter().map(|(a, b, _)| (a.clone(), b.clone())).collect();
    assert_eq!(got_keys, expected);

    let mut one_of_each: BTreeMap<String, &serde_json::Value> = BTreeMap::new();
    for (_, action, message) in &got {
        one_of_each.entry(action.clone()).or_insert(message);
        assert_eq!(message["reactor"], scenario::REACTOR);
        assert!(
            message["episode_id"]
                .as_str()
                .unwrap()
                .starts_with("reactor-7/")
        );
    }
    assert_eq!(
        one_of_each.len(),
        EpisodeAction::ALL.len() - 1,
        "every kind but suppressed"
    );
    for message in one_of_each.values() {
        println!("{message}");
    }
}

/// The scenario's readings ten seconds apart, and its last heard one: the same pages (at 0,
/// 600, 1,500 and 2,100 s, silence after 2,199 s) for a tenth of the emulator's requests.
fn every_ten_seconds() -> Vec<i64> {
    (0..scenario::HEARD_SECONDS)
        .step_by(10)
        .chain([scenario::HEARD_SECONDS - 1])
        .collect()
}

const SAVE: AwsOperation = AwsOperation::DynamoDbTransactWriteItems;

/// The state writes a delivery reported failed (each a call on its reactor's records).
fn failed_state_writes(report: &BatchReport) -> Vec<FailureKind> {
    let mut failed: Vec<(Instant, FailureKind)> = report
        .records
        .iter()
        .flat_map(|r| &r.calls)
        .filter(|c| c.operation == SAVE)
        .filter_map(|c| c.error.map(|kind| (c.started, kind)))
        .collect();
    failed.sort_by_key(|(started, _)| *started);
    failed.dedup_by_key(|(started, _)| *started);
    failed.into_iter().map(|(_, kind)| kind).collect()
}

/// Delivers until nothing is reported; returns the state writes the deliveries reported failed.
async fn deliver_noting_state_writes(
    pipeline: &AwsPipeline,
    mut records: Vec<InboundRecord>,
) -> usize {
    let mut failed = 0;
    for _ in 0..40 {
        let report = pipeline.process(records.clone(), None).await;
        failed += failed_state_writes(&report).len();
        let Some(lowest) = report.failed_sequence_numbers().first().cloned() else {
            return failed;
        };
        records.retain(|r| r.origin.sequence_number >= lowest);
    }
    panic!("no progress after 40 deliveries");
}

/// Runs the silence check until it reports no failure; returns its failed state writes.
async fn check_silence_noting_state_writes(pipeline: &AwsPipeline) -> usize {
    let policy = reactor_monitor::domain::episode::EpisodePolicy::default();
    let mut failed = 0;
    for _ in 0..40 {
        let checked = reactor_monitor::silence::check(
            &pipeline.ledger,
            &pipeline.publisher,
            &policy,
            scenario::at(scenario::SILENCE_CHECK_SECOND),
        )
        .await;
        let Ok(report) = checked else { continue };
        failed += report
            .failures
            .iter()
            .filter(|e| e.operation == SAVE)
            .count();
        if report.failures.is_empty() {
            return failed;
        }
    }
    panic!("the silence check never succeeded");
}

/// Every message on the on-call queue, parsed.
async fn on_call_messages(
    sdk: &aws_config::SdkConfig,
    resources: &reactor_monitor_local::resources::Resources,
) -> Vec<serde_json::Value> {
    let sqs = aws_sdk_sqs::Client::new(sdk);
    let bodies = verify::drain(&sqs, &resources.on_call_queue_url)
        .await
        .unwrap();
    bodies
        .iter()
        .map(|body| {
            let envelope: serde_json::Value = serde_json::from_str(body).unwrap();
            serde_json::from_str(envelope["Message"].as_str().unwrap()).unwrap()
        })
        .collect()
}

/// A message's action and the reading it names as last, as the scenario states them.
fn page(message: &serde_json::Value) -> (String, String) {
    (
        message["action"].as_str().unwrap().to_owned(),
        message["last_reading_at"].as_str().unwrap().to_owned(),
    )
}

fn expected_pages() -> BTreeSet<(String, String)> {
    scenario::EXPECTED
        .iter()
        .map(|&(action, second)| {
            let at = scenario::at(second).to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
            (action.as_str().to_owned(), at)
        })
        .collect()
}

#[tokio::test]
async fn through_injected_faults_on_call_gets_every_page_and_a_second_only_after_a_failed_state_write()
 {
    let (emulator, sdk, resources) = support::emulator_with_resources(1).await;
    // A third of DynamoDB's and SNS's requests fail: most are absorbed by the SDK's three
    // attempts, some reach the pipeline. Backoff shortened, attempts as deployed.
    let spec: FaultSpec = "dynamodb=0.33,sns=0.33,seed=11".parse().unwrap();
    let proxy = FaultProxy::start(emulator.endpoint(), &spec).await.unwrap();
    let retries =
        aws_config::retry::RetryConfig::standard().with_initial_backoff(Duration::from_millis(5));
    let proxied = reactor_monitor::aws::local_sdk_config(proxy.endpoint())
        .await
        .to_builder()
        .retry_config(retries)
        .build();
    let pipeline = reactor_monitor::aws::pipeline(&proxied, &resources.config());
    let records: Vec<InboundRecord> = (1..)
        .zip(every_ten_seconds())
        .map(|(seq, second)| support::record(seq, scenario::payload(second)))
        .collect();

    let mut failed_writes = 0;
    // Batches of 25: the last holds the resolution and the last reading heard, so the
    // stored state names it and the silent page is exact.
    for chunk in records.chunks(25) {
        for _ in 0..2 {
            failed_writes += deliver_noting_state_writes(&pipeline, chunk.to_vec()).await;
        }
    }
    failed_writes += check_silence_noting_state_writes(&pipeline).await;
    let back = support::record(
        1_000_000,
        scenario::payload(scenario::EPISODE_RETURN_SECOND),
    );
    for _ in 0..2 {
        failed_writes += deliver_noting_state_writes(&pipeline, vec![back.clone()]).await;
    }

    let messages = on_call_messages(&sdk, &resources).await;
    let injected = spec.injected();
    let summary = format!(
        "{} messages, {failed_writes} state writes reported failed; {injected}",
        messages.len()
    );
    eprintln!("{summary}");
    let mut pages: BTreeMap<(String, String), usize> = BTreeMap::new();
    for message in &messages {
        *pages.entry(page(message)).or_default() += 1;
    }
    let got: BTreeSet<(String, String)> = pages.keys().cloned().collect();
    assert_eq!(got, expected_pages(), "{summary}");
    // No batch here holds two transitions: a failed state write sends at most one page again.
    let doubled: usize = pages.values().map(|n| n - 1).sum();
    assert!(
        doubled <= failed_writes,
        "{doubled} pages went out again with {failed_writes} failed state writes: {summary}"
    );
    assert!(injected.total().injected() > 0, "{summary}");
    assert_eq!(injected.total().upstream_errors, 0, "{summary}");
}

/// The shipped handler as the emulated event source mapping invokes it, keeping every report.
struct Function {
    pipeline: AwsPipeline,
    reports: Mutex<Vec<BatchReport>>,
}

impl Invoke for Function {
    async fn invoke(
        &self,
        event: Vec<u8>,
        _deadline: Instant,
    ) -> Result<KinesisEventResponse, FunctionError> {
        let event: KinesisEvent =
            serde_json::from_slice(&event).map_err(|e| FunctionError::new("InvalidEvent", e))?;
        let (report, result) =
            reactor_monitor::lambda::handle_batch(&self.pipeline, support::lambda_event(event))
                .await;
        self.reports.lock().unwrap().push(report);
        result.map_err(|e| FunctionError::new("BatchFailed", e))
    }
}

/// Puts the readings in blocks of `block` alternately on the stream's two shards (explicit
/// hash keys amid each shard's half of the key space), the same reactor and partition key on
/// both.
async fn put_on_two_shards(
    kinesis: &aws_sdk_kinesis::Client,
    stream: &str,
    seconds: &[i64],
    block: usize,
) -> BTreeMap<String, usize> {
    const HALVES: [&str; 2] = [
        "85070591730234615865843651857942052864",
        "255211775190703847597530955573826158592",
    ];
    let entries: Vec<aws_sdk_kinesis::types::PutRecordsRequestEntry> = seconds
        .iter()
        .enumerate()
        .map(|(i, second)| {
            aws_sdk_kinesis::types::PutRecordsRequestEntry::builder()
                .data(aws_sdk_kinesis::primitives::Blob::new(scenario::payload(
                    *second,
                )))
                .partition_key(scenario::REACTOR)
                .explicit_hash_key(HALVES[(i / block) % 2])
                .build()
                .unwrap()
        })
        .collect();
    let mut shards = BTreeMap::new();
    for chunk in entries.chunks(500) {
        let out = kinesis
            .put_records()
            .stream_name(stream)
            .set_records(Some(chunk.to_vec()))
            .send()
            .await
            .unwrap();
        assert_eq!(out.failed_record_count(), Some(0));
        for record in out.records() {
            *shards
                .entry(record.shard_id().unwrap().to_owned())
                .or_default() += 1;
        }
    }
    shards
}

#[tokio::test]
async fn two_shards_of_one_reactor_page_every_transition_and_their_races_never_roll_the_state_back()
{
    let (_emulator, sdk, resources) = support::emulator_with_resources(2).await;
    let kinesis = aws_sdk_kinesis::Client::new(&sdk);
    let seconds = every_ten_seconds();
    let shards = put_on_two_shards(&kinesis, &resources.names.stream, &seconds, 5).await;
    assert_eq!(shards.len(), 2, "both shards carry the reactor: {shards:?}");
    let function = Arc::new(Function {
        pipeline: reactor_monitor::aws::pipeline(&sdk, &resources.config()),
        reports: Mutex::new(Vec::new()),
    });
    let progress = Arc::new(MappingProgress::default());
    let settings = MappingSettings {
        batch_size: 10,
        batching_window: Duration::from_millis(20),
        maximum_retry_attempts: 20,
        maximum_record_age: None,
        bisect_batch_on_function_error: true,
        region: "us-east-1".into(),
        stream_arn: resources.stream_arn.clone(),
        on_failure_bucket: Some(resources.names.on_failure_bucket.clone()),
        function_timeout: Duration::from_secs(30),
        starting_position: StartingPosition::TrimHorizon,
    };
    let mapping = tokio::spawn(esm::run(
        kinesis,
        reactor_monitor::aws::s3_client(&sdk),
        settings,
        function.clone(),
        progress.clone(),
    ));
    let watched = tokio::spawn(watch_state(
        reactor_monitor::aws::pipeline(&sdk, &resources.config()).ledger,
        progress.clone(),
    ));
    let until = Instant::now() + Duration::from_secs(120);
    while progress.settled.load(Ordering::Relaxed) < seconds.len() && Instant::now() < until {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    progress.stop.store(true, Ordering::Relaxed);
    mapping.await.unwrap().unwrap();
    let seen = watched.await.unwrap();
    assert!(
        seen.len() > 1,
        "the state was seen while the shards ran: {seen:?}"
    );
    for pair in seen.windows(2) {
        let ((v1, at1), (v2, at2)) = (pair[0], pair[1]);
        assert!(v1 <= v2 && at1 <= at2, "the state went back: {pair:?}");
    }
    assert_eq!(progress.settled.load(Ordering::Relaxed), seconds.len());
    assert_eq!(progress.exhausted_batches.load(Ordering::Relaxed), 0);

    let pipeline = &function.pipeline;
    let mut failed: Vec<FailureKind> = function
        .reports
        .lock()
        .unwrap()
        .iter()
        .flat_map(failed_state_writes)
        .collect();
    let silence_failed = check_silence_noting_state_writes(pipeline).await;
    assert_eq!(silence_failed, 0, "no other delivery runs during the check");
    let back = support::record_on(
        "shardId-000000000001",
        1_000_000,
        scenario::payload(scenario::EPISODE_RETURN_SECOND),
    );
    let report = pipeline.process(vec![back], None).await;
    assert!(report.failed_sequence_numbers().is_empty());
    failed.extend(failed_state_writes(&report));

    let messages = on_call_messages(&sdk, &resources).await;
    let invocations = function.reports.lock().unwrap().len();
    let summary = format!(
        "{} messages, {invocations} invocations, state writes refused: {}",
        messages.len(),
        failed.len()
    );
    eprintln!("{summary}");
    // A state write fails here only because the other shard moved the state on.
    assert!(
        failed.iter().all(|kind| *kind == FailureKind::Conflict),
        "{failed:?}"
    );

    // None missing: every transition of the scenario, whichever shard's reading made it.
    let actions: BTreeMap<&str, usize> = messages.iter().fold(BTreeMap::new(), |mut n, m| {
        *n.entry(m["action"].as_str().unwrap()).or_default() += 1;
        n
    });
    for action in ["opened", "escalated", "repeated", "silent"] {
        assert!(actions.contains_key(action), "no {action}: {summary}");
    }
    let resolved_silence = (
        "resolved".to_owned(),
        scenario::at(scenario::EPISODE_RETURN_SECOND)
            .to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
    );
    assert!(messages.iter().any(|m| page(m) == resolved_silence));
    let hot_resolved = messages
        .iter()
        .any(|m| m["action"] == "resolved" && m["episode_id"].as_str().unwrap().contains("/hot/"));
    assert!(
        hot_resolved,
        "the hot episode was never resolved: {summary}"
    );

    // Doubled only where a write lost a race. The episode the state holds gets every
    // transition after its opening; another opened where a write lost a race to open first,
    // and then closed by the loser, superseded by the one that goes on.
    let superseded: Vec<&serde_json::Value> = messages
        .iter()
        .filter(|m| m.get("superseded_by").is_some())
        .collect();
    for close in &superseded {
        assert_eq!(close["action"], "resolved", "{close}");
        let opened = messages
            .iter()
            .any(|m| m["action"] == "opened" && m["episode_id"] == close["episode_id"]);
        assert!(opened, "a close of an episode no one opened: {close}");
    }
    assert!(superseded.len() <= failed.len(), "{summary}");
    let hot = |m: &&serde_json::Value| {
        m["episode_id"].as_str().unwrap().contains("/hot/") && m.get("superseded_by").is_none()
    };
    let hot_ids: BTreeSet<&str> = messages
        .iter()
        .filter(hot)
        .map(|m| m["episode_id"].as_str().unwrap())
        .collect();
    let followed: BTreeSet<&str> = messages
        .iter()
        .filter(hot)
        .filter(|m| m["action"] != "opened")
        .map(|m| m["episode_id"].as_str().unwrap())
        .collect();
    assert_eq!(followed.len(), 1, "{followed:?}: {summary}");
    assert!(followed.is_subset(&hot_ids), "{summary}");
    let distinct: BTreeSet<String> = messages.iter().map(|m| m.to_string()).collect();
    if failed.is_empty() {
        assert_eq!(hot_ids.len(), 1, "{hot_ids:?}: {summary}");
        assert_eq!(distinct.len(), messages.len(), "{summary}");
        for action in ["opened", "escalated", "silent"] {
            assert_eq!(actions[action], 1, "{action}: {summary}");
        }
    } else {
        assert!(hot_ids.len() <= 1 + failed.len(), "{hot_ids:?}: {summary}");
    }

    // The state holds the newest reading, the silence it resolved and the episode it closed.
    let states = pipeline.ledger.all_states().await.unwrap();
    let [(reactor, stored)] = states.as_slice() else {
        panic!("one reactor's state: {states:?}");
    };
    assert_eq!(reactor, scenario::REACTOR);
    assert_eq!(
        stored.state.last_reading_at,
        scenario::at(scenario::EPISODE_RETURN_SECOND)
    );
    assert_eq!((&stored.state.hot, &stored.state.silent), (&None, &None));
}

/// The reactor's stored state (version and newest reading) each time it is seen changed, read
/// every few milliseconds until the mapping stops.
async fn watch_state(
    store: reactor_monitor::adapters::dynamodb::DynamoDbStore,
    progress: Arc<MappingProgress>,
) -> Vec<(u64, chrono::DateTime<chrono::Utc>)> {
    let mut seen: Vec<(u64, chrono::DateTime<chrono::Utc>)> = Vec::new();
    while !progress.stop.load(Ordering::Relaxed) {
        if let Ok(states) = store.all_states().await {
            for (_, stored) in states {
                let now = (stored.version, stored.state.last_reading_at);
                if seen.last() != Some(&now) {
                    seen.push(now);
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    seen
}
