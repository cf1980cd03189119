//! `reactor-monitor up`: the local stack, long-running, for the tutorial walkthrough. Starts
//! (or attaches to) the emulator, creates the template's resources, prints them with
//! ready-to-paste AWS CLI commands, then runs the event source mapping over the shipped
//! handler until Ctrl-C or SIGTERM, with a live view drawn from the spans it receives.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::io::{IsTerminal, Write as _};
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, bail};
use aws_lambda_events::event::streams::KinesisEventResponse;
use aws_sdk_kinesis::types::ShardIteratorType;
use base64::Engine;
use chrono::{DateTime, Utc};
use opentelemetry_sdk::trace::SdkTracerProvider;
use serde::Deserialize;
use tokio::signal::unix::{Signal, SignalKind, signal};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::emulator::Emulator;
use crate::esm::{self, Invoke, MappingProgress};
use crate::otlp::{OtlpReceiver, ReceivedSpan, unique_flows};
use crate::report::{self, FlowReport, Headline, Notable};
use crate::resources::{self, ResourceNames, Resources};
use crate::run::{self, InProcessFunction, LocalOptions};
use reactor_monitor::adapters::dynamodb::attr;
use reactor_monitor::aws;
use reactor_monitor::domain::SequenceNumber;
use reactor_monitor::function::AwsFunction;
use reactor_monitor::telemetry::function::MetricsSink;
use reactor_monitor::telemetry::traces::{self, TracePlan};

/// How often the live view refreshes (and spans are flushed to the receiver).
/// Spans `up` keeps for its view and report: the most recent ones, so memory stays flat
/// however long it runs (a few KB a span as kept here).
const SPAN_WINDOW: usize = 10_000;
const REFRESH: Duration = Duration::from_secs(1);
/// Beyond the function timeout, how long stopping may wait for the batch in flight.
const STOP_MARGIN: Duration = Duration::from_secs(15);
/// Alerts and rejections the live view shows.
const LIVE_RECENT: usize = 5;
/// Record lines one refresh prints when stdout is not a terminal; the rest are counted.
const LOG_LINES_PER_REFRESH: usize = 20;
/// The reading of the tutorial, as the AWS CLI examples put it.
pub const TUTORIAL_READING: &str =
    r#"{"temp":750,"reactor":"reactor-1","date":"2020-03-07T16:29:50+02:00"}"#;

/// Where the event source mapping starts reading each shard.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum StartingPosition {
    /// Every record the stream still holds (the template's choice).
    #[default]
    TrimHorizon,
    /// Only records put after `up` started.
    Latest,
}

impl std::str::FromStr for StartingPosition {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().replace('_', "-").as_str() {
            "trim-horizon" => Ok(Self::TrimHorizon),
            "latest" => Ok(Self::Latest),
            _ => Err(format!("{s:?} is not trim-horizon or latest")),
        }
    }
}

impl std::fmt::Display for StartingPosition {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::TrimHorizon => "TRIM_HORIZON",
            Self::Latest => "LATEST",
        })
    }
}

#[derive(Debug, Clone)]
pub struct UpOptions {
    pub endpoint: Option<String>,
    pub names: ResourceNames,
    pub shards: u32,
    pub batch_size: usize,
    pub batching_window: Duration,
    pub maximum_retry_attempts: u32,
    pub function_timeout: Duration,
    pub starting_position: StartingPosition,
    /// Where to write the HTML report when the session stops.
    pub report: Option<PathBuf>,
    pub trace_plan: TracePlan,
}

impl Default for UpOptions {
    fn default() -> Self {
        let local = LocalOptions::default();
        Self {
            endpoint: None,
            names: ResourceNames::default(),
            shards: 1,
            batch_size: local.batch_size,
            batching_window: local.batching_window,
            maximum_retry_attempts: local.maximum_retry_attempts,
            function_timeout: local.function_timeout,
            starting_position: StartingPosition::default(),
            report: None,
            trace_plan: TracePlan::default(),
        }
    }
}

impl UpOptions {
    fn mapping_options(&self) -> LocalOptions {
        LocalOptions {
            batch_size: self.batch_size,
            batching_window: self.batching_window,
            maximum_retry_attempts: self.maximum_retry_attempts,
            function_timeout: self.function_timeout,
            names: self.names.clone(),
            ..LocalOptions::default()
        }
    }
}

