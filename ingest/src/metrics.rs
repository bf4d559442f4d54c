//! Ingest's metrics, served as Prometheus text on `GET /metrics` and pushed
//! over OTLP when telemetry export is on: requests
//! by source and status, verification failures by source and reason, the
//! produce latency (send to broker acknowledgement), and requests in flight.
//!
//! Label values are bounded: an unknown source is counted as `unknown`, so a
//! scanner cannot grow the series without limit.

use std::time::Duration;

use common::instruments::{
    CounterFamily, HistogramFamily, Instruments, UpDown, exponential_bounds,
};

/// The metrics and the registry that exposes them.
#[derive(Debug)]
pub struct Metrics {
    instruments: Instruments,
    requests: CounterFamily,
    verification_failures: CounterFamily,
    produce_latency: HistogramFamily,
    in_flight: UpDown,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut instruments = Instruments::new("ingest");
        let requests =
            instruments.counter_family("requests", "Webhook requests by source and HTTP status");
        let verification_failures = instruments.counter_family(
            "verification_failures",
            "Requests refused by a source's checks, by reason",
        );
        // 1 ms .. about 4 s: the acknowledgement bound is 3 s by default.
        let produce_latency = instruments.histogram_family(
            "produce_latency_seconds",
            "Time from handing a record to the producer to the broker's acknowledgement (or the bound)",
            "s",
            &exponential_bounds(0.001, 2.0, 13),
        );
        let in_flight =
            instruments.up_down("in_flight_requests", "Webhook requests being handled now");
        Self {
            instruments,
            requests,
            verification_failures,
            produce_latency,
            in_flight,
        }
    }
}

/// Decrements the in-flight gauge when the request ends, however it ends.
#[derive(Debug)]
pub struct InFlight(UpDown);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.dec();
    }
}

impl Metrics {
    /// Counts a request in flight until the guard is dropped.
    pub fn in_flight(&self) -> InFlight {
        self.in_flight.inc();
        InFlight(self.in_flight.clone())
    }

    /// Counts a finished request.
    pub fn request(&self, source: &str, status: u16) {
        self.requests.inc(vec![
            ("source", source.to_string()),
            ("status", status.to_string()),
        ]);
    }

    /// Counts a verification failure.
    pub fn verification_failure(&self, source: &str, reason: &'static str) {
        self.verification_failures.inc(vec![
            ("source", source.to_string()),
            ("reason", reason.to_string()),
        ]);
    }

    /// Records how long a produce took; `outcome` is `acked`, `refused` or `timeout`.
    pub fn produce(&self, outcome: &'static str, elapsed: Duration) {
        self.produce_latency
            .observe_duration(vec![("outcome", outcome.to_string())], elapsed);
    }

    /// The Prometheus text exposition.
    pub fn render(&self) -> String {
        self.instruments.encode()
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
