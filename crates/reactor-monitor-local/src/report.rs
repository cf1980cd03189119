//! A picture of the flows, drawn from the spans received over OTLP: the flow map (records per
//! edge, like a service map), the unique-flows table, one example trace per flow, the
//! temperature per reactor over time (with a local run's on-call pages marked on it), and the
//! latest alerts and rejections.
//!
//! [`FlowReport`] is the data (`local --json` carries it as `flow_report`, so `reactor-monitor
//! report` can draw a run later); [`FlowReport::to_html`] renders one self-contained page.

mod html;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt::Write as _;
use std::path::Path;

use anyhow::Context;
use chrono::{DateTime, TimeDelta, Utc};
use opentelemetry_semantic_conventions::attribute as semconv;
use reactor_monitor::domain::episode::EpisodeAction;
use serde::{Deserialize, Serialize};

use crate::otlp::{ReceivedSpan, TraceFlowRow, unique_flows};
use reactor_monitor::domain::Thresholds;
use reactor_monitor::telemetry::names::{SERVICE_NAME, spans as names};

pub use html::Headline;
pub(crate) use html::thousands;

/// Alerts and rejections a report keeps.
pub const RECENT: usize = 10;
/// Points per reactor in the temperature chart: the hottest reading of each time slice, as
/// the `MaxTemperature` metric would show it.
const MAX_POINTS_PER_REACTOR: usize = 240;

/// Everything the report draws, computed once from the received spans.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct FlowReport {
    pub warning_c: f64,
    pub emergency_c: f64,
    pub spans: usize,
    pub invocations: usize,
    pub flows: Vec<FlowStats>,
    pub nodes: Vec<Node>,
    pub edges: Vec<Edge>,
    pub examples: Vec<ExampleTrace>,
    pub reactors: Vec<ReactorSeries>,
    /// The clock of the temperature chart's time axis.
    #[serde(default)]
    pub time_axis: TimeAxis,
    /// Newest first.
    pub alerts: Vec<Notable>,
    /// Newest first.
    pub rejections: Vec<Notable>,
    /// On-call pages to mark on the temperature chart, in reading time: from a local run's
    /// on-call read-back (none for `up`, or a run saved before episodes).
    #[serde(default)]
    pub episodes: Vec<EpisodeMark>,
}

/// The clock of the temperature chart.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TimeAxis {
    /// When each record was processed (its record span's start): all `up` knows.
    #[default]
    Processing,
    /// Each reading's own `date`, the clock of alert episodes: a local run knows every
    /// reading's ([`FlowReport::in_reading_time`]).
    Reading,
}

/// One on-call page (an episode's transition) on its reactor's temperature chart.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EpisodeMark {
    pub reactor: String,
    /// `opened`, `escalated`, `repeated`, `resolved` or `silent`.
    pub action: String,
    /// The episode's severity when the page went out.
    pub severity: String,
    pub episode_id: String,
    /// The date of the reading the page names as last (for `silent`: the last one written),
    /// RFC 3339 UTC.
    pub reading_at: String,
    /// When the transition happened on the readings' clock (unix ms): the reading's date; for
    /// `silent`, `SILENCE_MINUTES` after it, when the reactor counts as silent.
    pub at_unix_ms: i64,
}

/// One row of the unique-flows table: record spans of one flow type.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FlowStats {
    pub flow_type: String,
    pub records: usize,
    pub errors: usize,
    pub avg_ms: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub traces: usize,
}

/// A box of the flow map.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum NodeId {
    Stream,
    Function,
    Table,
    Topic,
    DeadLetters,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Node {
    pub id: NodeId,
    pub service: String,
    /// The resource's name, as the spans tell it.
    pub name: String,
}

/// Distinct records that went along an edge, and the failed spans on it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Edge {
    pub from: NodeId,
    pub to: NodeId,
    pub records: usize,
    pub errors: usize,
}

/// A typical record of a flow (the median duration), inside its invocation trace.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExampleTrace {
    pub flow_type: String,
    pub trace_id: String,
    /// Record spans in the same trace: the invocation's batch, up to the trace plan's limit.
    pub records_in_trace: usize,
    /// The invocation, the record, then the record's children, in start order.
    pub spans: Vec<ExampleSpan>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExampleSpan {
    pub name: String,
    pub depth: usize,
    pub offset_ms: f64,
    pub duration_ms: f64,
    pub error: bool,
    pub attributes: BTreeMap<String, String>,
}

