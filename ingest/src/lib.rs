//! Ingest: the pipeline's front door.
//!
//! `POST /webhooks/{source}` finds the configured source, checks the request
//! against the source's verification checks on the raw bytes, and publishes
//! the body byte for byte to `webhooks.raw` with the DESIGN.md headers. It
//! answers 200 only once Kafka acknowledged the record; when Kafka cannot
//! acknowledge within the handler's bound it answers 503 with `Retry-After`,
//! so the provider retries and nothing is lost.
//!
//! It is the only part strangers can reach, so what a request costs is
//! bounded by our configuration, never by the sender: load beyond the caps
//! is shed at once (`admission`, `connections`), header-only checks run
//! before the body is read and signature checks cost one MAC per secret
//! (`verify`), and the operator endpoints live on a listener of their own
//! (`operator`).
//!
//! The library holds the pure parts (settings, verification, admission,
//! record building, error mapping), the routers, the hand-over that queues
//! records for the producer per partition, and the OpenAPI contract
//! (`ingest/openapi.json`, served at `GET /openapi.json`); `main.rs` only
//! wires them to the process.

pub mod admission;
pub mod connections;
pub mod error;
pub mod file_limit;
pub mod handover;
pub mod metrics;
pub mod openapi;
pub mod operator;
pub mod readiness;
pub mod record;
pub mod send;
pub mod serve;
pub mod server;
pub mod settings;
pub mod size_limit;
pub mod verify;
