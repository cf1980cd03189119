//! The report as one HTML page: inline CSS and SVG, no script, nothing fetched.

use std::fmt::Write;

use chrono::{DateTime, Utc};

use std::collections::HashSet;

use opentelemetry_semantic_conventions::attribute as semconv;

use super::{
    Edge, EpisodeMark, ExampleSpan, ExampleTrace, FlowReport, Node, NodeId, Notable, ReactorSeries,
    TimeAxis,
};
use reactor_monitor::telemetry::names::{SERVICE_NAME, spans as names};

const STYLE: &str = include_str!("report.css");

/// Writes into a `String`, which cannot fail.
macro_rules! w {
    ($out:expr, $($arg:tt)*) => {{
        let _ = write!($out, $($arg)*);
    }};
}

/// What the page is about, above the pictures.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Headline {
    pub title: String,
    pub facts: Vec<(String, String)>,
}

impl Headline {
    /// A `reactor-monitor local` run.
    pub fn local(verdict: &str, endpoint: &str) -> Self {
        Self {
            title: "reactor-monitor local run".into(),
            facts: vec![
                ("result".into(), verdict.into()),
                ("emulator".into(), endpoint.into()),
            ],
        }
    }

    /// A `reactor-monitor up` session.
    pub fn up(endpoint: &str, started: DateTime<Utc>, stopped: DateTime<Utc>) -> Self {
        Self {
            title: "reactor-monitor up session".into(),
            facts: vec![
                (
                    "ran".into(),
                    format!(
                        "{} – {} UTC",
                        started.format("%Y-%m-%d %H:%M:%S"),
                        stopped.format("%H:%M:%S")
                    ),
                ),
                ("emulator".into(), endpoint.into()),
            ],
        }
    }
}

pub(super) fn render(report: &FlowReport, headline: &Headline) -> String {
    let mut page = String::with_capacity(64 * 1024);
    w!(
        page,
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <title>{}</title>\n<style>\n{STYLE}</style>\n</head>\n<body>\n<main>\n",
        esc(&headline.title)
    );
    header(&mut page, report, headline);
    flow_map(&mut page, report);
    flows_table(&mut page, report);
    waterfalls(&mut page, report);
    temperatures(&mut page, report);
    notables(&mut page, report);
    w!(
        page,
        "<footer>Drawn by reactor-monitor on {} from {} spans received over OTLP/HTTP. \
         This page is self-contained: no script, nothing fetched.</footer>\n</main>\n</body>\n</html>\n",
        Utc::now().format("%Y-%m-%d %H:%M:%S UTC"),
        thousands(report.spans)
    );
    page
}

fn header(page: &mut String, report: &FlowReport, headline: &Headline) {
    w!(page, "<header>\n<h1>{}</h1>\n<dl>\n", esc(&headline.title));
    for (key, value) in &headline.facts {
        w!(page, "<dt>{}</dt><dd>{}</dd>\n", esc(key), esc(value));
    }
    let records: usize = report.flows.iter().map(|f| f.records).sum();
    w!(
        page,
        "<dt>traced</dt><dd>{} record spans in {} invocations</dd>\n</dl>\n</header>\n",
        thousands(records),
        thousands(report.invocations)
    );
}

/// Where each box of the flow map sits (top-left corner), and its size.
fn place(id: NodeId) -> (f64, f64) {
    match id {
        NodeId::Stream => (20.0, 124.0),
        NodeId::Function => (370.0, 124.0),
        NodeId::Table => (730.0, 20.0),
        NodeId::Topic => (730.0, 124.0),
        NodeId::DeadLetters => (730.0, 228.0),
    }
}
const BOX_W: f64 = 210.0;
const BOX_H: f64 = 72.0;

fn service_color(id: NodeId) -> &'static str {
    match id {
        NodeId::Stream => "#8c4fff",
        NodeId::Function => "#ed7100",
        NodeId::Table => "#3b48cc",
        NodeId::Topic => "#e7157b",
        NodeId::DeadLetters => "#3f8624",
    }
}

