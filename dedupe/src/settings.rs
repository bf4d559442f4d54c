//! Dedupe's configuration.

use common::kafka::{BatchSettings, KafkaSettings};
use common::stage_loop::FencingSettings;
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
    /// Whether to use Kafka transactions: `auto` (use them when the broker
    /// supports them, else the output-first recovery), `required` (refuse to
    /// start without them) or `off`.
    #[serde(default)]
    pub transactions: TransactionsSetting,
    /// `transactional.id` prefix; the instance appends a unique suffix.
    #[serde(default = "default_transactional_id")]
    pub transactional_id_prefix: String,
    /// How often expired keys are swept (and tombstoned), seconds.
    #[serde(default = "default_expiry_interval")]
    pub expiry_interval_secs: u64,
    /// Kafka connection.
    #[serde(default)]
    pub kafka: KafkaSettings,
    /// Topic names.
    #[serde(default)]
    pub topics: TopicNames,
    /// Address of the `/metrics` and `/health` endpoint.
    #[serde(default = "default_metrics_listen")]
    pub metrics_listen: String,
    /// How many input records share one produce round trip.
    #[serde(default)]
    pub batch: BatchSettings,
    /// How a stalled instance is kept from writing after it lost its
    /// partitions.
    #[serde(default)]
    pub fencing: FencingSettings,
    /// Seconds without progress, while there is lag, after which `/health`
    /// answers 503.
    #[serde(default = "default_stall_after")]
    pub stall_after_secs: u64,
}

fn default_stall_after() -> u64 {
    120
}

fn default_group() -> String {
    "dedupe".into()
}
/// Whether dedupe uses Kafka transactions.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum TransactionsSetting {
    /// Use them when the broker supports them (detected at start).
    #[default]
    Auto,
    /// Fail at start when the broker refuses them.
    Required,
    /// Never use them (output-first recovery only).
    Off,
}

fn default_transactional_id() -> String {
    "dedupe".into()
}

fn default_expiry_interval() -> u64 {
    60
}
fn default_ttl() -> u64 {
    7 * 24 * 3600
}

fn default_metrics_listen() -> String {
    "127.0.0.1:9102".into()
}
