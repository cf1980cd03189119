//! Batch processing: every record of a batch ends in exactly one outcome.
//!
//! Decoding is pure and happens first. A KPL aggregated Kinesis record is unpacked into its
//! user records, each a reading of its own with its own outcome; one that cannot be unpacked
//! is dead-lettered whole. Then the writes of readings, the alert path
//! (ledger lookup → publish → ledger record) and the dead-letter write (one object holding
//! the batch's parse errors) run concurrently, all through one gate that bounds requests in
//! flight and stops starting new ones before the invocation deadline. Readings a sink refused
//! for good are dead-lettered after, in a second object.

use crate::operation::AwsOperation;
use std::future::Future;
use std::time::Duration;

use futures::future::join_all;
use tokio::sync::Semaphore;
use tokio::time::Instant;

use crate::domain::episode::{self, EpisodeAction, EpisodePolicy, Notification, ReactorState};
use crate::domain::{FlowType, Reading, RejectReason, SequenceNumber, Severity, Thresholds};
use crate::kpl;
use crate::ports::{
    Alert, AlertLedger, AlertPublisher, DeadLetter, DeadLetterSink, EpisodeStore, FailureClass,
    FailureKind, Located, Notice, OnCallPublisher, Origin, ReadingStore, StateChange,
    TransientError, with_request_id,
};

/// One Kinesis record as the pipeline sees it: payload bytes and where they sit in the stream.
/// Once a KPL aggregate is unpacked, each of its user records is one too.
#[derive(Debug, Clone)]
pub struct InboundRecord {
    pub origin: Origin,
    pub data: Vec<u8>,
}

/// A record as the event decoder hands it over: readable, or already rejected (its envelope
/// could not be read) and to be dead-lettered with the reason.
#[derive(Debug, Clone)]
pub enum Inbound {
    Record(InboundRecord),
    Rejected(InboundRecord, RejectReason),
}

/// How one AWS call that carried a record went, for its span and for request counts.
#[derive(Debug, Clone)]
pub struct CallTiming {
    pub operation: AwsOperation,
    pub started: Instant,
    pub finished: Instant,
    /// The failure of this call for this record, if any.
    pub error: Option<FailureKind>,
    /// The AWS request id of the call's (last) response, when the service answered.
    pub request_id: Option<String>,
}

/// What finally happened to a record.
#[derive(Debug, Clone)]
pub enum Outcome {
    Stored,
    /// Stored, and the alert is out: published by this invocation, or by an earlier
    /// delivery of the same record (`published_now == false`).
    StoredAndAlerted {
        severity: Severity,
        published_now: bool,
    },
    DeadLettered(RejectReason),
    /// Not done; reported in `batchItemFailures` so that Kinesis delivers it again.
    Failed(TransientError),
}

/// The fate of one record, with everything its telemetry needs: one per reading, so one per
/// user record of a KPL aggregate (its `origin.sequence_number` has the subsequence).
#[derive(Debug, Clone)]
pub struct RecordReport {
    pub origin: Origin,
    pub flow: FlowType,
    pub reading: Option<Reading>,
    pub severity: Option<Severity>,
    pub reject_reason: Option<RejectReason>,
    pub payload_len: usize,
    pub decoded_in: Duration,
    pub calls: Vec<CallTiming>,
    pub outcome: Outcome,
    /// What the reading did to its reactor's alert episode, if anything.
    pub episode: Option<EpisodeAction>,
}

impl RecordReport {
    pub fn is_failure(&self) -> bool {
        matches!(self.outcome, Outcome::Failed(_))
    }
}

/// The fate of a whole batch, in the order the records came.
#[derive(Debug, Clone, Default)]
pub struct BatchReport {
    pub records: Vec<RecordReport>,
    /// AWS requests made, by operation (a call carries up to a batch of records).
    pub requests: Vec<(AwsOperation, usize)>,
}

impl BatchReport {
    /// Sequence numbers to report in `batchItemFailures`, lowest first, each once. Lambda
    /// checkpoints at the lowest and delivers everything after it again. Kinesis knows only
    /// its own records: a failed user record of an aggregate reports the aggregate, whose
    /// redelivery replays its other user records too (idempotent, see `ReadingStore`).
    pub fn failed_sequence_numbers(&self) -> Vec<SequenceNumber> {
        let mut failed: Vec<SequenceNumber> = self
            .records
            .iter()
            .filter(|r| r.is_failure())
            .map(|r| r.origin.sequence_number.kinesis_record())
            .collect();
        failed.sort();
        failed.dedup();
        failed
    }

    /// True when the batch had records and none of them could be done: the invocation
    /// should fail as a whole so that bisect-on-error can isolate the cause.
    pub fn nothing_done(&self) -> bool {
        !self.records.is_empty() && self.records.iter().all(RecordReport::is_failure)
    }

