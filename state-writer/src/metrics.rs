//! The state writer's metrics: the common stage series (`records_in`:
//! events read and decided; `records_out`: states written) and its own,
//! all prefixed `state_writer_`.

use std::sync::Arc;

use common::instruments::Counter;
use common::stage_metrics::StageMetrics;

/// The state writer's metrics.
#[derive(Debug)]
pub struct StateWriterMetrics {
    /// The common series, served on `/metrics`.
    pub stage: Arc<StageMetrics>,
    /// Events that changed nothing, so wrote nothing.
    pub unchanged: Counter,
    /// Values skipped because they do not decode (the sink dead-letters them).
    pub undecodable: Counter,
    /// Records of `properties.latest` a restore found to be no state.
    pub unreadable_states: Counter,
    /// States written with values withheld to fit one record.
    pub withheld: Counter,
}

impl Default for StateWriterMetrics {
    fn default() -> Self {
        let mut builder = StageMetrics::builder("state_writer");
        let unchanged = builder.counter(
            "unchanged",
            "Events that changed nothing in their property's state (nothing written)",
        );
        let undecodable = builder.counter(
            "undecodable",
            "Event values skipped because they do not decode (the sink dead-letters them)",
        );
        let unreadable_states = builder.counter(
            "unreadable_states",
            "Records of properties.latest a restore found to be no state (the key is rebuilt)",
        );
        let withheld = builder.counter(
            "withheld",
            "States written to properties.latest with their largest values withheld to fit one record",
        );
        Self {
            stage: Arc::new(builder.build()),
            withheld,
            unchanged,
            undecodable,
            unreadable_states,
        }
    }
}