/// Temperatures of one reactor: `(unix ms, °C)`, the hottest of each time slice.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReactorSeries {
    pub reactor: String,
    pub readings: usize,
    pub max_c: f64,
    pub points: Vec<(i64, f64)>,
}

/// One alert or rejection, from its record span.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Notable {
    pub at_unix_ms: i64,
    pub flow_type: String,
    pub shard_id: String,
    pub sequence_number: String,
    pub reactor: Option<String>,
    pub temperature_c: Option<f64>,
    pub severity: Option<String>,
    pub reject_reason: Option<String>,
    pub payload_bytes: Option<u64>,
    /// The delivery failed and was reported for retry.
    pub failed: bool,
    /// The trace of the record.
    #[serde(default)]
    pub trace_id: String,
    /// For an alert, the `traceparent` it was published with (its publish span's context):
    /// what the on-call message carries, leading back to this reading.
    #[serde(default)]
    pub traceparent: Option<String>,
}

impl Notable {
    pub fn of(span: &ReceivedSpan) -> Self {
        let text = |key| span.attr(key).map(str::to_string);
        Self {
            at_unix_ms: unix_ms(span.start_unix_nano),
            flow_type: text(names::FLOW_TYPE).unwrap_or_default(),
            shard_id: text(semconv::MESSAGING_DESTINATION_PARTITION_ID).unwrap_or_default(),
            sequence_number: text(semconv::MESSAGING_MESSAGE_ID).unwrap_or_default(),
            reactor: text(names::REACTOR),
            temperature_c: span.attr(names::TEMPERATURE_C).and_then(|t| t.parse().ok()),
            severity: text(names::SEVERITY),
            reject_reason: text(names::REJECT_REASON),
            payload_bytes: span
                .attr(semconv::MESSAGING_MESSAGE_BODY_SIZE)
                .and_then(|b| b.parse().ok()),
            failed: span.error,
            trace_id: span.trace_id.clone(),
            traceparent: None,
        }
    }
}

fn unix_ms(nanos: u64) -> i64 {
    (nanos / 1_000_000) as i64
}

fn record_key(span: &ReceivedSpan) -> (&str, &str) {
    (
        span.attr(semconv::MESSAGING_DESTINATION_PARTITION_ID)
            .unwrap_or_default(),
        span.attr(semconv::MESSAGING_MESSAGE_ID).unwrap_or_default(),
    )
}

/// The newest `n` record spans that `wanted` picks, one per record, newest first.
fn latest(
    spans: &[ReceivedSpan],
    n: usize,
    wanted: impl Fn(&ReceivedSpan) -> bool,
) -> Vec<Notable> {
    let mut seen = HashSet::new();
    let mut picked: Vec<&ReceivedSpan> = Vec::new();
    for span in spans.iter().rev() {
        if span.is_record() && wanted(span) && seen.insert(record_key(span)) {
            picked.push(span);
        }
    }
    picked.sort_by_key(|s| std::cmp::Reverse(s.start_unix_nano));
    picked.into_iter().take(n).map(Notable::of).collect()
}

/// The newest alerts (records at or above the warning threshold), newest first, each with
/// the `traceparent` its message carried (the context of its publish span).
pub fn latest_alerts(spans: &[ReceivedSpan], n: usize) -> Vec<Notable> {
    let mut alerts = latest(spans, n, |s| s.attr(names::SEVERITY).is_some());
    let publishes: HashMap<&str, &ReceivedSpan> = spans
        .iter()
        .filter(|s| s.is_publish())
        .map(|s| (s.parent_span_id.as_str(), s))
        .collect();
    let records: HashMap<(&str, &str), &str> = spans
        .iter()
        .filter(|s| s.is_record())
        .map(|s| (record_key(s), s.span_id.as_str()))
        .collect();
    for alert in &mut alerts {
        let key = (alert.shard_id.as_str(), alert.sequence_number.as_str());
        alert.traceparent = records
            .get(&key)
            .and_then(|record| publishes.get(record))
            .map(|publish| publish.traceparent());
    }
    alerts
}

/// The newest rejected records with their reasons, newest first.
pub fn latest_rejections(spans: &[ReceivedSpan], n: usize) -> Vec<Notable> {
    latest(spans, n, |s| s.attr(names::REJECT_REASON).is_some())
}

