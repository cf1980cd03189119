//! Telemetry of one function instance: the invocation span, the record spans, the CloudWatch
//! EMF lines and the batch log of every invocation, the same on Lambda and on a laptop.

use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use opentelemetry::trace::{SpanKind, Status, TraceContextExt, Tracer, TracerProvider as _};
use opentelemetry::{Context, KeyValue};
use opentelemetry_sdk::trace::{SdkTracer, SdkTracerProvider};
use opentelemetry_semantic_conventions::attribute as semconv;

use super::names::SERVICE_NAME;
use super::propagation::AlertContexts;
use super::traces::{self, CallTargets, TracePlan};
use super::{emf, log_batch};
use crate::pipeline::BatchReport;

/// Where the EMF lines go: stdout on Lambda (CloudWatch Logs extracts the metrics), or kept
/// in memory by the local tools, which count them against what they read back.
#[derive(Debug, Default)]
pub enum MetricsSink {
    #[default]
    Stdout,
    Collect(Mutex<Vec<String>>),
}

/// What the spans of an invocation hang on, and where they go.
pub struct SpanExport {
    pub provider: SdkTracerProvider,
    pub plan: TracePlan,
    pub targets: CallTargets,
    /// Parent the invocation span on the Lambda's X-Ray segment (`Context.xray_trace_id`);
    /// otherwise the invocation span is a root.
    pub join_xray_trace: bool,
}

/// The invocation as telemetry sees it: the Lambda context's identifiers.
#[derive(Debug, Clone, Copy)]
pub struct InvocationContext<'a> {
    pub request_id: &'a str,
    pub invoked_function_arn: &'a str,
    pub xray_trace_id: Option<&'a str>,
    pub records: usize,
}

/// Telemetry of one execution environment (one cold start).
pub struct FunctionTelemetry {
    spans: Option<(SpanExport, SdkTracer)>,
    metrics: MetricsSink,
    cold_start: AtomicBool,
}

impl FunctionTelemetry {
    /// Spans to `spans` (none when `None`), EMF lines to `metrics`.
    pub fn new(spans: Option<SpanExport>, metrics: MetricsSink) -> Self {
        Self {
            spans: spans.map(|export| {
                let tracer = export.provider.tracer(SERVICE_NAME);
                (export, tracer)
            }),
            metrics,
            cold_start: AtomicBool::new(true),
        }
    }

    /// Starts the invocation span (as the Lambda runtime's OpenTelemetry layer names it),
    /// joined to the X-Ray trace when configured, else a root.
    pub fn start_invocation(&self, invocation: &InvocationContext) -> Context {
        let Some((export, tracer)) = &self.spans else {
            return Context::new();
        };
        let parent = invocation
            .xray_trace_id
            .filter(|_| export.join_xray_trace)
            .and_then(traces::xray_parent)
            .unwrap_or_default();
        let mut attributes = vec![
            KeyValue::new(semconv::FAAS_TRIGGER, "pubsub"),
            KeyValue::new(
                semconv::FAAS_INVOCATION_ID,
                invocation.request_id.to_string(),
            ),
            KeyValue::new(
                semconv::FAAS_COLDSTART,
                self.cold_start.load(Ordering::Relaxed),
            ),
            KeyValue::new(
                semconv::MESSAGING_BATCH_MESSAGE_COUNT,
                invocation.records as i64,
            ),
        ];
        if !invocation.invoked_function_arn.is_empty() {
            attributes.push(KeyValue::new(
                semconv::AWS_LAMBDA_INVOKED_ARN,
                invocation.invoked_function_arn.to_string(),
            ));
            // arn:partition:lambda:region:account-id:function:name[:alias]
            if let Some(account) = invocation.invoked_function_arn.split(':').nth(4) {
                attributes.push(KeyValue::new(
                    semconv::CLOUD_ACCOUNT_ID,
                    account.to_string(),
                ));
            }
        }
        let span = tracer
            .span_builder(SERVICE_NAME)
            .with_kind(SpanKind::Server)
            .with_attributes(attributes)
            .start_with_context(tracer, &parent);
        parent.with_span(span)
    }

