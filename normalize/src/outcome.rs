//! The sans-IO core of normalize: what one raw record turns into, its
//! normalized records or the reason it is dead-lettered, decided from
//! values alone (headers, body, limits, what the encoder made of each
//! event), so every rule is unit-tested without a broker or a registry.
//!
//! A raw record goes through two pure steps with the encoder between them:
//!
//! 1. [`parse`]: the `source`, `provider` and `received-at` fields of
//!    ingest's metadata (its `ingest-meta` header, or a header each) and the
//!    body give the events ([`crate::providers::parse`]), their times made
//!    sane (an `occurred_at` beyond `received_at` plus the allowed skew
//!    becomes `received_at`: [`crate::event_time`]), their texts rid of NUL
//!    characters PostgreSQL cannot store ([`crate::text_sanity`]), and
//!    stamped with the configured normalizer version, or a [`Rejection`] naming the kind
//!    (`missing_header`, `unknown_provider`, `invalid_json`, ...).
//! 2. The runner encodes each event through the schema registry; an
//!    unavailable registry is retried there and never reaches the core.
//! 3. [`assemble`]: the encoded values become the records for
//!    `properties.normalized` (key, headers), or a [`Rejection`]: `schema`
//!    when an event does not fit the schema, `too_large` when an event would
//!    exceed the size budget ([`crate::sizing`]).
//!
//! The runner turns a [`Rejection`] into the raw record's dead letter.

use common::headers;
use common::produce::OutRecord;
use schemas::PropertyEvent;

use crate::event_time;
use crate::providers::{self, Limits, ParseError, RawContext};
use crate::sizing;
use crate::text_sanity;

/// What normalize reads off a raw record besides its body.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RawHeaders<'a> {
    /// The `source` header.
    pub source: Option<&'a str>,
    /// The `provider` header.
    pub provider: Option<&'a str>,
    /// The `event-id` header.
    pub event_id: Option<&'a str>,
    /// The `received-at` header (Unix ms, as text).
    pub received_at: Option<&'a str>,
    /// The record's own timestamp (Unix ms), used when `received-at` is
    /// absent or not a number.
    pub timestamp_ms: Option<i64>,
}

#[cfg(feature = "runtime")]
impl<'a> RawHeaders<'a> {
    /// What a Kafka record's metadata (`fields`, read from its one
    /// `ingest-meta` header or from a header per field) and timestamp say.
    pub fn of<M: rdkafka::Message>(fields: &'a common::kafka::RawFields<'a>, message: &M) -> Self {
        Self {
            source: fields.get(headers::SOURCE),
            provider: fields.get(headers::PROVIDER),
            event_id: fields.get(headers::EVENT_ID),
            received_at: fields.get(headers::RECEIVED_AT),
            timestamp_ms: message.timestamp().to_millis(),
        }
    }
}

/// Where the raw record is (its lineage): the record itself, or for a
/// replayed dead letter the raw record it copies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Origin<'a> {
    /// Topic.
    pub topic: &'a str,
    /// Partition.
    pub partition: i32,
    /// Offset.
    pub offset: i64,
}

/// What the stage's settings say about every record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rules {
    /// What one record may yield.
    pub limits: Limits,
    /// The version stamped in lineage instead of this build's.
    pub normalizer_version: Option<String>,
    /// Where events go.
    pub normalized_topic: String,
    /// The producer's `message.max.bytes`.
    pub message_max_bytes: usize,
    /// How far after its arrival an event time may be before it is
    /// replaced by the arrival time (ms; [`crate::event_time`]).
    pub max_future_skew_ms: i64,
}

/// Why a raw record is dead-lettered: its `error.kind` and `error.message`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    /// `error.kind`.
    pub kind: &'static str,
    /// `error.message`.
    pub reason: String,
}

impl From<ParseError> for Rejection {
    fn from(error: ParseError) -> Self {
        Self {
            kind: error.kind(),
            reason: error.to_string(),
        }
    }
}

/// What the encoder made of one event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Encoded {
    /// The value in the Confluent wire format.
    Value(Vec<u8>),
    /// The event does not fit the schema (permanent); the encoder's error.
    Invalid(String),
}

/// What one raw record turns into.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Its records for `properties.normalized`, in order (possibly none).
    Events(Vec<OutRecord>),
    /// It is dead-lettered.
    DeadLetter(Rejection),
}

