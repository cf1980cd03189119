//! The live view: the unique flows, the last alerts and rejections, and the iterator age per
//! shard, redrawn in place on a terminal or printed as log lines when piped.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::Write as _;
use std::sync::atomic::Ordering;

use chrono::{DateTime, Utc};

use crate::esm::{MappingProgress, ShardProgress};
use crate::otlp::{ReceivedSpan, unique_flows};
use crate::report::{self, Notable};

/// Alerts and rejections the live view shows.
const LIVE_RECENT: usize = 5;
/// Record lines one refresh prints when stdout is not a terminal; the rest are counted.
const LOG_LINES_PER_REFRESH: usize = 20;

/// The live view: a frame redrawn in place on a terminal, log lines otherwise.
pub(super) struct LiveView {
    terminal: bool,
    /// Lines of the frame on screen, to move back over.
    drawn: usize,
    /// Spans already logged, counted since the start.
    logged: usize,
}

impl LiveView {
    pub(super) fn new(terminal: bool) -> Self {
        Self {
            terminal,
            drawn: 0,
            logged: 0,
        }
    }

    /// Text below the frame; the next frame starts under it.
    pub(super) fn note(&mut self, text: &str) {
        println!("{}", text.trim_end());
        self.drawn = 0;
    }

    pub(super) fn refresh(
        &mut self,
        spans: &[ReceivedSpan],
        total: usize,
        shards: &BTreeMap<String, ShardProgress>,
        progress: &MappingProgress,
        episodes: &[String],
    ) {
        if self.terminal {
            self.redraw(&frame(spans, shards, progress, episodes));
        } else {
            self.log(spans, total, shards, progress);
        }
    }

    /// Episode news (open episodes changed, a silence check ran): log lines when piped; on a
    /// terminal the frame shows them.
    pub(super) fn episode_event(&mut self, lines: &[String]) {
        if !self.terminal {
            for line in lines {
                println!("{line}");
            }
        }
    }

    fn redraw(&mut self, lines: &[String]) {
        let mut out = String::new();
        if self.drawn > 0 {
            let _ = write!(out, "\x1b[{}A", self.drawn);
        }
        for line in lines {
            let _ = write!(out, "\r{line}\x1b[K\n");
        }
        out.push_str("\x1b[J");
        let mut stdout = std::io::stdout().lock();
        let _ = stdout.write_all(out.as_bytes());
        let _ = stdout.flush();
        self.drawn = lines.len();
    }

    fn log(
        &mut self,
        spans: &[ReceivedSpan],
        total: usize,
        shards: &BTreeMap<String, ShardProgress>,
        progress: &MappingProgress,
    ) {
        let new = total.saturating_sub(self.logged).min(spans.len());
        let fresh = &spans[spans.len() - new..];
        self.logged = total;
        let records: Vec<&ReceivedSpan> = fresh.iter().filter(|s| s.is_record()).collect();
        if records.is_empty() {
            return;
        }
        for span in records.iter().take(LOG_LINES_PER_REFRESH) {
            println!("{}", record_line(&Notable::of(span)));
        }
        if records.len() > LOG_LINES_PER_REFRESH {
            println!(
                "…         and {} more records",
                records.len() - LOG_LINES_PER_REFRESH
            );
        }
        println!("{}", totals_line(spans, shards, progress));
    }

    /// The last word: the final frame, or the totals, and the unique flows.
    pub(super) fn finish(
        &mut self,
        spans: &[ReceivedSpan],
        total: usize,
        shards: &BTreeMap<String, ShardProgress>,
        progress: &MappingProgress,
        episodes: &[String],
    ) {
        if self.terminal {
            self.drawn = 0;
            self.redraw(&frame(spans, shards, progress, episodes));
        } else {
            self.log(spans, total, shards, progress);
            print!("{}", report::flows_table(&unique_flows(spans)));
        }
    }
}

fn clock(unix_ms: i64) -> String {
    DateTime::<Utc>::from_timestamp_millis(unix_ms)
        .map(|t| t.format("%H:%M:%S%.3f").to_string())
        .unwrap_or_default()
}

fn record_line(record: &Notable) -> String {
    let place = format!("{}/{}", record.shard_id, record.sequence_number);
    let at = clock(record.at_unix_ms);
    if record.failed {
        return format!(
            "failed    {at}  {:<11} {place}  reported for retry",
            record.flow_type
        );
    }
    if let Some(reason) = &record.reject_reason {
        return format!(
            "rejected  {at}  {reason:<26} {:>7} bytes  {place}",
            record.payload_bytes.unwrap_or(0)
        );
    }
    let reading = format!(
        "{:<12} {:>8} °C",
        record.reactor.as_deref().unwrap_or_default(),
        record.temperature_c.unwrap_or(f64::NAN)
    );
    match &record.severity {
        Some(severity) => format!("alert     {at}  {severity:<10} {reading}  {place}"),
        None => format!("stored    {at}  {:<10} {reading}  {place}", ""),
    }
}

fn totals_line(
    spans: &[ReceivedSpan],
    shards: &BTreeMap<String, ShardProgress>,
    progress: &MappingProgress,
) -> String {
    let flows: Vec<String> = unique_flows(spans)
        .iter()
        .map(|row| format!("{} {}", row.flow_type, row.count))
        .collect();
    let ages: Vec<String> = shards
        .iter()
        .map(|(shard, watch)| format!("{shard} {}", age_text(watch)))
        .collect();
    format!(
        "flows     {} | invocations {} | iterator age {}",
        flows.join(" · "),
        progress.invocations.load(Ordering::Relaxed),
        ages.join(", ")
    )
}

fn age_text(watch: &ShardProgress) -> String {
    watch
        .iterator_age_ms
        .map_or_else(|| "-".to_string(), |ms| format!("{ms} ms"))
}

fn frame(
    spans: &[ReceivedSpan],
    shards: &BTreeMap<String, ShardProgress>,
    progress: &MappingProgress,
    episodes: &[String],
) -> Vec<String> {
    let records = spans.iter().filter(|s| s.is_record()).count();
    let mut lines = vec![
        format!(
            "── live {} UTC · {records} record spans · {} invocations · {} spans · Ctrl-C stops",
            Utc::now().format("%H:%M:%S"),
            progress.invocations.load(Ordering::Relaxed),
            spans.len()
        ),
        String::new(),
    ];
    lines.extend(
        report::flows_table(&unique_flows(spans))
            .lines()
            .map(str::to_string),
    );
    for (title, recent) in [
        ("last alerts", report::latest_alerts(spans, LIVE_RECENT)),
        (
            "last rejections",
            report::latest_rejections(spans, LIVE_RECENT),
        ),
    ] {
        lines.push(String::new());
        lines.push(title.to_string());
        if recent.is_empty() {
            lines.push("  none yet".to_string());
        }
        lines.extend(recent.iter().map(|n| format!("  {}", record_line(n))));
    }
    lines.push(String::new());
    lines.push("iterator age per shard (age of the last record delivered)".to_string());
    for (shard, watch) in shards {
        let last = watch
            .delivered_at
            .map(|t| format!(", last at {}", t.format("%H:%M:%S")))
            .unwrap_or_default();
        lines.push(format!(
            "  {shard}  {:>8}  ({} records in {} batches{last})",
            age_text(watch),
            watch.records,
            watch.batches
        ));
    }
    if !episodes.is_empty() {
        lines.push(String::new());
        lines.extend(episodes.iter().cloned());
    }
    lines
}
