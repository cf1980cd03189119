//! OpenTelemetry traces: one subtree per record under the invocation span.
//!
//! Record subtrees are built after the batch from its report, with the real start and end
//! of every call: a record's span lasts as long as the calls that carried it, although
//! they were batched. Volume follows a plan that fits X-Ray's limits (a trace document of
//! ~500 KB, 64 KB per segment, billing per trace): every `store+alert`, `parse-error` and
//! failed record is traced; `store-only` records follow `STORE_ONLY_TRACE_RATIO`, decided
//! by the sequence number so that a replay samples the same records; the first
//! `MAX_RECORD_SPANS_PER_TRACE` traced records hang under the invocation; the others are
//! grouped, at most `MAX_RECORD_SPANS_PER_TRACE` a group, under overflow roots
//! ([`OVERFLOW_SPAN`]), one trace per group, each linked to the invocation: n traced records
//! cost ⌈n / MAX_RECORD_SPANS_PER_TRACE⌉ traces (the first is the invocation's). Counts stay
//! exact in the EMF metrics.

use std::sync::Arc;
use std::time::SystemTime;

use opentelemetry::trace::{
    Link, Span, SpanContext, SpanId, SpanKind, Status, TraceContextExt, TraceFlags, TraceId,
    TraceState, Tracer,
};
use opentelemetry::{Array, Context, KeyValue, StringValue, Value};
use opentelemetry_sdk::trace::{
    BatchConfigBuilder, BatchSpanProcessor, SdkTracer, SdkTracerProvider,
};
use opentelemetry_semantic_conventions::attribute as semconv;
use tokio::time::Instant;

use super::names::{SERVICE_NAME, spans};
use crate::config::ConfigError;
use crate::domain::FlowType;
use crate::pipeline::{BatchReport, CallTiming, Outcome, RecordReport};

/// Environment variables of the trace plan.
pub mod env {
    pub const STORE_ONLY_TRACE_RATIO: &str = "STORE_ONLY_TRACE_RATIO";
    pub const MAX_RECORD_SPANS_PER_TRACE: &str = "MAX_RECORD_SPANS_PER_TRACE";
}

/// Record subtrees per invocation trace. A subtree is 2–5 spans of a few hundred bytes;
/// 150 keeps an invocation trace well under X-Ray's ~500 KB trace document.
pub const DEFAULT_MAX_RECORD_SPANS_PER_TRACE: usize = 150;

/// The root of an overflow trace: the traced records of an invocation past the first
/// `MAX_RECORD_SPANS_PER_TRACE` are grouped, at most that many per group, under one of these,
/// linked to the invocation; X-Ray bills per trace, so a group costs one trace.
pub const OVERFLOW_SPAN: &str = "process readings (overflow)";
/// Attribute of an overflow root: its group's position (1 for the first overflow trace).
pub const OVERFLOW_GROUP: &str = "reactor_monitor.overflow.group";
/// Attribute of an overflow root: how many record subtrees hang under it.
pub const OVERFLOW_RECORDS: &str = "reactor_monitor.overflow.records";

/// Spans queued for export. The queue is allocated up front (a few hundred bytes a slot), so
/// it is kept small and a large batch is emitted in slices with a flush between them.
const MAX_QUEUED_SPANS: usize = 8_192;

/// Traced records emitted between two flushes: at most 6 spans each, within the queue.
pub const FLUSH_EVERY_TRACED_RECORDS: usize = 1_000;

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TracePlan {
    /// Share of `store-only` records traced, 0.0–1.0.
    pub store_only_ratio: f64,
    pub max_records_per_trace: usize,
}

impl Default for TracePlan {
    fn default() -> Self {
        Self {
            store_only_ratio: 1.0,
            max_records_per_trace: DEFAULT_MAX_RECORD_SPANS_PER_TRACE,
        }
    }
}

