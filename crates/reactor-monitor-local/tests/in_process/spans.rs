//! The spans of a batch on the OpenTelemetry SDK's in-memory exporter: what every record's
//! subtree says, the trace volume plan, links to producers. No receiver, no emulator; the
//! end-to-end tests keep the OTLP receiver for what crosses the wire.

use reactor_monitor_local::testing as support;

use opentelemetry::trace::{SpanId, SpanKind, Status, TraceContextExt, Tracer};
use opentelemetry::{Context, Value};
use opentelemetry_sdk::trace::{InMemorySpanExporter, SpanData};
use opentelemetry_semantic_conventions::attribute as semconv;
use reactor_monitor::domain::FlowType;
use reactor_monitor::pipeline::BatchReport;
use reactor_monitor::telemetry::emf;
use reactor_monitor::telemetry::names::{metrics, spans};
use reactor_monitor::telemetry::traces::{self, CallTargets, OVERFLOW_SPAN, TracePlan};
use support::{batch, memory_pipeline, payload};

const STREAM: &str = "indications-stream";
const RECORD_SPAN: &str = "process indications-stream";

fn targets() -> CallTargets {
    CallTargets {
        region: "us-east-1".into(),
        stream_name: STREAM.into(),
        table_name: "indications-table".into(),
        episode_table_name: "reactor-episodes".into(),
        topic_arn: "arn:aws:sns:us-east-1:123456789012:reactor-notifications".into(),
        on_call_topic_arn: "arn:aws:sns:us-east-1:123456789012:reactor-on-call".into(),
        bucket: "dead-letters".into(),
    }
}

fn attr(span: &SpanData, key: &str) -> Option<String> {
    span.attributes
        .iter()
        .find(|kv| kv.key.as_str() == key)
        .map(|kv| match &kv.value {
            Value::Array(values) => values.to_string(),
            value => value.as_str().into_owned(),
        })
}

/// The spans of one invocation (named `invocation`) whose record subtrees are `report`'s.
fn spans_of(report: &BatchReport, plan: TracePlan) -> Vec<SpanData> {
    let exporter = InMemorySpanExporter::default();
    let provider = traces::provider_builder()
        .with_simple_exporter(exporter.clone())
        .build();
    let tracer = traces::tracer(&provider);
    let invocation = Context::new().with_span(tracer.start("invocation"));
    traces::emit_batch(&tracer, &invocation, report, &plan, &targets());
    invocation.span().end();
    provider.force_flush().unwrap();
    exporter.get_finished_spans().unwrap()
}

async fn traced(payloads: Vec<Vec<u8>>, plan: TracePlan) -> Vec<SpanData> {
    let report = memory_pipeline().process(batch(payloads), None).await;
    spans_of(&report, plan)
}

fn records(spans: &[SpanData]) -> Vec<&SpanData> {
    spans.iter().filter(|s| s.name == RECORD_SPAN).collect()
}

fn invocation(spans: &[SpanData]) -> &SpanData {
    spans.iter().find(|s| s.name == "invocation").unwrap()
}

fn children<'a>(spans: &'a [SpanData], parent: &SpanData) -> Vec<&'a SpanData> {
    spans
        .iter()
        .filter(|s| s.parent_span_id == parent.span_context.span_id())
        .collect()
}