/// Runs until Ctrl-C or SIGTERM; then the batch in flight finishes and the emulator that
/// `up` started is stopped.
pub async fn run(options: UpOptions) -> anyhow::Result<()> {
    let attach_to = options
        .endpoint
        .clone()
        .or_else(|| std::env::var("AWS_ENDPOINT_URL").ok());
    let (emulator, endpoint) = match attach_to {
        Some(url) => (None, url),
        None => {
            let emulator = Emulator::start()
                .await
                .context("starting the local AWS emulator")?;
            let url = emulator.endpoint().to_string();
            (Some(emulator), url)
        }
    };
    let result = serve(&endpoint, &options, emulator.is_some()).await;
    if let Some(emulator) = emulator {
        emulator.stop().await;
        println!("emulator at {endpoint} stopped");
    }
    result
}

async fn serve(endpoint: &str, options: &UpOptions, owns_emulator: bool) -> anyhow::Result<()> {
    let started = Utc::now();
    let sdk = aws::local_sdk_config(endpoint).await;
    let resources = resources::create(&sdk, &options.names, options.shards).await?;
    let kinesis = aws_sdk_kinesis::Client::new(&sdk);
    let shard_ids = shard_ids(&kinesis, &resources.stream_arn).await?;
    let starting_positions = match options.starting_position {
        StartingPosition::TrimHorizon => HashMap::new(),
        StartingPosition::Latest => {
            last_sequence_numbers(&kinesis, &resources.stream_arn, &shard_ids).await?
        }
    };
    let receiver = OtlpReceiver::start_bounded(SPAN_WINDOW).await?;
    let provider = traces::otlp_provider(Some(&receiver.endpoint))?;
    let config = run::function_config(&resources, options.trace_plan);
    let function = Arc::new(Watched {
        function: InProcessFunction {
            function: AwsFunction::from_config(
                &config,
                &sdk,
                Some(provider.clone()),
                MetricsSink::Collect(Mutex::default()),
            ),
            summary: None,
            invoked_function_arn: InProcessFunction::arn(&run::region_of(&sdk)),
        },
        shards: Mutex::new(
            shard_ids
                .iter()
                .map(|id| (id.clone(), ShardWatch::default()))
                .collect(),
        ),
        skip_through: starting_positions
            .iter()
            .map(|(shard, seq)| (shard.clone(), SequenceNumber::new(seq.as_str())))
            .collect(),
    });
    let mut settings = run::mapping_settings(&options.mapping_options(), &resources, &sdk, &[]);
    settings.starting_positions = starting_positions;
    settings.only_started_shards = false;

    let region = settings.region.clone();
    let mut view = LiveView::new(std::io::stdout().is_terminal());
    view.note(&banner(
        endpoint,
        owns_emulator,
        &region,
        &resources,
        &receiver.endpoint,
        options.starting_position,
        shard_ids.len(),
    ));
    let progress = Arc::new(MappingProgress::default());
    let mapping = tokio::spawn(esm::run(
        kinesis,
        aws::s3_client(&sdk),
        settings,
        function.clone(),
        progress.clone(),
    ));
    let session = Session {
        function: &function,
        progress: &progress,
        receiver: &receiver,
        provider: &provider,
        stop_bound: options.function_timeout + STOP_MARGIN,
    };
    let result = session
        .until_stopped(mapping, &mut view, endpoint, owns_emulator)
        .await;

    run::shut_down_tracing(provider).await?;
    let spans = receiver.spans();
    view.finish(
        &spans,
        receiver.total_received(),
        &function.shards(),
        &progress,
    );
    if let Some(path) = &options.report {
        FlowReport::from_spans(&spans, config.thresholds)
            .write_html(path, &Headline::up(endpoint, started, Utc::now()))?;
        println!("report written to {}", path.display());
    }
    result
}

/// What the live view watches while the mapping runs.
struct Session<'a> {
    function: &'a Watched,
    progress: &'a MappingProgress,
    receiver: &'a OtlpReceiver,
    provider: &'a SdkTracerProvider,
    /// How long the batch in flight may take to finish: its deadline, then a retry or two.
    stop_bound: Duration,
}

