//! The generic "real-estate platform" envelope:
//! `{"id": "evt_...", "type": "property.created", "created": <RFC 3339>, "data": {"property": {...}}}`.
//!
//! `property.created`, `property.updated` and `property.sold` become events;
//! every other type (appointments, users, feedback) is not about a property
//! and is refused with `UnsupportedEventType`, which sends it to the DLQ.
//! The dedupe key is `<source>:<envelope id>`: the same for every delivery.
//!
//! An event carries only what its `data.property` says: a key it does not
//! send is `None` (unknown to the property's state, never a default), and
//! a key it sends as `null`, `""` or `[]` is listed in `cleared_fields`
//! ([`super::cleared`]); so is `price_per_m2` when the price or the surface
//! it is derived from is cleared. A `property.sold` has status `sold`
//! unless it names another, its sale price (`soldPrice`) in `sold_price`
//! and its date (`soldAt`, RFC 3339) in `sold_at`; its `price`, when it
//! sends one, is the listing's price. A `soldAt` that is present but not an
//! RFC 3339 time is an error (`invalid_field`), as an event time is: the
//! sale's date is what the event is about. `createdAt`, descriptive only,
//! is dropped when unparseable.
//!
//! The `standard-webhooks` provider kind uses this parser too: a Standard
//! Webhooks payload is `{"type", "timestamp", "data"}` with its id in the
//! `webhook-id` header (ingest's `event-id`), so the envelope id falls back
//! to that header and `created` to `timestamp`.

use schemas::{EventType, Location, PropertyEvent, PropertySnapshot, Provider};
use serde_json::Value;

use super::cleared::Cleared;
use super::event::new_event;
use super::json::{body_object, checked_time, first_time, int, number, optional_time, text};
use super::{ParseError, ProviderKind, RawContext};

/// Square feet to square metres.
const M2_PER_SQFT: f64 = 0.092_903_04;

/// Parses one generic envelope into exactly one event.
pub fn parse(context: &RawContext<'_>, body: &[u8]) -> Result<Vec<PropertyEvent>, ParseError> {
    let envelope = body_object(body)?;
    let event_type_name = envelope
        .get("type")
        .and_then(Value::as_str)
        .ok_or(ParseError::MissingField("type"))?;
    let event_type = match event_type_name {
        "property.created" => EventType::Created,
        "property.updated" => EventType::Updated,
        "property.sold" => EventType::Sold,
        other => return Err(ParseError::UnsupportedEventType(other.to_string())),
    };
    let event_id = text(envelope.get("id"))
        .or_else(|| context.event_id.map(str::to_string))
        .ok_or(ParseError::MissingField("id"))?;
    let occurred_at = first_time(&[
        (envelope.get("created"), "created"),
        (envelope.get("timestamp"), "timestamp"),
    ])?;
    let property = envelope
        .get("data")
        .and_then(|d| d.get("property"))
        .filter(|p| p.is_object())
        .ok_or(ParseError::MissingField("data.property"))?;
    let property_id =
        text(property.get("id")).ok_or(ParseError::MissingField("data.property.id"))?;

    let (snapshot, cleared_fields) = snapshot(property, event_type)?;

    let provider = if context.provider == ProviderKind::StandardWebhooks {
        Provider::StandardWebhooks
    } else {
        Provider::Generic
    };
    let mut event = new_event(
        context,
        provider,
        event_id,
        property_id,
        event_type,
        occurred_at,
    );
    event.provider_event_type = Some(event_type_name.to_string());
    event.property = Some(snapshot);
    event.cleared_fields = cleared_fields;
    Ok(vec![event])
}

