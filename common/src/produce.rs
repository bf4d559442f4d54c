//! Producing a group of records and waiting for every acknowledgement.
//!
//! Stages that consume and produce use this to implement "commit the input
//! offset only after the outputs are acknowledged": they hand the outputs of
//! one input record (or one batch) to [`send_all`], and commit only on `Ok`.

use futures::future::join_all;
use rdkafka::Message;
use rdkafka::error::KafkaError;
use rdkafka::message::{Header, Headers, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::types::RDKafkaErrorCode;

/// How long to wait when librdkafka's local queue is full.
const QUEUE_FULL_PAUSE: std::time::Duration = std::time::Duration::from_millis(5);

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
                    pending.push(delivery);
                    break;
                }
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                    future_record = back;
                    tokio::time::sleep(QUEUE_FULL_PAUSE).await;
                }
                Err((e, _)) => return Err(e),
            }
        }
    }
    let mut stored = Vec::with_capacity(records.len());
    let mut first_error = None;
    for result in join_all(pending).await {
        match result {
            Ok(Ok(delivery)) => stored.push(Stored {
                partition: delivery.partition,
                offset: delivery.offset,
            }),
            Ok(Err((e, _))) => {
                let _ = first_error.get_or_insert(e);
            }
            Err(_canceled) => {
                let _ = first_error.get_or_insert(KafkaError::Canceled);
            }
        }
    }
    match first_error {
        Some(e) => Err(e),
        None => Ok(stored),
    }
}
