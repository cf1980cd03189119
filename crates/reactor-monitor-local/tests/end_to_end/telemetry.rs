//! Telemetry that an SRE can trust, across the wire: spans received over OTLP from a local
//! run, the receiver itself, request ids answered by the emulator, and EMF counts equal to what
//! the emulator holds. What a batch's spans say in process is in `tests/in_process/spans.rs`.

use reactor_monitor_local::testing as support;

use reactor_monitor::domain::FlowType;
use reactor_monitor::pipeline::BatchReport;
use reactor_monitor::telemetry::emf;
use reactor_monitor::telemetry::names::metrics;
use reactor_monitor::telemetry::traces::{self, CallTargets, TracePlan};
use reactor_monitor_local::otlp::{OtlpReceiver, ReceivedSpan};
use reactor_monitor_local::run::{self, LocalOptions};
use support::{batch, memory_pipeline, payload};

/// Emits the subtrees of a batch's report into a fresh receiver; returns its spans.
async fn spans_of(
    report: &BatchReport,
    plan: TracePlan,
    targets: &CallTargets,
) -> Vec<ReceivedSpan> {
    use opentelemetry::trace::{TraceContextExt, Tracer};
    let receiver = OtlpReceiver::start_forwarding(None).await.unwrap();
    let provider = traces::otlp_provider(Some(&receiver.endpoint)).unwrap();
    let tracer = traces::tracer(&provider);
    let invocation = opentelemetry::Context::new().with_span(tracer.start("invocation"));
    traces::emit_batch(&tracer, &invocation, report, &plan, targets);
    invocation.span().end();
    tokio::task::spawn_blocking(move || provider.force_flush().unwrap())
        .await
        .unwrap();
    receiver.spans()
}

