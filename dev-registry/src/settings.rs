//! The registry's configuration: listen address, Kafka connection and the
//! name of the topic the schemas are kept in.
//!
//! Loaded with [`common::config::load`] under the prefix `REGISTRY`, so
//! `REGISTRY__LISTEN=0.0.0.0:8081` or `REGISTRY__KAFKA__BROKERS=kafka:9092`
//! override the file.

use common::kafka::KafkaSettings;
use serde::Deserialize;

/// The environment variable prefix of the registry's settings.
pub const ENV_PREFIX: &str = "REGISTRY";

/// Everything the registry is configured with.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RegistrySettings {
    /// Address to listen on (`host:port`).
    pub listen: String,
    /// Kafka connection.
    pub kafka: KafkaSettings,
    /// Compacted topic holding one record per subject version.
    pub schemas_topic: String,
}

impl Default for RegistrySettings {
    fn default() -> Self {
        Self {
            listen: "127.0.0.1:8081".into(),
            kafka: KafkaSettings::default(),
            schemas_topic: "_schemas".into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn defaults_apply_without_a_file() {
        let s: RegistrySettings = common::config::load_from(ENV_PREFIX, None, &[]).expect("loads");
        assert_eq!(s.listen, "127.0.0.1:8081");
        assert_eq!(s.kafka.brokers, "127.0.0.1:9092");
        assert_eq!(s.schemas_topic, "_schemas");
    }

    #[test]
    fn environment_overrides_apply() {
        let s: RegistrySettings = common::config::load_from(
            ENV_PREFIX,
            None,
            &vars(&[
                ("REGISTRY__LISTEN", "127.0.0.1:18181"),
                ("REGISTRY__SCHEMAS_TOPIC", "_schemas_test"),
                ("REGISTRY__KAFKA__BROKERS", "k:1"),
            ]),
        )
        .expect("loads");
        assert_eq!(s.listen, "127.0.0.1:18181");
        assert_eq!(s.schemas_topic, "_schemas_test");
        assert_eq!(s.kafka.brokers, "k:1");
    }

    #[test]
    fn unknown_keys_are_rejected() {
        let parsed: Result<RegistrySettings, _> = toml::from_str("listne = \"x\"");
        assert!(parsed.is_err());
    }
}
