//! What happened in a run, from the handler's reports: the final fate of every record and
//! the per-flow view (count, errors, average, p50, p99 duration).

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use serde::Serialize;

use reactor_monitor::domain::{FlowType, Severity};
use reactor_monitor::pipeline::{BatchReport, Outcome};

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
    /// Latest fate per reading: (shard, sequence number with the subsequence of a user record
    /// of a KPL aggregate), so the readings of one aggregate are counted each.
    pub fates: HashMap<(String, String), (FlowType, Fate)>,
    durations: BTreeMap<FlowType, Vec<Duration>>,
    errors: BTreeMap<FlowType, usize>,
    pub requests: BTreeMap<&'static str, usize>,
    pub invocation_latencies: Vec<Duration>,
    /// The episode actions of every delivery of every record: the on-call read-back's
    /// reference.
    pub on_call: crate::on_call::Reported,
    /// Every valid reading, keyed like `fates`: reactor, date (UTC), °C; the report's
    /// temperature chart in reading time.
    pub readings: HashMap<(String, String), (String, chrono::DateTime<chrono::Utc>, f64)>,
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
        self.on_call.record_batch(report);
        for (op, n) in &report.requests {
            *self.requests.entry(op.name()).or_default() += n;
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
                    reactor_monitor::telemetry::emf::record_duration_ms(record) / 1e3,
                ));
            let key = (
                record.origin.shard_id.clone(),
                record.origin.sequence_number.to_string(),
            );
            if let Some(reading) = &record.reading {
                let point = (
                    reading.reactor.clone(),
                    reading.date.to_utc(),
                    reading.temp_c,
                );
                self.readings.insert(key.clone(), point);
            }
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
                let (avg_ms, p50_ms, p99_ms) = avg_p50_p99(&mut d);
                FlowRow {
                    flow_type: flow,
                    count: d.len(),
                    errors: self.errors.get(&flow).copied().unwrap_or(0),
                    avg_ms,
                    p50_ms,
                    p99_ms,
                }
            })
            .collect()
    }
}

/// Average, p50 and p99 of durations in milliseconds (sorts them in place); zeros when empty.
pub fn avg_p50_p99(ms: &mut [f64]) -> (f64, f64, f64) {
    if ms.is_empty() {
        return (0.0, 0.0, 0.0);
    }
    ms.sort_by(f64::total_cmp);
    let avg = ms.iter().sum::<f64>() / ms.len() as f64;
    (avg, percentile(ms, 0.50), percentile(ms, 0.99))
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
