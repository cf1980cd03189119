//! An emulated Kinesis event source mapping: polls shards with the real Kinesis API, builds
//! events exactly as Lambda does, and honours batch size, batching window, partial-failure
//! checkpointing, bisect on error, bounded retries, record age and an on-failure destination.

use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use anyhow::Context;
use aws_lambda_events::event::streams::KinesisEventResponse;
use aws_sdk_kinesis::types::{Record, ShardIteratorType};
use base64::Engine;
use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::json;
use tokio::time::Instant;

use reactor_monitor::domain::SequenceNumber;

/// Lambda's limit on an invocation payload: a batch is cut before it.
pub const MAX_INVOCATION_PAYLOAD_BYTES: usize = 6 * 1024 * 1024;
/// GetRecords returns at most 10,000 records per call.
const MAX_GET_RECORDS: i32 = 10_000;
const IDLE_POLL: Duration = Duration::from_millis(200);
const RETRY_BASE_DELAY: Duration = Duration::from_millis(100);
const RETRY_MAX_DELAY: Duration = Duration::from_secs(2);

/// The event source mapping's settings, named as in the template.
#[derive(Debug, Clone)]
pub struct MappingSettings {
    pub batch_size: usize,
    pub batching_window: Duration,
    pub maximum_retry_attempts: u32,
    pub maximum_record_age: Option<Duration>,
    pub bisect_batch_on_function_error: bool,
    pub region: String,
    pub stream_arn: String,
    pub on_failure_queue_url: Option<String>,
    /// The function's timeout: each invocation's deadline.
    pub function_timeout: Duration,
    /// Where to start reading each shard; shards not named start at `TRIM_HORIZON`, as in
    /// the template. A run that produced its own records starts at the first of them.
    pub starting_positions: HashMap<String, String>,
    /// Poll only the shards named in `starting_positions`.
    pub only_started_shards: bool,
}

/// A Lambda function as the mapping sees it: event JSON in, response or error out.
pub trait Invoke: Send + Sync {
    fn invoke(
        &self,
        event: Vec<u8>,
        deadline: Instant,
    ) -> impl Future<Output = Result<KinesisEventResponse, String>> + Send;
}

/// Counters shared with whoever watches the mapping.
#[derive(Debug, Default)]
pub struct MappingProgress {
    /// Records whose fate is settled: checkpointed past, or sent to the on-failure destination.
    pub settled: AtomicUsize,
    pub invocations: AtomicUsize,
    pub function_errors: AtomicUsize,
    /// Records delivered again after a failure.
    pub redelivered: AtomicUsize,
    pub exhausted_batches: AtomicUsize,
    pub exhausted_records: AtomicUsize,
    pub get_records_calls: AtomicUsize,
    pub put_records_calls: AtomicUsize,
    pub stop: AtomicBool,
}

#[derive(Clone)]
struct Segment {
    records: Vec<Record>,
    attempts: u32,
}

/// Polls every shard of the stream until `progress.stop` is set and the shard is drained.
pub async fn run<I: Invoke + 'static>(
    kinesis: aws_sdk_kinesis::Client,
    sqs: aws_sdk_sqs::Client,
    settings: MappingSettings,
    invoker: Arc<I>,
    progress: Arc<MappingProgress>,
) -> anyhow::Result<()> {
    let shards = kinesis
        .list_shards()
        .stream_arn(&settings.stream_arn)
        .send()
        .await
        .context("listing shards")?;
    let settings = Arc::new(settings);
    let mut pollers = tokio::task::JoinSet::new();
    for shard in shards.shards() {
        if settings.only_started_shards
            && !settings.starting_positions.contains_key(shard.shard_id())
        {
            continue;
        }
        let poller = ShardPoller {
            kinesis: kinesis.clone(),
            sqs: sqs.clone(),
            settings: settings.clone(),
            invoker: invoker.clone(),
            progress: progress.clone(),
            shard_id: shard.shard_id().to_string(),
        };
        pollers.spawn(async move { poller.run().await });
    }
    while let Some(done) = pollers.join_next().await {
        done.context("a shard poller panicked")??;
    }
    Ok(())
}

struct ShardPoller<I> {
    kinesis: aws_sdk_kinesis::Client,
    sqs: aws_sdk_sqs::Client,
    settings: Arc<MappingSettings>,
    invoker: Arc<I>,
    progress: Arc<MappingProgress>,
    shard_id: String,
}