impl Session<'_> {
    async fn until_stopped(
        &self,
        mut mapping: JoinHandle<anyhow::Result<()>>,
        view: &mut LiveView,
        endpoint: &str,
        owns_emulator: bool,
    ) -> anyhow::Result<()> {
        let mut interrupt = signal(SignalKind::interrupt()).context("listening for Ctrl-C")?;
        let mut terminate = signal(SignalKind::terminate()).context("listening for SIGTERM")?;
        let mut refresh = tokio::time::interval(REFRESH);
        refresh.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        loop {
            tokio::select! {
                _ = interrupt.recv() => break,
                _ = terminate.recv() => break,
                ended = &mut mapping => {
                    ended.context("the event source mapping panicked")??;
                    bail!("the event source mapping stopped: every shard of the stream is closed");
                }
                _ = refresh.tick() => {
                    flush(self.provider).await;
                    view.refresh(
                        &self.receiver.spans(),
                        self.receiver.total_received(),
                        &self.function.shards(),
                        self.progress,
                    );
                }
            }
        }

        self.progress.stop.store(true, Ordering::Relaxed);
        view.note("stopping: the batch in flight finishes first (Ctrl-C again to abort)");
        let ended = tokio::select! {
            ended = &mut mapping => Some(ended),
            _ = next_signal(&mut interrupt, &mut terminate) => None,
            _ = tokio::time::sleep(self.stop_bound) => None,
        };
        let Some(ended) = ended else {
            mapping.abort();
            view.note("aborted: the batch in flight was not checkpointed");
            return Ok(());
        };
        match ended.context("the event source mapping panicked")? {
            Err(e) if owns_emulator && !reachable(endpoint).await => {
                // Ctrl-C in a terminal reaches the whole process group, the emulator too.
                tracing::debug!(error = %e, "the mapping lost the emulator while stopping");
                view.note("the emulator had stopped with the same Ctrl-C");
                Ok(())
            }
            other => other,
        }
    }
}

async fn next_signal(interrupt: &mut Signal, terminate: &mut Signal) {
    tokio::select! {
        _ = interrupt.recv() => {}
        _ = terminate.recv() => {}
    }
}

async fn flush(provider: &SdkTracerProvider) {
    let provider = provider.clone();
    let flushed = tokio::task::spawn_blocking(move || provider.force_flush()).await;
    if let Ok(Err(e)) = flushed {
        tracing::warn!(error = %e, "spans could not be flushed to the local receiver");
    }
}

async fn reachable(endpoint: &str) -> bool {
    let address = endpoint.trim_start_matches("http://").trim_end_matches('/');
    matches!(
        tokio::time::timeout(
            Duration::from_millis(500),
            tokio::net::TcpStream::connect(address)
        )
        .await,
        Ok(Ok(_))
    )
}

async fn shard_ids(
    kinesis: &aws_sdk_kinesis::Client,
    stream_arn: &str,
) -> anyhow::Result<Vec<String>> {
    let out = kinesis
        .list_shards()
        .stream_arn(stream_arn)
        .send()
        .await
        .context("listing shards")?;
    Ok(out
        .shards()
        .iter()
        .map(|s| s.shard_id().to_string())
        .collect())
}

/// The last sequence number each shard holds now: a LATEST start begins after it.
async fn last_sequence_numbers(
    kinesis: &aws_sdk_kinesis::Client,
    stream_arn: &str,
    shard_ids: &[String],
) -> anyhow::Result<HashMap<String, String>> {
    let mut last = HashMap::new();
    for shard in shard_ids {
        let mut iterator = kinesis
            .get_shard_iterator()
            .stream_arn(stream_arn)
            .shard_id(shard)
            .shard_iterator_type(ShardIteratorType::TrimHorizon)
            .send()
            .await
            .context("getting a shard iterator")?
            .shard_iterator;
        while let Some(it) = iterator {
            let out = kinesis
                .get_records()
                .stream_arn(stream_arn)
                .shard_iterator(it)
                .limit(10_000)
                .send()
                .await
                .context("reading the shard to its end")?;
            let Some(record) = out.records.last() else {
                break;
            };
            last.insert(shard.clone(), record.sequence_number().to_string());
            iterator = out.next_shard_iterator;
        }
    }
    Ok(last)
}

/// The function as `up` invokes it: notes each shard's iterator age, and drops the records
/// that were in the stream before a LATEST start.
struct Watched {
    function: InProcessFunction,
    shards: Mutex<BTreeMap<String, ShardWatch>>,
    skip_through: HashMap<String, SequenceNumber>,
}

/// What the mapping delivered from one shard.
#[derive(Debug, Clone, Default)]
struct ShardWatch {
    batches: usize,
    records: usize,
    last_sequence_number: String,
    /// Age of the batch's last record when it was delivered: Lambda's `IteratorAge`.
    iterator_age_ms: Option<i64>,
    delivered_at: Option<DateTime<Utc>>,
}