/// Edges take the colour of the flow they carry.
fn edge_color(to: NodeId) -> &'static str {
    match to {
        NodeId::Table => flow_color("store-only"),
        NodeId::Topic => flow_color("store+alert"),
        NodeId::DeadLetters => flow_color("parse-error"),
        _ => "#5d6677",
    }
}

fn flow_color(flow: &str) -> &'static str {
    match flow {
        "store-only" => "#2f6fdf",
        "store+alert" => "#e07b00",
        "parse-error" => "#c62f3c",
        _ => "#5d6677",
    }
}

fn flow_class(flow: &str) -> &'static str {
    match flow {
        "store-only" => "flow-store-only",
        "store+alert" => "flow-store-alert",
        "parse-error" => "flow-parse-error",
        _ => "",
    }
}

fn badge(flow: &str) -> String {
    format!(
        "<span class=\"badge {}\">{}</span>",
        flow_class(flow),
        esc(flow)
    )
}

fn flow_map(page: &mut String, report: &FlowReport) {
    page.push_str(
        "<section id=\"flow-map\">\n<h2>Flow map</h2>\n<p class=\"note\">Records along each \
         edge, from the AWS SDK spans under each record span; edge width grows with the square \
         root of the count.</p>\n<svg class=\"map\" viewBox=\"0 0 960 320\" role=\"img\" \
         aria-label=\"flow map\">\n",
    );
    let heaviest = report
        .edges
        .iter()
        .map(|e| e.records)
        .max()
        .unwrap_or(0)
        .max(1);
    for (i, edge) in report.edges.iter().enumerate() {
        map_edge(page, i, edge, heaviest);
    }
    for node in &report.nodes {
        map_node(page, node, report);
    }
    page.push_str("</svg>\n</section>\n");
}

fn map_edge(page: &mut String, i: usize, edge: &Edge, heaviest: usize) {
    let (fx, fy) = place(edge.from);
    let (tx, ty) = place(edge.to);
    let (x1, y1) = (fx + BOX_W, fy + BOX_H / 2.0);
    let (x2, y2) = (tx - 4.0, ty + BOX_H / 2.0);
    let (width, color, dash) = if edge.records == 0 {
        (1.5, "#c3c9d4", " stroke-dasharray=\"6 5\"")
    } else {
        let share = (edge.records as f64 / heaviest as f64).sqrt();
        (2.0 + 14.0 * share, edge_color(edge.to), "")
    };
    let head = 6.0 + width * 0.7;
    w!(
        page,
        "<defs><marker id=\"arrow-{i}\" viewBox=\"0 0 10 10\" refX=\"9\" refY=\"5\" \
         markerWidth=\"{head:.1}\" markerHeight=\"{head:.1}\" markerUnits=\"userSpaceOnUse\" \
         orient=\"auto\"><path d=\"M0,0 L10,5 L0,10 z\" fill=\"{color}\"/></marker></defs>\n\
         <path class=\"edge\" data-from=\"{from}\" data-to=\"{to}\" data-records=\"{records}\" \
         d=\"M{x1:.1},{y1:.1} C{c1:.1},{y1:.1} {c2:.1},{y2:.1} {x2:.1},{y2:.1}\" fill=\"none\" \
         stroke=\"{color}\" stroke-width=\"{width:.1}\" stroke-opacity=\"0.85\"{dash} \
         marker-end=\"url(#arrow-{i})\"/>\n",
        from = node_slug(edge.from),
        to = node_slug(edge.to),
        records = edge.records,
        c1 = x1 + 90.0,
        c2 = x2 - 90.0,
    );
    let mut label = format!("{} records", thousands(edge.records));
    if edge.errors > 0 {
        label.push_str(&format!(" · {} failed", thousands(edge.errors)));
    }
    // Above the straight end of the edge, where no other edge runs.
    w!(
        page,
        "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\" font-size=\"13\" \
         fill=\"#1d2330\" stroke=\"#fff\" stroke-width=\"4\" paint-order=\"stroke\">{}</text>\n",
        x2 - head - 4.0,
        y2 - width / 2.0 - 6.0,
        esc(&label)
    );
}