impl<I: Invoke + 'static> ShardPoller<I> {
    async fn run(self) -> anyhow::Result<()> {
        let request = self
            .kinesis
            .get_shard_iterator()
            .stream_arn(&self.settings.stream_arn)
            .shard_id(&self.shard_id);
        let request = match self.settings.starting_positions.get(&self.shard_id) {
            Some(seq) => request
                .shard_iterator_type(ShardIteratorType::AtSequenceNumber)
                .starting_sequence_number(seq),
            None => request.shard_iterator_type(ShardIteratorType::TrimHorizon),
        };
        let mut iterator = request
            .send()
            .await
            .context("getting a shard iterator")?
            .shard_iterator;
        let mut buffer: VecDeque<Record> = VecDeque::new();
        let mut window_started: Option<Instant> = None;

        loop {
            let caught_up = if buffer.len() < self.settings.batch_size
                && let Some(it) = iterator.take()
            {
                self.progress
                    .get_records_calls
                    .fetch_add(1, Ordering::Relaxed);
                let out = self
                    .kinesis
                    .get_records()
                    .stream_arn(&self.settings.stream_arn)
                    .shard_iterator(&it)
                    .limit(MAX_GET_RECORDS)
                    .send()
                    .await
                    .context("reading the shard")?;
                let caught_up = out.records.is_empty() || out.millis_behind_latest == Some(0);
                buffer.extend(out.records);
                iterator = out.next_shard_iterator;
                caught_up
            } else if iterator.is_none() && buffer.is_empty() {
                return Ok(()); // the shard is closed and drained
            } else {
                buffer.len() < self.settings.batch_size
            };

            if !buffer.is_empty() {
                let window_start = *window_started.get_or_insert_with(Instant::now);
                let full = buffer.len() >= self.settings.batch_size;
                let window_over = window_start.elapsed() >= self.settings.batching_window;
                if full || window_over || (caught_up && self.progress.stop.load(Ordering::Relaxed))
                {
                    let batch = self.take_batch(&mut buffer);
                    self.deliver(batch).await?;
                    window_started = None;
                    continue;
                }
            }
            if buffer.is_empty() && caught_up && self.progress.stop.load(Ordering::Relaxed) {
                return Ok(());
            }
            if caught_up {
                tokio::time::sleep(
                    IDLE_POLL.min(self.settings.batching_window.max(Duration::from_millis(20))),
                )
                .await;
            }
        }
    }

    /// Takes up to a batch of records, within Lambda's invocation payload limit.
    fn take_batch(&self, buffer: &mut VecDeque<Record>) -> Vec<Record> {
        let mut batch = Vec::new();
        let mut bytes = 0;
        while let Some(next) = buffer.front() {
            let size = event_record_size(next);
            if batch.len() >= self.settings.batch_size
                || (!batch.is_empty() && bytes + size > MAX_INVOCATION_PAYLOAD_BYTES)
            {
                break;
            }
            bytes += size;
            batch.push(buffer.pop_front().expect("front exists"));
        }
        batch
    }

    /// Delivers one batch until every record is checkpointed or given up.
    async fn deliver(&self, batch: Vec<Record>) -> anyhow::Result<()> {
        let mut segments = VecDeque::from([Segment {
            records: batch,
            attempts: 0,
        }]);
        while let Some(mut segment) = segments.pop_front() {
            let expired = self.expire_old_records(&mut segment).await?;
            if expired && segment.records.is_empty() {
                continue;
            }
            if segment.attempts > 0 {
                self.progress
                    .redelivered
                    .fetch_add(segment.records.len(), Ordering::Relaxed);
                let delay = RETRY_BASE_DELAY
                    .saturating_mul(1 << segment.attempts.min(5))
                    .min(RETRY_MAX_DELAY);
                tokio::time::sleep(delay).await;
            }
            let event = self.event(&segment.records);
            let deadline = Instant::now() + self.settings.function_timeout;
            self.progress.invocations.fetch_add(1, Ordering::Relaxed);
            match self.invoker.invoke(event, deadline).await {
                Ok(response) => match checkpoint(&segment.records, &response) {
                    Checkpoint::Done => self.settle(segment.records.len()),
                    Checkpoint::RetryFrom(at) => {
                        self.settle(at);
                        let rest = Segment {
                            records: segment.records.split_off(at),
                            attempts: segment.attempts + 1,
                        };
                        self.retry_or_give_up(rest, &mut segments, false).await?;
                    }
                    Checkpoint::Invalid => {
                        self.progress
                            .function_errors
                            .fetch_add(1, Ordering::Relaxed);
                        segment.attempts += 1;
                        self.retry_or_give_up(segment, &mut segments, true).await?;
                    }
                },
                Err(error) => {
                    tracing::warn!(shard_id = %self.shard_id, records = segment.records.len(), %error, "function error");
                    self.progress
                        .function_errors
                        .fetch_add(1, Ordering::Relaxed);
                    segment.attempts += 1;
                    self.retry_or_give_up(segment, &mut segments, true).await?;
                }
            }
        }
        Ok(())
    }

    async fn retry_or_give_up(
        &self,
        segment: Segment,
        queue: &mut VecDeque<Segment>,
        function_error: bool,
    ) -> anyhow::Result<()> {
        if segment.attempts > self.settings.maximum_retry_attempts {
            return self
                .give_up(&segment.records, "RetryAttemptsExhausted", segment.attempts)
                .await;
        }
        if function_error
            && self.settings.bisect_batch_on_function_error
            && segment.records.len() > 1
        {
            let mut first = segment.records;
            let second = first.split_off(first.len() / 2);
            queue.push_front(Segment {
                records: second,
                attempts: segment.attempts,
            });
            queue.push_front(Segment {
                records: first,
                attempts: segment.attempts,
            });
        } else {
            queue.push_front(segment);
        }
        Ok(())
    }

    /// Drops records older than the maximum record age to the on-failure destination.
    async fn expire_old_records(&self, segment: &mut Segment) -> anyhow::Result<bool> {
        let Some(max_age) = self.settings.maximum_record_age else {
            return Ok(false);
        };
        let now = Utc::now();
        let young_from = segment
            .records
            .iter()
            .position(|r| {
                arrival(r).is_none_or(|t| (now - t).to_std().unwrap_or_default() <= max_age)
            })
            .unwrap_or(segment.records.len());
        if young_from == 0 {
            return Ok(false);
        }
        let rest = segment.records.split_off(young_from);
        let old = std::mem::replace(&mut segment.records, rest);
        self.give_up(&old, "RecordAgeExceeded", segment.attempts)
            .await?;
        Ok(true)
    }

    fn settle(&self, records: usize) {
        self.progress.settled.fetch_add(records, Ordering::Relaxed);
    }

    /// Sends what Lambda sends to an on-failure destination: the batch's coordinates.
    async fn give_up(
        &self,
        records: &[Record],
        condition: &str,
        attempts: u32,
    ) -> anyhow::Result<()> {
        let (Some(first), Some(last)) = (records.first(), records.last()) else {
            return Ok(());
        };
        self.progress
            .exhausted_batches
            .fetch_add(1, Ordering::Relaxed);
        self.progress
            .exhausted_records
            .fetch_add(records.len(), Ordering::Relaxed);
        self.settle(records.len());
        tracing::warn!(shard_id = %self.shard_id, records = records.len(), condition, "batch sent to the on-failure destination");
        let Some(queue) = &self.settings.on_failure_queue_url else {
            return Ok(());
        };
        let message = json!({
            "requestContext": {
                "requestId": format!("local-{}-{}", self.shard_id, first.sequence_number()),
                "functionArn": format!("arn:aws:lambda:{}:123456789012:function:reactor-monitor", self.settings.region),
                "condition": condition,
                "approximateInvokeCount": attempts,
            },
            "responseContext": { "statusCode": 200, "executedVersion": "$LATEST", "functionError": "Unhandled" },
            "version": "1.0",
            "timestamp": Utc::now().to_rfc3339_opts(SecondsFormat::Millis, true),
            "KinesisBatchInfo": {
                "shardId": self.shard_id,
                "startSequenceNumber": first.sequence_number(),
                "endSequenceNumber": last.sequence_number(),
                "approximateArrivalOfFirstRecord": arrival(first).map(|t| t.to_rfc3339_opts(SecondsFormat::Millis, true)),
                "approximateArrivalOfLastRecord": arrival(last).map(|t| t.to_rfc3339_opts(SecondsFormat::Millis, true)),
                "batchSize": records.len(),
                "streamArn": self.settings.stream_arn,
            }
        });
        self.sqs
            .send_message()
            .queue_url(queue)
            .message_body(message.to_string())
            .send()
            .await
            .context("sending to the on-failure destination")?;
        Ok(())
    }

    /// The event JSON exactly as Lambda builds it for a Kinesis batch.
    fn event(&self, records: &[Record]) -> Vec<u8> {
        let records: Vec<serde_json::Value> = records
            .iter()
            .map(|r| {
                json!({
                    "kinesis": {
                        "kinesisSchemaVersion": "1.0",
                        "partitionKey": r.partition_key(),
                        "sequenceNumber": r.sequence_number(),
                        "data": base64::engine::general_purpose::STANDARD.encode(r.data().as_ref()),
                        "approximateArrivalTimestamp": arrival(r).map(|t| t.timestamp_millis() as f64 / 1000.0),
                    },
                    "eventSource": "aws:kinesis",
                    "eventVersion": "1.0",
                    "eventID": format!("{}:{}", self.shard_id, r.sequence_number()),
                    "eventName": "aws:kinesis:record",
                    "invokeIdentityArn": "arn:aws:iam::123456789012:role/reactor-monitor-local",
                    "awsRegion": self.settings.region,
                    "eventSourceARN": self.settings.stream_arn,
                })
            })
            .collect();
        serde_json::to_vec(&json!({ "Records": records })).expect("an event serialises")
    }
}

