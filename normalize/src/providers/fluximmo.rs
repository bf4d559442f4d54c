//! Fluximmo (API v2) alert webhooks:
//! `{"data": {"created": [{"properties": [<id>...], "alert_id": "..."}], "updated": [...]}}`.
//!
//! Fluximmo sends references, never property bodies, so every id in
//! `created` and `updated` becomes one `reference_only` event with no
//! snapshot; `provider_event_type` says which list it came from and
//! `alert_id` which alert matched. The body carries no time, so
//! `occurred_at` is the arrival time at ingest. Fluximmo sends no event id:
//! the dedupe key is a hash of the raw body plus the id's position
//! (`created.<item>.<index>`). Empty lists yield no event; a body with
//! neither list, a list or item of the wrong shape, or an id that is not a
//! string or number is an error (the record goes to the DLQ). So is a body
//! listing more ids than `max_events_per_record`: they are counted before
//! any event is built (1 MiB of short ids is about 500,000 events).

use schemas::{EventType, PropertyEvent, Provider};
use serde_json::Value;

use super::event::{BodyHash, new_event};
use super::json::{body_object, items, text};
use super::{ParseError, RawContext, at_most_events};

/// The two lists, in the order their events are emitted.
const LISTS: [(&str, &str, &str); 2] = [
    ("created", "data.created", "data.created[].properties"),
    ("updated", "data.updated", "data.updated[].properties"),
];

/// Parses one Fluximmo delivery into one event per referenced property.
pub fn parse(context: &RawContext<'_>, body: &[u8]) -> Result<Vec<PropertyEvent>, ParseError> {
    let root = body_object(body)?;
    let data = root
        .get("data")
        .filter(|d| d.is_object())
        .ok_or(ParseError::MissingField("data"))?;
    if LISTS.iter().all(|(name, _, _)| data.get(name).is_none()) {
        return Err(ParseError::MissingField("data.created"));
    }
    let count: usize = LISTS
        .iter()
        .flat_map(|(name, _, _)| items(data.get(name)))
        .map(|item| items(item.get("properties")).len())
        .sum();
    at_most_events(count, &context.limits)?;
    let hash = BodyHash::of(body);
    let mut events = Vec::with_capacity(count);
    for (name, list_field, ids_field) in LISTS {
        let items = match data.get(name) {
            None | Some(Value::Null) => continue,
            Some(Value::Array(items)) => items,
            Some(_) => return Err(invalid(list_field, "expected an array".to_string())),
        };
        for (item_index, item) in items.iter().enumerate() {
            let alert_id = text(item.get("alert_id"));
            let ids = match item.get("properties") {
                Some(Value::Array(ids)) => ids,
                Some(Value::Null) | None => continue,
                Some(_) => {
                    return Err(invalid(
                        ids_field,
                        format!("item {item_index} is not an array"),
                    ));
                }
            };
            for (index, id) in ids.iter().enumerate() {
                let property_id = text(Some(id)).ok_or_else(|| {
                    invalid(
                        ids_field,
                        format!("{name}.{item_index}.{index} is not a property id: {id}"),
                    )
                })?;
                let mut event = new_event(
                    context,
                    Provider::Fluximmo,
                    hash.list_position_id(name, item_index, index),
                    property_id,
                    EventType::ReferenceOnly,
                    context.received_at_ms,
                );
                event.alert_id.clone_from(&alert_id);
                event.provider_event_type = Some(name.to_string());
                events.push(event);
            }
        }
    }
    Ok(events)
}

