//! `reactor-monitor local`: generated readings → emulated Kinesis → the handler →
//! emulated DynamoDB / SNS / dead-letter, then a read-back that proves nothing was lost.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context;
use aws_lambda_events::event::streams::KinesisEventResponse;
use indicatif::{ProgressBar, ProgressStyle};
use lambda_runtime::LambdaEvent;
use serde::Serialize;
use tokio::time::Instant;

use crate::emulator::Emulator;
use crate::esm::{self, FunctionError, Invoke, MappingProgress, MappingSettings, StartingPosition};
use crate::generate::{self, Mix, OutgoingRecord};
use crate::on_call::{OnCallReadBack, Reported, SilenceCheckAt};
use crate::otlp::{OtlpReceiver, TraceFlowRow, unique_flows};
use crate::report::FlowReport;
use crate::resources::{self, ResourceNames, Resources};
use crate::summary::{Fate, FlowRow, RunSummary};
use crate::verify::{self, Verified};
use reactor_monitor::aws::LOCAL_REGION;
use reactor_monitor::config::Config;
use reactor_monitor::function::{AwsFunction, Invocation};
use reactor_monitor::kinesis::KinesisBatch;
use reactor_monitor::telemetry::function::MetricsSink;
use reactor_monitor::telemetry::names::SERVICE_NAME;
use reactor_monitor::telemetry::traces::{self, TracePlan};
use reactor_monitor::{aws, domain::Severity};

/// Options of a local run.
#[derive(Debug, Clone)]
pub struct LocalOptions {
    pub endpoint: Option<String>,
    pub readings: usize,
    pub input: Option<PathBuf>,
    pub batch_size: usize,
    pub shards: u32,
    pub mix: Mix,
    /// Pack up to this many readings into each Kinesis record (KPL aggregation); `None`: one
    /// reading per record.
    pub aggregate: Option<usize>,
    pub batching_window: Duration,
    pub maximum_retry_attempts: u32,
    pub function_timeout: Duration,
    pub names: ResourceNames,
    pub show_progress: bool,
    /// Faults to inject between the handler and the emulator (`--faults`); `None` for none.
    pub faults: Option<crate::faults::FaultSpec>,
    pub trace_plan: TracePlan,
    /// Run the spans through the real collector of this configuration's Lambda layer
    /// (`--collector otel-collector/<file>.yaml`, see [`crate::collector`]).
    pub collector: Option<PathBuf>,
    /// Also forward every span received to this OTLP/HTTP endpoint (Jaeger's, for `--jaeger`);
    /// `None`: `OTEL_EXPORTER_OTLP_ENDPOINT` if set.
    pub forward_to: Option<String>,
    /// A scripted dataset instead of generated readings (`--scenario`); `input` wins over it.
    pub scenario: Option<crate::scenario::Scenario>,
    /// When the scheduled silence check runs once the stream is drained (`--silence-check`).
    pub silence_check: SilenceCheckAt,
}

impl Default for LocalOptions {
    fn default() -> Self {
        Self {
            endpoint: None,
            readings: 1_000,
            input: None,
            batch_size: 100,
            shards: 1,
            mix: Mix::default(),
            aggregate: None,
            batching_window: Duration::from_millis(500),
            maximum_retry_attempts: 5,
            function_timeout: Duration::from_secs(60),
            names: ResourceNames::default(),
            show_progress: false,
            faults: None,
            trace_plan: TracePlan::default(),
            collector: None,
            forward_to: None,
            scenario: None,
            silence_check: SilenceCheckAt::default(),
        }
    }
}

#[derive(Debug, Clone, Serialize, Default, PartialEq)]
pub struct Alerted {
    pub warning: usize,
    pub emergency: usize,
}

