//! Dead letters: a record a stage cannot handle goes to `webhooks.dlq`
//! unchanged (same key, same value, same headers), plus headers that say
//! which stage failed, why, and where the record came from.
//!
//! A dead letter must always be sendable, whatever the record it copies:
//! [`dead_letter_within`] and [`fit_dead_letter`] cut its value to fit a
//! size budget (saying so in `error.payload-truncated`), and as a last
//! resort drop its original headers and key, never the error and origin
//! headers that identify the raw record.

use rdkafka::Message;

use crate::headers;
use crate::produce::OutRecord;

/// The headers a dead letter keeps whatever its size.
const ALWAYS_KEPT: [&str; 7] = [
    headers::ERROR_STAGE,
    headers::ERROR_KIND,
    headers::ERROR_MESSAGE,
    headers::ORIGIN_TOPIC,
    headers::ORIGIN_PARTITION,
    headers::ORIGIN_OFFSET,
    headers::ERROR_PAYLOAD_TRUNCATED,
];

/// [`dead_letter`], cut by [`fit_dead_letter`] to at most `budget` bytes
/// ([`OutRecord::wire_size`]; a stage passes
/// `common::produce::record_budget(message_max_bytes)`).
pub fn dead_letter_within<M: Message>(
    message: &M,
    dlq_topic: &str,
    stage: &str,
    kind: &str,
    reason: &str,
    budget: usize,
) -> OutRecord {
    fit_dead_letter(dead_letter(message, dlq_topic, stage, kind, reason), budget)
}

/// `record` (a dead letter) unchanged if its [`OutRecord::wire_size`] is
/// within `budget`; else with its value cut to the first bytes that fit and
/// an `error.payload-truncated` header holding the original length; if even
/// an empty value does not fit, also without its original headers (their
/// count in `error.headers-dropped`) and, if still needed, without its key.
/// The result fits any budget of at least 4 KiB
/// (`common::kafka::MIN_MESSAGE_MAX_BYTES`): the error message is at most
/// 1 KiB and a topic name at most 249 bytes.
pub fn fit_dead_letter(mut record: OutRecord, budget: usize) -> OutRecord {
    if record.wire_size() <= budget {
        return record;
    }
    let payload = record.payload.take();
    // Cut again (a smaller budget): the header already has the original length.
    if !record
        .headers
        .iter()
        .any(|(name, _)| name == headers::ERROR_PAYLOAD_TRUNCATED)
    {
        let original = payload.as_ref().map_or(0, Vec::len);
        record = record.header(headers::ERROR_PAYLOAD_TRUNCATED, original.to_string());
    }
    if record.wire_size() > budget {
        let before = record.headers.len();
        record
            .headers
            .retain(|(name, _)| ALWAYS_KEPT.contains(&name.as_str()));
        let dropped = before - record.headers.len();
        record = record.header(headers::ERROR_HEADERS_DROPPED, dropped.to_string());
        if record.wire_size() > budget {
            record.key = None;
        }
    }
    // Without a value, the size does not depend on its length (librdkafka
    // counts the length's varint at its longest in the framing).
    let room = budget.saturating_sub(record.wire_size());
    record.payload = payload.map(|mut value| {
        value.truncate(room);
        value
    });
    record
}

/// The dead letter for `message`: its key, value and headers unchanged,
/// plus the error and origin headers, addressed to `dlq_topic`.
pub fn dead_letter<M: Message>(
    message: &M,
    dlq_topic: &str,
    stage: &str,
    kind: &str,
    reason: &str,
) -> OutRecord {
    let record = OutRecord {
        topic: dlq_topic.to_string(),
        partition: None,
        key: message.key().map(<[u8]>::to_vec),
        payload: message.payload().map(<[u8]>::to_vec),
        headers: Vec::new(),
    }
    .with_headers_of(message, &[]);
    error_headers(
        stage,
        kind,
        reason,
        message.topic(),
        message.partition(),
        message.offset(),
    )
    .into_iter()
    .fold(record, |r, (k, v)| r.header(k, v))
}

/// The error headers added to a dead letter (DESIGN.md, "Topics").
pub fn error_headers(
    stage: &str,
    kind: &str,
    message: &str,
    origin_topic: &str,
    origin_partition: i32,
    origin_offset: i64,
) -> Vec<(&'static str, String)> {
    vec![
        (headers::ERROR_STAGE, stage.to_string()),
        (headers::ERROR_KIND, kind.to_string()),
        (headers::ERROR_MESSAGE, truncate(message, 1024)),
        (headers::ORIGIN_TOPIC, origin_topic.to_string()),
        (headers::ORIGIN_PARTITION, origin_partition.to_string()),
        (headers::ORIGIN_OFFSET, origin_offset.to_string()),
    ]
}

