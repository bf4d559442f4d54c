//! Producing a group of records and waiting for every acknowledgement.
//!
//! Stages that consume and produce use this to implement "commit the input
//! offset only after the outputs are acknowledged": they hand the outputs of
//! one input record (or one batch) to [`send_all`], and commit only on `Ok`.
//! [`send_each`] gives each record its own result, so a stage can tell a
//! record refused for its size ([`is_size_error`], permanent) from a
//! transient failure, and [`OutRecord::wire_size`] counts a record the way
//! librdkafka does for `message.max.bytes`, so a stage can check before sending.

use futures::future::join_all;
use rdkafka::Message;
use rdkafka::error::KafkaError;
use rdkafka::message::{Header, Headers, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::types::RDKafkaErrorCode;

/// How long to wait when librdkafka's local queue is full.
const QUEUE_FULL_PAUSE: std::time::Duration = std::time::Duration::from_millis(5);

/// librdkafka's worst-case framing of one record (v2 record format:
/// length, attributes, timestamp and offset deltas, key and value lengths,
/// header count, each varint at its longest; `RD_KAFKAP_MESSAGE_V2_MAX_OVERHEAD`
/// in librdkafka 2.12). It adds this to key + value + headers and refuses
/// the record with `MSG_SIZE_TOO_LARGE` when the sum exceeds `message.max.bytes`.
pub const RECORD_OVERHEAD: usize = 36;

/// The v2 record batch header (`RD_KAFKAP_MSGSET_V2_SIZE`, 61 bytes). A
/// broker checks a whole batch against its own limit (`message.max.bytes`,
/// the topic's `max.message.bytes`), so a record that fits librdkafka's
/// check can still be refused alone in its batch unless this is left free.
pub const BATCH_OVERHEAD: usize = 61;

/// What a later stage may add to a record it forwards unchanged: dedupe
/// adds `source-offset` (13 bytes of name, at most 20 digits) and writes a
/// fresh `traceparent` (55 bytes) where the input's was empty, at most 90
/// bytes more as librdkafka counts headers. A stage whose outputs
/// are forwarded checks them against [`record_budget`] minus this, so the
/// forwarded copy fits the same `message_max_bytes`.
pub const FORWARDING_ALLOWANCE: usize = 128;

/// The largest [`OutRecord::wire_size`] a stage sends under a producer
/// limit of `message_max_bytes`: the limit minus [`BATCH_OVERHEAD`], so
/// the record passes librdkafka's check and, alone in its batch, a broker
/// whose limit is at least the producer's (conservative: librdkafka's
/// framing is counted at its worst case).
pub fn record_budget(message_max_bytes: usize) -> usize {
    message_max_bytes.saturating_sub(BATCH_OVERHEAD)
}

/// Bytes of the zig-zag varint librdkafka writes for a header name's or
/// value's length.
fn varint_len(length: usize) -> usize {
    let mut zigzag = (length as u64) << 1;
    let mut bytes = 1;
    while zigzag >= 0x80 {
        zigzag >>= 7;
        bytes += 1;
    }
    bytes
}

/// One header as librdkafka counts it: name, value and their two length varints.
pub fn header_wire_size(name: &str, value: &[u8]) -> usize {
    name.len() + value.len() + varint_len(name.len()) + varint_len(value.len())
}

/// A record to produce, owning its parts.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OutRecord {
    /// Target topic.
    pub topic: String,
    /// Explicit partition (co-partitioned writes), or the key's hash.
    pub partition: Option<i32>,
    /// Record key.
    pub key: Option<Vec<u8>>,
    /// Record value; `None` is a tombstone.
    pub payload: Option<Vec<u8>>,
    /// Headers, in order.
    pub headers: Vec<(String, Vec<u8>)>,
}

impl OutRecord {
    /// Appends every header of `message` except those named in `skip`.
    pub fn with_headers_of<M: Message>(self, message: &M, skip: &[&str]) -> Self {
        self.with_headers_where(message, |key| !skip.contains(&key))
    }