/// Step 1: the raw record's events, or why it has none.
pub fn parse(
    raw: &RawHeaders<'_>,
    body: &[u8],
    origin: Origin<'_>,
    rules: &Rules,
) -> Result<Vec<PropertyEvent>, Rejection> {
    let source = raw
        .source
        .ok_or(ParseError::MissingHeader(headers::SOURCE))?;
    let provider = raw
        .provider
        .ok_or(ParseError::MissingHeader(headers::PROVIDER))?;
    let received_at_ms = raw
        .received_at
        .and_then(|v| v.parse().ok())
        .or(raw.timestamp_ms)
        .ok_or(ParseError::MissingHeader(headers::RECEIVED_AT))?;
    // Whether the kind is known is asked last, as when the parsers matched
    // on the header's text: a record missing a header is named for that.
    let provider = providers::provider_kind(provider)?;
    let context = RawContext {
        source,
        provider,
        event_id: raw.event_id.filter(|id| !id.trim().is_empty()),
        received_at_ms,
        topic: origin.topic,
        partition: origin.partition,
        offset: origin.offset,
        limits: rules.limits,
    };
    let mut events = providers::parse(&context, body)?;
    event_time::cap_future_times(&mut events, rules.max_future_skew_ms);
    let headers = [source, context.event_id.unwrap_or_default()];
    let _ = text_sanity::strip_nul_from(&mut events, body, &headers);
    if let Some(version) = &rules.normalizer_version {
        for event in &mut events {
            event.lineage.normalizer_version.clone_from(version);
        }
    }
    Ok(events)
}

/// Step 3: the records of `events`, given what the encoder made of each, in
/// the same order (`encoded` may stop at the first [`Encoded::Invalid`]).
/// `traceparent` is the raw record's span, carried by every event.
pub fn assemble(
    events: &[PropertyEvent],
    encoded: Vec<Encoded>,
    traceparent: &str,
    rules: &Rules,
) -> Outcome {
    let mut records = Vec::with_capacity(events.len());
    for (event, encoded) in events.iter().zip(encoded) {
        match encoded {
            Encoded::Value(value) => {
                records.push(normalized_record(rules, event, value, traceparent));
            }
            Encoded::Invalid(error) => {
                return Outcome::DeadLetter(Rejection {
                    kind: "schema",
                    reason: error,
                });
            }
        }
    }
    if records.len() < events.len() {
        return Outcome::DeadLetter(Rejection {
            kind: "schema",
            reason: format!(
                "only {} of {} events were encoded",
                records.len(),
                events.len()
            ),
        });
    }
    let budget = sizing::event_budget(rules.message_max_bytes);
    if let Some((index, size)) = sizing::first_oversized(&records, budget) {
        return Outcome::DeadLetter(Rejection {
            kind: "too_large",
            reason: sizing::too_large_reason(
                &sizing::describe(index, records.len(), &records[index]),
                &rules.normalized_topic,
                size,
                rules.message_max_bytes,
            ),
        });
    }
    Outcome::Events(records)
}

