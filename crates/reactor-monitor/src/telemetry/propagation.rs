//! Trace context across process boundaries: the X-Ray header of the invocation and the W3C
//! `traceparent` a producer puts in a payload.

use opentelemetry::Context;
use opentelemetry::trace::{SpanContext, SpanId, TraceContextExt, TraceFlags, TraceId, TraceState};

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
}
