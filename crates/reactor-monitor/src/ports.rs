//! The capabilities the pipeline needs from the outside world, one small trait each.
//! Adapters implement them for AWS (`adapters::aws`) and in memory (`adapters::memory`).

use crate::operation::AwsOperation;
use std::cell::RefCell;
use std::future::Future;
use std::sync::Arc;

use chrono::{DateTime, Utc};

use crate::domain::episode::{Notification, ReactorState};
use crate::domain::{Reading, RejectReason, SequenceNumber, Severity};

/// Where a record sits in the stream: what identifies it across replays.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin {
    pub shard_id: String,
    pub sequence_number: SequenceNumber,
    pub partition_key: String,
    pub arrival: DateTime<Utc>,
}

/// A valid reading with its place in the stream.
#[derive(Debug, Clone, Copy)]
pub struct Located<'a> {
    pub reading: &'a Reading,
    pub origin: &'a Origin,
}

/// An alert to publish for a reading at or above a threshold.
#[derive(Debug, Clone, Copy)]
pub struct Alert<'a> {
    pub located: Located<'a>,
    pub severity: Severity,
    pub threshold_c: f64,
}

/// A rejected payload, kept byte for byte.
#[derive(Debug, Clone, Copy)]
pub struct DeadLetter<'a> {
    pub payload: &'a [u8],
    pub origin: &'a Origin,
    pub reason: RejectReason,
}

/// Why a call did not complete, which decides what happens next ([`FailureKind::class`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureKind {
    /// The service refused this item as invalid (a `ValidationException` of the item, an SNS
    /// entry failed for a parameter): retrying cannot help. A batch call refused as a whole
    /// is split until the item is found; the record is dead-lettered with a reason and its
    /// neighbours go on.
    Rejected,
    /// The function cannot use its resources (access denied, missing table, topic or bucket,
    /// KMS key disabled or not usable, invalid credentials): nothing will succeed until
    /// someone fixes the configuration. The invocation fails so that alarms fire; no good
    /// reading is dead-lettered for it.
    Misconfigured,
    /// The service asked us to slow down (throttling, provisioned throughput exceeded).
    Throttled,
    /// The service accepted the request but not this item (UnprocessedItems, a failed batch entry).
    Unprocessed,
    /// A conditional write found the item moved on: another delivery wrote it first (a
    /// reactor's episode state written by another shard, or by the silence check).
    Conflict,
    /// A server or network error.
    Service,
    /// The call did not finish before the invocation deadline.
    Timeout,
    /// The call was not started: the invocation deadline was too close.
    NotStarted,
}

/// What must happen next after a failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureClass {
    /// Retry (the SDK's own retries, then the event source mapping through
    /// `batchItemFailures`).
    Transient,
    /// Permanent for one record: isolate it, dead-letter it with a reason, keep the others.
    PermanentForRecord,
    /// Permanent for the function: fail the invocation loudly.
    PermanentForFunction,
}

impl FailureKind {
    pub fn class(self) -> FailureClass {
        match self {
            Self::Rejected => FailureClass::PermanentForRecord,
            Self::Misconfigured => FailureClass::PermanentForFunction,
            Self::Throttled
            | Self::Unprocessed
            | Self::Conflict
            | Self::Service
            | Self::Timeout
            | Self::NotStarted => FailureClass::Transient,
        }
    }
}

/// A failure of a call, for one record, with its kind ([`FailureKind::class`] says what
/// happens next). Keeps its cause for the logs.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{operation} failed ({kind:?}): {message}")]
pub struct TransientError {
    pub operation: AwsOperation,
    pub kind: FailureKind,
    pub message: String,
    #[source]
    pub source: Option<Arc<dyn std::error::Error + Send + Sync>>,
}

impl TransientError {
    pub fn new(operation: AwsOperation, kind: FailureKind, message: impl Into<String>) -> Self {
        Self {
            operation,
            kind,
            message: message.into(),
            source: None,
        }
    }

    pub fn with_source(mut self, source: impl std::error::Error + Send + Sync + 'static) -> Self {
        self.source = Some(Arc::new(source));
        self
    }
}

/// One result per item, in the order the items were given.
pub type ItemResults = Vec<Result<(), TransientError>>;

/// An alert published for a reading by this delivery: kept on the reading's item, where it is
/// the alert ledger (a later delivery of the record finds it and does not publish again).
#[derive(Debug, Clone, Copy)]
pub struct PublishedAlert<'a> {
    pub severity: Severity,
    /// The publisher's message id (SNS `MessageId`).
    pub message_id: &'a str,
}

/// One reading to store, with the alert this delivery published for it, if any.
#[derive(Debug, Clone, Copy)]
pub struct ReadingWrite<'a> {
    pub located: Located<'a>,
    pub alert: Option<PublishedAlert<'a>>,
}

