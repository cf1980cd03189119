//! One reactor's readings on two shards: each shard in order, the two interleaved at random,
//! sometimes invoked at the same time, so that both read one state and race to write it.
//!
//! The contract (DESIGN §7, `episode::apply`): a batch's readings of a reactor are applied in
//! reading time to its stored state, and a reading older than the state's newest is ignored,
//! even a hot one (its alert still goes out on the alert topic). A state is written when its
//! episode changes (`episode::needs_write`), conditionally: a write that lost a race is
//! refused and its records are retried against the newer state.

use std::collections::{BTreeMap, HashSet, VecDeque};

use proptest::collection::vec;
use proptest::prelude::*;
use reactor_monitor::domain::episode::{self, EpisodeAction, Notification, ReactorState};
use reactor_monitor::domain::{Reading, SequenceNumber, Thresholds};
use reactor_monitor::pipeline::{BatchReport, InboundRecord};
use reactor_monitor_local::testing::{reading_at, record_on};

use super::scripted::{Event, FaultPlan, Faulted, RecordKey};
use super::{
    Entries, ONE_NOTIFY_CALL, ScriptedPipeline, Stretch, assert_alerts, assert_no_rollback,
    assert_republished_only_after_failed_state_writes, block_on, faults, policy, samples,
    scripted_pipeline, stretch,
};

const SHARDS: [&str; 2] = ["shardId-000000000000", "shardId-000000000001"];
const REACTOR: &str = "reactor-a";

/// Which shard's next invocation runs: one of them, or both at once.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Turn {
    First,
    Second,
    Both,
}

#[derive(Debug, Clone)]
struct TwoShards {
    stretches: Vec<Stretch>,
    /// The shard of each reading (cycled): `true` for the second.
    on_second: Vec<bool>,
    /// Batch sizes, cycled, each shard cut apart.
    sizes: Vec<usize>,
    turns: Vec<Turn>,
    faults: FaultPlan,
}

impl TwoShards {
    /// Each shard's batches, and the hot readings' keys.
    fn batches(&self) -> ([VecDeque<Vec<InboundRecord>>; 2], Vec<RecordKey>) {
        let mut records: [Vec<InboundRecord>; 2] = Default::default();
        let mut hot = Vec::new();
        let readings = samples(std::slice::from_ref(&self.stretches)).concat();
        for (s, second) in readings.iter().zip(self.on_second.iter().cycle()) {
            let shard = usize::from(*second);
            let seq = records[shard].len() as u64 + 1;
            if s.temp >= Thresholds::default().warning() {
                hot.push((
                    SHARDS[shard].to_owned(),
                    SequenceNumber::new(seq.to_string()),
                ));
            }
            let data = reading_at(&s.reactor, s.temp, s.at);
            records[shard].push(record_on(SHARDS[shard], seq, data));
        }
        let mut sizes = self.sizes.iter().cycle();
        let batches = records.map(|mut rest| {
            let mut batches = VecDeque::new();
            while !rest.is_empty() {
                let size = (*sizes.next().expect("sizes cycle")).min(rest.len());
                let tail = rest.split_off(size);
                batches.push_back(std::mem::replace(&mut rest, tail));
            }
            batches
        });
        (batches, hot)
    }
}

/// A shard as the event source mapping reads it: the batch in flight (what is left of it
/// after a partial failure, or its left half after a failed invocation), then the next ones.
struct Cursor {
    batches: VecDeque<Vec<InboundRecord>>,
    in_flight: Option<Vec<InboundRecord>>,
}

impl Cursor {
    fn next(&mut self) -> Option<Vec<InboundRecord>> {
        if self.in_flight.is_none() {
            self.in_flight = self.batches.pop_front();
        }
        self.in_flight.clone()
    }

    fn answered(&mut self, report: &BatchReport) {
        let mut records = self.in_flight.take().expect("a batch was in flight");
        if report.invocation_failure().is_some() && records.len() > 1 {
            self.batches
                .push_front(records.split_off(records.len() / 2));
            self.in_flight = Some(records);
        } else if let Some(lowest) = report.failed_sequence_numbers().first() {
            records.retain(|r| r.origin.sequence_number >= *lowest);
            self.in_flight = Some(records);
        }
    }
}

/// One invocation: its records and the events it caused.
struct Call {
    records: Vec<InboundRecord>,
    events: Vec<Event>,
    stored_after: Option<ReactorState>,
}

