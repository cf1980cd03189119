//! Flow analysis: the unique flows of received spans, per flow type, like X-Ray's trace groups.

use serde::Serialize;

use super::ReceivedSpan;
use crate::summary::avg_p50_p99;
use reactor_monitor::domain::FlowType;
use reactor_monitor::telemetry::names::spans;

/// The AWS resource a call span touched, named as a service map would.
fn resource_of(span: &ReceivedSpan) -> Option<String> {
    let service = span.attr("rpc.service")?;
    let name = match service {
        "DynamoDB" => span.attr("aws.dynamodb.table_names")?.to_string(),
        "SNS" => span
            .attr("aws.sns.topic.arn")?
            .rsplit(':')
            .next()?
            .to_string(),
        "S3" => span.attr("aws.s3.bucket")?.to_string(),
        _ => return Some(service.to_string()),
    };
    Some(format!("{service} {name}"))
}

/// One row of the unique-flows view, computed from record spans.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct TraceFlowRow {
    pub flow_type: FlowType,
    /// Record spans (one per traced record delivery).
    pub count: usize,
    pub errors: usize,
    pub avg_ms: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    /// Distinct traces the record spans belong to.
    pub traces: usize,
    /// Where the flow starts: the stream its records come from.
    pub entry_point: String,
    /// The AWS resources its record subtrees touched, e.g. `DynamoDB indications-table`.
    pub resources: Vec<String>,
}

/// The unique-flows view of received spans: per flow type, like X-Ray's trace groups.
pub fn unique_flows(spans: &[ReceivedSpan]) -> Vec<TraceFlowRow> {
    FlowType::ALL
        .iter()
        .map(|&flow| {
            let records: Vec<&ReceivedSpan> = spans
                .iter()
                .filter(|s| s.is_record() && s.attr(spans::FLOW_TYPE) == Some(flow.as_str()))
                .collect();
            let mut durations: Vec<f64> = records.iter().map(|s| s.duration_ms()).collect();
            let (avg_ms, p50_ms, p99_ms) = avg_p50_p99(&mut durations);
            let traces: std::collections::HashSet<&str> =
                records.iter().map(|s| s.trace_id.as_str()).collect();
            let record_ids: std::collections::HashSet<&str> =
                records.iter().map(|s| s.span_id.as_str()).collect();
            let resources: std::collections::BTreeSet<String> = spans
                .iter()
                .filter(|s| record_ids.contains(s.parent_span_id.as_str()))
                .filter_map(resource_of)
                .collect();
            let entry_point = records
                .iter()
                .find_map(|s| s.attr("messaging.destination.name"))
                .map(|stream| format!("Kinesis {stream}"))
                .unwrap_or_default();
            TraceFlowRow {
                flow_type: flow,
                count: records.len(),
                errors: records.iter().filter(|s| s.error).count(),
                avg_ms,
                p50_ms,
                p99_ms,
                traces: traces.len(),
                entry_point,
                resources: resources.into_iter().collect(),
            }
        })
        .collect()
}
