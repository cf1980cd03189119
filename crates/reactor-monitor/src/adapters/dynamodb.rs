//! DynamoDB: readings, and on a hot reading's item the alert published for it.
//!
//! Key design: partition key `reactor`, sort key `reading_id` =
//! `<UTC instant, fixed width>#<shard id>#<sequence number>`. "Readings of reactor X between
//! t1 and t2" is one Query (`reactor = X AND reading_id BETWEEN t1 AND t2~`), and a replayed
//! Kinesis record maps to the same key, so writing it again overwrites and never duplicates.
//! The ledger of published alerts is the readings themselves: a hot reading is written after its
//! alert is published, with the alert's `severity`, SNS `message_id` and `published_at`, so a
//! replay finds the alert sent by reading the reading's own key, and recording it costs no
//! write of its own.

use crate::operation::AwsOperation;
use std::collections::HashMap;
use std::fmt::Write as _;

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::operation::RequestId;
use aws_sdk_dynamodb::types::{AttributeValue, KeysAndAttributes, PutRequest, WriteRequest};
use chrono::{SecondsFormat, Utc};

use crate::domain::UTC_TIMESTAMP_LEN;
use crate::domain::rfc3339::{self, Fraction};
use crate::sinks;

use super::retry::{UNPROCESSED_ATTEMPTS, backoff};
use super::sdk_failure;
use crate::ports::{
    Alert, FailureKind, ItemResults, Located, ReadingStore, ReadingWrite, TransientError,
    note_request_id,
};

/// Attribute names of the table.
pub mod attr {
    pub const REACTOR: &str = "reactor";
    pub const READING_ID: &str = "reading_id";
    pub const KIND: &str = "kind";
    pub const TEMP_C: &str = "temp_c";
    /// The temperature as decimal text (`8.04040404040404E126`), instead of `temp_c`, when
    /// DynamoDB cannot hold it as a number (`sinks::dynamodb::number`).
    pub const TEMP_C_TEXT: &str = "temp_c_text";
    /// `true` on an item whose temperature is in `temp_c_text` (absent otherwise).
    pub const TEMP_NOT_REPRESENTABLE: &str = "temp_not_representable";
    pub const DATE: &str = "date";
    pub const SHARD_ID: &str = "shard_id";
    pub const SEQUENCE_NUMBER: &str = "sequence_number";
    pub const SUBSEQUENCE_NUMBER: &str = "subsequence_number";
    pub const PARTITION_KEY: &str = "partition_key";
    pub const ARRIVED_AT: &str = "arrived_at";
    pub const SEVERITY: &str = "severity";
    pub const MESSAGE_ID: &str = "message_id";
    pub const PUBLISHED_AT: &str = "published_at";
}

/// Value of the `kind` attribute of a reading's item.
pub const KIND_READING: &str = "reading";

/// BatchWriteItem takes at most 25 put requests.
pub const MAX_BATCH_WRITE_ITEMS: usize = 25;
/// BatchGetItem takes at most 100 keys.
pub const MAX_BATCH_GET_KEYS: usize = 100;

#[derive(Clone)]
pub struct DynamoDbStore {
    pub(super) client: Client,
    pub(super) table: String,
    /// The alert-episode state table (`super::episode_state`), when episodes are on.
    pub(super) episode_table: Option<String>,
}

