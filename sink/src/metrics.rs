//! The sink's metrics: the common stage series (`records_out` counts rows
//! written), the latency of its PostgreSQL transaction per batch, and the
//! properties a batch's events left unchanged (not written).

use std::sync::Arc;

use common::instruments::{Counter, Histogram};
use common::stage_metrics::StageMetrics;

/// The sink's metrics.
#[derive(Debug)]
pub struct SinkMetrics {
    /// The common series, served on `/metrics`; `stage.liveness` feeds `/health`.
    pub stage: Arc<StageMetrics>,
    /// Seconds per database transaction (the batch's statements and commit).
    pub commit_seconds: Histogram,
    /// Properties whose merged state a batch's events did not change, so
    /// their row was not written (`sink_properties_unchanged_total`).
    pub properties_unchanged: Counter,
}

impl Default for SinkMetrics {
    fn default() -> Self {
        let mut builder = StageMetrics::builder("sink");
        let commit_seconds = builder.seconds(
            "commit_seconds",
            "Seconds per batch transaction in PostgreSQL, statements and commit",
        );
        let properties_unchanged = builder.counter(
            "properties_unchanged",
            "Properties whose merged state a batch's events left unchanged, so not written",
        );
        Self {
            stage: Arc::new(builder.build()),
            commit_seconds,
            properties_unchanged,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_unchanged_properties_are_a_sink_counter() {
        let metrics = SinkMetrics::default();
        metrics.properties_unchanged.inc_by(3);
        let text = metrics.stage.encode();
        assert!(text.contains("sink_properties_unchanged_total 3"), "{text}");
    }
}
