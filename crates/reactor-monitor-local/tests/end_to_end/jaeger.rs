//! A real trace backend (`local --jaeger`): Jaeger v2, every listener on 127.0.0.1, fed by
//! the run (function → the layer's collector with collector-jaeger.yaml → the local receiver →
//! Jaeger), then searched through its HTTP query API as an engineer would.
//!
//! The run against Jaeger needs its binary, which `scripts/build-jaeger` builds once and caches
//! (about 12 minutes on 2 cores; `scripts/test` builds it before the tests).

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use reactor_monitor::domain::FlowType;
use reactor_monitor::telemetry::names::{SERVICE_NAME, spans};
use reactor_monitor_local::emulator::Emulator;
use reactor_monitor_local::jaeger::{self, LocalJaeger};
use reactor_monitor_local::run::{self, LocalOptions};
use serde_json::{Value, json};

#[test]
fn every_jaeger_listener_is_on_loopback() {
    let config: Value = serde_norway::from_str(&jaeger::config(14318, 16686, 16685)).unwrap();
    let mut endpoints = Vec::new();
    fn walk(value: &Value, found: &mut Vec<String>) {
        match value {
            Value::Object(map) => {
                for (key, inner) in map {
                    if key == "endpoint" {
                        found.push(inner.as_str().unwrap_or_default().to_string());
                    }
                    walk(inner, found);
                }
            }
            Value::Array(items) => items.iter().for_each(|i| walk(i, found)),
            _ => {}
        }
    }
    walk(&config, &mut endpoints);
    endpoints.sort();
    assert_eq!(
        endpoints,
        ["127.0.0.1:14318", "127.0.0.1:16685", "127.0.0.1:16686"]
    );
    // Nothing else listens: no receivers but OTLP/HTTP, no metrics endpoint.
    assert_eq!(
        config["receivers"]["otlp"]["protocols"]
            .as_object()
            .unwrap()
            .len(),
        1
    );
    assert_eq!(config["service"]["telemetry"]["metrics"]["level"], "none");
}

fn tag<'a>(span: &'a Value, key: &str) -> Option<&'a Value> {
    span["tags"]
        .as_array()?
        .iter()
        .find(|t| t["key"] == key)
        .map(|t| &t["value"])
}

#[tokio::test(flavor = "multi_thread")]
async fn a_local_run_is_searchable_in_jaeger_by_flow_type_with_complete_trees() {
    let jaeger = LocalJaeger::start(None).await.unwrap();
    let emulator = Emulator::start().await.unwrap();
    let options = LocalOptions {
        endpoint: Some(emulator.endpoint().to_string()),
        readings: 400,
        batch_size: 100,
        collector: Some(
            reactor_monitor_local::project_root().join("otel-collector/collector-jaeger.yaml"),
        ),
        forward_to: Some(jaeger.otlp_endpoint.clone()),
        ..LocalOptions::default()
    };
    let report = run::run(options).await.unwrap();
    assert!(report.ok(), "{}", report.verdict);

    // The parse-error traces of the run, from the spans the receiver got.
    let expected: HashSet<String> = report
        .spans
        .iter()
        .filter(|s| {
            s.is_record() && s.attr(spans::FLOW_TYPE) == Some(FlowType::ParseError.as_str())
        })
        .map(|s| s.trace_id.clone())
        .collect();
    assert!(!expected.is_empty());

    // Forwarding is asynchronous: wait until Jaeger has them all.
    let tags = json!({ spans::FLOW_TYPE: FlowType::ParseError.as_str() });
    let mut traces = Vec::new();
    for _ in 0..100 {
        traces = jaeger.traces(SERVICE_NAME, &tags, 1000).await.unwrap();
        if traces.len() >= expected.len() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let found: HashSet<String> = traces
        .iter()
        .map(|t| t["traceID"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(found, expected, "parse-error traces in Jaeger");

    let received: HashMap<&str, usize> =
        report.spans.iter().fold(HashMap::new(), |mut counts, s| {
            *counts.entry(s.trace_id.as_str()).or_default() += 1;
            counts
        });
    for trace in &traces {
        let id = trace["traceID"].as_str().unwrap();
        let spans_of = trace["spans"].as_array().unwrap();
        assert_eq!(spans_of.len(), received[id], "trace {id}: every span");
        let ids: HashSet<&str> = spans_of
            .iter()
            .map(|s| s["spanID"].as_str().unwrap())
            .collect();
        let mut roots = 0;
        for span in spans_of {
            let parents: Vec<&Value> = span["references"]
                .as_array()
                .into_iter()
                .flatten()
                .filter(|r| r["refType"] == "CHILD_OF")
                .collect();
            if parents.is_empty() {
                roots += 1;
            }
            for parent in parents {
                assert_eq!(parent["traceID"], id);
                assert!(
                    ids.contains(parent["spanID"].as_str().unwrap()),
                    "trace {id}: {} has a parent that is not in Jaeger",
                    span["operationName"]
                );
            }
        }
        assert_eq!(roots, 1, "trace {id}: one root");
        assert!(
            spans_of
                .iter()
                .any(|s| tag(s, spans::FLOW_TYPE) == Some(&json!("parse-error"))),
            "trace {id}: a span tagged flow_type=parse-error"
        );
    }
    jaeger.stop().await;
}
