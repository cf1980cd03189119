//! An emulated Kinesis event source mapping: polls shards with the real Kinesis API, builds
//! events exactly as Lambda does, and honours batch size, batching window, partial-failure
//! checkpointing, bisect on error, bounded retries, record age and an on-failure destination.
//! It owns the mapping's concepts: where each shard starts (`StartingPosition`), and what it
//! has delivered from each shard, with Lambda's iterator age (`MappingProgress::shards`).

use std::collections::{BTreeMap, VecDeque};
use std::future::Future;
use std::str::FromStr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, bail};
use aws_lambda_events::event::kinesis::{KinesisEvent, KinesisEventRecord, KinesisRecord};
use aws_lambda_events::event::streams::KinesisEventResponse;
use aws_sdk_kinesis::operation::get_shard_iterator::builders::GetShardIteratorFluentBuilder;
use aws_sdk_kinesis::types::{Record, ShardIteratorType};
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
/// ListShards returns up to 1,000 shards a page (its default `MaxResults`): 100 pages hold
/// far more shards than a stream's quota allows.
const MAX_LIST_SHARDS_PAGES: usize = 100;
/// The execution role the local events name as `invokeIdentityArn`.
const LOCAL_ROLE_ARN: &str = "arn:aws:iam::123456789012:role/reactor-monitor-local";

/// Where the mapping starts reading each shard: the mapping's `StartingPosition`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum StartingPosition {
    /// The oldest record each shard still holds (the template's choice).
    #[default]
    TrimHorizon,
    /// Only records put after the mapping opened (`Mapping::open`).
    Latest,
    /// The first record that arrived at or after this instant
    /// (`StartingPositionTimestamp`); shards with none wait for new records.
    AtTimestamp(DateTime<Utc>),
    /// Not a Lambda setting: each named shard from a sequence number (shard id → sequence
    /// number, that record included), as a mapping resumes from its checkpoints; shards not
    /// named are not read. `local` starts at the first record it produced.
    AtSequenceNumbers(BTreeMap<String, String>),
}

impl StartingPosition {
    /// The GetShardIterator request that starts `shard_id` here; `None` when this position
    /// does not read that shard.
    fn iterator_request(
        &self,
        request: GetShardIteratorFluentBuilder,
        shard_id: &str,
    ) -> Option<GetShardIteratorFluentBuilder> {
        Some(match self {
            Self::TrimHorizon => request.shard_iterator_type(ShardIteratorType::TrimHorizon),
            Self::Latest => request.shard_iterator_type(ShardIteratorType::Latest),
            Self::AtTimestamp(at) => request
                .shard_iterator_type(ShardIteratorType::AtTimestamp)
                .timestamp(aws_sdk_kinesis::primitives::DateTime::from_millis(
                    at.timestamp_millis(),
                )),
            Self::AtSequenceNumbers(first) => request
                .shard_iterator_type(ShardIteratorType::AtSequenceNumber)
                .starting_sequence_number(first.get(shard_id)?),
        })
    }
}

/// A starting position that cannot be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not trim-horizon, latest or at-timestamp=<RFC 3339 instant>")]
pub struct StartingPositionError(String);

impl FromStr for StartingPosition {
    type Err = StartingPositionError;

    /// `trim-horizon`, `latest` or `at-timestamp=2026-11-25T10:00:00Z` (any case, `_` for `-`).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let normal = s.trim().to_ascii_lowercase().replace('_', "-");
        match normal.as_str() {
            "trim-horizon" => Ok(Self::TrimHorizon),
            "latest" => Ok(Self::Latest),
            _ => normal
                .strip_prefix("at-timestamp=")
                .and_then(|_| DateTime::parse_from_rfc3339(&s.trim()["at-timestamp=".len()..]).ok())
                .map(|at| Self::AtTimestamp(at.with_timezone(&Utc)))
                .ok_or_else(|| StartingPositionError(s.to_string())),
        }
    }
}

impl std::fmt::Display for StartingPosition {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::TrimHorizon => f.write_str("TRIM_HORIZON"),
            Self::Latest => f.write_str("LATEST"),
            Self::AtTimestamp(at) => write!(
                f,
                "AT_TIMESTAMP {}",
                at.to_rfc3339_opts(SecondsFormat::Millis, true)
            ),
            Self::AtSequenceNumbers(first) => write!(
                f,
                "AT_SEQUENCE_NUMBER on {} shard{}",
                first.len(),
                if first.len() == 1 { "" } else { "s" }
            ),
        }
    }
}

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
    /// The S3 bucket that receives, whole, every batch the mapping gives up on.
    pub on_failure_bucket: Option<String>,
    /// The function's timeout: each invocation's deadline.
    pub function_timeout: Duration,
    /// Where to start reading each shard.
    pub starting_position: StartingPosition,
}