/// The parts of a Kinesis event the watcher reads.
#[derive(Deserialize)]
struct EventBatch {
    #[serde(rename = "Records")]
    records: Vec<EventRecord>,
}

#[derive(Deserialize)]
struct EventRecord {
    #[serde(rename = "eventID")]
    event_id: String,
    kinesis: EventKinesis,
}

#[derive(Deserialize)]
struct EventKinesis {
    #[serde(rename = "sequenceNumber")]
    sequence_number: String,
    #[serde(rename = "approximateArrivalTimestamp")]
    arrival_seconds: Option<f64>,
}

impl EventRecord {
    fn shard_id(&self) -> &str {
        self.event_id
            .split_once(':')
            .map_or(self.event_id.as_str(), |(shard, _)| shard)
    }
}

impl Watched {
    fn shards(&self) -> BTreeMap<String, ShardWatch> {
        self.shards.lock().expect("shards lock").clone()
    }

    fn after_start(&self, record: &EventRecord) -> bool {
        self.skip_through
            .get(record.shard_id())
            .is_none_or(|through| {
                SequenceNumber::new(record.kinesis.sequence_number.as_str()) > *through
            })
    }

    /// The event without the records at or before a LATEST start; `None` when none is left.
    fn without_skipped(
        &self,
        batch: &EventBatch,
        event: Vec<u8>,
    ) -> Result<Option<Vec<u8>>, String> {
        if batch.records.iter().all(|r| self.after_start(r)) {
            return Ok(Some(event));
        }
        let kept: Vec<bool> = batch.records.iter().map(|r| self.after_start(r)).collect();
        if !kept.contains(&true) {
            return Ok(None);
        }
        let mut value: serde_json::Value =
            serde_json::from_slice(&event).map_err(|e| e.to_string())?;
        if let Some(records) = value.get_mut("Records").and_then(|r| r.as_array_mut()) {
            let mut keep = kept.into_iter();
            records.retain(|_| keep.next().unwrap_or(true));
        }
        serde_json::to_vec(&value)
            .map(Some)
            .map_err(|e| e.to_string())
    }

    fn note_delivery(&self, batch: &EventBatch) {
        let delivered: Vec<&EventRecord> = batch
            .records
            .iter()
            .filter(|r| self.after_start(r))
            .collect();
        let Some(last) = delivered.last() else {
            return;
        };
        let now = Utc::now();
        let mut shards = self.shards.lock().expect("shards lock");
        let watch = shards.entry(last.shard_id().to_string()).or_default();
        watch.batches += 1;
        watch.records += delivered.len();
        watch.last_sequence_number = last.kinesis.sequence_number.clone();
        watch.iterator_age_ms = last
            .kinesis
            .arrival_seconds
            .map(|s| (now.timestamp_millis() - (s * 1000.0) as i64).max(0));
        watch.delivered_at = Some(now);
    }
}

impl Invoke for Watched {
    async fn invoke(
        &self,
        event: Vec<u8>,
        deadline: Instant,
    ) -> Result<KinesisEventResponse, String> {
        let batch: EventBatch =
            serde_json::from_slice(&event).map_err(|e| format!("invalid event: {e}"))?;
        let Some(event) = self.without_skipped(&batch, event)? else {
            return Ok(KinesisEventResponse::default());
        };
        self.note_delivery(&batch);
        let response = self.function.invoke(event, deadline).await;
        // `up` runs for ever: the EMF lines (what CloudWatch would receive) are checked as
        // CloudWatch reads them, not kept.
        let lines = self.function.function.telemetry.take_collected_metrics();
        if let Err(e) = crate::metrics::EmfTotals::from_lines(&lines) {
            tracing::warn!(error = %e, "the function wrote an EMF line CloudWatch would drop");
        }
        response
    }
}

