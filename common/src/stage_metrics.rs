//! The metrics every consumer stage exposes on `/metrics` (Prometheus text)
//! and pushes over OTLP when telemetry export is on:
//! records in, out and dead-lettered, batch size and batch latency, and the
//! consumer group's lag per input partition; a stage registers its own
//! extra series (dedupe's duplicates and corrections, the sink's commit
//! latency) through [`StageMetricsBuilder`]. Names are prefixed with the
//! stage (`normalize_records_in_total`, ...).

use std::time::{Duration, Instant};

use crate::instruments::{
    Counter, CounterFamily, GaugeFamily, Histogram, HistogramFamily, Instruments,
    exponential_bounds,
};
use crate::stage_loop::Liveness;

/// How long a loop may make no progress while it has lag before `/health`
/// calls it stalled, unless the stage sets its own.
pub const DEFAULT_STALL_AFTER: Duration = Duration::from_secs(120);

/// A stage's metrics, shared by its loop and its HTTP endpoint; each is
/// also pushed over OTLP when telemetry export is on.
pub struct StageMetrics {
    instruments: Instruments,
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
    lag: GaugeFamily,
    /// Progress and problems of the loop, for `/health` ([`Self::batch`]
    /// counts as progress; the lag sampler sets the lag).
    pub liveness: Liveness,
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
        self.metrics.instruments.counter(name, help)
    }

    /// A labelled counter `<stage>_<name>_total`.
    pub fn counter_family(&mut self, name: &str, help: &str) -> CounterFamily {
        self.metrics.instruments.counter_family(name, help)
    }

    /// A labelled gauge `<stage>_<name>`.
    pub fn gauge_family(&mut self, name: &str, help: &str) -> GaugeFamily {
        self.metrics.instruments.gauge_family(name, help)
    }

    /// A labelled latency histogram `<stage>_<name>` in seconds.
    pub fn seconds_family(&mut self, name: &str, help: &str) -> HistogramFamily {
        self.metrics
            .instruments
            .histogram_family(name, help, "s", &seconds_bounds())
    }

    /// A latency histogram `<stage>_<name>` in seconds (1 ms to about 16 s).
    pub fn seconds(&mut self, name: &str, help: &str) -> Histogram {
        self.metrics
            .instruments
            .histogram(name, help, "s", &seconds_bounds())
    }

    /// The finished set.
    pub fn build(self) -> StageMetrics {
        self.metrics
    }
}

fn seconds_bounds() -> Vec<f64> {
    exponential_bounds(0.001, 2.0, 15)
}

impl StageMetrics {
    /// The common series of `stage`, ready for extra ones.
    pub fn builder(stage: &'static str) -> StageMetricsBuilder {
        let mut instruments = Instruments::new(stage);
        let records_in = instruments.counter("records_in", "Input records processed");
        let records_out = instruments.counter(
            "records_out",
            "Records produced (rows written, for the sink)",
        );
        let dead_letters = instruments.counter("dead_letters", "Records sent to the DLQ");
        let batch_size = instruments.histogram(
            "batch_size",
            "Input records per batch",
            "{record}",
            &exponential_bounds(1.0, 2.0, 12),
        );
        let batch_seconds = instruments.histogram(
            "batch_seconds",
            "Seconds from a batch's first record to its outputs acknowledged or committed",
            "s",
            &seconds_bounds(),
        );
        let lag = instruments.gauge_family(
            "consumer_lag",
            "Records behind the high watermark, per input partition (the group's committed offset)",
        );
        StageMetricsBuilder {
            metrics: Self {
                instruments,
                records_in,
                records_out,
                dead_letters,
                batch_size,
                batch_seconds,
                lag,
                liveness: Liveness::new(DEFAULT_STALL_AFTER),
            },
        }
    }

    /// Records one batch of `size` input records that started at `started`.
    pub fn batch(&self, size: usize, started: Instant) {
        self.records_in.inc_by(size as u64);
        self.batch_size.observe(size as f64);
        self.batch_seconds.observe_duration(started.elapsed());
        self.liveness.progressed();
    }

    /// Sets the sampled lag of one input partition.
    pub fn set_lag(&self, topic: &str, partition: i32, lag: i64) {
        self.lag.set(
            vec![
                ("topic", topic.to_string()),
                ("partition", partition.to_string()),
            ],
            lag,
        );
    }

    /// The Prometheus text exposition.
    pub fn encode(&self) -> String {
        self.instruments.encode()
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
        duplicates.inc();
        metrics.set_lag("t", 2, 7);
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