/// The unique-flows table as text, one row per flow type.
pub fn flows_table(rows: &[TraceFlowRow]) -> String {
    let mut out = format!(
        "{:<12} {:>8} {:>7} {:>9} {:>9} {:>9} {:>8}\n",
        "flow_type", "records", "errors", "avg ms", "p50 ms", "p99 ms", "traces"
    );
    for row in rows {
        let _ = writeln!(
            out,
            "{:<12} {:>8} {:>7} {:>9.2} {:>9.2} {:>9.2} {:>8}",
            row.flow_type.as_str(),
            row.count,
            row.errors,
            row.avg_ms,
            row.p50_ms,
            row.p99_ms,
            row.traces
        );
    }
    out
}

impl FlowReport {
    pub fn from_spans(spans: &[ReceivedSpan], thresholds: Thresholds) -> Self {
        let (nodes, edges) = flow_map(spans);
        Self {
            warning_c: thresholds.warning(),
            emergency_c: thresholds.emergency(),
            spans: spans.len(),
            invocations: spans.iter().filter(|s| s.name == SERVICE_NAME).count(),
            flows: unique_flows(spans)
                .into_iter()
                .map(|row| FlowStats {
                    flow_type: row.flow_type.as_str().to_string(),
                    records: row.count,
                    errors: row.errors,
                    avg_ms: row.avg_ms,
                    p50_ms: row.p50_ms,
                    p99_ms: row.p99_ms,
                    traces: row.traces,
                })
                .collect(),
            nodes,
            edges,
            examples: examples(spans),
            reactors: reactors(spans),
            time_axis: TimeAxis::Processing,
            alerts: latest_alerts(spans, RECENT),
            rejections: latest_rejections(spans, RECENT),
            episodes: Vec::new(),
        }
    }

    /// Draws the temperature chart on the readings' own dates: `readings` are every valid
    /// reading of the run as `(reactor, date, °C)`, in any order, repeats allowed.
    pub fn in_reading_time<'a>(
        &mut self,
        readings: impl IntoIterator<Item = (&'a str, DateTime<Utc>, f64)>,
    ) {
        self.reactors = series(
            readings
                .into_iter()
                .map(|(reactor, date, temp)| (reactor, date.timestamp_millis(), temp))
                .collect(),
        );
        self.time_axis = TimeAxis::Reading;
    }

    /// Marks the on-call pages read back from the queue at their time on the readings'
    /// clock: the date of the reading each names, and for `silent` `silent_after` later.
    /// Drawn on a chart in reading time ([`FlowReport::in_reading_time`]).
    pub fn mark_episodes(&mut self, pages: &[crate::on_call::Page], silent_after: TimeDelta) {
        self.episodes = pages
            .iter()
            .map(|page| {
                let n = &page.notification;
                let at = match n.action {
                    EpisodeAction::Silent => n.last_reading_at + silent_after,
                    _ => n.last_reading_at,
                };
                EpisodeMark {
                    reactor: n.reactor.clone(),
                    action: n.action.to_string(),
                    severity: n.severity.as_str().to_string(),
                    episode_id: n.episode_id.clone(),
                    reading_at: n
                        .last_reading_at
                        .to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true),
                    at_unix_ms: at.timestamp_millis(),
                }
            })
            .collect();
    }

    /// One self-contained HTML page: inline CSS and SVG, nothing fetched when it is opened.
    pub fn to_html(&self, headline: &Headline) -> String {
        html::render(self, headline)
    }

    pub fn write_html(&self, path: &Path, headline: &Headline) -> anyhow::Result<()> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)
                .with_context(|| format!("creating {} for the report", dir.display()))?;
        }
        std::fs::write(path, self.to_html(headline))
            .with_context(|| format!("writing the report to {}", path.display()))
    }

    /// Reads the JSON that `reactor-monitor local --json` printed.
    pub fn from_saved_run(path: &Path) -> anyhow::Result<(Self, Headline)> {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        let mut run: serde_json::Value = serde_json::from_str(&text)
            .with_context(|| format!("{} is not JSON", path.display()))?;
        let report = run
            .get_mut("flow_report")
            .map(serde_json::Value::take)
            .with_context(|| {
                format!(
                    "{} has no flow_report: write it with `reactor-monitor local --json > FILE`",
                    path.display()
                )
            })?;
        let report: Self = serde_json::from_value(report)
            .with_context(|| format!("reading the flow_report of {}", path.display()))?;
        let field = |key: &str| run.get(key).and_then(|v| v.as_str()).unwrap_or_default();
        Ok((report, Headline::local(field("verdict"), field("endpoint"))))
    }
}

