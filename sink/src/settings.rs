//! The sink's configuration, and how its database URL is shown in logs.

use common::kafka::KafkaSettings;
use common::topics::TopicNames;
use serde::Deserialize;

/// Everything the sink is configured with.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SinkSettings {
    /// Consumer group on `properties.events`.
    #[serde(default = "default_group")]
    pub group: String,
    /// PostgreSQL connection string (`host=... user=... dbname=...` or a URL).
    #[serde(default = "default_database_url")]
    pub database_url: String,
    /// Schema registry base URL.
    #[serde(default = "default_registry")]
    pub schema_registry_url: String,
    /// Most events per database transaction.
    #[serde(default = "default_batch_max")]
    pub batch_max_events: usize,
    /// Longest a batch keeps filling, milliseconds. A batch goes to the
    /// database sooner when the writer is free and no more records wait.
    #[serde(default = "default_batch_ms")]
    pub batch_max_wait_ms: u64,
    /// Kafka connection.
    #[serde(default)]
    pub kafka: KafkaSettings,
    /// Topic names.
    #[serde(default)]
    pub topics: TopicNames,
    /// Address of the `/metrics` and `/health` endpoint.
    #[serde(default = "default_metrics_listen")]
    pub metrics_listen: String,
    /// Seconds the loop may make no progress while the group has lag
    /// before `/health` answers 503 (a partition held for the schema
    /// registry, a database that does not answer).
    #[serde(default = "default_stall_after_secs")]
    pub stall_after_secs: u64,
}

fn default_group() -> String {
    "sink".into()
}
fn default_database_url() -> String {
    "host=127.0.0.1 port=5432 user=estate dbname=estate".into()
}
fn default_registry() -> String {
    "http://127.0.0.1:8081".into()
}
fn default_batch_max() -> usize {
    500
}
fn default_batch_ms() -> u64 {
    50
}

/// The connection string with any password hidden, for logs.
pub fn redact_database_url(url: &str) -> String {
    if let Some((scheme, rest)) = url.split_once("://")
        && let Some((userinfo, host)) = rest.split_once('@')
    {
        let user = userinfo.split(':').next().unwrap_or("");
        return format!("{scheme}://{user}:***@{host}");
    }
    url.split_whitespace()
        .map(|kv| {
            if kv.starts_with("password=") {
                "password=***"
            } else {
                kv
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

fn default_stall_after_secs() -> u64 {
    common::stage_metrics::DEFAULT_STALL_AFTER.as_secs()
}

fn default_metrics_listen() -> String {
    "127.0.0.1:9103".into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_never_reach_the_logs() {
        assert_eq!(
            redact_database_url("postgres://u:secret@h:5432/db"),
            "postgres://u:***@h:5432/db"
        );
        assert_eq!(
            redact_database_url("host=h user=u password=secret dbname=d"),
            "host=h user=u password=*** dbname=d"
        );
    }
}
