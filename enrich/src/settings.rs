//! The enrichment stage's configuration (`config/enrich.toml`, overridden
//! by `ENRICH__<SECTION>__<KEY>` variables): where it reads and writes, and
//! how it calls the provider's API (`[api]`): base URL and paths, bulk
//! chunk size, timeout, client-side rate limit, concurrency, backoff and
//! circuit breaker. The API key is never a setting: it is read from the
//! environment variable `[api] key_env` or the file `[api] key_file`
//! ([`crate::api_key`]).

use std::num::NonZeroUsize;
use std::path::PathBuf;
use std::time::Duration;

use common::kafka::{BatchSettings, KafkaSettings};
use common::topics::TopicNames;
use serde::Deserialize;

use crate::backoff::BackoffPolicy;
use crate::breaker::BreakerConfig;

/// Everything the stage is configured with.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EnrichSettings {
    /// Consumer group on `properties.events`.
    #[serde(default = "default_group")]
    pub group: String,
    /// Schema registry base URL.
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
    /// Records read per batch.
    #[serde(default)]
    pub batch: BatchSettings,
    /// How long the loop may make no progress while the group has lag
    /// before `/health` answers 503 (seconds).
    #[serde(default = "default_stall_after_secs")]
    pub stall_after_secs: u64,
    /// The provider's API.
    #[serde(default)]
    pub api: ApiSettings,
}

/// `[api]`: how the Fluximmo API is called.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ApiSettings {
    /// Base URL, e.g. `https://api.fluximmo.io`.
    pub base_url: String,
    /// The bulk fetch, `POST` with `{"flxIds": [...]}`.
    pub many_path: String,
    /// The fetch by id, `GET`; `{flxId}` is replaced by the id.
    pub by_id_path: String,
    /// The environment variable holding the API key.
    pub key_env: String,
    /// A file holding the API key (read when set; wins over `key_env`).
    pub key_file: Option<PathBuf>,
    /// Ids per bulk request.
    pub chunk_size: NonZeroUsize,
    /// Bound on each call, ms.
    pub timeout_ms: u64,
    /// Calls per second, on average (client-side rate limit).
    pub rate_per_second: f64,
    /// Calls that may be made at once after a quiet spell.
    pub burst: u32,
    /// Calls in flight at once.
    pub max_concurrent_calls: NonZeroUsize,
    /// Ceiling of the first retry's delay, ms.
    pub backoff_base_ms: u64,
    /// No retry waits longer, ms.
    pub backoff_cap_ms: u64,
    /// Calls per request, the first included.
    pub max_attempts: u32,
    /// The most time from a request's first call to its last retry, ms.
    pub max_elapsed_ms: u64,
    /// Consecutive failed calls that open the circuit breaker.
    pub breaker_failures: u32,
    /// How long an open breaker waits before a probe, ms.
    pub breaker_cool_down_ms: u64,
    /// How long a fetched property may answer for the same id again, named
    /// by a webhook that arrived before the fetch (`crate::cache`); 0
    /// turns the cache off.
    pub cache_ttl_secs: u64,
    /// Properties the cache keeps at most.
    pub cache_max_entries: usize,
    /// The most time a batch's fetches may take, ms: an id not answered by
    /// then is a `timeout` dead letter. Must stay below the consumer's
    /// `max.poll.interval.ms` minus `timeout_ms` (checked at start).
    pub batch_budget_ms: u64,
}

impl Default for ApiSettings {
    fn default() -> Self {
        Self {
            base_url: "https://api.fluximmo.io".into(),
            many_path: "/v2/protected/properties/_many".into(),
            by_id_path: "/v2/protected/properties/{flxId}".into(),
            key_env: "FLUXIMMO_API_KEY".into(),
            key_file: None,
            chunk_size: NonZeroUsize::new(50).unwrap_or(NonZeroUsize::MIN),
            timeout_ms: 10_000,
            rate_per_second: 5.0,
            burst: 10,
            max_concurrent_calls: NonZeroUsize::new(4).unwrap_or(NonZeroUsize::MIN),
            backoff_base_ms: 500,
            backoff_cap_ms: 30_000,
            max_attempts: 5,
            max_elapsed_ms: 120_000,
            breaker_failures: 5,
            breaker_cool_down_ms: 30_000,
            cache_ttl_secs: 600,
            cache_max_entries: 100_000,
            batch_budget_ms: 120_000,
        }
    }
}

