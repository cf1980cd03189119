//! Batch processing: every record of a batch ends in exactly one outcome.
//!
//! Decoding is pure and happens first. A KPL aggregated Kinesis record is unpacked into its
//! user records, each a reading of its own with its own outcome; one that cannot be unpacked
//! is dead-lettered whole. Then the writes of readings, the alert path (`alerts`: ledger and
//! episode lookup → alerts and on-call notices published) and the dead-letter write (one
//! object holding the batch's parse errors) run concurrently; the alerting readings are
//! written after their publish, with their message ids (the alert ledger), beside the
//! changed episode states. Readings a sink refused for good are dead-lettered after, in a
//! second object. Every call goes through one gate that bounds requests in flight and stops
//! starting new ones before the invocation deadline.

use crate::operation::AwsOperation;
use std::future::Future;
use std::time::Duration;

use futures::future::join_all;
use tokio::sync::Semaphore;
use tokio::time::Instant;

use crate::domain::episode::{EpisodeAction, EpisodePolicy};
use crate::domain::{FlowType, Reading, RejectReason, SequenceNumber, Severity, Thresholds};
use crate::kpl;
use crate::ports::{
    Alert, AlertPublisher, DeadLetter, DeadLetterSink, EpisodeStore, FailureClass, FailureKind,
    ItemResults, Located, OnCallPublisher, Origin, PublishedAlert, ReadingStore, ReadingWrite,
    TransientError, with_request_id,
};

mod alerts;
use alerts::{AlertStatus, EpisodeResult};

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

/// One write of readings: their slots, the call, one result per slot.
type StoreWrite = (Vec<usize>, CallTiming, ItemResults);

/// What [`Pipeline::readings_and_alerts`] did: each write (slots, call, one result per
/// slot), each alerting reading's alert, the reactors' runs and the requests of the alert path.
struct Written<'s> {
    stores: Vec<StoreWrite>,
    alerts: Vec<(Vec<CallTiming>, AlertStatus)>,
    runs: Vec<alerts::ReactorRun<'s>>,
    requests: Vec<AwsOperation>,
}

/// Results of the concurrent phase, applied to records afterwards.
struct Progress {
    calls: Vec<Vec<CallTiming>>,
    stored: Vec<Option<Result<(), TransientError>>>,
    alerted: Vec<Option<Result<bool, TransientError>>>,
    dead_lettered: Vec<Option<Result<(), TransientError>>>,
    /// Valid readings a sink refused for good: dead-lettered with this reason.
    sink_rejected: Vec<Option<RejectReason>>,
    /// The episode action of each reading, or why its reactor's episode could not be updated.
    episode: Vec<Option<EpisodeResult>>,
    /// AWS requests made, by operation.
    requests: Vec<(AwsOperation, usize)>,
}

impl Progress {
    fn new(records: usize) -> Self {
        Self {
            calls: vec![Vec::new(); records],
            stored: vec![None; records],
            alerted: vec![None; records],
            dead_lettered: vec![None; records],
            sink_rejected: vec![None; records],
            episode: vec![None; records],
            requests: Vec::new(),
        }
    }

    /// Counts one request of `operation`.
    fn count(&mut self, operation: AwsOperation) {
        match self.requests.iter_mut().find(|(o, _)| *o == operation) {
            Some((_, n)) => *n += 1,
            None => self.requests.push((operation, 1)),
        }
    }

    fn count_all(&mut self, operations: impl IntoIterator<Item = AwsOperation>) {
        for operation in operations {
            self.count(operation);
        }
    }

    /// How each alerting reading's alert went (`alerting`: their slots, in order). An alert
    /// already out means its reading is stored; one whose lookup failed, that it is not.
    fn apply_alerts(&mut self, alerting: &[usize], alerts: Vec<(Vec<CallTiming>, AlertStatus)>) {
        for (&i, (calls, status)) in alerting.iter().zip(alerts) {
            self.calls[i].extend(calls);
            self.alerted[i] = Some(match status {
                AlertStatus::AlreadySent => {
                    self.stored[i] = Some(Ok(()));
                    Ok(false)
                }
                AlertStatus::Published(_) => Ok(true),
                AlertStatus::Unknown(e) => {
                    self.stored[i] = Some(Err(e.clone()));
                    Err(e)
                }
                AlertStatus::NotPublished(e) => Err(e),
            });
        }
    }