#[tokio::test]
async fn every_record_has_a_subtree_tagged_with_its_flow() {
    let spans = traced(
        vec![
            payload("r1", 100.0),
            payload("r1", 750.0),
            b"{\"temp\":".to_vec(),
        ],
        TracePlan::default(),
    )
    .await;

    let invocation = invocation(&spans);
    let records = records(&spans);
    assert_eq!(records.len(), 3);
    for record in &records {
        assert_eq!(record.parent_span_id, invocation.span_context.span_id());
        assert_eq!(
            record.span_context.trace_id(),
            invocation.span_context.trace_id()
        );
        assert_eq!(record.span_kind, SpanKind::Consumer);
        assert!(
            attr(record, spans::XRAY_ANNOTATIONS)
                .unwrap()
                .contains(spans::FLOW_TYPE)
        );
        assert_eq!(
            attr(record, semconv::MESSAGING_SYSTEM).as_deref(),
            Some("aws_kinesis")
        );
        assert_eq!(
            attr(record, semconv::MESSAGING_OPERATION_NAME).as_deref(),
            Some("process")
        );
        assert_eq!(
            attr(record, semconv::MESSAGING_OPERATION_TYPE).as_deref(),
            Some("process")
        );
        assert_eq!(
            attr(record, semconv::MESSAGING_DESTINATION_NAME).as_deref(),
            Some(STREAM)
        );
        assert!(attr(record, semconv::MESSAGING_MESSAGE_ID).is_some());
    }
    let names_under = |record: &SpanData| -> Vec<String> {
        let mut names: Vec<String> = children(&spans, record)
            .into_iter()
            .map(|s| {
                assert_eq!(
                    attr(s, spans::FLOW_TYPE),
                    attr(record, spans::FLOW_TYPE),
                    "{}",
                    s.name
                );
                s.name.to_string()
            })
            .collect();
        names.sort();
        names
    };
    let flow = |f: FlowType| {
        *records
            .iter()
            .find(|r| attr(r, spans::FLOW_TYPE).as_deref() == Some(f.as_str()))
            .unwrap()
    };
    // Both readings are reactor r1's: the batch's one read of the alert ledger and episode
    // states, the state write and the `opened` page (the PRODUCER span of the hot reading that
    // caused it, a CLIENT call of the other) carry
    // every reading of the reactor, since each reading moved its episode state.
    assert_eq!(
        names_under(flow(FlowType::StoreOnly)),
        [
            "DynamoDB.BatchGetItem",
            "DynamoDB.BatchWriteItem",
            "DynamoDB.TransactWriteItems",
            "SNS.PublishBatch",
            "decode"
        ]
    );
    assert_eq!(
        names_under(flow(FlowType::StoreAndAlert)),
        [
            "DynamoDB.BatchGetItem",
            "DynamoDB.BatchWriteItem",
            "DynamoDB.TransactWriteItems",
            "decode",
            "publish reactor-notifications",
            "publish reactor-on-call",
        ]
    );
    assert_eq!(
        names_under(flow(FlowType::ParseError)),
        ["S3.PutObject", "decode"]
    );
    let alert = flow(FlowType::StoreAndAlert);
    assert_eq!(attr(alert, spans::SEVERITY).as_deref(), Some("warning"));
    assert_eq!(attr(alert, spans::TEMPERATURE_C).as_deref(), Some("750"));
    assert_eq!(
        attr(flow(FlowType::ParseError), spans::REJECT_REASON).as_deref(),
        Some("not_json")
    );
    // A record span lasts as long as the calls that carried it.
    let store_only = flow(FlowType::StoreOnly);
    let store = children(&spans, store_only)
        .into_iter()
        .find(|s| s.name.starts_with("DynamoDB"))
        .unwrap();
    assert!(store_only.start_time <= store.start_time);
    assert!(store_only.end_time >= store.end_time);
}

#[tokio::test]
#[allow(deprecated)] // rpc.service: the ADOT awsxray exporter still reads it
async fn an_alert_is_published_by_a_producer_span_with_the_messaging_and_aws_sdk_attributes() {
    let spans = traced(vec![payload("r1", 750.0)], TracePlan::default()).await;

    let publish = spans
        .iter()
        .find(|s| s.name == "publish reactor-notifications")
        .unwrap();
    assert_eq!(publish.span_kind, SpanKind::Producer);
    let expected = [
        (semconv::MESSAGING_SYSTEM, "aws_sns"),
        (semconv::MESSAGING_OPERATION_NAME, "publish"),
        (semconv::MESSAGING_OPERATION_TYPE, "send"),
        (semconv::MESSAGING_DESTINATION_NAME, "reactor-notifications"),
        (
            semconv::AWS_SNS_TOPIC_ARN,
            "arn:aws:sns:us-east-1:123456789012:reactor-notifications",
        ),
        (semconv::RPC_SYSTEM, "aws-api"),
        (semconv::RPC_SERVICE, "SNS"),
        (semconv::RPC_METHOD, "PublishBatch"),
        (semconv::CLOUD_REGION, "us-east-1"),
    ];
    for (key, value) in expected {
        assert_eq!(attr(publish, key).as_deref(), Some(value), "{key}");
    }
}

