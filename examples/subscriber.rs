//! What the example subscribers share: where Kafka and the schema registry
//! are, a consumer in the service's own group, the registry's Avro decoder,
//! and the read loop that stops at Ctrl-C or after a number of records.
//!
//! Every Avro value on the pipeline's topics is in the Confluent wire
//! format: [`decode`] reads it with the writer's schema, fetched from the
//! registry by the id in the value's prefix (and cached), so a subscriber
//! reads whatever compatible version the producer registered.
//! `contract/asyncapi.json` describes each topic's key, value and headers.

use std::time::Duration;

use anyhow::Context;
use apache_avro::types::Value;
use rdkafka::ClientConfig;
use rdkafka::Message;
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::message::BorrowedMessage;
use schema_registry_converter::async_impl::avro::AvroDecoder;
use schema_registry_converter::async_impl::schema_registry::SrSettings;

/// Where the broker and the registry are, and when to stop.
#[derive(Debug, clap::Args)]
pub struct Connection {
    /// Kafka bootstrap servers (29092 from the host with docker compose).
    #[arg(long, default_value = "127.0.0.1:9092")]
    pub brokers: String,
    /// Schema registry base URL.
    #[arg(long, default_value = "http://127.0.0.1:8081")]
    pub registry: String,
    /// Stop after this many records (0: run until Ctrl-C).
    #[arg(long, default_value_t = 0)]
    pub max_records: u64,
}

impl Connection {
    /// A consumer of `topic` in `group`, committing nothing by itself, that
    /// starts from the beginning where the group has no committed offset.
    pub fn consumer(&self, group: &str, topic: &str) -> anyhow::Result<StreamConsumer> {
        let consumer: StreamConsumer = ClientConfig::new()
            .set("bootstrap.servers", &self.brokers)
            .set("group.id", group)
            .set("enable.auto.commit", "false")
            .set("auto.offset.reset", "earliest")
            // Only committed records when dedupe runs with transactions.
            .set("isolation.level", "read_committed")
            .create()
            .context("cannot create the consumer")?;
        consumer
            .subscribe(&[topic])
            .with_context(|| format!("cannot subscribe to {topic}"))?;
        Ok(consumer)
    }

    /// The registry's Avro decoder (writer schemas by id, cached).
    pub fn decoder(&self) -> anyhow::Result<AvroDecoder> {
        // The client builds `<base>/schemas/ids/<id>`: no trailing slash.
        let registry = SrSettings::new_builder(self.registry.trim_end_matches('/').to_string())
            .set_timeout(Duration::from_secs(5))
            .build()
            .map_err(|e| anyhow::anyhow!("invalid registry URL: {e}"))?;
        Ok(AvroDecoder::new(registry))
    }

    /// Hands each record of `consumer` to `handle`, in the order received,
    /// until Ctrl-C, an error, or `max_records` records.
    pub async fn each_record<F>(
        &self,
        consumer: &StreamConsumer,
        mut handle: F,
    ) -> anyhow::Result<()>
    where
        F: AsyncFnMut(&BorrowedMessage<'_>) -> anyhow::Result<()>,
    {
        let mut seen = 0;
        loop {
            let message = tokio::select! {
                m = consumer.recv() => m.context("cannot read from Kafka")?,
                _ = tokio::signal::ctrl_c() => return Ok(()),
            };
            handle(&message).await?;
            seen += 1;
            if self.max_records > 0 && seen >= self.max_records {
                return Ok(());
            }
        }
    }
}

/// The record's value, decoded with its writer schema (a null value, a
/// tombstone, is [`Value::Null`]).
pub async fn decode(decoder: &AvroDecoder, message: &BorrowedMessage<'_>) -> anyhow::Result<Value> {
    let decoded = decoder.decode(message.payload()).await.map_err(|e| {
        anyhow::anyhow!(
            "record at partition {} offset {} does not decode: {e}",
            message.partition(),
            message.offset()
        )
    })?;
    Ok(decoded.value)
}