/// The snapshot `data.property` describes, and the fields it clears.
fn snapshot(
    property: &Value,
    event_type: EventType,
) -> Result<(PropertySnapshot, Option<Vec<String>>), ParseError> {
    let field = |key: &str| property.get(key);
    let mut c = Cleared::default();
    let mut p = PropertySnapshot::empty();
    p.price = c.one("price", field("price"), number);
    p.currency = c.one("currency", field("currency"), |v| {
        text(v).map(|code| code.to_ascii_uppercase())
    });
    p.sold_price = c.one("sold_price", field("soldPrice"), number);
    let sold_at = field("soldAt");
    p.sold_at = c.note(
        "sold_at",
        &[sold_at],
        checked_time(sold_at, "data.property.soldAt")?,
    );
    p.bedrooms = c.one("bedrooms", field("bedrooms"), int);
    p.bathrooms = c.one("bathrooms", field("bathrooms"), int);
    p.rooms = c.one("rooms", field("rooms"), int);
    let (sqm, sqft) = (field("squareMeters"), field("squareFeet"));
    p.surface_m2 = c.note(
        "surface_m2",
        &[sqm, sqft],
        number(sqm).or_else(|| number(sqft).map(|sqft| round2(sqft * M2_PER_SQFT))),
    );
    p.price_per_m2 = match (p.price, p.surface_m2) {
        (Some(price), Some(surface)) if surface > 0.0 => Some(round2(price / surface)),
        _ => None,
    };
    if p.price_per_m2.is_none() && (c.has("price") || c.has("surface_m2")) {
        c.clear("price_per_m2");
    }
    p.title = c.one("title", field("title"), text);
    p.description = c.one("description", field("description"), text);
    p.status = c.one("status", field("status"), |v| {
        text(v).or_else(|| (event_type == EventType::Sold).then(|| "sold".to_string()))
    });
    p.location = Location {
        address: c.one("location.address", field("address"), text),
        city: c.one("location.city", field("city"), text),
        postcode: c.either(
            "location.postcode",
            [field("postcode"), field("zipCode")],
            text,
        ),
        country: c.one("location.country", field("country"), text),
        latitude: c.one("location.latitude", field("latitude"), number),
        longitude: c.one("location.longitude", field("longitude"), number),
        ..Location::default()
    };
    p.first_seen_at = c.one("first_seen_at", field("createdAt"), optional_time);
    Ok((p, c.into_fields()))
}

fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::providers::testing::{self, Expect, assert_golden, check_hostile, nested};

    const CREATED: &[u8] = include_bytes!("../../../tests/fixtures/generic/property.created.json");
    const APPOINTMENT: &[u8] =
        include_bytes!("../../../tests/fixtures/generic/appointment.scheduled.json");

    fn context() -> RawContext<'static> {
        testing::context("generic")
    }

    #[test]
    fn the_fixture_matches_its_golden_event() {
        let events = parse(&context(), CREATED).expect("parses");
        assert_golden("generic.property.created", &events);
    }

    #[test]
    fn a_standard_webhooks_payload_takes_its_id_from_the_header() {
        let mut c = testing::context("standard-webhooks");
        c.event_id = Some("msg_2Lh9");
        let body = br#"{"type":"property.updated","timestamp":"2024-05-01T12:00:00Z","data":{"property":{"id":"p1"}}}"#;
        let e = &parse(&c, body).expect("parses")[0];
        assert_eq!(e.dedupe_key, "standard-webhooks:msg_2Lh9");
        assert_eq!(e.provider, Provider::StandardWebhooks);
        assert_eq!(e.occurred_at, 1_714_564_800_000);
    }

    #[test]
    fn an_event_id_of_many_kilobytes_is_bounded_in_the_event_and_its_key() {
        let long = "x".repeat(20_000);
        let body = format!(
            r#"{{"id":"{long}","type":"property.updated","created":"2024-05-01T12:00:00Z","data":{{"property":{{"id":"p1"}}}}}}"#
        );
        let e = &parse(&context(), body.as_bytes()).expect("parses")[0];
        assert_eq!(e.event_id, crate::providers::bounded_event_id(long.clone()));
        assert_eq!(e.event_id.len(), 71);
        assert_eq!(e.dedupe_key, format!("generic:{}", e.event_id));
        let mut c = testing::context("standard-webhooks");
        c.event_id = Some(&long);
        let body = br#"{"type":"property.updated","timestamp":"2024-05-01T12:00:00Z","data":{"property":{"id":"p1"}}}"#;
        let from_header = &parse(&c, body).expect("parses")[0];
        assert_eq!(from_header.event_id.len(), 71, "the event-id header too");
    }

    #[test]
    fn more_hostile_variants_never_panic() {
        let cases: Vec<(&str, Vec<u8>, Expect)> = vec![
            ("unknown type", br#"{"id":"e","type":"user.registered","created":"2023-06-15T10:30:00Z"}"#.to_vec(),
                Expect::Error(ParseError::UnsupportedEventType("user.registered".into()))),
            ("type is a number", br#"{"id":"e","type":1}"#.to_vec(), Expect::Error(ParseError::MissingField("type"))),
            ("property is an array", br#"{"id":"e","type":"property.created","created":"2023-06-15T10:30:00Z","data":{"property":[1]}}"#.to_vec(),
                Expect::Error(ParseError::MissingField("data.property"))),
            ("bad time", br#"{"id":"e","type":"property.created","created":"15/06/2023","data":{"property":{"id":"p"}}}"#.to_vec(),
                Expect::Kind("invalid_field")),
            ("junk numbers", br#"{"id":"e","type":"property.created","created":"2023-06-15T10:30:00Z","data":{"property":{"id":"p","price":"n/a","bedrooms":[2],"squareFeet":{}}}}"#.to_vec(),
                Expect::Events(1)),
            ("deep nesting", nested(10_000, "1").into_bytes(), Expect::Kind("invalid_json")),
            ("array body", b"[{}]".to_vec(), Expect::Kind("invalid_field")),
        ];
        check_hostile(parse, &context(), &cases);
    }

    #[test]
    fn the_fixture_becomes_one_created_event() {
        let events = parse(&context(), CREATED).expect("parses");
        assert_eq!(events.len(), 1);
        let e = &events[0];
        assert_eq!(e.event_id, "evt_123456");
        assert_eq!(e.dedupe_key, "generic:evt_123456");
        assert_eq!(e.property_key, "generic:prop_123456");
        assert_eq!(e.event_type, EventType::Created);
        assert_eq!(e.occurred_at, 1_686_825_000_000);
        assert_eq!(e.lineage.raw_offset, 7);
        let p = e.property.as_ref().expect("snapshot");
        assert_eq!(p.price, Some(750_000.0));
        assert_eq!(p.bedrooms, Some(2));
        assert_eq!(p.bathrooms, Some(2));
        assert_eq!(p.surface_m2, Some(111.48));
        assert_eq!(p.price_per_m2, Some(6727.66));
        assert_eq!(
            p.location.address.as_deref(),
            Some("123 Main St, New York, NY 10001")
        );
        assert_eq!(p.first_seen_at, Some(1_686_825_000_000));
        assert!(schemas::encode_datum(e).is_ok());
    }

    #[test]
    fn appointments_are_not_property_events() {
        assert_eq!(
            parse(&context(), APPOINTMENT),
            Err(ParseError::UnsupportedEventType(
                "appointment.scheduled".into()
            ))
        );
    }

    #[test]
    fn hostile_variants_fail_precisely() {
        let cases: [(&str, ParseError); 6] = [
            ("{", ParseError::NotJson(String::new())),
            (
                r#"{"type":"property.created"}"#,
                ParseError::MissingField("id"),
            ),
            (
                r#"{"id":"e","created":"2023-06-15T10:30:00Z"}"#,
                ParseError::MissingField("type"),
            ),
            (
                r#"{"id":"e","type":"property.sold","created":"2023-06-15T10:30:00Z","data":{}}"#,
                ParseError::MissingField("data.property"),
            ),
            (
                r#"{"id":"e","type":"property.sold","created":"2023-06-15T10:30:00Z","data":{"property":{"price":1}}}"#,
                ParseError::MissingField("data.property.id"),
            ),
            (
                r#"{"id":"e","type":"property.sold","data":{"property":{"id":"p"}}}"#,
                ParseError::MissingField("created"),
            ),
        ];
        for (body, expected) in cases {
            let got = parse(&context(), body.as_bytes()).expect_err(body);
            assert_eq!(got.kind(), expected.kind(), "{body}: {got}");
            if !matches!(expected, ParseError::NotJson(_)) {
                assert_eq!(got, expected, "{body}");
            }
        }
    }

    #[test]
    fn tolerates_strings_for_numbers_and_numbers_for_ids() {
        let body = br#"{"id":42,"type":"property.updated","created":"2023-06-15T10:30:00+02:00",
            "data":{"property":{"id":9,"price":"1200.50","bedrooms":"3","squareMeters":80,"extra":{"x":1}}}}"#;
        let e = &parse(&context(), body).expect("parses")[0];
        assert_eq!(e.dedupe_key, "generic:42");
        assert_eq!(e.property_key, "generic:9");
        assert_eq!(e.occurred_at, 1_686_817_800_000);
        let p = e.property.as_ref().expect("snapshot");
        assert_eq!(p.price, Some(1200.5));
        assert_eq!(p.bedrooms, Some(3));
        assert_eq!(p.surface_m2, Some(80.0));
    }

    #[test]
    fn a_sale_carries_its_price_and_date_and_nothing_else() {
        let body = br#"{"id":"evt_sold","type":"property.sold","created":"2023-07-01T09:00:00Z",
            "data":{"property":{"id":"prop_123456","soldPrice":735000,"soldAt":"2023-06-30T16:00:00Z"}}}"#;
        let e = &parse(&context(), body).expect("parses")[0];
        assert_eq!(e.event_type, EventType::Sold);
        assert_eq!(e.provider_event_type.as_deref(), Some("property.sold"));
        assert_eq!(e.occurred_at, 1_688_202_000_000);
        assert_eq!(
            e.property.as_ref(),
            Some(&PropertySnapshot {
                status: Some("sold".into()),
                sold_price: Some(735_000.0),
                sold_at: Some(1_688_140_800_000),
                ..PropertySnapshot::empty()
            }),
            "the sale price is not the listing's price"
        );
        assert_eq!(e.cleared_fields, None);
        assert!(schemas::encode_datum(e).is_ok());
    }

    /// What the property's merge makes of them: a sale and an update with
    /// an explicit null change what they say, and only that.
    #[test]
    fn partial_events_change_only_what_they_say_in_the_property_state() {
        let created = &parse(&context(), CREATED).expect("parses")[0];
        let state = property_state::merge(None, created).state;
        let sold = br#"{"id":"evt_sold","type":"property.sold","created":"2023-07-01T09:00:00Z",
            "data":{"property":{"id":"prop_123456","soldPrice":735000,"soldAt":"2023-06-30T16:00:00Z"}}}"#;
        let sold = &parse(&context(), sold).expect("parses")[0];
        let after = property_state::merge(Some(&state), sold);
        assert_eq!(
            after.changed_fields,
            ["status", "sold_price", "sold_at"],
            "nothing else"
        );
        let p = &after.state.property;
        assert_eq!((p.price, p.bedrooms), (Some(750_000.0), Some(2)));
        assert_eq!(p.sold_price, Some(735_000.0));
        let update = br#"{"id":"evt_u","type":"property.updated","created":"2023-07-02T09:00:00Z",
            "data":{"property":{"id":"prop_123456","price":null}}}"#;
        let update = &parse(&context(), update).expect("parses")[0];
        let after = property_state::merge(Some(&after.state), update);
        assert_eq!(after.changed_fields, ["price", "price_per_m2"]);
        let p = &after.state.property;
        assert_eq!((p.price, p.surface_m2), (None, Some(111.48)));
    }

    #[test]
    fn a_sale_date_that_is_not_a_time_is_an_error_naming_it() {
        for sold_at in [r#""30/06/2023""#, "1688140800", "{}"] {
            let body = format!(
                r#"{{"id":"e","type":"property.sold","created":"2023-07-01T09:00:00Z","data":{{"property":{{"id":"p","soldAt":{sold_at}}}}}}}"#
            );
            let error = parse(&context(), body.as_bytes()).expect_err(sold_at);
            assert!(
                matches!(
                    error,
                    ParseError::InvalidField {
                        field: "data.property.soldAt",
                        ..
                    }
                ),
                "{sold_at}: {error}"
            );
        }
    }

    #[test]
    fn an_update_carries_only_its_keys_and_lists_its_explicit_empties() {
        let body = br#"{"id":"e","type":"property.updated","created":"2023-06-15T10:30:00Z",
            "data":{"property":{"id":"p","price":null,"title":"","bedrooms":3,"city":null,
            "zipCode":null,"soldAt":null,"squareFeet":"n/a"}}}"#;
        let e = &parse(&context(), body).expect("parses")[0];
        assert_eq!(
            e.property.as_ref(),
            Some(&PropertySnapshot {
                bedrooms: Some(3),
                ..PropertySnapshot::empty()
            }),
            "absent keys are unknown, not defaults"
        );
        assert_eq!(
            e.cleared_fields.as_deref(),
            Some(
                [
                    "price",
                    "sold_at",
                    "price_per_m2",
                    "title",
                    "location.city",
                    "location.postcode"
                ]
                .map(String::from)
                .as_slice()
            ),
            "an unreadable surface is not an empty one"
        );
        assert!(schemas::encode_datum(e).is_ok());
    }

    #[test]
    fn a_value_beside_an_explicit_null_is_kept_and_clears_nothing() {
        let body = br#"{"id":"e","type":"property.updated","created":"2023-06-15T10:30:00Z",
            "data":{"property":{"id":"p","postcode":null,"zipCode":"10001","status":null}}}"#;
        let e = &parse(&context(), body).expect("parses")[0];
        let p = e.property.as_ref().expect("snapshot");
        assert_eq!(p.location.postcode.as_deref(), Some("10001"));
        assert_eq!(e.cleared_fields, Some(vec!["status".to_string()]));
    }

    #[test]
    fn sold_events_carry_a_sold_status() {
        let body = br#"{"id":"e","type":"property.sold","created":"2023-06-15T10:30:00Z","data":{"property":{"id":"p"}}}"#;
        let e = &parse(&context(), body).expect("parses")[0];
        assert_eq!(e.event_type, EventType::Sold);
        assert_eq!(
            e.property.as_ref().and_then(|p| p.status.as_deref()),
            Some("sold")
        );
    }
}
