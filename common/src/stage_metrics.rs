//! The metrics every consumer stage exposes on `/metrics` (Prometheus text):
//! records in, out and dead-lettered, batch size and batch latency, and the
//! consumer group's lag per input partition; a stage registers its own
//! extra series (dedupe's duplicates and corrections, the sink's commit
//! latency) through [`StageMetricsBuilder`]. Names are prefixed with the
//! stage (`normalize_records_in_total`, ...).

use std::time::{Duration, Instant};

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

/// Labels of the lag gauge.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PartitionLabels {
    /// Input topic.
    pub topic: String,
    /// Partition number.
    pub partition: i32,
}

/// A stage's metrics, shared by its loop and its HTTP endpoint.
pub struct StageMetrics {
    registry: Registry,
    /// Records read from the input topic and processed.
    pub records_in: Counter,
    /// Records the stage produced (events; rows for the sink).
    pub records_out: Counter,
    /// Records sent to the DLQ.
    pub dead_letters: Counter,
    /// Records per batch.
    pub batch_size: Histogram,
    /// Seconds from a batch's first record read to its outputs acknowledged
    /// (committed, for the sink).
    pub batch_seconds: Histogram,
    /// The group's lag per input partition (high watermark − committed).
    pub lag: Family<PartitionLabels, Gauge>,
}

impl std::fmt::Debug for StageMetrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("StageMetrics")
    }
}

/// Registers a stage's metrics; extra series are added before `build`.
pub struct StageMetricsBuilder {
    metrics: StageMetrics,
}

impl StageMetricsBuilder {
    /// A counter `<stage>_<name>_total`.
    pub fn counter(&mut self, name: &str, help: &str) -> Counter {
        let counter = Counter::default();
        self.metrics.registry.register(name, help, counter.clone());
        counter
    }

    /// A latency histogram `<stage>_<name>` in seconds (1 ms to about 16 s).
    pub fn seconds(&mut self, name: &str, help: &str) -> Histogram {
        let histogram = seconds_histogram();
        self.metrics
            .registry
            .register(name, help, histogram.clone());
        histogram
    }

    /// The finished set.
    pub fn build(self) -> StageMetrics {
        self.metrics
    }
}

fn seconds_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.001, 2.0, 15))
}

impl StageMetrics {
    /// The common series of `stage`, ready for extra ones.
    pub fn builder(stage: &str) -> StageMetricsBuilder {
        let mut registry = Registry::with_prefix(stage);
        let records_in = Counter::default();
        let records_out = Counter::default();
        let dead_letters = Counter::default();
        let batch_size = Histogram::new(exponential_buckets(1.0, 2.0, 12));
        let batch_seconds = seconds_histogram();
        let lag = Family::<PartitionLabels, Gauge>::default();
        registry.register("records_in", "Input records processed", records_in.clone());
        registry.register(
            "records_out",
            "Records produced (rows written, for the sink)",
            records_out.clone(),
        );
        registry.register(
            "dead_letters",
            "Records sent to the DLQ",
            dead_letters.clone(),
        );
        registry.register("batch_size", "Input records per batch", batch_size.clone());
        registry.register(
            "batch_seconds",
            "Seconds from a batch's first record to its outputs acknowledged or committed",
            batch_seconds.clone(),
        );
        registry.register(
            "consumer_lag",
            "Records behind the high watermark, per input partition (the group's committed offset)",
            lag.clone(),
        );
        StageMetricsBuilder {
            metrics: Self {
                registry,
                records_in,
                records_out,
                dead_letters,
                batch_size,
                batch_seconds,
                lag,
            },
        }
    }

    /// Records one batch of `size` input records that started at `started`.
    pub fn batch(&self, size: usize, started: Instant) {
        let _ = self.records_in.inc_by(size as u64);
        self.batch_size.observe(size as f64);
        self.batch_seconds.observe(started.elapsed().as_secs_f64());
    }

    /// Observes a duration in seconds on `histogram`.
    pub fn observe(histogram: &Histogram, elapsed: Duration) {
        histogram.observe(elapsed.as_secs_f64());
    }

    /// The Prometheus text exposition.
    pub fn encode(&self) -> String {
        let mut text = String::new();
        if let Err(e) = encode(&mut text, &self.registry) {
            tracing::error!(error = %e, "cannot encode the metrics");
        }
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn common_and_extra_series_are_exposed_with_the_stage_prefix() {
        let mut builder = StageMetrics::builder("dedupe");
        let duplicates = builder.counter("duplicates", "Duplicates dropped");
        let metrics = builder.build();
        metrics.batch(3, Instant::now());
        let _ = duplicates.inc();
        let _ = metrics
            .lag
            .get_or_create(&PartitionLabels {
                topic: "t".into(),
                partition: 2,
            })
            .set(7);
        let text = metrics.encode();
        assert!(text.contains("dedupe_records_in_total 3"), "{text}");
        assert!(text.contains("dedupe_duplicates_total 1"), "{text}");
        assert!(text.contains("dedupe_batch_size_count 1"), "{text}");
        assert!(
            text.contains(r#"dedupe_consumer_lag{topic="t",partition="2"} 7"#),
            "{text}"
        );
    }
}
