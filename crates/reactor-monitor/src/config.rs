//! Typed configuration, read once at start from the environment.

use std::time::Duration;

use crate::domain::episode::EpisodePolicy;
use crate::domain::{Thresholds, ThresholdsError};
use crate::telemetry::traces::TracePlan;

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
    /// The standard OpenTelemetry variable naming the context propagators. With
    /// `xray-lambda` in it, the invocation span joins the Lambda's own X-Ray trace
    /// (OpenTelemetry semantic conventions, FaaS on AWS Lambda: use it only when the spans
    /// go to X-Ray); without, the invocation span is a root.
    pub const OTEL_PROPAGATORS: &str = "OTEL_PROPAGATORS";
    /// Alert episodes (with [`ON_CALL_TOPIC_ARN`]): the table of per-reactor episode state.
    pub const EPISODE_TABLE_NAME: &str = "EPISODE_TABLE_NAME";
    /// Alert episodes (with [`EPISODE_TABLE_NAME`]): the SNS topic of notifications for people.
    pub const ON_CALL_TOPIC_ARN: &str = "ON_CALL_TOPIC_ARN";
    pub const ALERT_REPEAT_MINUTES: &str = "ALERT_REPEAT_MINUTES";
    pub const ALERT_CLEAR_MARGIN_C: &str = "ALERT_CLEAR_MARGIN_C";
    pub const ALERT_CLEAR_MINUTES: &str = "ALERT_CLEAR_MINUTES";
    pub const SILENCE_MINUTES: &str = "SILENCE_MINUTES";
}

/// The propagator name that parents the invocation on the Lambda's X-Ray segment.
pub const XRAY_LAMBDA_PROPAGATOR: &str = "xray-lambda";

/// Resource names shared with `template.yaml`'s defaults and the local stack.
pub mod defaults {
    pub const STREAM_NAME: &str = "indications-stream";
    pub const TABLE_NAME: &str = "indications-table";
    pub const ALERT_TOPIC_NAME: &str = "reactor-notifications";
    pub const DEAD_LETTER_BUCKET: &str = "reactor-monitor-dead-letters";
    pub const ON_FAILURE_QUEUE_NAME: &str = "reactor-monitor-exhausted-batches";
    /// The local queue subscribed to the alert topic (one message per hot reading).
    pub const ALERTS_QUEUE_NAME: &str = "reactor-monitor-alerts";
    /// The table of per-reactor alert-episode state.
    pub const EPISODE_TABLE_NAME: &str = "reactor-episodes";
    /// The topic of episode notifications for people.
    pub const ON_CALL_TOPIC_NAME: &str = "reactor-on-call";
    /// The local queue subscribed to the on-call topic (one message per episode transition).
    pub const ON_CALL_QUEUE_NAME: &str = "reactor-monitor-on-call";
    /// Concurrent AWS requests per invocation: bounds connections and memory.
    pub const MAX_IN_FLIGHT_REQUESTS: usize = 16;
    /// Time kept in reserve before the invocation deadline: no new request starts after it.
    pub const DEADLINE_MARGIN_MS: u64 = 1_500;
}

/// Why the function cannot start: fix the named variable and deploy again.
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

/// Everything the function reads at cold start, once: resources, thresholds, limits and the
/// telemetry plan. Built from the environment ([`Config::from_env`]) on Lambda, and with
/// [`Config::new`] by the local tools and tests.
#[derive(Debug, Clone)]
pub struct Config {
    pub table_name: String,
    pub alert_topic_arn: String,
    pub dead_letter_bucket: String,
    pub thresholds: Thresholds,
    pub max_in_flight_requests: usize,
    pub deadline_margin: Duration,
    /// The stream's name for the record spans; empty when unknown.
    pub stream_name: String,
    /// Which records are traced, and how many record subtrees one trace holds.
    pub trace_plan: TracePlan,
    /// Whether the invocation span joins the Lambda's X-Ray trace (`OTEL_PROPAGATORS`
    /// names `xray-lambda`) or is a root.
    pub join_xray_trace: bool,
    /// Alert episodes for people; `None` when neither the episode table nor the on-call topic
    /// is configured.
    pub episodes: Option<EpisodeConfig>,
}

/// Where alert episodes live and how they behave.
#[derive(Debug, Clone)]
pub struct EpisodeConfig {
    pub table_name: String,
    pub on_call_topic_arn: String,
    pub policy: EpisodePolicy,
}

