//! Dedupe: forwards each event to `properties.events` once.
//!
//! The core is pure: [`state`] (seen within the TTL or not, per input
//! partition), [`batch`] (each record's decision) and [`plan`] (what a
//! batch writes, remembers and commits, and how a partial failure
//! settles). Expiry (tombstoning keys past the TTL) is in `expiry`.
//! Around it: [`changelog`] (the record kept in the compacted `dedupe.seen`
//! topic), [`restore`] (rebuilding a partition from the changelog and the
//! output's tail), `restoring`, [`writer`], and [`runner`], the loop,
//! which states the exactly-once argument. What dedupe shares with the
//! state writer (the fence, the per-partition states and their rebalance
//! callback, restoring outside it, the partition watch) is
//! `common::stage_loop`.

pub mod batch;
pub mod changelog;
mod expiry;
mod forward;
pub mod plan;
pub mod restore;
mod restoring;
pub mod runner;
pub mod settings;
pub mod state;
pub mod transactions;
pub mod writer;
