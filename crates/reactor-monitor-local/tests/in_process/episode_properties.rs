//! Alert episodes as properties over generated scenarios: a few reactors whose temperatures
//! cross the thresholds and the clear level with gaps around the repeat, clear and silence
//! intervals, delivered as Lambda delivers them (batches of any size, replayed, bisected,
//! retried from the lowest reported failure) while the lookup, the state write, the ledger
//! write and both publishes fail now and then. The oracle is `episode::apply` folded over each
//! reactor's readings in reading time, with the silence checks at their times.

mod scripted;
mod shards;

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use chrono::{DateTime, SecondsFormat, TimeDelta, Utc};
use proptest::collection::{btree_map, vec};
use proptest::prelude::*;
use reactor_monitor::adapters::memory::{MemoryAlerts, MemoryDeadLetters, MemoryStore};
use reactor_monitor::domain::episode::{self, EpisodeAction, EpisodePolicy, Notification};
use reactor_monitor::domain::{SequenceNumber, Thresholds};
use reactor_monitor::pipeline::{BatchReport, InboundRecord, Outcome, Pipeline};
use reactor_monitor_local::testing::{episode_scenario, memory_pipeline, reading_at, record_on};

use scripted::{Event, FaultPlan, Faulted, Log, RecordKey, Scripted, Shape};

type ScriptedPipeline = Pipeline<
    Scripted<MemoryStore>,
    Scripted<MemoryStore>,
    Scripted<MemoryAlerts>,
    MemoryDeadLetters,
>;

/// The in-memory pipeline with the episode store and the publishers failing as `plan` says,
/// both noting what happened in one log.
fn scripted_pipeline(plan: FaultPlan) -> ScriptedPipeline {
    let memory = memory_pipeline();
    let log = Log::default();
    Pipeline {
        store: Scripted::new(memory.store, plan.clone(), log.clone()),
        ledger: Scripted::new(memory.ledger, plan.clone(), log.clone()),
        publisher: Scripted::new(memory.publisher, plan, log),
        dead_letters: memory.dead_letters,
        thresholds: memory.thresholds,
        episodes: memory.episodes,
        limits: memory.limits,
    }
}

fn policy() -> EpisodePolicy {
    EpisodePolicy::default()
}

/// Deliveries a scenario may take before the test calls it stuck: faults are finite, so
/// every delivery ends.
const MAX_CALLS: usize = 4_000;

/// Temperatures on both sides of every line: clear level (690), warning (700), emergency (800).
const TEMPS: [f64; 12] = [
    450.0, 600.0, 689.9, 690.0, 695.0, 699.9, 700.0, 750.0, 799.9, 800.0, 850.0, 5_000.0,
];

/// Readings of one reactor at one temperature, `every_s` apart, the first `pause_s` after
/// where the stretch before left off.
#[derive(Debug, Clone)]
struct Stretch {
    pause_s: i64,
    temp: f64,
    readings: usize,
    every_s: i64,
}

/// One batch as the event source mapping hands it over, and how Kinesis repeats it.
#[derive(Debug, Clone, Copy)]
struct Delivery {
    size: usize,
    /// Delivered again whole once settled (at-least-once delivery).
    replayed: bool,
    /// Delivered again in halves once settled (as `BisectBatchOnFunctionError` does).
    bisected: bool,
}

#[derive(Debug, Clone, PartialEq)]
struct Sample {
    reactor: String,
    temp: f64,
    at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq)]
enum Moment {
    Reading(Sample),
    /// The scheduled silence check, at its own clock.
    Check(DateTime<Utc>),
}

#[derive(Debug, Clone)]
struct Scenario {
    reactors: Vec<Vec<Stretch>>,
    /// When the silence checks run, as fractions of the readings' span plus ten minutes.
    checks: Vec<f64>,
    deliveries: Vec<Delivery>,
    faults: FaultPlan,
}

fn reactor_name(i: usize) -> String {
    format!("reactor-{}", (b'a' + i as u8) as char)
}

