//! Telemetry of the deployed function: JSON logs, the tracing → OpenTelemetry bridge, and
//! what is emitted after each batch (record spans, EMF lines, the batch log).

use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};

use opentelemetry_sdk::trace::{SdkTracer, SdkTracerProvider};
use tracing_opentelemetry::OpenTelemetrySpanExt;
use tracing_subscriber::EnvFilter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

use super::traces::{self, CallTargets, TracePlan};
use super::{emf, log_batch};
use crate::pipeline::BatchReport;

/// Telemetry of one execution environment.
pub struct FunctionTelemetry {
    pub provider: SdkTracerProvider,
    tracer: SdkTracer,
    plan: TracePlan,
    targets: CallTargets,
    cold_start: AtomicBool,
}

impl FunctionTelemetry {
    /// Installs JSON logs (stderr) and the OpenTelemetry bridge. Spans go over OTLP/HTTP to
    /// the ADOT collector layer on localhost:4318, or `OTEL_EXPORTER_OTLP_ENDPOINT`.
    pub fn install(plan: TracePlan, targets: CallTargets) -> Result<Self, String> {
        let provider = traces::otlp_provider(None)?;
        let tracer = traces::tracer(&provider);
        let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
        // Context activation off: the invocation span can still be re-parented on the
        // Lambda's X-Ray trace from inside the handler.
        let otel = tracing_opentelemetry::layer()
            .with_tracer(tracer.clone())
            .with_context_activation(false);
        let logs = tracing_subscriber::fmt::layer()
            .json()
            .with_current_span(true)
            .with_span_list(false)
            .with_target(false)
            .with_writer(std::io::stderr);
        tracing_subscriber::registry()
            .with(filter)
            .with(logs)
            .with(otel)
            .try_init()
            .map_err(|e| format!("installing the tracing subscriber: {e}"))?;
        Ok(Self {
            provider,
            tracer,
            plan,
            targets,
            cold_start: AtomicBool::new(true),
        })
    }

    /// Makes the current (invocation) span a child of the Lambda's X-Ray trace.
    pub fn join_xray_trace(&self, xray_trace_id: Option<&str>) {
        if let Some(parent) = xray_trace_id.and_then(traces::xray_parent) {
            let _ = tracing::Span::current().set_parent(parent);
        }
    }

    /// Record spans under the current span, EMF lines on stdout, one log line per batch.
    pub fn after_batch(&self, report: &BatchReport, xray_trace_id: Option<&str>) {
        let invocation = tracing::Span::current().context();
        traces::emit_batch_flushing(
            &self.tracer,
            &invocation,
            report,
            &self.plan,
            &self.targets,
            &|| self.flush(),
        );
        // The record spans leave before the response does; the invocation span closes when
        // the runtime layer has posted the response, and its own flush sends it then.
        self.flush();
        log_batch(report, xray_trace_id);
        let cold_start = self.cold_start.swap(false, Ordering::Relaxed);
        let now_ms = chrono::Utc::now().timestamp_millis();
        let mut out = std::io::stdout().lock();
        for line in emf::batch_lines(report, cold_start, now_ms) {
            let _ = writeln!(out, "{line}");
        }
    }

    /// Sends every span before the response is returned: the execution environment may be
    /// frozen right after, and the ADOT layer keeps nothing in memory across a freeze.
    pub fn flush(&self) {
        if let Err(e) = self.provider.force_flush() {
            tracing::warn!(error = %e, "spans could not be flushed");
        }
    }
}
