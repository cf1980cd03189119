//! The Lambda function: configuration, clients and telemetry once per cold start, then one
//! batch per event.

use std::sync::Arc;

use aws_lambda_events::event::kinesis::KinesisEvent;
use aws_lambda_events::event::streams::KinesisEventResponse;
use lambda_runtime::layers::{OpenTelemetryFaasTrigger, OpenTelemetryLayer};
use lambda_runtime::{Error, LambdaEvent, Runtime, service_fn};
use reactor_monitor::config::Config;
use reactor_monitor::telemetry::function::FunctionTelemetry;
use reactor_monitor::telemetry::traces::{CallTargets, TracePlan};
use reactor_monitor::{aws, lambda};

#[tokio::main]
async fn main() -> Result<(), Error> {
    let config = Config::from_env().inspect_err(|e| eprintln!("invalid configuration: {e}"))?;
    let plan = TracePlan::from_lookup(|name| std::env::var(name).ok())
        .inspect_err(|e| eprintln!("invalid configuration: {e}"))?;
    let sdk = aws::sdk_config(None).await;
    let targets = CallTargets {
        region: sdk.region().map(|r| r.to_string()).unwrap_or_default(),
        stream_name: std::env::var(reactor_monitor::config::env::STREAM_NAME).unwrap_or_default(),
        table_name: config.table_name.clone(),
        topic_arn: config.alert_topic_arn.clone(),
        bucket: config.dead_letter_bucket.clone(),
    };
    let telemetry = Arc::new(FunctionTelemetry::install(plan, targets)?);
    let pipeline = Arc::new(aws::pipeline(&sdk, &config));

    let handler_telemetry = telemetry.clone();
    let handler = service_fn(move |event: LambdaEvent<KinesisEvent>| {
        let pipeline = pipeline.clone();
        let telemetry = handler_telemetry.clone();
        async move {
            let xray_trace_id = event.context.xray_trace_id.clone();
            telemetry.join_xray_trace(xray_trace_id.as_deref());
            let (report, result) = lambda::handle_batch(&pipeline, event).await;
            telemetry.after_batch(&report, xray_trace_id.as_deref());
            Ok::<KinesisEventResponse, Error>(result?)
        }
    });
    let flush_telemetry = telemetry.clone();
    Runtime::new(handler)
        .layer(
            OpenTelemetryLayer::new(move || flush_telemetry.flush())
                .with_trigger(OpenTelemetryFaasTrigger::PubSub),
        )
        .run()
        .await
}
