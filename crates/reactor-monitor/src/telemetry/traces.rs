//! Emission of the traces: one subtree per record under the invocation span (the plan and
//! the provider are configured in `trace_plan`).
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
//! cost ⌈n / MAX_RECORD_SPANS_PER_TRACE⌉ traces (the first is the invocation's). Records whose
//! alert went out come first, in the order they were published: the trace and the id of their
//! publish span were decided then (`propagation::AlertContexts`), and the alert carries them.
//! Counts stay exact in the EMF metrics.

use crate::domain::episode::EpisodeAction;
use crate::operation::AwsOperation;
use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use opentelemetry::trace::{Link, Span, SpanContext, SpanKind, Status, TraceContextExt, Tracer};
use opentelemetry::{Array, Context, KeyValue, StringValue, Value};
use opentelemetry_sdk::trace::SdkTracer;
use opentelemetry_semantic_conventions::attribute as semconv;
use tokio::time::Instant;

use super::names::spans;
use super::propagation::{AlertContexts, Publication, PublishSpan};
pub use super::propagation::{traceparent_context, xray_parent};
use super::trace_plan::start_with_ids;
pub use super::trace_plan::{
    CallTargets, DEFAULT_MAX_RECORD_SPANS_PER_TRACE, TracePlan, env, otlp_provider,
    provider_builder, tracer,
};
use crate::pipeline::{BatchReport, CallTiming, Outcome, RecordReport};

/// The root of an overflow trace: the traced records of an invocation past the first
/// `MAX_RECORD_SPANS_PER_TRACE` are grouped, at most that many per group, under one of these,
/// linked to the invocation; X-Ray bills per trace, so a group costs one trace.
pub const OVERFLOW_SPAN: &str = "process readings (overflow)";
/// Attribute of an overflow root: its group's position (1 for the first overflow trace).
pub const OVERFLOW_GROUP: &str = "reactor_monitor.overflow.group";
/// Attribute of an overflow root: how many record subtrees hang under it.
pub const OVERFLOW_RECORDS: &str = "reactor_monitor.overflow.records";

/// Traced records emitted between two flushes: at most 6 spans each, within the queue.
pub const FLUSH_EVERY_TRACED_RECORDS: usize = 1_000;

/// The attributes of a batch's targets and the names of its messaging spans, built once per
/// batch: their values are reference counted, so the thousands of spans of a batch share them
/// instead of copying the strings.
struct Targets {
    destination: KeyValue,
    region: KeyValue,
    table: KeyValue,
    episode_table: KeyValue,
    topic: KeyValue,
    topic_name: KeyValue,
    on_call_topic: KeyValue,
    on_call_topic_name: KeyValue,
    bucket: KeyValue,
    record_span: &'static str,
    publish_span: &'static str,
    notice_span: &'static str,
}

impl Targets {
    fn new(targets: &CallTargets) -> Self {
        let shared = |s: &str| StringValue::from(Arc::<str>::from(s));
        // arn:partition:sns:region:account-id:topic-name
        let topic_name = targets.topic_arn.rsplit(':').next().unwrap_or_default();
        let on_call_topic_name = targets
            .on_call_topic_arn
            .rsplit(':')
            .next()
            .unwrap_or_default();
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
            episode_table: KeyValue::new(
                semconv::AWS_DYNAMODB_TABLE_NAMES,
                Value::Array(Array::String(vec![shared(&targets.episode_table_name)])),
            ),
            topic: KeyValue::new(semconv::AWS_SNS_TOPIC_ARN, shared(&targets.topic_arn)),
            topic_name: KeyValue::new(semconv::MESSAGING_DESTINATION_NAME, shared(topic_name)),
            on_call_topic: KeyValue::new(
                semconv::AWS_SNS_TOPIC_ARN,
                shared(&targets.on_call_topic_arn),
            ),
            on_call_topic_name: KeyValue::new(
                semconv::MESSAGING_DESTINATION_NAME,
                shared(on_call_topic_name),
            ),
            bucket: KeyValue::new(semconv::AWS_S3_BUCKET, shared(&targets.bucket)),
            record_span: interned(spans::messaging_span_name(
                spans::PROCESS,
                &targets.stream_name,
            )),
            publish_span: interned(spans::messaging_span_name(spans::PUBLISH, topic_name)),
            notice_span: interned(spans::messaging_span_name(
                spans::PUBLISH,
                on_call_topic_name,
            )),
        }
    }
}