impl TracePlan {
    /// Reads the plan through `lookup` (the environment at cold start); a malformed value is
    /// an error at start, naming the variable.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let mut plan = Self::default();
        if let Some(value) = lookup(env::STORE_ONLY_TRACE_RATIO) {
            plan.store_only_ratio = value
                .trim()
                .parse::<f64>()
                .ok()
                .filter(|r| (0.0..=1.0).contains(r))
                .ok_or(ConfigError::Invalid {
                    name: env::STORE_ONLY_TRACE_RATIO,
                    value,
                    expected: "a ratio from 0 to 1",
                })?;
        }
        if let Some(value) = lookup(env::MAX_RECORD_SPANS_PER_TRACE) {
            plan.max_records_per_trace = value
                .trim()
                .parse::<usize>()
                .ok()
                .filter(|n| *n >= 1)
                .ok_or(ConfigError::Invalid {
                    name: env::MAX_RECORD_SPANS_PER_TRACE,
                    value,
                    expected: "a positive whole number",
                })?;
        }
        Ok(plan)
    }

    /// Whether a record is traced at all.
    pub fn traces(&self, record: &RecordReport) -> bool {
        if record.flow != FlowType::StoreOnly || record.is_failure() {
            return true;
        }
        if self.store_only_ratio >= 1.0 {
            return true;
        }
        // FNV-1a of the sequence number: stable across replays and processes.
        let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
        for byte in record.origin.sequence_number.as_str().bytes() {
            hash = (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3);
        }
        (hash as f64 / u64::MAX as f64) < self.store_only_ratio
    }
}

/// Where the handler's calls go, for the AWS SDK attributes of their spans.
#[derive(Debug, Clone, Default)]
pub struct CallTargets {
    pub region: String,
    pub stream_name: String,
    pub table_name: String,
    pub topic_arn: String,
    pub bucket: String,
}

/// The attributes of a batch's targets, built once per batch: their values are reference
/// counted, so the thousands of spans of a batch share them instead of copying the strings.
struct Targets {
    destination: KeyValue,
    region: KeyValue,
    table: KeyValue,
    topic: KeyValue,
    bucket: KeyValue,
}

impl Targets {
    fn new(targets: &CallTargets) -> Self {
        let shared = |s: &str| StringValue::from(Arc::<str>::from(s));
        Self {
            destination: KeyValue::new(
                semconv::MESSAGING_DESTINATION_NAME,
                shared(&targets.stream_name),
            ),
            region: KeyValue::new(semconv::CLOUD_REGION, shared(&targets.region)),
            table: KeyValue::new(
                semconv::AWS_DYNAMODB_TABLE_NAMES,
                Value::Array(Array::String(vec![shared(&targets.table_name)])),
            ),
            topic: KeyValue::new(semconv::AWS_SNS_TOPIC_ARN, shared(&targets.topic_arn)),
            bucket: KeyValue::new(semconv::AWS_S3_BUCKET, shared(&targets.bucket)),
        }
    }
}

/// A tracer provider exporting OTLP/HTTP (protobuf) to `OTEL_EXPORTER_OTLP_ENDPOINT`
/// (default localhost:4318), with X-Ray trace ids. Standard `OTEL_*` variables apply.
///
/// # Errors
/// [`opentelemetry_otlp::ExporterBuildError`] when the exporter cannot be built (an
/// unusable endpoint or HTTP client).
pub fn otlp_provider(
    endpoint: Option<&str>,
) -> Result<SdkTracerProvider, opentelemetry_otlp::ExporterBuildError> {
    let mut exporter = opentelemetry_otlp::SpanExporter::builder().with_http();
    if let Some(endpoint) = endpoint {
        use opentelemetry_otlp::WithExportConfig;
        exporter = exporter.with_endpoint(format!("{}/v1/traces", endpoint.trim_end_matches('/')));
    }
    let exporter = exporter.build()?;
    let processor = BatchSpanProcessor::builder(exporter)
        .with_batch_config(
            BatchConfigBuilder::default()
                .with_max_queue_size(MAX_QUEUED_SPANS)
                .with_max_export_batch_size(2_048)
                .build(),
        )
        .build();
    let resource = opentelemetry_sdk::Resource::builder()
        .with_service_name(SERVICE_NAME)
        .build();
    Ok(SdkTracerProvider::builder()
        .with_span_processor(processor)
        .with_id_generator(opentelemetry_aws::trace::XrayIdGenerator::default())
        .with_resource(resource)
        .build())
}

/// The tracer of record spans.
pub fn tracer(provider: &SdkTracerProvider) -> SdkTracer {
    use opentelemetry::trace::TracerProvider;
    provider.tracer(SERVICE_NAME)
}

/// The span context of an X-Ray trace header (`Root=…;Parent=…;Sampled=…`).
pub fn xray_parent(header: &str) -> Option<Context> {
    let sc = opentelemetry_aws::trace::xray_propagator::span_context_from_str(header)?;
    Some(Context::new().with_remote_span_context(sc))
}