/// Each reactor's readings, in reading time.
fn samples(reactors: &[Vec<Stretch>]) -> Vec<Vec<Sample>> {
    reactors
        .iter()
        .enumerate()
        .map(|(i, stretches)| {
            let mut at = episode_scenario::start() + TimeDelta::seconds(i as i64 * 7);
            let mut out = Vec::new();
            for stretch in stretches {
                at += TimeDelta::seconds(stretch.pause_s);
                for _ in 0..stretch.readings {
                    out.push(Sample {
                        reactor: reactor_name(i),
                        temp: stretch.temp,
                        at,
                    });
                    at += TimeDelta::seconds(stretch.every_s);
                }
            }
            out
        })
        .collect()
}

impl Scenario {
    /// The readings of every reactor in reading time (one shard), with the silence checks
    /// whose verdict does not depend on how far the stored state lags the newest reading.
    fn timeline(&self) -> Vec<Moment> {
        let mut readings: Vec<Sample> = samples(&self.reactors).concat();
        readings.sort_by_key(|s| s.at);
        let (first, last) = (readings[0].at, readings[readings.len() - 1].at);
        let span = (last - first + TimeDelta::minutes(10)).num_seconds() as f64;
        let mut moments: Vec<(DateTime<Utc>, Moment)> = readings
            .into_iter()
            .map(|s| (s.at, Moment::Reading(s)))
            .collect();
        for fraction in &self.checks {
            let at = first + TimeDelta::seconds((span * fraction) as i64);
            if decisive(&moments, at) {
                // After the readings of that very instant: they were heard.
                let position = moments.partition_point(|(t, _)| *t <= at);
                moments.insert(position, (at, Moment::Check(at)));
            }
        }
        moments.into_iter().map(|(_, m)| m).collect()
    }
}

/// Whether a silence check at `at` finds the same reactors silent from the stored states as
/// from the newest readings: the stored `last_reading_at` lags the newest reading by less than
/// `last_reading_resolution` (`episode::needs_write`), so a reactor quiet for a time within
/// that much of `silent_after` may go either way.
fn decisive(moments: &[(DateTime<Utc>, Moment)], at: DateTime<Utc>) -> bool {
    let policy = policy();
    let mut newest: HashMap<&str, DateTime<Utc>> = HashMap::new();
    for (t, moment) in moments.iter().take_while(|(t, _)| *t <= at) {
        if let Moment::Reading(s) = moment {
            newest.insert(&s.reactor, *t);
        }
    }
    newest.values().all(|last| {
        let quiet = at - *last;
        quiet >= policy.silent_after
            || quiet < policy.silent_after - policy.last_reading_resolution()
    })
}

/// What on-call should get: `episode::apply` over each reactor's readings in reading time,
/// `episode::check_silence` at each check.
fn oracle(timeline: &[Moment]) -> Vec<Notification> {
    let (thresholds, policy) = (Thresholds::default(), policy());
    let mut states = BTreeMap::new();
    let mut out = Vec::new();
    for moment in timeline {
        match moment {
            Moment::Reading(s) => {
                let step = episode::apply(
                    states.get(&s.reactor),
                    &s.reactor,
                    s.temp,
                    s.at,
                    &thresholds,
                    &policy,
                );
                out.extend(step.notifications);
                states.insert(s.reactor.clone(), step.state);
            }
            Moment::Check(at) => {
                for (reactor, state) in states.iter_mut() {
                    if let Some((next, n)) = episode::check_silence(state, reactor, *at, &policy) {
                        out.push(n);
                        *state = next;
                    }
                }
            }
        }
    }
    out
}

fn stamp(at: &DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Millis, true)
}

fn is_silent_episode(n: &Notification) -> bool {
    n.episode_id.contains("/silent/")
}

