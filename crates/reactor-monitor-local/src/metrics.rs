//! The function's CloudWatch embedded metric format (EMF) lines read back as CloudWatch would:
//! each line checked against the format's rules, then summed, so that a local run holds the
//! metrics on-call sees equal to what it read back from the emulator.

use std::collections::BTreeMap;

use anyhow::{Context, bail, ensure};
use serde::Serialize;
use serde_json::Value;

use reactor_monitor::telemetry::names::metrics as m;

/// Sums of the count metrics over a run's EMF lines.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct EmfTotals {
    /// EMF documents read.
    pub lines: usize,
    /// `Records` per `FlowType` dimension value.
    pub records: BTreeMap<String, u64>,
    /// `RecordErrors` per `FlowType`.
    pub record_errors: BTreeMap<String, u64>,
    /// `Alerts` per `Severity`.
    pub alerts: BTreeMap<String, u64>,
    /// `EpisodeActions` per `EpisodeAction`: every delivery of every reading by what it did
    /// to its reactor's episode (`suppressed` included), and the silence check's `silent` pages.
    pub episode_actions: BTreeMap<String, u64>,
    pub readings: u64,
    pub dead_lettered: u64,
    pub retried_records: u64,
}

impl EmfTotals {
    /// Parses and sums `lines`.
    ///
    /// # Errors
    /// A line that is not an EMF document CloudWatch would extract: not a JSON object, no
    /// `_aws.Timestamp` or `CloudWatchMetrics`, a dimension or metric named but absent from
    /// the document, or a count that is not a whole number.
    pub fn from_lines(lines: &[String]) -> anyhow::Result<Self> {
        let mut totals = Self::default();
        for (i, line) in lines.iter().enumerate() {
            let doc: Value =
                serde_json::from_str(line).with_context(|| format!("EMF line {i} is not JSON"))?;
            check_document(&doc).with_context(|| format!("EMF line {i}: {line}"))?;
            totals
                .add(&doc)
                .with_context(|| format!("EMF line {i}: {line}"))?;
        }
        totals.lines = lines.len();
        Ok(totals)
    }

    /// Records of every flow type: each record of each invocation, retries included.
    pub fn records_total(&self) -> u64 {
        self.records.values().sum()
    }

    fn add(&mut self, doc: &Value) -> anyhow::Result<()> {
        let count = |name: &str| -> anyhow::Result<Option<u64>> {
            match doc.get(name) {
                None => Ok(None),
                Some(v) => v
                    .as_u64()
                    .map(Some)
                    .with_context(|| format!("{name} is not a whole count")),
            }
        };
        let dimension = |name: &str| doc.get(name).and_then(Value::as_str).map(str::to_string);
        if let Some(flow) = dimension(m::DIM_FLOW_TYPE) {
            *self.records.entry(flow.clone()).or_default() += count(m::RECORDS)?.unwrap_or(0);
            *self.record_errors.entry(flow).or_default() += count(m::RECORD_ERRORS)?.unwrap_or(0);
        }
        // `Severity` also dimensions the silence check's `OpenEpisodes`: alerts only here.
        if let (Some(severity), Some(alerts)) = (dimension(m::DIM_SEVERITY), count(m::ALERTS)?) {
            *self.alerts.entry(severity).or_default() += alerts;
        }
        if let Some(action) = dimension(m::DIM_EPISODE_ACTION) {
            *self.episode_actions.entry(action).or_default() +=
                count(m::EPISODE_ACTIONS)?.unwrap_or(0);
        }
        self.readings += count(m::READINGS)?.unwrap_or(0);
        self.dead_lettered += count(m::DEAD_LETTERED)?.unwrap_or(0);
        self.retried_records += count(m::RETRIED_RECORDS)?.unwrap_or(0);
        Ok(())
    }
}

/// The structure CloudWatch requires of an EMF document (the embedded metric format
/// specification: `_aws` with an integer `Timestamp` and `CloudWatchMetrics` directives, each
/// naming a `Namespace`, `Dimensions` as arrays of member names, and `Metrics` whose `Name`s
/// are members; at most 30 dimensions a set, 100 metrics a directive).
fn check_document(doc: &Value) -> anyhow::Result<()> {
    let aws = doc.get("_aws").context("no _aws metadata")?;
    ensure!(
        aws["Timestamp"].is_i64(),
        "_aws.Timestamp is not an integer"
    );
    let directives = aws["CloudWatchMetrics"]
        .as_array()
        .context("_aws.CloudWatchMetrics is not an array")?;
    for directive in directives {
        ensure!(
            directive["Namespace"].as_str() == Some(m::NAMESPACE),
            "namespace is not {}",
            m::NAMESPACE
        );
        for set in directive["Dimensions"]
            .as_array()
            .context("no Dimensions")?
        {
            let set = set.as_array().context("a dimension set is not an array")?;
            ensure!(set.len() <= 30, "more than 30 dimensions in a set");
            for name in set {
                let name = name.as_str().context("a dimension name is not a string")?;
                match doc.get(name) {
                    Some(Value::String(_)) => {}
                    _ => bail!("dimension {name} has no string member"),
                }
            }
        }
        let metrics = directive["Metrics"].as_array().context("no Metrics")?;
        ensure!(metrics.len() <= 100, "more than 100 metrics in a directive");
        for metric in metrics {
            let name = metric["Name"].as_str().context("a metric without a Name")?;
            ensure!(doc.get(name).is_some(), "metric {name} has no member");
        }
    }
    Ok(())
}