/// One event's record: keyed by property key (so a property's events stay
/// in order on one partition), with the headers dedupe reads.
pub fn normalized_record(
    rules: &Rules,
    event: &PropertyEvent,
    value: Vec<u8>,
    traceparent: &str,
) -> OutRecord {
    OutRecord {
        topic: rules.normalized_topic.clone(),
        partition: None,
        key: Some(event.property_key.clone().into_bytes()),
        payload: Some(value),
        headers: Vec::new(),
    }
    .header(headers::TRACEPARENT, traceparent)
    .header(headers::DEDUPE_KEY, event.dedupe_key.as_str())
    .header(headers::EVENT_TYPE, event.event_type.as_str())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::providers::testing::fixture;

    mod nul;

    fn rules() -> Rules {
        Rules {
            limits: Limits::default(),
            normalizer_version: None,
            normalized_topic: "t.properties.normalized".into(),
            message_max_bytes: 2_097_152,
            max_future_skew_ms: 3_600_000,
        }
    }

    fn origin() -> Origin<'static> {
        Origin {
            topic: "t.webhooks.raw",
            partition: 2,
            offset: 41,
        }
    }

    fn generic() -> RawHeaders<'static> {
        RawHeaders {
            source: Some("generic"),
            provider: Some("generic"),
            event_id: None,
            received_at: Some("1767225600000"),
            timestamp_ms: Some(1),
        }
    }

    fn fluximmo() -> RawHeaders<'static> {
        RawHeaders {
            source: Some("fluximmo"),
            provider: Some("fluximmo"),
            ..generic()
        }
    }

    fn rejection(result: Result<Vec<PropertyEvent>, Rejection>) -> Rejection {
        match result {
            Ok(events) => panic!("expected a rejection, got {} events", events.len()),
            Err(rejection) => rejection,
        }
    }

    fn values(events: &[PropertyEvent], size: usize) -> Vec<Encoded> {
        events
            .iter()
            .map(|_| Encoded::Value(vec![0; size]))
            .collect()
    }

    #[test]
    fn a_property_event_yields_its_records_with_lineage_and_headers() {
        let body = fixture("generic/property.created.json");
        let events = parse(&generic(), &body, origin(), &rules()).expect("parses");
        assert_eq!(events.len(), 1);
        let lineage = &events[0].lineage;
        assert_eq!(
            (
                lineage.raw_topic.as_str(),
                lineage.raw_partition,
                lineage.raw_offset
            ),
            ("t.webhooks.raw", 2, 41)
        );
        assert_eq!(lineage.normalizer_version, crate::NORMALIZER_VERSION);
        let Outcome::Events(records) = assemble(&events, values(&events, 10), "tp", &rules())
        else {
            panic!("expected events");
        };
        let record = &records[0];
        assert_eq!(record.topic, "t.properties.normalized");
        assert_eq!(
            record.key.as_deref(),
            Some(events[0].property_key.as_bytes())
        );
        let names: Vec<&str> = record.headers.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(names, ["traceparent", "dedupe-key", "event-type"]);
        assert_eq!(record.headers[0].1, b"tp");
        assert_eq!(record.headers[1].1, events[0].dedupe_key.as_bytes());
    }

    /// Whatever the parser, an event time beyond `received_at` plus the
    /// skew is the arrival, the sender's time kept as claimed.
    #[test]
    fn an_event_time_beyond_the_skew_is_replaced_by_the_arrival() {
        let body = fixture("generic/property.created.json");
        let created: i64 = 1_686_825_000_000;
        let strict = Rules {
            max_future_skew_ms: 0,
            ..rules()
        };
        for (received_before, rules, expected) in [
            (3_600_001, rules(), (created - 3_600_001, Some(created))),
            (3_600_000, rules(), (created, None)),
            (1, strict.clone(), (created - 1, Some(created))),
            (0, strict, (created, None)),
        ] {
            let received = (created - received_before).to_string();
            let raw = RawHeaders {
                received_at: Some(&received),
                ..generic()
            };
            let events = parse(&raw, &body, origin(), &rules).expect("parses");
            assert_eq!(
                (events[0].occurred_at, events[0].occurred_at_claimed),
                expected,
                "received {received_before} ms before"
            );
        }
    }

    #[test]
    fn the_configured_version_is_stamped_on_every_event() {
        let rules = Rules {
            normalizer_version: Some("99.0.0".into()),
            ..rules()
        };
        let body = fixture("generic/property.created.json");
        let events = parse(&generic(), &body, origin(), &rules).expect("parses");
        assert!(
            events
                .iter()
                .all(|e| e.lineage.normalizer_version == "99.0.0")
        );
    }

    #[test]
    fn missing_or_unknown_headers_are_dead_lettered_with_their_kind() {
        let body = fixture("generic/property.created.json");
        let no_source = RawHeaders {
            source: None,
            ..generic()
        };
        let got = rejection(parse(&no_source, &body, origin(), &rules()));
        assert_eq!(got.kind, "missing_header");
        assert!(got.reason.contains("`source`"), "{}", got.reason);
        let unknown = RawHeaders {
            provider: Some("zillow"),
            ..generic()
        };
        assert_eq!(
            rejection(parse(&unknown, &body, origin(), &rules())).kind,
            "unknown_provider"
        );
        let no_time = RawHeaders {
            received_at: Some("not a number"),
            timestamp_ms: None,
            ..generic()
        };
        let got = rejection(parse(&no_time, &body, origin(), &rules()));
        assert_eq!(got.kind, "missing_header");
        assert!(got.reason.contains("received-at"), "{}", got.reason);
    }

    #[test]
    fn the_record_timestamp_stands_in_for_received_at() {
        let body = fixture("fluximmo/webhook-properties.json");
        let raw = RawHeaders {
            received_at: None,
            timestamp_ms: Some(1_700_000_000_000),
            ..fluximmo()
        };
        let events = parse(&raw, &body, origin(), &rules()).expect("parses");
        assert!(!events.is_empty());
        assert!(events.iter().all(|e| e.received_at == 1_700_000_000_000));
    }

    #[test]
    fn bodies_the_parsers_refuse_keep_the_parsers_kind() {
        let appointment = fixture("generic/appointment.scheduled.json");
        assert_eq!(
            rejection(parse(&generic(), &appointment, origin(), &rules())).kind,
            "unsupported_event_type"
        );
        assert_eq!(
            rejection(parse(&generic(), b"{not json", origin(), &rules())).kind,
            "invalid_json"
        );
        let tight = Rules {
            limits: Limits {
                max_events_per_record: 1,
                max_array_items: 1000,
            },
            ..rules()
        };
        let raw = fluximmo();
        let body = fixture("fluximmo/webhook-properties.json");
        assert_eq!(
            rejection(parse(&raw, &body, origin(), &tight)).kind,
            "too_many_events"
        );
    }

    #[test]
    fn an_event_the_schema_refuses_dead_letters_the_record() {
        let body = fixture("fluximmo/webhook-properties.json");
        let raw = fluximmo();
        let events = parse(&raw, &body, origin(), &rules()).expect("parses");
        assert!(events.len() > 1, "the fixture lists several ids");
        let encoded = vec![
            Encoded::Value(vec![1]),
            Encoded::Invalid("field `x` is not a long".into()),
        ];
        assert_eq!(
            assemble(&events, encoded, "", &rules()),
            Outcome::DeadLetter(Rejection {
                kind: "schema",
                reason: "field `x` is not a long".into()
            })
        );
        let Outcome::DeadLetter(short) = assemble(&events, vec![], "", &rules()) else {
            panic!("an event without a value cannot be sent");
        };
        assert_eq!(short.kind, "schema");
    }

    #[test]
    fn an_event_over_the_budget_dead_letters_the_record_as_too_large() {
        let body = fixture("generic/property.created.json");
        let events = parse(&generic(), &body, origin(), &rules()).expect("parses");
        let small = Rules {
            message_max_bytes: 4096,
            ..rules()
        };
        let Outcome::Events(fits) = assemble(&events, values(&events, 3000), "", &small) else {
            panic!("3000 bytes fit 4096");
        };
        assert_eq!(fits.len(), 1);
        let Outcome::DeadLetter(too_large) = assemble(&events, values(&events, 4000), "", &small)
        else {
            panic!("4000 bytes do not fit 4096 minus the allowances");
        };
        assert_eq!(too_large.kind, "too_large");
        assert!(
            too_large.reason.contains("event 1 of 1")
                && too_large.reason.contains("t.properties.normalized")
                && too_large.reason.contains("message_max_bytes 4096"),
            "{}",
            too_large.reason
        );
    }

    #[test]
    fn a_record_without_events_yields_nothing_and_no_dead_letter() {
        let raw = fluximmo();
        let events = parse(
            &raw,
            br#"{"data":{"created":[],"updated":[]}}"#,
            origin(),
            &rules(),
        )
        .expect("an empty delivery is not an error");
        assert!(events.is_empty());
        assert_eq!(
            assemble(&events, vec![], "", &rules()),
            Outcome::Events(vec![])
        );
    }

    fn headers_outcome(
        source: Option<&'static str>,
        provider: Option<&'static str>,
        received_at: Option<&'static str>,
        timestamp_ms: Option<i64>,
    ) -> Result<usize, Rejection> {
        let raw = RawHeaders {
            source,
            provider,
            event_id: None,
            received_at,
            timestamp_ms,
        };
        parse(&raw, b"{}", origin(), &rules()).map(|events| events.len())
    }

    /// Only the exact configured spelling names a kind: anything else is
    /// dead-lettered as `unknown_provider`, naming the value.
    #[test]
    fn a_provider_header_that_names_no_kind_is_unknown_provider() {
        for value in [
            "zillow",
            "",
            "Generic",
            "GENERIC",
            "stream_estate",
            "StreamEstate",
            " generic",
            "generic ",
            "generic\n",
            "standard_webhooks",
        ] {
            let rejection =
                headers_outcome(Some("s"), Some(value), None, Some(1)).expect_err("no such kind");
            assert_eq!(rejection.kind, "unknown_provider");
            assert_eq!(
                rejection.reason,
                format!("no parser for provider `{value}`")
            );
        }
        let missing = headers_outcome(Some("s"), None, None, Some(1)).expect_err("no header");
        assert_eq!(missing.kind, "missing_header");
    }

    /// The headers are checked in the order they were before
    /// `ProviderKind`: `source`, `provider` present, an arrival time, and
    /// only then whether the provider is known.
    #[test]
    fn a_missing_arrival_time_is_named_before_an_unknown_provider() {
        let no_time = headers_outcome(Some("s"), Some("zillow"), None, None).expect_err("no time");
        assert_eq!(
            (no_time.kind, no_time.reason.as_str()),
            (
                "missing_header",
                "raw record has no `received-at` (no such field in its `ingest-meta` header, nor a header of that name)"
            )
        );
        let no_source =
            headers_outcome(None, Some("zillow"), None, Some(1)).expect_err("no source");
        assert_eq!(
            no_source.reason,
            "raw record has no `source` (no such field in its `ingest-meta` header, nor a header of that name)"
        );
        let unknown = headers_outcome(Some("s"), Some("zillow"), Some("1700000000000"), None)
            .expect_err("unknown");
        assert_eq!(unknown.kind, "unknown_provider");
    }
}
