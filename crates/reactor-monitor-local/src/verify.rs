//! Reads the emulator back: which produced readings are in the table, in the dead-letter
//! sink, and which alerts reached the on-call queue. Counted per reading: the user records of
//! a KPL aggregate share their Kinesis record's sequence number and differ by subsequence.

use std::collections::{BTreeMap, HashMap, HashSet};

use anyhow::Context;
use aws_sdk_dynamodb::types::AttributeValue;
use serde::{Deserialize, Serialize};

use aws_lambda_events::event::kinesis::KinesisEvent;

use crate::esm::ON_FAILURE_KEY_PREFIX;
use crate::generate::Placement;
use crate::otlp::ReceivedSpan;
use crate::resources::Resources;
use reactor_monitor::adapters::dynamodb::{KIND_READING, attr};
use reactor_monitor::adapters::s3::{KEY_PREFIX, KeptLetter, read_object};
use reactor_monitor::adapters::sns::attr as sns_attr;
use reactor_monitor::aws::s3_client;
use reactor_monitor::domain::SequenceNumber;
use reactor_monitor::telemetry::traces::traceparent_context;

/// What the emulator holds for the records of a run.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct Verified {
    /// Readings in the table whose origin is one of the run's Kinesis records.
    pub items: usize,
    /// Alerts delivered to the queue subscribed to the alert topic.
    pub alerts_delivered: usize,
    pub alerts_by_severity: HashMap<String, usize>,
    pub duplicate_alerts: usize,
    /// Rejected payloads in the dead-letter bucket.
    pub dead_letters: usize,
    /// Batches the event source mapping gave up on, in the on-failure bucket (objects holding
    /// at least one of the run's records).
    pub exhausted_batches: usize,
    /// The run's records in those batches' payloads (the whole invocation events).
    pub exhausted_records: usize,
    /// Records of exhausted batches neither stored nor dead-lettered: those the on-failure
    /// destination alone keeps.
    pub exhausted_only: usize,
    /// Delivered alerts whose `traceparent` names a span the function exported (its publish
    /// span): the alert leads back to its reading's trace ([`Verified::trace_alerts`]).
    pub alerts_traced_to_a_span: usize,
    /// The `traceparent` message attribute of each delivered alert, when it had one.
    #[serde(skip)]
    pub alert_traceparents: Vec<String>,
}

impl Verified {
    /// Counts the delivered alerts whose `traceparent` is the context of one of `spans`.
    pub fn trace_alerts(&mut self, spans: &[ReceivedSpan]) {
        let received: HashSet<(&str, &str)> = spans
            .iter()
            .map(|s| (s.trace_id.as_str(), s.span_id.as_str()))
            .collect();
        self.alerts_traced_to_a_span = self
            .alert_traceparents
            .iter()
            .filter_map(|value| traceparent_context(value))
            .filter(|cx| {
                let (trace, span) = (cx.trace_id().to_string(), cx.span_id().to_string());
                received.contains(&(trace.as_str(), span.as_str()))
            })
            .count();
    }
}

#[derive(Deserialize)]
struct Notification {
    #[serde(rename = "Subject")]
    subject: Option<String>,
    #[serde(rename = "MessageAttributes", default)]
    attributes: HashMap<String, NotificationAttribute>,
}

#[derive(Deserialize)]
struct NotificationAttribute {
    #[serde(rename = "Value")]
    value: String,
}

pub async fn verify(
    sdk: &aws_config::SdkConfig,
    resources: &Resources,
    produced: &[Placement],
) -> anyhow::Result<Verified> {
    let produced: HashSet<(&str, &str)> = produced
        .iter()
        .map(|p| (p.shard_id.as_str(), p.sequence_number.as_str()))
        .collect();
    let stored = readings_in_table(sdk, resources, &produced).await?;
    let rejected = dead_letters(sdk, resources, &produced).await?;
    let mut verified = Verified {
        items: stored.len(),
        dead_letters: rejected.len(),
        ..Verified::default()
    };

    let sqs = aws_sdk_sqs::Client::new(sdk);
    let mut seen = HashSet::new();
    for body in drain(&sqs, &resources.alerts_queue_url).await? {
        let Ok(n) = serde_json::from_str::<Notification>(&body) else {
            continue;
        };
        let shard = n
            .attributes
            .get(sns_attr::SHARD_ID)
            .map(|a| a.value.as_str())
            .unwrap_or_default();
        // `<sequence number>`, or `<sequence number>:<subsequence>` for an aggregated reading.
        let reading = n
            .attributes
            .get(sns_attr::SEQUENCE_NUMBER)
            .map(|a| a.value.as_str())
            .unwrap_or_default();
        let seq = reading.split_once(':').map_or(reading, |(seq, _)| seq);
        if !produced.contains(&(shard, seq)) {
            continue;
        }
        // The same reading alerted twice is a duplicate, whatever the text says.
        if !seen.insert((shard.to_string(), reading.to_string())) {
            verified.duplicate_alerts += 1;
            continue;
        }
        verified.alerts_delivered += 1;
        if let Some(traceparent) = n.attributes.get(sns_attr::TRACEPARENT) {
            verified.alert_traceparents.push(traceparent.value.clone());
        }
        *verified
            .alerts_by_severity
            .entry(n.subject.unwrap_or_default())
            .or_default() += 1;
    }
    let (batches, records) = exhausted(sdk, resources, &produced).await?;
    verified.exhausted_batches = batches;
    verified.exhausted_records = records.len();
    // A record of an exhausted batch may have landed on an earlier attempt (its reading
    // stored, then its episode state write failed): only the others are kept nowhere else.
    verified.exhausted_only = records
        .iter()
        .filter(|r| !stored.contains(*r) && !rejected.contains(*r))
        .count();
    Ok(verified)
}