/// Runs the shards turn by turn until both are drained; returns every invocation made.
async fn run(s: &TwoShards, pipeline: &ScriptedPipeline) -> Result<Vec<Call>, TestCaseError> {
    let (batches, _) = s.batches();
    let mut cursors = batches.map(|batches| Cursor {
        batches,
        in_flight: None,
    });
    let mut turns = s.turns.iter().cycle();
    let mut calls = Vec::new();
    let log_len = || pipeline.ledger.log.lock().unwrap().len();
    let stored = || {
        let states = pipeline.ledger.inner.episodes.lock().unwrap();
        states.get(REACTOR).map(|v| v.state.clone())
    };
    loop {
        prop_assert!(calls.len() <= super::MAX_CALLS, "no progress");
        let next = [cursors[0].next(), cursors[1].next()];
        let turn = *turns.next().expect("turns cycle");
        let before = log_len();
        let ran: Vec<(usize, Vec<InboundRecord>, BatchReport)> = match next {
            [None, None] => break,
            [Some(a), Some(b)] if turn == Turn::Both => {
                let (ra, rb) = tokio::join!(
                    pipeline.process(a.clone(), None),
                    pipeline.process(b.clone(), None)
                );
                vec![(0, a, ra), (1, b, rb)]
            }
            [Some(a), b] if turn != Turn::Second || b.is_none() => {
                let report = pipeline.process(a.clone(), None).await;
                vec![(0, a, report)]
            }
            [_, Some(b)] => {
                let report = pipeline.process(b.clone(), None).await;
                vec![(1, b, report)]
            }
            [Some(_), None] => unreachable!("the first shard runs when the second has nothing"),
        };
        let events = pipeline.ledger.log.lock().unwrap()[before..].to_vec();
        let concurrent = ran.len() > 1;
        for (shard, records, report) in ran {
            cursors[shard].answered(&report);
            calls.push(Call {
                records,
                events: if concurrent {
                    Vec::new()
                } else {
                    events.clone()
                },
                stored_after: stored(),
            });
        }
    }
    Ok(calls)
}

fn notified(events: &[Event]) -> Vec<Notification> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::Notified(n) => Some(n.clone()),
            _ => None,
        })
        .collect()
}

/// The readings of a call, in reading time (then in the order they came), as the pipeline
/// applies them.
fn in_reading_time(records: &[InboundRecord]) -> Vec<Reading> {
    let mut readings: Vec<Reading> = records
        .iter()
        .map(|r| Reading::parse(&r.data).expect("generated readings are valid"))
        .collect();
    readings.sort_by_key(|r| r.date);
    readings
}

/// Invoked one at a time without faults, each invocation does exactly what the contract
/// says: its readings applied in reading time to the stored state, older ones ignored, the
/// transitions published, the state written when its episode changed.
fn assert_each_invocation_follows_the_contract(calls: &[Call]) -> Result<(), TestCaseError> {
    let (thresholds, policy) = (Thresholds::default(), policy());
    let mut stored: Option<ReactorState> = None;
    for (i, call) in calls.iter().enumerate() {
        let mut state = stored.clone();
        let mut expected = Vec::new();
        for r in in_reading_time(&call.records) {
            let at = r.date.to_utc();
            let step = episode::apply(state.as_ref(), REACTOR, r.temp_c, at, &thresholds, &policy);
            expected.extend(step.notifications);
            state = Some(step.state);
        }
        if let Some(next) =
            state.filter(|next| episode::needs_write(stored.as_ref(), next, &policy))
        {
            stored = Some(next);
        }
        prop_assert_eq!(notified(&call.events), expected, "invocation {}", i);
        prop_assert_eq!(&call.stored_after, &stored, "state after invocation {}", i);
    }
    Ok(())
}

