//! The `_schemas` topic, the registry's only storage: created at start when
//! missing (compacted, one partition), read to its end to rebuild the state,
//! and appended to, one record per new subject version.
//!
//! Record key: `{"subject": .., "version": ..}`; value: a [`StoredRecord`]
//! (`subject`, `version`, `id`, `schema`, `schemaType`, `references`). One
//! partition keeps the records in registration order, which replay relies on.
//! The registry assumes it is the topic's only writer.

use std::time::{Duration, Instant};

use anyhow::Context;
use common::kafka::KafkaSettings;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::Message;
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::util::Timeout;
use rdkafka::{ClientConfig, Offset, TopicPartitionList};

use crate::api::{AppendError, SchemaLog};
use crate::store::{RecordKey, StoredRecord};

/// Upper bound on one delivery (librdkafka `message.timeout.ms`), unless the
/// settings set their own: a registration answers 500 after this rather than
/// hanging, and the outcome is known when it does.
const DELIVERY_TIMEOUT_MS: &str = "10000";

/// Bound on waiting for room in the producer queue.
const QUEUE_TIMEOUT: Duration = Duration::from_secs(5);

/// Creates `topic` (compacted, one partition) unless it exists.
pub async fn ensure_topic(settings: &KafkaSettings, topic: &str) -> anyhow::Result<()> {
    let mut config = settings.client();
    for (key, value) in &settings.properties {
        let _ = config.set(key, value);
    }
    let admin: AdminClient<DefaultClientContext> = config
        .create()
        .context("cannot create the Kafka admin client")?;
    let new_topic =
        NewTopic::new(topic, 1, TopicReplication::Fixed(1)).set("cleanup.policy", "compact");
    let options = AdminOptions::new()
        .request_timeout(Some(Duration::from_secs(15)))
        .operation_timeout(Some(Duration::from_secs(15)));
    let results = tokio::time::timeout(
        Duration::from_secs(30),
        admin.create_topics([&new_topic], &options),
    )
    .await
    .map_err(|_| anyhow::anyhow!("no answer from Kafka at {} within 30s", settings.brokers))?
    .with_context(|| format!("cannot create topic `{topic}` on {}", settings.brokers))?;
    for result in results {
        match result {
            Ok(name) => tracing::info!(topic = %name, "created the schemas topic"),
            Err((name, RDKafkaErrorCode::TopicAlreadyExists)) => {
                tracing::debug!(topic = %name, "schemas topic already exists");
            }
            Err((name, code)) => anyhow::bail!("cannot create topic `{name}`: {code}"),
        }
    }
    Ok(())
}

/// Reads `topic` from its start to its high watermark (blocking): every
/// record in offset order, `None` values being tombstones. Records whose key
/// or value cannot be decoded are skipped with a warning.
pub fn read_all(
    settings: &KafkaSettings,
    topic: &str,
    timeout: Duration,
) -> anyhow::Result<Vec<(RecordKey, Option<StoredRecord>)>> {
    let consumer: BaseConsumer = settings
        .reader()
        .create()
        .context("cannot create the Kafka reader")?;
    let metadata = consumer
        .fetch_metadata(Some(topic), timeout)
        .with_context(|| format!("cannot reach Kafka at {}", settings.brokers))?;
    let partitions = metadata
        .topics()
        .iter()
        .find(|t| t.name() == topic)
        .map_or(0, |t| t.partitions().len());
    anyhow::ensure!(
        partitions == 1,
        "topic `{topic}` must have exactly one partition (has {partitions}), so registrations replay in order"
    );
    let (low, high) = consumer
        .fetch_watermarks(topic, 0, timeout)
        .with_context(|| format!("cannot read the offsets of `{topic}`"))?;
    let mut records = Vec::new();
    if high <= low {
        return Ok(records);
    }
    let mut assignment = TopicPartitionList::new();
    assignment.add_partition_offset(topic, 0, Offset::Offset(low))?;
    consumer.assign(&assignment)?;
    let deadline = Instant::now() + timeout;
    let mut next = low;
    while next < high {
        anyhow::ensure!(
            Instant::now() < deadline,
            "timed out reading `{topic}`: at offset {next} of {high} after {timeout:?}"
        );
        match consumer.poll(Duration::from_millis(200)) {
            None => {}
            // Compaction can leave the last offsets empty: the end is the end.
            Some(Err(KafkaError::PartitionEOF(_))) => break,
            Some(Err(e)) => return Err(e).with_context(|| format!("cannot read `{topic}`")),
            Some(Ok(message)) => {
                next = message.offset() + 1;
                if let Some(record) = decode(message.key(), message.payload(), message.offset()) {
                    records.push(record);
                }
            }
        }
    }
    Ok(records)
}

