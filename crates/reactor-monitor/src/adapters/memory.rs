//! In-memory ports for unit tests of the pipeline and for benchmarks, with scripted faults.

use crate::operation::AwsOperation;
use std::collections::{BTreeMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex};

use crate::domain::episode::Notification;
use crate::domain::{RejectReason, SequenceNumber, Severity};
use crate::ports::{
    Alert, AlertPublisher, DeadLetter, DeadLetterSink, EpisodeStore, FailureKind, ItemResults,
    Loaded, Notice, OnCallPublisher, ReadingStore, ReadingWrite, StateChange, TransientError,
    VersionedState,
};

type Key = (String, SequenceNumber);

fn key(origin: &crate::ports::Origin) -> Key {
    (origin.shard_id.clone(), origin.sequence_number.clone())
}

/// Scripted faults: which sequence numbers fail on their next attempt(s).
#[derive(Default)]
pub struct Faults {
    /// Each entry fails the next call that carries it, once per occurrence.
    failing: Mutex<Vec<SequenceNumber>>,
    /// Whole calls fail while this is non-zero (decremented per call).
    failing_calls: Mutex<usize>,
}

impl Faults {
    pub fn fail_once(&self, seq: &str) {
        self.failing.lock().unwrap().push(SequenceNumber::new(seq));
    }

    pub fn fail_next_calls(&self, n: usize) {
        *self.failing_calls.lock().unwrap() = n;
    }

    fn call_fails(&self) -> bool {
        let mut n = self.failing_calls.lock().unwrap();
        if *n > 0 {
            *n -= 1;
            true
        } else {
            false
        }
    }

    fn item_fails(&self, seq: &SequenceNumber) -> bool {
        let mut failing = self.failing.lock().unwrap();
        match failing.iter().position(|s| s == seq) {
            Some(at) => {
                failing.remove(at);
                true
            }
            None => false,
        }
    }
}

fn failure(operation: AwsOperation, kind: FailureKind) -> TransientError {
    TransientError::new(operation, kind, "injected fault")
}

/// Readings and episode states in memory, shared by its clones: the pipeline's `store` and
/// `ledger` are one table, as they are in DynamoDB.
#[derive(Clone, Default)]
pub struct MemoryStore(Arc<MemoryTables>);

impl std::ops::Deref for MemoryStore {
    type Target = MemoryTables;

    fn deref(&self) -> &MemoryTables {
        &self.0
    }
}

/// What a [`MemoryStore`] holds; `ledger` has the keys of readings stored with their alert.
#[derive(Default)]
pub struct MemoryTables {
    pub readings: Mutex<BTreeMap<Key, (String, f64)>>,
    pub puts: Mutex<usize>,
    pub ledger: Mutex<HashSet<Key>>,
    /// Episode state per reactor.
    pub episodes: Mutex<BTreeMap<String, VersionedState>>,
    /// Faults of the episode state's writes (by call; items by the reactor's sequence
    /// numbers are not known here).
    pub episode_faults: Faults,
    pub faults: Faults,
}

impl ReadingStore for MemoryStore {
    const OPERATION: AwsOperation = AwsOperation::DynamoDbBatchWriteItem;
    const MAX_BATCH: usize = 25;

    async fn put_readings(&self, batch: &[ReadingWrite<'_>]) -> ItemResults {
        if self.faults.call_fails() {
            return vec![Err(failure(Self::OPERATION, FailureKind::Throttled)); batch.len()];
        }
        batch
            .iter()
            .map(|w| {
                let l = &w.located;
                if self.faults.item_fails(&l.origin.sequence_number) {
                    return Err(failure(Self::OPERATION, FailureKind::Unprocessed));
                }
                *self.puts.lock().unwrap() += 1;
                self.readings
                    .lock()
                    .unwrap()
                    .insert(key(l.origin), (l.reading.reactor.clone(), l.reading.temp_c));
                // The item is the ledger: written again without an alert, it has none.
                let mut ledger = self.ledger.lock().unwrap();
                if w.alert.is_some() {
                    ledger.insert(key(l.origin));
                } else {
                    ledger.remove(&key(l.origin));
                }
                Ok(())
            })
            .collect()
    }
}

impl MemoryStore {
    /// For each alert, whether its reading is stored with it (the alert ledger).
    fn already_sent(&self, alerts: &[Alert<'_>]) -> Vec<bool> {
        let ledger = self.ledger.lock().unwrap();
        alerts
            .iter()
            .map(|a| ledger.contains(&key(a.located.origin)))
            .collect()
    }
}

impl EpisodeStore for MemoryStore {
    const LOAD_OPERATION: AwsOperation = AwsOperation::DynamoDbBatchGetItem;
    const SAVE_OPERATION: AwsOperation = AwsOperation::DynamoDbTransactWriteItems;
    const MAX_LOAD: usize = 100;
    const MAX_SAVE: usize = 100;

