//! Provider parsers: `(raw record) -> Result<Vec<PropertyEvent>, ParseError>`.
//!
//! Adding a provider means adding one module here and one arm in [`parse`],
//! which dispatches on the `provider` Kafka header ingest sets. A record may
//! yield several events (a Fluximmo delivery lists many properties) or none
//! (a Fluximmo delivery whose lists are both empty: nothing happened, so
//! nothing is produced and nothing is dead-lettered).
//! Parsers are tolerant of what real traffic does (missing optional fields,
//! numbers as strings) and strict about what would make an event wrong (no
//! property id, no time): those are errors that send the record to the DLQ.

pub(crate) mod event;
pub mod fluximmo;
#[cfg(test)]
mod fuzz_smoke;
pub mod generic;
pub mod immoteur;
pub(crate) mod json;
pub mod stream_estate;
#[cfg(test)]
pub(crate) mod testing;

use schemas::PropertyEvent;

/// What a parser knows about the raw record besides its body.
#[derive(Debug, Clone)]
pub struct RawContext<'a> {
    /// Configured source (the `source` header).
    pub source: &'a str,
    /// Provider kind (the `provider` header).
    pub provider: &'a str,
    /// The provider's event id (the `event-id` header), when it sent one.
    pub event_id: Option<&'a str>,
    /// Arrival at ingest, Unix ms.
    pub received_at_ms: i64,
    /// Raw record topic.
    pub topic: &'a str,
    /// Raw record partition.
    pub partition: i32,
    /// Raw record offset.
    pub offset: i64,
}

/// Why a raw record yields no event.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ParseError {
    /// The record lacks a header the pipeline needs.
    #[error("raw record has no `{0}` header")]
    MissingHeader(&'static str),
    /// No parser for this provider kind.
    #[error("no parser for provider `{0}`")]
    UnknownProvider(String),
    /// The body is not JSON.
    #[error("body is not valid JSON: {0}")]
    NotJson(String),
    /// The event is not about a property (appointments, users, feedback...).
    #[error("event type `{0}` is not a property event")]
    UnsupportedEventType(String),
    /// A required field is absent.
    #[error("required field `{0}` is missing")]
    MissingField(&'static str),
    /// A field is present but unusable.
    #[error("field `{field}` is invalid: {reason}")]
    InvalidField {
        /// Field path.
        field: &'static str,
        /// What is wrong.
        reason: String,
    },
}

impl ParseError {
    /// Machine-readable kind for the `error.kind` header.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::MissingHeader(_) => "missing_header",
            Self::UnknownProvider(_) => "unknown_provider",
            Self::NotJson(_) => "invalid_json",
            Self::UnsupportedEventType(_) => "unsupported_event_type",
            Self::MissingField(_) => "missing_field",
            Self::InvalidField { .. } => "invalid_field",
        }
    }
}

/// Parses one raw record with the parser of its provider kind.
pub fn parse(context: &RawContext<'_>, body: &[u8]) -> Result<Vec<PropertyEvent>, ParseError> {
    match context.provider {
        "generic" | "standard-webhooks" => generic::parse(context, body),
        "fluximmo" => fluximmo::parse(context, body),
        "stream-estate" => stream_estate::parse(context, body),
        "immoteur" => immoteur::parse(context, body),
        other => Err(ParseError::UnknownProvider(other.to_string())),
    }
}
