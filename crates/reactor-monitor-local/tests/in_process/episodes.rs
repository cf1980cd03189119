//! Alert episodes through the pipeline on in-memory adapters: the on-call scenario, replays,
//! bisected and partial deliveries, and faults of the state writes and the on-call publish.

use chrono::{DateTime, Utc};
use reactor_monitor::domain::Severity;
use reactor_monitor::domain::episode::{EpisodeAction, EpisodePolicy, Notification};
use reactor_monitor_local::testing::episode_scenario as scenario;
use reactor_monitor_local::testing::{MemoryPipeline, batch, memory_pipeline, record};

fn notified(pipeline: &MemoryPipeline) -> Vec<Notification> {
    pipeline.publisher.notified.lock().unwrap().clone()
}

fn actions(notes: &[Notification]) -> Vec<(EpisodeAction, DateTime<Utc>)> {
    notes
        .iter()
        .map(|n| (n.action, n.last_reading_at))
        .collect()
}

fn expected() -> Vec<(EpisodeAction, DateTime<Utc>)> {
    scenario::EXPECTED
        .iter()
        .map(|&(a, s)| (a, scenario::at(s)))
        .collect()
}

/// Feeds the scenario in batches of `size`, each delivered as `deliver` says; runs the silence
/// check; then the reading after the silence.
async fn run(pipeline: &MemoryPipeline, size: usize, deliver: impl AsyncDeliver) {
    let records = batch(scenario::heard());
    for chunk in records.chunks(size) {
        deliver.deliver(pipeline, chunk.to_vec()).await;
    }
    check_silence(pipeline).await;
    let back = record(
        1_000_000,
        scenario::payload(scenario::EPISODE_RETURN_SECOND),
    );
    deliver.deliver(pipeline, vec![back]).await;
}

async fn check_silence(pipeline: &MemoryPipeline) {
    reactor_monitor::silence::check(
        &pipeline.ledger,
        &pipeline.publisher,
        &EpisodePolicy::default(),
        scenario::at(scenario::SILENCE_CHECK_SECOND),
    )
    .await
    .expect("the states are read");
}

trait AsyncDeliver {
    async fn deliver(
        &self,
        pipeline: &MemoryPipeline,
        records: Vec<reactor_monitor::pipeline::InboundRecord>,
    );
}

/// Lambda's rule: deliver, then again from the lowest reported failure until none is left.
struct UntilDone;

impl AsyncDeliver for UntilDone {
    async fn deliver(
        &self,
        pipeline: &MemoryPipeline,
        mut records: Vec<reactor_monitor::pipeline::InboundRecord>,
    ) {
        for _ in 0..10 {
            let report = pipeline.process(records.clone(), None).await;
            let Some(lowest) = report.failed_sequence_numbers().first().cloned() else {
                return;
            };
            records.retain(|r| r.origin.sequence_number >= lowest);
        }
        panic!("no progress after 10 deliveries");
    }
}

/// Every batch twice (a replay), then in halves (bisect), then whole again.
struct Replayed;

impl AsyncDeliver for Replayed {
    async fn deliver(
        &self,
        pipeline: &MemoryPipeline,
        records: Vec<reactor_monitor::pipeline::InboundRecord>,
    ) {
        UntilDone.deliver(pipeline, records.clone()).await;
        UntilDone.deliver(pipeline, records.clone()).await;
        let (left, right) = records.split_at(records.len() / 2);
        UntilDone.deliver(pipeline, left.to_vec()).await;
        UntilDone.deliver(pipeline, right.to_vec()).await;
    }
}

#[tokio::test]
async fn a_hot_reactor_pages_once_per_transition_not_per_reading() {
    let pipeline = memory_pipeline();
    run(&pipeline, 100, UntilDone).await;

    let notes = notified(&pipeline);
    assert_eq!(actions(&notes), expected());
    assert_eq!(notes[0].severity, Severity::Warning);
    assert_eq!(
        (notes[1].severity, notes[1].peak_c),
        (Severity::Warning, 750.0)
    );
    assert_eq!(
        (notes[2].severity, notes[2].peak_c),
        (Severity::Emergency, 850.0)
    );
    assert_eq!(notes[3].last_c, 600.0);
    let hot_id = "reactor-7/hot/2026-11-01T00:02:00.000Z";
    assert!(
        notes[..4].iter().all(|n| n.episode_id == hot_id),
        "{notes:?}"
    );
    assert_eq!(notes[4].episode_id, notes[5].episode_id);
    assert_ne!(notes[4].episode_id, hot_id);
    assert!(
        notes
            .iter()
            .all(|n| n.first_reading_at <= n.last_reading_at)
    );
}