/// The one copy of a span name made of configuration (a stream's, a topic's: a few per
/// process), so that the spans of every batch name themselves without an allocation each.
fn interned(name: String) -> &'static str {
    static NAMES: Mutex<BTreeSet<&'static str>> = Mutex::new(BTreeSet::new());
    let mut names = NAMES
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    match names.get(name.as_str()) {
        Some(known) => known,
        None => {
            let name: &'static str = Box::leak(name.into_boxed_str());
            names.insert(name);
            name
        }
    }
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
    let alerts = AlertContexts::new(
        invocation.span().span_context().clone(),
        plan.max_records_per_trace,
    );
    emit_invocation(tracer, invocation, report, plan, targets, &alerts, flush)
}

/// As [`emit_batch_flushing`], for an invocation whose alerts went out with the contexts
/// decided in `alerts`: each alerting record is emitted where its context says (alerting
/// records first), and its publish span takes the decided id.
pub fn emit_invocation(
    tracer: &SdkTracer,
    invocation: &Context,
    report: &BatchReport,
    plan: &TracePlan,
    targets: &CallTargets,
    alerts: &AlertContexts,
    flush: &dyn Fn(),
) -> usize {
    let emission = Emission {
        tracer,
        targets: Targets::new(targets),
        clock: Clock::now(),
        alerts,
    };
    let invocation_link = invocation.span().span_context().clone();
    let traced = traced_in_order(report, plan, alerts);
    let per_trace = plan.max_records_per_trace.max(1);
    let mut emitted = 0;
    for (group, records) in traced.chunks(per_trace).enumerate() {
        // The first group hangs under the invocation; each later one under an overflow root
        // of its own, which spans its records and links to the invocation.
        let mut overflow =
            (group > 0).then(|| emission.overflow_root(group, records, &invocation_link));
        let parent = match &overflow {
            Some(root) => Context::new().with_remote_span_context(root.span_context().clone()),
            None => invocation.clone(),
        };
        let mut end = None;
        for record in records {
            emission.record(&parent, record);
            end = end.max(Some(record_window(record, &emission.clock).1));
            emitted += 1;
            if emitted % FLUSH_EVERY_TRACED_RECORDS == 0 {
                flush();
            }
        }
        if let Some(root) = overflow.as_mut() {
            root.end_with_timestamp(end.unwrap_or(emission.clock.system));
        }
    }
    emitted
}

/// The traced records in the order they fill the traces: the records that published (an
/// alert, or an on-call notice they caused) first, at the place decided when they published,
/// then the others the plan traces.
fn traced_in_order<'r>(
    report: &'r BatchReport,
    plan: &TracePlan,
    alerts: &AlertContexts,
) -> Vec<&'r RecordReport> {
    let mut published: Vec<(usize, &RecordReport)> = Vec::with_capacity(alerts.len());
    let mut others = Vec::new();
    for record in &report.records {
        let decided = (!alerts.is_empty())
            .then(|| alerts.position(&record.origin))
            .flatten();
        match decided {
            Some(position) => published.push((position, record)),
            None if plan.traces(record) => others.push(record),
            None => {}
        }
    }
    published.sort_by_key(|(position, _)| *position);
    published
        .into_iter()
        .map(|(_, record)| record)
        .chain(others)
        .collect()
}

