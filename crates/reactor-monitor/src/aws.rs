//! AWS clients and the pipeline wired to them.

use crate::adapters::dynamodb::DynamoDbStore;
use crate::adapters::s3::S3DeadLetters;
use crate::adapters::sns::SnsAlerts;
use crate::config::Config;
use crate::pipeline::{Limits, Pipeline};

/// The pipeline as it runs on Lambda and locally: the same code, only the endpoint differs.
pub type AwsPipeline = Pipeline<DynamoDbStore, DynamoDbStore, SnsAlerts, S3DeadLetters>;

/// Loads the shared SDK configuration. The endpoint comes from `AWS_ENDPOINT_URL` (the
/// standard variable) unless `endpoint` overrides it.
pub async fn sdk_config(endpoint: Option<&str>) -> aws_config::SdkConfig {
    let mut loader =
        aws_config::defaults(aws_config::BehaviorVersion::latest()).http_client(https_client());
    if let Some(endpoint) = endpoint {
        loader = loader.endpoint_url(endpoint);
    }
    loader.load().await
}

/// The HTTP client of every SDK client: hyper 1 with rustls on ring, the platform's root
/// certificates, HTTP/1.1 and HTTP/2. One stack, chosen here rather than by the SDK crates'
/// default features, keeps the Lambda binary small.
pub fn https_client() -> aws_smithy_runtime_api::client::http::SharedHttpClient {
    use aws_smithy_http_client::tls::{Provider, rustls_provider::CryptoMode};
    aws_smithy_http_client::Builder::new()
        .tls_provider(Provider::Rustls(CryptoMode::Ring))
        .build_https()
}

/// S3 clients use path-style addressing when an endpoint is set: an emulator on
/// 127.0.0.1 has no per-bucket host names.
pub fn s3_client(sdk: &aws_config::SdkConfig) -> aws_sdk_s3::Client {
    let conf = aws_sdk_s3::config::Builder::from(sdk)
        .force_path_style(sdk.endpoint_url().is_some())
        .build();
    aws_sdk_s3::Client::from_conf(conf)
}

pub fn pipeline(sdk: &aws_config::SdkConfig, config: &Config) -> AwsPipeline {
    let store = DynamoDbStore::new(aws_sdk_dynamodb::Client::new(sdk), &config.table_name);
    Pipeline {
        store: store.clone(),
        ledger: store,
        publisher: SnsAlerts::new(aws_sdk_sns::Client::new(sdk), &config.alert_topic_arn),
        dead_letters: S3DeadLetters::new(s3_client(sdk), &config.dead_letter_bucket),
        thresholds: config.thresholds,
        limits: Limits {
            max_in_flight: config.max_in_flight_requests,
            deadline_margin: config.deadline_margin,
        },
    }
}

/// Region used against the local emulator when none is configured.
pub const LOCAL_REGION: &str = "us-east-1";

/// SDK configuration for the local emulator: its endpoint, the configured region (or
/// us-east-1), and dummy credentials, so that no real credential is ever sent to it.
pub async fn local_sdk_config(endpoint: &str) -> aws_config::SdkConfig {
    // Only the environment is asked for a region: the default chain would also ask the
    // instance metadata service, which is not on this machine.
    let region = ["AWS_REGION", "AWS_DEFAULT_REGION"]
        .iter()
        .find_map(|name| std::env::var(name).ok().filter(|v| !v.is_empty()))
        .unwrap_or_else(|| LOCAL_REGION.to_string());
    aws_config::defaults(aws_config::BehaviorVersion::latest())
        .http_client(https_client())
        .endpoint_url(endpoint)
        .region(aws_config::Region::new(region))
        .credentials_provider(aws_sdk_dynamodb::config::Credentials::new(
            "local-emulator",
            "local-emulator",
            None,
            None,
            "reactor-monitor-local",
        ))
        .load()
        .await
}