/// The run's records found in a sink: shard and sequence number.
type Found = HashSet<(String, SequenceNumber)>;

async fn readings_in_table(
    sdk: &aws_config::SdkConfig,
    resources: &Resources,
    produced: &HashSet<(&str, &str)>,
) -> anyhow::Result<Found> {
    let dynamodb = aws_sdk_dynamodb::Client::new(sdk);
    let mut found = HashSet::new();
    let mut pages = dynamodb
        .scan()
        .table_name(&resources.names.table)
        .filter_expression("#kind = :reading")
        .projection_expression("#id")
        .expression_attribute_names("#kind", attr::KIND)
        .expression_attribute_names("#id", attr::READING_ID)
        .expression_attribute_values(":reading", AttributeValue::S(KIND_READING.into()))
        .into_paginator()
        .send();
    while let Some(page) = pages.next().await {
        for item in page.context("scanning the table")?.items() {
            let id = item
                .get(attr::READING_ID)
                .and_then(|v| v.as_s().ok())
                .map(String::as_str)
                .unwrap_or_default();
            // `DynamoDbStore::reading_id`: <UTC instant>#<shard id>#<sequence number>[:<subsequence>]
            let mut parts = id.splitn(3, '#').skip(1);
            if let (Some(shard), Some(seq)) = (parts.next(), parts.next())
                && let Some(seq) = of_run(produced, shard, seq)
            {
                found.insert((shard.to_string(), seq));
            }
        }
    }
    Ok(found)
}

async fn dead_letters(
    sdk: &aws_config::SdkConfig,
    resources: &Resources,
    produced: &HashSet<(&str, &str)>,
) -> anyhow::Result<Found> {
    let s3 = s3_client(sdk);
    let kept = kept_dead_letters(&s3, &resources.names.dead_letter_bucket).await?;
    Ok(kept
        .into_keys()
        .filter(|(shard, seq)| produced.contains(&(shard.as_str(), seq.as_str())))
        .collect())
}

/// Every dead letter in `bucket`, once per record: the JSON Lines objects under
/// `parse-errors/` read whole (`s3::read_object`), a record found in several objects (a
/// retried batch composed differently) kept once, by its identity (shard id, sequence number
/// with the subsequence), from the object listed first.
pub async fn kept_dead_letters(
    s3: &aws_sdk_s3::Client,
    bucket: &str,
) -> anyhow::Result<BTreeMap<(String, SequenceNumber), KeptLetter>> {
    let mut kept = BTreeMap::new();
    let mut pages = s3
        .list_objects_v2()
        .bucket(bucket)
        .prefix(KEY_PREFIX)
        .into_paginator()
        .send();
    while let Some(page) = pages.next().await {
        for object in page.context("listing dead letters")?.contents() {
            let key = object.key().unwrap_or_default();
            let body = s3
                .get_object()
                .bucket(bucket)
                .key(key)
                .send()
                .await
                .with_context(|| format!("reading dead letters {key}"))?
                .body
                .collect()
                .await
                .with_context(|| format!("reading dead letters {key}"))?
                .into_bytes();
            for letter in read_object(&body).with_context(|| format!("dead letters {key}"))? {
                let identity = (letter.shard_id.clone(), letter.sequence_number.clone());
                kept.entry(identity).or_insert(letter);
            }
        }
    }
    Ok(kept)
}