impl EpisodeConfig {
    fn from_lookup(lookup: &impl Fn(&str) -> Option<String>) -> Result<Option<Self>, ConfigError> {
        let value = |name| lookup(name).filter(|v: &String| !v.trim().is_empty());
        let (table_name, on_call_topic_arn) = match (
            value(env::EPISODE_TABLE_NAME),
            value(env::ON_CALL_TOPIC_ARN),
        ) {
            (None, None) => return Ok(None),
            (Some(table), Some(topic)) => (table, topic),
            (None, Some(_)) => {
                return Err(ConfigError::Missing {
                    name: env::EPISODE_TABLE_NAME,
                    hint: "the episode state table, needed with ON_CALL_TOPIC_ARN",
                });
            }
            (Some(_), None) => {
                return Err(ConfigError::Missing {
                    name: env::ON_CALL_TOPIC_ARN,
                    hint: "the on-call topic, needed with EPISODE_TABLE_NAME",
                });
            }
        };
        let number = |name: &'static str, default: f64, expected: &'static str| match value(name) {
            None => Ok(default),
            Some(v) => match v.trim().parse::<f64>() {
                Ok(n) if n.is_finite() && n >= 0.0 => Ok(n),
                _ => Err(ConfigError::Invalid {
                    name,
                    value: v,
                    expected,
                }),
            },
        };
        let minutes = |name, default: i64| -> Result<chrono::TimeDelta, ConfigError> {
            let m = number(name, default as f64, "a number of minutes, 0 or more")?;
            Ok(chrono::TimeDelta::milliseconds(
                (m * 60_000.0).round() as i64
            ))
        };
        Ok(Some(Self {
            table_name,
            on_call_topic_arn,
            policy: EpisodePolicy {
                repeat_after: minutes(
                    env::ALERT_REPEAT_MINUTES,
                    EpisodePolicy::DEFAULT_REPEAT_MINUTES,
                )?,
                clear_margin_c: number(
                    env::ALERT_CLEAR_MARGIN_C,
                    EpisodePolicy::DEFAULT_CLEAR_MARGIN_C,
                    "a temperature difference in °C, 0 or more",
                )?,
                clear_after: minutes(
                    env::ALERT_CLEAR_MINUTES,
                    EpisodePolicy::DEFAULT_CLEAR_MINUTES,
                )?,
                silent_after: minutes(
                    env::SILENCE_MINUTES,
                    EpisodePolicy::DEFAULT_SILENCE_MINUTES,
                )?,
            },
        }))
    }
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
            stream_name: String::new(),
            trace_plan: TracePlan::default(),
            join_xray_trace: false,
            episodes: None,
        }
    }

    /// Reads the process environment.
    ///
    /// # Errors
    /// [`ConfigError`] naming the first variable that is missing or malformed.
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
            stream_name: lookup(env::STREAM_NAME).unwrap_or_default(),
            trace_plan: TracePlan::from_lookup(&lookup)?,
            join_xray_trace: lookup(env::OTEL_PROPAGATORS)
                .is_some_and(|list| list.split(',').any(|p| p.trim() == XRAY_LAMBDA_PROPAGATOR)),
            episodes: EpisodeConfig::from_lookup(&lookup)?,
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
    fn the_invocation_joins_the_xray_trace_only_with_the_xray_lambda_propagator() {
        let with = |propagators: &str| {
            let mut pairs = REQUIRED.to_vec();
            pairs.push((env::OTEL_PROPAGATORS, propagators));
            Config::from_lookup(lookup(&pairs)).unwrap().join_xray_trace
        };
        assert!(with("tracecontext, xray-lambda"));
        assert!(with("xray-lambda"));
        assert!(!with("tracecontext,baggage"));
        assert!(!with("xray"));
        assert!(
            !Config::from_lookup(lookup(&REQUIRED))
                .unwrap()
                .join_xray_trace
        );
    }

    #[test]
    fn a_malformed_trace_plan_fails_at_start_like_any_other_variable() {
        let mut pairs = REQUIRED.to_vec();
        pairs.push(("MAX_RECORD_SPANS_PER_TRACE", "0"));
        let err = Config::from_lookup(lookup(&pairs)).unwrap_err().to_string();
        assert!(err.contains("MAX_RECORD_SPANS_PER_TRACE=\"0\""), "{err}");
    }

    #[test]
    fn a_threshold_that_is_not_a_number_is_named_in_the_error() {
        let mut pairs = REQUIRED.to_vec();
        pairs.push((env::EMERGENCY_THRESHOLD_C, "hot"));
        let err = Config::from_lookup(lookup(&pairs)).unwrap_err().to_string();
        assert!(err.contains("EMERGENCY_THRESHOLD_C=\"hot\""), "{err}");
    }
}
