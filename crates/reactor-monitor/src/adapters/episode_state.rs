//! DynamoDB: alert-episode state, one item per reactor in a table of its own (key `reactor`),
//! read in the same BatchGetItem as the alert ledger's lookup and written with conditional
//! puts in one TransactWriteItems per batch, when a state changed. A table of its own rather
//! than a reserved sort key in the
//! readings table: the silence check scans every reactor's state, and a scan of the readings
//! table would read every reading.

use crate::operation::AwsOperation;
use std::collections::HashMap;

use aws_sdk_dynamodb::operation::RequestId;
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::types::{AttributeValue, KeysAndAttributes, Put, TransactWriteItem};

use super::dynamodb::{DynamoDbStore, MAX_BATCH_GET_KEYS};
use super::sdk_failure;
use crate::domain::episode::ReactorState;
use crate::ports::{
    Alert, EpisodeStore, FailureKind, ItemResults, Loaded, StateChange, TransientError,
    VersionedState, note_request_id,
};

/// TransactWriteItems takes at most 100 actions
/// (<https://docs.aws.amazon.com/amazondynamodb/latest/APIReference/API_TransactWriteItems.html>).
pub const MAX_TRANSACT_ITEMS: usize = 100;

/// Attribute names of the episode table.
pub mod attr {
    pub const REACTOR: &str = "reactor";
    /// Incremented by every write; the condition of the next.
    pub const VERSION: &str = "version";
    /// The state as JSON (`domain::episode::ReactorState`).
    pub const STATE: &str = "state";
    /// Date of the newest reading applied (UTC, RFC 3339), readable without the JSON.
    pub const LAST_READING_AT: &str = "last_reading_at";
    /// `warning` / `emergency` while a hot episode is open (absent otherwise).
    pub const OPEN_SEVERITY: &str = "open_severity";
    /// `true` while the reactor is silent (absent otherwise).
    pub const SILENT: &str = "silent";
}

const LOAD: AwsOperation = AwsOperation::DynamoDbBatchGetItem;
const SAVE: AwsOperation = AwsOperation::DynamoDbTransactWriteItems;
const SCAN: AwsOperation = AwsOperation::DynamoDbScan;

impl DynamoDbStore {
    fn episode_table(&self, operation: AwsOperation) -> Result<&str, TransientError> {
        self.episode_table.as_deref().ok_or_else(|| {
            TransientError::new(
                operation,
                FailureKind::Misconfigured,
                "no episode table configured",
            )
        })
    }

    /// The item of a reactor's state at `version`.
    pub fn episode_item(
        reactor: &str,
        state: &ReactorState,
        version: u64,
    ) -> HashMap<String, AttributeValue> {
        let s = |v: String| AttributeValue::S(v);
        let mut item = HashMap::with_capacity(6);
        item.insert(attr::REACTOR.into(), s(reactor.to_owned()));
        item.insert(attr::VERSION.into(), AttributeValue::N(version.to_string()));
        item.insert(
            attr::STATE.into(),
            s(serde_json::to_string(state).expect("a state serializes")),
        );
        item.insert(
            attr::LAST_READING_AT.into(),
            s(state
                .last_reading_at
                .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)),
        );
        if let Some(hot) = &state.hot {
            item.insert(attr::OPEN_SEVERITY.into(), s(hot.severity.as_str().into()));
        }
        if state.silent.is_some() {
            item.insert(attr::SILENT.into(), AttributeValue::Bool(true));
        }
        item
    }

    /// A reactor's state from its item; `None` when the item is not one this code wrote.
    pub fn episode_of(item: &HashMap<String, AttributeValue>) -> Option<(String, VersionedState)> {
        let reactor = item.get(attr::REACTOR)?.as_s().ok()?.clone();
        let version = item.get(attr::VERSION)?.as_n().ok()?.parse().ok()?;
        let state = serde_json::from_str(item.get(attr::STATE)?.as_s().ok()?).ok()?;
        Some((reactor, VersionedState { state, version }))
    }
}