    /// The trace contexts the invocation's alerts go out with (none without span export),
    /// to hold ambient while the batch runs (`propagation::with_alert_contexts`) and to hand
    /// to [`FunctionTelemetry::finish_invocation`].
    pub fn alert_contexts(&self, invocation: &Context) -> Option<Arc<AlertContexts>> {
        let (export, _) = self.spans.as_ref()?;
        Some(Arc::new(AlertContexts::new(
            invocation.span().span_context().clone(),
            export.plan.max_records_per_trace,
        )))
    }

    /// After the batch: the record spans under `invocation` (its alerts' spans with the
    /// contexts they went out with, from [`FunctionTelemetry::alert_contexts`]), the invocation span ended (an
    /// error status when the whole invocation failed), every span flushed before the
    /// response is returned, then the batch log line and the EMF lines.
    pub fn finish_invocation(
        &self,
        invocation: Context,
        report: &BatchReport,
        failure: Option<&dyn std::error::Error>,
        xray_trace_id: Option<&str>,
        alerts: Option<&AlertContexts>,
    ) {
        if let Some((export, tracer)) = &self.spans {
            let fresh;
            let alerts = match alerts {
                Some(alerts) => alerts,
                None => {
                    fresh = self
                        .alert_contexts(&invocation)
                        .expect("spans are exported");
                    &fresh
                }
            };
            traces::emit_invocation(
                tracer,
                &invocation,
                report,
                &export.plan,
                &export.targets,
                alerts,
                &|| self.flush(),
            );
            if let Some(error) = failure {
                invocation
                    .span()
                    .set_status(Status::error(error.to_string()));
            }
            invocation.span().end();
            self.flush();
        }
        log_batch(report, xray_trace_id);
        let cold_start = self.cold_start.swap(false, Ordering::Relaxed);
        let lines = emf::batch_lines(report, cold_start, chrono::Utc::now().timestamp_millis());
        match &self.metrics {
            MetricsSink::Stdout => {
                let mut out = std::io::stdout().lock();
                for line in lines {
                    let _ = writeln!(out, "{line}");
                }
            }
            MetricsSink::Collect(kept) => kept.lock().expect("metrics lock").extend(lines),
        }
    }

    /// The EMF lines kept so far (empty with [`MetricsSink::Stdout`]).
    pub fn collected_metrics(&self) -> Vec<String> {
        match &self.metrics {
            MetricsSink::Stdout => Vec::new(),
            MetricsSink::Collect(kept) => kept.lock().expect("metrics lock").clone(),
        }
    }

    /// Takes the EMF lines kept so far, leaving none (empty with [`MetricsSink::Stdout`]).
    pub fn take_collected_metrics(&self) -> Vec<String> {
        match &self.metrics {
            MetricsSink::Stdout => Vec::new(),
            MetricsSink::Collect(kept) => std::mem::take(&mut *kept.lock().expect("metrics lock")),
        }
    }

    /// Sends every queued span: before the response on Lambda, since the execution
    /// environment may be frozen right after and the collector layer keeps nothing across a
    /// freeze. The exporter blocks; on a multi-threaded runtime the wait moves off the worker,
    /// so that a receiver on the same runtime (the local tools') keeps serving.
    pub fn flush(&self) {
        let Some((export, _)) = &self.spans else {
            return;
        };
        let flush = || {
            if let Err(e) = export.provider.force_flush() {
                tracing::warn!(error = %e, "spans could not be flushed");
            }
        };
        match tokio::runtime::Handle::try_current().map(|h| h.runtime_flavor()) {
            Ok(tokio::runtime::RuntimeFlavor::MultiThread) => tokio::task::block_in_place(flush),
            _ => flush(),
        }
    }

    /// The tracer provider, for a caller that shuts the exporter down at the end of a run.
    pub fn provider(&self) -> Option<&SdkTracerProvider> {
        self.spans.as_ref().map(|(export, _)| &export.provider)
    }
}