/// Durable storage of readings, idempotent on the reading's origin.
pub trait ReadingStore: Send + Sync {
    /// The AWS operation that carries a write, for spans and request counts.
    const OPERATION: AwsOperation;
    /// Most readings one call takes.
    const MAX_BATCH: usize;
    /// Writes the readings (one result each, in order); a reading with an alert is written
    /// with it, and that write is what a later [`EpisodeStore::load`] finds.
    fn put_readings(&self, batch: &[ReadingWrite<'_>]) -> impl Future<Output = ItemResults> + Send;
}

/// Delivers alerts to on-call.
pub trait AlertPublisher: Send + Sync {
    const OPERATION: AwsOperation;
    const MAX_BATCH: usize;
    /// One result per alert: the message id when published.
    fn publish(
        &self,
        alerts: &[Alert<'_>],
    ) -> impl Future<Output = Vec<Result<String, TransientError>>> + Send;
}

/// Keeps payloads that cannot be read, with why, for people to look at.
pub trait DeadLetterSink: Send + Sync {
    /// The AWS operation that carries a write, for spans and request counts.
    const OPERATION: AwsOperation;
    /// Keeps `letters`, the rejected records of one phase of an invocation, all of one shard,
    /// in one request: all of them are kept, or none (the error says why). Keeping the same
    /// letters again (a replayed batch) overwrites what the first call kept. No request for no
    /// letters.
    fn put(
        &self,
        letters: &[DeadLetter<'_>],
    ) -> impl Future<Output = Result<(), TransientError>> + Send;
}

tokio::task_local! {
    /// The AWS request id of the call running in this task: noted by the adapter that made the
    /// request, read by the pipeline for the call's span (`aws.request_id`). Ambient, like a
    /// tracing span, so that the ports keep returning only what the pipeline decides on.
    static REQUEST_ID: RefCell<Option<String>>;
}

/// Runs one call and returns its output with the request id an adapter noted while it ran.
pub async fn with_request_id<R>(call: impl Future<Output = R>) -> (R, Option<String>) {
    REQUEST_ID
        .scope(RefCell::new(None), async move {
            let output = call.await;
            (output, REQUEST_ID.with(|id| id.borrow_mut().take()))
        })
        .await
}

/// Notes the request id of an AWS response for the running call (the last one wins when a
/// call retries); outside [`with_request_id`] it does nothing.
pub fn note_request_id(id: Option<&str>) {
    if let Some(id) = id {
        let _ = REQUEST_ID.try_with(|cell| *cell.borrow_mut() = Some(id.to_owned()));
    }
}

/// A reactor's episode state as stored, with the version its conditional write expects.
#[derive(Debug, Clone, PartialEq)]
pub struct VersionedState {
    pub state: ReactorState,
    /// Incremented by every write; a write expecting another version is refused.
    pub version: u64,
}

/// One conditional write of a reactor's episode state.
#[derive(Debug, Clone, Copy)]
pub struct StateChange<'a> {
    pub reactor: &'a str,
    /// The version read (`None`: the reactor had no state); the write is refused if the stored
    /// state is no longer that one.
    pub expected_version: Option<u64>,
    pub state: &'a ReactorState,
}

/// What one lookup found: the states of its reactors and which of its alerts were published.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Loaded {
    /// One per reactor, in order (`None`: never seen).
    pub states: Vec<Option<VersionedState>>,
    /// One per alert, in order: already published (the alert ledger has it).
    pub sent: Vec<bool>,
}

/// Per-reactor episode state, changed only by conditional writes (one item per reactor), read
/// together with the alert ledger: one lookup per batch, not two.
pub trait EpisodeStore: Send + Sync {
    const LOAD_OPERATION: AwsOperation;
    const SAVE_OPERATION: AwsOperation;
    /// Most keys (reactors + alerts) one lookup takes.
    const MAX_LOAD: usize;
    /// Most state changes one save takes.
    const MAX_SAVE: usize;
    /// In one request: the states of these reactors and, for each alert, whether it was
    /// already published — the alert ledger, which remembers published alerts so that a
    /// replayed record does not alert twice: its record is the reading's stored item, written
    /// after the publish ([`ReadingStore::put_readings`] with a [`PublishedAlert`]). With no
    /// reactors it reads the ledger alone (a function without episodes).
    fn load(
        &self,
        reactors: &[&str],
        alerts: &[Alert<'_>],
    ) -> impl Future<Output = Result<Loaded, TransientError>> + Send;
    /// In one request: each change if its reactor's state is still the version expected
    /// (one result per change). A change refused because the state moved on fails with
    /// [`FailureKind::Conflict`] (retry: the next delivery reads the new state); the other
    /// changes are still written.
    fn save(&self, changes: &[StateChange<'_>]) -> impl Future<Output = ItemResults> + Send;
    /// Every reactor's state, for the silence check.
    fn all_states(
        &self,
    ) -> impl Future<Output = Result<Vec<(String, VersionedState)>, TransientError>> + Send;
}

/// A notification for people and where it comes from.
#[derive(Debug, Clone, Copy)]
pub struct Notice<'a> {
    pub notification: &'a Notification,
    /// The record of the reading that caused it (`None` for the silence check).
    pub origin: Option<&'a Origin>,
    /// The W3C trace context the reading's producer sent, if any. (The notice's own context, in
    /// the reading's trace, is decided by the publisher: `propagation::notice_trace_headers`.)
    pub traceparent: Option<&'a str>,
}

/// Delivers episode notifications to people (the on-call topic), apart from the alert topic.
pub trait OnCallPublisher: Send + Sync {
    const NOTIFY_OPERATION: AwsOperation;
    const MAX_NOTIFY_BATCH: usize;
    /// One result per notice: the message id when published.
    fn notify(
        &self,
        notices: &[Notice<'_>],
    ) -> impl Future<Output = Vec<Result<String, TransientError>>> + Send;
}
