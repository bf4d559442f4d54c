//! The Fluximmo enrichment stage (issue 21): Fluximmo's webhook names
//! properties by `flxId` only, and this stage will fetch each from the
//! provider's API and turn it into a full-snapshot event (the mapping of
//! the API's answers is `normalize::providers::fluximmo_api`).
//!
//! What exists so far is the stage's **call policy**, sans IO: every
//! decision a good citizen of a billed API makes, as pure state machines
//! driven by explicit `now` arguments and injected randomness, so the HTTP
//! code of the stage is thin wiring and every decision is unit-tested
//! without a clock, a socket or a sleep:
//! - [`rate_limit`]: a client-side token bucket (may I call now, or how
//!   long to wait);
//! - [`backoff`]: capped exponential backoff with full jitter, honouring
//!   `Retry-After`, within a retry budget;
//! - [`outcome`]: what an HTTP answer or a transport error means (retry,
//!   not found, unauthorized, fatal, success);
//! - [`breaker`]: a circuit breaker that stops calling a failing API and
//!   resumes by probing;
//! - [`chunks`]: the ids of a delivery, de-duplicated and split into bulk
//!   requests, and the ids a bulk answer left out (fetched by id).
//!
//! Left for the stage (issue 21): its configuration (base URL, paths,
//! chunk size, rate, burst, concurrency, timeouts, backoff, breaker, the
//! key from an environment variable or a file, off without one), the HTTP
//! wiring around these pieces, the cache by `flxId` keyed on
//! `meta.lastUpdatedAt` with a TTL, the topic graph, dead letters and
//! metrics.

pub mod backoff;
pub mod breaker;
pub mod chunks;
pub mod outcome;
pub mod rate_limit;
