//! breaker-s18: attacks on the claim that bounding event ids
//! (`normalize::providers::MAX_EVENT_ID_BYTES`) makes every property state
//! fit one record of `properties.latest` (README, "What each provider
//! yields": "it keeps a property's state ... far below one record").
//!
//! The events here are made by normalize itself, from raw bodies ingest
//! accepts (at most `body_limit_bytes`, config/ingest.toml), and each is
//! checked to be one normalize sends (its record within the event budget:
//! `normalize::outcome::assemble` gives `Outcome::Events`, not a
//! `too_large` dead letter). No broker is needed.

use normalize::outcome::{self, Encoded, Origin, Outcome, RawHeaders, Rules};
use normalize::providers::{Limits, MAX_EVENT_ID_BYTES};
use property_state::merge;
use schemas::PropertyEvent;
use state_writer::fit::RecordLimit;

/// Every stage's default `[kafka] message_max_bytes` (config/*.toml).
const MESSAGE_MAX_BYTES: usize = 2_097_152;

/// Ingest's default `body_limit_bytes` (config/ingest.toml).
const BODY_LIMIT_BYTES: usize = 1_048_576;

const TRACEPARENT: &str = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";

fn rules() -> Rules {
    Rules {
        limits: Limits::default(),
        normalizer_version: None,
        normalized_topic: "properties.normalized".into(),
        message_max_bytes: MESSAGE_MAX_BYTES,
        max_future_skew_ms: 3_600_000,
    }
}

/// What normalize makes of one generic raw record: its events, when it
/// sends them (`None`: dead-lettered, e.g. `too_large`).
fn normalized(body: &[u8]) -> Option<Vec<PropertyEvent>> {
    let raw = RawHeaders {
        source: Some("generic"),
        provider: Some("generic"),
        event_id: None,
        received_at: Some("1767225600000"),
        timestamp_ms: None,
    };
    let origin = Origin {
        topic: "webhooks.raw",
        partition: 0,
        offset: 7,
    };
    // A refused record (a property id over the bound) sends nothing.
    let events = outcome::parse(&raw, body, origin, &rules()).ok()?;
    let encoded = events
        .iter()
        .map(|e| {
            Encoded::Value(schemas::wire::frame(
                1,
                &schemas::encode_datum(e).expect("encodes"),
            ))
        })
        .collect();
    match outcome::assemble(&events, encoded, TRACEPARENT, &rules()) {
        Outcome::Events(_) => Some(events),
        Outcome::DeadLetter(_) => None,
    }
}

/// `error`'s text with the property id (`len` `x`s) elided.
fn shown(error: Option<anyhow::Error>, len: usize) -> String {
    error
        .map(|e| e.to_string().replace(&"x".repeat(len), "<property id>"))
        .unwrap_or_default()
}

/// A generic `property.updated` with envelope id `id` for property
/// `property_id` that explicitly clears every field the generic parser
/// reads (each key sent as `null`).
fn clearing_everything(id: &str, property_id: &str) -> Vec<u8> {
    const KEYS: [&str; 21] = [
        "price",
        "currency",
        "soldPrice",
        "soldAt",
        "bedrooms",
        "bathrooms",
        "rooms",
        "squareMeters",
        "propertyType",
        "transactionType",
        "title",
        "description",
        "status",
        "address",
        "city",
        "postcode",
        "country",
        "latitude",
        "longitude",
        "createdAt",
        "pictures",
    ];
    let nulls: String = KEYS.iter().map(|k| format!(r#","{k}":null"#)).collect();
    format!(
        r#"{{"id":"{id}","type":"property.updated","created":"2026-01-01T00:00:00Z","data":{{"property":{{"id":"{property_id}"{nulls}}}}}}}"#
    )
    .into_bytes()
}

/// The longest property id (in `x`s) for which normalize still sends the
/// event of `clearing_everything(id, ..)`.
fn longest_sent_property_id(id: &str) -> usize {
    let (mut sent, mut refused) = (1, BODY_LIMIT_BYTES);
    assert!(normalized(&clearing_everything(id, &"x".repeat(sent))).is_some());
    while refused - sent > 1 {
        let mid = (sent + refused) / 2;
        if normalized(&clearing_everything(id, &"x".repeat(mid))).is_some() {
            sent = mid;
        } else {
            refused = mid;
        }
    }
    sent
}

/// Attack: the property id. Normalize bounds event ids, but nothing bounds
/// `data.property.id` except ingest's body limit, and the property id is
/// in the state three times (the record key, `property_key`,
/// `provider_property_id`), as in the event. Take the longest property id
/// normalize still sends an event for (about 699 KB, in a body under
/// 1 MiB), in one event that clears the fields the generic parser knows,
/// with an event id of `MAX_EVENT_ID_BYTES` (kept as sent). The event's
/// record fits (normalize checked it against its budget, which is only
/// `FORWARDING_ALLOWANCE`, 128 bytes, below the state record's), but the
/// state adds, for each of those fields, its version (dedupe key, time,
/// normalizer version) and the field's path in `last_changed_fields`, plus
/// the contributor twice (`contributors`, `last_event`): a few KB of
/// bookkeeping over the 128 bytes of margin, with no value to withhold. So
/// `fit` fails and the state writer stops its partition, after every
/// restart: the stop the event-id bound set out to remove, from one event
/// that fits.
///
/// Expected: every event normalize sends merges into a state that fits.
/// Fixed: normalize refuses a property id over `MAX_PROPERTY_ID_BYTES`
/// (`invalid_field`, to the DLQ), so the longest it sends is 512 bytes.
#[test]
fn breaker_s18_an_event_normalize_sends_makes_a_state_that_fits() {
    let id = "e".repeat(MAX_EVENT_ID_BYTES);
    let len = longest_sent_property_id(&id);
    assert_eq!(len, normalize::providers::MAX_PROPERTY_ID_BYTES);
    let body = clearing_everything(&id, &"x".repeat(len));
    assert!(body.len() <= BODY_LIMIT_BYTES, "ingest accepts the body");
    let events = normalized(&body).expect("normalize sends the event");
    let e = &events[0];
    assert_eq!(e.event_id, id, "the event id is kept as sent");
    assert!(
        e.cleared_fields.as_ref().is_some_and(|c| c.len() >= 15),
        "{:?}",
        e.cleared_fields
    );
    let merged = merge(None, e);
    let fitted = RecordLimit::new(MESSAGE_MAX_BYTES).fit(None, merged, &e.dedupe_key, 7);
    assert!(
        fitted.is_ok(),
        "an event normalize sent (property id of {len} bytes) stops the state writer: {}",
        shown(fitted.err(), len)
    );
}

/// The same attack with an ordinary event id (a UUID): the bookkeeping of
/// one event clearing a score of fields is still far more than the
/// 128 bytes between the event budget and the state record's budget, so
/// the event-id bound is not what decides whether a state fits.
#[test]
fn breaker_s18_a_long_property_id_with_a_uuid_event_id_still_fits() {
    let id = "6f1c8a52-0000-4000-8000-000000000001";
    let len = longest_sent_property_id(id);
    let body = clearing_everything(id, &"x".repeat(len));
    let events = normalized(&body).expect("normalize sends the event");
    let e = &events[0];
    let merged = merge(None, e);
    let fitted = RecordLimit::new(MESSAGE_MAX_BYTES).fit(None, merged, &e.dedupe_key, 7);
    assert!(
        fitted.is_ok(),
        "an event normalize sent (property id of {len} bytes, UUID event id) stops the state writer: {}",
        shown(fitted.err(), len)
    );
}
