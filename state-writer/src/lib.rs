//! The state writer: owns each property's state and writes it to the
//! compacted `properties.latest`.
//!
//! Consumer group `state-writer` on `properties.events`. Each event is
//! merged into its property's state with the one merge that defines it
//! (`property_state::merge`, shared with the sink's `properties` table);
//! when the state changes, the new `PropertyState` (Avro, Confluent wire
//! format, schema registered under `<latest topic>-value`) is written to
//! the same partition number of `properties.latest`, keyed by property,
//! with the input's offset in its `source-offset` header. That topic is
//! also the stage's checkpoint: [`runner`] states the exactly-once argument
//! without transactions, each step naming the function enforcing it.
//!
//! The core is pure: [`state`] (a partition's property states and mark),
//! [`restore`] (the fold of `properties.latest` back into them) and
//! [`plan`] (what a batch writes, learns and commits, and how a partial
//! failure settles, with a model test against a simulated broker) and
//! [`fit`] (a state over the record size limit has its largest values
//! withheld rather than stopping the partition). Around
//! it: [`registry`] (the state's schema id, the writer-schema caches),
//! `hold` (holding a batch while the registry cannot give a writer
//! schema), `restoring`, [`writer`], `batch` (one batch's IO), [`metrics`]
//! and [`runner`]. What it shares with dedupe (fencing, per-partition
//! states and their rebalance callback, restoring outside it, the
//! partition watch) is `common::stage_loop`.
//!
//! Why a stage of its own rather than dedupe: dedupe forwards bytes without
//! decoding them, while a state needs every event decoded and merged; as
//! its own consumer group the state writer scales on its own, and a
//! registry outage stops only it, never the events' path to the sink.

mod batch;
pub mod fit;
mod hold;
pub mod metrics;
pub mod plan;
pub mod registry;
pub mod restore;
mod restoring;
pub mod runner;
pub mod settings;
pub mod state;
pub mod writer;