fn node_slug(id: NodeId) -> &'static str {
    match id {
        NodeId::Stream => "stream",
        NodeId::Function => "function",
        NodeId::Table => "table",
        NodeId::Topic => "topic",
        NodeId::DeadLetters => "dead-letters",
    }
}

fn map_node(page: &mut String, node: &Node, report: &FlowReport) {
    let (x, y) = place(node.id);
    let color = service_color(node.id);
    let detail = match node.id {
        NodeId::Function => format!("{} invocations", thousands(report.invocations)),
        _ => String::new(),
    };
    w!(
        page,
        "<g class=\"node\" data-node=\"{slug}\">\
         <rect x=\"{x}\" y=\"{y}\" width=\"{BOX_W}\" height=\"{BOX_H}\" rx=\"10\" fill=\"#fff\" \
         stroke=\"{color}\" stroke-width=\"2.5\"/>\
         <rect x=\"{x}\" y=\"{y}\" width=\"8\" height=\"{BOX_H}\" rx=\"4\" fill=\"{color}\"/>\
         <text x=\"{tx}\" y=\"{y1}\" font-size=\"15\" font-weight=\"700\" fill=\"{color}\">{service}</text>\
         <text x=\"{tx}\" y=\"{y2}\" font-size=\"12.5\" fill=\"#1d2330\">{name}</text>\
         <text x=\"{tx}\" y=\"{y3}\" font-size=\"11.5\" fill=\"#5d6677\">{detail}</text></g>\n",
        slug = node_slug(node.id),
        tx = x + 20.0,
        y1 = y + 25.0,
        y2 = y + 45.0,
        y3 = y + 62.0,
        service = esc(&node.service),
        name = esc(&node.name),
    );
}

fn flows_table(page: &mut String, report: &FlowReport) {
    page.push_str(
        "<section id=\"unique-flows\">\n<h2>Unique flows</h2>\n<p class=\"note\">Record spans \
         per flow type, as X-Ray groups them; a record delivered twice counts twice.</p>\n\
         <table>\n<tr><th>flow_type</th><th class=\"num\">records</th><th>share</th>\
         <th class=\"num\">errors</th><th class=\"num\">avg ms</th><th class=\"num\">p50 ms</th>\
         <th class=\"num\">p99 ms</th><th class=\"num\">traces</th></tr>\n",
    );
    let total: usize = report.flows.iter().map(|f| f.records).sum::<usize>().max(1);
    for flow in &report.flows {
        let share = flow.records as f64 / total as f64;
        w!(
            page,
            "<tr data-flow=\"{flow_attr}\"><td>{badge}</td><td class=\"num\">{records}</td>\
             <td><svg width=\"160\" height=\"12\" role=\"img\" aria-label=\"{pct:.1}%\">\
             <rect width=\"160\" height=\"12\" rx=\"3\" fill=\"#eef1f5\"/>\
             <rect width=\"{bar:.1}\" height=\"12\" rx=\"3\" fill=\"{color}\"/></svg> {pct:.1}%</td>\
             <td class=\"num{err_class}\">{errors}</td><td class=\"num\">{avg:.2}</td>\
             <td class=\"num\">{p50:.2}</td><td class=\"num\">{p99:.2}</td>\
             <td class=\"num\">{traces}</td></tr>\n",
            flow_attr = esc(&flow.flow_type),
            badge = badge(&flow.flow_type),
            records = thousands(flow.records),
            pct = share * 100.0,
            bar = share * 160.0,
            color = flow_color(&flow.flow_type),
            err_class = if flow.errors > 0 { " error" } else { "" },
            errors = thousands(flow.errors),
            avg = flow.avg_ms,
            p50 = flow.p50_ms,
            p99 = flow.p99_ms,
            traces = thousands(flow.traces),
        );
    }
    page.push_str("</table>\n</section>\n");
}

/// Whether an example span is a record's consumer span (`process <stream>`).
fn is_record(span: &ExampleSpan) -> bool {
    span.attributes
        .get(semconv::MESSAGING_OPERATION_NAME)
        .is_some_and(|op| op == names::PROCESS)
}

