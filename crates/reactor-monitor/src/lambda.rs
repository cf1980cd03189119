//! The Lambda entry point's logic: event in, partial batch response out.

use aws_lambda_events::event::streams::KinesisEventResponse;
use lambda_runtime::LambdaEvent;
use tokio::time::Instant;

use crate::kinesis::KinesisInput;
use crate::pipeline::{BatchReport, Pipeline};
use crate::ports::{
    AlertPublisher, DeadLetterSink, EpisodeStore, OnCallPublisher, ReadingStore, TransientError,
};

/// The invocation fails as a whole only when no record of the batch could be done,
/// so that Lambda's bisect-on-error can split it.
#[derive(Debug, thiserror::Error)]
#[error("none of the {records} records could be processed; first failure: {first}")]
pub struct BatchFailed {
    pub records: usize,
    #[source]
    pub first: TransientError,
}

/// What Lambda reports for a failed invocation (`errorType` / `errorMessage`).
impl From<BatchFailed> for lambda_runtime::Diagnostic {
    fn from(failure: BatchFailed) -> Self {
        Self {
            error_type: "BatchFailed".into(),
            error_message: failure.to_string(),
        }
    }
}

/// Deadlines before this instant (2001-09-09, in ms) are not wall-clock instants: some
/// Runtime API emulators (cargo-lambda's) send the function timeout as a duration.
const PLAUSIBLE_DEADLINE_EPOCH_MS: u64 = 1_000_000_000_000;

/// Converts the invocation deadline (wall clock, milliseconds) to a monotonic instant,
/// `None` when the value cannot be a wall-clock instant.
pub fn deadline_instant(deadline_epoch_ms: u64) -> Option<Instant> {
    if deadline_epoch_ms < PLAUSIBLE_DEADLINE_EPOCH_MS {
        tracing::warn!(
            deadline_ms = deadline_epoch_ms,
            "the invocation deadline is not an instant; running without one"
        );
        return None;
    }
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0);
    Some(
        Instant::now() + std::time::Duration::from_millis(deadline_epoch_ms.saturating_sub(now_ms)),
    )
}

/// Processes one event; the response (or the whole-invocation failure) with the report,
/// which telemetry needs in both cases.
pub async fn handle_batch<S, L, P, D, E: KinesisInput>(
    pipeline: &Pipeline<S, L, P, D>,
    event: LambdaEvent<E>,
) -> (BatchReport, Result<KinesisEventResponse, BatchFailed>)
where
    S: ReadingStore,
    L: EpisodeStore,
    P: AlertPublisher + OnCallPublisher,
    D: DeadLetterSink,
{
    let deadline = deadline_instant(event.context.deadline);
    let report = pipeline
        .process_inbound(event.payload.into_inbound(), deadline)
        .await;
    let result = match report.invocation_failure() {
        Some(first) => Err(BatchFailed {
            records: report.records.len(),
            first: first.clone(),
        }),
        _ => Ok(report.response()),
    };
    (report, result)
}

/// Processes one event: the partial batch response and the report.
pub async fn handle<S, L, P, D, E: KinesisInput>(
    pipeline: &Pipeline<S, L, P, D>,
    event: LambdaEvent<E>,
) -> Result<(KinesisEventResponse, BatchReport), BatchFailed>
where
    S: ReadingStore,
    L: EpisodeStore,
    P: AlertPublisher + OnCallPublisher,
    D: DeadLetterSink,
{
    let (report, result) = handle_batch(pipeline, event).await;
    result.map(|response| (response, report))
}