    /// The first failure that is permanent for the function (access denied, a missing
    /// resource, an unusable KMS key): the invocation must fail loudly, whatever else was done.
    pub fn fatal(&self) -> Option<&TransientError> {
        self.records.iter().find_map(|r| match &r.outcome {
            Outcome::Failed(e) if e.kind.class() == FailureClass::PermanentForFunction => Some(e),
            _ => None,
        })
    }

    /// Why the invocation must fail as a whole, if it must: a failure permanent for the
    /// function ([`BatchReport::fatal`]), or the first failure when nothing could be done.
    pub fn invocation_failure(&self) -> Option<&TransientError> {
        self.fatal()
            .or_else(|| self.first_failure().filter(|_| self.nothing_done()))
    }

    pub fn first_failure(&self) -> Option<&TransientError> {
        self.records.iter().find_map(|r| match &r.outcome {
            Outcome::Failed(e) => Some(e),
            _ => None,
        })
    }
}

/// Limits of one invocation's I/O.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Requests in flight at once.
    pub max_in_flight: usize,
    /// Reserve before the deadline: no request starts later than `deadline - margin`,
    /// and a request still running at `deadline - margin / 2` is abandoned.
    pub deadline_margin: Duration,
}

/// The record processor, generic over its ports.
pub struct Pipeline<S, L, P, D> {
    pub store: S,
    pub ledger: L,
    pub publisher: P,
    pub dead_letters: D,
    pub thresholds: Thresholds,
    /// Alert episodes for people (on-call topic); `None` when the function has no on-call
    /// topic or episode table.
    pub episodes: Option<EpisodePolicy>,
    pub limits: Limits,
}

struct Gate {
    permits: Semaphore,
    stop_starting_at: Option<Instant>,
    give_up_at: Option<Instant>,
}

impl Gate {
    /// Runs one request under the in-flight bound and the deadline.
    async fn call<R>(
        &self,
        operation: AwsOperation,
        request: impl Future<Output = R>,
    ) -> (CallTiming, Result<R, TransientError>) {
        let _permit = self
            .permits
            .acquire()
            .await
            .expect("the gate is never closed");
        let started = Instant::now();
        let timing = |error, request_id| CallTiming {
            operation,
            started,
            finished: Instant::now(),
            error,
            request_id,
        };
        if self.stop_starting_at.is_some_and(|at| started >= at) {
            let err = TransientError::new(
                operation,
                FailureKind::NotStarted,
                "not started: the invocation deadline is too close",
            );
            return (timing(Some(FailureKind::NotStarted), None), Err(err));
        }
        let request = with_request_id(request);
        let (result, request_id) = match self.give_up_at {
            Some(at) => match tokio::time::timeout_at(at, request).await {
                Ok((output, request_id)) => (Ok(output), request_id),
                Err(_) => (
                    Err(TransientError::new(
                        operation,
                        FailureKind::Timeout,
                        "abandoned: still running at the invocation deadline",
                    )),
                    None,
                ),
            },
            None => {
                let (output, request_id) = request.await;
                (Ok(output), request_id)
            }
        };
        let kind = result.as_ref().err().map(|e| e.kind);
        (timing(kind, request_id), result)
    }
}

struct Slot {
    record: InboundRecord,
    parsed: Result<Reading, RejectReason>,
    severity: Option<Severity>,
    decoded_in: Duration,
}

impl Slot {
    fn located(&self) -> Option<Located<'_>> {
        self.parsed.as_ref().ok().map(|reading| Located {
            reading,
            origin: &self.record.origin,
        })
    }
}

/// Results of the concurrent phase, applied to records afterwards.
#[derive(Default)]
struct Progress {
    calls: Vec<Vec<CallTiming>>,
    stored: Vec<Option<Result<(), TransientError>>>,
    alerted: Vec<Option<Result<bool, TransientError>>>,
    dead_lettered: Vec<Option<Result<(), TransientError>>>,
    /// Valid readings a sink refused for good: dead-lettered with this reason.
    sink_rejected: Vec<Option<RejectReason>>,
    /// The episode action of each reading, or why its reactor's episode could not be updated.
    episode: Vec<Option<EpisodeResult>>,
}

