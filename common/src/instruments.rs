//! Every service's metric instruments, recorded twice: into a Prometheus
//! registry, served as text on the service's `GET /metrics`, and into an
//! OpenTelemetry instrument of the same name, which the meter provider
//! installed by [`crate::telemetry::init`] pushes over OTLP when
//! `OTEL_EXPORTER_OTLP_ENDPOINT` is set (and which costs nothing when it is
//! not). One call site, one value, two exports that cannot drift.
//!
//! Names: `<prefix>_<name>` in both. Prometheus adds `_total` to counters;
//! an OTLP-to-Prometheus bridge (the collector's exporter) does the same, so
//! a dashboard reads one name whichever path it scrapes.

use std::sync::Arc;
use std::sync::atomic::AtomicI64;
use std::time::Duration;

use opentelemetry::KeyValue;
use opentelemetry::metrics::Meter;
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter as PromCounter;
use prometheus_client::metrics::family::{Family, MetricConstructor};
use prometheus_client::metrics::gauge::Gauge as PromGauge;
use prometheus_client::metrics::histogram::Histogram as PromHistogram;
use prometheus_client::registry::Registry;

/// A label set: bounded names, values chosen by the caller (keep them
/// bounded too: one series per distinct set).
pub type Labels = Vec<(&'static str, String)>;

fn attributes(labels: &[(&'static str, String)]) -> Vec<KeyValue> {
    labels
        .iter()
        .map(|(name, value)| KeyValue::new(*name, value.clone()))
        .collect()
}

/// A service's instruments: the Prometheus registry and the OpenTelemetry
/// meter they are created from.
pub struct Instruments {
    prefix: &'static str,
    registry: Registry,
    meter: Meter,
}

impl std::fmt::Debug for Instruments {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Instruments")
            .field("prefix", &self.prefix)
            .finish_non_exhaustive()
    }
}

impl Instruments {
    /// Instruments named `<prefix>_...`, on the global meter provider (set
    /// by [`crate::telemetry::init`]; a no-op one before it or without OTLP).
    pub fn new(prefix: &'static str) -> Self {
        Self {
            prefix,
            registry: Registry::with_prefix(prefix),
            meter: opentelemetry::global::meter(prefix),
        }
    }

    /// Registers `metric` for `/metrics` under `name`.
    fn register<M>(&mut self, name: &str, help: &str, metric: &M)
    where
        M: prometheus_client::registry::Metric + Clone,
    {
        self.registry.register(name, help, metric.clone());
    }

    /// The OpenTelemetry name of `name`: `<prefix>_<name>`, the name
    /// Prometheus shows (before its `_total` suffix on counters).
    fn otel_name(&self, name: &str) -> String {
        format!("{}_{name}", self.prefix)
    }

    fn otel_counter(&self, name: &str, help: &str) -> opentelemetry::metrics::Counter<u64> {
        self.meter
            .u64_counter(self.otel_name(name))
            .with_description(help.to_string())
            .build()
    }

    fn otel_histogram(
        &self,
        name: &str,
        help: &str,
        unit: &'static str,
        bounds: &[f64],
    ) -> opentelemetry::metrics::Histogram<f64> {
        self.meter
            .f64_histogram(self.otel_name(name))
            .with_description(help.to_string())
            .with_unit(unit)
            .with_boundaries(bounds.to_vec())
            .build()
    }

    /// A monotonic counter.
    pub fn counter(&mut self, name: &str, help: &str) -> Counter {
        let prom = PromCounter::default();
        self.register(name, help, &prom);
        let otel = self.otel_counter(name, help);
        Counter { prom, otel }
    }

    /// A monotonic counter with labels.
    pub fn counter_family(&mut self, name: &str, help: &str) -> CounterFamily {
        let prom = Family::<Labels, PromCounter>::default();
        self.register(name, help, &prom);
        let otel = self.otel_counter(name, help);
        CounterFamily { prom, otel }
    }

    /// A histogram with these bucket bounds; `unit` is the UCUM unit for
    /// OTLP (`s`, `{record}`).
    pub fn histogram(
        &mut self,
        name: &str,
        help: &str,
        unit: &'static str,
        bounds: &[f64],
    ) -> Histogram {
        let prom = PromHistogram::new(bounds.iter().copied());
        self.register(name, help, &prom);
        let otel = self.otel_histogram(name, help, unit, bounds);
        Histogram { prom, otel }
    }

    /// A histogram with labels.
    pub fn histogram_family(
        &mut self,
        name: &str,
        help: &str,
        unit: &'static str,
        bounds: &[f64],
    ) -> HistogramFamily {
        let prom = Family::<Labels, PromHistogram, Bounds>::new_with_constructor(Bounds(
            bounds.iter().copied().collect(),
        ));
        self.register(name, help, &prom);
        let otel = self.otel_histogram(name, help, unit, bounds);
        HistogramFamily { prom, otel }
    }

    /// A gauge with labels, set to a sampled value.
    pub fn gauge_family(&mut self, name: &str, help: &str) -> GaugeFamily {
        let prom = Family::<Labels, PromGauge>::default();
        self.register(name, help, &prom);
        let otel = self
            .meter
            .i64_gauge(self.otel_name(name))
            .with_description(help.to_string())
            .build();
        GaugeFamily { prom, otel }
    }

    /// A value that goes up and down (requests in flight).
    pub fn up_down(&mut self, name: &str, help: &str) -> UpDown {
        let prom = PromGauge::<i64, AtomicI64>::default();
        self.register(name, help, &prom);
        let otel = self
            .meter
            .i64_up_down_counter(self.otel_name(name))
            .with_description(help.to_string())
            .build();
        UpDown { prom, otel }
    }

    /// The Prometheus text exposition of every instrument.
    pub fn encode(&self) -> String {
        let mut text = String::new();
        if let Err(e) = encode(&mut text, &self.registry) {
            tracing::error!(error = %e, "cannot encode the metrics");
        }
        text
    }
}

/// `count` buckets from `start`, each `factor` times the previous.
pub fn exponential_bounds(start: f64, factor: f64, count: u16) -> Vec<f64> {
    prometheus_client::metrics::histogram::exponential_buckets(start, factor, count).collect()
}

/// A monotonic counter.
#[derive(Debug, Clone)]
pub struct Counter {
    prom: PromCounter,
    otel: opentelemetry::metrics::Counter<u64>,
}

impl Counter {
    /// Adds one.
    pub fn inc(&self) {
        self.inc_by(1);
    }

    /// Adds `n`.
    pub fn inc_by(&self, n: u64) {
        let _ = self.prom.inc_by(n);
        self.otel.add(n, &[]);
    }

    /// The current value.
    pub fn get(&self) -> u64 {
        self.prom.get()
    }
}

/// A monotonic counter with labels.
#[derive(Debug, Clone)]
pub struct CounterFamily {
    prom: Family<Labels, PromCounter>,
    otel: opentelemetry::metrics::Counter<u64>,
}

impl CounterFamily {
    /// Adds one to the series of `labels`.
    pub fn inc(&self, labels: Labels) {
        self.otel.add(1, &attributes(&labels));
        let _ = self.prom.get_or_create(&labels).inc();
    }
}

/// A histogram.
#[derive(Debug, Clone)]
pub struct Histogram {
    prom: PromHistogram,
    otel: opentelemetry::metrics::Histogram<f64>,
}

impl Histogram {
    /// Records one value.
    pub fn observe(&self, value: f64) {
        self.prom.observe(value);
        self.otel.record(value, &[]);
    }

    /// Records a duration, in seconds.
    pub fn observe_duration(&self, elapsed: Duration) {
        self.observe(elapsed.as_secs_f64());
    }
}

/// Makes each labelled series' Prometheus histogram with the family's bounds.
#[derive(Debug, Clone)]
struct Bounds(Arc<[f64]>);

impl MetricConstructor<PromHistogram> for Bounds {
    fn new_metric(&self) -> PromHistogram {
        PromHistogram::new(self.0.iter().copied())
    }
}

/// A histogram with labels.
#[derive(Debug, Clone)]
pub struct HistogramFamily {
    prom: Family<Labels, PromHistogram, Bounds>,
    otel: opentelemetry::metrics::Histogram<f64>,
}

impl HistogramFamily {
    /// Records a duration, in seconds, in the series of `labels`.
    pub fn observe_duration(&self, labels: Labels, elapsed: Duration) {
        let value = elapsed.as_secs_f64();
        self.otel.record(value, &attributes(&labels));
        self.prom.get_or_create(&labels).observe(value);
    }
}

/// A gauge with labels.
#[derive(Debug, Clone)]
pub struct GaugeFamily {
    prom: Family<Labels, PromGauge>,
    otel: opentelemetry::metrics::Gauge<i64>,
}

impl GaugeFamily {
    /// Sets the series of `labels` to `value`.
    pub fn set(&self, labels: Labels, value: i64) {
        self.otel.record(value, &attributes(&labels));
        let _ = self.prom.get_or_create(&labels).set(value);
    }
}

/// A value that goes up and down.
#[derive(Debug, Clone)]
pub struct UpDown {
    prom: PromGauge<i64, AtomicI64>,
    otel: opentelemetry::metrics::UpDownCounter<i64>,
}

impl UpDown {
    /// Adds one.
    pub fn inc(&self) {
        let _ = self.prom.inc();
        self.otel.add(1, &[]);
    }

    /// Subtracts one.
    pub fn dec(&self) {
        let _ = self.prom.dec();
        self.otel.add(-1, &[]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_is_exposed_with_the_prefix_and_its_labels() {
        let mut instruments = Instruments::new("unit");
        let counter = instruments.counter("things", "Things");
        let family = instruments.counter_family("requests", "Requests");
        let histogram = instruments.histogram("size", "Size", "{record}", &[1.0, 10.0]);
        let latency = instruments.histogram_family("latency", "Latency", "s", &[0.1, 1.0]);
        let gauge = instruments.gauge_family("lag", "Lag");
        let in_flight = instruments.up_down("in_flight", "In flight");
        counter.inc_by(3);
        family.inc(vec![("status", "200".into())]);
        histogram.observe(4.0);
        latency.observe_duration(vec![("outcome", "acked".into())], Duration::from_millis(5));
        gauge.set(vec![("partition", "2".into())], 7);
        in_flight.inc();
        in_flight.inc();
        in_flight.dec();
        let text = instruments.encode();
        for line in [
            "unit_things_total 3",
            r#"unit_requests_total{status="200"} 1"#,
            "unit_size_count 1",
            r#"unit_latency_count{outcome="acked"} 1"#,
            r#"unit_lag{partition="2"} 7"#,
            "unit_in_flight 1",
        ] {
            assert!(text.contains(line), "{line} missing from\n{text}");
        }
        assert_eq!(counter.get(), 3);
    }
}
