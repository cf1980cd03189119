//! What happened in a run, from the handler's reports: the final fate of every record and
//! the per-flow view (count, errors, average, p50, p99 duration).

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use serde::Serialize;

use crate::domain::{FlowType, Severity};
use crate::pipeline::{BatchReport, Outcome};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fate {
    Stored,
    Alerted(Severity),
    DeadLettered,
    Failed,
}

/// Everything the handler reported during a run.
#[derive(Debug, Default)]
pub struct RunSummary {
    /// Latest fate per (shard, sequence number).
    pub fates: HashMap<(String, String), (FlowType, Fate)>,
    durations: BTreeMap<FlowType, Vec<Duration>>,
    errors: BTreeMap<FlowType, usize>,
    pub requests: BTreeMap<&'static str, usize>,
    pub invocation_latencies: Vec<Duration>,
}

/// One row of the unique-flows table.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct FlowRow {
    pub flow_type: FlowType,
    pub count: usize,
    pub errors: usize,
    pub avg_ms: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
}

impl RunSummary {
    pub fn record_batch(&mut self, report: &BatchReport, latency: Duration) {
        self.invocation_latencies.push(latency);
        for (op, n) in &report.requests {
            *self.requests.entry(op).or_default() += n;
        }
        for record in &report.records {
            let fate = match &record.outcome {
                Outcome::Stored => Fate::Stored,
                Outcome::StoredAndAlerted { severity, .. } => Fate::Alerted(*severity),
                Outcome::DeadLettered(_) => Fate::DeadLettered,
                Outcome::Failed(_) => Fate::Failed,
            };
            if fate == Fate::Failed {
                *self.errors.entry(record.flow).or_default() += 1;
            }
            self.durations
                .entry(record.flow)
                .or_default()
                .push(Duration::from_secs_f64(
                    crate::telemetry::emf::record_duration_ms(record) / 1e3,
                ));
            let key = (
                record.origin.shard_id.clone(),
                record.origin.sequence_number.to_string(),
            );
            self.fates.insert(key, (record.flow, fate));
        }
    }

    pub fn count(&self, wanted: impl Fn(Fate) -> bool) -> usize {
        self.fates
            .values()
            .filter(|(_, fate)| wanted(*fate))
            .count()
    }

    pub fn flows(&self) -> Vec<FlowRow> {
        FlowType::ALL
            .iter()
            .map(|&flow| {
                let mut d: Vec<f64> = self
                    .durations
                    .get(&flow)
                    .map(|v| v.iter().map(|d| d.as_secs_f64() * 1e3).collect())
                    .unwrap_or_default();
                d.sort_by(f64::total_cmp);
                FlowRow {
                    flow_type: flow,
                    count: d.len(),
                    errors: self.errors.get(&flow).copied().unwrap_or(0),
                    avg_ms: if d.is_empty() {
                        0.0
                    } else {
                        d.iter().sum::<f64>() / d.len() as f64
                    },
                    p50_ms: percentile(&d, 0.50),
                    p99_ms: percentile(&d, 0.99),
                }
            })
            .collect()
    }

    /// The per-flow table as on-screen text.
    pub fn flows_table(&self) -> String {
        let mut out = format!(
            "{:<12} {:>8} {:>7} {:>9} {:>9} {:>9}\n",
            "flow_type", "count", "errors", "avg ms", "p50 ms", "p99 ms"
        );
        for row in self.flows() {
            out.push_str(&format!(
                "{:<12} {:>8} {:>7} {:>9.2} {:>9.2} {:>9.2}\n",
                row.flow_type.as_str(),
                row.count,
                row.errors,
                row.avg_ms,
                row.p50_ms,
                row.p99_ms
            ));
        }
        out
    }
}

/// Nearest-rank percentile of sorted values.
pub fn percentile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

#[cfg(test)]
mod tests {
    use super::percentile;

    #[test]
    fn nearest_rank_percentiles() {
        let v: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(percentile(&v, 0.5), 50.0);
        assert_eq!(percentile(&v, 0.99), 99.0);
        assert_eq!(percentile(&[3.0], 0.99), 3.0);
        assert_eq!(percentile(&[], 0.5), 0.0);
    }
}
