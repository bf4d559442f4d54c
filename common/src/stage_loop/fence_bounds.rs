//! The bounds that make [`super::Fence`] fence: the settings a stage that
//! writes output-first reads from its `[fencing]` table, the check that
//! they nest inside the consumer group's own timeouts, and the producer
//! configuration that applies the delivery timeout (with the gapless
//! guarantee that keeps what is acknowledged a prefix of what was sent, and
//! one request in flight per connection, so that nothing of an attempt
//! reported failed is still queued behind another request).
//!
//! The group moves a partition after the consumer's `session.timeout.ms`
//! (10 s) without a heartbeat, or after `max.poll.interval.ms` (60 s)
//! without a poll; a batch must end before either, and a record queued
//! before a stall must fail before the batch's budget is spent.

use anyhow::Context as _;
use rdkafka::ClientConfig;
use serde::Deserialize;

/// Bounds that keep a stalled owner from writing after the group gave its
/// partitions to another instance (README, "Delivery guarantees"); both
/// group timeouts must stay above the budget, which [`Self::check`] checks
/// at start.
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

/// The `max.poll.interval.ms` an output-first stage runs its consumer with.
pub const MAX_POLL_INTERVAL_MS: u64 = 60_000;

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

    /// The group consumer an output-first stage runs (range assignment,
    /// so a partition moves as a whole; [`MAX_POLL_INTERVAL_MS`]), after
    /// checking that these bounds nest inside its timeouts.
    pub fn consumer(&self, base: ClientConfig) -> anyhow::Result<ClientConfig> {
        anyhow::ensure!(
            base.get("group.instance.id").is_none(),
            "`[kafka.properties]` cannot set `group.instance.id` for a stage that writes \
             output-first: with static membership a member that takes over the identity gets \
             the partitions at once, without the session timeout the fencing bounds nest in, \
             while the old process may still write"
        );
        let mut config = base;
        let _ = config
            .set("partition.assignment.strategy", "range")
            .set("max.poll.interval.ms", MAX_POLL_INTERVAL_MS.to_string());
        self.check(
            millis_setting(&config, "session.timeout.ms")?,
            millis_setting(&config, "max.poll.interval.ms")?,
        )?;
        Ok(config)
    }

    /// The output-first producer's configuration: the shared settings with
    /// a delivery timeout of `produce_timeout_ms` (below the budget, see
    /// [`super::Fence`]), none of its aliases, and the gapless guarantee.
    pub fn producer(&self, base: ClientConfig) -> ClientConfig {
        output_first_producer(base, self.produce_timeout_ms)
    }
}

/// librdkafka's other names for `message.timeout.ms`: one of them left in
/// the configuration (from `[kafka.properties]`) would be applied in an
/// unspecified order with it, and could restore a delivery timeout longer
/// than the batch budget.
const DELIVERY_TIMEOUT_ALIASES: [&str; 3] = [
    "delivery.timeout.ms",
    "topic.message.timeout.ms",
    "topic.delivery.timeout.ms",
];

/// librdkafka's other name for `max.in.flight.requests.per.connection`.
const IN_FLIGHT_ALIAS: &str = "max.in.flight";