/// What every span of a batch is emitted with.
struct Emission<'a> {
    tracer: &'a SdkTracer,
    targets: Targets,
    clock: Clock,
    alerts: &'a AlertContexts,
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
    let mut attrs = Vec::with_capacity(15);
    attrs.extend([
        KeyValue::new(spans::FLOW_TYPE, record.flow.as_str()),
        KeyValue::new(semconv::MESSAGING_SYSTEM, spans::MESSAGING_SYSTEM_KINESIS),
        KeyValue::new(semconv::MESSAGING_OPERATION_NAME, spans::PROCESS),
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

impl Emission<'_> {
    /// The root of overflow group `group`, in the trace decided for it, spanning `records`
    /// and linked to the invocation.
    fn overflow_root(
        &self,
        group: usize,
        records: &[&RecordReport],
        invocation: &SpanContext,
    ) -> opentelemetry_sdk::trace::Span {
        let start = records
            .iter()
            .map(|r| record_window(r, &self.clock).0)
            .min()
            .unwrap_or(self.clock.system);
        let links = if invocation.is_valid() {
            vec![Link::with_context(invocation.clone())]
        } else {
            Vec::new()
        };
        let builder = self
            .tracer
            .span_builder(OVERFLOW_SPAN)
            .with_kind(SpanKind::Internal)
            .with_start_time(start)
            .with_attributes([
                KeyValue::new(OVERFLOW_GROUP, group as i64),
                KeyValue::new(OVERFLOW_RECORDS, records.len() as i64),
            ])
            .with_links(links);
        let trace_id = self.alerts.overflow_trace_id(group);
        start_with_ids(Some(trace_id), None, || {
            builder.start_with_context(self.tracer, &Context::new())
        })
    }

    /// A record's subtree: its consumer span, `decode`, and a span per call that carried it.
    fn record(&self, parent: &Context, record: &RecordReport) {
        // One copy of the reactor id for all the record's spans.
        let reactor = record
            .reading
            .as_ref()
            .map(|r| StringValue::from(Arc::<str>::from(r.reactor.as_str())));
        let reactor = reactor.as_ref();
        let links: Vec<Link> = record
            .reading
            .as_ref()
            .and_then(|r| r.traceparent.as_deref())
            .and_then(traceparent_context)
            .map(Link::with_context)
            .into_iter()
            .collect();
        let (start, end) = record_window(record, &self.clock);

        let mut span = self
            .tracer
            .span_builder(self.targets.record_span)
            .with_kind(SpanKind::Consumer)
            .with_start_time(start)
            .with_attributes(record_attributes(record, reactor, &self.targets))
            .with_links(links)
            .start_with_context(self.tracer, parent);
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
        let mut decode = self
            .tracer
            .span_builder(spans::DECODE)
            .with_kind(SpanKind::Internal)
            .with_start_time(start)
            .with_attributes(shared_attributes(record, reactor, 0))
            .start_with_context(self.tracer, &cx);
        decode.end_with_timestamp(start + record.decoded_in);

        let decided = |which| {
            (!self.alerts.is_empty())
                .then(|| self.alerts.decided_span(&record.origin, which))
                .flatten()
        };
        let (mut alert, mut notice) = (decided(Publication::Alert), decided(Publication::Notice));
        // The on-call publish is a call of every reading of the reactor's run; it is the
        // PRODUCER span of the reading that caused a page, a CLIENT span of the others.
        let paged = notice.is_some()
            || record
                .episode
                .is_some_and(|action| action != EpisodeAction::Suppressed);
        for call in &record.calls {
            let (decided, produces) = if call.operation.publishes_alerts() {
                (alert.take(), true)
            } else if call.operation.publishes_notices() {
                (notice.take(), paged)
            } else {
                (None, false)
            };
            self.call(&cx, call, record, reactor, decided, produces);
        }
        span.end_with_timestamp(end);
    }

    /// The span of one AWS call: a PRODUCER span when the record `produces` the publication
    /// (with the id decided when it went out, if any; a page also names its
    /// `episode_action`), a CLIENT span otherwise.
    fn call(
        &self,
        parent: &Context,
        call: &CallTiming,
        record: &RecordReport,
        reactor: Option<&StringValue>,
        publish: Option<PublishSpan>,
        produces: bool,
    ) {
        let mut attrs = shared_attributes(record, reactor, 10);
        attrs.extend(self.aws_sdk_attributes(call));
        let (name, kind) = if produces && call.operation.publishes_alerts() {
            attrs.extend(self.publish_attributes(&self.targets.topic_name));
            (self.targets.publish_span, SpanKind::Producer)
        } else if produces && call.operation.publishes_notices() {
            attrs.extend(self.publish_attributes(&self.targets.on_call_topic_name));
            if let Some(action) = record.episode {
                attrs.push(KeyValue::new(spans::EPISODE_ACTION, action.as_str()));
            }
            (self.targets.notice_span, SpanKind::Producer)
        } else {
            (call.operation.span_name(), SpanKind::Client)
        };
        let builder = self
            .tracer
            .span_builder(name)
            .with_kind(kind)
            .with_start_time(self.clock.at(call.started))
            .with_attributes(attrs);
        let mut span = start_with_ids(None, publish.map(|p| p.span_id), || {
            builder.start_with_context(self.tracer, parent)
        });
        if let Some(kind) = call.error {
            span.set_status(Status::error(format!("{:?}", kind)));
            span.set_attribute(KeyValue::new(semconv::ERROR_TYPE, format!("{:?}", kind)));
        }
        span.end_with_timestamp(
            self.clock
                .at(call.finished)
                .max(self.clock.at(call.started)),
        );
    }

    /// The AWS SDK attributes of a call (`rpc.*`, region, the resource, the request id), and
    /// the database ones of a DynamoDB call.
    fn aws_sdk_attributes(&self, call: &CallTiming) -> Vec<KeyValue> {
        let targets = &self.targets;
        let operation = call.operation;
        let resource = match operation {
            AwsOperation::DynamoDbBatchWriteItem
            | AwsOperation::DynamoDbBatchGetItem
            | AwsOperation::DynamoDbPutItem => Some(&targets.table),
            // Episode states, in the episode table.
            AwsOperation::DynamoDbTransactWriteItems | AwsOperation::DynamoDbScan => {
                Some(&targets.episode_table)
            }
            AwsOperation::SnsPublishBatch | AwsOperation::SnsPublish => Some(&targets.topic),
            AwsOperation::SnsOnCallPublishBatch => Some(&targets.on_call_topic),
            AwsOperation::S3PutObject => Some(&targets.bucket),
        };
        // The ADOT collector's awsxray exporter turns spans with rpc.system = aws-api and
        // rpc.service / rpc.method into AWS subsegments; the renamed keys are not read yet.
        #[allow(deprecated)]
        let mut attrs = vec![
            KeyValue::new(semconv::RPC_SYSTEM, "aws-api"),
            KeyValue::new(semconv::RPC_SERVICE, operation.service()),
            KeyValue::new(semconv::RPC_METHOD, operation.method()),
            targets.region.clone(),
        ];
        attrs.extend(resource.cloned());
        if operation.service() == "DynamoDB" {
            attrs.push(KeyValue::new(
                semconv::DB_SYSTEM_NAME,
                spans::DB_SYSTEM_DYNAMODB,
            ));
            attrs.push(KeyValue::new(
                semconv::DB_OPERATION_NAME,
                operation.method(),
            ));
        }
        if let Some(id) = &call.request_id {
            attrs.push(KeyValue::new(semconv::AWS_REQUEST_ID, id.clone()));
        }
        attrs
    }

    /// The messaging attributes of a publication to the topic named by `destination`.
    fn publish_attributes(&self, destination: &KeyValue) -> [KeyValue; 4] {
        [
            KeyValue::new(semconv::MESSAGING_SYSTEM, spans::MESSAGING_SYSTEM_SNS),
            KeyValue::new(semconv::MESSAGING_OPERATION_NAME, spans::PUBLISH),
            KeyValue::new(semconv::MESSAGING_OPERATION_TYPE, "send"),
            destination.clone(),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{FlowType, SequenceNumber, Severity};
    use crate::ports::Origin;
    use opentelemetry::trace::{SpanId, TraceId};
    use opentelemetry_sdk::trace::{InMemorySpanExporter, SdkTracerProvider, SpanData};

    fn origin(i: usize) -> Origin {
        Origin {
            shard_id: "shardId-000000000000".into(),
            sequence_number: SequenceNumber::new(i.to_string()),
            partition_key: "k".into(),
            arrival: chrono::DateTime::UNIX_EPOCH,
        }
    }

    /// A stored record; an alerting one (published by a `PublishBatch` call) when `alerting`.
    fn record(i: usize, alerting: bool) -> RecordReport {
        let now = Instant::now();
        RecordReport {
            origin: origin(i),
            flow: if alerting {
                FlowType::StoreAndAlert
            } else {
                FlowType::StoreOnly
            },
            reading: None,
            severity: alerting.then_some(Severity::Warning),
            reject_reason: None,
            payload_len: 0,
            decoded_in: std::time::Duration::from_micros(3),
            calls: if alerting {
                vec![CallTiming {
                    operation: AwsOperation::SnsPublishBatch,
                    started: now,
                    finished: now,
                    error: None,
                    request_id: None,
                }]
            } else {
                Vec::new()
            },
            outcome: if alerting {
                Outcome::StoredAndAlerted {
                    severity: Severity::Warning,
                    published_now: true,
                }
            } else {
                Outcome::Stored
            },
            episode: None,
        }
    }

    fn in_memory() -> (SdkTracerProvider, InMemorySpanExporter) {
        let exporter = InMemorySpanExporter::default();
        let provider = provider_builder()
            .with_simple_exporter(exporter.clone())
            .build();
        (provider, exporter)
    }

    /// Traces, record spans and overflow roots of one invocation of `n` records, all traced.
    fn emitted(n: usize, plan: TracePlan) -> Vec<SpanData> {
        let (provider, exporter) = in_memory();
        let tracer = tracer(&provider);
        let report = BatchReport {
            records: (0..n).map(|i| record(i, false)).collect(),
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
    fn each_alert_goes_out_with_the_context_of_the_publish_span_emitted_for_it() {
        let (provider, exporter) = in_memory();
        let tracer = tracer(&provider);
        let alerting = [1, 4, 5, 6, 8];
        let report = BatchReport {
            records: (0..9).map(|i| record(i, alerting.contains(&i))).collect(),
            requests: Vec::new(),
        };
        let plan = TracePlan {
            store_only_ratio: 1.0,
            max_records_per_trace: 2,
        };
        let mut invocation = tracer.start("invocation");
        let cx = Context::new().with_remote_span_context(invocation.span_context().clone());
        let alerts = AlertContexts::new(invocation.span_context().clone(), 2);
        // Published in the order the concurrent calls happened to run, one of them twice.
        let published: Vec<(usize, SpanContext)> = [6, 1, 8, 6, 5, 4]
            .into_iter()
            .map(|i| (i, alerts.context_of(alerts.publish_span(&origin(i)))))
            .collect();
        let targets = CallTargets {
            stream_name: "indications-stream".into(),
            topic_arn: "arn:aws:sns:us-east-1:123456789012:reactor-notifications".into(),
            ..CallTargets::default()
        };
        emit_invocation(&tracer, &cx, &report, &plan, &targets, &alerts, &|| {});
        invocation.end();
        provider.force_flush().unwrap();
        let spans = exporter.get_finished_spans().unwrap();

        assert_eq!(published[0].1, published[3].1, "a retried publication");
        for (i, context) in &published {
            let publish = spans
                .iter()
                .find(|s| s.span_context.span_id() == context.span_id())
                .unwrap_or_else(|| panic!("no span has the id record {i} published"));
            assert_eq!(publish.span_context.trace_id(), context.trace_id());
            assert_eq!(publish.span_context.trace_flags(), context.trace_flags());
            assert_eq!(publish.span_kind, SpanKind::Producer);
            assert_eq!(publish.name, "publish reactor-notifications");
            let parent = spans
                .iter()
                .find(|s| s.span_context.span_id() == publish.parent_span_id)
                .unwrap();
            assert_eq!(parent.name, "process indications-stream");
            let message_id = parent
                .attributes
                .iter()
                .find(|kv| kv.key.as_str() == semconv::MESSAGING_MESSAGE_ID)
                .map(|kv| kv.value.to_string());
            assert_eq!(message_id, Some(i.to_string()));
        }
        // Alerts first, two a trace: 6 and 1 in the invocation's trace, 8 and 5 in the
        // first overflow trace, 4 in the second, with the first store-only record.
        let invocation_trace = invocation.span_context().trace_id();
        assert_eq!(published[0].1.trace_id(), invocation_trace);
        assert_eq!(published[1].1.trace_id(), invocation_trace);
        assert_eq!(published[2].1.trace_id(), alerts.overflow_trace_id(1));
        assert_eq!(published[5].1.trace_id(), alerts.overflow_trace_id(2));
        let producers = spans
            .iter()
            .filter(|s| s.span_kind == SpanKind::Producer)
            .count();
        assert_eq!(producers, alerting.len());
    }

    #[test]
    fn a_notice_goes_out_with_the_context_of_the_on_call_span_of_the_reading_that_caused_it() {
        let (provider, exporter) = in_memory();
        let tracer = tracer(&provider);
        // Three store-only readings of one reactor share its on-call publish call; reading 2
        // caused the notice (a `resolved`, say). No store-only reading is sampled.
        let now = Instant::now();
        let on_call = CallTiming {
            operation: AwsOperation::SnsOnCallPublishBatch,
            started: now,
            finished: now,
            error: None,
            request_id: None,
        };
        let report = BatchReport {
            records: (0..3)
                .map(|i| RecordReport {
                    calls: vec![on_call.clone()],
                    ..record(i, false)
                })
                .collect(),
            requests: Vec::new(),
        };
        let plan = TracePlan {
            store_only_ratio: 0.0,
            max_records_per_trace: 150,
        };
        let mut invocation = tracer.start("invocation");
        let cx = Context::new().with_remote_span_context(invocation.span_context().clone());
        let contexts = AlertContexts::new(invocation.span_context().clone(), 150);
        let sent = contexts.context_of(contexts.span(&origin(2), Publication::Notice));
        let targets = CallTargets {
            stream_name: "indications-stream".into(),
            on_call_topic_arn: "arn:aws:sns:us-east-1:123456789012:reactor-on-call".into(),
            ..CallTargets::default()
        };
        let traced = emit_invocation(&tracer, &cx, &report, &plan, &targets, &contexts, &|| {});
        invocation.end();
        provider.force_flush().unwrap();
        let spans = exporter.get_finished_spans().unwrap();

        assert_eq!(
            traced, 1,
            "the reading that caused a notice is traced, whatever the ratio"
        );
        let publish = spans
            .iter()
            .find(|s| s.span_context.span_id() == sent.span_id())
            .expect("a span has the id the notice went out with");
        assert_eq!(publish.span_context.trace_id(), sent.trace_id());
        assert_eq!(publish.span_kind, SpanKind::Producer);
        assert_eq!(publish.name, "publish reactor-on-call");
        let topic = publish
            .attributes
            .iter()
            .find(|kv| kv.key.as_str() == semconv::AWS_SNS_TOPIC_ARN)
            .map(|kv| kv.value.to_string());
        assert_eq!(
            topic.as_deref(),
            Some("arn:aws:sns:us-east-1:123456789012:reactor-on-call")
        );
        let parent = spans
            .iter()
            .find(|s| s.span_context.span_id() == publish.parent_span_id)
            .unwrap();
        let message_id = parent
            .attributes
            .iter()
            .find(|kv| kv.key.as_str() == semconv::MESSAGING_MESSAGE_ID)
            .map(|kv| kv.value.to_string());
        assert_eq!(message_id.as_deref(), Some("2"));
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

            let records: Vec<_> = spans.iter().filter(|s| s.name == spans::PROCESS).collect();
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