fn invalid(field: &'static str, reason: String) -> ParseError {
    ParseError::InvalidField { field, reason }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::providers::testing::{
        Expect, assert_golden, check_hostile, context, fixture, nested,
    };

    #[test]
    fn the_fixture_becomes_one_reference_per_created_id() {
        let events = parse(
            &context("fluximmo"),
            &fixture("fluximmo/webhook-properties.json"),
        )
        .expect("parses");
        assert_golden("fluximmo.webhook-properties", &events);
    }

    #[test]
    fn created_and_updated_ids_keep_their_list_and_alert() {
        let body = br#"{"data":{"created":[{"properties":["a"],"alert_id":"x"}],
            "updated":[{"properties":["b",7],"alert_id":12}]}}"#;
        let events = parse(&context("fluximmo"), body).expect("parses");
        let got: Vec<_> = events
            .iter()
            .map(|e| {
                (
                    e.property_key.as_str(),
                    e.provider_event_type.as_deref(),
                    e.alert_id.as_deref(),
                    e.event_type,
                )
            })
            .collect();
        assert_eq!(
            got,
            [
                (
                    "fluximmo:a",
                    Some("created"),
                    Some("x"),
                    EventType::ReferenceOnly
                ),
                (
                    "fluximmo:b",
                    Some("updated"),
                    Some("12"),
                    EventType::ReferenceOnly
                ),
                (
                    "fluximmo:7",
                    Some("updated"),
                    Some("12"),
                    EventType::ReferenceOnly
                ),
            ]
        );
        let keys: std::collections::HashSet<_> = events.iter().map(|e| &e.dedupe_key).collect();
        assert_eq!(keys.len(), 3, "one dedupe key per position");
    }

    #[test]
    fn more_ids_than_the_limit_is_an_error_before_any_event() {
        let mut c = context("fluximmo");
        c.limits.max_events_per_record = 3;
        let three =
            br#"{"data":{"created":[{"properties":["a","b"]}],"updated":[{"properties":["c"]}]}}"#;
        assert_eq!(parse(&c, three).map(|e| e.len()), Ok(3));
        let four = br#"{"data":{"created":[{"properties":["a","b"]},{"properties":["d"]}],"updated":[{"properties":["c"]}]}}"#;
        assert_eq!(
            parse(&c, four),
            Err(ParseError::TooManyEvents { count: 4, max: 3 })
        );
        // The default is far above the fixture.
        let fixture = fixture("fluximmo/webhook-properties.json");
        let events = parse(&context("fluximmo"), &fixture).expect("parses");
        assert!(events.len() * 100 < crate::providers::Limits::default().max_events_per_record);
    }

    #[test]
    fn a_retry_of_the_same_body_has_the_same_dedupe_keys() {
        let body = fixture("fluximmo/webhook-properties.json");
        let first = parse(&context("fluximmo"), &body).expect("parses");
        let mut retry_context = context("fluximmo");
        retry_context.offset = 99;
        retry_context.received_at_ms += 300_000;
        let retry = parse(&retry_context, &body).expect("parses");
        let keys = |events: &[PropertyEvent]| -> Vec<String> {
            events.iter().map(|e| e.dedupe_key.clone()).collect()
        };
        assert_eq!(keys(&first), keys(&retry));
    }

    #[test]
    fn hostile_variants_give_events_or_precise_errors() {
        let many_ids: Vec<String> = (0..5_000).map(|i| format!("\"p{i}\"")).collect();
        let huge = format!(
            r#"{{"data":{{"created":[{{"properties":[{}],"alert_id":"a"}}],"updated":[]}}}}"#,
            many_ids.join(",")
        );
        let cases: Vec<(&str, Vec<u8>, Expect)> = vec![
            ("truncated", br#"{"data":{"created":["#.to_vec(), Expect::Kind("invalid_json")),
            ("not an object", b"[1,2]".to_vec(), Expect::Kind("invalid_field")),
            ("no data", br#"{"created":[]}"#.to_vec(), Expect::Error(ParseError::MissingField("data"))),
            ("data is a string", br#"{"data":"x"}"#.to_vec(), Expect::Error(ParseError::MissingField("data"))),
            ("no lists", br#"{"data":{}}"#.to_vec(), Expect::Error(ParseError::MissingField("data.created"))),
            ("both lists empty", br#"{"data":{"created":[],"updated":[]}}"#.to_vec(), Expect::Events(0)),
            ("updated missing", br#"{"data":{"created":[{"properties":["a"]}]}}"#.to_vec(), Expect::Events(1)),
            ("created is an object", br#"{"data":{"created":{"properties":["a"]}}}"#.to_vec(), Expect::Kind("invalid_field")),
            ("properties is a string", br#"{"data":{"created":[{"properties":"a"}]}}"#.to_vec(), Expect::Kind("invalid_field")),
            ("null id", br#"{"data":{"created":[{"properties":[null]}]}}"#.to_vec(), Expect::Kind("invalid_field")),
            ("empty id", br#"{"data":{"created":[{"properties":[" "]}]}}"#.to_vec(), Expect::Kind("invalid_field")),
            ("item without properties", br#"{"data":{"created":[{"alert_id":"a"}],"updated":[]}}"#.to_vec(), Expect::Events(0)),
            ("alert id missing, extra fields", br#"{"data":{"created":[{"properties":["a"],"x":{"y":[1]}}],"updated":[],"z":1},"meta":2}"#.to_vec(), Expect::Events(1)),
            ("huge list", huge.into_bytes(), Expect::Events(5_000)),
            ("deep nesting", nested(100_000, "1").into_bytes(), Expect::Kind("invalid_json")),
            ("empty body", Vec::new(), Expect::Kind("invalid_json")),
        ];
        check_hostile(parse, &context("fluximmo"), &cases);
    }
}