/// A published notification as the oracle would state it. A silent episode is found from the
/// stored state, whose newest reading lags the true newest by less than
/// `last_reading_resolution`: its id, first reading (and, for `silent`, the last reading
/// heard) are those of the stored state. Checked here, then replaced by the oracle's.
fn as_oracle_states_it(
    published: &Notification,
    expected: &[Notification],
) -> Result<Notification, TestCaseError> {
    if !is_silent_episode(published) {
        return Ok(published.clone());
    }
    prop_assert_eq!(
        &published.episode_id,
        &format!(
            "{}/silent/{}",
            published.reactor,
            stamp(&published.first_reading_at)
        )
    );
    let lag = policy().last_reading_resolution();
    let Some(oracle) = expected.iter().find(|e| {
        is_silent_episode(e)
            && e.reactor == published.reactor
            && e.action == published.action
            && e.first_reading_at - lag < published.first_reading_at
            && published.first_reading_at <= e.first_reading_at
    }) else {
        return Ok(published.clone());
    };
    let mut n = published.clone();
    n.episode_id = oracle.episode_id.clone();
    n.first_reading_at = oracle.first_reading_at;
    if n.action == EpisodeAction::Silent {
        prop_assert_eq!(published.last_reading_at, published.first_reading_at);
        n.last_reading_at = oracle.last_reading_at;
        n.last_c = oracle.last_c;
        n.peak_c = oracle.peak_c;
    }
    Ok(n)
}

fn json(n: &Notification) -> String {
    serde_json::to_string(n).expect("a notification serializes")
}

/// Every notification the oracle expects was published, and nothing else.
fn assert_notifications(log: &[Event], expected: &[Notification]) -> Result<(), TestCaseError> {
    let mut got = BTreeSet::new();
    for event in log {
        if let Event::Notified(n) = event {
            got.insert(json(&as_oracle_states_it(n, expected)?));
        }
    }
    let want: BTreeSet<String> = expected.iter().map(json).collect();
    let missing: Vec<&String> = want.difference(&got).collect();
    let extra: Vec<&String> = got.difference(&want).collect();
    prop_assert!(
        missing.is_empty() && extra.is_empty(),
        "missing {:#?}\nextra {:#?}",
        missing,
        extra
    );
    Ok(())
}

/// A notification is published again only after a state write of its reactor failed since
/// its last publish: a duplicate page, and only where the contract allows one.
fn assert_republished_only_after_failed_state_writes(log: &[Event]) -> Result<(), TestCaseError> {
    let mut last: HashMap<String, usize> = HashMap::new();
    for (i, event) in log.iter().enumerate() {
        let Event::Notified(n) = event else { continue };
        let key = json(n);
        if let Some(&before) = last.get(&key) {
            let failed = log[before..i]
                .iter()
                .any(|e| matches!(e, Event::StateWriteFailed(r) if *r == n.reactor));
            prop_assert!(
                failed,
                "{:?} {} published again with no failed state write of {} since (events {} and {})",
                n.action,
                n.episode_id,
                n.reactor,
                before,
                i
            );
        }
        last.insert(key, i);
    }
    Ok(())
}

/// A reactor's stored state never goes back: each write's newest reading is at least the
/// last one's.
fn assert_no_rollback(log: &[Event]) -> Result<(), TestCaseError> {
    let mut newest: HashMap<&str, DateTime<Utc>> = HashMap::new();
    for event in log {
        if let Event::StateWritten(reactor, state) = event {
            let at = state.last_reading_at;
            if let Some(before) = newest.insert(reactor, at) {
                prop_assert!(
                    before <= at,
                    "{} went back from {} to {}",
                    reactor,
                    before,
                    at
                );
            }
        }
    }
    Ok(())
}

/// Every hot reading's alert was published; again only after its ledger record failed.
fn assert_alerts(log: &[Event], hot: &BTreeSet<RecordKey>) -> Result<(), TestCaseError> {
    let mut last: HashMap<&RecordKey, usize> = HashMap::new();
    for (i, event) in log.iter().enumerate() {
        let Event::Alerted(key) = event else { continue };
        prop_assert!(hot.contains(key), "{:?} is no hot reading", key);
        if let Some(&before) = last.get(key) {
            let unrecorded = log[before..i]
                .iter()
                .any(|e| matches!(e, Event::LedgerWriteFailed(k) if k == key));
            prop_assert!(
                unrecorded,
                "the alert of {:?} published again though its ledger record was written",
                key
            );
        }
        last.insert(key, i);
    }
    let missing: Vec<&RecordKey> = hot.iter().filter(|k| !last.contains_key(k)).collect();
    prop_assert!(missing.is_empty(), "alerts never published: {:?}", missing);
    Ok(())
}

