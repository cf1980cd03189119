//! The function's spans through the real collector of each Lambda layer (`local --collector`):
//! the collector built from otel-collector/builder/<layer>.yaml, run with the configuration the
//! template ships, exporters pointed at the local receiver. What arrives must be whole: every
//! record span, every link, every parent.

use std::collections::{HashMap, HashSet};
use std::io::Write;

use base64::Engine;
use reactor_monitor::telemetry::traces::{OVERFLOW_SPAN, TracePlan};
use reactor_monitor_local::emulator::Emulator;
use reactor_monitor_local::otlp::ReceivedSpan;
use reactor_monitor_local::run::{self, LocalOptions};

const READINGS: usize = 120;
const CORRUPT_EVERY: usize = 10;
const BATCH_SIZE: usize = 50;
const RECORDS_PER_TRACE: usize = 20;

/// The producer span each reading's `traceparent` names: (trace id, span id).
fn producer(i: usize) -> (String, String) {
    (
        format!("{:032x}", 0xabc0_0000 + i),
        format!("{:016x}", 0x5000 + i),
    )
}

/// An input file of READINGS records, each with its producer's traceparent; every
/// CORRUPT_EVERY-th one unreadable (a parse-error flow, no link).
fn input() -> tempfile::NamedTempFile {
    let mut file = tempfile::NamedTempFile::new().unwrap();
    for i in 0..READINGS {
        let (trace, span) = producer(i);
        let payload = if i % CORRUPT_EVERY == 0 {
            format!(r#"{{"temp":{i},"reactor":"r1","date":"#)
        } else {
            format!(
                r#"{{"temp":{},"reactor":"r{}","date":"2020-03-07T16:29:50Z","traceparent":"00-{trace}-{span}-01"}}"#,
                100 + i * 3,
                i % 3
            )
        };
        let data = base64::engine::general_purpose::STANDARD.encode(payload);
        writeln!(file, r#"{{"data":"{data}","partitionKey":"p{i}"}}"#).unwrap();
    }
    file
}

/// A local run of the input through the collector of `config`; the spans the receiver got.
async fn through(config: &str) -> (run::LocalReport, Vec<ReceivedSpan>) {
    let emulator = Emulator::start().await.unwrap();
    let input = input();
    let options = LocalOptions {
        endpoint: Some(emulator.endpoint().to_string()),
        input: Some(input.path().to_path_buf()),
        batch_size: BATCH_SIZE,
        trace_plan: TracePlan {
            store_only_ratio: 1.0,
            max_records_per_trace: RECORDS_PER_TRACE,
        },
        collector: Some(reactor_monitor_local::project_root().join(config)),
        ..LocalOptions::default()
    };
    let mut report = run::run(options).await.unwrap();
    assert!(report.ok(), "{}", report.verdict);
    let spans = std::mem::take(&mut report.spans);
    (report, spans)
}

/// Every record span arrived, with its producer link; overflow traces link to an invocation
/// that arrived; every parent arrived; the only roots are the invocations (no X-Ray segment to
/// join locally) and the overflow spans.
fn assert_whole(report: &run::LocalReport, spans: &[ReceivedSpan]) {
    let ids: HashMap<(&str, &str), &ReceivedSpan> = spans
        .iter()
        .map(|s| ((s.trace_id.as_str(), s.span_id.as_str()), s))
        .collect();
    assert_eq!(ids.len(), spans.len(), "a span arrived twice");

    let records: Vec<&ReceivedSpan> = spans.iter().filter(|s| s.is_record()).collect();
    assert_eq!(records.len(), READINGS, "record spans");
    let linked: HashSet<(String, String)> = records
        .iter()
        .flat_map(|r| r.links.iter().cloned())
        .collect();
    let expected: HashSet<(String, String)> = (0..READINGS)
        .filter(|i| i % CORRUPT_EVERY != 0)
        .map(producer)
        .collect();
    assert_eq!(linked, expected, "producer links");

    for span in spans {
        if !span.parent_span_id.is_empty() {
            assert!(
                ids.contains_key(&(span.trace_id.as_str(), span.parent_span_id.as_str())),
                "{:?} ({}) has a parent that never arrived",
                span.name,
                span.span_id
            );
        }
    }
    let (overflow, invocations): (Vec<&ReceivedSpan>, Vec<&ReceivedSpan>) = spans
        .iter()
        .filter(|s| s.parent_span_id.is_empty())
        .partition(|s| s.name == OVERFLOW_SPAN);
    assert_eq!(invocations.len(), report.invocations, "invocation roots");
    // 120 records in batches of 50 at 20 a trace: each batch's first 20 in its invocation's
    // trace, the rest in overflow traces of 20 (50 → 2, 20 → 0).
    assert_eq!(overflow.len(), 2 + 2, "overflow roots");
    for root in overflow {
        assert_eq!(root.links.len(), 1);
        let (trace, span) = &root.links[0];
        let target = ids.get(&(trace.as_str(), span.as_str()));
        assert!(
            target.is_some_and(|t| invocations.iter().any(|i| i.span_id == t.span_id)),
            "an overflow trace links to an invocation that never arrived"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn spans_through_the_adot_layer_collector_arrive_whole() {
    let (report, spans) = through("otel-collector/collector.yaml").await;
    assert_whole(&report, &spans);
    assert!(
        report
            .collector_notes
            .iter()
            .any(|n| n.contains("sigv4auth dropped")),
        "{:?}",
        report.collector_notes
    );
    assert!(
        !report.collector_notes.iter().any(|n| n.starts_with("log:")),
        "{:?}",
        report.collector_notes
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn spans_through_the_community_layer_collector_arrive_whole() {
    let (report, spans) = through("otel-collector/collector-community.yaml").await;
    assert_whole(&report, &spans);
    assert!(
        report
            .collector_notes
            .iter()
            .any(|n| n.contains("decouple dropped")),
        "{:?}",
        report.collector_notes
    );
    assert!(
        !report.collector_notes.iter().any(|n| n.starts_with("log:")),
        "{:?}",
        report.collector_notes
    );
}

#[test]
fn an_awsxray_configuration_is_refused_locally_with_the_reason() {
    let text = std::fs::read_to_string(
        reactor_monitor_local::project_root().join("otel-collector/collector-awsxray.yaml"),
    )
    .unwrap();
    let error =
        reactor_monitor_local::collector::local_config(&text, "127.0.0.1:1", "http://127.0.0.1:2")
            .unwrap_err();
    assert!(
        format!("{error:#}").contains("not buildable here"),
        "{error:#}"
    );
}