    /// Appends the headers of `message` named in `names`, in the message's
    /// order.
    pub fn with_headers_named<M: Message>(self, message: &M, names: &[&str]) -> Self {
        self.with_headers_where(message, |key| names.contains(&key))
    }

    /// Appends the headers of `message` whose name `keep` accepts, in order.
    fn with_headers_where<M: Message>(mut self, message: &M, keep: impl Fn(&str) -> bool) -> Self {
        if let Some(headers) = message.headers() {
            for h in headers.iter().filter(|h| keep(h.key)) {
                self.headers
                    .push((h.key.to_string(), h.value.unwrap_or_default().to_vec()));
            }
        }
        self
    }

    /// Appends a header.
    pub fn header(mut self, key: impl Into<String>, value: impl Into<Vec<u8>>) -> Self {
        self.headers.push((key.into(), value.into()));
        self
    }

    /// The size librdkafka checks against `message.max.bytes` when the
    /// record is queued: [`RECORD_OVERHEAD`] + key + value + every header
    /// ([`header_wire_size`]).
    pub fn wire_size(&self) -> usize {
        RECORD_OVERHEAD
            + self.key.as_ref().map_or(0, Vec::len)
            + self.payload.as_ref().map_or(0, Vec::len)
            + self
                .headers
                .iter()
                .map(|(k, v)| header_wire_size(k, v))
                .sum::<usize>()
    }
}

/// Whether `error` refuses a record for its size: librdkafka's local check
/// (`MSG_SIZE_TOO_LARGE` when queued) or the broker's (`MESSAGE_TOO_LARGE`,
/// `RECORD_LIST_TOO_LARGE`, e.g. a topic whose `max.message.bytes` is below
/// the producer's limit). Permanent for that record: retrying it cannot help.
pub fn is_size_error(error: &KafkaError) -> bool {
    matches!(
        error.rdkafka_error_code(),
        Some(RDKafkaErrorCode::MessageSizeTooLarge | RDKafkaErrorCode::MessageBatchTooLarge)
    )
}

/// Where a record was stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stored {
    /// Partition.
    pub partition: i32,
    /// Offset.
    pub offset: i64,
}

/// Enqueues every record in order, then waits for every acknowledgement.
/// Returns the first error if any record failed. Enqueueing is synchronous
/// and in order (a full local queue is waited out, not skipped), so records
/// for one partition are stored in the order given.
pub async fn send_all(
    producer: &FutureProducer,
    records: &[OutRecord],
) -> Result<Vec<Stored>, KafkaError> {
    send_each(producer, records).await.into_iter().collect()
}

/// Like [`send_all`], with one result per record, in order: a record
/// refused when queued (e.g. for its size) gets its error and the others
/// are still sent, and every acknowledgement is waited for.
pub async fn send_each(
    producer: &FutureProducer,
    records: &[OutRecord],
) -> Vec<Result<Stored, KafkaError>> {
    send_records(producer, records, false).await
}

/// Like [`send_each`], but a record refused when queued stops the queueing:
/// it and every record after it get an error and are never sent. With the
/// idempotent producer's gapless guarantee this keeps what is acknowledged
/// a prefix of `records` on each partition (dedupe's restore relies on it).
pub async fn send_in_order(
    producer: &FutureProducer,
    records: &[OutRecord],
) -> Vec<Result<Stored, KafkaError>> {
    send_records(producer, records, true).await
}

/// [`send_in_order`] from a thread outside the async runtime (a stage's
/// loop), waiting on `runtime`: each record's offset, or its error.
pub fn offsets_in_order(
    runtime: &tokio::runtime::Handle,
    producer: &FutureProducer,
    records: &[OutRecord],
) -> Vec<Result<i64, KafkaError>> {
    runtime
        .block_on(send_in_order(producer, records))
        .into_iter()
        .map(|result| result.map(|stored| stored.offset))
        .collect()
}

