//! Sink: lands unique property events in PostgreSQL, each exactly once.
//!
//! The decisions are pure and unit-tested against fakes: [`write_behind`]
//! is the write-behind protocol (what is in flight, what may be committed,
//! revocation, stop, partitions held for the registry) over [`batch`];
//! `schemas::writer_schemas` is the writer-schema cache and says whose
//! fault an undecodable value is (shared with the state writer); [`writer`] commits a batch and dead-letters the
//! rows the store refuses. [`rows`] and [`statements`] map events to rows;
//! [`migrate`] applies the versioned SQL files; [`store`] is the
//! [`store::Sink`] trait and its PostgreSQL implementation. [`runner`] is
//! the consume-write loop, wiring only, and states its exactly-once
//! argument; [`replay`] re-drives the sink's dead letters.
//!
//! Where a property's state lives: `properties.state`, one row per property
//! key, is the `PropertyState` computed by the shared merge,
//! `property_state::merge`, the same function the state writer uses for
//! `properties.latest`; the row's other columns are derived from it. In
//! each batch's transaction the store locks the stored rows of the batch's
//! properties, [`fold`] merges the batch's events into them (pure, with
//! [`stored`] turning a row from before migration `0007` into a state), and
//! only the properties whose state changed are written
//! ([`rows::property_row`]); the others are counted in
//! `sink_properties_unchanged_total`.

pub mod batch;
#[cfg(test)]
mod fake;
pub mod fold;
pub mod metrics;
pub mod migrate;
mod rebalance;
pub mod replay;
pub mod rows;
pub mod runner;
pub mod settings;
pub mod statements;
pub mod store;
pub mod stored;
pub mod write_behind;
pub mod writer;
mod writer_thread;