/// The span context of a W3C `traceparent` (`00-<trace id>-<span id>-<flags>`).
pub fn traceparent_context(value: &str) -> Option<SpanContext> {
    let mut parts = value.trim().split('-');
    let (version, trace, span, flags) =
        (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
    if version != "00"
        || trace.len() != 32
        || span.len() != 16
        || flags.len() != 2
        || parts.next().is_some()
    {
        return None;
    }
    let trace_id = TraceId::from_hex(trace)
        .ok()
        .filter(|t| *t != TraceId::INVALID)?;
    let span_id = SpanId::from_hex(span)
        .ok()
        .filter(|s| *s != SpanId::INVALID)?;
    let flags = u8::from_str_radix(flags, 16).ok()?;
    Some(SpanContext::new(
        trace_id,
        span_id,
        TraceFlags::new(flags),
        true,
        TraceState::default(),
    ))
}

/// Converts monotonic instants to wall-clock times, anchored at one moment.
struct Clock {
    instant: Instant,
    system: SystemTime,
}

impl Clock {
    fn now() -> Self {
        Self {
            instant: Instant::now(),
            system: SystemTime::now(),
        }
    }

    fn at(&self, t: Instant) -> SystemTime {
        self.system - self.instant.saturating_duration_since(t)
    }
}

/// Emits the record subtrees of a batch under `invocation` (the invocation span's context).
/// Returns how many records were traced.
pub fn emit_batch(
    tracer: &SdkTracer,
    invocation: &Context,
    report: &BatchReport,
    plan: &TracePlan,
    targets: &CallTargets,
) -> usize {
    emit_batch_flushing(tracer, invocation, report, plan, targets, &|| {})
}

/// As [`emit_batch`], calling `flush` after every [`FLUSH_EVERY_TRACED_RECORDS`] traced
/// records so that the export queue never overflows and no span is dropped.
pub fn emit_batch_flushing(
    tracer: &SdkTracer,
    invocation: &Context,
    report: &BatchReport,
    plan: &TracePlan,
    targets: &CallTargets,
    flush: &dyn Fn(),
) -> usize {
    let clock = Clock::now();
    let targets = Targets::new(targets);
    let invocation_link = invocation.span().span_context().clone();
    let traced: Vec<&RecordReport> = report.records.iter().filter(|r| plan.traces(r)).collect();
    let per_trace = plan.max_records_per_trace.max(1);
    let mut emitted = 0;
    for (group, records) in traced.chunks(per_trace).enumerate() {
        // The first group hangs under the invocation; each later one under an overflow root
        // of its own, which spans its records and links to the invocation.
        let mut overflow = (group > 0).then(|| {
            let start = records
                .iter()
                .map(|r| record_window(r, &clock).0)
                .min()
                .unwrap_or(clock.system);
            let links = if invocation_link.is_valid() {
                vec![Link::with_context(invocation_link.clone())]
            } else {
                Vec::new()
            };
            tracer
                .span_builder(OVERFLOW_SPAN)
                .with_kind(SpanKind::Internal)
                .with_start_time(start)
                .with_attributes([
                    KeyValue::new(OVERFLOW_GROUP, group as i64),
                    KeyValue::new(OVERFLOW_RECORDS, records.len() as i64),
                ])
                .with_links(links)
                .start_with_context(tracer, &Context::new())
        });
        let parent = match &overflow {
            Some(root) => Context::new().with_remote_span_context(root.span_context().clone()),
            None => invocation.clone(),
        };
        let mut end = None;
        for record in records {
            emit_record(tracer, &parent, Vec::new(), record, &targets, &clock);
            end = end.max(Some(record_window(record, &clock).1));
            emitted += 1;
            if emitted % FLUSH_EVERY_TRACED_RECORDS == 0 {
                flush();
            }
        }
        if let Some(root) = overflow.as_mut() {
            root.end_with_timestamp(end.unwrap_or(clock.system));
        }
    }
    emitted
}

/// When a record's span starts and ends: from its decoding to the end of its last call.
fn record_window(record: &RecordReport, clock: &Clock) -> (SystemTime, SystemTime) {
    let calls_start = record.calls.iter().map(|c| c.started).min();
    let calls_end = record.calls.iter().map(|c| c.finished).max();
    let start = calls_start
        .map(|t| clock.at(t) - record.decoded_in)
        .unwrap_or_else(|| clock.system - record.decoded_in);
    let end = calls_end
        .map(|t| clock.at(t))
        .unwrap_or(start + record.decoded_in);
    (start, end.max(start))
}

fn record_attributes(
    record: &RecordReport,
    reactor: Option<&StringValue>,
    targets: &Targets,
) -> Vec<KeyValue> {
    let mut attrs = Vec::with_capacity(14);
    attrs.extend([
        KeyValue::new(spans::FLOW_TYPE, record.flow.as_str()),
        KeyValue::new(semconv::MESSAGING_SYSTEM, "aws_kinesis"),
        KeyValue::new(semconv::MESSAGING_OPERATION_TYPE, "process"),
        targets.destination.clone(),
        KeyValue::new(
            semconv::MESSAGING_DESTINATION_PARTITION_ID,
            record.origin.shard_id.clone(),
        ),
        KeyValue::new(
            semconv::MESSAGING_MESSAGE_ID,
            record.origin.sequence_number.to_string(),
        ),
        KeyValue::new(
            semconv::MESSAGING_MESSAGE_BODY_SIZE,
            record.payload_len as i64,
        ),
    ]);
    if let Some(index) = record.origin.sequence_number.subsequence() {
        attrs.push(KeyValue::new(spans::SUBSEQUENCE_NUMBER, index as i64));
    }
    let mut indexed: Vec<StringValue> = Vec::with_capacity(3);
    indexed.push(spans::FLOW_TYPE.into());
    if let (Some(reading), Some(reactor)) = (&record.reading, reactor) {
        attrs.push(KeyValue::new(spans::REACTOR, reactor.clone()));
        attrs.push(KeyValue::new(spans::TEMPERATURE_C, reading.temp_c));
        indexed.push(spans::REACTOR.into());
    }
    if let Some(severity) = record.severity {
        attrs.push(KeyValue::new(spans::SEVERITY, severity.as_str()));
        indexed.push(spans::SEVERITY.into());
    }
    if let Some(reason) = record.reject_reason {
        attrs.push(KeyValue::new(spans::REJECT_REASON, reason.code()));
        indexed.push(spans::REJECT_REASON.into());
    }
    attrs.push(KeyValue::new(spans::OUTCOME, outcome_name(&record.outcome)));
    if let Some(action) = record.episode {
        attrs.push(KeyValue::new(spans::EPISODE_ACTION, action.as_str()));
    }
    attrs.push(KeyValue::new(
        spans::XRAY_ANNOTATIONS,
        Value::Array(Array::String(indexed)),
    ));
    attrs
}

pub fn outcome_name(outcome: &Outcome) -> &'static str {
    match outcome {
        Outcome::Stored => "stored",
        Outcome::StoredAndAlerted {
            published_now: true,
            ..
        } => "stored_and_alerted",
        Outcome::StoredAndAlerted {
            published_now: false,
            ..
        } => "stored_alert_already_sent",
        Outcome::DeadLettered(_) => "dead_lettered",
        Outcome::Failed(_) => "failed",
    }
}

