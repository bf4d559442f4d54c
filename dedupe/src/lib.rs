//! Dedupe: forwards each event to `properties.events` once.
//!
//! The core is pure: [`state`] (seen within the TTL or not, per input
//! partition), [`batch`] (each record's decision), [`plan`] (what a batch
//! writes, remembers and commits, and how a partial failure settles),
//! [`fence`] (when a batch must stop writing) and [`partition_watch`].
//! Expiry (tombstoning keys past the TTL) is in `expiry`.
//! Around it: [`changelog`] (the record kept in the compacted `dedupe.seen`
//! topic), [`restore`] (rebuilding a partition from the changelog and the
//! output's tail), [`rebalance`], [`writer`], and [`runner`], the loop,
//! which states the exactly-once argument.

pub mod batch;
pub mod changelog;
mod expiry;
pub mod fence;
mod forward;
pub mod partition_watch;
pub mod plan;
pub mod rebalance;
pub mod restore;
mod restoring;
pub mod runner;
pub mod settings;
pub mod state;
pub mod transactions;
pub mod writer;
