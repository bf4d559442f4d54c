//! The Fluximmo enrichment stage: Fluximmo's webhook names properties by
//! `flxId` only; this stage fetches each from the provider's API and turns
//! it into a full-snapshot event (the mapping of the API's answers is
//! `normalize::providers::fluximmo_api`). [`runner`] says where it sits in
//! the topic graph and why it keeps the pipeline exactly-once.
//!
//! The **call policy** is sans IO: every decision a good citizen of a
//! billed API makes, as pure state machines driven by explicit `now`
//! arguments and injected randomness, unit-tested without a clock, a socket
//! or a sleep:
//! - [`rate_limit`]: a client-side token bucket (may I call now, or how
//!   long to wait);
//! - [`backoff`]: capped exponential backoff with full jitter, honouring
//!   `Retry-After`, within a retry budget;
//! - [`outcome`]: what an HTTP answer or a transport error means (retry,
//!   not found, unauthorized, fatal, success);
//! - [`breaker`]: a circuit breaker that stops calling a failing API and
//!   resumes by probing;
//! - [`chunks`]: the ids of a delivery, de-duplicated and split into bulk
//!   requests, and the ids a bulk answer left out (fetched by id);
//! - [`event`]: which events are enriched, and the event an answer yields;
//! - [`cache`]: which answer fetched lately may stand in for a call.
//!
//! The IO: [`api_key`] (from the environment or a file, never logged),
//! [`client`] (the HTTP calls with that policy), [`runner`] and
//! [`connect`] (Kafka and the registry), [`metrics`], [`settings`].
//!
//! [`replay`] re-drives the stage's dead letters.

pub mod api_key;
pub mod backoff;
pub mod breaker;
pub mod cache;
pub mod chunks;
pub mod client;
pub mod connect;
pub mod event;
pub mod metrics;
pub mod outcome;
pub mod rate_limit;
pub mod replay;
pub mod runner;
pub mod settings;
