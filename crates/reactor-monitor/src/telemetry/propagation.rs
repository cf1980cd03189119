//! Trace context across process boundaries: the X-Ray header of the invocation, the W3C
//! `traceparent` a producer puts in a payload, and the one each alert goes out with.
//!
//! An alert carries the context of its PRODUCER span (`publish <topic>`), so that whoever
//! consumes it continues the reading's trace. The spans of a record are built after the batch
//! (`traces`), so that context is decided before the publication: [`AlertContexts`] gives each
//! alerting record, on its first publication, a span id and a place among the invocation's
//! traced records (alerts first), hence the trace it will be emitted in; emission then starts
//! the publish span with exactly those ids. Like OpenTelemetry's own propagation (and like the
//! request id of `ports::note_request_id`), the contexts are ambient to the invocation's task:
//! the SNS adapter asks [`alert_trace_headers`] and the ports stay as they are.
//!
//! An alert published while the invocation is not sampled still carries its context, with
//! the sampled flag 00 (W3C: the caller did not record; a consumer may decide for itself).
//! With no span export at all, alerts carry no context.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};

use opentelemetry::Context;
use opentelemetry::propagation::TextMapPropagator;
use opentelemetry::trace::{SpanContext, SpanId, TraceContextExt, TraceFlags, TraceId, TraceState};
use opentelemetry_sdk::propagation::TraceContextPropagator;

use crate::ports::Origin;

/// The span context of an X-Ray trace header (`Root=…;Parent=…;Sampled=…`).
pub fn xray_parent(header: &str) -> Option<Context> {
    let sc = opentelemetry_aws::trace::xray_propagator::span_context_from_str(header)?;
    Some(Context::new().with_remote_span_context(sc))
}

/// The span context of a W3C `traceparent` (`00-<trace id>-<span id>-<flags>`).
pub fn traceparent_context(value: &str) -> Option<SpanContext> {
    let mut parts = value.trim().split('-');
    let (version, trace, span, flags) =
        (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
    if version != "00"
        || trace.len() != 32
        || span.len() != 16
        || flags.len() != 2
        || parts.next().is_some()
    {
        return None;
    }
    let trace_id = TraceId::from_hex(trace)
        .ok()
        .filter(|t| *t != TraceId::INVALID)?;
    let span_id = SpanId::from_hex(span)
        .ok()
        .filter(|s| *s != SpanId::INVALID)?;
    let flags = u8::from_str_radix(flags, 16).ok()?;
    Some(SpanContext::new(
        trace_id,
        span_id,
        TraceFlags::new(flags),
        true,
        TraceState::default(),
    ))
}

/// Where a record stands: its shard and sequence number (with the subsequence).
type RecordKey = (String, String);

fn key(origin: &Origin) -> RecordKey {
    (
        origin.shard_id.clone(),
        origin.sequence_number.as_str().to_string(),
    )
}

/// The trace contexts of the alerts of one invocation, decided at their first publication.
#[derive(Debug)]
pub struct AlertContexts {
    invocation: SpanContext,
    records_per_trace: usize,
    assigned: Mutex<HashMap<RecordKey, PublishSpan>>,
}

/// The publish span of an alerting record, decided before the call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PublishSpan {
    /// The record's place among the invocation's traced records: alerting records come
    /// first, in order of publication, so that this place does not depend on what happens to
    /// the records after.
    pub position: usize,
    pub span_id: SpanId,
}

impl AlertContexts {
    /// For the invocation span `invocation`, whose traces hold `records_per_trace` record
    /// subtrees each (`TracePlan::max_records_per_trace`).
    pub fn new(invocation: SpanContext, records_per_trace: usize) -> Self {
        Self {
            invocation,
            records_per_trace: records_per_trace.max(1),
            assigned: Mutex::new(HashMap::new()),
        }
    }

    /// The publish span of the record at `origin`, decided now if it was not yet: a
    /// publication retried (a split batch, a redelivery in the same invocation) goes out with
    /// the same context.
    pub fn publish_span(&self, origin: &Origin) -> PublishSpan {
        let mut assigned = self.assigned.lock().expect("alert contexts lock");
        let position = assigned.len();
        *assigned.entry(key(origin)).or_insert_with(|| PublishSpan {
            position,
            span_id: random_span_id(),
        })
    }

    /// The publish span decided for the record at `origin`, if it published.
    pub fn decided(&self, origin: &Origin) -> Option<PublishSpan> {
        let assigned = self.assigned.lock().expect("alert contexts lock");
        assigned.get(&key(origin)).copied()
    }

