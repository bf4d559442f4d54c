//! Provider parsers: `(raw record) -> Result<Vec<PropertyEvent>, ParseError>`.
//!
//! Adding a provider means adding one module here and one arm in
//! [`parser_for`], which the compiler asks for as soon as the provider is a
//! [`ProviderKind`]; normalize's loop reads the kind from the `provider`
//! Kafka header ingest sets (README, "Adding a provider"). A record may
//! yield several events (a Fluximmo delivery lists many properties) or none
//! (a Fluximmo delivery whose lists are both empty: nothing happened, so
//! nothing is produced and nothing is dead-lettered).
//! Parsers are tolerant of what real traffic does (missing optional fields,
//! numbers as strings) and strict about what would make an event wrong (no
//! property id, no time): those are errors that send the record to the DLQ.
//! An event carries only what the provider said: a field it did not send is
//! `None` (unknown, never a default), and one it sent empty is listed in
//! `cleared_fields` ([`cleared`]).
//!
//! What one record may yield is bounded ([`Limits`], in the context): more
//! events than `max_events_per_record` (counted before any is built) or an
//! array held in an event (pictures, adverts, price history, stations...)
//! longer than `max_array_items` is an error naming the count, the limit and
//! the field, never a silent cut.

pub(crate) mod cleared;
pub(crate) mod event;
pub mod fluximmo;
pub mod fluximmo_api;
#[cfg(test)]
mod fuzz_smoke;
pub mod generic;
pub mod immoteur;
pub(crate) mod json;
pub mod stream_estate;
#[cfg(test)]
pub(crate) mod testing;

pub use contract::ProviderKind;
pub use event::{MAX_EVENT_ID_BYTES, bounded_event_id};
use schemas::PropertyEvent;
use serde::Deserialize;

/// Bounds on what one raw record may yield (`[limits]` in normalize's
/// settings). The defaults are far above anything a provider documents (a
/// Fluximmo fixture lists a handful of ids; a listing has tens of pictures)
/// and far below what a 1 MiB body could make a parser hold in memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Limits {
    /// Most events one record may yield (a Fluximmo body of short ids can
    /// list about 500,000 within 1 MiB).
    #[serde(default = "default_max_events_per_record")]
    pub max_events_per_record: usize,
    /// Most items of any array an event holds (pictures, adverts, price
    /// history, stations, a station's lines).
    #[serde(default = "default_max_array_items")]
    pub max_array_items: usize,
}

fn default_max_events_per_record() -> usize {
    10_000
}

fn default_max_array_items() -> usize {
    1_000
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_events_per_record: default_max_events_per_record(),
            max_array_items: default_max_array_items(),
        }
    }
}

/// What a parser knows about the raw record besides its body.
#[derive(Debug, Clone)]
pub struct RawContext<'a> {
    /// Configured source (the `source` header).
    pub source: &'a str,
    /// Provider kind (the `provider` header).
    pub provider: ProviderKind,
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
    /// What the record may yield.
    pub limits: Limits,
}

/// Why a raw record yields no event.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ParseError {
    /// The record lacks a field of ingest's metadata the pipeline needs
    /// (neither its `ingest-meta` header nor a header of the field's name
    /// has it).
    #[error(
        "raw record has no `{0}` (no such field in its `ingest-meta` header, nor a header of that name)"
    )]
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
    /// The record would yield more events than allowed.
    #[error("the record yields {count} events, more than max_events_per_record ({max})")]
    TooManyEvents {
        /// Events it would yield.
        count: usize,
        /// `limits.max_events_per_record`.
        max: usize,
    },
    /// An array an event would hold is longer than allowed.
    #[error("field `{field}` has {count} items, more than max_array_items ({max})")]
    TooManyItems {
        /// Field path.
        field: &'static str,
        /// Items it has.
        count: usize,
        /// `limits.max_array_items`.
        max: usize,
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
            Self::TooManyEvents { .. } => "too_many_events",
            Self::TooManyItems { .. } => "too_many_items",
        }
    }
}

