//! The in-memory episode store and publishers behind ports that fail when a plan says so, and
//! a log of what really happened: every notification and alert published, every state and
//! ledger write that failed or landed, in order.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use reactor_monitor::adapters::memory::{MemoryAlerts, MemoryStore};
use reactor_monitor::domain::SequenceNumber;
use reactor_monitor::domain::episode::{Notification, ReactorState};
use reactor_monitor::operation::AwsOperation;
use reactor_monitor::ports::{
    Alert, AlertPublisher, EpisodeStore, FailureKind, ItemResults, Loaded, Notice, OnCallPublisher,
    ReadingStore, ReadingWrite, StateChange, TransientError, VersionedState,
};

/// The calls a plan can fail, each counted apart from 0 in the order they are made.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Faulted {
    /// The batch's BatchGetItem of states and ledger, and the silence check's scan.
    Lookup,
    /// The conditional write of states (a transaction: it fails whole).
    StateWrite,
    /// The readings' writes, which carry the alert ledger's records.
    LedgerWrite,
    AlertPublish,
    OnCallPublish,
}

/// How a planned call fails: whole (a throttle, a 5xx), or in one entry of its batch (SNS
/// `Failed` entries, DynamoDB unprocessed items), chosen modulo the batch's length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    Whole,
    Entry(usize),
}

/// Which calls fail: for each kind, the calls' numbers.
pub type FaultPlan = BTreeMap<Faulted, BTreeMap<usize, Shape>>;

/// A record as the alert ledger knows it: shard and sequence number.
pub type RecordKey = (String, SequenceNumber);

#[derive(Debug, Clone)]
pub enum Event {
    Notified(Notification),
    Alerted(RecordKey),
    StateWritten(String, ReactorState),
    StateWriteFailed(String),
    LedgerWriteFailed(RecordKey),
}

pub type Log = Arc<Mutex<Vec<Event>>>;

/// A port around an in-memory one, failing the calls its plan names.
pub struct Scripted<T> {
    pub inner: T,
    plan: FaultPlan,
    made: Mutex<BTreeMap<Faulted, usize>>,
    pub log: Log,
    /// Let other tasks run between a lookup and its answer, so that concurrent deliveries of
    /// one reactor read the same state and race to write it.
    pub yield_after_lookup: bool,
}

impl<T> Scripted<T> {
    pub fn new(inner: T, plan: FaultPlan, log: Log) -> Self {
        Self {
            inner,
            plan,
            made: Mutex::default(),
            log,
            yield_after_lookup: false,
        }
    }

    /// For a call of `kind` carrying `len` items: which of them fail.
    fn draw(&self, kind: Faulted, len: usize) -> Vec<bool> {
        let at = {
            let mut made = self.made.lock().unwrap();
            let n = made.entry(kind).or_default();
            *n += 1;
            *n - 1
        };
        match self.plan.get(&kind).and_then(|calls| calls.get(&at)) {
            None => vec![false; len],
            Some(Shape::Whole) => vec![true; len],
            Some(Shape::Entry(i)) => (0..len).map(|j| j == i % len.max(1)).collect(),
        }
    }

    fn note(&self, events: impl IntoIterator<Item = Event>) {
        self.log.lock().unwrap().extend(events);
    }
}

fn injected(operation: AwsOperation) -> TransientError {
    TransientError::new(operation, FailureKind::Throttled, "injected fault")
}

/// The items that do not fail, for the inner port.
fn kept<I: Copy>(items: &[I], failing: &[bool]) -> Vec<I> {
    items
        .iter()
        .zip(failing)
        .filter(|(_, f)| !**f)
        .map(|(i, _)| *i)
        .collect()
}

/// One result per item: the injected failures, and the inner port's results for the rest.
fn merge<R>(
    failing: &[bool],
    done: Vec<Result<R, TransientError>>,
    operation: AwsOperation,
) -> Vec<Result<R, TransientError>> {
    let mut done = done.into_iter();
    failing
        .iter()
        .map(|&f| {
            if f {
                Err(injected(operation))
            } else {
                done.next().expect("one result per item kept")
            }
        })
        .collect()
}

fn key_of(alert: &Alert<'_>) -> RecordKey {
    let origin = alert.located.origin;
    (origin.shard_id.clone(), origin.sequence_number.clone())
}

