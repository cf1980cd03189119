//! The alert path of a batch: one lookup of the alert ledger (the alerting readings' own
//! items) and, with episodes on, of the batch's reactors' states (`MAX_LOAD` keys a
//! request); each reactor's readings applied in reading time; the alerts and the on-call
//! notices published concurrently; then the changed states written (`MAX_SAVE` a request),
//! while the pipeline writes the alerting readings with their message ids.
//!
//! A notification is published before its state is written: when the write fails, it is out
//! already and the reactor's records are reported for retry (a duplicate, never a missing
//! page); when the publish fails, the state is not written and the records are retried. A
//! state is written on a change of its episode, not for a newer reading alone
//! (`episode::needs_write`).

use std::collections::HashMap;

use futures::future::join_all;

use super::{CallTiming, Gate, Pipeline, Slot, with_error};
use crate::domain::episode::{self, EpisodeAction, EpisodePolicy, Notification, ReactorState};
use crate::operation::AwsOperation;
use crate::ports::{
    Alert, AlertPublisher, DeadLetterSink, EpisodeStore, FailureKind, Notice, OnCallPublisher,
    ReadingStore, StateChange, TransientError,
};

/// How one alerting reading's alert went; it decides how the reading is written.
#[derive(Debug, Clone)]
pub(super) enum AlertStatus {
    /// An earlier delivery published it and stored the reading with it: nothing to write.
    AlreadySent,
    /// Published now: the reading is written with this message id (the ledger's record).
    Published(String),
    /// The lookup failed, so whether it is out is unknown: the reading is not written (a
    /// write without the message id would erase an earlier record) and the record is retried.
    Unknown(TransientError),
    /// Not published (the publish failed, or SNS refused it): the reading is written without
    /// a message id.
    NotPublished(TransientError),
}

/// What the alert path did, for the pipeline to write the readings and finish the records.
pub(super) struct AlertPath<'s> {
    /// Per alerting reading, in the order given: its calls and how its alert went.
    pub alerts: Vec<(Vec<CallTiming>, AlertStatus)>,
    /// Per reactor of the batch (episodes on), its readings and what they did.
    pub runs: Vec<ReactorRun<'s>>,
    pub requests: Vec<AwsOperation>,
}

/// A record's episode action, or why its reactor's episode could not be updated.
pub(super) type EpisodeResult = Result<Option<EpisodeAction>, TransientError>;

/// One reactor's readings of the batch and what they do to its state.
pub(super) struct ReactorRun<'s> {
    reactor: &'s str,
    /// Slot indices, in reading time (then stream order).
    readings: Vec<usize>,
    expected_version: Option<u64>,
    /// The state as read.
    stored: Option<ReactorState>,
    /// The state after the batch's readings (after a notice failed: after the readings
    /// before the one that caused it).
    state: Option<ReactorState>,
    /// The state after each reading, in `readings` order.
    states: Vec<ReactorState>,
    changed: bool,
    actions: Vec<(usize, Option<EpisodeAction>)>,
    notices: Vec<(usize, Notification)>,
    calls: Vec<CallTiming>,
    /// Why the whole run failed (its lookup or its state write): every reading is retried.
    failure: Option<TransientError>,
    /// A notice that did not go out: the position in `readings` of the reading that caused
    /// it, and why. That reading and the later ones are retried; the earlier ones are done.
    unsent: Option<(usize, TransientError)>,
    /// The notices that went out (indices in `notices`).
    sent: Vec<usize>,
}

impl<'s> ReactorRun<'s> {
    /// The notices by the reading that caused them: ranges of `notices`, in reading order.
    fn notice_groups(&self) -> Vec<std::ops::Range<usize>> {
        let mut groups: Vec<std::ops::Range<usize>> = Vec::new();
        for (n, (i, _)) in self.notices.iter().enumerate() {
            match groups.last_mut() {
                Some(last) if self.notices[last.start].0 == *i => last.end = n + 1,
                _ => groups.push(n..n + 1),
            }
        }
        groups
    }

    /// Not every notice of one reading went out (`sent`, one per notice from `notice`, the
    /// reading's first): the run keeps the state before that reading, with what the sent ones
    /// announced (`episode::partly_applied`), written if that still changes the stored one,
    /// and fails from that reading.
    fn keep_before(&mut self, notice: usize, sent: &[bool], error: TransientError) {
        let cause = self.notices[notice].0;
        let at = self
            .readings
            .iter()
            .position(|&i| i == cause)
            .expect("a notice's reading is the run's");
        let before = match at {
            0 => self.stored.clone(),
            _ => Some(self.states[at - 1].clone()),
        };
        // Two notices of one reading are its silent episode's `resolved`, then its hot one's.
        self.state = match sent {
            [silent, hot] => {
                episode::partly_applied(before.as_ref(), &self.states[at], *silent, *hot)
            }
            _ => before,
        };
        self.changed = self.state.is_some() && self.state != self.stored;
        self.unsent = Some((at, error));
    }

