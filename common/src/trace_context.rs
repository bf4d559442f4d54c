//! One webhook, one trace: each stage's span per record continues the
//! trace of the record it read (the W3C `traceparent` Kafka header), and
//! the records it writes carry its own span's context, so the spans of
//! ingest, normalize, dedupe and the sink chain parent to child.

use std::collections::HashMap;

use opentelemetry::propagation::TextMapPropagator as _;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use tracing_opentelemetry::OpenTelemetrySpanExt as _;

use crate::headers;

/// Makes `span` a child of the trace in `traceparent`, when there is a
/// valid one (otherwise the span starts a trace of its own).
pub fn continue_trace(span: &tracing::Span, traceparent: Option<&str>) {
    let Some(traceparent) = traceparent.filter(|t| crate::traceparent::is_valid(t)) else {
        return;
    };
    let carrier = HashMap::from([(headers::TRACEPARENT.to_string(), traceparent.to_string())]);
    let parent = TraceContextPropagator::new().extract(&carrier);
    if let Err(e) = span.set_parent(parent) {
        tracing::debug!(error = %e, "span not linked to its trace");
    }
}

/// Links `span` to the trace in `traceparent`, when there is a valid one,
/// without making it the parent: ingest's span stays the root of its own
/// trace, so a stranger's context cannot graft our spans onto its trace
/// or decide their sampling, and the sender's trace can still be found.
pub fn link_trace(span: &tracing::Span, traceparent: Option<&str>) {
    use opentelemetry::trace::TraceContextExt as _;
    let Some(traceparent) = traceparent.filter(|t| crate::traceparent::is_valid(t)) else {
        return;
    };
    let carrier = HashMap::from([(headers::TRACEPARENT.to_string(), traceparent.to_string())]);
    let sender = TraceContextPropagator::new().extract(&carrier);
    let linked = sender.span().span_context().clone();
    if linked.is_valid() {
        span.add_link(linked);
    }
}

/// The `traceparent` of `span`, for the records produced under it; `None`
/// when the span has no trace context (tracing not installed).
pub fn traceparent_of(span: &tracing::Span) -> Option<String> {
    let mut carrier: HashMap<String, String> = HashMap::new();
    TraceContextPropagator::new().inject_context(&span.context(), &mut carrier);
    carrier
        .remove(headers::TRACEPARENT)
        .filter(|t| crate::traceparent::is_valid(t))
}