/// Whether an example span is a publish span (`publish <topic>`: an alert or a page).
fn is_publish(span: &ExampleSpan) -> bool {
    span.attributes
        .get(semconv::MESSAGING_OPERATION_NAME)
        .is_some_and(|op| op == names::PUBLISH)
}

fn span_color(span: &ExampleSpan, flow: &str) -> &'static str {
    let name = span.name.as_str();
    if name == SERVICE_NAME {
        "#5d6677"
    } else if is_record(span) {
        flow_color(flow)
    } else if name.starts_with("DynamoDB.") {
        service_color(NodeId::Table)
    } else if is_publish(span) || name.starts_with("SNS.") {
        service_color(NodeId::Topic)
    } else if name.starts_with("S3.") {
        service_color(NodeId::DeadLetters)
    } else {
        "#8a94a6"
    }
}

fn waterfalls(page: &mut String, report: &FlowReport) {
    page.push_str(
        "<section id=\"example-traces\">\n<h2>One trace per flow</h2>\n<p class=\"note\">A \
         typical record of each flow (median duration) under its invocation span; batched \
         calls last as long as the request that carried the record.</p>\n",
    );
    if report.examples.is_empty() {
        page.push_str("<p>No record spans were received.</p>\n");
    }
    for example in &report.examples {
        waterfall(page, example);
    }
    page.push_str("</section>\n");
}

fn waterfall(page: &mut String, example: &ExampleTrace) {
    let total = example
        .spans
        .iter()
        .map(|s| s.offset_ms + s.duration_ms)
        .fold(0.0, f64::max)
        .max(0.001);
    let xray_id = if example.trace_id.len() == 32 {
        format!("1-{}-{}", &example.trace_id[..8], &example.trace_id[8..])
    } else {
        example.trace_id.clone()
    };
    w!(
        page,
        "<article class=\"trace\" data-flow=\"{}\" id=\"trace-{}\">\n<h3>{} X-Ray trace <code>{}</code> \
         <small>· one of {} records traced in it · 0 – {:.2} ms</small></h3>\n\
         <table class=\"waterfall\">\n",
        esc(&example.flow_type),
        esc(&example.trace_id),
        badge(&example.flow_type),
        esc(&xray_id),
        thousands(example.records_in_trace),
        total
    );
    for span in &example.spans {
        let x = span.offset_ms / total * 1000.0;
        let width = (span.duration_ms / total * 1000.0).max(2.0);
        let mark = if span.error {
            " <span class=\"error\">✕ error</span>"
        } else {
            ""
        };
        w!(
            page,
            "<tr class=\"span\" data-span=\"{name}\"><td class=\"name\" style=\"padding-left:{pad}px\">\
             {name}{mark}</td><td class=\"bar\"><svg viewBox=\"0 0 1000 14\" \
             preserveAspectRatio=\"none\"><rect x=\"0\" y=\"6\" width=\"1000\" height=\"2\" \
             fill=\"#eef1f5\"/><rect x=\"{x:.1}\" y=\"1\" width=\"{width:.1}\" height=\"12\" rx=\"2\" \
             fill=\"{color}\"><title>{name}: {dur:.3} ms from {offset:.3} ms</title></rect></svg></td>\
             <td class=\"num\">{dur:.2} ms</td></tr>\n",
            name = esc(&span.name),
            pad = 8 + span.depth * 20,
            color = span_color(span, &example.flow_type),
            dur = span.duration_ms,
            offset = span.offset_ms,
        );
        let open = if is_record(span) { " open" } else { "" };
        w!(
            page,
            "<tr class=\"attrs\"><td colspan=\"3\" style=\"padding-left:{}px\"><details{open}>\
             <summary>{} attributes</summary><dl>",
            8 + span.depth * 20,
            span.attributes.len()
        );
        for (key, value) in &span.attributes {
            w!(page, "<dt>{}</dt><dd>{}</dd>", esc(key), esc(value));
        }
        page.push_str("</dl></details></td></tr>\n");
    }
    page.push_str("</table>\n</article>\n");
}

