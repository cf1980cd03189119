//! Typed configuration, read once at start from the environment.

use std::time::Duration;

use crate::domain::{Thresholds, ThresholdsError};

/// Environment variable names; the template, README and CLI use the same.
pub mod env {
    pub const TABLE_NAME: &str = "TABLE_NAME";
    pub const ALERT_TOPIC_ARN: &str = "ALERT_TOPIC_ARN";
    pub const DEAD_LETTER_BUCKET: &str = "DEAD_LETTER_BUCKET";
    pub const WARNING_THRESHOLD_C: &str = "WARNING_THRESHOLD_C";
    pub const EMERGENCY_THRESHOLD_C: &str = "EMERGENCY_THRESHOLD_C";
    pub const MAX_IN_FLIGHT_REQUESTS: &str = "MAX_IN_FLIGHT_REQUESTS";
    pub const DEADLINE_MARGIN_MS: &str = "DEADLINE_MARGIN_MS";
    /// Optional: the stream's name, for the record spans.
    pub const STREAM_NAME: &str = "STREAM_NAME";
}

/// Resource names shared with `template.yaml`'s defaults and the local stack.
pub mod defaults {
    pub const STREAM_NAME: &str = "indications-stream";
    pub const TABLE_NAME: &str = "indications-table";
    pub const ALERT_TOPIC_NAME: &str = "reactor-notifications";
    pub const DEAD_LETTER_BUCKET: &str = "reactor-monitor-dead-letters";
    pub const ON_FAILURE_QUEUE_NAME: &str = "reactor-monitor-exhausted-batches";
    pub const ON_CALL_QUEUE_NAME: &str = "reactor-monitor-on-call";
    /// Concurrent AWS requests per invocation: bounds connections and memory.
    pub const MAX_IN_FLIGHT_REQUESTS: usize = 16;
    /// Time kept in reserve before the invocation deadline: no new request starts after it.
    pub const DEADLINE_MARGIN_MS: u64 = 1_500;
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("environment variable {name} is required ({hint})")]
    Missing {
        name: &'static str,
        hint: &'static str,
    },
    #[error("environment variable {name}={value:?} is not {expected}")]
    Invalid {
        name: &'static str,
        value: String,
        expected: &'static str,
    },
    #[error(transparent)]
    Thresholds(#[from] ThresholdsError),
}

#[derive(Debug, Clone)]
pub struct Config {
    pub table_name: String,
    pub alert_topic_arn: String,
    pub dead_letter_bucket: String,
    pub thresholds: Thresholds,
    pub max_in_flight_requests: usize,
    pub deadline_margin: Duration,
}

impl Config {
    /// A configuration for tests and the local stack, with the default limits.
    pub fn new(
        table_name: impl Into<String>,
        alert_topic_arn: impl Into<String>,
        dead_letter_bucket: impl Into<String>,
    ) -> Self {
        Self {
            table_name: table_name.into(),
            alert_topic_arn: alert_topic_arn.into(),
            dead_letter_bucket: dead_letter_bucket.into(),
            thresholds: Thresholds::default(),
            max_in_flight_requests: defaults::MAX_IN_FLIGHT_REQUESTS,
            deadline_margin: Duration::from_millis(defaults::DEADLINE_MARGIN_MS),
        }
    }

    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Reads the configuration through `lookup`, so that tests need no process environment.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let required = |name: &'static str, hint: &'static str| {
            lookup(name)
                .filter(|v| !v.trim().is_empty())
                .ok_or(ConfigError::Missing { name, hint })
        };
        let parsed =
            |name: &'static str, expected: &'static str| -> Result<Option<f64>, ConfigError> {
                lookup(name)
                    .map(|value| {
                        value
                            .trim()
                            .parse::<f64>()
                            .map_err(|_| ConfigError::Invalid {
                                name,
                                value,
                                expected,
                            })
                    })
                    .transpose()
            };

