//! The sink's metrics: the common stage series (`records_out` counts rows
//! written) and the latency of its PostgreSQL transaction per batch.

use std::sync::Arc;

use common::instruments::Histogram;
use common::stage_metrics::StageMetrics;

/// The sink's metrics.
#[derive(Debug)]
pub struct SinkMetrics {
    /// The common series, served on `/metrics`; `stage.liveness` feeds `/health`.
    pub stage: Arc<StageMetrics>,
    /// Seconds per database transaction (the batch's statements and commit).
    pub commit_seconds: Histogram,
}

impl Default for SinkMetrics {
    fn default() -> Self {
        let mut builder = StageMetrics::builder("sink");
        let commit_seconds = builder.seconds(
            "commit_seconds",
            "Seconds per batch transaction in PostgreSQL, statements and commit",
        );
        Self {
            stage: Arc::new(builder.build()),
            commit_seconds,
        }
    }
}
