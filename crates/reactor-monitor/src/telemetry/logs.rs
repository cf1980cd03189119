//! Telemetry names and set-up. One module owns the names of flows, spans, attributes and
//! metrics; dashboards, alarms and tests use the same.

use tracing_subscriber::EnvFilter;

use crate::pipeline::{BatchReport, Outcome};

/// JSON logs on stderr (Lambda sends both streams to CloudWatch Logs), one line per event.
/// `RUST_LOG` sets the level; `info` by default.
pub fn init_logs() {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .json()
        .with_env_filter(filter)
        .with_current_span(false)
        .with_target(false)
        .with_writer(std::io::stderr)
        .try_init();
}

/// One line per batch with its counts, one per failed or rejected record; never a payload.
/// `xray_trace_id` goes on every line, for correlation with the trace.
pub fn log_batch(report: &BatchReport, xray_trace_id: Option<&str>) {
    let trace = xray_trace_id.unwrap_or_default();
    let mut stored = 0;
    let mut alerted = 0;
    let mut dead_lettered = 0;
    let mut failed = 0;
    for record in &report.records {
        match &record.outcome {
            Outcome::Stored => stored += 1,
            Outcome::StoredAndAlerted { .. } => alerted += 1,
            Outcome::DeadLettered(reason) => {
                dead_lettered += 1;
                tracing::info!(
                    xray_trace_id = trace,
                    flow_type = %record.flow, sequence_number = %record.origin.sequence_number, shard_id = %record.origin.shard_id, reject_reason = reason.code(), payload_bytes = record.payload_len, "record dead-lettered");
            }
            Outcome::Failed(error) => {
                failed += 1;
                tracing::warn!(
                    xray_trace_id = trace,
                    flow_type = %record.flow, sequence_number = %record.origin.sequence_number, shard_id = %record.origin.shard_id, error = %error, "record failed, reported for retry");
            }
        }
    }
    tracing::info!(
        xray_trace_id = trace,
        records = report.records.len(),
        stored,
        alerted,
        dead_lettered,
        failed,
        "batch processed"
    );
}

/// Logs of the command line tools: warnings and errors on stderr, in text.
pub fn init_cli_logs() {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("warn"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false)
        .with_writer(std::io::stderr)
        .try_init();
}