/// A round step for about `ticks` divisions of `span`.
fn nice_step(span: f64, ticks: f64) -> f64 {
    let raw = (span / ticks).max(f64::MIN_POSITIVE);
    let magnitude = 10f64.powf(raw.log10().floor());
    [1.0, 2.0, 2.5, 5.0, 10.0]
        .into_iter()
        .map(|m| m * magnitude)
        .find(|step| *step >= raw)
        .unwrap_or(10.0 * magnitude)
}

/// Reactors drawn, hottest first beyond this many.
const MAX_PANELS: usize = 24;
const PANEL_COLUMNS: usize = 4;
const PANEL_W: f64 = 290.0;
const PANEL_H: f64 = 150.0;

/// The scales every reactor panel shares, so that panels compare at a glance.
struct Scales {
    low: f64,
    high: f64,
    step: f64,
    first: i64,
    last: i64,
}

impl Scales {
    fn of(report: &FlowReport) -> Self {
        let points = || report.reactors.iter().flat_map(|r| r.points.iter());
        let coldest = points().map(|p| p.1).fold(f64::INFINITY, f64::min);
        let hottest = points().map(|p| p.1).fold(f64::NEG_INFINITY, f64::max);
        let low = coldest.min(report.warning_c - 100.0);
        let high = hottest.max(report.emergency_c + 50.0);
        let step = nice_step(high - low, 4.0);
        // On the readings' clock the marks count too: a silent page lies past the last reading.
        let marks = || {
            report
                .episodes
                .iter()
                .filter(|_| report.time_axis == TimeAxis::Reading)
                .map(|m| m.at_unix_ms)
        };
        let times = || points().map(|p| p.0).chain(marks());
        let mut first = times().min().unwrap_or(0);
        let mut last = times().max().unwrap_or(0);
        if last - first < 1_000 {
            first -= 500;
            last += 500;
        }
        Self {
            low: (low / step).floor() * step,
            high: (high / step).ceil() * step,
            step,
            first,
            last,
        }
    }
}

fn temperatures(page: &mut String, report: &FlowReport) {
    w!(
        page,
        "<section id=\"temperatures\">\n<h2>Temperature per reactor</h2>\n<p class=\"note\">The \
         hottest reading of each time slice ({}, UTC). Dashed: warning {} °C (orange) and \
         emergency {} °C (red); dots: readings at or above warning.{}</p>\n",
        match report.time_axis {
            TimeAxis::Processing => "processing time",
            TimeAxis::Reading => "reading time: each reading's own date",
        },
        report.warning_c,
        report.emergency_c,
        if report.episodes.is_empty() || report.time_axis != TimeAxis::Reading {
            ""
        } else {
            " Vertical marks: the on-call pages read back from the on-call queue, each at the \
             reading it names (silent: SILENCE_MINUTES after the last reading written), \
             labelled with its action; hover for the reading's date and the episode."
        }
    );
    if report.reactors.is_empty() {
        page.push_str("<p>No readings were traced.</p>\n</section>\n");
        return;
    }
    let mut shown: Vec<&ReactorSeries> = report.reactors.iter().collect();
    if shown.len() > MAX_PANELS {
        shown.sort_by(|a, b| b.max_c.total_cmp(&a.max_c));
        shown.truncate(MAX_PANELS);
    }
    let scales = Scales::of(report);
    let rows = shown.len().div_ceil(PANEL_COLUMNS);
    w!(
        page,
        "<svg class=\"chart\" viewBox=\"0 0 {} {}\" role=\"img\" aria-label=\"temperature per reactor\">\n",
        PANEL_W * PANEL_COLUMNS as f64,
        PANEL_H * rows as f64
    );
    for (i, series) in shown.iter().enumerate() {
        let origin = (
            (i % PANEL_COLUMNS) as f64 * PANEL_W,
            (i / PANEL_COLUMNS) as f64 * PANEL_H,
        );
        reactor_panel(page, series, origin, &scales, report);
    }
    page.push_str("</svg>\n");
    if report.reactors.len() > shown.len() {
        w!(
            page,
            "<p class=\"note\">The {} hottest of {} reactors.</p>\n",
            shown.len(),
            report.reactors.len()
        );
    }
    episode_pages(page, &report.episodes);
    page.push_str("</section>\n");
}

