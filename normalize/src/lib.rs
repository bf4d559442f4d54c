//! Normalize: turns raw provider webhooks into canonical `PropertyEvent`s.
//!
//! Parsers are pure functions from a raw record (headers and bytes) to
//! events, one module per provider under [`providers`]. What cannot be
//! parsed becomes a dead letter (`common::dead_letter`) with the reason in its headers;
//! nothing is dropped silently. [`runner`] wires them to Kafka and the
//! schema registry; [`replay`] re-drives dead letters after a parser fix.

pub mod providers;
pub mod replay;
pub mod runner;
pub mod settings;

/// Version stamped on every event's lineage.
pub const NORMALIZER_VERSION: &str = env!("CARGO_PKG_VERSION");