/// Keeps headers small: at most `max` bytes, cut on a character boundary.
fn truncate(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_string();
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &text[..end])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_stage_kind_reason_and_origin() {
        let h = error_headers(
            "normalize",
            "unsupported_event_type",
            "why",
            "webhooks.raw",
            2,
            9,
        );
        assert!(h.contains(&("error.stage", "normalize".into())));
        assert!(h.contains(&("error.kind", "unsupported_event_type".into())));
        assert!(h.contains(&("error.message", "why".into())));
        assert!(h.contains(&("topic", "webhooks.raw".into())));
        assert!(h.contains(&("partition", "2".into())));
        assert!(h.contains(&("offset", "9".into())));
    }

    fn letter(value_len: usize, extra_headers: usize) -> OutRecord {
        let mut record = OutRecord {
            topic: "webhooks.dlq".into(),
            key: Some(b"generic:evt_1".to_vec()),
            payload: Some(vec![b'x'; value_len]),
            ..OutRecord::default()
        };
        for i in 0..extra_headers {
            record = record.header(format!("h{i}"), vec![b'v'; 100]);
        }
        error_headers("normalize", "too_large", "why", "webhooks.raw", 1, 7)
            .into_iter()
            .fold(record, |r, (k, v)| r.header(k, v))
    }

    fn header_of<'a>(record: &'a OutRecord, name: &str) -> Option<&'a [u8]> {
        record
            .headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_slice())
    }

    #[test]
    fn a_dead_letter_within_the_budget_is_unchanged() {
        let record = letter(1000, 2);
        let budget = record.wire_size();
        assert_eq!(fit_dead_letter(record.clone(), budget), record);
    }

    #[test]
    fn a_dead_letter_over_the_budget_keeps_the_first_bytes_that_fit() {
        let record = letter(50_000, 2);
        let fitted = fit_dead_letter(record.clone(), 20_000);
        assert_eq!(fitted.wire_size(), 20_000, "uses the whole budget");
        let value = fitted.payload.as_deref().expect("a value");
        assert!(record.payload.as_deref().expect("value").starts_with(value));
        assert_eq!(
            header_of(&fitted, headers::ERROR_PAYLOAD_TRUNCATED),
            Some(b"50000".as_slice())
        );
        assert_eq!(fitted.key, record.key);
        assert_eq!(fitted.headers.len(), record.headers.len() + 1);
        let again = fit_dead_letter(fitted, 10_000);
        assert!(again.wire_size() <= 10_000);
        let originals: Vec<_> = again
            .headers
            .iter()
            .filter(|(k, _)| k == headers::ERROR_PAYLOAD_TRUNCATED)
            .map(|(_, v)| v.as_slice())
            .collect();
        assert_eq!(originals, [b"50000".as_slice()], "the first length stays");
    }

    #[test]
    fn as_a_last_resort_the_original_headers_and_key_go() {
        let record = letter(10, 100);
        let fitted = fit_dead_letter(record, 4096);
        assert!(fitted.wire_size() <= 4096);
        assert_eq!(
            header_of(&fitted, headers::ERROR_HEADERS_DROPPED),
            Some(b"100".as_slice())
        );
        assert_eq!(
            header_of(&fitted, headers::ERROR_KIND),
            Some(b"too_large".as_slice())
        );
        assert_eq!(
            header_of(&fitted, headers::ORIGIN_OFFSET),
            Some(b"7".as_slice())
        );
        assert_eq!(fitted.payload.as_deref(), Some(&[b'x'; 10][..]), "fits now");
        let mut long_key = letter(10, 0);
        long_key.key = Some(vec![b'k'; 5000]);
        let fitted = fit_dead_letter(long_key, 4096);
        assert_eq!(fitted.key, None, "the key goes when nothing else is left");
        assert!(fitted.wire_size() <= 4096);
        assert_eq!(
            header_of(&fitted, headers::ERROR_STAGE),
            Some(b"normalize".as_slice())
        );
    }

    #[test]
    fn long_messages_are_cut_on_a_char_boundary() {
        let long = "é".repeat(1000);
        let h = error_headers("s", "k", &long, "t", 0, 0);
        let message = &h[2].1;
        assert!(message.len() <= 1024 + "…".len());
    }
}