    fn new(reactor: &'s str) -> Self {
        Self {
            reactor,
            readings: Vec::new(),
            expected_version: None,
            stored: None,
            state: None,
            states: Vec::new(),
            changed: false,
            actions: Vec::new(),
            notices: Vec::new(),
            calls: Vec::new(),
            failure: None,
            unsent: None,
            sent: Vec::new(),
        }
    }
}

/// A key of the batch's one lookup: a reactor's state or an alert's reading.
#[derive(Clone, Copy)]
enum Key {
    Reactor(usize),
    Alert(usize),
}

impl<S, L, P, D> Pipeline<S, L, P, D>
where
    S: ReadingStore,
    L: EpisodeStore,
    P: AlertPublisher + OnCallPublisher,
    D: DeadLetterSink,
{
    /// Looks up, applies and publishes: everything of the alert path before the writes.
    /// `readings` are the slots of valid readings, `alerting` those at or above a threshold.
    pub(super) async fn alert_path<'s>(
        &self,
        gate: &Gate,
        slots: &'s [Slot],
        readings: &[usize],
        alerting: &[usize],
    ) -> AlertPath<'s> {
        let mut runs = match self.episodes {
            Some(_) => reactor_runs(slots, readings),
            None => Vec::new(),
        };
        let alerts: Vec<Alert<'_>> = alerting.iter().map(|&i| self.alert_of(&slots[i])).collect();
        let (mut statuses, mut requests) = self.lookup(gate, &mut runs, &alerts).await;
        if let Some(policy) = self.episodes {
            self.apply_episodes(slots, &mut runs, policy);
        }
        requests.extend(
            self.publish(gate, slots, &alerts, &mut statuses, &mut runs)
                .await,
        );
        let alerts = statuses
            .into_iter()
            .map(|(calls, status)| {
                let status = status.unwrap_or_else(|| {
                    AlertStatus::Unknown(super::unreached(AwsOperation::SnsPublishBatch))
                });
                (calls, status)
            })
            .collect();
        AlertPath {
            alerts,
            runs,
            requests,
        }
    }

    /// One lookup of the reactors' states and the alerts' readings, reactors first.
    async fn lookup(
        &self,
        gate: &Gate,
        runs: &mut [ReactorRun<'_>],
        alerts: &[Alert<'_>],
    ) -> (
        Vec<(Vec<CallTiming>, Option<AlertStatus>)>,
        Vec<AwsOperation>,
    ) {
        let mut statuses = vec![(Vec::new(), None); alerts.len()];
        let keys: Vec<Key> = (0..runs.len())
            .map(Key::Reactor)
            .chain((0..alerts.len()).map(Key::Alert))
            .collect();
        let runs_ref = &*runs;
        let lookups = join_all(keys.chunks(L::MAX_LOAD.max(1)).map(|chunk| {
            let mut reactors = Vec::new();
            let mut batch = Vec::new();
            for key in chunk {
                match *key {
                    Key::Reactor(at) => reactors.push(runs_ref[at].reactor),
                    Key::Alert(a) => batch.push(alerts[a]),
                }
            }
            async move {
                let (timing, loaded) = gate
                    .call(L::LOAD_OPERATION, self.ledger.load(&reactors, &batch))
                    .await;
                (chunk, timing, loaded.and_then(|r| r))
            }
        }))
        .await;
        let requests = vec![L::LOAD_OPERATION; lookups.len()];
        for (chunk, timing, loaded) in lookups {
            let timing = with_error(&timing, &loaded);
            let (mut states, mut sent) = match loaded {
                Ok(l) => (l.states.into_iter(), l.sent.into_iter()),
                Err(e) => {
                    for key in chunk {
                        match *key {
                            Key::Reactor(at) => runs[at].failure = Some(e.clone()),
                            Key::Alert(a) => statuses[a].1 = Some(AlertStatus::Unknown(e.clone())),
                        }
                    }
                    (Vec::new().into_iter(), Vec::new().into_iter())
                }
            };
            for key in chunk {
                match *key {
                    Key::Reactor(at) => {
                        runs[at].calls.push(timing.clone());
                        if runs[at].failure.is_none() {
                            let stored = states.next().flatten();
                            runs[at].expected_version = stored.as_ref().map(|s| s.version);
                            runs[at].stored = stored.map(|s| s.state);
                        }
                    }
                    Key::Alert(a) => {
                        statuses[a].0.push(timing.clone());
                        if statuses[a].1.is_none() && sent.next().unwrap_or(false) {
                            statuses[a].1 = Some(AlertStatus::AlreadySent);
                        }
                    }
                }
            }
        }
        (statuses, requests)
    }

    /// Each reactor's readings applied to its state in reading time.
    fn apply_episodes(&self, slots: &[Slot], runs: &mut [ReactorRun<'_>], policy: EpisodePolicy) {
        for run in runs.iter_mut().filter(|r| r.failure.is_none()) {
            run.state = run.stored.clone();
            for &i in &run.readings {
                let reading = slots[i].parsed.as_ref().expect("only readings are grouped");
                let step = episode::apply(
                    run.state.as_ref(),
                    run.reactor,
                    reading.temp_c,
                    reading.date.with_timezone(&chrono::Utc),
                    &self.thresholds,
                    &policy,
                );
                run.actions.push((i, step.action));
                run.notices
                    .extend(step.notifications.into_iter().map(|n| (i, n)));
                run.states.push(step.state.clone());
                run.state = Some(step.state);
            }
            run.changed = run
                .state
                .as_ref()
                .is_some_and(|next| episode::needs_write(run.stored.as_ref(), next, &policy));
        }
    }

    /// The alerts not yet out and the on-call notices, concurrently (`MAX_BATCH` and
    /// `MAX_NOTIFY_BATCH` a request).
    async fn publish(
        &self,
        gate: &Gate,
        slots: &[Slot],
        alerts: &[Alert<'_>],
        statuses: &mut [(Vec<CallTiming>, Option<AlertStatus>)],
        runs: &mut [ReactorRun<'_>],
    ) -> Vec<AwsOperation> {
        let to_publish: Vec<usize> = (0..alerts.len())
            .filter(|&a| statuses[a].1.is_none())
            .collect();
        let (published, mut requests) = tokio::join!(
            join_all(to_publish.chunks(P::MAX_BATCH.max(1)).map(|chunk| {
                let batch: Vec<Alert<'_>> = chunk.iter().map(|&a| alerts[a]).collect();
                async move {
                    let (timing, results) = gate
                        .call(P::OPERATION, self.publisher.publish(&batch))
                        .await;
                    let results = results.unwrap_or_else(|e| vec![Err(e); batch.len()]);
                    (chunk, timing, results)
                }
            })),
            self.notify(gate, slots, runs),
        );
        for (chunk, timing, results) in published {
            requests.push(P::OPERATION);
            for (&a, result) in chunk.iter().zip(results) {
                statuses[a].0.push(with_error(&timing, &result));
                statuses[a].1 = Some(match result {
                    Ok(message_id) => AlertStatus::Published(message_id),
                    Err(e) => AlertStatus::NotPublished(e),
                });
            }
        }
        requests
    }

    /// The on-call notices, in rounds: the notices of every reactor's first reading that
    /// caused any, then of its second, and so on, so that a reactor's pages go out in order
    /// and none after one that failed (the notices of one reading, at most two, go out in one
    /// call). A reactor whose notice failed keeps the state before the reading that caused
    /// it, and that reading and its later ones are retried: a page that went out is not sent
    /// again because a later one did not.
    async fn notify(
        &self,
        gate: &Gate,
        slots: &[Slot],
        runs: &mut [ReactorRun<'_>],
    ) -> Vec<AwsOperation> {
        let groups: Vec<Vec<std::ops::Range<usize>>> =
            runs.iter().map(ReactorRun::notice_groups).collect();
        let mut requests = Vec::new();
        for round in 0.. {
            let pending: Vec<usize> = (0..runs.len())
                .filter(|&at| {
                    let run = &runs[at];
                    run.failure.is_none() && run.unsent.is_none() && groups[at].len() > round
                })
                .collect();
            if pending.is_empty() {
                break;
            }
            // Calls of at most `MAX_NOTIFY_BATCH` notices, a reading's notices never split.
            let mut calls: Vec<Vec<usize>> = Vec::new();
            let mut size = 0;
            for &at in &pending {
                let len = groups[at][round].len();
                if calls.is_empty() || size + len > P::MAX_NOTIFY_BATCH.max(2) {
                    calls.push(Vec::new());
                    size = 0;
                }
                calls.last_mut().expect("a call").push(at);
                size += len;
            }
            let (runs_ref, groups_ref) = (&*runs, &groups);
            let notified = join_all(calls.iter().map(|call| {
                let notices: Vec<((usize, usize), Notice<'_>)> = call
                    .iter()
                    .flat_map(|&at| {
                        groups_ref[at][round]
                            .clone()
                            .map(move |n| ((at, n), notice(slots, &runs_ref[at].notices[n])))
                    })
                    .collect();
                async move {
                    let batch: Vec<Notice<'_>> = notices.iter().map(|(_, n)| *n).collect();
                    let (timing, results) = gate
                        .call(P::NOTIFY_OPERATION, self.publisher.notify(&batch))
                        .await;
                    let results = results.unwrap_or_else(|e| vec![Err(e); batch.len()]);
                    let owners: Vec<(usize, usize)> =
                        notices.iter().map(|(owner, _)| *owner).collect();
                    (owners, timing, results)
                }
            }))
            .await;
            for (owners, timing, results) in notified {
                requests.push(P::NOTIFY_OPERATION);
                let mut by_run: Vec<(usize, Vec<Result<String, TransientError>>)> = Vec::new();
                for ((at, n), result) in owners.into_iter().zip(results) {
                    if result.is_ok() {
                        runs[at].sent.push(n);
                    }
                    match by_run.last_mut() {
                        Some((last, results)) if *last == at => results.push(result),
                        _ => by_run.push((at, vec![result])),
                    }
                }
                for (at, results) in by_run {
                    let error = results.iter().find_map(|r| r.as_ref().err()).cloned();
                    runs[at].calls.push(CallTiming {
                        error: error.as_ref().map(|e| e.kind),
                        ..timing.clone()
                    });
                    if let Some(e) = error {
                        let sent: Vec<bool> = results.iter().map(Result::is_ok).collect();
                        runs[at].keep_before(groups[at][round].start, &sent, e);
                    }
                }
            }
        }
        requests
    }

    /// The changed states, in transactions of `MAX_SAVE` conditional puts. A state that is
    /// not written fails its reactor's records: its notifications are out, so the retry may
    /// send them again, never lose them.
    pub(super) async fn save_states(
        &self,
        gate: &Gate,
        slots: &[Slot],
        runs: &mut [ReactorRun<'_>],
    ) -> Vec<AwsOperation> {
        let to_save: Vec<usize> = (0..runs.len())
            .filter(|&at| runs[at].failure.is_none() && runs[at].changed)
            .collect();
        let runs_ref = &*runs;
        let saved = join_all(to_save.chunks(L::MAX_SAVE.max(1)).map(|chunk| {
            let changes: Vec<StateChange<'_>> = chunk
                .iter()
                .map(|&at| StateChange {
                    reactor: runs_ref[at].reactor,
                    expected_version: runs_ref[at].expected_version,
                    state: runs_ref[at].state.as_ref().expect("a changed state exists"),
                })
                .collect();
            async move {
                let (timing, results) = gate
                    .call(L::SAVE_OPERATION, self.ledger.save(&changes))
                    .await;
                let results = results.unwrap_or_else(|e| vec![Err(e); changes.len()]);
                (chunk, timing, results)
            }
        }))
        .await;
        let mut requests = vec![L::SAVE_OPERATION; saved.len()];
        for (chunk, timing, results) in saved {
            for (&at, result) in chunk.iter().zip(results) {
                runs[at].calls.push(with_error(&timing, &result));
                if let Err(e) = result {
                    tracing::warn!(reactor = %runs[at].reactor, error = %e, "episode state not written; the reactor's records are retried");
                    runs[at].failure = Some(e);
                }
            }
        }
        requests.extend(self.close_superseded(gate, slots, runs).await);
        requests
    }

    /// After a lost race (a state another delivery wrote first, [`FailureKind::Conflict`]):
    /// the episodes this delivery paged that the new state has no place for are closed with
    /// a `resolved` naming the episode that goes on (`episode::superseded`), so that no dedup
    /// key stays open on call. One more lookup of those reactors, rare; a close that fails is
    /// logged (the pages it would close went out; the retry pages the state as it is).
    async fn close_superseded(
        &self,
        gate: &Gate,
        slots: &[Slot],
        runs: &mut [ReactorRun<'_>],
    ) -> Vec<AwsOperation> {
        let Some(policy) = self.episodes else {
            return Vec::new();
        };
        let lost: Vec<usize> = (0..runs.len())
            .filter(|&at| {
                let run = &runs[at];
                run.failure
                    .as_ref()
                    .is_some_and(|e| e.kind == FailureKind::Conflict)
                    && !run.sent.is_empty()
            })
            .collect();
        let mut requests = Vec::new();
        for chunk in lost.chunks(L::MAX_LOAD.max(1)) {
            let reactors: Vec<&str> = chunk.iter().map(|&at| runs[at].reactor).collect();
            let (timing, loaded) = gate
                .call(L::LOAD_OPERATION, self.ledger.load(&reactors, &[]))
                .await;
            requests.push(L::LOAD_OPERATION);
            let states = match loaded.and_then(|r| r) {
                Ok(loaded) => loaded.states,
                Err(e) => {
                    tracing::warn!(error = %e, "superseded episodes not closed: the states could not be read");
                    continue;
                }
            };
            let mut closes: Vec<(usize, Notification)> = Vec::new();
            for (&at, current) in chunk.iter().zip(states) {
                let run = &mut runs[at];
                run.calls.push(timing.clone());
                let readings: Vec<(f64, chrono::DateTime<chrono::Utc>)> = run
                    .readings
                    .iter()
                    .filter_map(|&i| slots[i].parsed.as_ref().ok())
                    .map(|r| (r.temp_c, r.date.with_timezone(&chrono::Utc)))
                    .collect();
                let sent: Vec<Notification> =
                    run.sent.iter().map(|&n| run.notices[n].1.clone()).collect();
                let cause = run.notices[run.sent[0]].0;
                closes.extend(
                    episode::superseded(
                        current.map(|c| c.state).as_ref(),
                        run.reactor,
                        &readings,
                        &sent,
                        &self.thresholds,
                        &policy,
                    )
                    .into_iter()
                    .map(|n| (cause, n)),
                );
            }
            for batch in closes.chunks(P::MAX_NOTIFY_BATCH.max(1)) {
                let notices: Vec<Notice<'_>> = batch.iter().map(|c| notice(slots, c)).collect();
                let (timing, results) = gate
                    .call(P::NOTIFY_OPERATION, self.publisher.notify(&notices))
                    .await;
                requests.push(P::NOTIFY_OPERATION);
                let results = results.unwrap_or_else(|e| vec![Err(e); notices.len()]);
                for ((_, close), result) in batch.iter().zip(results) {
                    match result {
                        Ok(_) => {
                            tracing::info!(episode_id = %close.episode_id, superseded_by = ?close.superseded_by, duration_ms = (timing.finished - timing.started).as_millis() as u64, "superseded episode closed")
                        }
                        Err(e) => {
                            tracing::warn!(episode_id = %close.episode_id, error = %e, "superseded episode not closed")
                        }
                    }
                }
            }
        }
        requests
    }
}

/// Each reading's episode result with its reactor's calls (the lookup, the on-call publish,
/// the state write), one entry per reading of the runs.
pub(super) fn episode_results(
    runs: Vec<ReactorRun<'_>>,
) -> impl Iterator<Item = (usize, Vec<CallTiming>, EpisodeResult)> + '_ {
    runs.into_iter().flat_map(|run| {
        let actions: HashMap<usize, Option<EpisodeAction>> = run.actions.into_iter().collect();
        let (failure, unsent, calls) = (run.failure, run.unsent, run.calls);
        run.readings.into_iter().enumerate().map(move |(at, i)| {
            let result = match (&failure, &unsent) {
                (Some(e), _) => Err(e.clone()),
                (None, Some((from, e))) if at >= *from => Err(e.clone()),
                _ => Ok(actions.get(&i).copied().flatten()),
            };
            (i, calls.clone(), result)
        })
    })
}

/// The batch's readings grouped by reactor, each group in reading time (then stream order).
fn reactor_runs<'s>(slots: &'s [Slot], readings: &[usize]) -> Vec<ReactorRun<'s>> {
    let mut runs: Vec<ReactorRun<'s>> = Vec::new();
    let mut index: HashMap<&str, usize> = HashMap::new();
    for &i in readings {
        let Ok(reading) = &slots[i].parsed else {
            continue;
        };
        let at = *index.entry(reading.reactor.as_str()).or_insert_with(|| {
            runs.push(ReactorRun::new(&reading.reactor));
            runs.len() - 1
        });
        runs[at].readings.push(i);
    }
    let date = |i: usize| slots[i].parsed.as_ref().map(|r| r.date).ok();
    for run in &mut runs {
        run.readings.sort_by_key(|&i| (date(i), i));
    }
    runs
}

/// The on-call notice of a notification caused by the reading in slot `i`.
fn notice<'a>(slots: &'a [Slot], (i, notification): &'a (usize, Notification)) -> Notice<'a> {
    Notice {
        notification,
        origin: Some(&slots[*i].record.origin),
        traceparent: slots[*i]
            .parsed
            .as_ref()
            .ok()
            .and_then(|r| r.traceparent.as_deref()),
    }
}