/// A Lambda function as the mapping sees it: event JSON in, response or error out.
pub trait Invoke: Send + Sync {
    fn invoke(
        &self,
        event: Vec<u8>,
        deadline: Instant,
    ) -> impl Future<Output = Result<KinesisEventResponse, FunctionError>> + Send;
}

/// A failed invocation, as Lambda reports it to the mapping: the function's `errorType` and
/// `errorMessage`. The mapping retries the whole batch (or bisects it).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{error_type}: {error_message}")]
pub struct FunctionError {
    pub error_type: String,
    pub error_message: String,
}

impl FunctionError {
    pub fn new(error_type: impl Into<String>, error_message: impl ToString) -> Self {
        Self {
            error_type: error_type.into(),
            error_message: error_message.to_string(),
        }
    }
}

impl From<lambda_runtime::Diagnostic> for FunctionError {
    fn from(diagnostic: lambda_runtime::Diagnostic) -> Self {
        Self::new(diagnostic.error_type, diagnostic.error_message)
    }
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
    /// What was delivered from each shard read, by shard id; see `shards`.
    pub by_shard: Mutex<BTreeMap<String, ShardProgress>>,
}

impl MappingProgress {
    /// What was delivered from each shard the mapping reads, by shard id: every shard is
    /// listed from the moment the mapping runs, with zero counts until its first batch.
    pub fn shards(&self) -> BTreeMap<String, ShardProgress> {
        self.by_shard.lock().expect("shard progress lock").clone()
    }
}

/// What the mapping delivered from one shard, redeliveries included.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ShardProgress {
    /// Invocations with this shard's records.
    pub batches: usize,
    /// Records delivered in them.
    pub records: usize,
    /// The sequence number of the last record delivered.
    pub last_sequence_number: String,
    /// Lambda's `IteratorAge` at the last invocation, in milliseconds: when the function was
    /// invoked, how long ago the batch's last record arrived in the stream (its
    /// `ApproximateArrivalTimestamp`). `None` before the first batch.
    pub iterator_age_ms: Option<u64>,
    /// When the last batch was delivered.
    pub delivered_at: Option<DateTime<Utc>>,
}

#[derive(Clone)]
struct Segment {
    records: Vec<Record>,
    attempts: u32,
}

/// Opens the mapping and polls every shard it reads until `progress.stop` is set and the
/// shard is drained.
pub async fn run<I: Invoke + 'static>(
    kinesis: aws_sdk_kinesis::Client,
    s3: aws_sdk_s3::Client,
    settings: MappingSettings,
    invoker: Arc<I>,
    progress: Arc<MappingProgress>,
) -> anyhow::Result<()> {
    Mapping::open(kinesis, settings)
        .await?
        .run(s3, invoker, progress)
        .await
}

/// A mapping whose shards are positioned: where `LATEST` and `AT_TIMESTAMP` start is fixed
/// when it opens, as when a mapping is created, however long it then waits to run.
pub struct Mapping {
    kinesis: aws_sdk_kinesis::Client,
    settings: Arc<MappingSettings>,
    /// Each shard read, with its first shard iterator (`None`: closed and empty).
    shards: Vec<(String, Option<String>)>,
}

impl Mapping {
    /// Lists the stream's shards and takes a shard iterator at the starting position for
    /// each shard it reads. Errors: the stream cannot be listed, or a shard not positioned.
    pub async fn open(
        kinesis: aws_sdk_kinesis::Client,
        settings: MappingSettings,
    ) -> anyhow::Result<Self> {
        let mut shards = Vec::new();
        for shard_id in shard_ids(&kinesis, &settings.stream_arn).await? {
            let request = kinesis
                .get_shard_iterator()
                .stream_arn(&settings.stream_arn)
                .shard_id(&shard_id);
            let Some(request) = settings
                .starting_position
                .iterator_request(request, &shard_id)
            else {
                continue;
            };
            let iterator = request
                .send()
                .await
                .with_context(|| format!("getting a shard iterator for {shard_id}"))?
                .shard_iterator;
            shards.push((shard_id, iterator));
        }
        Ok(Self {
            kinesis,
            settings: Arc::new(settings),
            shards,
        })
    }

    /// The shards this mapping reads.
    pub fn shard_ids(&self) -> Vec<&str> {
        self.shards.iter().map(|(id, _)| id.as_str()).collect()
    }

