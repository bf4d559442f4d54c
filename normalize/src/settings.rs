//! Normalize's configuration (`config/normalize.toml`, overridden by
//! `NORMALIZE__<SECTION>__<KEY>` variables).

use std::time::Duration;

use common::kafka::{BatchSettings, KafkaSettings};
use common::topics::TopicNames;
use serde::Deserialize;

use crate::outcome::Rules;
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
    /// How long the loop may make no progress while the group has lag
    /// before `/health` answers 503 (seconds).
    #[serde(default = "default_stall_after_secs")]
    pub stall_after_secs: u64,
    /// The time sanity every event gets (`[time]`).
    #[serde(default)]
    pub time: TimeSettings,
}

/// `[time]`: what an event time may be ([`crate::event_time`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TimeSettings {
    /// How far an event's `occurred_at` may be after its arrival at ingest
    /// (seconds, default 3600); beyond it `occurred_at` becomes the arrival
    /// time and the sender's time is kept in `occurred_at_claimed`.
    #[serde(default = "default_max_future_skew_secs")]
    pub max_future_skew_secs: u64,
}

impl Default for TimeSettings {
    fn default() -> Self {
        Self {
            max_future_skew_secs: default_max_future_skew_secs(),
        }
    }
}

impl NormalizeSettings {
    /// What these settings say about every record ([`crate::outcome`]).
    pub fn rules(&self) -> Rules {
        Rules {
            limits: self.limits,
            normalizer_version: self.normalizer_version.clone(),
            normalized_topic: self.topics.normalized(),
            message_max_bytes: self.kafka.message_max_bytes,
            max_future_skew_ms: crate::event_time::skew_ms(self.time.max_future_skew_secs),
        }
    }

    /// [`Self::stall_after_secs`] as a duration.
    pub fn stall_after(&self) -> Duration {
        Duration::from_secs(self.stall_after_secs)
    }
}

fn default_stall_after_secs() -> u64 {
    common::stage_metrics::DEFAULT_STALL_AFTER.as_secs()
}

fn default_max_future_skew_secs() -> u64 {
    crate::event_time::DEFAULT_MAX_FUTURE_SKEW_SECS
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_stall_allowance_defaults_to_two_minutes_and_is_read_from_the_settings() {
        let defaults: NormalizeSettings = serde_json::from_str("{}").expect("all defaults");
        assert_eq!(defaults.stall_after(), Duration::from_secs(120));
        let set: NormalizeSettings =
            serde_json::from_str(r#"{"stall_after_secs": 30}"#).expect("deserializes");
        assert_eq!(set.stall_after(), Duration::from_secs(30));
        let rules = set.rules();
        assert_eq!(rules.normalized_topic, set.topics.normalized());
        assert_eq!(rules.message_max_bytes, set.kafka.message_max_bytes);
    }

    #[test]
    fn the_future_skew_defaults_to_an_hour_and_is_read_in_seconds() {
        let defaults: NormalizeSettings = serde_json::from_str("{}").expect("all defaults");
        assert_eq!(defaults.time.max_future_skew_secs, 3_600);
        assert_eq!(defaults.rules().max_future_skew_ms, 3_600_000);
        let set: NormalizeSettings =
            serde_json::from_str(r#"{"time": {"max_future_skew_secs": 60}}"#)
                .expect("deserializes");
        assert_eq!(set.rules().max_future_skew_ms, 60_000);
        assert!(
            serde_json::from_str::<NormalizeSettings>(r#"{"time": {"max_skew": 60}}"#).is_err(),
            "a misspelt key is refused"
        );
        let path =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../config/normalize.toml");
        let shipped: NormalizeSettings = common::config::load_from("NORMALIZE", Some(&path), &[])
            .expect("config/normalize.toml");
        assert_eq!(shipped.time, TimeSettings::default());
        let vars = [(
            "NORMALIZE__TIME__MAX_FUTURE_SKEW_SECS".to_string(),
            "120".to_string(),
        )];
        let overridden: NormalizeSettings =
            common::config::load_from("NORMALIZE", Some(&path), &vars).expect("override");
        assert_eq!(overridden.rules().max_future_skew_ms, 120_000);
    }
}
