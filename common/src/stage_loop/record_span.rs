//! [`record_span`]: the span each stage opens per input record, continuing
//! the trace the record's `traceparent` header (or, on a raw record, its
//! `ingest-meta` field, which wins over a header) carries (one trace per
//! webhook, from ingest to the sink), and the `traceparent` its outputs
//! carry on.

use rdkafka::Message;

use crate::headers;
use crate::kafka::raw_field;

/// A span named `name` for `message` (with its partition and offset) in
/// the record's trace, and the `traceparent` of that span (the received one
/// when tracing is off).
pub fn record_span<M: Message>(name: &'static str, message: &M) -> (tracing::Span, String) {
    // A raw record carries it among ingest's metadata, every other record
    // as a header of its own; on a raw record with both, the metadata's
    // wins, as for every field normalize reads (`RawFields`).
    let received = raw_field(message, headers::TRACEPARENT);
    record_span_continuing(name, message, received.as_deref())
}

/// [`record_span`] for a caller that has already read the record's
/// `traceparent` (normalize reads every raw field once, with
/// `RawFields`), continuing `received`.
pub fn record_span_continuing<M: Message>(
    name: &'static str,
    message: &M,
    received: Option<&str>,
) -> (tracing::Span, String) {
    let span = tracing::info_span!(
        "record",
        otel.name = name,
        partition = message.partition(),
        offset = message.offset()
    );
    crate::trace_context::continue_trace(&span, received);
    let traceparent = crate::trace_context::traceparent_of(&span)
        .or_else(|| received.map(str::to_string))
        .unwrap_or_default();
    (span, traceparent)
}

#[cfg(test)]
mod tests {
    use rdkafka::message::OwnedMessage;

    use super::*;

    const INGEST: &str = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
    const OTHER: &str = "00-11111111111111111111111111111111-2222222222222222-01";

    fn record(headers: &[(&str, &str)]) -> OwnedMessage {
        crate::kafka::detached_with_headers("t", headers)
    }

    #[test]
    fn continues_the_trace_of_either_layout() {
        let meta = format!("source=s&traceparent={INGEST}");
        let (_, packed) = record_span("t", &record(&[(headers::INGEST_META, &meta)]));
        let (_, separate) = record_span("t", &record(&[(headers::TRACEPARENT, INGEST)]));
        assert_eq!((packed.as_str(), separate.as_str()), (INGEST, INGEST));
    }

    /// Normalize reads a raw record carrying both layouts from its
    /// `ingest-meta` header; so does its trace.
    #[test]
    fn on_a_record_with_both_the_ingest_meta_field_wins() {
        let meta = format!("source=s&traceparent={INGEST}");
        let message = record(&[(headers::TRACEPARENT, OTHER), (headers::INGEST_META, &meta)]);
        assert_eq!(record_span("t", &message).1, INGEST);
        assert_eq!(
            crate::kafka::RawFields::of(&message).get(headers::TRACEPARENT),
            Some(INGEST)
        );
    }
}