    /// Polls every shard it reads until `progress.stop` is set and the shard is drained.
    pub async fn run<I: Invoke + 'static>(
        self,
        s3: aws_sdk_s3::Client,
        invoker: Arc<I>,
        progress: Arc<MappingProgress>,
    ) -> anyhow::Result<()> {
        progress
            .by_shard
            .lock()
            .expect("shard progress lock")
            .extend(
                self.shards
                    .iter()
                    .map(|(id, _)| (id.clone(), ShardProgress::default())),
            );
        let mut pollers = tokio::task::JoinSet::new();
        for (shard_id, iterator) in self.shards {
            let poller = ShardPoller {
                kinesis: self.kinesis.clone(),
                s3: s3.clone(),
                settings: self.settings.clone(),
                invoker: invoker.clone(),
                progress: progress.clone(),
                shard_id,
            };
            pollers.spawn(async move { poller.run(iterator).await });
        }
        while let Some(done) = pollers.join_next().await {
            done.context("a shard poller panicked")??;
        }
        Ok(())
    }
}

/// Every shard of the stream, page after page of ListShards (a page's `NextToken` stands
/// for the stream: a request names one or the other). Errors name the stream.
pub async fn shard_ids(
    kinesis: &aws_sdk_kinesis::Client,
    stream_arn: &str,
) -> anyhow::Result<Vec<String>> {
    let mut ids = Vec::new();
    let mut next_token: Option<String> = None;
    for _ in 0..MAX_LIST_SHARDS_PAGES {
        let request = match next_token.take() {
            Some(token) => kinesis.list_shards().next_token(token),
            None => kinesis.list_shards().stream_arn(stream_arn),
        };
        let page = request
            .send()
            .await
            .with_context(|| format!("listing the shards of {stream_arn}"))?;
        ids.extend(page.shards().iter().map(|s| s.shard_id().to_string()));
        match page.next_token {
            Some(token) => next_token = Some(token),
            None => return Ok(ids),
        }
    }
    bail!("listing the shards of {stream_arn}: still more after {MAX_LIST_SHARDS_PAGES} pages")
}

struct ShardPoller<I> {
    kinesis: aws_sdk_kinesis::Client,
    s3: aws_sdk_s3::Client,
    settings: Arc<MappingSettings>,
    invoker: Arc<I>,
    progress: Arc<MappingProgress>,
    shard_id: String,
}

impl<I: Invoke + 'static> ShardPoller<I> {
    async fn run(self, mut iterator: Option<String>) -> anyhow::Result<()> {
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
            self.note_delivery(&segment.records);
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

    /// Notes an invocation with these records in the shard's progress, with its iterator age.
    fn note_delivery(&self, records: &[Record]) {
        let Some(last) = records.last() else {
            return;
        };
        let now = Utc::now();
        let mut shards = self.progress.by_shard.lock().expect("shard progress lock");
        let shard = shards.entry(self.shard_id.clone()).or_default();
        shard.batches += 1;
        shard.records += records.len();
        shard.last_sequence_number = last.sequence_number().to_string();
        shard.iterator_age_ms =
            arrival(last).map(|at| u64::try_from((now - at).num_milliseconds()).unwrap_or(0));
        shard.delivered_at = Some(now);
    }

    /// Writes what Lambda writes to an S3 on-failure destination: the batch's coordinates and
    /// the whole invocation event (`payload`, the event JSON as a string), one object per batch.
    async fn give_up(
        &self,
        records: &[Record],
        condition: &str,
        attempts: u32,
    ) -> anyhow::Result<()> {
        if records.is_empty() {
            return Ok(());
        }
        self.progress
            .exhausted_batches
            .fetch_add(1, Ordering::Relaxed);
        self.progress
            .exhausted_records
            .fetch_add(records.len(), Ordering::Relaxed);
        self.settle(records.len());
        tracing::warn!(shard_id = %self.shard_id, records = records.len(), condition, "batch sent to the on-failure destination");
        let Some(bucket) = &self.settings.on_failure_bucket else {
            return Ok(());
        };
        let now = Utc::now();
        let payload = String::from_utf8(self.event(records)).expect("event JSON is UTF-8");
        let record = on_failure_record(
            &self.settings,
            &self.shard_id,
            records,
            condition,
            attempts,
            now,
            Some(payload),
        );
        let key = on_failure_key(
            &mapping_uuid(&self.settings.stream_arn),
            &self.shard_id,
            now,
        );
        self.s3
            .put_object()
            .bucket(bucket)
            .key(&key)
            .content_type("application/json")
            .body(serde_json::to_vec(&record)?.into())
            .send()
            .await
            .with_context(|| format!("writing {key} to the on-failure destination"))?;
        Ok(())
    }

    /// The event JSON exactly as Lambda builds it for a Kinesis batch.
    fn event(&self, records: &[Record]) -> Vec<u8> {
        lambda_json(&kinesis_event(
            records,
            &self.shard_id,
            &self.settings.region,
            &self.settings.stream_arn,
        ))
    }
}