impl DynamoDbStore {
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        Self {
            client,
            table: table.into(),
            episode_table: None,
        }
    }

    /// The same store, also keeping alert-episode states in `table` (key `reactor`).
    pub fn with_episode_table(mut self, table: impl Into<String>) -> Self {
        self.episode_table = Some(table.into());
        self
    }

    /// The sort key of a reading: `<UTC instant>#<shard id>#<sequence number>`, and for a user
    /// record of a KPL aggregate `…#<sequence number>:<subsequence>` (its position in the
    /// aggregate), so that the user records of one Kinesis record never share a key and a
    /// replayed aggregate maps each of them to the same key again.
    pub fn reading_id(located: &Located<'_>) -> String {
        let origin = located.origin;
        let seq = &origin.sequence_number;
        let mut id = String::with_capacity(
            UTC_TIMESTAMP_LEN + origin.shard_id.len() + seq.as_str().len() + 2 + 8,
        );
        located.reading.push_utc_timestamp(&mut id);
        id.push('#');
        id.push_str(&origin.shard_id);
        id.push('#');
        id.push_str(seq.as_str());
        if let Some(index) = seq.subsequence() {
            let _ = write!(id, ":{index}");
        }
        id
    }

    /// The item of a reading. `sequence_number` is the Kinesis record's; a reading unpacked
    /// from an aggregated record also has its `subsequence_number`.
    pub fn reading_item(located: &Located<'_>) -> HashMap<String, AttributeValue> {
        let r = located.reading;
        let o = located.origin;
        let s = |value: &str| AttributeValue::S(value.to_owned());
        let mut date = String::with_capacity(32);
        rfc3339::push_with_offset(&mut date, &r.date, Fraction::Auto);
        let mut arrived_at = String::with_capacity(24);
        rfc3339::push_utc(&mut arrived_at, &o.arrival, Fraction::Millis);

        let mut item = HashMap::with_capacity(11);
        item.insert(attr::REACTOR.to_owned(), s(&r.reactor));
        item.insert(
            attr::READING_ID.to_owned(),
            AttributeValue::S(Self::reading_id(located)),
        );
        item.insert(attr::KIND.to_owned(), s(KIND_READING));
        item.extend(temperature(r.temp_c));
        item.insert(attr::DATE.to_owned(), AttributeValue::S(date));
        item.insert(attr::SHARD_ID.to_owned(), s(&o.shard_id));
        item.insert(
            attr::SEQUENCE_NUMBER.to_owned(),
            s(o.sequence_number.as_str()),
        );
        if let Some(index) = o.sequence_number.subsequence() {
            item.insert(
                attr::SUBSEQUENCE_NUMBER.to_owned(),
                AttributeValue::N(index.to_string()),
            );
        }
        item.insert(attr::PARTITION_KEY.to_owned(), s(&o.partition_key));
        item.insert(attr::ARRIVED_AT.to_owned(), AttributeValue::S(arrived_at));
        item
    }

    /// The item of a reading to write: [`Self::reading_item`], plus, when this delivery
    /// published its alert, `severity`, `message_id` and `published_at` (UTC, ms): the alert
    /// ledger's record.
    pub fn write_item(write: &ReadingWrite<'_>) -> HashMap<String, AttributeValue> {
        let mut item = Self::reading_item(&write.located);
        if let Some(alert) = write.alert {
            item.extend([
                (
                    attr::SEVERITY.into(),
                    AttributeValue::S(alert.severity.as_str().into()),
                ),
                (
                    attr::MESSAGE_ID.into(),
                    AttributeValue::S(alert.message_id.into()),
                ),
                (
                    attr::PUBLISHED_AT.into(),
                    AttributeValue::S(Utc::now().to_rfc3339_opts(SecondsFormat::Millis, true)),
                ),
            ]);
        }
        item
    }

    /// The key of a reading's item: what the alert ledger looks up.
    pub(super) fn reading_key(located: &Located<'_>) -> HashMap<String, AttributeValue> {
        HashMap::from([
            (
                attr::REACTOR.into(),
                AttributeValue::S(located.reading.reactor.clone()),
            ),
            (
                attr::READING_ID.into(),
                AttributeValue::S(Self::reading_id(located)),
            ),
        ])
    }

    /// The ledger's lookup of alerts: their readings' keys, projected to the key and the
    /// message id (an item without `message_id` is a reading whose alert is not out).
    pub(super) fn ledger_lookup(
        alerts: &[Alert<'_>],
    ) -> Result<KeysAndAttributes, aws_sdk_dynamodb::error::BuildError> {
        KeysAndAttributes::builder()
            .set_keys(Some(
                alerts
                    .iter()
                    .map(|a| Self::reading_key(&a.located))
                    .collect(),
            ))
            .projection_expression("#r, #id, #m")
            .expression_attribute_names("#r", attr::REACTOR)
            .expression_attribute_names("#id", attr::READING_ID)
            .expression_attribute_names("#m", attr::MESSAGE_ID)
            .consistent_read(true)
            .build()
    }

    /// Of the items a ledger lookup returned, the keys of alerts published.
    pub(super) fn published_keys<'i>(
        items: impl IntoIterator<Item = &'i HashMap<String, AttributeValue>>,
    ) -> impl Iterator<Item = (AttributeValue, AttributeValue)> {
        items
            .into_iter()
            .filter(|item| item.contains_key(attr::MESSAGE_ID))
            .map(key_of)
    }

    /// Writes the items of `batch`; when DynamoDB refuses the whole call as invalid
    /// ([`FailureKind::Rejected`]), splits it in halves until each refused item stands alone,
    /// so that only the records DynamoDB cannot take fail and their neighbours are stored.
    async fn write_isolating<T: Sync>(
        &self,
        operation: AwsOperation,
        batch: &[T],
        item: impl Fn(&T) -> HashMap<String, AttributeValue> + Copy + Send + Sync,
    ) -> ItemResults {
        let results = self
            .write_items(operation, batch.iter().map(item).collect())
            .await;
        if batch.len() > 1 && results.iter().all(is_rejected) {
            return self.bisect(operation, batch, item).await;
        }
        results
    }

    fn bisect<'a, T: Sync>(
        &'a self,
        operation: AwsOperation,
        batch: &'a [T],
        item: impl Fn(&T) -> HashMap<String, AttributeValue> + Copy + Send + Sync + 'a,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = ItemResults> + Send + 'a>> {
        Box::pin(async move {
            let (left, right) = batch.split_at(batch.len() / 2);
            let mut results = self.write_isolating(operation, left, item).await;
            results.extend(self.write_isolating(operation, right, item).await);
            results
        })
    }

    /// Writes items with BatchWriteItem, retrying what comes back unprocessed.
    async fn write_items(
        &self,
        operation: AwsOperation,
        items: Vec<HashMap<String, AttributeValue>>,
    ) -> ItemResults {
        let keys: Vec<(AttributeValue, AttributeValue)> = items.iter().map(key_of).collect();
        let mut pending: Vec<WriteRequest> = Vec::with_capacity(items.len());
        for item in items {
            match PutRequest::builder().set_item(Some(item)).build() {
                Ok(put) => pending.push(WriteRequest::builder().put_request(put).build()),
                Err(e) => {
                    let err =
                        TransientError::new(operation, FailureKind::Service, "invalid put request")
                            .with_source(e);
                    return vec![Err(err); keys.len()];
                }
            }
        }

        for attempt in 0..UNPROCESSED_ATTEMPTS {
            if attempt > 0 {
                backoff(attempt).await;
            }
            let response = self
                .client
                .batch_write_item()
                .request_items(&self.table, std::mem::take(&mut pending))
                .send()
                .await;
            note_request_id(response.request_id());
            match response {
                Ok(out) => {
                    pending = out
                        .unprocessed_items
                        .and_then(|mut m| m.remove(&self.table))
                        .unwrap_or_default();
                    if pending.is_empty() {
                        return vec![Ok(()); keys.len()];
                    }
                }
                Err(e) => {
                    let err = sdk_failure(operation, e);
                    return vec![Err(err); keys.len()];
                }
            }
        }

        let unprocessed: Vec<(AttributeValue, AttributeValue)> = pending
            .iter()
            .filter_map(|w| w.put_request.as_ref())
            .map(|p| key_of(&p.item))
            .collect();
        keys.iter()
            .map(|key| {
                if unprocessed.contains(key) {
                    Err(TransientError::new(
                        operation,
                        FailureKind::Unprocessed,
                        format!("item still unprocessed after {UNPROCESSED_ATTEMPTS} attempts"),
                    ))
                } else {
                    Ok(())
                }
            })
            .collect()
    }
}