/// The flow map: which records went from the stream to the function, and from the function
/// to each sink, from the AWS SDK attributes of the call spans under each record span.
fn flow_map(spans: &[ReceivedSpan]) -> (Vec<Node>, Vec<Edge>) {
    let records: HashMap<&str, &ReceivedSpan> = spans
        .iter()
        .filter(|s| s.is_record())
        .map(|s| (s.span_id.as_str(), s))
        .collect();
    let mut names: HashMap<NodeId, String> =
        HashMap::from([(NodeId::Function, SERVICE_NAME.into())]);
    let mut reached: HashMap<NodeId, HashSet<(&str, &str)>> = HashMap::new();
    let mut errors: HashMap<NodeId, usize> = HashMap::new();
    for span in spans {
        if span.is_record() {
            reached
                .entry(NodeId::Function)
                .or_default()
                .insert(record_key(span));
            *errors.entry(NodeId::Function).or_default() += usize::from(span.error);
            if let Some(stream) = span.attr(semconv::MESSAGING_DESTINATION_NAME) {
                names.entry(NodeId::Stream).or_insert_with(|| stream.into());
            }
            continue;
        }
        let Some(record) = records.get(span.parent_span_id.as_str()) else {
            continue;
        };
        let Some((node, resource)) = sink_of(span) else {
            continue;
        };
        reached.entry(node).or_default().insert(record_key(record));
        *errors.entry(node).or_default() += usize::from(span.error);
        if let Some(resource) = resource {
            names.entry(node).or_insert_with(|| resource.into());
        }
    }
    let nodes = [
        (NodeId::Stream, "Kinesis"),
        (NodeId::Function, "Lambda"),
        (NodeId::Table, "DynamoDB"),
        (NodeId::Topic, "SNS"),
        (NodeId::DeadLetters, "S3 dead letters"),
    ]
    .into_iter()
    .map(|(id, service)| Node {
        id,
        service: service.into(),
        name: names.remove(&id).unwrap_or_default(),
    })
    .collect();
    let edges = [
        (NodeId::Stream, NodeId::Function),
        (NodeId::Function, NodeId::Table),
        (NodeId::Function, NodeId::Topic),
        (NodeId::Function, NodeId::DeadLetters),
    ]
    .into_iter()
    .map(|(from, to)| Edge {
        from,
        to,
        records: reached.get(&to).map_or(0, HashSet::len),
        errors: errors.get(&to).copied().unwrap_or(0),
    })
    .collect();
    (nodes, edges)
}

/// The sink a call span reached, with the resource's name, from its AWS SDK attributes.
fn sink_of(span: &ReceivedSpan) -> Option<(NodeId, Option<&str>)> {
    #[allow(deprecated)] // the ADOT awsxray exporter still reads rpc.service
    let sink = match span.attr(semconv::RPC_SERVICE)? {
        "DynamoDB" => (NodeId::Table, span.attr(semconv::AWS_DYNAMODB_TABLE_NAMES)),
        // The alert topic: its PRODUCER spans (the on-call topic's pages are not alerts).
        "SNS" if span.is_publish() => (
            NodeId::Topic,
            span.attr(semconv::AWS_SNS_TOPIC_ARN)
                .map(|arn| arn.rsplit(':').next().unwrap_or(arn)),
        ),
        "S3" => (NodeId::DeadLetters, span.attr(semconv::AWS_S3_BUCKET)),
        _ => return None,
    };
    Some(sink)
}