/// Runs deliveries on a pipeline as the event source mapping does, checking each report
/// against what really happened during its call.
struct Mapping<'p> {
    pipeline: &'p ScriptedPipeline,
    calls: usize,
}

impl Mapping<'_> {
    fn log(&self) -> Vec<Event> {
        self.pipeline.ledger.log.lock().unwrap().clone()
    }

    /// One invocation. The report says what happened: an alert reported published now was
    /// published by this call and only then; a reactor whose state write failed has all its
    /// records reported for retry.
    async fn invoke(&mut self, records: Vec<InboundRecord>) -> Result<BatchReport, TestCaseError> {
        self.calls += 1;
        prop_assert!(
            self.calls <= MAX_CALLS,
            "no progress after {} calls",
            self.calls
        );
        let before = self.pipeline.ledger.log.lock().unwrap().len();
        let report = self.pipeline.process(records, None).await;
        let during = self.log().split_off(before);
        let alerted: HashSet<&RecordKey> = during
            .iter()
            .filter_map(|e| match e {
                Event::Alerted(k) => Some(k),
                _ => None,
            })
            .collect();
        let unwritten: HashSet<&str> = during
            .iter()
            .filter_map(|e| match e {
                Event::StateWriteFailed(r) => Some(r.as_str()),
                _ => None,
            })
            .collect();
        for r in &report.records {
            let key = (r.origin.shard_id.clone(), r.origin.sequence_number.clone());
            if let Outcome::StoredAndAlerted { published_now, .. } = r.outcome {
                prop_assert_eq!(published_now, alerted.contains(&key), "{:?}", key);
            }
            let reactor = r.reading.as_ref().map(|reading| reading.reactor.as_str());
            if reactor.is_some_and(|reactor| unwritten.contains(reactor)) {
                prop_assert!(r.is_failure(), "{:?}: its state was not written", key);
            }
        }
        Ok(report)
    }

    /// Delivers until nothing is reported: from the lowest reported failure, or in halves
    /// when the invocation fails as a whole (bisect on function error).
    async fn settle(&mut self, mut records: Vec<InboundRecord>) -> Result<(), TestCaseError> {
        loop {
            let report = self.invoke(records.clone()).await?;
            if report.invocation_failure().is_some() && records.len() > 1 {
                let right = records.split_off(records.len() / 2);
                Box::pin(self.settle(records)).await?;
                return Box::pin(self.settle(right)).await;
            }
            let Some(lowest) = report.failed_sequence_numbers().first().cloned() else {
                return Ok(());
            };
            records.retain(|r| r.origin.sequence_number >= lowest);
        }
    }

    async fn deliver(
        &mut self,
        records: Vec<InboundRecord>,
        how: Delivery,
    ) -> Result<(), TestCaseError> {
        self.settle(records.clone()).await?;
        if how.replayed {
            self.settle(records.clone()).await?;
        }
        if how.bisected && records.len() > 1 {
            let (left, right) = records.split_at(records.len() / 2);
            self.settle(left.to_vec()).await?;
            self.settle(right.to_vec()).await?;
        }
        Ok(())
    }

    /// The scheduled check at `at`, run again until it reports no failure.
    async fn check_silence(&mut self, at: DateTime<Utc>) -> Result<(), TestCaseError> {
        let (p, policy) = (self.pipeline, policy());
        for _ in 0..20 {
            let report = reactor_monitor::silence::check(&p.ledger, &p.publisher, &policy, at);
            if report.await.is_ok_and(|r| r.failures.is_empty()) {
                return Ok(());
            }
        }
        Err(TestCaseError::fail("the silence check never succeeded"))
    }
}