/// Batches in the on-failure bucket, and the run's records in their payloads.
async fn exhausted(
    sdk: &aws_config::SdkConfig,
    resources: &Resources,
    produced: &HashSet<(&str, &str)>,
) -> anyhow::Result<(usize, Found)> {
    let s3 = s3_client(sdk);
    let mut pages = s3
        .list_objects_v2()
        .bucket(&resources.names.on_failure_bucket)
        .prefix(ON_FAILURE_KEY_PREFIX)
        .into_paginator()
        .send();
    let (mut batches, mut records) = (0, Found::new());
    while let Some(page) = pages.next().await {
        for object in page.context("listing the on-failure bucket")?.contents() {
            let key = object.key().unwrap_or_default();
            let body = s3
                .get_object()
                .bucket(&resources.names.on_failure_bucket)
                .key(key)
                .send()
                .await
                .with_context(|| format!("reading {key}"))?
                .body
                .collect()
                .await
                .with_context(|| format!("reading {key}"))?
                .into_bytes();
            let record: serde_json::Value = serde_json::from_slice(&body)
                .with_context(|| format!("{key} is not an invocation record"))?;
            let event: KinesisEvent =
                serde_json::from_str(record["payload"].as_str().unwrap_or("{}"))
                    .with_context(|| format!("{key}: payload is not a Kinesis event"))?;
            let shard = record["KinesisBatchInfo"]["shardId"]
                .as_str()
                .unwrap_or_default();
            let ours: Vec<SequenceNumber> = event
                .records
                .iter()
                .filter_map(|r| of_run(produced, shard, &r.kinesis.sequence_number))
                .collect();
            if !ours.is_empty() {
                batches += 1;
                records.extend(ours.into_iter().map(|seq| (shard.to_string(), seq)));
            }
        }
    }
    Ok((batches, records))
}

/// The sequence number written as `text`, when it is (part of) one of the run's records.
fn of_run(produced: &HashSet<(&str, &str)>, shard: &str, text: &str) -> Option<SequenceNumber> {
    let seq: SequenceNumber = text.parse().ok()?;
    produced.contains(&(shard, seq.as_str())).then_some(seq)
}

/// How long the read-back's last, empty receive waits for messages to become visible again:
/// past the visibility timeout of a receive whose response was lost (it took effect, the
/// messages it carried are hidden) when that receive used a timeout this short.
pub const READ_PAST_SECONDS: i32 = 2;

/// Receives and deletes every message of a queue, each once (by message id).
///
/// Exact on a lossy network: the receives use VisibilityTimeout 0, so a receive whose response
/// was lost after it took effect hides nothing; a message received twice (its delete lost) is
/// counted once; and the read ends only after a receive that long-polled `READ_PAST_SECONDS`
/// found nothing.
pub async fn drain(sqs: &aws_sdk_sqs::Client, queue_url: &str) -> anyhow::Result<Vec<String>> {
    let mut bodies = Vec::new();
    let mut seen = HashSet::new();
    loop {
        let out = sqs
            .receive_message()
            .queue_url(queue_url)
            .max_number_of_messages(10)
            .visibility_timeout(0)
            .message_attribute_names("All")
            .send()
            .await
            .context("receiving from a queue")?;
        let messages = out.messages.unwrap_or_default();
        if messages.is_empty() {
            // One more receive, long-polling past short visibility timeouts.
            let out = sqs
                .receive_message()
                .queue_url(queue_url)
                .max_number_of_messages(10)
                .visibility_timeout(0)
                .wait_time_seconds(READ_PAST_SECONDS)
                .message_attribute_names("All")
                .send()
                .await
                .context("receiving from a queue")?;
            let messages = out.messages.unwrap_or_default();
            if messages.is_empty() {
                return Ok(bodies);
            }
            take(sqs, queue_url, messages, &mut seen, &mut bodies).await?;
            continue;
        }
        take(sqs, queue_url, messages, &mut seen, &mut bodies).await?;
    }
}

async fn take(
    sqs: &aws_sdk_sqs::Client,
    queue_url: &str,
    messages: Vec<aws_sdk_sqs::types::Message>,
    seen: &mut HashSet<String>,
    bodies: &mut Vec<String>,
) -> anyhow::Result<()> {
    let mut delete = sqs.delete_message_batch().queue_url(queue_url);
    for (i, m) in messages.iter().enumerate() {
        delete = delete.entries(
            aws_sdk_sqs::types::DeleteMessageBatchRequestEntry::builder()
                .id(i.to_string())
                .receipt_handle(m.receipt_handle().unwrap_or_default())
                .build()?,
        );
    }
    delete.send().await.context("deleting received messages")?;
    for m in messages {
        let id = m.message_id.clone().unwrap_or_default();
        if seen.insert(id)
            && let Some(body) = m.body
        {
            bodies.push(body);
        }
    }
    Ok(())
}