/// Per flow, the record of median duration (a successful one when there is one) with its
/// invocation span and its own children.
fn examples(spans: &[ReceivedSpan]) -> Vec<ExampleTrace> {
    let by_id: HashMap<&str, &ReceivedSpan> =
        spans.iter().map(|s| (s.span_id.as_str(), s)).collect();
    let mut children: HashMap<&str, Vec<&ReceivedSpan>> = HashMap::new();
    for span in spans {
        children
            .entry(span.parent_span_id.as_str())
            .or_default()
            .push(span);
    }
    let mut examples = Vec::new();
    for flow in reactor_monitor::domain::FlowType::ALL {
        let of_flow =
            |s: &&ReceivedSpan| s.is_record() && s.attr(names::FLOW_TYPE) == Some(flow.as_str());
        let mut candidates: Vec<&ReceivedSpan> =
            spans.iter().filter(of_flow).filter(|s| !s.error).collect();
        if candidates.is_empty() {
            candidates = spans.iter().filter(of_flow).collect();
        }
        candidates.sort_by(|a, b| a.duration_ms().total_cmp(&b.duration_ms()));
        let Some(record) = candidates.get(candidates.len() / 2).copied() else {
            continue;
        };
        examples.push(example_of(flow, record, spans, &by_id, &children));
    }
    examples
}

/// The example trace of `flow`: `record` under its invocation span, with its own children.
fn example_of(
    flow: reactor_monitor::domain::FlowType,
    record: &ReceivedSpan,
    spans: &[ReceivedSpan],
    by_id: &HashMap<&str, &ReceivedSpan>,
    children: &HashMap<&str, Vec<&ReceivedSpan>>,
) -> ExampleTrace {
    let mut shown: Vec<(usize, &ReceivedSpan)> = Vec::new();
    if let Some(invocation) = by_id.get(record.parent_span_id.as_str()).copied() {
        shown.push((0, invocation));
    }
    let depth = shown.len();
    shown.push((depth, record));
    let mut own = children
        .get(record.span_id.as_str())
        .cloned()
        .unwrap_or_default();
    own.sort_by_key(|s| s.start_unix_nano);
    shown.extend(own.into_iter().map(|s| (depth + 1, s)));
    let origin = shown
        .iter()
        .map(|(_, s)| s.start_unix_nano)
        .min()
        .unwrap_or(0);
    ExampleTrace {
        flow_type: flow.as_str().to_string(),
        trace_id: record.trace_id.clone(),
        records_in_trace: spans
            .iter()
            .filter(|s| s.is_record() && s.trace_id == record.trace_id)
            .count(),
        spans: shown
            .into_iter()
            .map(|(depth, s)| ExampleSpan {
                name: s.name.clone(),
                depth,
                offset_ms: s.start_unix_nano.saturating_sub(origin) as f64 / 1e6,
                duration_ms: s.duration_ms(),
                error: s.error,
                attributes: s.attributes.clone(),
            })
            .collect(),
    }
}

/// Temperature per reactor over processing time, the hottest reading of each slice.
fn reactors(spans: &[ReceivedSpan]) -> Vec<ReactorSeries> {
    series(
        spans
            .iter()
            .filter(|s| s.is_record())
            .filter_map(|s| {
                let reactor = s.attr(names::REACTOR)?;
                let temp: f64 = s.attr(names::TEMPERATURE_C)?.parse().ok()?;
                Some((reactor, unix_ms(s.start_unix_nano), temp))
            })
            .collect(),
    )
}

/// Temperature per reactor from `(reactor, unix ms, °C)`: the hottest reading of each slice.
fn series(readings: Vec<(&str, i64, f64)>) -> Vec<ReactorSeries> {
    let (Some(first), Some(last)) = (
        readings.iter().map(|r| r.1).min(),
        readings.iter().map(|r| r.1).max(),
    ) else {
        return Vec::new();
    };
    let slice = ((last - first) / MAX_POINTS_PER_REACTOR as i64).max(1);
    /// Per slice index, the hottest reading `(unix ms, °C)`.
    type Slices = BTreeMap<i64, (i64, f64)>;
    let mut series: BTreeMap<&str, (usize, Slices)> = BTreeMap::new();
    for (reactor, at, temp) in readings {
        let (count, slices) = series.entry(reactor).or_default();
        *count += 1;
        let hottest = slices.entry((at - first) / slice).or_insert((at, temp));
        if temp > hottest.1 {
            *hottest = (at, temp);
        }
    }
    let mut out: Vec<ReactorSeries> = series
        .into_iter()
        .map(|(reactor, (readings, slices))| {
            let points: Vec<(i64, f64)> = slices.into_values().collect();
            ReactorSeries {
                reactor: reactor.to_string(),
                readings,
                max_c: points.iter().map(|p| p.1).fold(f64::NEG_INFINITY, f64::max),
                points,
            }
        })
        .collect();
    out.sort_by_key(|s| natural_key(&s.reactor));
    out
}