const SHARD: &str = "shardId-000000000000";

fn block_on<F: std::future::Future>(future: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap()
        .block_on(future)
}

/// Runs a scenario on one shard; returns the log and the hot readings' keys.
async fn run(s: &Scenario) -> Result<(Vec<Event>, BTreeSet<RecordKey>), TestCaseError> {
    let pipeline = scripted_pipeline(s.faults.clone());
    let mut mapping = Mapping {
        pipeline: &pipeline,
        calls: 0,
    };
    let mut hot = BTreeSet::new();
    let mut seq = 0u64;
    let mut pending: Vec<InboundRecord> = Vec::new();
    let mut deliveries = s.deliveries.iter().cycle();
    let timeline = s.timeline();
    for moment in timeline.iter().map(Some).chain([None]) {
        if let Some(Moment::Reading(r)) = moment {
            seq += 1;
            if r.temp >= Thresholds::default().warning() {
                hot.insert((SHARD.to_owned(), SequenceNumber::new(seq.to_string())));
            }
            pending.push(record_on(SHARD, seq, reading_at(&r.reactor, r.temp, r.at)));
            continue;
        }
        // A check or the end: what was heard before is delivered first, in batches.
        while !pending.is_empty() {
            let how = *deliveries.next().expect("deliveries cycle");
            let rest = pending.split_off(how.size.min(pending.len()));
            mapping
                .deliver(std::mem::replace(&mut pending, rest), how)
                .await?;
        }
        if let Some(Moment::Check(at)) = moment {
            mapping.check_silence(*at).await?;
        }
    }
    let stored = pipeline.store.inner.readings.lock().unwrap().len();
    prop_assert_eq!(stored as u64, seq, "every reading is stored");
    Ok((mapping.log(), hot))
}

fn stretch() -> impl Strategy<Value = Stretch> {
    (
        prop_oneof![6 => Just(0i64), 1 => 240..420i64, 1 => 840..960i64],
        prop::sample::select(TEMPS.to_vec()),
        1..7usize,
        prop_oneof![3 => 5..60i64, 2 => 60..200i64],
    )
        .prop_map(|(pause_s, temp, readings, every_s)| Stretch {
            pause_s,
            temp,
            readings,
            every_s,
        })
}

fn delivery(max_size: usize) -> impl Strategy<Value = Delivery> {
    (
        1..=max_size,
        prop::bool::weighted(0.2),
        prop::bool::weighted(0.2),
    )
        .prop_map(|(size, replayed, bisected)| Delivery {
            size,
            replayed,
            bisected,
        })
}

/// Faults of the given kinds: each kind fails a few of its first 12 calls, whole, or in one
/// entry where its calls carry several items and the kind says so.
fn faults(kinds: &'static [(Faulted, Entries)]) -> impl Strategy<Value = FaultPlan> {
    let calls = |entries: Entries| {
        let shape = match entries {
            Entries::Fail => {
                prop_oneof![Just(Shape::Whole), any::<usize>().prop_map(Shape::Entry)].boxed()
            }
            Entries::Pass => Just(Shape::Whole).boxed(),
        };
        btree_map(0..12usize, shape, 0..4)
    };
    kinds
        .iter()
        .map(|&(_, entries)| calls(entries))
        .collect::<Vec<_>>()
        .prop_map(move |calls| kinds.iter().map(|(k, _)| *k).zip(calls).collect())
}

/// Whether a kind of call may fail in one entry only, or fails whole.
#[derive(Debug, Clone, Copy)]
enum Entries {
    Fail,
    Pass,
}

fn scenario(
    kinds: &'static [(Faulted, Entries)],
    max_size: usize,
) -> impl Strategy<Value = Scenario> {
    (
        vec(vec(stretch(), 1..8), 1..4),
        vec(0.0..1.0f64, 0..4),
        vec(delivery(max_size), 1..12),
        prop_oneof![1 => Just(FaultPlan::new()), 3 => faults(kinds)],
    )
        .prop_map(|(reactors, checks, deliveries, faults)| Scenario {
            reactors,
            checks,
            deliveries,
            faults,
        })
}