impl<S, L, P, D> Pipeline<S, L, P, D>
where
    S: ReadingStore,
    L: AlertLedger + EpisodeStore,
    P: AlertPublisher + OnCallPublisher,
    D: DeadLetterSink,
{
    /// Processes a batch. `deadline` is when the invocation will be stopped, if known.
    pub async fn process(
        &self,
        records: Vec<InboundRecord>,
        deadline: Option<Instant>,
    ) -> BatchReport {
        self.process_inbound(records.into_iter().map(Inbound::Record).collect(), deadline)
            .await
    }

    /// Processes a batch whose unreadable records are already known (`kinesis::KinesisBatch`).
    pub async fn process_inbound(
        &self,
        records: Vec<Inbound>,
        deadline: Option<Instant>,
    ) -> BatchReport {
        let mut slots: Vec<Slot> = Vec::with_capacity(records.len());
        for inbound in records {
            match inbound {
                Inbound::Record(record) => self.decode_into(record, &mut slots),
                Inbound::Rejected(record, reason) => slots.push(Slot {
                    record,
                    parsed: Err(reason),
                    severity: None,
                    decoded_in: Duration::ZERO,
                }),
            }
        }
        let gate = Gate {
            permits: Semaphore::new(self.limits.max_in_flight.max(1)),
            stop_starting_at: deadline.map(|d| d - self.limits.deadline_margin),
            give_up_at: deadline.map(|d| d - self.limits.deadline_margin / 2),
        };

        let readings: Vec<usize> = (0..slots.len())
            .filter(|&i| slots[i].parsed.is_ok())
            .collect();
        let alerting: Vec<usize> = readings
            .iter()
            .copied()
            .filter(|&i| slots[i].severity.is_some())
            .collect();
        let rejected: Vec<(usize, RejectReason)> = (0..slots.len())
            .filter_map(|i| slots[i].parsed.as_ref().err().map(|&reason| (i, reason)))
            .collect();

        let alerts_and_episodes = async {
            match self.episodes {
                Some(policy) => {
                    self.alerts_and_episodes(&gate, &slots, &readings, &alerting, policy)
                        .await
                }
                None => {
                    let chunks = join_all(
                        alerting
                            .chunks(P::MAX_BATCH.min(L::MAX_BATCH))
                            .map(|chunk| self.alert_chunk(&gate, &slots, chunk)),
                    )
                    .await;
                    (chunks, EpisodeResults::default())
                }
            }
        };
        let (stores, (alerts, episodes), dead) = tokio::join!(
            join_all(
                readings
                    .chunks(S::MAX_BATCH)
                    .map(|chunk| self.store_chunk(&gate, &slots, chunk))
            ),
            Box::pin(alerts_and_episodes),
            self.dead_letter(&gate, &slots, &rejected),
        );

        let mut progress = Progress {
            calls: vec![Vec::new(); slots.len()],
            stored: vec![None; slots.len()],
            alerted: vec![None; slots.len()],
            dead_lettered: vec![None; slots.len()],
            sink_rejected: vec![None; slots.len()],
            episode: vec![None; slots.len()],
        };
        let mut requests: Vec<(AwsOperation, usize)> = Vec::new();
        let mut count = |op: AwsOperation| match requests.iter_mut().find(|(o, _)| *o == op) {
            Some((_, n)) => *n += 1,
            None => requests.push((op, 1)),
        };
        for (chunk, timing, results) in stores {
            count(timing.operation);
            for (&i, result) in chunk.iter().zip(results) {
                progress.calls[i].push(with_error(&timing, &result));
                progress.stored[i] = Some(result);
            }
        }
        for chunk in alerts {
            for op in chunk.requests {
                count(op);
            }
            for (i, calls, result) in chunk.records {
                progress.calls[i].extend(calls);
                progress.alerted[i] = Some(result);
            }
        }
        for op in episodes.requests {
            count(op);
        }
        for (i, calls, result) in episodes.records {
            // A reading that alerts shares the lookup and the write with its reactor's episode:
            // each call once on its span.
            for call in calls {
                let known = progress.calls[i]
                    .iter()
                    .any(|c| c.operation == call.operation && c.started == call.started);
                if !known {
                    progress.calls[i].push(call);
                }
            }
            progress.episode[i] = Some(result);
        }
        // One object carried every record of it: the same call on each record's span, and
        // its result for each (a transient failure reports them all for retry).
        for (letters, timing, result) in dead {
            count(timing.operation);
            for (i, _) in letters {
                progress.calls[i].push(with_error(&timing, &result));
                progress.dead_lettered[i] = Some(result.clone());
            }
        }

        // Readings a sink refused for good (DynamoDB's ValidationException of the item, an
        // alert SNS cannot take): isolated by the adapters, dead-lettered here byte for byte.
        let refused: Vec<(usize, RejectReason)> = (0..slots.len())
            .filter_map(|i| {
                let refused =
                    |e: Option<&TransientError>| e.is_some_and(|e| e.kind == FailureKind::Rejected);
                if refused(progress.stored[i].as_ref().and_then(|r| r.as_ref().err())) {
                    Some((i, RejectReason::StoreRejected))
                } else if refused(progress.alerted[i].as_ref().and_then(|r| r.as_ref().err())) {
                    Some((i, RejectReason::AlertRejected))
                } else {
                    None
                }
            })
            .collect();
        // In a second object, written only when a sink refused any.
        for (letters, timing, result) in self.dead_letter(&gate, &slots, &refused).await {
            count(timing.operation);
            for (i, reason) in letters {
                let seq = &slots[i].record.origin.sequence_number;
                tracing::warn!(sequence_number = %seq, reason = %reason, "a sink refused a valid reading; dead-lettered");
                progress.calls[i].push(with_error(&timing, &result));
                progress.sink_rejected[i] = Some(reason);
                progress.dead_lettered[i] = Some(result.clone());
            }
        }

        BatchReport {
            records: slots
                .into_iter()
                .enumerate()
                .map(|(i, slot)| finish(slot, &mut progress, i))
                .collect(),
            requests,
        }
    }

    /// The slots of one Kinesis record: itself, or the user records of a KPL aggregate (each
    /// charged an equal share of the unpacking), or the whole aggregate when it is corrupt.
    fn decode_into(&self, record: InboundRecord, slots: &mut Vec<Slot>) {
        let started = std::time::Instant::now();
        match kpl::deaggregate(&record.data) {
            None => slots.push(self.decode(record, Duration::ZERO)),
            Some(Err(corruption)) => {
                let origin = &record.origin;
                tracing::warn!(shard_id = %origin.shard_id, sequence_number = %origin.sequence_number, payload_bytes = record.data.len(), detail = %corruption, "corrupt KPL aggregate, dead-lettered whole");
                slots.push(Slot {
                    record,
                    parsed: Err(RejectReason::CorruptAggregate),
                    severity: None,
                    decoded_in: started.elapsed(),
                });
            }
            Some(Ok(users)) => {
                let unpacking = started.elapsed() / users.len().max(1) as u32;
                let origin = record.origin;
                for (index, user) in (0u64..).zip(users) {
                    let user_origin = Origin {
                        shard_id: origin.shard_id.clone(),
                        sequence_number: origin.sequence_number.user_record(index),
                        partition_key: user.partition_key,
                        arrival: origin.arrival,
                    };
                    let inbound = InboundRecord {
                        origin: user_origin,
                        data: user.data,
                    };
                    slots.push(self.decode(inbound, unpacking));
                }
            }
        }
    }

    fn decode(&self, record: InboundRecord, unpacking: Duration) -> Slot {
        let started = std::time::Instant::now();
        let parsed = Reading::parse(&record.data).map_err(|r| r.reason);
        let severity = parsed
            .as_ref()
            .ok()
            .and_then(|r| self.thresholds.classify(r.temp_c));
        Slot {
            record,
            parsed,
            severity,
            decoded_in: unpacking + started.elapsed(),
        }
    }

    fn alert_of<'a>(&self, slot: &'a Slot) -> Alert<'a> {
        let severity = slot.severity.expect("only alerting readings are passed");
        Alert {
            located: slot.located().expect("only readings are passed"),
            severity,
            threshold_c: self.thresholds.threshold_of(severity),
        }
    }

    async fn store_chunk<'c>(
        &self,
        gate: &Gate,
        slots: &[Slot],
        chunk: &'c [usize],
    ) -> (&'c [usize], CallTiming, Vec<Result<(), TransientError>>) {
        let batch: Vec<Located<'_>> = chunk.iter().filter_map(|&i| slots[i].located()).collect();
        let (timing, result) = gate
            .call(S::OPERATION, self.store.put_readings(&batch))
            .await;
        let results = match result {
            Ok(results) => results,
            Err(e) => vec![Err(e); chunk.len()],
        };
        (chunk, timing, results)
    }

    async fn alert_chunk(&self, gate: &Gate, slots: &[Slot], chunk: &[usize]) -> AlertChunk {
        let alerts: Vec<Alert<'_>> = chunk.iter().map(|&i| self.alert_of(&slots[i])).collect();
        let mut out = AlertChunk {
            records: Vec::with_capacity(chunk.len()),
            requests: vec![L::LOOKUP_OPERATION],
        };

        let (lookup, sent) = gate
            .call(L::LOOKUP_OPERATION, self.ledger.already_sent(&alerts))
            .await;
        let sent = match sent.and_then(|r| r) {
            Ok(sent) => sent,
            Err(e) => {
                let failed = CallTiming {
                    error: Some(e.kind),
                    ..lookup.clone()
                };
                out.records.extend(
                    chunk
                        .iter()
                        .map(|&i| (i, vec![failed.clone()], Err(e.clone()))),
                );
                return out;
            }
        };

        let mut to_publish = Vec::new();
        for (pos, &i) in chunk.iter().enumerate() {
            if sent[pos] {
                out.records.push((i, vec![lookup.clone()], Ok(false)));
            } else {
                to_publish.push(pos);
            }
        }
        if to_publish.is_empty() {
            return out;
        }

        let batch: Vec<Alert<'_>> = to_publish.iter().map(|&pos| alerts[pos]).collect();
        out.requests.push(P::OPERATION);
        let (publish, published) = gate
            .call(P::OPERATION, self.publisher.publish(&batch))
            .await;
        let published = match published {
            Ok(results) => results,
            Err(e) => vec![Err(e); batch.len()],
        };

        let mut ledger_entries = Vec::new();
        let mut ledger_positions = Vec::new();
        for (&pos, result) in to_publish.iter().zip(published) {
            let calls = vec![lookup.clone(), with_error(&publish, &result)];
            match result {
                Ok(message_id) => {
                    ledger_entries.push((alerts[pos], message_id));
                    ledger_positions.push(out.records.len());
                    out.records.push((chunk[pos], calls, Ok(true)));
                }
                Err(e) => out.records.push((chunk[pos], calls, Err(e))),
            }
        }
        if ledger_entries.is_empty() {
            return out;
        }

        out.requests.push(L::RECORD_OPERATION);
        let (record, recorded) = gate
            .call(
                L::RECORD_OPERATION,
                self.ledger.record_sent(&ledger_entries),
            )
            .await;
        let recorded = match recorded {
            Ok(results) => results,
            Err(e) => vec![Err(e); ledger_entries.len()],
        };
        for (&at, result) in ledger_positions.iter().zip(recorded) {
            // The alert is out; failing the record now would publish it again on retry.
            // A replay inside this window may duplicate the alert, never drop it.
            if let Err(e) = &result {
                let seq = &slots[out.records[at].0].record.origin.sequence_number;
                tracing::warn!(sequence_number = %seq, error = %e, "alert published but not recorded in the ledger");
            }
            out.records[at].1.push(with_error(&record, &result));
        }
        out
    }

    /// Alerts and episodes of a batch together, when episodes are on: one lookup of the
    /// batch's reactors' states and the alert ledger (`MAX_LOAD` keys a request), each
    /// reactor's readings applied in reading time, the alerts and the on-call notices published
    /// concurrently, then one write of the states to be written with the ledger's records
    /// (`MAX_SAVE` items a request; ledger records alone go in a BatchWriteItem). A state is
    /// written on a change of its episode, not for a newer reading alone
    /// (`episode::needs_write`). A notification is published before its state is written:
    /// when the write fails, it is out already and the reactor's records are reported for
    /// retry (a duplicate, never a missing page); when the publish fails, the state is not
    /// written and the records are retried.
    async fn alerts_and_episodes(
        &self,
        gate: &Gate,
        slots: &[Slot],
        readings: &[usize],
        alerting: &[usize],
        policy: EpisodePolicy,
    ) -> (Vec<AlertChunk>, EpisodeResults) {
        let mut out = EpisodeResults::default();
        let mut runs: Vec<ReactorRun<'_>> = Vec::new();
        let mut index: std::collections::HashMap<&str, usize> = std::collections::HashMap::new();
        for &i in readings {
            let Ok(reading) = &slots[i].parsed else {
                continue;
            };
            let at = *index.entry(reading.reactor.as_str()).or_insert_with(|| {
                runs.push(ReactorRun {
                    reactor: &reading.reactor,
                    readings: Vec::new(),
                    expected_version: None,
                    stored: None,
                    state: None,
                    changed: false,
                    actions: Vec::new(),
                    notices: Vec::new(),
                    calls: Vec::new(),
                    failure: None,
                });
                runs.len() - 1
            });
            runs[at].readings.push(i);
        }
        let date = |i: usize| slots[i].parsed.as_ref().map(|r| r.date).ok();
        for run in &mut runs {
            run.readings.sort_by_key(|&i| (date(i), i));
        }
        let alerts: Vec<Alert<'_>> = alerting.iter().map(|&i| self.alert_of(&slots[i])).collect();
        let mut alert_calls: Vec<Vec<CallTiming>> = vec![Vec::new(); alerts.len()];
        let mut alert_results: Vec<Option<Result<bool, TransientError>>> = vec![None; alerts.len()];

        // One lookup: the reactors first, then the alerts, `MAX_LOAD` keys a request.
        let keys: Vec<Key> = (0..runs.len())
            .map(Key::Reactor)
            .chain((0..alerts.len()).map(Key::Alert))
            .collect();
        let lookups = join_all(keys.chunks(L::MAX_LOAD.max(1)).map(|chunk| {
            let reactors: Vec<&str> = chunk
                .iter()
                .filter_map(|k| match k {
                    Key::Reactor(at) => Some(runs[*at].reactor),
                    Key::Alert(_) => None,
                })
                .collect();
            let batch: Vec<Alert<'_>> = chunk
                .iter()
                .filter_map(|k| match k {
                    Key::Alert(a) => Some(alerts[*a]),
                    Key::Reactor(_) => None,
                })
                .collect();
            async move {
                let (timing, loaded) = gate
                    .call(L::LOAD_OPERATION, self.ledger.load(&reactors, &batch))
                    .await;
                (chunk, timing, loaded.and_then(|r| r))
            }
        }))
        .await;
        for (chunk, timing, loaded) in lookups {
            out.requests.push(L::LOAD_OPERATION);
            let timing = with_error(&timing, &loaded);
            let (mut states, mut sent) = match &loaded {
                Ok(l) => (l.states.clone().into_iter(), l.sent.clone().into_iter()),
                Err(_) => (Vec::new().into_iter(), Vec::new().into_iter()),
            };
            for key in chunk {
                match (*key, &loaded) {
                    (Key::Reactor(at), Ok(_)) => {
                        let stored = states.next().flatten();
                        runs[at].expected_version = stored.as_ref().map(|s| s.version);
                        runs[at].stored = stored.map(|s| s.state);
                        runs[at].calls.push(timing.clone());
                    }
                    (Key::Reactor(at), Err(e)) => {
                        runs[at].failure = Some(e.clone());
                        runs[at].calls.push(timing.clone());
                    }
                    (Key::Alert(a), Ok(_)) => {
                        alert_calls[a].push(timing.clone());
                        if sent.next().unwrap_or(false) {
                            alert_results[a] = Some(Ok(false));
                        }
                    }
                    (Key::Alert(a), Err(e)) => {
                        alert_calls[a].push(timing.clone());
                        alert_results[a] = Some(Err(e.clone()));
                    }
                }
            }
        }

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
                run.state = Some(step.state);
            }
            run.changed = run
                .state
                .as_ref()
                .is_some_and(|next| episode::needs_write(run.stored.as_ref(), next, &policy));
        }

        // The alerts and the notices, concurrently.
        let to_publish: Vec<usize> = (0..alerts.len())
            .filter(|&a| alert_results[a].is_none())
            .collect();
        let pending: Vec<(usize, usize)> = runs
            .iter()
            .enumerate()
            .filter(|(_, r)| r.failure.is_none())
            .flat_map(|(at, r)| (0..r.notices.len()).map(move |n| (at, n)))
            .collect();
        let runs_ref = &runs;
        let (published, notified) = tokio::join!(
            join_all(to_publish.chunks(P::MAX_BATCH.max(1)).map(|chunk| {
                let batch: Vec<Alert<'_>> = chunk.iter().map(|&a| alerts[a]).collect();
                async move {
                    let (timing, results) = gate
                        .call(P::OPERATION, self.publisher.publish(&batch))
                        .await;
                    let results = match results {
                        Ok(results) => results,
                        Err(e) => vec![Err(e); batch.len()],
                    };
                    (chunk, timing, results)
                }
            })),
            join_all(pending.chunks(P::MAX_NOTIFY_BATCH.max(1)).map(|chunk| {
                let notices: Vec<Notice<'_>> = chunk
                    .iter()
                    .map(|&(at, n)| {
                        let (i, notification) = &runs_ref[at].notices[n];
                        Notice {
                            notification,
                            origin: Some(&slots[*i].record.origin),
                            traceparent: slots[*i]
                                .parsed
                                .as_ref()
                                .ok()
                                .and_then(|r| r.traceparent.as_deref()),
                        }
                    })
                    .collect();
                async move {
                    let (timing, results) = gate
                        .call(P::NOTIFY_OPERATION, self.publisher.notify(&notices))
                        .await;
                    let results = match results {
                        Ok(results) => results,
                        Err(e) => vec![Err(e); notices.len()],
                    };
                    (chunk, timing, results)
                }
            })),
        );
        let mut ledger: Vec<(usize, String)> = Vec::new();
        for (chunk, timing, results) in published {
            out.requests.push(P::OPERATION);
            for (&a, result) in chunk.iter().zip(results) {
                alert_calls[a].push(with_error(&timing, &result));
                match result {
                    Ok(message_id) => {
                        alert_results[a] = Some(Ok(true));
                        ledger.push((a, message_id));
                    }
                    Err(e) => alert_results[a] = Some(Err(e)),
                }
            }
        }
        for (chunk, timing, results) in notified {
            out.requests.push(P::NOTIFY_OPERATION);
            for (&(at, _), result) in chunk.iter().zip(results) {
                runs[at].calls.push(with_error(&timing, &result));
                if let Err(e) = result {
                    runs[at].failure.get_or_insert(e);
                }
            }
        }

        // The states in transactions of `MAX_SAVE` conditional puts; the ledger's records in
        // BatchWriteItems of their own. Kept apart on purpose: a transaction fails whole (a
        // throttle, a 5xx, a state another shard moved on), and a ledger record that fails
        // with it makes the retry publish its alert again. Apart, the ledger write keeps its
        // own retries of unprocessed items and the duplicate window stays the narrow one the
        // alert contract allows.
        let to_save: Vec<usize> = (0..runs.len())
            .filter(|&at| runs[at].failure.is_none() && runs[at].changed)
            .collect();
        let mut writes: Vec<Write> = to_save
            .chunks(L::MAX_SAVE.max(1))
            .map(|chunk| (chunk.to_vec(), Vec::new()))
            .collect();
        let rest: Vec<(usize, String)> = ledger;
        for chunk in rest.chunks(L::MAX_BATCH.max(1)) {
            writes.push((Vec::new(), chunk.to_vec()));
        }
        let runs_ref = &runs;
        let alerts_ref = &alerts;
        let saved = join_all(writes.iter().map(|(states, records)| async move {
            let changes: Vec<StateChange<'_>> = states
                .iter()
                .map(|&at| StateChange {
                    reactor: runs_ref[at].reactor,
                    expected_version: runs_ref[at].expected_version,
                    state: runs_ref[at].state.as_ref().expect("a changed state exists"),
                })
                .collect();
            let sent: Vec<(Alert<'_>, String)> = records
                .iter()
                .map(|(a, id)| (alerts_ref[*a], id.clone()))
                .collect();
            if changes.is_empty() {
                let (timing, results) = gate
                    .call(L::RECORD_OPERATION, self.ledger.record_sent(&sent))
                    .await;
                let results = results.unwrap_or_else(|e| vec![Err(e); sent.len()]);
                (timing, Vec::new(), results)
            } else {
                let (timing, results) = gate
                    .call(L::SAVE_OPERATION, self.ledger.save(&changes, &sent))
                    .await;
                let (states, records) = results.unwrap_or_else(|e| {
                    (
                        vec![Err(e.clone()); changes.len()],
                        vec![Err(e); sent.len()],
                    )
                });
                (timing, states, records)
            }
        }))
        .await;
        for ((states, records), (timing, state_results, record_results)) in writes.iter().zip(saved)
        {
            out.requests.push(timing.operation);
            for (&at, result) in states.iter().zip(state_results) {
                runs[at].calls.push(with_error(&timing, &result));
                if let Err(e) = result {
                    // Its notifications are out: the retry may send them again, never lose them.
                    tracing::warn!(reactor = %runs[at].reactor, error = %e, "episode state not written; the reactor's records are retried");
                    runs[at].failure = Some(e);
                }
            }
            for ((a, _), result) in records.iter().zip(record_results) {
                // The alert is out; failing the record now would publish it again on retry.
                // A replay inside this window may duplicate the alert, never drop it.
                if let Err(e) = &result {
                    let seq = &slots[alerting[*a]].record.origin.sequence_number;
                    tracing::warn!(sequence_number = %seq, error = %e, "alert published but not recorded in the ledger");
                }
                alert_calls[*a].push(with_error(&timing, &result));
            }
        }

        for run in runs {
            let actions: std::collections::HashMap<usize, Option<EpisodeAction>> =
                run.actions.into_iter().collect();
            for i in run.readings {
                let result = match &run.failure {
                    Some(e) => Err(e.clone()),
                    None => Ok(actions.get(&i).copied().flatten()),
                };
                out.records.push((i, run.calls.clone(), result));
            }
        }
        let records = alerting
            .iter()
            .zip(alert_calls)
            .zip(alert_results)
            .map(|((&i, calls), result)| {
                (
                    i,
                    calls,
                    result.unwrap_or_else(|| Err(unreached(AwsOperation::SnsPublishBatch))),
                )
            })
            .collect();
        let alerts = AlertChunk {
            records,
            requests: Vec::new(),
        };
        (vec![alerts], out)
    }

    /// Dead-letters `letters` (slot, reason): one call per shard carrying all of that shard's
    /// (a Kinesis batch comes from one shard: one call), none when there are no letters.
    async fn dead_letter(
        &self,
        gate: &Gate,
        slots: &[Slot],
        letters: &[(usize, RejectReason)],
    ) -> Vec<DeadLetterWrite> {
        let mut by_shard: Vec<Vec<(usize, RejectReason)>> = Vec::new();
        for &(i, reason) in letters {
            let shard = &slots[i].record.origin.shard_id;
            match by_shard
                .iter_mut()
                .find(|group| slots[group[0].0].record.origin.shard_id == *shard)
            {
                Some(group) => group.push((i, reason)),
                None => by_shard.push(vec![(i, reason)]),
            }
        }
        join_all(by_shard.into_iter().map(|group| async move {
            let letters: Vec<DeadLetter<'_>> = group
                .iter()
                .map(|&(i, reason)| DeadLetter {
                    payload: &slots[i].record.data,
                    origin: &slots[i].record.origin,
                    reason,
                })
                .collect();
            let (timing, result) = gate
                .call(D::OPERATION, self.dead_letters.put(&letters))
                .await;
            (group, timing, result.and_then(|r| r))
        }))
        .await
    }
}

