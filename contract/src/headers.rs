//! Kafka header names: the contract between stages (DESIGN.md, "Topics").
//!
//! Ingest writes the request's metadata, by default as the one
//! [`INGEST_META`] header whose fields carry the names below
//! ([`crate::ingest_meta`]), or as one header per field; every later stage carries
//! `traceparent` forward and writes only the few headers its readers use
//! (nisshi, the local broker, stores each header as a row of its own);
//! DLQ records add the `error.*` and origin headers.

/// The one header of a raw record that holds ingest's metadata, each
/// field named as its own header would be ([`crate::ingest_meta`]).
pub const INGEST_META: &str = "ingest-meta";
/// Configured source name (the URL segment).
pub const SOURCE: &str = "source";
/// Provider kind of the source ([`crate::ProviderKind::as_str`]); normalize
/// picks the parser by it, without its own copy of the source list.
pub const PROVIDER: &str = "provider";
/// Content type of the webhook request.
pub const CONTENT_TYPE: &str = "content-type";
/// Arrival time at ingest, Unix milliseconds, decimal.
pub const RECEIVED_AT: &str = "received-at";
/// Ingest's request id (also returned to the caller).
pub const REQUEST_ID: &str = "request-id";
/// Provider event id, when the request carries one in a header.
pub const EVENT_ID: &str = "event-id";
/// Provider delivery id, when the request carries one in a header.
pub const DELIVERY_ID: &str = "delivery-id";
/// Which verification check passed.
pub const VERIFY_SCHEME: &str = "verify-scheme";
/// Label of the secret that matched (never the secret).
pub const VERIFY_KEY: &str = "verify-key";
/// Sender timestamp minus arrival, milliseconds, where the scheme has one.
pub const VERIFY_SKEW_MS: &str = "verify-skew-ms";
/// W3C trace context, carried by every stage.
pub const TRACEPARENT: &str = "traceparent";
/// Dedupe key of a normalized event (set by normalize so dedupe need not decode).
pub const DEDUPE_KEY: &str = "dedupe-key";
/// Event type of a normalized event, for consumers that route without
/// decoding (normalize sets it; dedupe keeps it on `properties.events`).
pub const EVENT_TYPE: &str = "event-type";
/// Offset of the input record an output record was produced from: dedupe's
/// on `properties.events` (an offset of `properties.normalized`), the state
/// writer's on `properties.latest` (an offset of `properties.events`).
pub const SOURCE_OFFSET: &str = "source-offset";
/// Set by `normalize replay` on every event it re-drives: dedupe forwards
/// such an event even when its key was seen (a correction), and the sink
/// overwrites the stored row when its normalizer version is newer.
pub const REPLAY_ID: &str = "replay-id";
/// Stage that failed, on DLQ records.
pub const ERROR_STAGE: &str = "error.stage";
/// Machine-readable failure kind, on DLQ records.
pub const ERROR_KIND: &str = "error.kind";
/// Human-readable failure reason, on DLQ records.
pub const ERROR_MESSAGE: &str = "error.message";
/// On a DLQ record whose value was cut to fit the size limit: the original
/// value's length in bytes (the value kept is its first bytes). Replay the
/// raw record (by offset) instead of such a dead letter.
pub const ERROR_PAYLOAD_TRUNCATED: &str = "error.payload-truncated";
/// On a DLQ record whose key and original headers alone exceeded the size
/// limit: how many original headers were dropped (the key is dropped too
/// when needed; the error and origin headers are always kept).
pub const ERROR_HEADERS_DROPPED: &str = "error.headers-dropped";
/// Origin topic of a DLQ record.
pub const ORIGIN_TOPIC: &str = "topic";
/// Origin partition of a DLQ record.
pub const ORIGIN_PARTITION: &str = "partition";
/// Origin offset of a DLQ record.
pub const ORIGIN_OFFSET: &str = "offset";