/// On-call's view of each episode, in the order notifications first went out: an episode
/// starts with its `opened`, is escalated at most once, ends with its `resolved`, and a new
/// one opens only after the last one was resolved. A page whose state write failed is out
/// while the state does not hold it, and the retry may find its readings older than the
/// other shard's newest; so a notification that breaks this order is allowed only when a
/// state write failed after the notification it conflicts with.
fn assert_episodes(log: &[Event]) -> Result<(), TestCaseError> {
    let failed_after = |at: usize| {
        log[at..]
            .iter()
            .any(|e| matches!(e, Event::StateWriteFailed(_)))
    };
    let mut seen = HashSet::new();
    // Where each episode's opened, first escalated and resolved are in the log.
    let mut episodes: BTreeMap<String, [Option<usize>; 3]> = BTreeMap::new();
    let mut open: Option<String> = None;
    for (i, event) in log.iter().enumerate() {
        let Event::Notified(n) = event else { continue };
        if !seen.insert(super::json(n)) {
            continue;
        }
        let id = &n.episode_id;
        let [opened, escalated, resolved] = episodes.get(id).copied().unwrap_or_default();
        match opened {
            None => {
                prop_assert_eq!(n.action, EpisodeAction::Opened, "{} starts", id);
                if let Some(other) = open.replace(id.clone()) {
                    let other_opened = episodes[&other][0].expect("an open episode was opened");
                    prop_assert!(
                        failed_after(other_opened),
                        "{} opened while {} is open, and no state write failed",
                        id,
                        other
                    );
                }
            }
            Some(_) => prop_assert_ne!(n.action, EpisodeAction::Opened, "{} opened twice", id),
        }
        if let Some(resolved) = resolved {
            prop_assert!(
                failed_after(resolved),
                "{:?} of {} after its resolved, and no state write failed",
                n.action,
                id
            );
        }
        if let (EpisodeAction::Escalated, Some(escalated)) = (n.action, escalated) {
            prop_assert!(
                failed_after(escalated),
                "{} escalated twice, and no state write failed",
                id
            );
        }
        if n.action == EpisodeAction::Resolved && open.as_ref() == Some(id) {
            open = None;
        }
        let at = episodes.entry(id.clone()).or_default();
        let slot = match n.action {
            EpisodeAction::Opened => 0,
            EpisodeAction::Escalated => 1,
            EpisodeAction::Resolved => 2,
            _ => continue,
        };
        at[slot].get_or_insert(i);
    }
    Ok(())
}

/// Once both shards are drained the stored state holds the newest reading, give or take
/// the interval at which a newer reading alone is written.
fn assert_newest_reading_kept(s: &TwoShards, calls: &[Call]) -> Result<(), TestCaseError> {
    let newest = samples(std::slice::from_ref(&s.stretches))
        .concat()
        .last()
        .map(|r| r.at)
        .expect("a reading at least");
    let state = calls
        .last()
        .and_then(|c| c.stored_after.clone())
        .expect("a state");
    prop_assert!(state.last_reading_at <= newest);
    prop_assert!(
        newest - state.last_reading_at < policy().last_reading_resolution(),
        "{} stored, {} newest",
        state.last_reading_at,
        newest
    );
    Ok(())
}

fn two_shards(
    turns: BoxedStrategy<Turn>,
    kinds: &'static [(Faulted, Entries)],
) -> impl Strategy<Value = TwoShards> {
    (
        vec(stretch(), 1..10),
        vec(any::<bool>(), 1..8),
        vec(1..=ONE_NOTIFY_CALL, 1..6),
        vec(turns, 1..12),
        prop_oneof![1 => Just(FaultPlan::new()), 3 => faults(kinds)],
    )
        .prop_map(|(stretches, on_second, sizes, turns, faults)| TwoShards {
            stretches,
            on_second,
            sizes,
            turns,
            faults,
        })
}

const RACE_FAULTS: &[(Faulted, Entries)] = &[
    (Faulted::Lookup, Entries::Pass),
    (Faulted::StateWrite, Entries::Pass),
    (Faulted::LedgerWrite, Entries::Fail),
    (Faulted::AlertPublish, Entries::Fail),
    (Faulted::OnCallPublish, Entries::Pass),
];

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn two_shards_of_one_reactor_invoked_in_turn_apply_each_batch_to_the_newest_state(
        s in two_shards(prop_oneof![Just(Turn::First), Just(Turn::Second)].boxed(), &[]),
    ) {
        let pipeline = scripted_pipeline(FaultPlan::new());
        let calls = block_on(run(&s, &pipeline))?;
        let log = pipeline.ledger.log.lock().unwrap().clone();
        assert_each_invocation_follows_the_contract(&calls)?;
        assert_no_rollback(&log)?;
        assert_episodes(&log)?;
        assert_newest_reading_kept(&s, &calls)?;
        assert_alerts(&log, &s.batches().1.into_iter().collect())?;
    }

    #[test]
    fn two_shards_of_one_reactor_racing_under_faults_never_roll_back_and_double_only_after_failed_writes(
        s in two_shards(
            prop_oneof![Just(Turn::First), Just(Turn::Second), Just(Turn::Both)].boxed(),
            RACE_FAULTS,
        ),
    ) {
        let mut pipeline = scripted_pipeline(s.faults.clone());
        pipeline.ledger.yield_after_lookup = true;
        let calls = block_on(run(&s, &pipeline))?;
        let log = pipeline.ledger.log.lock().unwrap().clone();
        assert_no_rollback(&log)?;
        assert_republished_only_after_failed_state_writes(&log)?;
        assert_episodes(&log)?;
        assert_newest_reading_kept(&s, &calls)?;
        assert_alerts(&log, &s.batches().1.into_iter().collect())?;
    }
}
