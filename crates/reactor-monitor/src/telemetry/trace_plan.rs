//! Configuration of the traces: the volume plan (which records are traced, how many record
//! subtrees a trace holds), where the calls go, and the tracer provider.

use std::cell::Cell;

use opentelemetry::trace::{SpanId, TraceId};
use opentelemetry_aws::trace::XrayIdGenerator;
use opentelemetry_sdk::trace::{
    BatchConfigBuilder, BatchSpanProcessor, IdGenerator, SdkTracer, SdkTracerProvider,
    TracerProviderBuilder,
};

use super::names::SERVICE_NAME;
use crate::config::ConfigError;
use crate::domain::FlowType;
use crate::pipeline::RecordReport;

/// Environment variables of the trace plan.
pub mod env {
    pub const STORE_ONLY_TRACE_RATIO: &str = "STORE_ONLY_TRACE_RATIO";
    pub const MAX_RECORD_SPANS_PER_TRACE: &str = "MAX_RECORD_SPANS_PER_TRACE";
}

/// Record subtrees per invocation trace. A subtree is 2–5 spans of a few hundred bytes;
/// 150 keeps an invocation trace well under X-Ray's ~500 KB trace document.
pub const DEFAULT_MAX_RECORD_SPANS_PER_TRACE: usize = 150;

/// Spans queued for export. The queue is allocated up front (a few hundred bytes a slot), so
/// it is kept small and a large batch is emitted in slices with a flush between them.
const MAX_QUEUED_SPANS: usize = 8_192;

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
    /// The table of alert episode states; empty when episodes are off.
    pub episode_table_name: String,
    pub topic_arn: String,
    /// The on-call topic of episode notices; empty when episodes are off.
    pub on_call_topic_arn: String,
    pub bucket: String,
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
    Ok(provider_builder().with_span_processor(processor).build())
}

/// A provider builder with what every provider of record spans needs (add a processor or
/// an exporter): the service name and [`PresetIdGenerator`], without which the span ids
/// decided before the calls (an alert's `traceparent`) would not be the emitted ones.
pub fn provider_builder() -> TracerProviderBuilder {
    let resource = opentelemetry_sdk::Resource::builder()
        .with_service_name(SERVICE_NAME)
        .build();
    SdkTracerProvider::builder()
        .with_id_generator(PresetIdGenerator::default())
        .with_resource(resource)
}

thread_local! {
    /// Ids the next span started on this thread takes, set by [`start_with_ids`].
    static PRESET: Cell<(Option<TraceId>, Option<SpanId>)> = const { Cell::new((None, None)) };
}

/// X-Ray ids ([`XrayIdGenerator`]), except for a span started inside [`start_with_ids`],
/// which takes the ids decided earlier. The SDK's span builder has no way to set them since
/// 0.28, and an id that went out in a message (an alert's `traceparent`) must be the span's.
#[derive(Debug, Default)]
pub struct PresetIdGenerator {
    xray: XrayIdGenerator,
}

impl IdGenerator for PresetIdGenerator {
    fn new_trace_id(&self) -> TraceId {
        PRESET
            .with(|preset| {
                let (trace, span) = preset.get();
                preset.set((None, span));
                trace
            })
            .unwrap_or_else(|| self.xray.new_trace_id())
    }

    fn new_span_id(&self) -> SpanId {
        PRESET
            .with(|preset| {
                let (trace, span) = preset.get();
                preset.set((trace, None));
                span
            })
            .unwrap_or_else(|| self.xray.new_span_id())
    }
}

/// Runs `start` (which starts one span) so that the span takes `span_id`, and `trace_id`
/// when it is a root (a child takes its parent's trace id). Needs a provider built with
/// [`PresetIdGenerator`]; the SDK starts a span on the calling thread.
pub fn start_with_ids<T>(
    trace_id: Option<TraceId>,
    span_id: Option<SpanId>,
    start: impl FnOnce() -> T,
) -> T {
    PRESET.with(|preset| preset.set((trace_id, span_id)));
    let span = start();
    PRESET.with(|preset| preset.set((None, None)));
    span
}

/// The tracer of record spans.
pub fn tracer(provider: &SdkTracerProvider) -> SdkTracer {
    use opentelemetry::trace::TracerProvider;
    provider.tracer(SERVICE_NAME)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_plan_rejects_a_ratio_outside_zero_to_one() {
        let err = TracePlan::from_lookup(|k| {
            (k == env::STORE_ONLY_TRACE_RATIO).then(|| "1.5".to_string())
        })
        .unwrap_err()
        .to_string();
        assert!(err.contains("STORE_ONLY_TRACE_RATIO"), "{err}");
    }
}