/// The result of a local run; `--json` prints it.
#[derive(Debug, Clone, Serialize)]
pub struct LocalReport {
    pub endpoint: String,
    /// Readings put into the stream: user records of KPL aggregates count one each.
    pub produced: usize,
    /// Kinesis records that carried them: fewer than `produced` with `--aggregate`.
    pub kinesis_records: usize,
    pub stored: usize,
    pub alerted: Alerted,
    pub dead_lettered: usize,
    /// Kinesis records delivered again after a failure (partial batch responses, function errors).
    pub retried: usize,
    /// Kinesis records the mapping gave up on after bounded retries (sent to the on-failure
    /// destination).
    pub exhausted: usize,
    pub verified: Verified,
    /// produced − verified items − verified dead letters.
    pub lost: i64,
    /// Alerts expected from the readings that were stored and not delivered.
    pub missing_alerts: i64,
    /// Episode notifications reported per action, and read back from the on-call queue.
    pub on_call: OnCallReadBack,
    /// Per flow type from the handler's own outcomes (`outcome_flows` in JSON).
    #[serde(rename = "outcome_flows")]
    pub flows: Vec<FlowRow>,
    /// The unique-flows view computed from the spans received over OTLP (`flows` in JSON):
    /// flow, entry point, traces, errors, avg / p50 / p99, resources touched.
    #[serde(rename = "flows")]
    pub trace_flows: Vec<TraceFlowRow>,
    /// The function's EMF lines of the run, as CloudWatch would sum them.
    pub metrics: crate::metrics::EmfTotals,
    /// What `reactor-monitor report` draws: flow map, example traces, temperatures.
    pub flow_report: FlowReport,
    pub spans_received: usize,
    pub invocations: usize,
    pub aws_requests: HashMap<String, usize>,
    pub aws_requests_per_1000_readings: f64,
    pub produce_seconds: f64,
    pub process_seconds: f64,
    pub readings_per_second: f64,
    pub invocation_p50_ms: f64,
    pub invocation_p99_ms: f64,
    pub verdict: String,
    /// The collector's changes to its configuration for this machine (`--collector`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub collector_notes: Vec<String>,
    /// Every span the receiver kept (not printed).
    #[serde(skip)]
    pub spans: Vec<crate::otlp::ReceivedSpan>,
}

impl LocalReport {
    pub fn ok(&self) -> bool {
        self.lost == 0
            && self.missing_alerts == 0
            && self.verified.duplicate_alerts == 0
            && self.on_call.verified
    }
}

/// The shipped function as the emulated event source mapping invokes it: event JSON in,
/// the same composition `bootstrap` runs, each batch's outcomes noted for the verdict.
pub struct InProcessFunction {
    pub function: AwsFunction,
    /// Every record's fate, for a run with an end; `None` for `up`, which runs for ever.
    pub summary: Option<Mutex<RunSummary>>,
    /// The function ARN the invocations carry (`aws.lambda.invoked_arn` on their spans).
    pub invoked_function_arn: String,
}

impl InProcessFunction {
    /// The local function's ARN in `region`, with the emulator's account id.
    pub fn arn(region: &str) -> String {
        format!("arn:aws:lambda:{region}:{EMULATOR_ACCOUNT_ID}:function:{SERVICE_NAME}")
    }
}

/// The account id the emulator (moto) gives every resource.
const EMULATOR_ACCOUNT_ID: &str = "123456789012";

impl Invoke for InProcessFunction {
    async fn invoke(
        &self,
        event: Vec<u8>,
        deadline: Instant,
    ) -> Result<KinesisEventResponse, FunctionError> {
        let started = Instant::now();
        let payload: KinesisBatch =
            serde_json::from_slice(&event).map_err(|e| FunctionError::new("InvalidEvent", e))?;
        let mut context = lambda_runtime::Context::default();
        context.request_id = format!("local-{}", uuid_like());
        context.invoked_function_arn = self.invoked_function_arn.clone();
        let remaining = deadline.saturating_duration_since(Instant::now());
        context.deadline = (chrono::Utc::now() + remaining).timestamp_millis() as u64;
        let Invocation { report, result } = self
            .function
            .invoke(LambdaEvent::new(payload, context))
            .await;
        if let Some(summary) = &self.summary {
            summary
                .lock()
                .expect("summary lock")
                .record_batch(&report, started.elapsed());
        }
        let response =
            result.map_err(|e| FunctionError::from(lambda_runtime::Diagnostic::from(e)))?;
        // Through JSON, as Lambda reads the response.
        let json =
            serde_json::to_vec(&response).map_err(|e| FunctionError::new("InvalidResponse", e))?;
        serde_json::from_slice(&json).map_err(|e| FunctionError::new("InvalidResponse", e))
    }
}

fn uuid_like() -> String {
    static NEXT: AtomicUsize = AtomicUsize::new(1);
    format!("{:012}", NEXT.fetch_add(1, Ordering::Relaxed))
}

