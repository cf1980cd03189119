//! CloudWatch embedded metric format (EMF): metrics as JSON lines on stdout. Exact (one
//! value per record, whatever the trace sampling), no API call, no collector in the way.

use crate::operation::AwsOperation;
use std::collections::BTreeMap;

use serde_json::{Map, Value, json};

use super::names::metrics as m;
use crate::domain::episode::EpisodeAction;
use crate::domain::{FlowType, Severity};
use crate::pipeline::{BatchReport, CallTiming, Outcome, RecordReport};
use crate::ports::FailureKind;
use crate::sinks::cloudwatch;

/// EMF accepts at most 100 values in one metric's array.
pub const MAX_VALUES_PER_METRIC: usize = 100;

/// One EMF document: a dimension set with its values, and metrics with units. Dimension
/// values and metric values come through `sinks::cloudwatch`, so CloudWatch drops none.
fn document(
    timestamp_ms: i64,
    dimensions: &[(&str, &str)],
    metrics: &[(&str, &str, Value)],
) -> String {
    let mut root = Map::new();
    root.insert(
        "_aws".into(),
        json!({
            "Timestamp": timestamp_ms,
            "CloudWatchMetrics": [{
                "Namespace": m::NAMESPACE,
                "Dimensions": [dimensions.iter().map(|(k, _)| *k).collect::<Vec<_>>()],
                "Metrics": metrics.iter().map(|(name, unit, _)| json!({"Name": name, "Unit": unit})).collect::<Vec<_>>(),
            }]
        }),
    );
    for (key, value) in dimensions {
        root.insert((*key).into(), Value::String((*value).into()));
    }
    for (name, _, value) in metrics {
        root.insert((*name).into(), value.clone());
    }
    Value::Object(root).to_string()
}

/// The milliseconds a record took: its decode and the span of the calls that carried it.
pub fn record_duration_ms(record: &RecordReport) -> f64 {
    let first = record.calls.iter().map(|c: &CallTiming| c.started).min();
    let last = record.calls.iter().map(|c| c.finished).max();
    let io = match (first, last) {
        (Some(a), Some(b)) => b.saturating_duration_since(a),
        _ => std::time::Duration::ZERO,
    };
    (record.decoded_in + io).as_secs_f64() * 1e3
}

/// The EMF lines of one silence check: open episodes per severity (0 for none, so the
/// dashboard's line drops back) and the `silent` pages it sent.
pub fn silence_lines(report: &crate::silence::SilenceReport, timestamp_ms: i64) -> Vec<String> {
    let mut lines: Vec<String> = ["warning", "emergency", "silent"]
        .into_iter()
        .map(|severity| {
            let open = report.open.get(severity).copied().unwrap_or(0);
            document(
                timestamp_ms,
                &[(m::DIM_SEVERITY, severity)],
                &[(m::OPEN_EPISODES, "Count", json!(open))],
            )
        })
        .collect();
    lines.push(document(
        timestamp_ms,
        &[(m::DIM_EPISODE_ACTION, EpisodeAction::Silent.as_str())],
        &[(m::EPISODE_ACTIONS, "Count", json!(report.notified.len()))],
    ));
    lines
}