        let warning = parsed(env::WARNING_THRESHOLD_C, "a temperature in °C")?
            .unwrap_or(Thresholds::DEFAULT_WARNING_C);
        let emergency = parsed(env::EMERGENCY_THRESHOLD_C, "a temperature in °C")?
            .unwrap_or(Thresholds::DEFAULT_EMERGENCY_C);
        let max_in_flight = parsed(env::MAX_IN_FLIGHT_REQUESTS, "a whole number from 1 to 256")?
            .map(|n| {
                if n.fract() == 0.0 && (1.0..=256.0).contains(&n) {
                    Ok(n as usize)
                } else {
                    Err(ConfigError::Invalid {
                        name: env::MAX_IN_FLIGHT_REQUESTS,
                        value: n.to_string(),
                        expected: "a whole number from 1 to 256",
                    })
                }
            })
            .transpose()?
            .unwrap_or(defaults::MAX_IN_FLIGHT_REQUESTS);
        let margin_ms = parsed(env::DEADLINE_MARGIN_MS, "a whole number of milliseconds")?
            .map(|n| {
                if n.fract() == 0.0 && (0.0..=600_000.0).contains(&n) {
                    Ok(n as u64)
                } else {
                    Err(ConfigError::Invalid {
                        name: env::DEADLINE_MARGIN_MS,
                        value: n.to_string(),
                        expected: "a whole number of milliseconds",
                    })
                }
            })
            .transpose()?
            .unwrap_or(defaults::DEADLINE_MARGIN_MS);

        Ok(Self {
            table_name: required(env::TABLE_NAME, "the DynamoDB table for readings")?,
            alert_topic_arn: required(env::ALERT_TOPIC_ARN, "the SNS topic ARN for alerts")?,
            dead_letter_bucket: required(
                env::DEAD_LETTER_BUCKET,
                "the S3 bucket for rejected payloads",
            )?,
            thresholds: Thresholds::new(warning, emergency)?,
            max_in_flight_requests: max_in_flight,
            deadline_margin: std::time::Duration::from_millis(margin_ms),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn lookup(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |k| map.get(k).cloned()
    }

    const REQUIRED: [(&str, &str); 3] = [
        (env::TABLE_NAME, "t"),
        (env::ALERT_TOPIC_ARN, "arn:aws:sns:us-east-1:123456789012:a"),
        (env::DEAD_LETTER_BUCKET, "b"),
    ];

    #[test]
    fn defaults_apply_when_only_resources_are_named() {
        let config = Config::from_lookup(lookup(&REQUIRED)).unwrap();
        assert_eq!(config.thresholds, Thresholds::default());
        assert_eq!(
            config.max_in_flight_requests,
            defaults::MAX_IN_FLIGHT_REQUESTS
        );
    }

    #[test]
    fn warning_above_emergency_fails_at_start_with_a_clear_error() {
        let mut pairs = REQUIRED.to_vec();
        pairs.push((env::WARNING_THRESHOLD_C, "850"));
        let err = Config::from_lookup(lookup(&pairs)).unwrap_err().to_string();
        assert!(
            err.contains(
                "warning threshold (850 °C) must be below the emergency threshold (800 °C)"
            ),
            "{err}"
        );
    }

    #[test]
    fn a_missing_table_is_named_in_the_error() {
        let err = Config::from_lookup(lookup(&REQUIRED[1..]))
            .unwrap_err()
            .to_string();
        assert!(err.contains("TABLE_NAME"), "{err}");
    }

    #[test]
    fn a_threshold_that_is_not_a_number_is_named_in_the_error() {
        let mut pairs = REQUIRED.to_vec();
        pairs.push((env::EMERGENCY_THRESHOLD_C, "hot"));
        let err = Config::from_lookup(lookup(&pairs)).unwrap_err().to_string();
        assert!(err.contains("EMERGENCY_THRESHOLD_C=\"hot\""), "{err}");
    }
}