impl ApiSettings {
    /// The retries of one request.
    pub fn backoff(&self) -> BackoffPolicy {
        BackoffPolicy {
            base: Duration::from_millis(self.backoff_base_ms),
            cap: Duration::from_millis(self.backoff_cap_ms),
            max_attempts: self.max_attempts.max(1),
            max_elapsed: Duration::from_millis(self.max_elapsed_ms),
        }
    }

    /// The circuit breaker.
    pub fn breaker(&self) -> BreakerConfig {
        BreakerConfig {
            consecutive_failures: self.breaker_failures.max(1),
            window: 20,
            min_calls: 10,
            failure_ratio: 0.5,
            cool_down: Duration::from_millis(self.breaker_cool_down_ms),
            max_cool_down: Duration::from_millis(self.breaker_cool_down_ms.saturating_mul(10)),
        }
    }

    /// [`Self::batch_budget_ms`] as a duration.
    pub fn batch_budget(&self) -> Duration {
        Duration::from_millis(self.batch_budget_ms)
    }

    /// Checks that a batch's fetches end before the consumer's
    /// `max.poll.interval.ms`: past it, the group takes the consumer out
    /// and the batch is read, and fetched, again.
    pub fn check_budget(&self, max_poll_interval_ms: u64) -> anyhow::Result<()> {
        anyhow::ensure!(
            self.batch_budget_ms.saturating_add(self.timeout_ms) < max_poll_interval_ms,
            "[api] batch_budget_ms ({}) plus timeout_ms ({}) must stay below the consumer's \
             max.poll.interval.ms ({max_poll_interval_ms}), or a slow batch is fetched again and again",
            self.batch_budget_ms,
            self.timeout_ms
        );
        Ok(())
    }

    /// Bound on each call.
    pub fn timeout(&self) -> Duration {
        Duration::from_millis(self.timeout_ms.max(1))
    }
}

impl EnrichSettings {
    /// [`Self::stall_after_secs`] as a duration.
    pub fn stall_after(&self) -> Duration {
        Duration::from_secs(self.stall_after_secs)
    }
}

fn default_group() -> String {
    "enrich".into()
}

fn default_registry() -> String {
    "http://127.0.0.1:8081".into()
}

fn default_metrics_listen() -> String {
    "127.0.0.1:9105".into()
}

fn default_stall_after_secs() -> u64 {
    common::stage_metrics::DEFAULT_STALL_AFTER.as_secs()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shipped_file_loads_and_a_misspelt_key_is_refused() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../config/enrich.toml");
        let shipped: EnrichSettings =
            common::config::load_from("ENRICH", Some(&path), &[]).expect("config/enrich.toml");
        assert_eq!(shipped.api.key_env, "FLUXIMMO_API_KEY");
        assert_eq!(shipped.api.chunk_size.get(), 50);
        let vars = [(
            "ENRICH__API__BASE_URL".to_string(),
            "http://127.0.0.1:1".to_string(),
        )];
        let overridden: EnrichSettings =
            common::config::load_from("ENRICH", Some(&path), &vars).expect("override");
        assert_eq!(overridden.api.base_url, "http://127.0.0.1:1");
        assert!(
            serde_json::from_str::<EnrichSettings>(r#"{"api": {"key": "inline"}}"#).is_err(),
            "no inline key"
        );
        assert!(shipped.api.check_budget(300_000).is_ok());
        let error = shipped.api.check_budget(60_000).expect_err("too long");
        assert!(
            error.to_string().contains("max.poll.interval.ms"),
            "{error}"
        );
    }
}
