//! The silence check as a Lambda function: EventBridge Scheduler invokes it every minute;
//! it pages once for each reactor that has gone quiet (`reactor_monitor::silence`).

use lambda_runtime::{Error, LambdaEvent, service_fn};
use reactor_monitor::aws;
use reactor_monitor::config::Config;
use reactor_monitor::telemetry::{self, emf};

#[tokio::main]
async fn main() -> Result<(), Error> {
    telemetry::init_logs();
    let config = Config::from_env().inspect_err(|e| eprintln!("invalid configuration: {e}"))?;
    let Some(episodes) = config.episodes.clone() else {
        return Err("the silence check needs EPISODE_TABLE_NAME and ON_CALL_TOPIC_ARN".into());
    };
    let sdk = aws::sdk_config(None).await;
    let pipeline = std::sync::Arc::new(aws::pipeline(&sdk, &config));
    lambda_runtime::run(service_fn(move |_: LambdaEvent<serde_json::Value>| {
        let (pipeline, policy) = (pipeline.clone(), episodes.policy);
        async move {
            let now = chrono::Utc::now();
            let report = reactor_monitor::silence::check(
                &pipeline.ledger,
                &pipeline.publisher,
                &policy,
                now,
            )
            .await?;
            for line in emf::silence_lines(&report, now.timestamp_millis()) {
                println!("{line}");
            }
            for failure in &report.failures {
                tracing::warn!(error = %failure, "silent page not published or not recorded");
            }
            Ok::<_, Error>(serde_json::json!({
                "reactors": report.reactors,
                "silent": report.notified.len(),
                "failures": report.failures.len(),
            }))
        }
    }))
    .await
}