/// The attributes of a temperature: `temp_c` as a number when DynamoDB can hold it, else
/// `temp_c_text` with the same decimal text and `temp_not_representable = true`. Every
/// reading is stored either way: a sink's range never hides a reading (nor its alert).
pub fn temperature(temp_c: f64) -> impl Iterator<Item = (String, AttributeValue)> {
    let (value, flag) = match sinks::dynamodb::number(temp_c) {
        Some(n) => ((attr::TEMP_C, AttributeValue::N(n)), None),
        None => (
            (attr::TEMP_C_TEXT, AttributeValue::S(sinks::decimal(temp_c))),
            Some((attr::TEMP_NOT_REPRESENTABLE, AttributeValue::Bool(true))),
        ),
    };
    std::iter::once(value)
        .chain(flag)
        .map(|(name, value)| (name.to_owned(), value))
}

fn is_rejected(result: &Result<(), TransientError>) -> bool {
    matches!(result, Err(e) if e.kind == FailureKind::Rejected)
}

pub(super) fn key_of(item: &HashMap<String, AttributeValue>) -> (AttributeValue, AttributeValue) {
    let get = |name: &str| {
        item.get(name)
            .cloned()
            .unwrap_or(AttributeValue::Null(true))
    };
    (get(attr::REACTOR), get(attr::READING_ID))
}

impl ReadingStore for DynamoDbStore {
    const OPERATION: AwsOperation = AwsOperation::DynamoDbBatchWriteItem;
    const MAX_BATCH: usize = MAX_BATCH_WRITE_ITEMS;

    async fn put_readings(&self, batch: &[ReadingWrite<'_>]) -> ItemResults {
        self.write_isolating(Self::OPERATION, batch, Self::write_item)
            .await
    }
}