/// Every notification was published once.
fn assert_published_once(log: &[Event]) -> Result<(), TestCaseError> {
    let mut seen = HashSet::new();
    for event in log {
        if let Event::Notified(n) = event {
            prop_assert!(seen.insert(json(n)), "published twice: {:#?}", n);
        }
    }
    Ok(())
}

/// Batches of at most this many readings, with at most three reactors, make at most ten
/// notices (a reading that ends a silence and opens an episode makes two): one on-call
/// PublishBatch, so that a whole failed call fails every notice of each reactor.
const ONE_NOTIFY_CALL: usize = 7;

/// Faults that write no state: the lookup, the ledger's records, the alert publish (whole or
/// one entry) and the on-call publish (whole calls).
const NO_STATE_WRITE_FAULT: &[(Faulted, Entries)] = &[
    (Faulted::Lookup, Entries::Pass),
    (Faulted::LedgerWrite, Entries::Fail),
    (Faulted::AlertPublish, Entries::Fail),
    (Faulted::OnCallPublish, Entries::Pass),
];

/// The same with state writes failing too; the on-call publish does not fail here, so that
/// batches can be large (several PublishBatch calls of on-call notices).
const STATE_WRITE_FAULTS: &[(Faulted, Entries)] = &[
    (Faulted::Lookup, Entries::Pass),
    (Faulted::StateWrite, Entries::Pass),
    (Faulted::LedgerWrite, Entries::Fail),
    (Faulted::AlertPublish, Entries::Fail),
];

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn replays_bisects_retries_and_faults_outside_the_state_write_page_each_transition_once(
        s in scenario(NO_STATE_WRITE_FAULT, ONE_NOTIFY_CALL),
    ) {
        let expected = oracle(&s.timeline());
        let (log, hot) = block_on(run(&s))?;
        assert_notifications(&log, &expected)?;
        assert_published_once(&log)?;
        assert_no_rollback(&log)?;
        assert_alerts(&log, &hot)?;
    }

    #[test]
    fn a_page_is_published_again_only_after_its_state_write_failed(
        s in scenario(STATE_WRITE_FAULTS, 30),
    ) {
        let expected = oracle(&s.timeline());
        let (log, hot) = block_on(run(&s))?;
        assert_notifications(&log, &expected)?;
        assert_republished_only_after_failed_state_writes(&log)?;
        assert_no_rollback(&log)?;
        assert_alerts(&log, &hot)?;
    }
}

const ON_CALL_ENTRY_FAULTS: &[(Faulted, Entries)] = &[(Faulted::OnCallPublish, Entries::Fail)];
const ON_CALL_CALL_FAULTS: &[(Faulted, Entries)] = &[(Faulted::OnCallPublish, Entries::Pass)];

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn an_on_call_publish_failing_in_one_entry_pages_each_transition_once(
        s in scenario(ON_CALL_ENTRY_FAULTS, 30),
    ) {
        let expected = oracle(&s.timeline());
        let (log, _) = block_on(run(&s))?;
        assert_notifications(&log, &expected)?;
        assert_published_once(&log)?;
    }

    #[test]
    fn on_call_publish_calls_failing_whole_page_each_transition_once(
        s in scenario(ON_CALL_CALL_FAULTS, 30),
    ) {
        let expected = oracle(&s.timeline());
        let (log, _) = block_on(run(&s))?;
        assert_notifications(&log, &expected)?;
        assert_published_once(&log)?;
    }
}