/// The colour of an episode action's mark (the legend's and the table's too).
fn action_color(action: &str) -> &'static str {
    match action {
        "opened" => "#e07b00",
        "escalated" => "#c62f3c",
        "repeated" => "#8a5cd1",
        "resolved" => "#2e9d5b",
        _ => "#5d6677",
    }
}

/// Pages shown in the table under the chart; the rest are counted.
const MAX_PAGE_ROWS: usize = 100;

/// The legend of the marks and the on-call pages in reading time.
fn episode_pages(page: &mut String, marks: &[EpisodeMark]) {
    if marks.is_empty() {
        return;
    }
    page.push_str("<p class=\"legend\">");
    for action in ["opened", "escalated", "repeated", "resolved", "silent"] {
        let n = marks.iter().filter(|m| m.action == action).count();
        w!(
            page,
            "<span class=\"mark\" data-action=\"{action}\"><span class=\"swatch\" \
             style=\"background:{}\"></span>{action} {n}</span> ",
            action_color(action)
        );
    }
    page.push_str(
        "</p>\n<h3>On-call pages</h3>\n<table class=\"pages\">\n<tr><th>reading time (UTC)</th>\
                   <th>reactor</th><th>action</th><th>severity</th><th>episode id</th></tr>\n",
    );
    for mark in marks.iter().take(MAX_PAGE_ROWS) {
        w!(
            page,
            "<tr data-action=\"{action}\"><td><code>{}</code></td><td>{}</td>\
             <td><span class=\"swatch\" style=\"background:{}\"></span>{action}</td><td>{}</td>\
             <td><code>{}</code></td></tr>\n",
            esc(&mark.reading_at),
            esc(&mark.reactor),
            action_color(&mark.action),
            esc(&mark.severity),
            esc(&mark.episode_id),
            action = esc(&mark.action),
        );
    }
    page.push_str("</table>\n");
    if marks.len() > MAX_PAGE_ROWS {
        w!(
            page,
            "<p class=\"note\">… and {} more pages.</p>\n",
            thousands(marks.len() - MAX_PAGE_ROWS)
        );
    }
}

/// A reactor's on-call pages on its panel: a vertical line each, labelled with its action
/// (labels staggered on three rows so that close transitions stay readable).
fn episode_marks(
    page: &mut String,
    series: &ReactorSeries,
    report: &FlowReport,
    x: &dyn Fn(i64) -> f64,
    (left, right): (f64, f64),
    (top, bottom): (f64, f64),
) {
    if report.time_axis != TimeAxis::Reading {
        return;
    }
    let marks = report
        .episodes
        .iter()
        .filter(|m| m.reactor == series.reactor)
        .map(|m| (m, x(m.at_unix_ms)));
    for (i, (mark, mx)) in marks.enumerate() {
        let color = action_color(&mark.action);
        let ly = top + 8.0 + (i % 3) as f64 * 10.0;
        let anchor = if mx > (left + right) / 2.0 {
            "end"
        } else {
            "start"
        };
        let lx = if anchor == "end" { mx - 2.0 } else { mx + 2.0 };
        w!(
            page,
            "<g class=\"episode-mark\" data-action=\"{action}\" data-reading-at=\"{at}\">\
             <title>{action} ({severity}) · reading at {at} · {id}</title>\
             <line x1=\"{mx:.1}\" x2=\"{mx:.1}\" y1=\"{top}\" y2=\"{bottom}\" stroke=\"{color}\" \
             stroke-width=\"1.4\" stroke-dasharray=\"2 2\"/>\
             <circle cx=\"{mx:.1}\" cy=\"{top}\" r=\"3\" fill=\"{color}\"/>\
             <text x=\"{lx:.1}\" y=\"{ly:.1}\" text-anchor=\"{anchor}\" font-size=\"9\" \
             font-weight=\"600\" fill=\"{color}\" stroke=\"#fff\" stroke-width=\"3\" paint-order=\"stroke\">{action}</text></g>\n",
            action = esc(&mark.action),
            severity = esc(&mark.severity),
            at = esc(&mark.reading_at),
            id = esc(&mark.episode_id),
        );
    }
}