/// The producer's fatal error, if it has one (an idempotent producer that
/// cannot guarantee order any more, after which it sends nothing): the
/// process must exit.
pub fn fatal_error(producer: &FutureProducer) -> Option<String> {
    use rdkafka::producer::Producer as _;
    producer
        .client()
        .fatal_error()
        .map(|(code, reason)| format!("{code:?}: {reason}"))
}

async fn send_records(
    producer: &FutureProducer,
    records: &[OutRecord],
    stop_at_refusal: bool,
) -> Vec<Result<Stored, KafkaError>> {
    let mut pending = Vec::with_capacity(records.len());
    for record in records {
        let headers = record
            .headers
            .iter()
            .fold(OwnedHeaders::new(), |h, (k, v)| {
                h.insert(Header {
                    key: k,
                    value: Some(v),
                })
            });
        let mut future_record: FutureRecord<'_, [u8], [u8]> =
            FutureRecord::to(&record.topic).headers(headers);
        if let Some(key) = &record.key {
            future_record = future_record.key(key.as_slice());
        }
        if let Some(payload) = &record.payload {
            future_record = future_record.payload(payload.as_slice());
        }
        if let Some(partition) = record.partition {
            future_record = future_record.partition(partition);
        }
        loop {
            match producer.send_result(future_record) {
                Ok(delivery) => {
                    pending.push(Ok(delivery));
                    break;
                }
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                    future_record = back;
                    tokio::time::sleep(QUEUE_FULL_PAUSE).await;
                }
                Err((e, _)) => {
                    pending.push(Err(e));
                    break;
                }
            }
        }
        if stop_at_refusal && pending.last().is_some_and(Result::is_err) {
            break;
        }
    }
    while pending.len() < records.len() {
        pending.push(Err(KafkaError::Canceled));
    }
    join_all(pending.into_iter().map(|item| async move {
        match item {
            Err(e) => Err(e),
            Ok(delivery) => match delivery.await {
                Ok(Ok(delivery)) => Ok(Stored {
                    partition: delivery.partition,
                    offset: delivery.offset,
                }),
                Ok(Err((e, _))) => Err(e),
                Err(_canceled) => Err(KafkaError::Canceled),
            },
        }
    }))
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wire_size_counts_like_librdkafka() {
        let empty = OutRecord::default();
        assert_eq!(empty.wire_size(), RECORD_OVERHEAD);
        let record = OutRecord {
            key: Some(b"generic:p1".to_vec()),
            payload: Some(vec![0; 1000]),
            ..OutRecord::default()
        }
        .header("source", "generic")
        // A 200-byte value: zig-zag 400 needs two varint bytes.
        .header("h", vec![b'x'; 200]);
        assert_eq!(
            record.wire_size(),
            36 + 10 + 1000 + (6 + 7 + 1 + 1) + (1 + 200 + 1 + 2)
        );
    }

    #[test]
    fn varints_grow_at_zig_zag_boundaries() {
        assert_eq!(varint_len(0), 1);
        assert_eq!(varint_len(63), 1);
        assert_eq!(varint_len(64), 2);
        assert_eq!(varint_len(8191), 2);
        assert_eq!(varint_len(8192), 3);
        assert_eq!(header_wire_size("", &[]), 2);
    }

    #[test]
    fn the_budget_leaves_the_batch_header_free() {
        assert_eq!(record_budget(1_048_576), 1_048_515);
        assert_eq!(record_budget(10), 0);
    }

    #[test]
    fn only_size_refusals_are_size_errors() {
        for (code, size) in [
            (RDKafkaErrorCode::MessageSizeTooLarge, true),
            (RDKafkaErrorCode::MessageBatchTooLarge, true),
            (RDKafkaErrorCode::MessageTimedOut, false),
            (RDKafkaErrorCode::NotLeaderForPartition, false),
        ] {
            assert_eq!(
                is_size_error(&KafkaError::MessageProduction(code)),
                size,
                "{code:?}"
            );
        }
        assert!(!is_size_error(&KafkaError::Canceled));
    }
}