/// A record's episode action, or why its reactor's episode could not be updated.
type EpisodeResult = Result<Option<EpisodeAction>, TransientError>;

/// What the episode step did, per record.
#[derive(Default)]
struct EpisodeResults {
    records: Vec<(usize, Vec<CallTiming>, EpisodeResult)>,
    requests: Vec<AwsOperation>,
}

/// One reactor's readings of the batch and what they do to its state.
struct ReactorRun<'s> {
    reactor: &'s str,
    /// Slot indices, in reading time (then stream order).
    readings: Vec<usize>,
    expected_version: Option<u64>,
    /// The state as read.
    stored: Option<ReactorState>,
    /// The state after the batch's readings.
    state: Option<ReactorState>,
    changed: bool,
    actions: Vec<(usize, Option<EpisodeAction>)>,
    notices: Vec<(usize, Notification)>,
    calls: Vec<CallTiming>,
    failure: Option<TransientError>,
}

/// One write of the batch: the runs whose states it writes and the ledger records (alert,
/// message id) it carries.
type Write = (Vec<usize>, Vec<(usize, String)>);

/// A key of the batch's one lookup: a reactor's state or an alert's ledger item.
#[derive(Clone, Copy)]
enum Key {
    Reactor(usize),
    Alert(usize),
}

