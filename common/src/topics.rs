//! The topic catalogue: names, partition counts and configs of every topic.
//!
//! The catalogue lives in `config/topics.toml` (embedded here as the default)
//! and is the one definition both the local stack and docker compose create
//! topics from. Services carry a [`TopicNames`] in their config; a `prefix`
//! lets several isolated pipelines share one broker (the tests use that).

use std::collections::BTreeMap;

use serde::Deserialize;

/// The catalogue shipped with the project (`config/topics.toml`).
pub const DEFAULT_CATALOGUE: &str = include_str!("../../config/topics.toml");

/// One topic to create.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TopicSpec {
    /// What the topic is for (`raw`, `dlq`, `normalized`, `seen`, `events`, `latest`).
    pub role: String,
    /// Topic name, before any prefix.
    pub name: String,
    /// Partition count.
    pub partitions: i32,
    /// Topic configs (`cleanup.policy`, `retention.ms`, ...).
    #[serde(default)]
    pub config: BTreeMap<String, String>,
}

/// A parsed catalogue.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Catalogue {
    /// Every topic of the pipeline.
    pub topics: Vec<TopicSpec>,
}

/// The roles that must be co-partitioned (DESIGN.md, "Topics"): dedupe
/// writes partition P of `seen` and `events` from partition P of
/// `normalized`, the state writer partition P of `latest` from partition P
/// of `events`.
const CO_PARTITIONED: [&str; 4] = ["normalized", "seen", "events", "latest"];

impl Catalogue {
    /// Parses and validates a catalogue.
    pub fn parse(text: &str) -> anyhow::Result<Self> {
        let catalogue: Catalogue = toml::from_str(text)?;
        catalogue.validate()?;
        Ok(catalogue)
    }

    fn validate(&self) -> anyhow::Result<()> {
        for spec in &self.topics {
            anyhow::ensure!(
                spec.partitions > 0,
                "topic {} must have at least one partition",
                spec.name
            );
        }
        let counts: Vec<(&str, i32)> = self
            .topics
            .iter()
            .filter(|t| CO_PARTITIONED.contains(&t.role.as_str()))
            .map(|t| (t.name.as_str(), t.partitions))
            .collect();
        if let Some((_, first)) = counts.first() {
            anyhow::ensure!(
                counts.iter().all(|(_, n)| n == first),
                "co-partitioned topics must have the same partition count, got {counts:?}"
            );
        }
        Ok(())
    }
}

/// The topic names a service uses, with the DESIGN.md defaults.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TopicNames {
    /// Prepended to every name (empty in production; tests isolate with it).
    pub prefix: String,
    /// Raw webhook bodies.
    pub raw: String,
    /// Dead letters.
    pub dlq: String,
    /// Normalized Avro events.
    pub normalized: String,
    /// Dedupe changelog (compacted).
    pub seen: String,
    /// Unique events.
    pub events: String,
    /// Latest snapshot per property (compacted).
    pub latest: String,
}

impl Default for TopicNames {
    fn default() -> Self {
        Self {
            prefix: String::new(),
            raw: "webhooks.raw".into(),
            dlq: "webhooks.dlq".into(),
            normalized: "properties.normalized".into(),
            seen: "dedupe.seen".into(),
            events: "properties.events".into(),
            latest: "properties.latest".into(),
        }
    }
}

impl TopicNames {
    /// Full name of the raw topic.
    pub fn raw(&self) -> String {
        format!("{}{}", self.prefix, self.raw)
    }
    /// Full name of the DLQ topic.
    pub fn dlq(&self) -> String {
        format!("{}{}", self.prefix, self.dlq)
    }
    /// Full name of the normalized topic.
    pub fn normalized(&self) -> String {
        format!("{}{}", self.prefix, self.normalized)
    }
    /// Full name of the dedupe changelog.
    pub fn seen(&self) -> String {
        format!("{}{}", self.prefix, self.seen)
    }
    /// Full name of the unique-events topic.
    pub fn events(&self) -> String {
        format!("{}{}", self.prefix, self.events)
    }
    /// Full name of the latest-snapshot topic.
    pub fn latest(&self) -> String {
        format!("{}{}", self.prefix, self.latest)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shipped_catalogue_is_valid_and_matches_the_default_names() {
        let catalogue = Catalogue::parse(DEFAULT_CATALOGUE).expect("valid");
        let names = TopicNames::default();
        let expect = [
            ("raw", names.raw()),
            ("dlq", names.dlq()),
            ("normalized", names.normalized()),
            ("seen", names.seen()),
            ("events", names.events()),
            ("latest", names.latest()),
        ];
        for (role, name) in expect {
            let spec = catalogue
                .topics
                .iter()
                .find(|t| t.role == role)
                .unwrap_or_else(|| panic!("no topic with role {role}"));
            assert_eq!(spec.name, name);
        }
        let policy = |role: &str| {
            catalogue
                .topics
                .iter()
                .find(|t| t.role == role)
                .and_then(|t| t.config.get("cleanup.policy").cloned())
        };
        assert_eq!(policy("seen").as_deref(), Some("compact"));
        assert_eq!(policy("latest").as_deref(), Some("compact"));
    }

    #[test]
    fn rejects_co_partitioned_topics_with_different_counts() {
        let text = r#"
            [[topics]]
            role = "normalized"
            name = "a"
            partitions = 3
            [[topics]]
            role = "seen"
            name = "b"
            partitions = 4
        "#;
        let err = Catalogue::parse(text).expect_err("must fail");
        assert!(err.to_string().contains("co-partitioned"), "{err}");
    }
}