/// Decodes one record of the topic; `None` (with a warning) if it is not ours.
fn decode(
    key: Option<&[u8]>,
    value: Option<&[u8]>,
    offset: i64,
) -> Option<(RecordKey, Option<StoredRecord>)> {
    let key: RecordKey = match key.map(serde_json::from_slice) {
        Some(Ok(key)) => key,
        Some(Err(e)) => {
            tracing::warn!(offset, error = %e, "skipping a record whose key is not a schema key");
            return None;
        }
        None => {
            tracing::warn!(offset, "skipping a record without key");
            return None;
        }
    };
    match value.map(serde_json::from_slice::<StoredRecord>) {
        None => Some((key, None)),
        Some(Ok(record)) => Some((key, Some(record))),
        Some(Err(e)) => {
            tracing::warn!(offset, error = %e, "skipping a record whose value is not a schema");
            None
        }
    }
}

/// Appends registrations to the topic, waiting for the broker's ack.
pub struct KafkaLog {
    producer: FutureProducer,
    topic: String,
}

impl KafkaLog {
    /// A producer for `topic` (idempotent, `acks=all`).
    pub fn new(settings: &KafkaSettings, topic: impl Into<String>) -> anyhow::Result<Self> {
        let mut config: ClientConfig = settings.producer();
        if !settings.properties.contains_key("message.timeout.ms") {
            let _ = config.set("message.timeout.ms", DELIVERY_TIMEOUT_MS);
        }
        let producer = config
            .create()
            .context("cannot create the Kafka producer")?;
        Ok(Self {
            producer,
            topic: topic.into(),
        })
    }
}

impl SchemaLog for KafkaLog {
    async fn append(&self, record: &StoredRecord) -> Result<(), AppendError> {
        let key = serde_json::to_vec(&record.key()).map_err(|e| AppendError(e.to_string()))?;
        let value = serde_json::to_vec(record).map_err(|e| AppendError(e.to_string()))?;
        let message = FutureRecord::to(&self.topic).key(&key).payload(&value);
        match self
            .producer
            .send(message, Timeout::After(QUEUE_TIMEOUT))
            .await
        {
            Ok(delivery) => {
                tracing::debug!(offset = delivery.offset, "schema record acknowledged");
                Ok(())
            }
            Err((e, _)) => Err(AppendError(format!(
                "cannot write to topic `{}`: {e}",
                self.topic
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_keys_values_and_tombstones() {
        let record = StoredRecord {
            subject: "s".into(),
            version: 2,
            id: 5,
            schema: "\"string\"".into(),
            schema_type: "AVRO".into(),
            references: Vec::new(),
        };
        let key = serde_json::to_vec(&record.key()).expect("key");
        assert_eq!(
            String::from_utf8_lossy(&key),
            r#"{"subject":"s","version":2}"#
        );
        let value = serde_json::to_vec(&record).expect("value");
        let text = String::from_utf8_lossy(&value).to_string();
        assert!(text.contains(r#""schemaType":"AVRO""#), "{text}");
        assert!(text.contains(r#""references":[]"#), "{text}");
        assert_eq!(
            decode(Some(&key), Some(&value), 0),
            Some((record.key(), Some(record.clone())))
        );
        assert_eq!(decode(Some(&key), None, 1), Some((record.key(), None)));
        assert_eq!(decode(Some(b"{\"keytype\":\"NOOP\"}"), None, 2), None);
        assert_eq!(decode(None, Some(&value), 3), None);
        assert_eq!(decode(Some(&key), Some(b"garbage"), 4), None);
    }
}