fn bar(show: bool, len: usize, message: &'static str) -> ProgressBar {
    if !show {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(len as u64).with_message(message);
    bar.set_style(
        ProgressStyle::with_template("{msg:>10} [{bar:40}] {pos}/{len} ({per_sec})")
            .expect("a valid template")
            .progress_chars("=> "),
    );
    bar
}

pub async fn run(options: LocalOptions) -> anyhow::Result<LocalReport> {
    let endpoint = options
        .endpoint
        .clone()
        .or_else(|| std::env::var("AWS_ENDPOINT_URL").ok());
    let emulator = match endpoint {
        Some(_) => None,
        None => Some(
            Emulator::start()
                .await
                .context("starting the local AWS emulator")?,
        ),
    };
    let endpoint =
        endpoint.unwrap_or_else(|| emulator.as_ref().expect("started").endpoint().to_string());
    let result = run_against(&endpoint, &options).await;
    if let Some(emulator) = emulator {
        emulator.stop().await;
    }
    result
}

async fn run_against(endpoint: &str, options: &LocalOptions) -> anyhow::Result<LocalReport> {
    let sdk = aws::local_sdk_config(endpoint).await;
    let resources = resources::create(&sdk, &options.names, options.shards).await?;

    let readings: Vec<OutgoingRecord> = match (&options.input, options.scenario) {
        (Some(path), _) => generate::read_input(path)?,
        (None, Some(scenario)) => scenario.records(),
        (None, None) => generate::generate(&options.mix, options.readings),
    };
    let records = match options.aggregate {
        Some(per_record) => generate::aggregate(&readings, per_record),
        None => readings,
    };
    let produced = generate::readings_in(&records);
    let kinesis = aws_sdk_kinesis::Client::new(&sdk);
    let put_calls = AtomicUsize::new(0);
    let produce_started = Instant::now();
    let bar_produce = bar(options.show_progress, records.len(), "produced");
    let placements = generate::put_records(
        &kinesis,
        &resources.names.stream,
        &records,
        None,
        &bar_produce,
        &put_calls,
    )
    .await?;
    bar_produce.finish();
    let produce_seconds = produce_started.elapsed().as_secs_f64();

    let receiver = match &options.forward_to {
        Some(forward) => OtlpReceiver::start_forwarding(Some(forward.clone())).await?,
        None => OtlpReceiver::start().await?,
    };
    let collector = match &options.collector {
        Some(file) => {
            Some(crate::collector::LocalCollector::start(file, &receiver.endpoint).await?)
        }
        None => None,
    };
    let export_to = collector
        .as_ref()
        .map_or(&receiver.endpoint, |c| &c.endpoint);
    let provider = traces::otlp_provider(Some(export_to))?;
    let config = function_config(&resources, options.trace_plan);
    // Only the handler's clients go through the fault proxy: the producer, the event
    // source mapping and the read-back see the emulator as it is.
    let fault_proxy = match &options.faults {
        Some(spec) => Some(crate::faults::FaultProxy::start(endpoint, spec).await?),
        None => None,
    };
    let handler_sdk = match &fault_proxy {
        Some(proxy) => aws::local_sdk_config(proxy.endpoint()).await,
        None => sdk.clone(),
    };
    let function = Arc::new(InProcessFunction {
        function: AwsFunction::from_config(
            &config,
            &handler_sdk,
            Some(provider.clone()),
            MetricsSink::Collect(Mutex::default()),
        ),
        summary: Some(Mutex::new(RunSummary::default())),
        invoked_function_arn: InProcessFunction::arn(&region_of(&sdk)),
    });
    let progress = Arc::new(MappingProgress::default());
    let process_started = Instant::now();
    let mapping = tokio::spawn(esm::run(
        kinesis.clone(),
        reactor_monitor::aws::s3_client(&sdk),
        mapping_settings(options, &resources, &sdk, &placements),
        function.clone(),
        progress.clone(),
    ));

    let bar_process = bar(options.show_progress, records.len(), "processed");
    while progress.settled.load(Ordering::Relaxed) < records.len() {
        if mapping.is_finished() {
            break;
        }
        bar_process.set_position(progress.settled.load(Ordering::Relaxed) as u64);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    progress.stop.store(true, Ordering::Relaxed);
    mapping
        .await
        .context("the event source mapping panicked")??;
    bar_process.finish();
    let process_seconds = process_started.elapsed().as_secs_f64();

    let mut reported = function
        .summary
        .as_ref()
        .expect("a local run keeps its summary")
        .lock()
        .expect("summary lock")
        .on_call
        .clone();
    let (check_run, silence_lines) =
        silence_check(&sdk, &config, options.silence_check, &mut reported).await?;
    let mut verified = verify::verify(&sdk, &resources, &placements).await?;
    let mut on_call = crate::on_call::read_back(&sdk, &resources, &reported).await?;
    on_call.silence_check = check_run;
    shut_down_tracing(provider).await?;
    let collector_notes = match collector {
        Some(collector) => {
            let mut notes = collector.notes.clone();
            // Exports what the collector still holds, as at the end of a Lambda environment.
            notes.extend(
                collector
                    .stop()
                    .await
                    .into_iter()
                    .map(|l| format!("log: {l}")),
            );
            notes
        }
        None => Vec::new(),
    };
    let spans = receiver.spans();
    verified.trace_alerts(&spans);
    let summary = function
        .summary
        .as_ref()
        .expect("a local run keeps its summary")
        .lock()
        .expect("summary lock");
    let mut report = report(
        endpoint,
        produced,
        records.len(),
        &summary,
        &progress,
        verified,
        on_call,
        put_calls.load(Ordering::Relaxed),
        produce_seconds,
        process_seconds,
    );
    let mut emf = function.function.telemetry.collected_metrics();
    emf.extend(silence_lines);
    report.metrics = crate::metrics::EmfTotals::from_lines(&emf)?;
    report.trace_flows = unique_flows(&spans);
    report.spans_received = spans.len();
    report.flow_report = FlowReport::from_spans(&spans, config.thresholds);
    // A local run knows every reading's date: the chart and its episode marks in reading time.
    report.flow_report.in_reading_time(
        summary
            .readings
            .values()
            .map(|(reactor, date, temp)| (reactor.as_str(), *date, *temp)),
    );
    if let Some(episodes) = &config.episodes {
        report
            .flow_report
            .mark_episodes(&report.on_call.pages, episodes.policy.silent_after);
    }
    report.collector_notes = collector_notes;
    report.spans = spans;
    Ok(report)
}

/// Runs the scheduled silence check once, as `when` says, on the un-faulted clients (like the
/// read-back, so that the verdict is exact): what it did, noted in `reported`, and its EMF
/// lines.
async fn silence_check(
    sdk: &aws_config::SdkConfig,
    config: &Config,
    when: SilenceCheckAt,
    reported: &mut Reported,
) -> anyhow::Result<(Option<crate::on_call::SilenceCheckRun>, Vec<String>)> {
    let Some(episodes) = &config.episodes else {
        return Ok((None, Vec::new()));
    };
    let Some(at) = when.time(reported.newest_reading, &episodes.policy) else {
        return Ok((None, Vec::new()));
    };
    let pipeline = aws::pipeline(sdk, config);
    let (run, report) =
        crate::on_call::silence_check(&pipeline.ledger, &pipeline.publisher, &episodes.policy, at)
            .await?;
    reported.record_silence_check(&report);
    let lines = reactor_monitor::telemetry::emf::silence_lines(&report, at.timestamp_millis());
    Ok((Some(run), lines))
}

/// The function's configuration for the local resources: their names, the run's trace plan,
/// and a root invocation span (there is no Lambda X-Ray segment to join locally).
pub(crate) fn function_config(resources: &Resources, trace_plan: TracePlan) -> Config {
    let mut config = resources.config();
    config.stream_name = resources.names.stream.clone();
    config.trace_plan = trace_plan;
    config
}

/// The region the SDK configuration names.
pub(crate) fn region_of(sdk: &aws_config::SdkConfig) -> String {
    sdk.region()
        .map_or_else(|| LOCAL_REGION.to_string(), |r| r.to_string())
}

/// Flushes the spans still queued to the receiver and stops the exporter. On a blocking
/// thread: the OTLP exporter's HTTP client blocks.
pub(crate) async fn shut_down_tracing(
    provider: opentelemetry_sdk::trace::SdkTracerProvider,
) -> anyhow::Result<()> {
    let flushed = tokio::task::spawn_blocking(move || {
        let result = provider.force_flush();
        let _ = provider.shutdown();
        result
    })
    .await?;
    if let Err(e) = flushed {
        tracing::warn!(error = %e, "spans could not be flushed to the local receiver");
    }
    Ok(())
}

pub(crate) fn mapping_settings(
    options: &LocalOptions,
    resources: &Resources,
    sdk: &aws_config::SdkConfig,
    placements: &[generate::Placement],
) -> MappingSettings {
    let mut first_sequence_numbers: BTreeMap<String, String> = BTreeMap::new();
    for p in placements {
        first_sequence_numbers
            .entry(p.shard_id.clone())
            .and_modify(|first| {
                if reactor_monitor::domain::SequenceNumber::new(p.sequence_number.as_str())
                    < reactor_monitor::domain::SequenceNumber::new(first.as_str())
                {
                    *first = p.sequence_number.clone();
                }
            })
            .or_insert_with(|| p.sequence_number.clone());
    }
    MappingSettings {
        batch_size: options.batch_size,
        batching_window: options.batching_window,
        maximum_retry_attempts: options.maximum_retry_attempts,
        maximum_record_age: None,
        bisect_batch_on_function_error: true,
        region: sdk
            .region()
            .map(|r| r.to_string())
            .unwrap_or_else(|| LOCAL_REGION.into()),
        stream_arn: resources.stream_arn.clone(),
        on_failure_bucket: Some(resources.names.on_failure_bucket.clone()),
        function_timeout: options.function_timeout,
        starting_position: StartingPosition::AtSequenceNumbers(first_sequence_numbers),
    }
}

#[allow(clippy::too_many_arguments)]
fn report(
    endpoint: &str,
    produced: usize,
    kinesis_records: usize,
    summary: &RunSummary,
    progress: &MappingProgress,
    verified: Verified,
    on_call: OnCallReadBack,
    put_calls: usize,
    produce_seconds: f64,
    process_seconds: f64,
) -> LocalReport {
    let alerted = Alerted {
        warning: summary.count(|f| f == Fate::Alerted(Severity::Warning)),
        emergency: summary.count(|f| f == Fate::Alerted(Severity::Emergency)),
    };
    let mut aws_requests: HashMap<String, usize> = summary
        .requests
        .iter()
        .map(|(op, n)| (op.to_string(), *n))
        .collect();
    aws_requests.insert("PutRecords".into(), put_calls);
    aws_requests.insert(
        "GetRecords".into(),
        progress.get_records_calls.load(Ordering::Relaxed),
    );
    let total_requests: usize = aws_requests.values().sum();
    let lost = produced as i64 - verified.items as i64 - verified.dead_letters as i64;
    let missing_alerts =
        (alerted.warning + alerted.emergency) as i64 - verified.alerts_delivered as i64;
    let mut latencies: Vec<f64> = summary
        .invocation_latencies
        .iter()
        .map(|d| d.as_secs_f64() * 1e3)
        .collect();
    latencies.sort_by(f64::total_cmp);
    let mut report = LocalReport {
        endpoint: endpoint.to_string(),
        produced,
        kinesis_records,
        stored: summary.count(|f| matches!(f, Fate::Stored | Fate::Alerted(_))),
        alerted,
        dead_lettered: summary.count(|f| f == Fate::DeadLettered),
        retried: progress.redelivered.load(Ordering::Relaxed),
        exhausted: progress.exhausted_records.load(Ordering::Relaxed),
        verified,
        lost,
        missing_alerts,
        on_call,
        flows: summary.flows(),
        flow_report: FlowReport::default(),
        trace_flows: Vec::new(),
        metrics: Default::default(),
        spans_received: 0,
        invocations: progress.invocations.load(Ordering::Relaxed),
        aws_requests,
        aws_requests_per_1000_readings: if produced == 0 {
            0.0
        } else {
            total_requests as f64 * 1000.0 / produced as f64
        },
        produce_seconds,
        process_seconds,
        readings_per_second: if process_seconds > 0.0 {
            produced as f64 / process_seconds
        } else {
            0.0
        },
        invocation_p50_ms: crate::summary::percentile(&latencies, 0.5),
        invocation_p99_ms: crate::summary::percentile(&latencies, 0.99),
        verdict: String::new(),
        collector_notes: Vec::new(),
        spans: Vec::new(),
    };
    report.verdict = if report.ok() {
        format!(
            "OK: {} produced = {} stored + {} dead-lettered; {} alerts delivered; {} on-call \
             pages delivered; nothing lost",
            report.produced,
            report.verified.items,
            report.verified.dead_letters,
            report.verified.alerts_delivered,
            report.on_call.delivered_total()
        )
    } else {
        format!(
            "FAILED: lost {} of {} readings, {} alerts missing, {} duplicate alerts, {} on-call \
             pages missing, {} duplicate on-call pages",
            report.lost,
            report.produced,
            report.missing_alerts,
            report.verified.duplicate_alerts,
            report.on_call.missing.len(),
            report.on_call.duplicates.len()
        )
    };
    report
}