/// The readings' writes: those of alerting readings are the alert ledger's records.
impl ReadingStore for Scripted<MemoryStore> {
    const OPERATION: AwsOperation = <MemoryStore as ReadingStore>::OPERATION;
    const MAX_BATCH: usize = <MemoryStore as ReadingStore>::MAX_BATCH;

    async fn put_readings(&self, batch: &[ReadingWrite<'_>]) -> ItemResults {
        let failing = self.draw(Faulted::LedgerWrite, batch.len());
        let done = self.inner.put_readings(&kept(batch, &failing)).await;
        let results = merge(&failing, done, Self::OPERATION);
        self.note(
            batch
                .iter()
                .zip(&results)
                .filter(|(w, r)| w.alert.is_some() && r.is_err())
                .map(|(w, _)| {
                    let origin = w.located.origin;
                    Event::LedgerWriteFailed((
                        origin.shard_id.clone(),
                        origin.sequence_number.clone(),
                    ))
                }),
        );
        results
    }
}

impl EpisodeStore for Scripted<MemoryStore> {
    const LOAD_OPERATION: AwsOperation = <MemoryStore as EpisodeStore>::LOAD_OPERATION;
    const SAVE_OPERATION: AwsOperation = <MemoryStore as EpisodeStore>::SAVE_OPERATION;
    const MAX_LOAD: usize = <MemoryStore as EpisodeStore>::MAX_LOAD;
    const MAX_SAVE: usize = <MemoryStore as EpisodeStore>::MAX_SAVE;

    async fn load(
        &self,
        reactors: &[&str],
        alerts: &[Alert<'_>],
    ) -> Result<Loaded, TransientError> {
        if self.draw(Faulted::Lookup, 1)[0] {
            return Err(injected(Self::LOAD_OPERATION));
        }
        let loaded = self.inner.load(reactors, alerts).await;
        if self.yield_after_lookup {
            tokio::task::yield_now().await;
        }
        loaded
    }

    async fn save(&self, changes: &[StateChange<'_>]) -> ItemResults {
        let states = if self.draw(Faulted::StateWrite, 1)[0] {
            vec![Err(injected(Self::SAVE_OPERATION)); changes.len()]
        } else {
            self.inner.save(changes).await
        };
        self.note(changes.iter().zip(&states).map(|(c, r)| match r {
            Ok(()) => Event::StateWritten(c.reactor.to_owned(), c.state.clone()),
            Err(_) => Event::StateWriteFailed(c.reactor.to_owned()),
        }));
        states
    }

    async fn all_states(&self) -> Result<Vec<(String, VersionedState)>, TransientError> {
        if self.draw(Faulted::Lookup, 1)[0] {
            return Err(injected(AwsOperation::DynamoDbScan));
        }
        self.inner.all_states().await
    }
}

impl AlertPublisher for Scripted<MemoryAlerts> {
    const OPERATION: AwsOperation = <MemoryAlerts as AlertPublisher>::OPERATION;
    const MAX_BATCH: usize = <MemoryAlerts as AlertPublisher>::MAX_BATCH;

    async fn publish(&self, alerts: &[Alert<'_>]) -> Vec<Result<String, TransientError>> {
        let failing = self.draw(Faulted::AlertPublish, alerts.len());
        let done = self.inner.publish(&kept(alerts, &failing)).await;
        let results = merge(&failing, done, Self::OPERATION);
        self.note(
            alerts
                .iter()
                .zip(&results)
                .filter(|(_, r)| r.is_ok())
                .map(|(a, _)| Event::Alerted(key_of(a))),
        );
        results
    }
}

impl OnCallPublisher for Scripted<MemoryAlerts> {
    const NOTIFY_OPERATION: AwsOperation = <MemoryAlerts as OnCallPublisher>::NOTIFY_OPERATION;
    const MAX_NOTIFY_BATCH: usize = <MemoryAlerts as OnCallPublisher>::MAX_NOTIFY_BATCH;

    async fn notify(&self, notices: &[Notice<'_>]) -> Vec<Result<String, TransientError>> {
        let failing = self.draw(Faulted::OnCallPublish, notices.len());
        let done = self.inner.notify(&kept(notices, &failing)).await;
        let results = merge(&failing, done, Self::NOTIFY_OPERATION);
        self.note(
            notices
                .iter()
                .zip(&results)
                .filter(|(_, r)| r.is_ok())
                .map(|(n, _)| Event::Notified(n.notification.clone())),
        );
        results
    }
}
