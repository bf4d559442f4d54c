//! [`record_span`]: the span each stage opens per input record, continuing
//! the trace the record's `traceparent` header (or, on a raw record, its
//! `ingest-meta` field) carries (one trace per
//! webhook, from ingest to the sink), and the `traceparent` its outputs
//! carry on.

use rdkafka::Message;

use crate::headers;
use crate::kafka::{RawFields, header_str};

/// A span named `name` for `message` (with its partition and offset) in
/// the record's trace, and the `traceparent` of that span (the received one
/// when tracing is off).
pub fn record_span<M: Message>(name: &'static str, message: &M) -> (tracing::Span, String) {
    let span = tracing::info_span!(
        "record",
        otel.name = name,
        partition = message.partition(),
        offset = message.offset()
    );
    // A raw record carries it among ingest's metadata, every other record
    // as a header of its own.
    let fields;
    let received = match header_str(message, headers::TRACEPARENT) {
        Some(value) => Some(value),
        None => {
            fields = RawFields::of(message);
            fields.get(headers::TRACEPARENT)
        }
    };
    crate::trace_context::continue_trace(&span, received);
    let traceparent = crate::trace_context::traceparent_of(&span)
        .or_else(|| received.map(str::to_string))
        .unwrap_or_default();
    (span, traceparent)
}