fn banner(
    endpoint: &str,
    owns_emulator: bool,
    region: &str,
    resources: &Resources,
    otlp_endpoint: &str,
    starting_position: StartingPosition,
    shards: usize,
) -> String {
    let names = &resources.names;
    let aws = format!("aws --endpoint-url {endpoint} --region {region}");
    let put = format!(
        "{aws} kinesis put-record --stream-name {} --partition-key 1",
        names.stream
    );
    let encoded = base64::engine::general_purpose::STANDARD.encode(TUTORIAL_READING);
    let query = format!(
        r#"{aws} dynamodb query --table-name {} --key-condition-expression '{} = :r AND {} BETWEEN :t1 AND :t2' --expression-attribute-values '{{":r":{{"S":"reactor-1"}},":t1":{{"S":"2020-03-07T14:00:00"}},":t2":{{"S":"2020-03-07T15:00:00~"}}}}'"#,
        names.table,
        attr::REACTOR,
        attr::READING_ID
    );
    let mut out = String::new();
    let _ = write!(
        out,
        "reactor-monitor up: the pipeline runs on 127.0.0.1 until Ctrl-C\n\n\
         endpoint            {endpoint}  ({})\n\
         stream              {}  ({shards} shard{}, from {starting_position})\n\
         table               {}\n\
         alert topic         {}\n\
         on-call queue       {}  (subscribed to the alert topic)\n\
         dead-letter bucket  {}\n\
         spans (OTLP/HTTP)   {otlp_endpoint}/v1/traces\n\n\
         Try it from another terminal with the AWS CLI (the emulator takes any credentials):\n\n\
         export AWS_ACCESS_KEY_ID=local AWS_SECRET_ACCESS_KEY=local\n\n\
         # put the tutorial's reading (AWS CLI v2)\n\
         {put} --cli-binary-format raw-in-base64-out --data '{TUTORIAL_READING}'\n\
         # the same reading base64-encoded, the AWS CLI v2 default\n\
         {put} --data {encoded}\n\
         # AWS CLI v1 (pip install awscli) sends --data as it is: raw JSON, no --cli-binary-format\n\
         {put} --data '{TUTORIAL_READING}'\n\
         # every reading in the table\n\
         {aws} dynamodb scan --table-name {}\n\
         # reactor-1's readings between two instants (UTC)\n\
         {query}\n\
         # alerts delivered to on-call\n\
         {aws} sqs receive-message --queue-url {} --message-attribute-names All --max-number-of-messages 10\n\
         # payloads the function could not read: each object is the record byte for byte, its metadata says why\n\
         {aws} s3 ls s3://{}/ --recursive\n\
         # a steady flow of generated readings, like the Kinesis Data Generator\n\
         reactor-monitor generate --endpoint {endpoint} --stream {} --rate 20 --duration 60\n",
        if owns_emulator {
            "started by up, stops with it"
        } else {
            "attached"
        },
        names.stream,
        if shards == 1 { "" } else { "s" },
        names.table,
        resources.alert_topic_arn,
        resources.on_call_queue_url,
        names.dead_letter_bucket,
        names.table,
        resources.on_call_queue_url,
        names.dead_letter_bucket,
        names.stream,
    );
    out.push_str("\nwaiting for records (Ctrl-C stops)\n");
    out
}

/// The live view: a frame redrawn in place on a terminal, log lines otherwise.
struct LiveView {
    terminal: bool,
    /// Lines of the frame on screen, to move back over.
    drawn: usize,
    /// Spans already logged, counted since the start.
    logged: usize,
}

impl LiveView {
    fn new(terminal: bool) -> Self {
        Self {
            terminal,
            drawn: 0,
            logged: 0,
        }
    }

    /// Text below the frame; the next frame starts under it.
    fn note(&mut self, text: &str) {
        println!("{}", text.trim_end());
        self.drawn = 0;
    }

    fn refresh(
        &mut self,
        spans: &[ReceivedSpan],
        total: usize,
        shards: &BTreeMap<String, ShardWatch>,
        progress: &MappingProgress,
    ) {
        if self.terminal {
            self.redraw(&frame(spans, shards, progress));
        } else {
            self.log(spans, total, shards, progress);
        }
    }

    fn redraw(&mut self, lines: &[String]) {
        let mut out = String::new();
        if self.drawn > 0 {
            let _ = write!(out, "\x1b[{}A", self.drawn);
        }
        for line in lines {
            let _ = write!(out, "\r{line}\x1b[K\n");
        }
        out.push_str("\x1b[J");
        let mut stdout = std::io::stdout().lock();
        let _ = stdout.write_all(out.as_bytes());
        let _ = stdout.flush();
        self.drawn = lines.len();
    }

    fn log(
        &mut self,
        spans: &[ReceivedSpan],
        total: usize,
        shards: &BTreeMap<String, ShardWatch>,
        progress: &MappingProgress,
    ) {
        let new = total.saturating_sub(self.logged).min(spans.len());
        let fresh = &spans[spans.len() - new..];
        self.logged = total;
        let records: Vec<&ReceivedSpan> = fresh.iter().filter(|s| s.is_record()).collect();
        if records.is_empty() {
            return;
        }
        for span in records.iter().take(LOG_LINES_PER_REFRESH) {
            println!("{}", record_line(&Notable::of(span)));
        }
        if records.len() > LOG_LINES_PER_REFRESH {
            println!(
                "…         and {} more records",
                records.len() - LOG_LINES_PER_REFRESH
            );
        }
        println!("{}", totals_line(spans, shards, progress));
    }

