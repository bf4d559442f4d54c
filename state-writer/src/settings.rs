//! The state writer's configuration: `config/state-writer.toml`, then
//! `STATE_WRITER__<SECTION>__<KEY>` environment variables.

use common::kafka::{BatchSettings, KafkaSettings};
use common::stage_loop::FencingSettings;
use common::topics::TopicNames;
use serde::Deserialize;

/// Everything the state writer is configured with.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StateWriterSettings {
    /// Consumer group on `properties.events`.
    #[serde(default = "default_group")]
    pub group: String,
    /// The schema registry: the events' writer schemas, and where the
    /// state's schema is registered (`<latest topic>-value`).
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
    /// How many input records share one produce round trip.
    #[serde(default)]
    pub batch: BatchSettings,
    /// How a stalled instance is kept from writing after it lost its
    /// partitions.
    #[serde(default)]
    pub fencing: FencingSettings,
    /// Seconds without progress, while there is lag, after which `/health`
    /// answers 503 (a restore in progress counts as progress; a batch held
    /// for the registry does not).
    #[serde(default = "default_stall_after")]
    pub stall_after_secs: u64,
}

fn default_group() -> String {
    "state-writer".into()
}

fn default_registry() -> String {
    "http://127.0.0.1:8081".into()
}

fn default_metrics_listen() -> String {
    "127.0.0.1:9104".into()
}

fn default_stall_after() -> u64 {
    120
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shipped_settings_and_the_environment_load() {
        let file =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../config/state-writer.toml");
        let vars = [
            ("STATE_WRITER__GROUP".to_string(), "g".to_string()),
            (
                "STATE_WRITER__FENCING__BATCH_BUDGET_MS".to_string(),
                "7000".to_string(),
            ),
        ];
        let settings: StateWriterSettings =
            common::config::load_from("STATE_WRITER", Some(&file), &vars).expect("loads");
        assert_eq!(settings.group, "g");
        assert_eq!(settings.fencing.batch_budget_ms, 7000);
        assert_eq!(settings.metrics_listen, "127.0.0.1:9104");
        assert!(settings.fencing.check(10_000, 60_000).is_ok());
    }
}
