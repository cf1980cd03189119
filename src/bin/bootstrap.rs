//! The Lambda function: configuration and clients once per cold start, then one batch per event.

use aws_lambda_events::event::kinesis::KinesisEvent;
use aws_lambda_events::event::streams::KinesisEventResponse;
use lambda_runtime::{Error, LambdaEvent, service_fn};
use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};

use reactor_monitor::telemetry::emf;
use reactor_monitor::{aws, config::Config, lambda};

/// True until the first batch of this execution environment has been reported.
static COLD_START: AtomicBool = AtomicBool::new(true);

#[tokio::main]
async fn main() -> Result<(), Error> {
    reactor_monitor::telemetry::init_logs();
    let config = Config::from_env().map_err(|e| {
        tracing::error!(error = %e, "invalid configuration");
        e
    })?;
    let sdk = aws::sdk_config(None).await;
    let pipeline = std::sync::Arc::new(aws::pipeline(&sdk, &config));
    lambda_runtime::run(service_fn(move |event: LambdaEvent<KinesisEvent>| {
        let pipeline = pipeline.clone();
        async move {
            let (response, report) = lambda::handle(&pipeline, event).await?;
            reactor_monitor::telemetry::log_batch(&report);
            let cold_start = COLD_START.swap(false, Ordering::Relaxed);
            let now_ms = chrono::Utc::now().timestamp_millis();
            let mut out = std::io::stdout().lock();
            for line in emf::batch_lines(&report, cold_start, now_ms) {
                let _ = writeln!(out, "{line}");
            }
            Ok::<KinesisEventResponse, Error>(response)
        }
    }))
    .await
}
