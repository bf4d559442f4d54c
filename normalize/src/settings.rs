//! Normalize's configuration.

use common::kafka::{BatchSettings, KafkaSettings};
use common::topics::TopicNames;
use serde::Deserialize;

use crate::providers::Limits;

/// Everything normalize is configured with.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NormalizeSettings {
    /// Consumer group on `webhooks.raw`.
    #[serde(default = "default_group")]
    pub group: String,
    /// Schema registry base URL (no trailing slash needed).
    #[serde(default = "default_registry")]
    pub schema_registry_url: String,
    /// Kafka connection.
    #[serde(default)]
    pub kafka: KafkaSettings,
    /// Topic names.
    #[serde(default)]
    pub topics: TopicNames,
    /// Address of the `/metrics` and `/health` endpoint.
    #[serde(default = "default_metrics_listen")]
    pub metrics_listen: String,
    /// How many raw records are processed per produce round trip.
    #[serde(default)]
    pub batch: BatchSettings,
    /// The normalizer version stamped in each event's lineage. Default:
    /// this build's version. Set it only to rehearse a correction (a replay
    /// "as" a newer release), as the tests do.
    #[serde(default)]
    pub normalizer_version: Option<String>,
    /// What one raw record may yield (`[limits]`): events per record and
    /// items per array an event holds. Beyond them the record is
    /// dead-lettered (`too_many_events`, `too_many_items`).
    #[serde(default)]
    pub limits: Limits,
}

fn default_group() -> String {
    "normalize".into()
}
fn default_registry() -> String {
    "http://127.0.0.1:8081".into()
}

fn default_metrics_listen() -> String {
    "127.0.0.1:9101".into()
}
