//! The production pipeline on mocked SDK clients (`aws-smithy-mocks`), shared by the tests of
//! the adapters' behaviour under AWS's answers.

use std::sync::{Arc, Mutex};

use aws_smithy_mocks::{Rule, RuleMode, mock_client};
use aws_smithy_types::retry::RetryConfig;
use reactor_monitor::adapters::dynamodb::DynamoDbStore;
use reactor_monitor::adapters::s3::S3DeadLetters;
use reactor_monitor::adapters::sns::SnsAlerts;
use reactor_monitor::aws::AwsPipeline;
use reactor_monitor::domain::Thresholds;
use reactor_monitor::pipeline::{Limits, Pipeline};

pub const TABLE: &str = "reactor-readings";
pub const TOPIC_ARN: &str = "arn:aws:sns:us-east-1:123456789012:reactor-alerts";
pub const BUCKET: &str = "reactor-dead-letters";

/// What a mocked service was asked, call by call.
pub type Log<T> = Arc<Mutex<Vec<T>>>;

pub fn log<T>() -> Log<T> {
    Arc::new(Mutex::new(Vec::new()))
}

/// The production pipeline on mocked clients. The SDK's own retries are off: each mocked
/// response is what the adapter sees once the SDK has given up.
pub fn pipeline(dynamodb: &[&Rule], sns: &[&Rule], s3: &[&Rule]) -> AwsPipeline {
    let dynamodb = mock_client!(aws_sdk_dynamodb, RuleMode::MatchAny, dynamodb, |c| c
        .retry_config(RetryConfig::disabled()));
    let sns = mock_client!(aws_sdk_sns, RuleMode::MatchAny, sns, |c| c
        .retry_config(RetryConfig::disabled()));
    let s3 = mock_client!(aws_sdk_s3, RuleMode::MatchAny, s3, |c| c
        .retry_config(RetryConfig::disabled()));
    let store = DynamoDbStore::new(dynamodb, TABLE);
    Pipeline {
        store: store.clone(),
        ledger: store,
        publisher: SnsAlerts::new(sns, TOPIC_ARN),
        dead_letters: S3DeadLetters::new(s3, BUCKET),
        thresholds: Thresholds::default(),
        episodes: None,
        limits: Limits {
            max_in_flight: 4,
            deadline_margin: std::time::Duration::from_millis(200),
        },
    }
}
