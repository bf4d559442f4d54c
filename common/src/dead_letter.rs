//! Dead letters: a record a stage cannot handle goes to `webhooks.dlq`
//! unchanged (same key, same value, same headers), plus headers that say
//! which stage failed, why, and where the record came from.

use rdkafka::Message;

use crate::headers;
use crate::produce::OutRecord;

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

    #[test]
    fn long_messages_are_cut_on_a_char_boundary() {
        let long = "é".repeat(1000);
        let h = error_headers("s", "k", &long, "t", 0, 0);
        let message = &h[2].1;
        assert!(message.len() <= 1024 + "…".len());
    }
}