    /// The readings' writes (after [`Progress::apply_alerts`]).
    fn apply_stores(&mut self, slots: &[Slot], stores: Vec<StoreWrite>) {
        for (chunk, timing, results) in stores {
            self.count(timing.operation);
            for (&i, result) in chunk.iter().zip(results) {
                if result.is_err() && matches!(self.alerted[i], Some(Ok(true))) {
                    // A replay inside this window may duplicate the alert, never drop it.
                    let seq = &slots[i].record.origin.sequence_number;
                    tracing::warn!(sequence_number = %seq, "alert published but its reading not written; the retry may publish it again");
                }
                self.calls[i].push(with_error(&timing, &result));
                self.stored[i] = Some(result);
            }
        }
    }

    /// Each reading's episode result with its reactor's calls.
    fn apply_episodes(
        &mut self,
        results: impl Iterator<Item = (usize, Vec<CallTiming>, EpisodeResult)>,
    ) {
        for (i, calls, result) in results {
            // A reading that alerts shares the lookup with its reactor's episode: each call
            // once on its span.
            for call in calls {
                let known = self.calls[i]
                    .iter()
                    .any(|c| c.operation == call.operation && c.started == call.started);
                if !known {
                    self.calls[i].push(call);
                }
            }
            self.episode[i] = Some(result);
        }
    }

    /// Dead-letter writes: one object carried every record of it, so the same call is on each
    /// record's span and its result is each one's (a transient failure reports them all for
    /// retry). `refused`: readings a sink refused, dead-lettered with that reason.
    fn apply_dead_letters(&mut self, slots: &[Slot], dead: Vec<DeadLetterWrite>, refused: bool) {
        for (letters, timing, result) in dead {
            self.count(timing.operation);
            for (i, reason) in letters {
                if refused {
                    let seq = &slots[i].record.origin.sequence_number;
                    tracing::warn!(sequence_number = %seq, reason = %reason, "a sink refused a valid reading; dead-lettered");
                    self.sink_rejected[i] = Some(reason);
                }
                self.calls[i].push(with_error(&timing, &result));
                self.dead_lettered[i] = Some(result.clone());
            }
        }
    }

    /// The readings a sink refused for good, with the reason to dead-letter them with.
    fn refused(&self) -> Vec<(usize, RejectReason)> {
        let refused =
            |e: Option<&TransientError>| e.is_some_and(|e| e.kind == FailureKind::Rejected);
        (0..self.stored.len())
            .filter_map(|i| {
                if refused(self.stored[i].as_ref().and_then(|r| r.as_ref().err())) {
                    Some((i, RejectReason::StoreRejected))
                } else if refused(self.alerted[i].as_ref().and_then(|r| r.as_ref().err())) {
                    Some((i, RejectReason::AlertRejected))
                } else {
                    None
                }
            })
            .collect()
    }

    fn into_report(mut self, slots: Vec<Slot>) -> BatchReport {
        let records = slots
            .into_iter()
            .enumerate()
            .map(|(i, slot)| finish(slot, &mut self, i))
            .collect();
        BatchReport {
            records,
            requests: self.requests,
        }
    }
}