impl EpisodeStore for DynamoDbStore {
    const LOAD_OPERATION: AwsOperation = LOAD;
    const SAVE_OPERATION: AwsOperation = SAVE;
    const MAX_LOAD: usize = MAX_BATCH_GET_KEYS;
    const MAX_SAVE: usize = MAX_TRANSACT_ITEMS;

    /// One BatchGetItem naming both tables: the episode states (key `reactor`) and the alerts'
    /// readings (the ledger, `DynamoDbStore::ledger_lookup`), unprocessed keys of either asked
    /// again. Without reactors the episode table is not named (nor needed).
    async fn load(
        &self,
        reactors: &[&str],
        alerts: &[Alert<'_>],
    ) -> Result<Loaded, TransientError> {
        let invalid =
            |e| TransientError::new(LOAD, FailureKind::Service, "bad request").with_source(e);
        let mut pending: HashMap<String, KeysAndAttributes> = HashMap::new();
        let episode_table = if reactors.is_empty() {
            None
        } else {
            let table = self.episode_table(LOAD)?;
            let state_keys = reactors
                .iter()
                .map(|r| {
                    HashMap::from([(attr::REACTOR.to_owned(), AttributeValue::S((*r).into()))])
                })
                .collect();
            let request = KeysAndAttributes::builder()
                .set_keys(Some(state_keys))
                .consistent_read(true)
                .build()
                .map_err(invalid)?;
            pending.insert(table.to_owned(), request);
            Some(table)
        };
        let mut ledger_keys = Vec::new();
        if !alerts.is_empty() {
            let request = Self::ledger_lookup(alerts).map_err(invalid)?;
            ledger_keys = request.keys().iter().map(super::dynamodb::key_of).collect();
            pending.insert(self.table.clone(), request);
        }
        let mut found: HashMap<String, VersionedState> = HashMap::new();
        let mut published = Vec::new();
        let mut attempt = 0;
        while !pending.is_empty() {
            if attempt > 0 {
                if attempt >= super::retry::UNPROCESSED_ATTEMPTS {
                    return Err(TransientError::new(
                        LOAD,
                        FailureKind::Unprocessed,
                        "unprocessed keys remain",
                    ));
                }
                super::retry::backoff(attempt).await;
            }
            attempt += 1;
            let out = self
                .client
                .batch_get_item()
                .set_request_items(Some(std::mem::take(&mut pending)))
                .send()
                .await;
            note_request_id(out.request_id());
            let out = out.map_err(|e| sdk_failure(LOAD, e))?;
            let mut responses = out.responses.unwrap_or_default();
            if let Some(table) = episode_table {
                for item in responses.remove(table).unwrap_or_default() {
                    if let Some((reactor, state)) = Self::episode_of(&item) {
                        found.insert(reactor, state);
                    }
                }
            }
            published.extend(Self::published_keys(
                &responses.remove(&self.table).unwrap_or_default(),
            ));
            pending = out
                .unprocessed_keys
                .unwrap_or_default()
                .into_iter()
                .filter(|(_, k)| !k.keys.is_empty())
                .collect();
        }
        Ok(Loaded {
            states: reactors.iter().map(|r| found.remove(*r)).collect(),
            sent: ledger_keys.iter().map(|k| published.contains(k)).collect(),
        })
    }

    /// One transaction of the conditional state puts; when it is cancelled because some
    /// states moved on, those changes fail ([`FailureKind::Unprocessed`]) and the others are
    /// written in a second transaction.
    async fn save(&self, changes: &[StateChange<'_>]) -> ItemResults {
        let table = match self.episode_table(SAVE) {
            Ok(table) => table,
            Err(e) => return vec![Err(e); changes.len()],
        };
        match changes
            .iter()
            .map(|change| transact_put(table, change))
            .collect::<Result<Vec<_>, _>>()
        {
            Ok(items) => self.transact(items).await,
            Err(e) => vec![Err(e); changes.len()],
        }
    }

    async fn all_states(&self) -> Result<Vec<(String, VersionedState)>, TransientError> {
        let table = self.episode_table(SCAN)?;
        let mut states = Vec::new();
        let mut start: Option<HashMap<String, AttributeValue>> = None;
        loop {
            let out = self
                .client
                .scan()
                .table_name(table)
                .consistent_read(true)
                .set_exclusive_start_key(start.take())
                .send()
                .await;
            note_request_id(out.request_id());
            let out = out.map_err(|e| sdk_failure(SCAN, e))?;
            states.extend(
                out.items
                    .unwrap_or_default()
                    .iter()
                    .filter_map(Self::episode_of),
            );
            match out.last_evaluated_key {
                Some(key) if !key.is_empty() => start = Some(key),
                _ => return Ok(states),
            }
        }
    }
}

impl DynamoDbStore {
    /// Writes `items` in one TransactWriteItems; when it is cancelled, the items whose
    /// condition failed (a state that moved on) fail with [`FailureKind::Unprocessed`] and the
    /// others are written in a second transaction. One result per item.
    async fn transact(&self, items: Vec<TransactWriteItem>) -> ItemResults {
        let mut results: Vec<Option<Result<(), TransientError>>> = vec![None; items.len()];
        let mut pending: Vec<usize> = (0..items.len()).collect();
        for _ in 0..2 {
            if pending.is_empty() {
                break;
            }
            let out = self
                .client
                .transact_write_items()
                .set_transact_items(Some(pending.iter().map(|&at| items[at].clone()).collect()))
                .send()
                .await;
            note_request_id(out.request_id());
            let err = match out {
                Ok(_) => {
                    for &at in &pending {
                        results[at] = Some(Ok(()));
                    }
                    pending.clear();
                    break;
                }
                Err(e) => e,
            };
            let reasons = err.as_service_error().and_then(|e| match e {
                TransactWriteItemsError::TransactionCanceledException(c) => {
                    c.cancellation_reasons.clone()
                }
                _ => None,
            });
            let Some(reasons) = reasons else {
                let e = sdk_failure(SAVE, err);
                for &at in &pending {
                    results[at] = Some(Err(e.clone()));
                }
                pending.clear();
                break;
            };
            let mut retry = Vec::new();
            for (&at, reason) in pending.iter().zip(reasons) {
                match reason.code.as_deref() {
                    Some("ConditionalCheckFailed") => {
                        results[at] = Some(Err(TransientError::new(
                            SAVE,
                            FailureKind::Conflict,
                            "the reactor's episode state moved on (another shard or delivery)",
                        )));
                    }
                    Some("None") | None => retry.push(at),
                    Some(code) => {
                        let kind = super::failure_kind(code, reason.message.as_deref());
                        results[at] = Some(Err(TransientError::new(SAVE, kind, code.to_owned())));
                    }
                }
            }
            pending = retry;
        }
        results
            .into_iter()
            .map(|r| {
                r.unwrap_or_else(|| {
                    Err(TransientError::new(
                        SAVE,
                        FailureKind::Unprocessed,
                        "transaction cancelled twice",
                    ))
                })
            })
            .collect()
    }
}

fn transact_put(
    table: &str,
    change: &StateChange<'_>,
) -> Result<TransactWriteItem, TransientError> {
    let version = change.expected_version.map_or(1, |v| v + 1);
    let item = DynamoDbStore::episode_item(change.reactor, change.state, version);
    let put = match change.expected_version {
        None => Put::builder()
            .condition_expression("attribute_not_exists(#r)")
            .expression_attribute_names("#r", attr::REACTOR),
        Some(v) => Put::builder()
            .condition_expression("#v = :v")
            .expression_attribute_names("#v", attr::VERSION)
            .expression_attribute_values(":v", AttributeValue::N(v.to_string())),
    };
    let put = put
        .table_name(table)
        .set_item(Some(item))
        .build()
        .map_err(|e| TransientError::new(SAVE, FailureKind::Service, "bad put").with_source(e))?;
    Ok(TransactWriteItem::builder().put(put).build())
}