/// The invocation event for a batch of one shard's records, as Lambda builds it.
/// A record without an arrival time (GetRecords always gives one) gets the Unix epoch.
pub fn kinesis_event(
    records: &[Record],
    shard_id: &str,
    region: &str,
    stream_arn: &str,
) -> KinesisEvent {
    let mut event = KinesisEvent::default();
    event.records = records
        .iter()
        .map(|r| {
            let mut kinesis = KinesisRecord::default();
            kinesis.kinesis_schema_version = Some("1.0".into());
            kinesis.partition_key = r.partition_key().unwrap_or_default().to_string();
            kinesis.sequence_number = r.sequence_number().to_string();
            *kinesis.data = r.data().as_ref().to_vec();
            *kinesis.approximate_arrival_timestamp = arrival(r).unwrap_or_default();
            let mut record = KinesisEventRecord::default();
            record.kinesis = kinesis;
            record.event_source = Some("aws:kinesis".into());
            record.event_version = Some("1.0".into());
            record.event_id = Some(format!("{shard_id}:{}", r.sequence_number()));
            record.event_name = Some("aws:kinesis:record".into());
            record.invoke_identity_arn = Some(LOCAL_ROLE_ARN.into());
            record.aws_region = Some(region.into());
            record.event_source_arn = Some(stream_arn.into());
            record
        })
        .collect();
    event
}

/// The event as the JSON Lambda sends. Two fields differ from `aws_lambda_events`' own
/// serialisation: Lambda writes `approximateArrivalTimestamp` as a number of seconds (the
/// crate writes a string), and `encryptionType` only for an encrypted stream (the crate
/// always writes it, `NONE` here).
pub fn lambda_json(event: &KinesisEvent) -> Vec<u8> {
    let mut value = serde_json::to_value(event).expect("an event serialises");
    let records = value
        .get_mut("Records")
        .and_then(|r| r.as_array_mut())
        .into_iter()
        .flatten();
    for kinesis in records.filter_map(|r| r.get_mut("kinesis")?.as_object_mut()) {
        let seconds = kinesis
            .get("approximateArrivalTimestamp")
            .and_then(|t| t.as_str()?.parse::<f64>().ok());
        if let Some(seconds) = seconds {
            kinesis.insert("approximateArrivalTimestamp".into(), json!(seconds));
        }
        if kinesis.get("encryptionType") == Some(&json!("NONE")) {
            kinesis.remove("encryptionType");
        }
    }
    serde_json::to_vec(&value).expect("an event serialises")
}

/// The invocation record Lambda sends to an on-failure destination for a Kinesis batch (Lambda
/// developer guide, "Retain discarded batch records for a Kinesis Data Streams event source");
/// `payload` (the whole event, as an escaped JSON string) only for S3 destinations.
pub fn on_failure_record(
    settings: &MappingSettings,
    shard_id: &str,
    records: &[Record],
    condition: &str,
    attempts: u32,
    now: DateTime<Utc>,
    payload: Option<String>,
) -> serde_json::Value {
    let (first, last) = (&records[0], &records[records.len() - 1]);
    let mut record = json!({
        "requestContext": {
            "requestId": format!("local-{}-{}", shard_id, first.sequence_number()),
            "functionArn": format!("arn:aws:lambda:{}:123456789012:function:reactor-monitor", settings.region),
            "condition": condition,
            "approximateInvokeCount": attempts,
        },
        "responseContext": { "statusCode": 200, "executedVersion": "$LATEST", "functionError": "Unhandled" },
        "version": "1.0",
        "timestamp": now.to_rfc3339_opts(SecondsFormat::Millis, true),
        "KinesisBatchInfo": {
            "shardId": shard_id,
            "startSequenceNumber": first.sequence_number(),
            "endSequenceNumber": last.sequence_number(),
            "approximateArrivalOfFirstRecord": arrival(first).map(|t| t.to_rfc3339_opts(SecondsFormat::Millis, true)),
            "approximateArrivalOfLastRecord": arrival(last).map(|t| t.to_rfc3339_opts(SecondsFormat::Millis, true)),
            "batchSize": records.len(),
            "streamArn": settings.stream_arn,
        }
    });
    if let Some(payload) = payload {
        record["payload"] = serde_json::Value::String(payload);
    }
    record
}

