//! `subscribe-events`: how your own service subscribes to `properties.events`.
//!
//! A consumer in its own consumer group (so it never takes records from the
//! pipeline's stages), reading the Avro values with the writer's schema
//! fetched from the schema registry by the id in each value's prefix, and
//! printing each event as one JSON line. It commits its offsets after
//! printing (at least once); scale it by starting more with the same group.

use anyhow::Context;
use clap::Parser;
use pipeline_examples::{Connection, decode};
use rdkafka::consumer::{CommitMode, Consumer};

/// Print every unique property event as a JSON line.
#[derive(Debug, Parser)]
#[command(version, about, long_about = None)]
struct Args {
    #[command(flatten)]
    connection: Connection,
    /// Your service's own consumer group.
    #[arg(long, default_value = "my-service")]
    group: String,
    /// Topic to read.
    #[arg(long, default_value = "properties.events")]
    topic: String,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let consumer = args.connection.consumer(&args.group, &args.topic)?;
    let decoder = args.connection.decoder()?;
    args.connection
        .each_record(&consumer, async |message| {
            let value = decode(&decoder, message).await?;
            let event: schemas::PropertyEvent =
                apache_avro::from_value(&value).context("not a PropertyEvent")?;
            println!("{}", serde_json::to_string(&event)?);
            consumer.commit_message(message, CommitMode::Async)?;
            Ok(())
        })
        .await
}
