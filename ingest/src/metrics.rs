//! Ingest's Prometheus metrics, served as text on `GET /metrics`: requests
//! by source and status, verification failures by source and reason, the
//! produce latency (send to broker acknowledgement), and requests in flight.
//!
//! Label values are bounded: an unknown source is counted as `unknown`, so a
//! scanner cannot grow the series without limit.

use std::sync::atomic::AtomicI64;
use std::time::Duration;

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

type Labels = Vec<(&'static str, String)>;

/// The metrics and the registry that exposes them.
pub struct Metrics {
    registry: Registry,
    requests: Family<Labels, Counter>,
    verification_failures: Family<Labels, Counter>,
    produce_latency: Family<Labels, Histogram>,
    in_flight: Gauge<i64, AtomicI64>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Metrics")
    }
}

fn latency_histogram() -> Histogram {
    // 1 ms .. about 4 s: the acknowledgement bound is 3 s by default.
    Histogram::new(prometheus_client::metrics::histogram::exponential_buckets(
        0.001, 2.0, 13,
    ))
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("ingest");
        let requests = Family::<Labels, Counter>::default();
        let verification_failures = Family::<Labels, Counter>::default();
        let produce_latency =
            Family::<Labels, Histogram>::new_with_constructor(latency_histogram as fn() -> _);
        let in_flight = Gauge::<i64, AtomicI64>::default();
        registry.register(
            "requests",
            "Webhook requests by source and HTTP status",
            requests.clone(),
        );
        registry.register(
            "verification_failures",
            "Requests refused by a source's checks, by reason",
            verification_failures.clone(),
        );
        registry.register(
            "produce_latency_seconds",
            "Time from handing a record to the producer to the broker's acknowledgement (or the bound)",
            produce_latency.clone(),
        );
        registry.register(
            "in_flight_requests",
            "Webhook requests being handled now",
            in_flight.clone(),
        );
        Self {
            registry,
            requests,
            verification_failures,
            produce_latency,
            in_flight,
        }
    }
}

/// Decrements the in-flight gauge when the request ends, however it ends.
#[derive(Debug)]
pub struct InFlight(Gauge<i64, AtomicI64>);

impl Drop for InFlight {
    fn drop(&mut self) {
        let _ = self.0.dec();
    }
}

impl Metrics {
    /// Counts a request in flight until the guard is dropped.
    pub fn in_flight(&self) -> InFlight {
        let _ = self.in_flight.inc();
        InFlight(self.in_flight.clone())
    }

    /// Counts a finished request.
    pub fn request(&self, source: &str, status: u16) {
        let _ = self
            .requests
            .get_or_create(&vec![
                ("source", source.to_string()),
                ("status", status.to_string()),
            ])
            .inc();
    }

    /// Counts a verification failure.
    pub fn verification_failure(&self, source: &str, reason: &'static str) {
        let _ = self
            .verification_failures
            .get_or_create(&vec![
                ("source", source.to_string()),
                ("reason", reason.to_string()),
            ])
            .inc();
    }

    /// Records how long a produce took; `outcome` is `acked`, `refused` or `timeout`.
    pub fn produce(&self, outcome: &'static str, elapsed: Duration) {
        self.produce_latency
            .get_or_create(&vec![("outcome", outcome.to_string())])
            .observe(elapsed.as_secs_f64());
    }

    /// The Prometheus text exposition.
    pub fn render(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = encode(&mut out, &self.registry);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_requests_failures_latency_and_in_flight() {
        let m = Metrics::default();
        m.request("immoteur", 200);
        m.request("immoteur", 200);
        m.verification_failure("immoteur", "bad_token");
        m.produce("acked", Duration::from_millis(3));
        let guard = m.in_flight();
        let text = m.render();
        assert!(
            text.contains(r#"ingest_requests_total{source="immoteur",status="200"} 2"#),
            "{text}"
        );
        assert!(
            text.contains(
                r#"ingest_verification_failures_total{source="immoteur",reason="bad_token"} 1"#
            ),
            "{text}"
        );
        assert!(
            text.contains(r#"ingest_produce_latency_seconds_count{outcome="acked"} 1"#),
            "{text}"
        );
        assert!(text.contains("ingest_in_flight_requests 1"), "{text}");
        drop(guard);
        assert!(m.render().contains("ingest_in_flight_requests 0"));
    }
}
