//! The Lambda function: configuration, clients and telemetry once per cold start, then one
//! batch per event.

use std::sync::Arc;

use lambda_runtime::{Error, LambdaEvent, service_fn};
use reactor_monitor::aws;
use reactor_monitor::config::Config;
use reactor_monitor::function::AwsFunction;
use reactor_monitor::kinesis::KinesisBatch;
use reactor_monitor::telemetry::{self, function::MetricsSink, traces};

#[tokio::main]
async fn main() -> Result<(), Error> {
    telemetry::init_logs();
    let config = Config::from_env().inspect_err(|e| eprintln!("invalid configuration: {e}"))?;
    let sdk = aws::sdk_config(None).await;
    let provider = traces::otlp_provider(None)?;
    let function = Arc::new(AwsFunction::from_config(
        &config,
        &sdk,
        Some(provider),
        MetricsSink::Stdout,
    ));
    lambda_runtime::run(service_fn(move |event: LambdaEvent<KinesisBatch>| {
        let function = function.clone();
        async move { function.handle(event).await }
    }))
    .await
}