/// The attributes every span of a record carries (flow and what it is about), with `extra`
/// room for the span's own.
fn shared_attributes(
    record: &RecordReport,
    reactor: Option<&StringValue>,
    extra: usize,
) -> Vec<KeyValue> {
    let mut attrs = Vec::with_capacity(4 + extra);
    attrs.push(KeyValue::new(spans::FLOW_TYPE, record.flow.as_str()));
    if let Some(reactor) = reactor {
        attrs.push(KeyValue::new(spans::REACTOR, reactor.clone()));
    }
    if let Some(severity) = record.severity {
        attrs.push(KeyValue::new(spans::SEVERITY, severity.as_str()));
    }
    if let Some(reason) = record.reject_reason {
        attrs.push(KeyValue::new(spans::REJECT_REASON, reason.code()));
    }
    attrs
}

fn emit_record(
    tracer: &SdkTracer,
    parent: &Context,
    mut links: Vec<Link>,
    record: &RecordReport,
    targets: &Targets,
    clock: &Clock,
) {
    // One copy of the reactor id for all the record's spans.
    let reactor = record
        .reading
        .as_ref()
        .map(|r| StringValue::from(Arc::<str>::from(r.reactor.as_str())));
    let reactor = reactor.as_ref();
    if let Some(producer) = record
        .reading
        .as_ref()
        .and_then(|r| r.traceparent.as_deref())
        .and_then(traceparent_context)
    {
        links.push(Link::with_context(producer));
    }
    let (start, end) = record_window(record, clock);

    let mut span = tracer
        .span_builder(spans::RECORD)
        .with_kind(SpanKind::Consumer)
        .with_start_time(start)
        .with_attributes(record_attributes(record, reactor, targets))
        .with_links(links)
        .start_with_context(tracer, parent);
    if let Outcome::Failed(error) = &record.outcome {
        span.set_status(Status::error(error.to_string()));
        span.add_event(
            "exception",
            vec![
                KeyValue::new(semconv::EXCEPTION_TYPE, format!("{:?}", error.kind)),
                KeyValue::new(semconv::EXCEPTION_MESSAGE, error.to_string()),
            ],
        );
    }
    let cx = parent.with_remote_span_context(span.span_context().clone());
    let mut decode = tracer
        .span_builder(spans::DECODE)
        .with_kind(SpanKind::Internal)
        .with_start_time(start)
        .with_attributes(shared_attributes(record, reactor, 0))
        .start_with_context(tracer, &cx);
    decode.end_with_timestamp(start + record.decoded_in);

    for call in &record.calls {
        emit_call(tracer, &cx, call, record, reactor, targets, clock);
    }
    span.end_with_timestamp(end);
}

