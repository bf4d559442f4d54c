//! Dedupe's configuration.

use common::kafka::KafkaSettings;
use common::topics::TopicNames;
use serde::Deserialize;

/// Everything dedupe is configured with.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DedupeSettings {
    /// Consumer group on `properties.normalized`.
    #[serde(default = "default_group")]
    pub group: String,
    /// How long a key is remembered, seconds (default 7 days).
    #[serde(default = "default_ttl")]
    pub ttl_secs: u64,
    /// How often expired keys are swept (and tombstoned), seconds.
    #[serde(default = "default_expiry_interval")]
    pub expiry_interval_secs: u64,
    /// Kafka connection.
    #[serde(default)]
    pub kafka: KafkaSettings,
    /// Topic names.
    #[serde(default)]
    pub topics: TopicNames,
}

fn default_group() -> String {
    "dedupe".into()
}
fn default_expiry_interval() -> u64 {
    60
}
fn default_ttl() -> u64 {
    7 * 24 * 3600
}
