//! `subscribe-events`: how your own service subscribes to `properties.events`.
//!
//! A consumer in its own consumer group (so it never takes records from the
//! pipeline's stages), reading the Avro values with the writer's schema
//! fetched from the schema registry by the id in each value's prefix, and
//! printing each event as one JSON line. It commits its offsets after
//! printing (at least once); scale it by starting more with the same group.

use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use rdkafka::consumer::{CommitMode, Consumer, StreamConsumer};
use rdkafka::{ClientConfig, Message};
use schema_registry_converter::async_impl::avro::AvroDecoder;
use schema_registry_converter::async_impl::schema_registry::SrSettings;

/// Print every unique property event as a JSON line.
#[derive(Debug, Parser)]
#[command(version, about, long_about = None)]
struct Args {
    /// Kafka bootstrap servers (29092 from the host with docker compose).
    #[arg(long, default_value = "127.0.0.1:9092")]
    brokers: String,
    /// Schema registry base URL.
    #[arg(long, default_value = "http://127.0.0.1:8081")]
    registry: String,
    /// Your service's own consumer group.
    #[arg(long, default_value = "my-service")]
    group: String,
    /// Topic to read.
    #[arg(long, default_value = "properties.events")]
    topic: String,
    /// Stop after this many records (0: run until Ctrl-C).
    #[arg(long, default_value_t = 0)]
    max_records: u64,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let consumer: StreamConsumer = ClientConfig::new()
        .set("bootstrap.servers", &args.brokers)
        .set("group.id", &args.group)
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "earliest")
        // Only committed records when dedupe runs with transactions.
        .set("isolation.level", "read_committed")
        .create()
        .context("cannot create the consumer")?;
    consumer.subscribe(&[&args.topic])?;
    let registry = SrSettings::new_builder(args.registry.trim_end_matches('/').to_string())
        .set_timeout(Duration::from_secs(5))
        .build()
        .map_err(|e| anyhow::anyhow!("invalid registry URL: {e}"))?;
    let decoder = AvroDecoder::new(registry);
    let mut seen = 0;
    loop {
        let message = tokio::select! {
            m = consumer.recv() => m?,
            _ = tokio::signal::ctrl_c() => break,
        };
        let decoded = decoder.decode(message.payload()).await.map_err(|e| {
            anyhow::anyhow!("record at offset {} does not decode: {e}", message.offset())
        })?;
        let event: schemas::PropertyEvent =
            apache_avro::from_value(&decoded.value).context("not a PropertyEvent")?;
        println!("{}", serde_json::to_string(&event)?);
        consumer.commit_message(&message, CommitMode::Async)?;
        seen += 1;
        if args.max_records > 0 && seen >= args.max_records {
            break;
        }
    }
    Ok(())
}
