//! Ingest: the pipeline's front door.
//!
//! `POST /webhooks/{source}` finds the configured source, checks the request
//! against the source's verification checks on the raw bytes, and publishes
//! the body byte for byte to `webhooks.raw` with the DESIGN.md headers. It
//! answers 200 only once Kafka acknowledged the record; when Kafka cannot
//! acknowledge within the handler's bound it answers 503 with `Retry-After`,
//! so the provider retries and nothing is lost.
//!
//! The library holds the pure parts (settings, verification, record building,
//! error mapping), the router, the hand-over that queues records for the
//! producer per partition, and the OpenAPI contract (`ingest/openapi.json`,
//! served at `GET /openapi.json`); `main.rs` only wires them to the process.

pub mod error;
pub mod handover;
pub mod metrics;
pub mod openapi;
pub mod record;
pub mod send;
pub mod serve;
pub mod server;
pub mod settings;
pub mod verify;
