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
    let mut ledger = store.clone();
    let mut publisher = SnsAlerts::new(aws_sdk_sns::Client::new(sdk), &config.alert_topic_arn);
    if let Some(episodes) = &config.episodes {
        ledger = ledger.with_episode_table(&episodes.table_name);
        publisher = publisher.with_on_call_topic(&episodes.on_call_topic_arn);
    }
    Pipeline {
        store,
        ledger,
        publisher,
        dead_letters: S3DeadLetters::new(s3_client(sdk), &config.dead_letter_bucket),
        thresholds: config.thresholds,
        episodes: config.episodes.as_ref().map(|e| e.policy),
        limits: Limits {
            max_in_flight: config.max_in_flight_requests,
            deadline_margin: config.deadline_margin,
        },
    }
}

/// Region used against the local emulator when none is configured.
pub const LOCAL_REGION: &str = "us-east-1";

/// The region of the local tools: the SDK's region provider chain without instance metadata
/// (not on this machine) — `AWS_REGION`, `AWS_DEFAULT_REGION`, then the profile
/// (`AWS_PROFILE`, `~/.aws/config`) — and [`LOCAL_REGION`] only when none is set.
pub async fn local_region() -> aws_config::Region {
    use aws_config::environment::region::EnvironmentVariableRegionProvider;
    use aws_config::meta::region::RegionProviderChain;
    use aws_config::profile::region::ProfileFileRegionProvider;
    RegionProviderChain::first_try(EnvironmentVariableRegionProvider::new())
        .or_else(ProfileFileRegionProvider::new())
        .or_else(aws_config::Region::new(LOCAL_REGION))
        .region()
        .await
        .unwrap_or_else(|| aws_config::Region::new(LOCAL_REGION))
}

/// SDK configuration for the local emulator: its endpoint, the region of [`local_region`],
/// and dummy credentials, so that no real credential is ever sent to it.
pub async fn local_sdk_config(endpoint: &str) -> aws_config::SdkConfig {
    aws_config::defaults(aws_config::BehaviorVersion::latest())
        .http_client(https_client())
        .endpoint_url(endpoint)
        .region(local_region().await)
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
