//! Dedupe: forwards each event to `properties.events` once.
//!
//! [`state`] is the pure decision (seen within the TTL or not) per input
//! partition; [`changelog`] is the record kept in the compacted `dedupe.seen`
//! topic; [`restore`] rebuilds a partition's state from the changelog and the
//! output's tail; [`runner`] is the consume-produce loop and states its
//! exactly-once argument.

pub mod batch;
pub mod changelog;
pub mod restore;
pub mod runner;
pub mod settings;
pub mod state;
pub mod transactions;
