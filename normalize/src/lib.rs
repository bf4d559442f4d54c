//! Normalize: turns raw provider webhooks into canonical `PropertyEvent`s.
//!
//! Parsers are pure functions from a raw record (headers and bytes) to
//! events, one module per provider under [`providers`]. What cannot be
//! parsed becomes a dead letter (`common::dead_letter`) with the reason in its headers;
//! nothing is dropped silently. [`outcome`] is the stage's sans-IO core
//! (raw record → its records or its dead letter), `delivery` and `failures`
//! the pure rules of sending a batch and of telling fatal from transient
//! errors; [`runner`] wires them to Kafka and the schema registry;
//! `replay` re-drives dead letters or raw ranges after a parser fix. Those
//! need the `runtime` feature (on by default); without it only the pure
//! parsers build (the fuzz targets use that). [`event_time`] is the time
//! sanity every event gets after parsing.

#[cfg(feature = "runtime")]
mod connect;
#[cfg(feature = "runtime")]
pub(crate) mod delivery;
pub mod event_time;
#[cfg(feature = "runtime")]
pub(crate) mod failures;
#[cfg(feature = "runtime")]
pub mod outcome;
pub mod providers;
#[cfg(feature = "runtime")]
pub(crate) mod registry;
#[cfg(feature = "runtime")]
pub mod replay;
#[cfg(feature = "runtime")]
pub(crate) mod round;
#[cfg(feature = "runtime")]
pub mod runner;
#[cfg(feature = "runtime")]
pub mod settings;
#[cfg(feature = "runtime")]
pub(crate) mod sizing;
pub mod text_sanity;

/// Version stamped on every event's lineage.
pub const NORMALIZER_VERSION: &str = env!("CARGO_PKG_VERSION");