#[tokio::test]
async fn dynamodb_calls_carry_the_database_attributes() {
    let spans = traced(vec![payload("r1", 750.0)], TracePlan::default()).await;

    let calls: Vec<&SpanData> = spans
        .iter()
        .filter(|s| s.name.starts_with("DynamoDB."))
        .collect();
    // The ledger lookup (with the episode state), the reading's write after its publish (the
    // ledger's record) and the episode state's transaction.
    assert_eq!(calls.len(), 3);
    for call in calls {
        assert_eq!(call.span_kind, SpanKind::Client);
        assert_eq!(
            attr(call, semconv::DB_SYSTEM_NAME).as_deref(),
            Some("aws.dynamodb")
        );
        let operation = attr(call, semconv::DB_OPERATION_NAME).unwrap();
        assert_eq!(call.name, format!("DynamoDB.{operation}"));
        let table = match operation.as_str() {
            // The episode state's conditional write goes to the episode table.
            "TransactWriteItems" => "[\"reactor-episodes\"]",
            _ => "[\"indications-table\"]",
        };
        assert_eq!(
            attr(call, semconv::AWS_DYNAMODB_TABLE_NAMES).as_deref(),
            Some(table),
            "{operation}"
        );
    }
}

#[tokio::test]
async fn a_payload_traceparent_becomes_a_link_to_the_producer() {
    let with_parent = br#"{"temp":1,"reactor":"r","date":"2020-03-07T16:29:50Z","traceparent":"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"}"#;

    let spans = traced(vec![with_parent.to_vec()], TracePlan::default()).await;

    let record = records(&spans)[0];
    let linked: Vec<(String, String)> = record
        .links
        .iter()
        .map(|l| {
            (
                l.span_context.trace_id().to_string(),
                l.span_context.span_id().to_string(),
            )
        })
        .collect();
    assert_eq!(
        linked,
        [(
            "0af7651916cd43dd8448eb211c80319c".to_string(),
            "b7ad6b7169203331".to_string()
        )]
    );
}

#[tokio::test]
async fn records_past_the_trace_budget_are_grouped_into_overflow_traces_linked_to_the_invocation() {
    let payloads: Vec<Vec<u8>> = (0..10).map(|i| payload("r", i as f64)).collect();

    let spans = traced(
        payloads,
        TracePlan {
            store_only_ratio: 1.0,
            max_records_per_trace: 4,
        },
    )
    .await;

    let invocation = invocation(&spans);
    let records = records(&spans);
    assert_eq!(records.len(), 10);
    let inside = records
        .iter()
        .filter(|r| r.span_context.trace_id() == invocation.span_context.trace_id())
        .count();
    assert_eq!(inside, 4);
    // 10 records at 4 a trace: the invocation's and two overflow traces, of 4 and 2.
    let roots: Vec<&SpanData> = spans.iter().filter(|s| s.name == OVERFLOW_SPAN).collect();
    assert_eq!(roots.len(), 2);
    let mut sizes = Vec::new();
    for root in &roots {
        assert_eq!(root.parent_span_id, SpanId::INVALID);
        let linked: Vec<_> = root.links.iter().map(|l| l.span_context.clone()).collect();
        assert_eq!(linked, std::slice::from_ref(&invocation.span_context));
        let under: Vec<_> = records
            .iter()
            .filter(|r| r.span_context.trace_id() == root.span_context.trace_id())
            .collect();
        assert!(
            under
                .iter()
                .all(|r| r.parent_span_id == root.span_context.span_id())
        );
        sizes.push(under.len());
    }
    sizes.sort();
    assert_eq!(sizes, [2, 4]);
}

