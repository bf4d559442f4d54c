//! Shared plumbing for every stage of the pipeline.
//!
//! Kept deliberately small: configuration loading (file plus environment
//! overrides), the Kafka client settings every stage uses, the topic
//! catalogue, the Kafka header names that form the contract between stages,
//! W3C trace context, telemetry initialisation and the shutdown signal, the
//! loop kit the consumer stages are built from (`stage_loop`), and, with
//! the `registry` feature, a schema registry client.
//! Anything with business logic belongs in a stage crate instead.

pub mod admin;
pub mod config;
pub mod dead_letter;
pub mod instruments;
pub mod isolated_pipeline;
pub mod kafka;
pub mod lcg;
pub mod produce;
pub mod property_values;
#[cfg(feature = "registry")]
pub mod registry;
pub mod replay_range;
pub mod shutdown;
pub mod stage_loop;
pub mod stage_metrics;
pub mod telemetry;
pub mod topics;
pub mod trace_context;
pub mod traceparent;

pub use contract::ProviderKind;
/// The Kafka header names (they live in the `contract` crate with
/// [`ProviderKind`]).
pub use contract::headers;
/// How a raw record carries ingest's metadata in one header.
pub use contract::ingest_meta;
