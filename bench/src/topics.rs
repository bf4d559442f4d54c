//! Topics of one bench run: created under a fresh prefix with the
//! project's `create-topics` (so partitions and configs are the real
//! ones), and counted by their watermarks afterwards.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use anyhow::{Context as _, bail};
use common::kafka::KafkaSettings;
use common::topics::TopicNames;
use rdkafka::consumer::{BaseConsumer, Consumer as _};

/// Creates every catalogue topic under `prefix`.
pub fn create(bin_dir: &Path, brokers: &str, prefix: &str) -> anyhow::Result<TopicNames> {
    let program = bin_dir.join("create-topics");
    let status = Command::new(&program)
        .args(["--brokers", brokers, "--prefix", prefix])
        .stdout(Stdio::null())
        .status()
        .with_context(|| format!("cannot run {}", program.display()))?;
    if !status.success() {
        bail!("create-topics failed for prefix {prefix} ({status})");
    }
    Ok(TopicNames {
        prefix: prefix.to_string(),
        ..TopicNames::default()
    })
}

/// Records currently on `topic` (sum over partitions of high − low watermark).
pub fn count_records(brokers: &str, topic: &str) -> anyhow::Result<i64> {
    let settings = KafkaSettings {
        brokers: brokers.to_string(),
        ..KafkaSettings::default()
    };
    let consumer: BaseConsumer = settings
        .reader()
        .create()
        .context("cannot create a metadata client")?;
    let timeout = Duration::from_secs(10);
    let metadata = consumer
        .fetch_metadata(Some(topic), timeout)
        .with_context(|| format!("cannot read the metadata of {topic}"))?;
    let mut total = 0;
    for t in metadata.topics() {
        for partition in t.partitions() {
            let (low, high) = consumer
                .fetch_watermarks(topic, partition.id(), timeout)
                .with_context(|| format!("cannot read the watermarks of {topic}"))?;
            total += high - low;
        }
    }
    Ok(total)
}