fn reactor_panel(
    page: &mut String,
    series: &ReactorSeries,
    (ox, oy): (f64, f64),
    scales: &Scales,
    report: &FlowReport,
) {
    let (left, right) = (ox + 46.0, ox + PANEL_W - 12.0);
    let (top, bottom) = (oy + 26.0, oy + PANEL_H - 22.0);
    let x = |t: i64| {
        left + (t - scales.first) as f64 / (scales.last - scales.first) as f64 * (right - left)
    };
    let y = |c: f64| bottom - (c - scales.low) / (scales.high - scales.low) * (bottom - top);
    w!(
        page,
        "<g class=\"reactor\" data-reactor=\"{name}\">\
         <text x=\"{left}\" y=\"{ty}\" font-size=\"12.5\" font-weight=\"700\" fill=\"#1d2330\">{name}\
         <tspan font-weight=\"400\" fill=\"#5d6677\"> · max {max:.1} °C · {n} readings</tspan></text>\n",
        name = esc(&series.reactor),
        ty = oy + 15.0,
        max = series.max_c,
        n = thousands(series.readings),
    );
    let mut tick = scales.low;
    while tick <= scales.high + scales.step / 2.0 {
        w!(
            page,
            "<line x1=\"{left}\" x2=\"{right}\" y1=\"{y:.1}\" y2=\"{y:.1}\" stroke=\"#eef1f5\"/>\
             <text x=\"{lx}\" y=\"{ly:.1}\" text-anchor=\"end\" font-size=\"10\" fill=\"#5d6677\">{tick}</text>\n",
            y = y(tick),
            lx = left - 5.0,
            ly = y(tick) + 3.5,
        );
        tick += scales.step;
    }
    for (value, class, color) in [
        (report.warning_c, "warning", flow_color("store+alert")),
        (report.emergency_c, "emergency", flow_color("parse-error")),
    ] {
        w!(
            page,
            "<line class=\"threshold\" data-threshold=\"{class}\" x1=\"{left}\" x2=\"{right}\" \
             y1=\"{y:.1}\" y2=\"{y:.1}\" stroke=\"{color}\" stroke-width=\"1.2\" stroke-dasharray=\"5 4\"/>\n",
            y = y(value),
        );
    }
    let path: Vec<String> = series
        .points
        .iter()
        .map(|&(t, c)| format!("{:.1},{:.1}", x(t), y(c)))
        .collect();
    w!(
        page,
        "<polyline points=\"{}\" fill=\"none\" stroke=\"{}\" stroke-width=\"1.2\" \
         stroke-linejoin=\"round\" stroke-opacity=\"0.8\"/>\n",
        path.join(" "),
        flow_color("store-only")
    );
    for &(t, c) in &series.points {
        let color = if c >= report.emergency_c {
            flow_color("parse-error")
        } else if c >= report.warning_c {
            flow_color("store+alert")
        } else if series.points.len() == 1 {
            flow_color("store-only")
        } else {
            continue;
        };
        w!(
            page,
            "<circle cx=\"{:.1}\" cy=\"{:.1}\" r=\"2.8\" fill=\"{color}\"><title>{} {c} °C at {} UTC</title></circle>\n",
            x(t),
            y(c),
            esc(&series.reactor),
            clock(t)
        );
    }
    episode_marks(page, series, report, &x, (left, right), (top, bottom));
    w!(
        page,
        "<line x1=\"{left}\" x2=\"{right}\" y1=\"{bottom}\" y2=\"{bottom}\" stroke=\"#aab2bf\"/>\
         <text x=\"{left}\" y=\"{ly}\" font-size=\"10\" fill=\"#5d6677\">{}</text>\
         <text x=\"{right}\" y=\"{ly}\" text-anchor=\"end\" font-size=\"10\" fill=\"#5d6677\">{}</text></g>\n",
        axis_label(scales.first, report.time_axis),
        axis_label(scales.last, report.time_axis),
        ly = bottom + 14.0,
    );
}