#[tokio::test]
async fn store_only_sampling_keeps_every_alert_and_parse_error_and_metrics_stay_exact() {
    let mut payloads: Vec<Vec<u8>> = (0..50).map(|i| payload("r", i as f64)).collect();
    payloads.push(payload("r", 900.0));
    payloads.push(b"nope".to_vec());

    let report = memory_pipeline().process(batch(payloads), None).await;
    let spans = spans_of(
        &report,
        TracePlan {
            store_only_ratio: 0.0,
            max_records_per_trace: 150,
        },
    );
    let lines = emf::batch_lines(&report, false, 0);

    let flows: Vec<String> = records(&spans)
        .into_iter()
        .filter_map(|s| attr(s, spans::FLOW_TYPE))
        .collect();
    assert_eq!(flows.len(), 2);
    assert!(flows.contains(&"store+alert".into()) && flows.contains(&"parse-error".into()));
    let records_of = |flow: &str| -> u64 {
        lines
            .iter()
            .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
            .filter(|v| v[metrics::DIM_FLOW_TYPE] == flow)
            .filter_map(|v| v[metrics::RECORDS].as_u64())
            .sum()
    };
    assert_eq!(records_of("store-only"), 50);
    assert_eq!(records_of("store+alert"), 1);
    assert_eq!(records_of("parse-error"), 1);
}

#[tokio::test]
async fn an_injected_store_failure_yields_an_error_span_and_a_reported_record() {
    let pipeline = memory_pipeline();
    pipeline.store.faults.fail_once("2");

    let report = pipeline
        .process(batch(vec![payload("r", 1.0), payload("r", 2.0)]), None)
        .await;
    let spans = spans_of(&report, TracePlan::default());

    let failures: Vec<String> = report
        .response()
        .batch_item_failures
        .into_iter()
        .filter_map(|f| f.item_identifier)
        .collect();
    assert_eq!(failures, ["2"]);
    let record = |seq: &str| {
        *records(&spans)
            .iter()
            .find(|s| attr(s, semconv::MESSAGING_MESSAGE_ID).as_deref() == Some(seq))
            .unwrap()
    };
    let failed = record("2");
    assert!(matches!(failed.status, Status::Error { .. }));
    assert!(failed.events.iter().any(|e| e.name == "exception"));
    assert_eq!(attr(failed, spans::OUTCOME).as_deref(), Some("failed"));
    assert_eq!(
        attr(failed, spans::FLOW_TYPE).as_deref(),
        Some("store-only")
    );
    let write = children(&spans, failed)
        .into_iter()
        .find(|s| s.name == "DynamoDB.BatchWriteItem")
        .unwrap();
    assert!(matches!(write.status, Status::Error { .. }));
    assert!(attr(write, semconv::ERROR_TYPE).is_some());
    assert_eq!(record("1").status, Status::Unset);
}

#[tokio::test]
async fn the_invocation_span_names_the_function_its_account_and_the_batch_size() {
    use reactor_monitor::telemetry::function::{
        FunctionTelemetry, InvocationContext, MetricsSink, SpanExport,
    };
    let exporter = InMemorySpanExporter::default();
    let provider = traces::provider_builder()
        .with_simple_exporter(exporter.clone())
        .build();
    let telemetry = FunctionTelemetry::new(
        Some(SpanExport {
            provider: provider.clone(),
            plan: TracePlan::default(),
            targets: targets(),
            join_xray_trace: false,
        }),
        MetricsSink::Collect(Default::default()),
    );
    let arn = "arn:aws:lambda:us-east-1:123456789012:function:reactor-monitor:live";
    let report = memory_pipeline()
        .process(
            batch(vec![payload("r1", 100.0), payload("r2", 750.0)]),
            None,
        )
        .await;

    let invocation = telemetry.start_invocation(&InvocationContext {
        request_id: "request-1",
        invoked_function_arn: arn,
        xray_trace_id: None,
        records: 2,
    });
    telemetry.finish_invocation(invocation, &report, None, None, None);

    let spans = exporter.get_finished_spans().unwrap();
    let invocation = spans
        .iter()
        .find(|s| s.name == reactor_monitor::telemetry::names::SERVICE_NAME)
        .unwrap();
    assert_eq!(invocation.span_kind, SpanKind::Server);
    let expected = [
        (semconv::FAAS_TRIGGER, "pubsub"),
        (semconv::FAAS_INVOCATION_ID, "request-1"),
        (semconv::AWS_LAMBDA_INVOKED_ARN, arn),
        (semconv::CLOUD_ACCOUNT_ID, "123456789012"),
        (semconv::MESSAGING_BATCH_MESSAGE_COUNT, "2"),
    ];
    for (key, value) in expected {
        assert_eq!(attr(invocation, key).as_deref(), Some(value), "{key}");
    }
    assert_eq!(records(&spans).len(), 2);
}