/// A provider's parser: the module that holds it and its entry point. The
/// module's name names everything that comes with a parser, which a test of
/// the workspace checks for every [`ProviderKind`]: its file
/// `src/providers/<module>.rs`, its fuzz target `fuzz/fuzz_targets/<module>.rs`,
/// and, under [`Parser::fixture_dir`], its fixtures
/// (`tests/fixtures/<dir>/*.json`) and golden files
/// (`normalize/tests/golden/<dir>.<fixture>.json`).
#[derive(Debug, Clone, Copy)]
pub struct Parser {
    /// Module name, e.g. `stream_estate`.
    pub module: &'static str,
    /// `(raw record) -> events or the reason there are none`.
    pub parse: fn(&RawContext<'_>, &[u8]) -> Result<Vec<PropertyEvent>, ParseError>,
}

impl Parser {
    /// The folder of the parser's fixtures, and the prefix of its golden
    /// files: the module name in kebab-case, e.g. `stream-estate`.
    pub fn fixture_dir(&self) -> String {
        self.module.replace('_', "-")
    }
}

/// The [`Parser`] of module `$module`: its name and its `parse` from one
/// token, so an arm cannot name one module and run another's parser.
macro_rules! parser {
    ($module:ident) => {
        Parser {
            module: stringify!($module),
            parse: $module::parse,
        }
    };
}

/// The parser of each provider kind. Exhaustive: a new [`ProviderKind`]
/// does not compile until it has one.
pub fn parser_for(kind: ProviderKind) -> Parser {
    match kind {
        ProviderKind::Generic | ProviderKind::StandardWebhooks => parser!(generic),
        ProviderKind::Fluximmo => parser!(fluximmo),
        ProviderKind::StreamEstate => parser!(stream_estate),
        ProviderKind::Immoteur => parser!(immoteur),
    }
}

/// Parses one raw record with the parser of its provider kind. Whatever the
/// parser, more events than `limits.max_events_per_record` is an error (a
/// parser that can yield many counts them before building any).
pub fn parse(context: &RawContext<'_>, body: &[u8]) -> Result<Vec<PropertyEvent>, ParseError> {
    let events = (parser_for(context.provider).parse)(context, body)?;
    at_most_events(events.len(), &context.limits)?;
    for event in &events {
        bounded_property_id(&event.provider_property_id)?;
    }
    Ok(events)
}

/// The longest provider property id normalize takes. Providers' ids are
/// UUIDs or short codes; an id of many kilobytes is no listing's, and it
/// would be in each of the property's records three times (the key,
/// `property_key`, `provider_property_id`), where no withholding can take
/// it out of a state.
pub const MAX_PROPERTY_ID_BYTES: usize = 512;

/// `Err(InvalidField)` when the property id is over
/// [`MAX_PROPERTY_ID_BYTES`]. Unlike an event id it cannot be replaced by
/// its digest: it is how a subscriber, the sink and Fluximmo's API name
/// the property.
fn bounded_property_id(id: &str) -> Result<(), ParseError> {
    if id.len() > MAX_PROPERTY_ID_BYTES {
        return Err(ParseError::InvalidField {
            field: "property id",
            reason: format!(
                "{} bytes, more than the {MAX_PROPERTY_ID_BYTES} a property id may have",
                id.len()
            ),
        });
    }
    Ok(())
}

/// The kind named by a `provider` header, or `UnknownProvider`.
pub fn provider_kind(header: &str) -> Result<ProviderKind, ParseError> {
    header
        .parse()
        .map_err(|_| ParseError::UnknownProvider(header.to_string()))
}

/// `Err(TooManyEvents)` when `count` is over the limit.
pub(crate) fn at_most_events(count: usize, limits: &Limits) -> Result<(), ParseError> {
    if count > limits.max_events_per_record {
        return Err(ParseError::TooManyEvents {
            count,
            max: limits.max_events_per_record,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_property_id_over_the_bound_is_an_invalid_field() {
        let context = testing::context("generic");
        let body = |id: &str| {
            format!(
                r#"{{"id":"e","type":"property.updated","created":"2026-01-01T00:00:00Z","data":{{"property":{{"id":"{id}"}}}}}}"#
            )
        };
        let at_bound = "p".repeat(MAX_PROPERTY_ID_BYTES);
        let events = parse(&context, body(&at_bound).as_bytes()).expect("at the bound: taken");
        assert_eq!(events[0].provider_property_id, at_bound);
        let over = "p".repeat(MAX_PROPERTY_ID_BYTES + 1);
        let error = parse(&context, body(&over).as_bytes()).expect_err("over it: refused");
        assert_eq!(error.kind(), "invalid_field");
        assert_eq!(
            error.to_string(),
            "field `property id` is invalid: 513 bytes, more than the 512 a property id may have"
        );
    }

    #[test]
    fn limits_default_and_read_from_settings() {
        assert_eq!(
            Limits::default(),
            Limits {
                max_events_per_record: 10_000,
                max_array_items: 1_000
            }
        );
        let limits: Limits =
            serde_json::from_str(r#"{"max_array_items": 5}"#).expect("deserializes");
        assert_eq!(
            (limits.max_events_per_record, limits.max_array_items),
            (10_000, 5)
        );
    }

    #[test]
    fn too_many_events_names_the_count_and_the_limit() {
        let limits = Limits {
            max_events_per_record: 2,
            max_array_items: 1,
        };
        assert_eq!(at_most_events(2, &limits), Ok(()));
        let error = at_most_events(3, &limits).expect_err("over");
        assert_eq!(error.kind(), "too_many_events");
        assert_eq!(
            error.to_string(),
            "the record yields 3 events, more than max_events_per_record (2)"
        );
    }

    /// Each kind's arm runs that kind's own parser: every golden file, which
    /// its parser's test wrote from a fixture, is what dispatch through
    /// [`parse`] makes of the same fixture for the first kind of that
    /// parser, apart from the ids a test may set (`event_id`, and the
    /// `dedupe_key` made of it). And every kind's events carry that kind's
    /// schema `Provider` (a parser copied from another may keep its symbol,
    /// and the golden file written from it would agree).
    #[test]
    fn dispatch_reproduces_every_golden_file() {
        fn without_ids(mut events: serde_json::Value) -> serde_json::Value {
            for event in events.as_array_mut().into_iter().flatten() {
                if let Some(event) = event.as_object_mut() {
                    let _ = event.remove("event_id");
                    let _ = event.remove("dedupe_key");
                }
            }
            events
        }
        let golden = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden");
        let names: Vec<String> = std::fs::read_dir(&golden)
            .unwrap_or_else(|e| panic!("cannot read {}: {e}", golden.display()))
            .filter_map(Result::ok)
            .map(|entry| entry.file_name().to_string_lossy().into_owned())
            .collect();
        let mut modules = Vec::new();
        let mut checked = 0;
        for &kind in ProviderKind::ALL {
            let parser = parser_for(kind);
            let first_of_its_parser = !modules.contains(&parser.module);
            if first_of_its_parser {
                modules.push(parser.module);
            }
            let dir = parser.fixture_dir();
            for name in &names {
                let Some(fixture) = name
                    .strip_prefix(&format!("{dir}."))
                    .and_then(|rest| rest.strip_suffix(".json"))
                else {
                    continue;
                };
                let body = testing::fixture(&format!("{dir}/{fixture}.json"));
                let events = parse(&testing::context(kind.as_str()), &body)
                    .unwrap_or_else(|e| panic!("`{kind}` on {dir}/{fixture}.json: {e}"));
                for event in &events {
                    assert_eq!(
                        event.provider,
                        schemas::Provider::from(kind),
                        "`{kind}` on {dir}/{fixture}.json"
                    );
                }
                if !first_of_its_parser {
                    continue;
                }
                let actual = serde_json::to_value(&events).unwrap_or_default();
                let text = std::fs::read_to_string(golden.join(name)).unwrap_or_default();
                let expected: serde_json::Value =
                    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{name}: {e}"));
                assert_eq!(
                    without_ids(actual),
                    without_ids(expected),
                    "`{kind}` dispatches to a parser other than the one that wrote {name}"
                );
                checked += 1;
            }
        }
        assert!(
            checked >= modules.len(),
            "a golden file per parser at least"
        );
    }
}