struct AlertChunk {
    records: Vec<(usize, Vec<CallTiming>, Result<bool, TransientError>)>,
    requests: Vec<AwsOperation>,
}

fn with_error<T>(timing: &CallTiming, result: &Result<T, TransientError>) -> CallTiming {
    CallTiming {
        error: result.as_ref().err().map(|e| e.kind),
        ..timing.clone()
    }
}

fn finish(slot: Slot, progress: &mut Progress, i: usize) -> RecordReport {
    let calls = std::mem::take(&mut progress.calls[i]);
    let episode = progress.episode[i]
        .as_ref()
        .and_then(|r| r.as_ref().ok().copied().flatten());
    let payload_len = slot.record.data.len();
    let (flow, reading, reject_reason, outcome) = match slot.parsed {
        Err(reason) => {
            let outcome = match progress.dead_lettered[i].take() {
                Some(Ok(())) => Outcome::DeadLettered(reason),
                Some(Err(e)) => Outcome::Failed(e),
                None => Outcome::Failed(unreached(AwsOperation::S3PutObject)),
            };
            (FlowType::ParseError, None, Some(reason), outcome)
        }
        Ok(reading) if progress.sink_rejected[i].is_some() => {
            let reason = progress.sink_rejected[i].take().expect("checked");
            let outcome = match progress.dead_lettered[i].take() {
                Some(Ok(())) => Outcome::DeadLettered(reason),
                Some(Err(e)) => Outcome::Failed(e),
                None => Outcome::Failed(unreached(AwsOperation::S3PutObject)),
            };
            (FlowType::ParseError, Some(reading), Some(reason), outcome)
        }
        Ok(reading) => {
            let stored = progress.stored[i]
                .take()
                .unwrap_or_else(|| Err(unreached(AwsOperation::DynamoDbBatchWriteItem)));
            let outcome = match (stored, slot.severity) {
                (Err(e), _) => Outcome::Failed(e),
                (Ok(()), None) => Outcome::Stored,
                (Ok(()), Some(severity)) => match progress.alerted[i].take() {
                    Some(Ok(published_now)) => Outcome::StoredAndAlerted {
                        severity,
                        published_now,
                    },
                    Some(Err(e)) => Outcome::Failed(e),
                    None => Outcome::Failed(unreached(AwsOperation::SnsPublishBatch)),
                },
            };
            let outcome = match (outcome, progress.episode[i].take()) {
                (Outcome::Failed(e), _) => Outcome::Failed(e),
                (_, Some(Err(e))) => Outcome::Failed(e),
                (done, _) => done,
            };
            let flow = if slot.severity.is_some() {
                FlowType::StoreAndAlert
            } else {
                FlowType::StoreOnly
            };
            (flow, Some(reading), None, outcome)
        }
    };
    RecordReport {
        origin: slot.record.origin,
        flow,
        reading,
        severity: slot.severity,
        reject_reason,
        payload_len,
        decoded_in: slot.decoded_in,
        calls,
        outcome,
        episode,
    }
}

/// A record no call of `operation` carried: a bug, reported as a failure so the record is
/// retried, not lost.
fn unreached(operation: AwsOperation) -> TransientError {
    TransientError::new(
        operation,
        FailureKind::Service,
        "no call carried this record",
    )
}

/// One dead-letter write: the records (slot, reason) it carried, its call and its result.
type DeadLetterWrite = (
    Vec<(usize, RejectReason)>,
    CallTiming,
    Result<(), TransientError>,
);
