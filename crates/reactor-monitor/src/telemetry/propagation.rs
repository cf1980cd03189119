//! Trace context across process boundaries: the X-Ray header of the invocation, the W3C
//! `traceparent` a producer puts in a payload, and the one each alert and on-call notice goes
//! out with.
//!
//! An alert carries the context of its PRODUCER span (`publish <topic>`), so that whoever
//! consumes it continues the reading's trace. The spans of a record are built after the batch
//! (`traces`), so that context is decided before the publication: [`AlertContexts`] gives each
//! alerting record, on its first publication, a span id and a place among the invocation's
//! traced records (alerts first), hence the trace it will be emitted in; emission then starts
//! the publish span with exactly those ids. An on-call notice carries, the same way, the
//! context of the on-call publish span under the record of the reading that caused it
//! ([`notice_trace_headers`]). Like OpenTelemetry's own propagation (and like the request id
//! of `ports::note_request_id`), the contexts are ambient to the invocation's task: the SNS
//! adapters ask for them and the ports stay as they are.
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

/// The trace contexts of the publications of one invocation (alerts, and on-call notices),
/// decided at their first publication.
#[derive(Debug)]
pub struct AlertContexts {
    invocation: SpanContext,
    records_per_trace: usize,
    assigned: Mutex<HashMap<RecordKey, Place>>,
}

/// A publishing record's place among the invocation's traced records and the ids of its
/// PRODUCER spans, decided before the calls.
#[derive(Debug, Clone, Copy)]
struct Place {
    position: usize,
    alert: Option<SpanId>,
    notice: Option<SpanId>,
}

/// A publish span of a record, decided before the call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PublishSpan {
    /// The record's place among the invocation's traced records: records that published come
    /// first, in order of their first publication, so that this place does not depend on
    /// what happens to the records after.
    pub position: usize,
    pub span_id: SpanId,
}

/// Which of a record's publications.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Publication {
    /// Its alert, on the alert topic.
    Alert,
    /// The on-call notice(s) it caused, on the on-call topic.
    Notice,
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

    /// The alert publish span of the record at `origin`, decided now if it was not yet: a
    /// publication retried (a split batch, a redelivery in the same invocation) goes out with
    /// the same context.
    pub fn publish_span(&self, origin: &Origin) -> PublishSpan {
        self.span(origin, Publication::Alert)
    }

    /// The span of publication `which` of the record at `origin`, decided now if it was not
    /// yet; the record's place is decided at its first publication of either kind.
    pub fn span(&self, origin: &Origin, which: Publication) -> PublishSpan {
        let mut assigned = self.assigned.lock().expect("alert contexts lock");
        let position = assigned.len();
        let place = assigned.entry(key(origin)).or_insert(Place {
            position,
            alert: None,
            notice: None,
        });
        let id = match which {
            Publication::Alert => &mut place.alert,
            Publication::Notice => &mut place.notice,
        };
        PublishSpan {
            position: place.position,
            span_id: *id.get_or_insert_with(random_span_id),
        }
    }

    /// The alert publish span decided for the record at `origin`, if it published.
    pub fn decided(&self, origin: &Origin) -> Option<PublishSpan> {
        self.decided_span(origin, Publication::Alert)
    }

    /// The span decided for publication `which` of the record at `origin`, if any.
    pub fn decided_span(&self, origin: &Origin, which: Publication) -> Option<PublishSpan> {
        let assigned = self.assigned.lock().expect("alert contexts lock");
        let place = assigned.get(&key(origin))?;
        let id = match which {
            Publication::Alert => place.alert,
            Publication::Notice => place.notice,
        }?;
        Some(PublishSpan {
            position: place.position,
            span_id: id,
        })
    }

    /// The record's place, if it published anything.
    pub fn position(&self, origin: &Origin) -> Option<usize> {
        let assigned = self.assigned.lock().expect("alert contexts lock");
        assigned.get(&key(origin)).map(|p| p.position)
    }

    /// How many records published (alerts or notices).
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
    trace_headers(origin, Publication::Alert)
}

/// The W3C trace context headers of the on-call publish span of the record at `origin` (the
/// reading that caused a notice): in that reading's trace, under its record span. None
/// outside [`with_alert_contexts`].
pub fn notice_trace_headers(origin: &Origin) -> HashMap<String, String> {
    trace_headers(origin, Publication::Notice)
}

fn trace_headers(origin: &Origin, which: Publication) -> HashMap<String, String> {
    let mut headers = HashMap::new();
    let _ = ALERT_CONTEXTS.try_with(|contexts| {
        let context = contexts.context_of(contexts.span(origin, which));
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

    #[tokio::test]
    async fn a_reading_that_alerts_and_pages_has_one_place_and_two_publish_spans() {
        let invocation =
            traceparent_context("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01").unwrap();
        let contexts = Arc::new(AlertContexts::new(invocation, 150));
        let origin = |seq: &str| Origin {
            shard_id: "shardId-000000000000".into(),
            sequence_number: crate::domain::SequenceNumber::new(seq),
            partition_key: "k".into(),
            arrival: chrono::DateTime::UNIX_EPOCH,
        };

        let (notice, alert, other) = with_alert_contexts(Some(contexts.clone()), async {
            (
                notice_trace_headers(&origin("42")),
                alert_trace_headers(&origin("42")),
                notice_trace_headers(&origin("43")),
            )
        })
        .await;

        let decided_notice = contexts
            .decided_span(&origin("42"), Publication::Notice)
            .unwrap();
        let decided_alert = contexts.decided(&origin("42")).unwrap();
        assert_eq!(decided_notice.position, 0);
        assert_eq!(decided_alert.position, 0, "one place per record");
        assert_ne!(decided_notice.span_id, decided_alert.span_id);
        assert_eq!(contexts.position(&origin("43")), Some(1));
        assert_eq!(contexts.len(), 2);
        assert_eq!(
            notice.get("traceparent").map(String::as_str),
            Some(
                format!(
                    "00-0af7651916cd43dd8448eb211c80319c-{}-01",
                    decided_notice.span_id
                )
                .as_str()
            )
        );
        assert_ne!(notice.get("traceparent"), alert.get("traceparent"));
        assert_ne!(notice.get("traceparent"), other.get("traceparent"));
        assert!(
            notice_trace_headers(&origin("42")).is_empty(),
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