/// A time under a panel: the clock alone for processing time (one session), date and time
/// for reading time (readings may span days).
fn axis_label(unix_ms: i64, axis: TimeAxis) -> String {
    match axis {
        TimeAxis::Processing => clock(unix_ms),
        TimeAxis::Reading => DateTime::<Utc>::from_timestamp_millis(unix_ms)
            .map(|d| d.format("%Y-%m-%d %H:%M:%S").to_string())
            .unwrap_or_default(),
    }
}

fn clock(unix_ms: i64) -> String {
    DateTime::<Utc>::from_timestamp_millis(unix_ms)
        .map(|d| d.format("%H:%M:%S%.3f").to_string())
        .unwrap_or_default()
}

fn notables(page: &mut String, report: &FlowReport) {
    page.push_str(
        "<section id=\"latest\">\n<div class=\"columns\">\n<div>\n<h2>Latest alerts</h2>\n",
    );
    let shown: HashSet<&str> = report
        .examples
        .iter()
        .map(|e| e.trace_id.as_str())
        .collect();
    notable_table(page, &report.alerts, Some(&shown));
    page.push_str("</div>\n<div>\n<h2>Latest rejections</h2>\n");
    notable_table(page, &report.rejections, None);
    page.push_str("</div>\n</div>\n</section>\n");
}

/// Alerts (with `examples`, the traces drawn above, to link to) or rejections.
fn notable_table(page: &mut String, rows: &[Notable], examples: Option<&HashSet<&str>>) {
    let alerts = examples.is_some();
    if rows.is_empty() {
        page.push_str("<p class=\"note\">None.</p>\n");
        return;
    }
    page.push_str(if alerts {
        "<table>\n<tr><th>at (UTC)</th><th>severity</th><th>reactor</th><th class=\"num\">°C</th><th>shard / sequence</th><th>trace (the alert's traceparent)</th></tr>\n"
    } else {
        "<table>\n<tr><th>at (UTC)</th><th>reason</th><th class=\"num\">bytes</th><th>shard / sequence</th></tr>\n"
    });
    for row in rows {
        let at = clock(row.at_unix_ms);
        let place = format!("{}/{}", row.shard_id, row.sequence_number);
        if let Some(examples) = examples {
            w!(
                page,
                "<tr><td>{at}</td><td>{}</td><td>{}</td><td class=\"num\">{}</td><td><code>{}</code></td><td>{}</td></tr>\n",
                esc(row.severity.as_deref().unwrap_or_default()),
                esc(row.reactor.as_deref().unwrap_or_default()),
                row.temperature_c.map(|t| t.to_string()).unwrap_or_default(),
                esc(&place),
                alert_trace(row, examples)
            );
        } else {
            w!(
                page,
                "<tr><td>{at}</td><td><code>{}</code></td><td class=\"num\">{}</td><td><code>{}</code></td></tr>\n",
                esc(row.reject_reason.as_deref().unwrap_or_default()),
                row.payload_bytes.map(|b| b.to_string()).unwrap_or_default(),
                esc(&place)
            );
        }
    }
    page.push_str("</table>\n");
}

/// An alert's way back to its reading: the `traceparent` its message carried, linked to the
/// trace drawn above when it is one of them.
fn alert_trace(row: &Notable, examples: &HashSet<&str>) -> String {
    let Some(traceparent) = &row.traceparent else {
        return String::new();
    };
    let code = format!("<code>{}</code>", esc(traceparent));
    if examples.contains(row.trace_id.as_str()) {
        format!("<a href=\"#trace-{}\">{code}</a>", esc(&row.trace_id))
    } else {
        code
    }
}

fn esc(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// `9818` as `9,818`.
pub(crate) fn thousands(n: usize) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_is_escaped_and_counts_are_grouped() {
        assert_eq!(
            esc("<a href=\"x\">&'"),
            "&lt;a href=&quot;x&quot;&gt;&amp;&#39;"
        );
        assert_eq!(thousands(9_818), "9,818");
        assert_eq!(thousands(100), "100");
        assert_eq!(thousands(1_000_000), "1,000,000");
    }

    #[test]
    fn steps_are_round() {
        assert_eq!(nice_step(600.0, 4.0), 200.0);
        assert_eq!(nice_step(4_800.0, 4.0), 2_000.0);
    }
}
