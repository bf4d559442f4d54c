//! `create-topics`: creates the pipeline's topics from the catalogue.
//!
//! Idempotent: topics that already exist are left as they are (and reported),
//! so the local stack and the compose setup job can run it on every start.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use common::kafka::KafkaSettings;
use common::topics::{Catalogue, DEFAULT_CATALOGUE};
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::types::RDKafkaErrorCode;

/// Create the pipeline's Kafka topics (idempotent).
#[derive(Debug, Parser)]
#[command(version, about, long_about = None)]
struct Args {
    /// Kafka bootstrap servers.
    #[arg(long, env = "KAFKA_BROKERS", default_value = "127.0.0.1:9092")]
    brokers: String,
    /// Topic catalogue (TOML); defaults to the one built in (config/topics.toml).
    #[arg(long)]
    catalogue: Option<PathBuf>,
    /// Prefix for every topic name (isolated test pipelines on one broker).
    #[arg(long, default_value = "")]
    prefix: String,
    /// Replication factor (1 for a single local broker).
    #[arg(long, default_value_t = 1)]
    replication: i32,
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let text = match &args.catalogue {
        Some(path) => std::fs::read_to_string(path)
            .with_context(|| format!("cannot read catalogue {}", path.display()))?,
        None => DEFAULT_CATALOGUE.to_string(),
    };
    let catalogue = Catalogue::parse(&text)?;
    let settings = KafkaSettings {
        brokers: args.brokers.clone(),
        ..KafkaSettings::default()
    };
    let admin: AdminClient<DefaultClientContext> = settings.client().create()?;
    let names: Vec<String> = catalogue
        .topics
        .iter()
        .map(|t| format!("{}{}", args.prefix, t.name))
        .collect();
    let new_topics: Vec<NewTopic<'_>> = catalogue
        .topics
        .iter()
        .zip(&names)
        .map(|(spec, name)| {
            spec.config.iter().fold(
                NewTopic::new(
                    name,
                    spec.partitions,
                    TopicReplication::Fixed(args.replication),
                ),
                |topic, (k, v)| topic.set(k, v),
            )
        })
        .collect();
    let options = AdminOptions::new().operation_timeout(Some(Duration::from_secs(10)));
    let results = admin
        .create_topics(&new_topics, &options)
        .await
        .with_context(|| format!("cannot create topics on {}", args.brokers))?;
    let mut failed = false;
    for result in results {
        match result {
            Ok(name) => println!("created {name}"),
            Err((name, RDKafkaErrorCode::TopicAlreadyExists)) => println!("exists  {name}"),
            Err((name, code)) => {
                eprintln!("failed  {name}: {code}");
                failed = true;
            }
        }
    }
    anyhow::ensure!(!failed, "some topics could not be created");
    let refs: Vec<&str> = names.iter().map(String::as_str).collect();
    let counts = common::kafka::check_topics(&settings, &refs, Duration::from_secs(10))?;
    for ((name, spec), count) in names.iter().zip(&catalogue.topics).zip(counts) {
        if i32::try_from(count).ok() != Some(spec.partitions) {
            eprintln!(
                "warning: {name} has {count} partitions, the catalogue says {}",
                spec.partitions
            );
        }
    }
    Ok(())
}