    async fn load(
        &self,
        reactors: &[&str],
        alerts: &[Alert<'_>],
    ) -> Result<Loaded, TransientError> {
        let states = self.episodes.lock().unwrap().clone();
        Ok(Loaded {
            states: reactors.iter().map(|r| states.get(*r).cloned()).collect(),
            sent: self.already_sent(alerts),
        })
    }

    async fn save(&self, changes: &[StateChange<'_>]) -> ItemResults {
        if self.episode_faults.call_fails() {
            let e = failure(Self::SAVE_OPERATION, FailureKind::Throttled);
            return vec![Err(e); changes.len()];
        }
        let mut states = self.episodes.lock().unwrap();
        changes
            .iter()
            .map(|c| {
                let current = states.get(c.reactor).map(|s| s.version);
                if current != c.expected_version {
                    return Err(failure(Self::SAVE_OPERATION, FailureKind::Conflict));
                }
                states.insert(
                    c.reactor.to_owned(),
                    VersionedState {
                        state: c.state.clone(),
                        version: current.map_or(1, |v| v + 1),
                    },
                );
                Ok(())
            })
            .collect()
    }

    async fn all_states(&self) -> Result<Vec<(String, VersionedState)>, TransientError> {
        let states = self.episodes.lock().unwrap();
        Ok(states.iter().map(|(r, s)| (r.clone(), s.clone())).collect())
    }
}

/// Published alerts in memory, in publish order.
#[derive(Default)]
pub struct MemoryAlerts {
    pub published: Mutex<Vec<(String, Severity, SequenceNumber)>>,
    /// Episode notifications delivered to on-call, in order.
    pub notified: Mutex<Vec<Notification>>,
    /// Faults of the on-call publish (by call).
    pub notify_faults: Faults,
    pub faults: Faults,
}

impl OnCallPublisher for MemoryAlerts {
    const NOTIFY_OPERATION: AwsOperation = super::on_call::OPERATION;
    const MAX_NOTIFY_BATCH: usize = 10;

    async fn notify(&self, notices: &[Notice<'_>]) -> Vec<Result<String, TransientError>> {
        if self.notify_faults.call_fails() {
            return vec![
                Err(failure(Self::NOTIFY_OPERATION, FailureKind::Throttled));
                notices.len()
            ];
        }
        let mut notified = self.notified.lock().unwrap();
        notices
            .iter()
            .map(|n| {
                notified.push(n.notification.clone());
                Ok(format!("notice-{}", notified.len()))
            })
            .collect()
    }
}

impl AlertPublisher for MemoryAlerts {
    const OPERATION: AwsOperation = AwsOperation::SnsPublishBatch;
    const MAX_BATCH: usize = 10;

    async fn publish(&self, alerts: &[Alert<'_>]) -> Vec<Result<String, TransientError>> {
        if self.faults.call_fails() {
            return vec![Err(failure(Self::OPERATION, FailureKind::Throttled)); alerts.len()];
        }
        alerts
            .iter()
            .map(|a| {
                let seq = &a.located.origin.sequence_number;
                if self.faults.item_fails(seq) {
                    return Err(failure(Self::OPERATION, FailureKind::Unprocessed));
                }
                let mut published = self.published.lock().unwrap();
                published.push((a.located.reading.reactor.clone(), a.severity, seq.clone()));
                Ok(format!("message-{}", published.len()))
            })
            .collect()
    }
}

/// Dead letters in memory: each record under its identity (shard, sequence number with the
/// subsequence), as a reader of the S3 sink's objects keeps them, so that replays overwrite.
#[derive(Default)]
pub struct MemoryDeadLetters {
    pub letters: Mutex<BTreeMap<Key, (Vec<u8>, RejectReason)>>,
    /// The records of each write that succeeded, in order: one entry per object.
    pub objects: Mutex<Vec<Vec<Key>>>,
    /// A write fails whole when its call fails or when it carries any record scripted to
    /// fail (each such record's fault is used up).
    pub faults: Faults,
    /// Calls waiting to be released, for deadline tests: each call takes the next delay.
    pub delays: Mutex<VecDeque<std::time::Duration>>,
}

impl DeadLetterSink for MemoryDeadLetters {
    const OPERATION: AwsOperation = AwsOperation::S3PutObject;

    async fn put(&self, letters: &[DeadLetter<'_>]) -> Result<(), TransientError> {
        if letters.is_empty() {
            return Ok(());
        }
        let delay = self.delays.lock().unwrap().pop_front();
        if let Some(delay) = delay {
            tokio::time::sleep(delay).await;
        }
        let fails = self.faults.call_fails()
            || letters
                .iter()
                .filter(|l| self.faults.item_fails(&l.origin.sequence_number))
                .count()
                > 0;
        if fails {
            return Err(failure(Self::OPERATION, FailureKind::Service));
        }
        let mut kept = self.letters.lock().unwrap();
        for letter in letters {
            kept.insert(key(letter.origin), (letter.payload.to_vec(), letter.reason));
        }
        self.objects
            .lock()
            .unwrap()
            .push(letters.iter().map(|l| key(l.origin)).collect());
        Ok(())
    }
}

/// A pipeline over in-memory ports with the default thresholds, for tests and benchmarks.
pub fn pipeline(
    max_in_flight: usize,
) -> crate::pipeline::Pipeline<MemoryStore, MemoryStore, MemoryAlerts, MemoryDeadLetters> {
    let store = MemoryStore::default();
    crate::pipeline::Pipeline {
        ledger: store.clone(),
        store,
        publisher: MemoryAlerts::default(),
        dead_letters: MemoryDeadLetters::default(),
        thresholds: crate::domain::Thresholds::default(),
        episodes: Some(crate::domain::episode::EpisodePolicy::default()),
        limits: crate::pipeline::Limits {
            max_in_flight,
            deadline_margin: std::time::Duration::from_millis(200),
        },
    }
}
