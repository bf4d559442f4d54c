//! The stage's metrics, beside the common stage series
//! (`enrich_records_in_total`, `enrich_records_out_total`,
//! `enrich_dead_letters_total`, batch latency, lag): what the API costs
//! and how it behaves.
//!
//! - `enrich_api_calls_total{call, outcome}`: every call (`many`, `by_id`)
//!   by outcome (`success`, `not_found`, `rate_limited`, `server_error`,
//!   `timeout`, `connection`, `client_error`, `unauthorized`); the credits
//!   follow the calls, so calls per property is this over
//!   `enrich_properties_fetched_total`.
//! - `enrich_api_call_seconds{call}`: latency of each call.
//! - `enrich_properties_fetched_total` / `enrich_properties_failed_total{kind}`.
//! - `enrich_cache_hits_total`: ids answered without a call.
//! - `enrich_breaker_state{api}`: 0 closed, 1 half-open, 2 open.

use std::sync::Arc;
use std::time::Duration;

use common::instruments::{Counter, CounterFamily, GaugeFamily, HistogramFamily};
use common::stage_metrics::StageMetrics;

/// Stage name in metrics and in `error.stage`.
pub const STAGE: &str = "enrich";

/// The stage's own series (cheap to clone).
#[derive(Clone)]
pub struct EnrichMetrics {
    /// The common stage series.
    pub stage: Arc<StageMetrics>,
    calls: CounterFamily,
    call_seconds: HistogramFamily,
    /// Properties the API returned.
    pub properties_fetched: Counter,
    failed: CounterFamily,
    /// Ids answered from the cache.
    pub cache_hits: Counter,
    breaker: GaugeFamily,
}

impl EnrichMetrics {
    /// Registers every series.
    pub fn new() -> Self {
        let mut builder = StageMetrics::builder(STAGE);
        let calls = builder.counter_family(
            "api_calls",
            "Calls to the provider's API, by call and outcome",
        );
        let call_seconds = builder.seconds_family("api_call_seconds", "Latency of each API call");
        let properties_fetched =
            builder.counter("properties_fetched", "Properties the API returned");
        let failed = builder.counter_family(
            "properties_failed",
            "Properties not fetched (dead-lettered), by kind",
        );
        let cache_hits = builder.counter("cache_hits", "Ids answered from the cache, no call made");
        let breaker = builder.gauge_family(
            "breaker_state",
            "The API circuit breaker: 0 closed, 1 half-open, 2 open",
        );
        Self {
            stage: Arc::new(builder.build()),
            calls,
            call_seconds,
            properties_fetched,
            failed,
            cache_hits,
            breaker,
        }
    }

    /// One call's outcome and latency.
    pub fn call(&self, call: &'static str, outcome: &'static str, elapsed: Duration) {
        self.calls.inc(vec![
            ("call", call.to_string()),
            ("outcome", outcome.to_string()),
        ]);
        self.call_seconds
            .observe_duration(vec![("call", call.to_string())], elapsed);
    }

    /// One property not fetched.
    pub fn failed(&self, kind: &'static str) {
        self.failed.inc(vec![("kind", kind.to_string())]);
    }

    /// The breaker's state gauge.
    pub fn breaker_state(&self, gauge: i64) {
        self.breaker
            .set(vec![("api", "fluximmo".to_string())], gauge);
    }
}

impl Default for EnrichMetrics {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_series_are_named_for_the_stage() {
        let metrics = EnrichMetrics::new();
        metrics.call("many", "success", Duration::from_millis(3));
        metrics.failed("not_found");
        metrics.properties_fetched.inc_by(2);
        metrics.breaker_state(2);
        let text = metrics.stage.encode();
        for series in [
            "enrich_api_calls_total{call=\"many\",outcome=\"success\"} 1",
            "enrich_properties_failed_total{kind=\"not_found\"} 1",
            "enrich_properties_fetched_total 2",
            "enrich_breaker_state{api=\"fluximmo\"} 2",
            "enrich_records_in_total 0",
        ] {
            assert!(text.contains(series), "{series} in\n{text}");
        }
    }
}