#[tokio::test]
async fn emf_lines_respect_the_format_limits_and_carry_every_duration() {
    let payloads: Vec<Vec<u8>> = (0..250)
        .map(|i| payload(&format!("r{}", i % 3), 650.0 + i as f64))
        .collect();
    let report = memory_pipeline().process(batch(payloads), None).await;

    let lines: Vec<serde_json::Value> = emf::batch_lines(&report, true, 1_700_000_000_000)
        .iter()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();

    let mut durations = 0;
    for line in &lines {
        let directive = &line["_aws"]["CloudWatchMetrics"][0];
        assert_eq!(directive["Namespace"], metrics::NAMESPACE);
        for metric in directive["Metrics"].as_array().unwrap() {
            let name = metric["Name"].as_str().unwrap();
            let dims: Vec<&str> = directive["Dimensions"][0]
                .as_array()
                .unwrap()
                .iter()
                .map(|d| d.as_str().unwrap())
                .collect();
            let (_, expected) = metrics::CATALOGUE
                .iter()
                .find(|(n, _)| *n == name)
                .expect(name);
            assert_eq!(&dims, expected, "{name}");
            if let Some(values) = line[name].as_array() {
                assert!(values.len() <= emf::MAX_VALUES_PER_METRIC);
                if name == metrics::RECORD_DURATION {
                    durations += values.len();
                }
            }
        }
    }
    assert_eq!(durations, 250);
    let hottest: Vec<f64> = lines
        .iter()
        .filter_map(|l| l[metrics::MAX_TEMPERATURE].as_f64())
        .collect();
    assert_eq!(hottest.len(), 3);
    assert!(hottest.contains(&899.0));
    let cold: Vec<u64> = lines
        .iter()
        .filter_map(|l| l[metrics::COLD_START].as_u64())
        .collect();
    assert_eq!(cold, [1]);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_local_run_shows_the_same_flows_in_its_spans_as_in_its_outcomes() {
    let emulator = reactor_monitor_local::emulator::Emulator::start()
        .await
        .unwrap();
    let options = LocalOptions {
        endpoint: Some(emulator.endpoint().to_string()),
        readings: 600,
        batch_size: 100,
        ..LocalOptions::default()
    };

    let report = run::run(options).await.unwrap();

    assert!(report.ok(), "{}", report.verdict);
    for (from_traces, from_outcomes) in report.trace_flows.iter().zip(&report.flows) {
        assert_eq!(from_traces.flow_type, from_outcomes.flow_type);
        assert_eq!(
            from_traces.count, from_outcomes.count,
            "{:?}",
            from_traces.flow_type
        );
        assert_eq!(from_traces.errors, from_outcomes.errors);
    }
    assert!(report.spans_received > 600 * 2);
    // Every alert on-call received leads back to its reading: its traceparent is a span's.
    assert!(report.verified.alerts_delivered > 0);
    assert_eq!(
        report.verified.alerts_traced_to_a_span,
        report.verified.alerts_delivered
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_receiver_forwards_every_request_unchanged_to_the_otlp_endpoint() {
    use opentelemetry::trace::{Span, Tracer};
    let downstream = OtlpReceiver::start_forwarding(None).await.unwrap();
    let local = OtlpReceiver::start_forwarding(Some(downstream.endpoint.clone()))
        .await
        .unwrap();
    let provider = traces::otlp_provider(Some(&local.endpoint)).unwrap();
    let tracer = traces::tracer(&provider);

    tracer.start("forwarded").end();
    tokio::task::spawn_blocking(move || provider.force_flush().unwrap())
        .await
        .unwrap();
    let until = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while downstream.spans().is_empty() && std::time::Instant::now() < until {
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }

    let here: Vec<String> = local.spans().iter().map(|s| s.span_id.clone()).collect();
    let there: Vec<String> = downstream
        .spans()
        .iter()
        .map(|s| s.span_id.clone())
        .collect();
    assert_eq!(here.len(), 1);
    assert_eq!(here, there);
}

#[tokio::test(flavor = "multi_thread")]
async fn every_call_span_carries_the_request_id_the_service_answered_with() {
    let (_emulator, sdk, resources) = support::emulator_with_resources(1).await;
    let pipeline = reactor_monitor::aws::pipeline(&sdk, &resources.config());
    let payloads = vec![payload("r1", 10.0), payload("r1", 720.0), b"x".to_vec()];
    let event = support::kinesis_event(&payloads, 70);
    let (_, report) = reactor_monitor::lambda::handle(&pipeline, support::lambda_event(event))
        .await
        .unwrap();

    let spans = spans_of(&report, TracePlan::default(), &CallTargets::default()).await;

    let calls: Vec<&ReceivedSpan> = spans
        .iter()
        .filter(|s| s.attr("rpc.system") == Some("aws-api"))
        .collect();
    let mut methods: Vec<&str> = calls.iter().filter_map(|s| s.attr("rpc.method")).collect();
    methods.sort();
    methods.dedup();
    assert_eq!(
        methods,
        [
            "BatchGetItem",
            "BatchWriteItem",
            "PublishBatch",
            "PutObject",
            // The reactors' new episode states.
            "TransactWriteItems"
        ]
    );
    for call in &calls {
        let id = call.attr("aws.request_id").unwrap_or_default();
        assert!(!id.is_empty(), "{} has no aws.request_id", call.name);
    }
    // Each call has the id of its own response.
    let id_of = |method: &str| -> Vec<&str> {
        calls
            .iter()
            .filter(|s| s.attr("rpc.method") == Some(method))
            .filter_map(|s| s.attr("aws.request_id"))
            .collect()
    };
    assert_ne!(id_of("PutObject")[0], id_of("PublishBatch")[0]);
}

#[tokio::test(flavor = "multi_thread")]
async fn emf_counts_equal_what_the_emulator_holds_after_the_batch() {
    use reactor_monitor_local::generate::Placement;
    let (_emulator, sdk, resources) = support::emulator_with_resources(1).await;
    let pipeline = reactor_monitor::aws::pipeline(&sdk, &resources.config());
    let payloads = vec![
        payload("r1", 10.0),
        payload("r1", 720.0),
        b"x".to_vec(),
        payload("r2", 805.0),
        b"{}".to_vec(),
    ];
    let event = support::kinesis_event(&payloads, 40);
    let placements: Vec<Placement> = (40..45)
        .map(|seq| Placement {
            shard_id: "shardId-000000000000".into(),
            sequence_number: seq.to_string(),
        })
        .collect();

    let (_, report) = reactor_monitor::lambda::handle(&pipeline, support::lambda_event(event))
        .await
        .unwrap();
    let verified = reactor_monitor_local::verify::verify(&sdk, &resources, &placements)
        .await
        .unwrap();
    let lines: Vec<serde_json::Value> = emf::batch_lines(&report, false, 0)
        .iter()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();

    let sum = |metric: &str, dim: Option<(&str, &str)>| -> u64 {
        lines
            .iter()
            .filter(|l| dim.is_none_or(|(k, v)| l[k] == v))
            .filter_map(|l| l[metric].as_u64())
            .sum()
    };
    let stored = sum(
        metrics::RECORDS,
        Some((metrics::DIM_FLOW_TYPE, "store-only")),
    ) + sum(
        metrics::RECORDS,
        Some((metrics::DIM_FLOW_TYPE, "store+alert")),
    );
    assert_eq!(stored as usize, verified.items);
    assert_eq!(sum(metrics::READINGS, None) as usize, verified.items);
    assert_eq!(
        sum(metrics::DEAD_LETTERED, None) as usize,
        verified.dead_letters
    );
    assert_eq!(
        sum(metrics::ALERTS, None) as usize,
        verified.alerts_delivered
    );
    assert_eq!(verified.items, 3);
}

#[test]
fn the_unique_flows_name_their_entry_point_and_the_resources_they_touch() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let spans = runtime.block_on(async {
        let targets = CallTargets {
            stream_name: "indications-stream".into(),
            table_name: "indications-table".into(),
            episode_table_name: "reactor-episodes".into(),
            topic_arn: "arn:aws:sns:us-east-1:123456789012:reactor-notifications".into(),
            on_call_topic_arn: "arn:aws:sns:us-east-1:123456789012:reactor-on-call".into(),
            bucket: "dead-letters".into(),
            ..CallTargets::default()
        };
        let report = memory_pipeline()
            .process(batch(vec![payload("r", 750.0), b"?".to_vec()]), None)
            .await;
        spans_of(&report, TracePlan::default(), &targets).await
    });

    let flows = reactor_monitor_local::otlp::unique_flows(&spans);

    let alert = flows
        .iter()
        .find(|f| f.flow_type == FlowType::StoreAndAlert)
        .unwrap();
    assert_eq!(alert.entry_point, "Kinesis indications-stream");
    assert_eq!(
        alert.resources,
        [
            "DynamoDB indications-table",
            "DynamoDB reactor-episodes",
            "SNS reactor-notifications",
            "SNS reactor-on-call"
        ]
    );
    let rejected = flows
        .iter()
        .find(|f| f.flow_type == FlowType::ParseError)
        .unwrap();
    assert_eq!(rejected.resources, ["S3 dead-letters"]);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_fully_traced_batch_larger_than_the_export_queue_loses_no_span() {
    use opentelemetry::trace::{TraceContextExt, Tracer};
    let receiver = OtlpReceiver::start_forwarding(None).await.unwrap();
    let provider = traces::otlp_provider(Some(&receiver.endpoint)).unwrap();
    let tracer = traces::tracer(&provider);
    let payloads: Vec<Vec<u8>> = (0..4_000).map(|i| payload("r", (i % 900) as f64)).collect();
    let report = memory_pipeline().process(batch(payloads), None).await;

    let invocation = opentelemetry::Context::new().with_span(tracer.start("invocation"));
    let flush = || tokio::task::block_in_place(|| provider.force_flush().unwrap());
    let traced = traces::emit_batch_flushing(
        &tracer,
        &invocation,
        &report,
        &TracePlan::default(),
        &CallTargets::default(),
        &flush,
    );
    invocation.span().end();
    tokio::task::block_in_place(|| provider.force_flush().unwrap());

    let spans = receiver.spans();
    assert_eq!(traced, 4_000);
    assert_eq!(spans.iter().filter(|s| s.is_record()).count(), 4_000);
    assert!(
        spans.len() > 8_192,
        "more spans than the queue holds: {}",
        spans.len()
    );
}
