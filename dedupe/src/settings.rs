//! Dedupe's configuration.

use common::kafka::{BatchSettings, KafkaSettings};
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

/// Bounds that keep a stalled owner from writing after the group gave its
/// partitions to another instance (README, "Delivery guarantees"). The
/// group moves a partition after the consumer's `session.timeout.ms` (10 s)
/// without a heartbeat, or after `max.poll.interval.ms` (60 s) without a
/// poll; both must stay above the budget, which is checked at start.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FencingSettings {
    /// Wall time a batch may take from its first record to its last write,
    /// ms; past it the batch is abandoned, its partitions restored and
    /// read again.
    #[serde(default = "default_batch_budget_ms")]
    pub batch_budget_ms: u64,
    /// The producer's `message.timeout.ms` in the output-first mode: a
    /// record not acknowledged by then fails rather than landing late.
    #[serde(default = "default_produce_timeout_ms")]
    pub produce_timeout_ms: u64,
    /// A write more than this long after the last poll first asks the group
    /// coordinator whether this instance still owns its partitions, ms.
    #[serde(default = "default_recheck_after_ms")]
    pub recheck_after_ms: u64,
}

impl Default for FencingSettings {
    fn default() -> Self {
        Self {
            batch_budget_ms: default_batch_budget_ms(),
            produce_timeout_ms: default_produce_timeout_ms(),
            recheck_after_ms: default_recheck_after_ms(),
        }
    }
}

fn default_batch_budget_ms() -> u64 {
    8_000
}
fn default_produce_timeout_ms() -> u64 {
    5_000
}
fn default_recheck_after_ms() -> u64 {
    1_000
}
fn default_stall_after() -> u64 {
    120
}

impl FencingSettings {
    /// Refuses bounds that do not fence: the produce timeout must be below
    /// the budget, and the budget below both group timeouts.
    pub fn check(&self, session_timeout_ms: u64, max_poll_interval_ms: u64) -> anyhow::Result<()> {
        anyhow::ensure!(
            self.produce_timeout_ms > 0,
            "[fencing] produce_timeout_ms must be above 0: librdkafka reads a \
             `message.timeout.ms` of 0 as no delivery timeout at all"
        );
        anyhow::ensure!(
            self.produce_timeout_ms < self.batch_budget_ms,
            "[fencing] produce_timeout_ms ({}) must be below batch_budget_ms ({})",
            self.produce_timeout_ms,
            self.batch_budget_ms
        );
        anyhow::ensure!(
            self.batch_budget_ms < session_timeout_ms
                && self.batch_budget_ms < max_poll_interval_ms,
            "[fencing] batch_budget_ms ({}) must be below the consumer's session.timeout.ms ({}) \
             and max.poll.interval.ms ({}): a batch must end before the group can move its \
             partitions",
            self.batch_budget_ms,
            session_timeout_ms,
            max_poll_interval_ms
        );
        Ok(())
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fencing_bounds_must_nest() {
        let fencing = FencingSettings::default();
        assert!(fencing.check(10_000, 60_000).is_ok());
        let error = fencing
            .check(8_000, 60_000)
            .expect_err("budget over the session");
        assert!(
            error.to_string().contains("session.timeout.ms (8000)"),
            "{error}"
        );
        let slow = FencingSettings {
            produce_timeout_ms: 9_000,
            ..fencing
        };
        assert!(slow.check(10_000, 60_000).is_err());
    }

    #[test]
    fn a_produce_timeout_of_zero_is_refused() {
        // 0 < budget, yet librdkafka takes `message.timeout.ms = 0` as
        // "never time out": a produce queued before a stall would land
        // whenever the instance runs again.
        let never = FencingSettings {
            produce_timeout_ms: 0,
            ..FencingSettings::default()
        };
        let error = never.check(10_000, 60_000).expect_err("no timeout at all");
        assert!(error.to_string().contains("produce_timeout_ms"), "{error}");
    }
}