    /// How many records published.
    pub fn len(&self) -> usize {
        self.assigned.lock().expect("alert contexts lock").len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The span context a publication carries: the trace of the record's group (the
    /// invocation's for the first `records_per_trace` traced records, an overflow trace's
    /// after) and the decided span id.
    pub fn context_of(&self, publish: PublishSpan) -> SpanContext {
        let group = publish.position / self.records_per_trace;
        let (trace_id, flags, state) = if group == 0 {
            (
                self.invocation.trace_id(),
                self.invocation.trace_flags(),
                self.invocation.trace_state().clone(),
            )
        } else {
            (
                self.overflow_trace_id(group),
                TraceFlags::SAMPLED,
                TraceState::default(),
            )
        };
        SpanContext::new(trace_id, publish.span_id, flags, false, state)
    }

    /// The trace id of overflow group `group` (1 for the first), decided from the
    /// invocation's: known before the batch ends, and an X-Ray id still (its first 4 bytes,
    /// the epoch seconds, are the invocation's).
    pub fn overflow_trace_id(&self, group: usize) -> TraceId {
        let invocation = self.invocation.trace_id().to_bytes();
        let mut bytes = invocation;
        let seed = u128::from_be_bytes(invocation) as u64 ^ (group as u64).rotate_left(32);
        let (high, low) = (mix(seed), mix(seed ^ 0x9e37_79b9_7f4a_7c15));
        bytes[4..8].copy_from_slice(&(high as u32).to_be_bytes());
        bytes[8..16].copy_from_slice(&low.max(1).to_be_bytes());
        TraceId::from_bytes(bytes)
    }
}

/// SplitMix64's finaliser: spreads a seed over all 64 bits.
fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

fn random_span_id() -> SpanId {
    SpanId::from(rand::random::<u64>().max(1))
}

tokio::task_local! {
    static ALERT_CONTEXTS: Arc<AlertContexts>;
}

/// Runs `batch` (the pipeline's work of one invocation) with `contexts` ambient (when there
/// are spans to export).
pub async fn with_alert_contexts<F: Future>(
    contexts: Option<Arc<AlertContexts>>,
    batch: F,
) -> F::Output {
    match contexts {
        Some(contexts) => ALERT_CONTEXTS.scope(contexts, batch).await,
        None => batch.await,
    }
}

/// The W3C trace context headers (`traceparent`, and `tracestate` when not empty) the alert
/// of the record at `origin` is published with; none outside [`with_alert_contexts`].
pub fn alert_trace_headers(origin: &Origin) -> HashMap<String, String> {
    let mut headers = HashMap::new();
    let _ = ALERT_CONTEXTS.try_with(|contexts| {
        let context = contexts.context_of(contexts.publish_span(origin));
        let cx = Context::new().with_remote_span_context(context);
        TraceContextPropagator::new().inject_context(&cx, &mut headers);
    });
    headers.retain(|_, value| !value.is_empty());
    headers
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_w3c_traceparent_becomes_a_remote_span_context() {
        let sc =
            traceparent_context("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01").unwrap();
        assert_eq!(
            sc.trace_id().to_string(),
            "0af7651916cd43dd8448eb211c80319c"
        );
        assert!(sc.is_sampled() && sc.is_remote());
        assert!(
            traceparent_context("00-00000000000000000000000000000000-b7ad6b7169203331-01")
                .is_none()
        );
        assert!(traceparent_context("garbage").is_none());
    }

    #[test]
    fn an_xray_header_becomes_the_parent() {
        let cx = xray_parent(
            "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1",
        )
        .unwrap();
        assert_eq!(
            cx.span().span_context().trace_id().to_string(),
            "5759e988bd862e3fe1be46a994272793"
        );
    }

    #[tokio::test]
    async fn an_alert_carries_the_traceparent_decided_for_its_record() {
        let invocation =
            traceparent_context("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01").unwrap();
        let contexts = Arc::new(AlertContexts::new(invocation, 150));
        let origin = Origin {
            shard_id: "shardId-000000000000".into(),
            sequence_number: crate::domain::SequenceNumber::new("42"),
            partition_key: "k".into(),
            arrival: chrono::DateTime::UNIX_EPOCH,
        };

        let headers = with_alert_contexts(Some(contexts.clone()), async {
            alert_trace_headers(&origin)
        })
        .await;

        let decided = contexts.decided(&origin).unwrap();
        assert_eq!(
            headers.get("traceparent").map(String::as_str),
            Some(format!("00-0af7651916cd43dd8448eb211c80319c-{}-01", decided.span_id).as_str())
        );
        assert!(!headers.contains_key("tracestate"));
        assert!(
            alert_trace_headers(&origin).is_empty(),
            "outside an invocation"
        );
    }

    #[test]
    fn an_unsampled_invocation_publishes_its_alerts_with_the_sampled_flag_off() {
        let invocation =
            traceparent_context("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-00").unwrap();
        let contexts = AlertContexts::new(invocation, 150);
        let origin = Origin {
            shard_id: "shardId-000000000000".into(),
            sequence_number: crate::domain::SequenceNumber::new("7"),
            partition_key: "k".into(),
            arrival: chrono::DateTime::UNIX_EPOCH,
        };
        let context = contexts.context_of(contexts.publish_span(&origin));
        assert!(!context.is_sampled() && context.is_valid());
    }

    #[test]
    fn overflow_trace_ids_keep_the_invocation_s_epoch_and_differ_per_group() {
        let invocation =
            traceparent_context("00-5759e988bd862e3fe1be46a994272793-b7ad6b7169203331-01").unwrap();
        let contexts = AlertContexts::new(invocation, 150);
        let ids: std::collections::HashSet<String> = (1..100)
            .map(|g| contexts.overflow_trace_id(g).to_string())
            .collect();
        assert_eq!(ids.len(), 99);
        assert!(ids.iter().all(|id| id.starts_with("5759e988")));
        assert!(!ids.contains("5759e988bd862e3fe1be46a994272793"));
    }
}