    /// The last word: the final frame, or the totals, and the unique flows.
    fn finish(
        &mut self,
        spans: &[ReceivedSpan],
        total: usize,
        shards: &BTreeMap<String, ShardWatch>,
        progress: &MappingProgress,
    ) {
        if self.terminal {
            self.drawn = 0;
            self.redraw(&frame(spans, shards, progress));
        } else {
            self.log(spans, total, shards, progress);
            print!("{}", report::flows_table(&unique_flows(spans)));
        }
    }
}

fn clock(unix_ms: i64) -> String {
    DateTime::<Utc>::from_timestamp_millis(unix_ms)
        .map(|t| t.format("%H:%M:%S%.3f").to_string())
        .unwrap_or_default()
}

fn record_line(record: &Notable) -> String {
    let place = format!("{}/{}", record.shard_id, record.sequence_number);
    let at = clock(record.at_unix_ms);
    if record.failed {
        return format!(
            "failed    {at}  {:<11} {place}  reported for retry",
            record.flow_type
        );
    }
    if let Some(reason) = &record.reject_reason {
        return format!(
            "rejected  {at}  {reason:<26} {:>7} bytes  {place}",
            record.payload_bytes.unwrap_or(0)
        );
    }
    let reading = format!(
        "{:<12} {:>8} °C",
        record.reactor.as_deref().unwrap_or_default(),
        record.temperature_c.unwrap_or(f64::NAN)
    );
    match &record.severity {
        Some(severity) => format!("alert     {at}  {severity:<10} {reading}  {place}"),
        None => format!("stored    {at}  {:<10} {reading}  {place}", ""),
    }
}

fn totals_line(
    spans: &[ReceivedSpan],
    shards: &BTreeMap<String, ShardWatch>,
    progress: &MappingProgress,
) -> String {
    let flows: Vec<String> = unique_flows(spans)
        .iter()
        .map(|row| format!("{} {}", row.flow_type, row.count))
        .collect();
    let ages: Vec<String> = shards
        .iter()
        .map(|(shard, watch)| format!("{shard} {}", age_text(watch)))
        .collect();
    format!(
        "flows     {} | invocations {} | iterator age {}",
        flows.join(" · "),
        progress.invocations.load(Ordering::Relaxed),
        ages.join(", ")
    )
}

fn age_text(watch: &ShardWatch) -> String {
    watch
        .iterator_age_ms
        .map_or_else(|| "-".to_string(), |ms| format!("{ms} ms"))
}

fn frame(
    spans: &[ReceivedSpan],
    shards: &BTreeMap<String, ShardWatch>,
    progress: &MappingProgress,
) -> Vec<String> {
    let records = spans.iter().filter(|s| s.is_record()).count();
    let mut lines = vec![
        format!(
            "── live {} UTC · {records} record spans · {} invocations · {} spans · Ctrl-C stops",
            Utc::now().format("%H:%M:%S"),
            progress.invocations.load(Ordering::Relaxed),
            spans.len()
        ),
        String::new(),
    ];
    lines.extend(
        report::flows_table(&unique_flows(spans))
            .lines()
            .map(str::to_string),
    );
    for (title, recent) in [
        ("last alerts", report::latest_alerts(spans, LIVE_RECENT)),
        (
            "last rejections",
            report::latest_rejections(spans, LIVE_RECENT),
        ),
    ] {
        lines.push(String::new());
        lines.push(title.to_string());
        if recent.is_empty() {
            lines.push("  none yet".to_string());
        }
        lines.extend(recent.iter().map(|n| format!("  {}", record_line(n))));
    }
    lines.push(String::new());
    lines.push("iterator age per shard (age of the last record delivered)".to_string());
    for (shard, watch) in shards {
        let last = watch
            .delivered_at
            .map(|t| format!(", last at {}", t.format("%H:%M:%S")))
            .unwrap_or_default();
        lines.push(format!(
            "  {shard}  {:>8}  ({} records in {} batches{last})",
            age_text(watch),
            watch.records,
            watch.batches
        ));
    }
    lines
}