/// `reactor-2` before `reactor-10`.
pub(crate) fn natural_key(name: &str) -> (String, u64) {
    let digits = name.len() - name.trim_end_matches(|c: char| c.is_ascii_digit()).len();
    let (stem, number) = name.split_at(name.len() - digits);
    (stem.to_string(), number.parse().unwrap_or(0))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn span(id: &str, parent: &str, name: &str, attrs: &[(&str, &str)]) -> ReceivedSpan {
        ReceivedSpan {
            trace_id: "5759e988bd862e3fe1be46a994272793".into(),
            span_id: id.into(),
            parent_span_id: parent.into(),
            name: name.into(),
            kind: 0,
            start_unix_nano: 1_000_000_000,
            end_unix_nano: 1_004_000_000,
            error: false,
            attributes: attrs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            links: Vec::new(),
        }
    }

    fn record(id: &str, seq: &str, flow: &str) -> ReceivedSpan {
        span(
            id,
            "inv",
            "process indications-stream",
            &[
                (names::FLOW_TYPE, flow),
                (semconv::MESSAGING_OPERATION_NAME, names::PROCESS),
                (semconv::MESSAGING_DESTINATION_NAME, "indications-stream"),
                (
                    semconv::MESSAGING_DESTINATION_PARTITION_ID,
                    "shardId-000000000000",
                ),
                (semconv::MESSAGING_MESSAGE_ID, seq),
                (names::REACTOR, "reactor-1"),
                (names::TEMPERATURE_C, "750"),
            ],
        )
    }

    #[allow(deprecated)]
    fn call(id: &str, parent: &str, service: &str) -> ReceivedSpan {
        span(
            id,
            parent,
            &format!("{service}.Call"),
            &[(semconv::RPC_SERVICE, service)],
        )
    }

    #[allow(deprecated)]
    fn publish(id: &str, parent: &str) -> ReceivedSpan {
        span(
            id,
            parent,
            "publish reactor-notifications",
            &[
                (semconv::RPC_SERVICE, "SNS"),
                (semconv::MESSAGING_OPERATION_NAME, names::PUBLISH),
            ],
        )
    }

    #[test]
    fn an_alert_shows_the_traceparent_of_its_publish_span_and_links_to_its_trace() {
        let mut alert = record("r1", "1", "store+alert");
        alert
            .attributes
            .insert(names::SEVERITY.into(), "warning".into());
        let spans = vec![
            span("inv", "", SERVICE_NAME, &[]),
            alert,
            publish("00f067aa0ba902b7", "r1"),
        ];

        let report = FlowReport::from_spans(&spans, Thresholds::default());

        let traceparent = "00-5759e988bd862e3fe1be46a994272793-00f067aa0ba902b7-01";
        assert_eq!(report.alerts[0].traceparent.as_deref(), Some(traceparent));
        let page = report.to_html(&html::Headline::default());
        assert!(page.contains("id=\"trace-5759e988bd862e3fe1be46a994272793\""));
        assert!(page.contains(&format!(
            "<a href=\"#trace-5759e988bd862e3fe1be46a994272793\"><code>{traceparent}</code></a>"
        )));
    }

    #[test]
    fn edges_count_distinct_records_per_sink_and_examples_keep_the_invocation() {
        let spans = vec![
            span("inv", "", SERVICE_NAME, &[]),
            record("r1", "1", "store+alert"),
            call("c1", "r1", "DynamoDB"),
            call("c2", "r1", "DynamoDB"),
            publish("c3", "r1"),
            record("r2", "2", "store-only"),
            call("c4", "r2", "DynamoDB"),
        ];

        let report = FlowReport::from_spans(&spans, Thresholds::default());

        let records = |to| report.edges.iter().find(|e| e.to == to).unwrap().records;
        assert_eq!(records(NodeId::Function), 2);
        assert_eq!(records(NodeId::Table), 2);
        assert_eq!(records(NodeId::Topic), 1);
        assert_eq!(records(NodeId::DeadLetters), 0);
        let alert = report
            .examples
            .iter()
            .find(|e| e.flow_type == "store+alert")
            .unwrap();
        let shape: Vec<(usize, &str)> = alert
            .spans
            .iter()
            .map(|s| (s.depth, s.name.as_str()))
            .collect();
        assert_eq!(
            shape,
            [
                (0, SERVICE_NAME),
                (1, "process indications-stream"),
                (2, "DynamoDB.Call"),
                (2, "DynamoDB.Call"),
                (2, "publish reactor-notifications")
            ]
        );
        assert_eq!(report.reactors[0].points, [(1000, 750.0)]);
    }

    fn page(action: EpisodeAction, last_reading_at: DateTime<Utc>) -> crate::on_call::Page {
        crate::on_call::Page {
            message_id: format!("m-{action}"),
            notification: reactor_monitor::domain::episode::Notification {
                action,
                episode_id: "reactor-1/hot/2026-11-01T00:02:00.000Z".into(),
                reactor: "reactor-1".into(),
                severity: reactor_monitor::domain::Severity::Warning,
                peak_c: 750.0,
                last_c: 750.0,
                first_reading_at: last_reading_at,
                last_reading_at,
                superseded_by: None,
            },
            reading: None,
        }
    }

    #[test]
    fn a_local_run_draws_in_reading_time_and_marks_each_page_at_its_reading() {
        use chrono::TimeZone;
        let spans = vec![
            span("inv", "", SERVICE_NAME, &[]),
            record("r1", "1", "store+alert"),
        ];
        let mut report = FlowReport::from_spans(&spans, Thresholds::default());
        let t0 = chrono::Utc.with_ymd_and_hms(2026, 11, 1, 0, 0, 0).unwrap();
        let minute = |m| t0 + TimeDelta::minutes(m);

        report.in_reading_time([
            ("reactor-1", minute(0), 640.0),
            ("reactor-1", minute(2), 750.0),
            ("reactor-1", minute(2), 750.0),
            ("reactor-1", minute(30), 600.0),
        ]);
        report.mark_episodes(
            &[
                page(EpisodeAction::Opened, minute(2)),
                page(EpisodeAction::Silent, minute(30)),
            ],
            TimeDelta::minutes(5),
        );

        assert_eq!(report.time_axis, TimeAxis::Reading);
        let ms = |t: DateTime<Utc>| t.timestamp_millis();
        assert_eq!(
            report.reactors[0].points,
            [
                (ms(minute(0)), 640.0),
                (ms(minute(2)), 750.0),
                (ms(minute(30)), 600.0)
            ]
        );
        assert_eq!(report.reactors[0].readings, 4);
        let at: Vec<(&str, i64)> = report
            .episodes
            .iter()
            .map(|m| (m.action.as_str(), m.at_unix_ms))
            .collect();
        assert_eq!(at, [("opened", ms(minute(2))), ("silent", ms(minute(35)))]);
        assert_eq!(report.episodes[1].reading_at, "2026-11-01T00:30:00Z");
        let html = report.to_html(&html::Headline::default());
        assert!(html.contains("reading time"));
        for action in ["opened", "silent"] {
            let mark = format!("<g class=\"episode-mark\" data-action=\"{action}\"");
            assert_eq!(html.matches(&mark).count(), 1, "one {action} mark");
            assert!(
                html.contains(&format!(">{action}</text></g>")),
                "{action} labelled"
            );
        }
        assert_eq!(
            html.matches("<tr data-action=").count(),
            2,
            "the pages table"
        );
        // The axis reaches the silent mark, five minutes past the last reading.
        assert!(html.contains(">2026-11-01 00:35:00</text>"), "{html}");
    }

    #[test]
    fn a_chart_in_processing_time_draws_no_episode_marks() {
        let spans = vec![record("r1", "1", "store+alert")];
        let mut report = FlowReport::from_spans(&spans, Thresholds::default());

        report.mark_episodes(
            &[page(EpisodeAction::Opened, chrono::DateTime::UNIX_EPOCH)],
            TimeDelta::minutes(5),
        );

        let html = report.to_html(&html::Headline::default());
        assert!(!html.contains("<g class=\"episode-mark\""));
        assert!(html.contains("processing time"));
    }

    #[test]
    fn reactors_sort_by_their_number() {
        let mut names = vec!["reactor-10", "reactor-2", "reactor-1"];
        names.sort_by_key(|n| natural_key(n));
        assert_eq!(names, ["reactor-1", "reactor-2", "reactor-10"]);
    }
}