impl<S, L, P, D> Pipeline<S, L, P, D>
where
    S: ReadingStore,
    L: EpisodeStore,
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

        let (written, dead) = tokio::join!(
            Box::pin(self.readings_and_alerts(&gate, &slots, &readings, &alerting)),
            self.dead_letter(&gate, &slots, &rejected),
        );
        let Written {
            stores,
            alerts,
            runs,
            requests: alert_requests,
        } = written;

        let mut progress = Progress::new(slots.len());
        progress.count_all(alert_requests);
        progress.apply_alerts(&alerting, alerts);
        progress.apply_stores(&slots, stores);
        progress.apply_episodes(alerts::episode_results(runs));
        progress.apply_dead_letters(&slots, dead, false);
        // Readings a sink refused for good (DynamoDB's ValidationException of the item, an
        // alert SNS cannot take): isolated by the adapters, dead-lettered here byte for byte,
        // in a second object written only when a sink refused any.
        let refused = progress.refused();
        let dead = self.dead_letter(&gate, &slots, &refused).await;
        progress.apply_dead_letters(&slots, dead, true);
        progress.into_report(slots)
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

    /// The readings' writes and the alert path. Readings that do not alert are written at
    /// once in full chunks, beside the alert path; the last partial chunk waits for it and
    /// is written with the alerting readings, which carry their alerts' message ids (the
    /// ledger), so that recording an alert costs no request of its own. The changed episode
    /// states are written beside those last chunks.
    async fn readings_and_alerts<'s>(
        &self,
        gate: &Gate,
        slots: &'s [Slot],
        readings: &[usize],
        alerting: &[usize],
    ) -> Written<'s> {
        let cold: Vec<usize> = readings
            .iter()
            .copied()
            .filter(|&i| slots[i].severity.is_none())
            .collect();
        let at_once = if alerting.is_empty() {
            cold.len()
        } else {
            cold.len() / S::MAX_BATCH * S::MAX_BATCH
        };
        let (cold_now, cold_later) = cold.split_at(at_once);
        let cold_now: Vec<(usize, Option<PublishedAlert<'_>>)> =
            cold_now.iter().map(|&i| (i, None)).collect();
        let (mut stores, path) = tokio::join!(
            join_all(
                cold_now
                    .chunks(S::MAX_BATCH)
                    .map(|chunk| self.store_chunk(gate, slots, chunk))
            ),
            Box::pin(self.alert_path(gate, slots, readings, alerting)),
        );
        let alerts::AlertPath {
            alerts,
            mut runs,
            mut requests,
        } = path;
        let later: Vec<(usize, Option<PublishedAlert<'_>>)> = cold_later
            .iter()
            .map(|&i| (i, None))
            .chain(
                alerting
                    .iter()
                    .zip(&alerts)
                    .filter_map(|(&i, (_, status))| match status {
                        AlertStatus::Published(id) => Some((
                            i,
                            Some(PublishedAlert {
                                severity: slots[i].severity.expect("an alerting reading"),
                                message_id: id,
                            }),
                        )),
                        AlertStatus::NotPublished(_) => Some((i, None)),
                        AlertStatus::AlreadySent | AlertStatus::Unknown(_) => None,
                    }),
            )
            .collect();
        let (later_stores, saves) = tokio::join!(
            join_all(
                later
                    .chunks(S::MAX_BATCH)
                    .map(|chunk| self.store_chunk(gate, slots, chunk))
            ),
            self.save_states(gate, slots, &mut runs),
        );
        stores.extend(later_stores);
        requests.extend(saves);
        Written {
            stores,
            alerts,
            runs,
            requests,
        }
    }

    /// Writes one chunk of readings (slot, alert published for it now), one request.
    async fn store_chunk(
        &self,
        gate: &Gate,
        slots: &[Slot],
        chunk: &[(usize, Option<PublishedAlert<'_>>)],
    ) -> StoreWrite {
        let batch: Vec<ReadingWrite<'_>> = chunk
            .iter()
            .filter_map(|&(i, alert)| {
                slots[i]
                    .located()
                    .map(|located| ReadingWrite { located, alert })
            })
            .collect();
        let (timing, result) = gate
            .call(S::OPERATION, self.store.put_readings(&batch))
            .await;
        let results = match result {
            Ok(results) => results,
            Err(e) => vec![Err(e); chunk.len()],
        };
        (chunk.iter().map(|&(i, _)| i).collect(), timing, results)
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
