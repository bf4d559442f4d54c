//! The state writer's writes to Kafka: the output-first producer (an
//! idempotent producer with the gapless guarantee and a delivery timeout
//! below the batch budget, `common::stage_loop::FencingSettings`), the
//! record of one new state (its datum encoded and fitted by the plan,
//! [`crate::fit`]), and sending a batch's records once, in order.
//!
//! A batch's records are sent once per attempt ([`Writer::send_once`],
//! `common::produce::send_in_order`): what is acknowledged is a prefix of
//! them on each partition, which the restore's mark rests on. A batch that
//! fails in part is never resent as such; its failed partitions are
//! restored from the output and read again (see [`crate::plan`]).

use common::headers;
use common::produce::{OutRecord, record_budget};
use rdkafka::error::KafkaError;
use rdkafka::producer::FutureProducer;
use tokio::runtime::Handle;

use crate::fit::RecordLimit;

/// What one new state is written with: its input's position and lineage.
#[derive(Debug, Clone, Copy)]
pub struct Origin<'a> {
    /// The input partition (the output partition too).
    pub partition: i32,
    /// The input offset: the record's `source-offset`.
    pub offset: i64,
    /// The input event's dedupe key.
    pub dedupe_key: &'a str,
    /// The `traceparent` the record carries on.
    pub traceparent: &'a str,
}

/// The producer side of the state writer.
pub struct Writer {
    producer: FutureProducer,
    runtime: Handle,
    /// `properties.latest`.
    pub topic: String,
    schema_id: u32,
    message_max_bytes: usize,
}

impl Writer {
    /// Wraps `producer`, writing states under `schema_id`.
    pub fn new(
        producer: FutureProducer,
        runtime: Handle,
        topic: String,
        schema_id: u32,
        message_max_bytes: usize,
    ) -> Self {
        Self {
            producer,
            runtime,
            topic,
            schema_id,
            message_max_bytes,
        }
    }

    /// The limit a state's record is fitted under ([`crate::fit`]).
    pub fn limit(&self) -> RecordLimit {
        RecordLimit::new(self.message_max_bytes)
    }

    /// The record of the state of property `key` (its Avro `datum`,
    /// fitted under [`Self::limit`]), produced by the input at `origin`: to
    /// the input's partition of `properties.latest`, keyed by property, its
    /// value in the Confluent wire format. Over the producer's limit all
    /// the same (a `dedupe-key` header longer than the event's dedupe key
    /// the fit counted) is an error the stage cannot skip past: it stops,
    /// saying so.
    pub fn record(&self, key: &str, datum: &[u8], origin: Origin<'_>) -> anyhow::Result<OutRecord> {
        let record = OutRecord {
            topic: self.topic.clone(),
            partition: Some(origin.partition),
            key: Some(key.as_bytes().to_vec()),
            payload: Some(schemas::wire::frame(self.schema_id, datum)),
            headers: Vec::new(),
        }
        .header(headers::TRACEPARENT, origin.traceparent)
        .header(headers::DEDUPE_KEY, origin.dedupe_key)
        .header(headers::SOURCE_OFFSET, origin.offset.to_string());
        let budget = record_budget(self.message_max_bytes);
        anyhow::ensure!(
            record.wire_size() <= budget,
            "the state of {key} is {} bytes, over the {budget} a record may have under \
             message_max_bytes ({}): raise [kafka] message_max_bytes and the topic's \
             max.message.bytes (config/topics.toml) together",
            record.wire_size(),
            self.message_max_bytes
        );
        Ok(record)
    }

    /// Sends `records` once and waits for every acknowledgement: the offset
    /// of each, or its error. A record refused when queued stops the
    /// queueing, and the gapless guarantee turns any other gap into a fatal
    /// error: what is acknowledged is a prefix of `records` per partition.
    pub fn send_once(&self, records: &[OutRecord]) -> Vec<Result<i64, KafkaError>> {
        common::produce::offsets_in_order(&self.runtime, &self.producer, records)
    }

    /// The producer's fatal error, if it has one: the process must exit.
    pub fn fatal_error(&self) -> Option<String> {
        common::produce::fatal_error(&self.producer)
    }
}