#[tokio::test]
async fn a_reactor_whose_notices_straddle_two_publish_calls_is_paged_once() {
    let plan: FaultPlan = [(Faulted::OnCallPublish, [(1, Shape::Whole)].into())].into();
    let pipeline = scripted_pipeline(plan);
    let at = |s| episode_scenario::at(s);
    let mut records: Vec<InboundRecord> = (0..10u64)
        .map(|i| record_on(SHARD, i + 1, reading_at(&format!("r{i:02}"), 750.0, at(0))))
        .collect();
    records.push(record_on(SHARD, 11, reading_at("r09", 850.0, at(1))));
    let mut mapping = Mapping {
        pipeline: &pipeline,
        calls: 0,
    };
    mapping.settle(records).await.unwrap();
    let log = mapping.log();
    for e in &log {
        if let Event::Notified(n) = e {
            eprintln!("{} {:?}", n.reactor, n.action);
        }
    }
    let notified = log
        .iter()
        .filter(|e| matches!(e, Event::Notified(_)))
        .count();
    assert_eq!(notified, 11);
}

#[tokio::test]
async fn an_on_call_entry_refused_pages_the_other_transitions_of_its_reactor_once() {
    let plan: FaultPlan = [(Faulted::OnCallPublish, [(0, Shape::Entry(0))].into())].into();
    let pipeline = scripted_pipeline(plan);
    let at = |s| episode_scenario::at(s);
    let records = vec![
        record_on(SHARD, 1, reading_at("reactor-1", 750.0, at(0))),
        record_on(SHARD, 2, reading_at("reactor-1", 600.0, at(5))),
        record_on(SHARD, 3, reading_at("reactor-1", 600.0, at(305))),
    ];
    let mut mapping = Mapping {
        pipeline: &pipeline,
        calls: 0,
    };
    mapping.settle(records).await.unwrap();
    let got: Vec<(EpisodeAction, DateTime<Utc>)> = mapping
        .log()
        .iter()
        .filter_map(|e| match e {
            Event::Notified(n) => Some((n.action, n.last_reading_at)),
            _ => None,
        })
        .collect();
    assert_eq!(
        got,
        vec![
            (EpisodeAction::Opened, at(0)),
            (EpisodeAction::Resolved, at(305))
        ]
    );
}

#[tokio::test]
async fn a_shard_that_loses_the_race_closes_the_episode_it_opened_for_the_one_that_goes_on() {
    let mut pipeline = scripted_pipeline(FaultPlan::new());
    pipeline.ledger.yield_after_lookup = true;
    let at = |s| episode_scenario::at(s);
    // Both shards read no state, open an episode each and race to write it.
    let first = vec![record_on(SHARD, 1, reading_at("reactor-1", 750.0, at(0)))];
    let second = vec![record_on(
        "shardId-000000000001",
        1,
        reading_at("reactor-1", 760.0, at(50)),
    )];
    let (a, b) = tokio::join!(
        pipeline.process(first, None),
        pipeline.process(second, None)
    );
    let lost = [&a, &b]
        .iter()
        .filter(|r| !r.failed_sequence_numbers().is_empty())
        .count();
    assert_eq!(lost, 1, "one write wins, the other is refused");
    let stored = pipeline.ledger.inner.episodes.lock().unwrap()["reactor-1"]
        .state
        .clone();
    let going_on = stored.hot.expect("an open episode").id;
    let pages: Vec<Notification> = pipeline
        .ledger
        .log
        .lock()
        .unwrap()
        .iter()
        .filter_map(|e| match e {
            Event::Notified(n) => Some(n.clone()),
            _ => None,
        })
        .collect();
    let opened: Vec<&Notification> = pages
        .iter()
        .filter(|n| n.action == EpisodeAction::Opened)
        .collect();
    assert_eq!(opened.len(), 2, "{pages:?}");
    let orphan = opened
        .iter()
        .find(|n| n.episode_id != going_on)
        .expect("the loser's episode");
    let closes: Vec<&Notification> = pages
        .iter()
        .filter(|n| n.action == EpisodeAction::Resolved)
        .collect();
    assert_eq!(closes.len(), 1, "{pages:?}");
    assert_eq!(closes[0].episode_id, orphan.episode_id);
    assert_eq!(closes[0].superseded_by.as_deref(), Some(going_on.as_str()));
}
