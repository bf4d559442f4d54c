//! The names every stage of the pipeline agrees on, in one small crate that
//! ingest, normalize, dedupe, the sink and the schema all depend on:
//!
//! - [`ProviderKind`]: the providers the pipeline has a parser for. Ingest
//!   reads it from a source's settings and writes it in the
//!   [`headers::PROVIDER`] header of every raw record; normalize dispatches
//!   on it; the Avro schema's `Provider` enum converts from it. Adding a
//!   variant makes the compiler point at every `match` that must handle it
//!   (README, "Adding a provider").
//! - [`headers`]: the Kafka header names, the contract between stages.
//! - [`ingest_meta`]: how a raw record carries ingest's metadata in one
//!   header ([`headers::INGEST_META`]).
//!
//! Beside the code, `asyncapi.json` is the topics' contract for subscribers
//! (AsyncAPI 3.0): every topic's key, value, headers, cleanup policy,
//! partitioning and delivery guarantee. `tests/asyncapi.rs` holds it to
//! `config/topics.toml` and to [`headers`].

pub mod headers;
pub mod ingest_meta;
mod provider_kind;

pub use provider_kind::{ProviderKind, UnknownProviderKind};