/// The key of an on-failure object, as AWS documents it:
/// `aws/lambda/<ESM-UUID>/<shardID>/YYYY/MM/DD/YYYY-MM-DDTHH.MM.SS-<Random UUID>`.
pub fn on_failure_key(mapping_uuid: &str, shard_id: &str, now: DateTime<Utc>) -> String {
    let random: u128 = rand::random();
    format!(
        "{ON_FAILURE_KEY_PREFIX}{mapping_uuid}/{shard_id}/{}/{}-{}",
        now.format("%Y/%m/%d"),
        now.format("%Y-%m-%dT%H.%M.%S"),
        uuid_text(random)
    )
}

/// Every on-failure object's key starts with it.
pub const ON_FAILURE_KEY_PREFIX: &str = "aws/lambda/";

/// The local mapping's UUID: stable for a stream, so its objects group under one prefix as a
/// real mapping's do.
pub fn mapping_uuid(stream_arn: &str) -> String {
    use md5::Digest;
    let digest = md5::Md5::digest(format!("reactor-monitor-local esm {stream_arn}").as_bytes());
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(&digest);
    bytes[6] = (bytes[6] & 0x0f) | 0x30; // version 3 (name-based, MD5)
    bytes[8] = (bytes[8] & 0x3f) | 0x80; // RFC 4122 variant
    uuid_text(u128::from_be_bytes(bytes))
}

fn uuid_text(value: u128) -> String {
    let hex = format!("{value:032x}");
    format!(
        "{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    )
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

    #[test]
    fn events_are_the_json_lambda_sends() {
        let fixture: serde_json::Value =
            serde_json::from_slice(include_bytes!("../../../events/kinesis-event.json")).unwrap();
        let fixture_records = fixture["Records"].as_array().unwrap();
        let records: Vec<Record> = fixture_records
            .iter()
            .map(|r| {
                use base64::Engine;
                let k = &r["kinesis"];
                let seconds = k["approximateArrivalTimestamp"].as_f64().unwrap();
                Record::builder()
                    .sequence_number(k["sequenceNumber"].as_str().unwrap())
                    .partition_key(k["partitionKey"].as_str().unwrap())
                    .data(Blob::new(
                        base64::engine::general_purpose::STANDARD
                            .decode(k["data"].as_str().unwrap())
                            .unwrap(),
                    ))
                    .approximate_arrival_timestamp(
                        aws_sdk_kinesis::primitives::DateTime::from_millis(
                            (seconds * 1000.0).round() as i64,
                        ),
                    )
                    .build()
                    .unwrap()
            })
            .collect();
        let first = &fixture_records[0];
        let shard_id = first["eventID"]
            .as_str()
            .unwrap()
            .split(':')
            .next()
            .unwrap();

        let event = kinesis_event(
            &records,
            shard_id,
            first["awsRegion"].as_str().unwrap(),
            first["eventSourceARN"].as_str().unwrap(),
        );
        let sent: serde_json::Value = serde_json::from_slice(&lambda_json(&event)).unwrap();

        let mut expected = fixture.clone();
        for record in expected["Records"].as_array_mut().unwrap() {
            record["invokeIdentityArn"] = LOCAL_ROLE_ARN.into();
        }
        assert_eq!(sent, expected);
        assert!(sent["Records"][0]["kinesis"]["approximateArrivalTimestamp"].is_number());
        let decoded: KinesisEvent = serde_json::from_value(sent).unwrap();
        assert_eq!(decoded, event);
    }

    #[test]
    fn a_starting_position_is_read_as_the_cli_writes_it() {
        assert_eq!("trim-horizon".parse(), Ok(StartingPosition::TrimHorizon));
        assert_eq!("TRIM_HORIZON".parse(), Ok(StartingPosition::TrimHorizon));
        assert_eq!("latest".parse(), Ok(StartingPosition::Latest));
        let at: StartingPosition = "at-timestamp=2026-11-25T10:00:00+01:00".parse().unwrap();
        assert_eq!(
            at,
            StartingPosition::AtTimestamp("2026-11-25T09:00:00Z".parse().unwrap())
        );
        assert_eq!(at.to_string(), "AT_TIMESTAMP 2026-11-25T09:00:00.000Z");
        for bad in ["", "earliest", "at-timestamp=yesterday"] {
            let err = bad.parse::<StartingPosition>().unwrap_err();
            assert!(err.to_string().contains("trim-horizon, latest"), "{err}");
        }
    }
}