#[tokio::test]
async fn replayed_and_bisected_batches_page_exactly_as_once() {
    let pipeline = memory_pipeline();
    run(&pipeline, 100, Replayed).await;
    assert_eq!(actions(&notified(&pipeline)), expected());
}

#[tokio::test]
async fn batches_delivered_newest_first_never_roll_the_episode_back() {
    let pipeline = memory_pipeline();
    let records = batch(scenario::heard());
    let at = scenario::index;
    let later = scenario::ESCALATED_SECOND + 100;
    // 10 minutes in order open the episode; then a later batch, then an older one again.
    pipeline.process(records[..at(600)].to_vec(), None).await;
    pipeline
        .process(records[at(later)..at(later + 100)].to_vec(), None)
        .await;
    pipeline
        .process(records[at(600)..at(700)].to_vec(), None)
        .await;
    let notes = notified(&pipeline);
    assert_eq!(
        actions(&notes),
        vec![
            (EpisodeAction::Opened, scenario::at(scenario::OPENED_SECOND)),
            (EpisodeAction::Escalated, scenario::at(later)),
        ]
    );
}

#[tokio::test]
async fn a_failed_state_write_still_pages_and_the_retry_pages_at_most_once_more() {
    let pipeline = memory_pipeline();
    pipeline.ledger.episode_faults.fail_next_calls(1);
    let records = batch(scenario::heard());
    let opening = &records[..scenario::index(scenario::OPENED_SECOND + 60)];
    let report = pipeline.process(opening.to_vec(), None).await;

    assert_eq!(
        actions(&notified(&pipeline)),
        vec![(EpisodeAction::Opened, scenario::at(scenario::OPENED_SECOND))]
    );
    assert_eq!(
        report.failed_sequence_numbers().len(),
        opening.len(),
        "the reactor's records are retried"
    );
    UntilDone.deliver(&pipeline, opening.to_vec()).await;
    let notes = notified(&pipeline);
    assert_eq!(
        notes.len(),
        2,
        "a duplicate, never a missing page: {notes:?}"
    );
    assert_eq!(notes[0], notes[1]);
}

#[tokio::test]
async fn a_failed_on_call_publish_keeps_the_state_before_its_reading_and_the_retry_pages_once() {
    let pipeline = memory_pipeline();
    pipeline.publisher.notify_faults.fail_next_calls(1);
    let records = batch(scenario::heard());
    let opened = scenario::index(scenario::OPENED_SECOND);
    let opening = &records[..scenario::index(scenario::OPENED_SECOND + 60)];
    let report = pipeline.process(opening.to_vec(), None).await;
    assert!(notified(&pipeline).is_empty());
    // The readings before the one that opened the episode are done; it and the later ones
    // are retried.
    let failed: Vec<_> = report.failed_sequence_numbers();
    let expected: Vec<_> = opening[opened..]
        .iter()
        .map(|r| r.origin.sequence_number.clone())
        .collect();
    assert_eq!(failed, expected);
    let states = pipeline.ledger.episodes.lock().unwrap().clone();
    let state = &states.values().next().expect("the reactor's state").state;
    assert!(state.hot.is_none());
    assert_eq!(
        state.last_reading_at,
        scenario::at(scenario::OPENED_SECOND - scenario::STEP_SECONDS)
    );

    UntilDone.deliver(&pipeline, opening.to_vec()).await;
    assert_eq!(
        actions(&notified(&pipeline)),
        vec![(EpisodeAction::Opened, scenario::at(scenario::OPENED_SECOND))]
    );
}

#[tokio::test]
async fn hot_readings_inside_an_episode_are_suppressed_on_their_records() {
    let pipeline = memory_pipeline();
    let opened = scenario::index(scenario::OPENED_SECOND);
    let report = pipeline
        .process(batch(scenario::heard()[opened..opened + 3].to_vec()), None)
        .await;
    let actions: Vec<_> = report.records.iter().map(|r| r.episode).collect();
    assert_eq!(
        actions,
        vec![
            Some(EpisodeAction::Opened),
            Some(EpisodeAction::Suppressed),
            Some(EpisodeAction::Suppressed)
        ]
    );
}