fn emit_call(
    tracer: &SdkTracer,
    parent: &Context,
    call: &CallTiming,
    record: &RecordReport,
    reactor: Option<&StringValue>,
    targets: &Targets,
    clock: &Clock,
) {
    let (name, service, resource): (&'static str, &'static str, Option<&KeyValue>) =
        match call.operation {
            "BatchWriteItem" => ("DynamoDB.BatchWriteItem", "DynamoDB", Some(&targets.table)),
            "BatchGetItem" => ("DynamoDB.BatchGetItem", "DynamoDB", Some(&targets.table)),
            "PutItem" => ("DynamoDB.PutItem", "DynamoDB", Some(&targets.table)),
            "PublishBatch" => ("SNS.PublishBatch", "SNS", Some(&targets.topic)),
            crate::adapters::on_call::OPERATION => ("SNS.PublishBatch", "SNS", None),
            "TransactWriteItems" => ("DynamoDB.TransactWriteItems", "DynamoDB", None),
            "Publish" => ("SNS.Publish", "SNS", Some(&targets.topic)),
            "PutObject" => ("S3.PutObject", "S3", Some(&targets.bucket)),
            other => (other, "AWS", None),
        };
    let mut attrs = shared_attributes(record, reactor, 7);
    // The ADOT collector's awsxray exporter turns spans with rpc.system = aws-api and
    // rpc.service / rpc.method into AWS subsegments; the renamed keys are not read yet.
    #[allow(deprecated)]
    attrs.extend([
        KeyValue::new(semconv::RPC_SYSTEM, "aws-api"),
        KeyValue::new(semconv::RPC_SERVICE, service),
        KeyValue::new(semconv::RPC_METHOD, name.rsplit('.').next().unwrap_or(name)),
        targets.region.clone(),
    ]);
    attrs.extend(resource.cloned());
    if let Some(id) = &call.request_id {
        attrs.push(KeyValue::new(semconv::AWS_REQUEST_ID, id.clone()));
    }
    let mut span = tracer
        .span_builder(name)
        .with_kind(SpanKind::Client)
        .with_start_time(clock.at(call.started))
        .with_attributes(attrs)
        .start_with_context(tracer, parent);
    if let Some(kind) = call.error {
        span.set_status(Status::error(format!("{:?}", kind)));
        span.set_attribute(KeyValue::new(semconv::ERROR_TYPE, format!("{:?}", kind)));
    }
    span.end_with_timestamp(clock.at(call.finished).max(clock.at(call.started)));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_w3c_traceparent_becomes_a_remote_span_context() {
        let sc =
            traceparent_context("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01").unwrap();
        assert_eq!(
            sc.trace_id().to_string(),
            "0af7651916cd43dd8448eb211c80319c"
        );
        assert!(sc.is_sampled() && sc.is_remote());
        assert!(
            traceparent_context("00-00000000000000000000000000000000-b7ad6b7169203331-01")
                .is_none()
        );
        assert!(traceparent_context("garbage").is_none());
    }

    #[test]
    fn an_xray_header_becomes_the_parent() {
        let cx = xray_parent(
            "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1",
        )
        .unwrap();
        assert_eq!(
            cx.span().span_context().trace_id().to_string(),
            "5759e988bd862e3fe1be46a994272793"
        );
    }

    #[test]
    fn the_plan_rejects_a_ratio_outside_zero_to_one() {
        let err = TracePlan::from_lookup(|k| {
            (k == env::STORE_ONLY_TRACE_RATIO).then(|| "1.5".to_string())
        })
        .unwrap_err()
        .to_string();
        assert!(err.contains("STORE_ONLY_TRACE_RATIO"), "{err}");
    }

    /// Traces, record spans and overflow roots of one invocation of `n` records, all traced.
    fn emitted(n: usize, plan: TracePlan) -> Vec<opentelemetry_sdk::trace::SpanData> {
        use crate::domain::SequenceNumber;
        use crate::ports::Origin;
        use opentelemetry_sdk::trace::InMemorySpanExporter;

        let exporter = InMemorySpanExporter::default();
        let provider = SdkTracerProvider::builder()
            .with_simple_exporter(exporter.clone())
            .build();
        let tracer = tracer(&provider);
        let report = BatchReport {
            records: (0..n)
                .map(|i| RecordReport {
                    origin: Origin {
                        shard_id: "shardId-000000000000".into(),
                        sequence_number: SequenceNumber::new(i.to_string()),
                        partition_key: "k".into(),
                        arrival: chrono::DateTime::UNIX_EPOCH,
                    },
                    flow: FlowType::StoreOnly,
                    reading: None,
                    severity: None,
                    reject_reason: None,
                    payload_len: 0,
                    decoded_in: std::time::Duration::from_micros(3),
                    calls: Vec::new(),
                    outcome: Outcome::Stored,
                    episode: None,
                })
                .collect(),
            requests: Vec::new(),
        };
        let mut invocation = tracer.start("invocation");
        let cx = Context::new().with_remote_span_context(invocation.span_context().clone());
        let traced = emit_batch(&tracer, &cx, &report, &plan, &CallTargets::default());
        invocation.end();
        assert_eq!(traced, n);
        provider.force_flush().unwrap();
        exporter.get_finished_spans().unwrap()
    }

    #[test]
    fn overflow_records_are_grouped_into_traces_of_at_most_the_budget() {
        for (n, per_trace, traces) in [
            (2_000, 150, 14),
            (10_000, 150, 67),
            (150, 150, 1),
            (151, 150, 2),
            (7, 3, 3),
        ] {
            let plan = TracePlan {
                store_only_ratio: 1.0,
                max_records_per_trace: per_trace,
            };
            let spans = emitted(n, plan);
            let invocation = spans.iter().find(|s| s.name == "invocation").unwrap();
            let invocation_trace = invocation.span_context.trace_id();
            let trace_ids: std::collections::HashSet<TraceId> =
                spans.iter().map(|s| s.span_context.trace_id()).collect();
            assert_eq!(
                trace_ids.len(),
                traces,
                "{n} records, {per_trace} per trace"
            );
            assert_eq!(traces, n.div_ceil(per_trace));

            let records: Vec<_> = spans.iter().filter(|s| s.name == spans::RECORD).collect();
            assert_eq!(records.len(), n);
            for trace in &trace_ids {
                let in_trace = records
                    .iter()
                    .filter(|s| s.span_context.trace_id() == *trace)
                    .count();
                assert!(
                    in_trace <= per_trace,
                    "{in_trace} record subtrees in one trace"
                );
            }
            let roots: Vec<_> = spans.iter().filter(|s| s.name == OVERFLOW_SPAN).collect();
            assert_eq!(roots.len(), traces - 1);
            for root in &roots {
                assert_ne!(root.span_context.trace_id(), invocation_trace);
                assert_eq!(root.parent_span_id, SpanId::INVALID);
                let linked: Vec<_> = root.links.iter().map(|l| l.span_context.clone()).collect();
                assert_eq!(linked, std::slice::from_ref(&invocation.span_context));
                let children: Vec<_> = records
                    .iter()
                    .filter(|s| s.parent_span_id == root.span_context.span_id())
                    .collect();
                assert!(!children.is_empty() && children.len() <= per_trace);
                assert!(
                    children
                        .iter()
                        .all(|c| c.start_time >= root.start_time && c.end_time <= root.end_time)
                );
            }
            let under_invocation = records
                .iter()
                .filter(|s| s.parent_span_id == invocation.span_context.span_id())
                .count();
            assert_eq!(under_invocation, n.min(per_trace));
        }
    }
}