/// `base` with `message.timeout.ms` = `produce_timeout_ms`, none of its
/// aliases, `enable.gapless.guarantee`, and one request in flight per
/// broker connection.
///
/// - The gapless guarantee: an idempotent producer that would have to
///   leave a gap in a partition fails fatally instead, so what is
///   acknowledged is a prefix of what was sent.
/// - One request in flight: a produce reported timed out must not land
///   after the restore that follows has read the output's tail (it would be
///   forwarded a second time). With five requests pipelined on a slow
///   connection, the last ones wait behind the first and reach the broker
///   after librdkafka gave them up and closed the connection (CI saw one
///   record doubled this way, `tests/dedupe_through_faults.rs`). With one,
///   the request that timed out is the only one sent, and it lands within
///   its one-way delay of being sent; the stages produce one batch at a
///   time and wait for every acknowledgement anyway, so nothing is lost
///   in throughput but the pipelining of a batch larger than one request.
pub fn output_first_producer(base: ClientConfig, produce_timeout_ms: u64) -> ClientConfig {
    let mut config = base;
    for alias in DELIVERY_TIMEOUT_ALIASES {
        if config.get(alias).is_some() {
            tracing::warn!(
                property = alias,
                "ignored: the delivery timeout is [fencing] produce_timeout_ms"
            );
            let _ = config.remove(alias);
        }
    }
    if config.get(IN_FLIGHT_ALIAS).is_some() {
        tracing::warn!(
            property = IN_FLIGHT_ALIAS,
            "ignored: an output-first producer keeps one request in flight"
        );
        let _ = config.remove(IN_FLIGHT_ALIAS);
    }
    let _ = config
        .set("message.timeout.ms", produce_timeout_ms.to_string())
        .set("enable.gapless.guarantee", "true")
        .set("max.in.flight.requests.per.connection", "1");
    config
}

/// Reads a millisecond setting from a client configuration.
pub fn millis_setting(config: &ClientConfig, name: &str) -> anyhow::Result<u64> {
    config
        .get(name)
        .with_context(|| format!("the consumer configuration has no `{name}`"))?
        .parse()
        .with_context(|| format!("`{name}` is not a number of milliseconds"))
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

    #[test]
    fn the_consumer_is_checked_against_its_own_timeouts() {
        let mut base = ClientConfig::new();
        let _ = base.set("session.timeout.ms", "10000");
        let config = FencingSettings::default()
            .consumer(base.clone())
            .expect("nests");
        assert_eq!(config.get("partition.assignment.strategy"), Some("range"));
        let _ = base.set("session.timeout.ms", "6000");
        assert!(FencingSettings::default().consumer(base).is_err());
    }

    #[test]
    fn static_membership_is_refused() {
        // A member joining with another's `group.instance.id` gets its
        // partitions at once, not after the session timeout the budget
        // nests in; the old member's fetcher kept returning records after
        // its fencing, and both forwarded the same inputs
        // (tests/dedupe_static_membership.rs).
        let mut base = ClientConfig::new();
        let _ = base
            .set("session.timeout.ms", "10000")
            .set("group.instance.id", "dedupe-0");
        let error = FencingSettings::default()
            .consumer(base)
            .expect_err("static membership");
        assert!(error.to_string().contains("group.instance.id"), "{error}");
    }

    #[test]
    fn no_alias_of_the_delivery_timeout_survives_from_the_properties() {
        // `[kafka.properties] delivery.timeout.ms = "300000"` is accepted by
        // the settings; librdkafka applies the configuration's entries in
        // hash order, so the alias could win over `message.timeout.ms` and a
        // produce could again land 300 s late, long after the group moved
        // the partition.
        let mut base = ClientConfig::new();
        let _ = base
            .set("delivery.timeout.ms", "300000")
            .set("topic.message.timeout.ms", "300000")
            .set("message.timeout.ms", "300000");
        let config = FencingSettings::default().producer(base);
        assert_eq!(config.get("message.timeout.ms"), Some("5000"));
        assert_eq!(config.get("enable.gapless.guarantee"), Some("true"));
        for alias in DELIVERY_TIMEOUT_ALIASES {
            assert_eq!(config.get(alias), None, "{alias}");
        }
    }

    #[test]
    fn one_request_in_flight_whatever_the_properties_say() {
        // Five pipelined requests on a slow connection: the ones behind the
        // first reach the broker after librdkafka reported them timed out,
        // and after the restore read the output's tail.
        let mut base = ClientConfig::new();
        let _ = base
            .set("max.in.flight", "5")
            .set("max.in.flight.requests.per.connection", "1");
        let config = FencingSettings::default().producer(base);
        assert_eq!(
            config.get("max.in.flight.requests.per.connection"),
            Some("1")
        );
        assert_eq!(config.get("max.in.flight"), None);
    }
}