/// The EMF lines of one batch.
pub fn batch_lines(report: &BatchReport, cold_start: bool, timestamp_ms: i64) -> Vec<String> {
    let mut lines = Vec::new();
    let mut per_flow: BTreeMap<FlowType, (usize, usize, Vec<f64>)> = BTreeMap::new();
    let mut alerts: BTreeMap<Severity, usize> = BTreeMap::new();
    let mut hottest: BTreeMap<&str, f64> = BTreeMap::new();
    let mut episodes: BTreeMap<EpisodeAction, usize> = BTreeMap::new();
    let (mut readings, mut dead_lettered, mut retried, mut publish_failures) = (0, 0, 0, 0);
    let mut on_call_failures = 0;

    for record in &report.records {
        let entry = per_flow.entry(record.flow).or_default();
        entry.0 += 1;
        entry.2.push(cloudwatch::metric_value(
            (record_duration_ms(record) * 1e3).round() / 1e3,
        ));
        if let Some(action) = record.episode {
            *episodes.entry(action).or_default() += 1;
        }
        if let Some(reading) = &record.reading {
            readings += 1;
            let max = hottest.entry(reading.reactor.as_str()).or_insert(f64::MIN);
            *max = max.max(reading.temp_c);
        }
        match &record.outcome {
            Outcome::StoredAndAlerted {
                severity,
                published_now: true,
            } => *alerts.entry(*severity).or_default() += 1,
            Outcome::DeadLettered(_) => dead_lettered += 1,
            Outcome::Failed(error) => {
                entry.1 += 1;
                retried += 1;
                if error.kind != FailureKind::NotStarted {
                    match error.operation {
                        AwsOperation::SnsPublishBatch => publish_failures += 1,
                        AwsOperation::SnsOnCallPublishBatch => on_call_failures += 1,
                        _ => {}
                    }
                }
            }
            _ => {}
        }
    }

    lines.push(document(
        timestamp_ms,
        &[],
        &[
            (m::READINGS, "Count", json!(readings)),
            (m::DEAD_LETTERED, "Count", json!(dead_lettered)),
            (m::RETRIED_RECORDS, "Count", json!(retried)),
            (m::ALERT_PUBLISH_FAILURES, "Count", json!(publish_failures)),
            (
                m::ON_CALL_PUBLISH_FAILURES,
                "Count",
                json!(on_call_failures),
            ),
            (m::BATCH_SIZE, "Count", json!(report.records.len())),
            (m::COLD_START, "Count", json!(u8::from(cold_start))),
        ],
    ));
    for (flow, (count, errors, durations)) in &per_flow {
        let dims = [(m::DIM_FLOW_TYPE, flow.as_str())];
        for (i, chunk) in durations.chunks(MAX_VALUES_PER_METRIC).enumerate() {
            let mut metrics = vec![(m::RECORD_DURATION, "Milliseconds", json!(chunk))];
            if i == 0 {
                metrics.push((m::RECORDS, "Count", json!(count)));
                metrics.push((m::RECORD_ERRORS, "Count", json!(errors)));
            }
            lines.push(document(timestamp_ms, &dims, &metrics));
        }
    }
    for (severity, count) in alerts {
        lines.push(document(
            timestamp_ms,
            &[(m::DIM_SEVERITY, severity.as_str())],
            &[(m::ALERTS, "Count", json!(count))],
        ));
    }
    for (action, count) in episodes {
        lines.push(document(
            timestamp_ms,
            &[(m::DIM_EPISODE_ACTION, action.as_str())],
            &[(m::EPISODE_ACTIONS, "Count", json!(count))],
        ));
    }
    for (reactor, max) in hottest {
        lines.push(document(
            timestamp_ms,
            &[(m::DIM_REACTOR, &cloudwatch::dimension_value(reactor))],
            &[(
                m::MAX_TEMPERATURE,
                "None",
                json!(cloudwatch::metric_value(max)),
            )],
        ));
    }
    lines
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_document_names_its_namespace_dimensions_and_metrics() {
        let line = document(
            1,
            &[(m::DIM_FLOW_TYPE, "store-only")],
            &[(m::RECORDS, "Count", json!(3))],
        );
        let v: Value = serde_json::from_str(&line).unwrap();
        assert_eq!(v["_aws"]["CloudWatchMetrics"][0]["Namespace"], m::NAMESPACE);
        assert_eq!(
            v["_aws"]["CloudWatchMetrics"][0]["Dimensions"],
            json!([["FlowType"]])
        );
        assert_eq!(v["FlowType"], "store-only");
        assert_eq!(v["Records"], 3);
    }
}
