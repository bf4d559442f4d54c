//! One size limit, end to end: a body ingest accepts always fits in a
//! record the producer will send and `webhooks.raw` will store, so a body
//! is either accepted or refused with a 413, never answered 503 over and
//! over for a condition no retry can change.
//!
//! The raw record is the body plus a key and headers. What the sender
//! controls in those (its content type, its event id, which is also in the
//! key) comes from the request head, which is at most `max_header_bytes`;
//! the rest is ours and small. At start, ingest checks that the body limit
//! plus that overhead fits both the producer's `message.max.bytes` and the
//! topic's `max.message.bytes`, and refuses to start otherwise, saying
//! which number to change.

/// The headers and framing ingest itself adds to a record, at most: the
/// fixed headers (source, provider, times, ids, verdict, trace context)
/// and Kafka's record and batch framing.
pub const FIXED_OVERHEAD_BYTES: usize = 2048;

/// Kafka's default `max.message.bytes` for a topic that does not set it.
pub const KAFKA_DEFAULT_MAX_MESSAGE_BYTES: usize = 1_048_588;

/// The largest record a body of `body_limit` bytes can become: the body,
/// the sender's event id in the key and its head values in the metadata,
/// each bounded by the head limit (in the one `ingest-meta` header a value
/// can take three times its bytes once form-encoded), and our own headers
/// and framing.
pub fn largest_record(body_limit: usize, max_header_bytes: usize) -> usize {
    body_limit
        .saturating_add(max_header_bytes.saturating_mul(4))
        .saturating_add(FIXED_OVERHEAD_BYTES)
}

/// The limits ingest's records must fit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecordLimits {
    /// The producer's `message.max.bytes`.
    pub producer: usize,
    /// The raw topic's `max.message.bytes`.
    pub topic: usize,
}

/// Refuses a body limit whose largest record would not fit `limits`,
/// naming the settings to change.
pub fn check(
    body_limit: usize,
    max_header_bytes: usize,
    limits: RecordLimits,
    topic: &str,
) -> Result<(), String> {
    let largest = largest_record(body_limit, max_header_bytes);
    let overhead = largest - body_limit;
    let fits = |limit: usize| limit.saturating_sub(overhead);
    if largest > limits.producer {
        return Err(format!(
            "`body_limit_bytes` = {body_limit} can make a {largest}-byte record (with up to {overhead} \
             bytes of key, headers and framing for `max_header_bytes` = {max_header_bytes}), but the \
             producer's `kafka.message_max_bytes` is {}: raise it to at least {largest}, or lower \
             `body_limit_bytes` to at most {}",
            limits.producer,
            fits(limits.producer)
        ));
    }
    if largest > limits.topic {
        return Err(format!(
            "`body_limit_bytes` = {body_limit} can make a {largest}-byte record, but topic `{topic}` \
             accepts at most {} bytes (`max.message.bytes`): raise it in config/topics.toml (and on \
             the broker) to at least {largest}, or lower `body_limit_bytes` to at most {}",
            limits.topic,
            fits(limits.topic)
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: usize = 1024 * 1024;

    #[test]
    fn the_defaults_fit_the_shipped_topics() {
        let limits = RecordLimits {
            producer: 2 * MIB,
            topic: 2 * MIB,
        };
        assert_eq!(check(MIB, 16 * 1024, limits, "webhooks.raw"), Ok(()));
    }

    #[test]
    fn a_producer_limit_below_the_body_limit_names_both_numbers() {
        let limits = RecordLimits {
            producer: 1_000_000,
            topic: 2 * MIB,
        };
        let refused = check(MIB, 16 * 1024, limits, "webhooks.raw").expect_err("too small");
        assert!(refused.contains("kafka.message_max_bytes"), "{refused}");
        assert!(refused.contains("at least 1116160"), "{refused}");
        assert!(refused.contains("at most 932416"), "{refused}");
    }

    #[test]
    fn a_topic_at_kafkas_default_is_too_small_for_a_mebibyte_body() {
        let limits = RecordLimits {
            producer: 2 * MIB,
            topic: KAFKA_DEFAULT_MAX_MESSAGE_BYTES,
        };
        let refused = check(MIB, 16 * 1024, limits, "t.webhooks.raw").expect_err("too small");
        assert!(refused.contains("topic `t.webhooks.raw`"), "{refused}");
        assert!(refused.contains("config/topics.toml"), "{refused}");
        assert_eq!(
            check(900_000, 16 * 1024, limits, "t.webhooks.raw"),
            Ok(()),
            "a smaller body limit fits"
        );
    }
}