fn arrival(record: &Record) -> Option<DateTime<Utc>> {
    record
        .approximate_arrival_timestamp()
        .and_then(|t| DateTime::from_timestamp_millis(t.to_millis().ok()?))
}

/// Bytes a record takes in the event: its base64 data plus the envelope.
fn event_record_size(record: &Record) -> usize {
    const ENVELOPE_BYTES: usize = 600;
    record.data().as_ref().len().div_ceil(3) * 4 + ENVELOPE_BYTES
}

#[derive(Debug, PartialEq)]
enum Checkpoint {
    Done,
    /// Records before this index are done; retry from it.
    RetryFrom(usize),
    /// The response names a record not in the batch: Lambda retries the whole batch.
    Invalid,
}

/// Lambda's checkpointing: the lowest reported sequence number, everything after it retried.
fn checkpoint(records: &[Record], response: &KinesisEventResponse) -> Checkpoint {
    let mut lowest: Option<SequenceNumber> = None;
    for failure in &response.batch_item_failures {
        let Some(id) = failure
            .item_identifier
            .as_deref()
            .filter(|id| !id.is_empty())
        else {
            return Checkpoint::Invalid;
        };
        let seq = SequenceNumber::new(id);
        lowest = Some(match lowest {
            Some(l) if l <= seq => l,
            _ => seq,
        });
    }
    let Some(lowest) = lowest else {
        return Checkpoint::Done;
    };
    match records
        .iter()
        .position(|r| SequenceNumber::new(r.sequence_number()) == lowest)
    {
        Some(at) => Checkpoint::RetryFrom(at),
        None => Checkpoint::Invalid,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_kinesis::primitives::Blob;

    fn record(seq: &str) -> Record {
        Record::builder()
            .sequence_number(seq)
            .data(Blob::new(b"{}".to_vec()))
            .partition_key("p")
            .build()
            .unwrap()
    }

    fn response(ids: &[&str]) -> KinesisEventResponse {
        let mut r = KinesisEventResponse::default();
        for id in ids {
            r.add_failure(*id);
        }
        r
    }

    #[test]
    fn checkpoint_is_the_lowest_reported_sequence_number_compared_as_a_number() {
        let batch: Vec<Record> = ["8", "9", "10", "11"].iter().map(|s| record(s)).collect();
        assert_eq!(checkpoint(&batch, &response(&[])), Checkpoint::Done);
        assert_eq!(
            checkpoint(&batch, &response(&["11", "9"])),
            Checkpoint::RetryFrom(1)
        );
        assert_eq!(
            checkpoint(&batch, &response(&["10"])),
            Checkpoint::RetryFrom(2)
        );
        assert_eq!(checkpoint(&batch, &response(&["12"])), Checkpoint::Invalid);
        assert_eq!(checkpoint(&batch, &response(&[""])), Checkpoint::Invalid);
    }
}
