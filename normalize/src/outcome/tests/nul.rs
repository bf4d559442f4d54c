//! Hostile NUL characters against the text sanity `parse` applies
//! (breaker-s9): every provider's body with NULs in its texts, NULs from
//! headers, a double-escaped backslash, and numbers JSON cannot write.

use schemas::PropertyEvent;
use serde_json::Value;

use super::{origin, rules};
use crate::outcome::{RawHeaders, parse};
use crate::providers::testing::fixture;

fn headers(provider: &'static str) -> RawHeaders<'static> {
    RawHeaders {
        source: Some(provider),
        provider: Some(provider),
        ..super::generic()
    }
}

fn events(raw: &RawHeaders<'_>, body: &[u8]) -> Vec<PropertyEvent> {
    parse(raw, body, origin(), &rules()).unwrap_or_else(|r| panic!("{r:?}"))
}

/// Puts a NUL inside every text under a key a listing's words live in
/// (and every property id in a list named `properties`).
fn with_nuls(value: &mut Value, key: &str) {
    const TEXTS: [&str; 6] = [
        "title",
        "description",
        "address",
        "city",
        "alert_id",
        "properties",
    ];
    match value {
        Value::String(s) if TEXTS.contains(&key) && s.len() > 1 => s.insert(1, '\0'),
        Value::Array(items) => items.iter_mut().for_each(|v| with_nuls(v, key)),
        Value::Object(map) => map.iter_mut().for_each(|(k, v)| with_nuls(v, k)),
        _ => {}
    }
}

/// An event without what comes from the body's hash (the body differs).
fn content(mut e: PropertyEvent) -> PropertyEvent {
    e.event_id.clear();
    e.dedupe_key.clear();
    e
}

fn has_nul(e: &PropertyEvent) -> bool {
    serde_json::to_string(e).is_ok_and(|json| json.contains("\\u0000"))
}

/// For each provider's fixture, the same body with NULs in its texts gives
/// the same events (but for ids from the body's hash), with no NUL left.
#[test]
fn every_providers_body_with_nuls_gives_its_events_without_them() {
    for (provider, path) in [
        ("generic", "generic/property.created.json"),
        ("stream-estate", "stream-estate/ad.update.price.json"),
        ("immoteur", "immoteur/property-notification.json"),
        ("fluximmo", "fluximmo/webhook-properties.json"),
    ] {
        let body = fixture(path);
        let clean = events(&headers(provider), &body);
        let mut value: Value = serde_json::from_slice(&body).expect("a JSON fixture");
        with_nuls(&mut value, "");
        let dirty_body = serde_json::to_vec(&value).expect("JSON");
        assert!(
            dirty_body.windows(6).any(|w| w == b"\\u0000"),
            "{provider}: the body holds NULs"
        );
        let stripped = events(&headers(provider), &dirty_body);
        assert!(!stripped.iter().any(has_nul), "{provider}: a NUL is left");
        assert_eq!(
            stripped.into_iter().map(content).collect::<Vec<_>>(),
            clean.into_iter().map(content).collect::<Vec<_>>(),
            "{provider}"
        );
    }
}

/// `\\u0000` is an escaped backslash then the text `u0000`, no NUL: the
/// text keeps it verbatim.
#[test]
fn an_escaped_backslash_before_u0000_is_kept_verbatim() {
    let body = br#"{"id":"evt_1","type":"property.updated","created":"2023-06-15T10:30:00Z",
        "data":{"property":{"id":"p\\u0000","address":"a\\u0000b","price":1}}}"#;
    let got = events(&headers("generic"), body);
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].provider_property_id, "p\\u0000");
    assert_eq!(
        got[0]
            .property
            .as_ref()
            .and_then(|p| p.location.address.as_deref()),
        Some("a\\u0000b")
    );
}

/// `\U0000` is no JSON escape: the body is invalid JSON, dead-lettered.
#[test]
fn an_uppercase_escape_is_invalid_json() {
    let body = br#"{"id":"evt_1","type":"property.updated","created":"2023-06-15T10:30:00Z",
        "data":{"property":{"id":"p1","address":"a\U0000b","price":1}}}"#;
    let got = parse(&headers("generic"), body, origin(), &rules());
    assert_eq!(got.err().map(|r| r.kind), Some("invalid_json"));
}

/// NULs in the ids: the event id, dedupe key, property id and property key
/// lose them together, so the keys stay `<source>:<id>` of the ids.
#[test]
fn nuls_in_ids_leave_the_keys_consistent() {
    let body = br#"{"id":"evt\u0000_1","type":"property.updated","created":"2023-06-15T10:30:00Z",
        "data":{"property":{"id":"p\u00001","price":1}}}"#;
    let got = events(&headers("generic"), body);
    assert_eq!(got[0].event_id, "evt_1");
    assert_eq!(got[0].dedupe_key, "generic:evt_1");
    assert_eq!(got[0].provider_property_id, "p1");
    assert_eq!(got[0].property_key, "generic:p1");
}

/// A NUL in the `event-id` or `source` header (ingest takes them from
/// HTTP and its configuration, which cannot carry one, but any producer to
/// the raw topic can): the body has no escape, yet the event's ids, keys
/// and source must not keep the NUL PostgreSQL refuses.
#[test]
fn a_nul_in_a_header_is_removed() {
    let body = fixture("immoteur/property-notification.json");
    let by_id = RawHeaders {
        event_id: Some("hdr\0-1"),
        ..headers("immoteur")
    };
    let got = events(&by_id, &body);
    assert_eq!(got[0].event_id, "hdr-1", "the header is the event id");
    assert_eq!(got[0].dedupe_key, "immoteur:hdr-1");
    let by_source = RawHeaders {
        source: Some("immo\0teur"),
        ..headers("immoteur")
    };
    let got = events(&by_source, &body);
    assert_eq!(got[0].source, "immoteur");
    assert!(!got.iter().any(has_nul), "{:?}", got[0]);
}

/// A surface given in square feet so large its square metres overflow to
/// infinity: with a NUL elsewhere in the body, the serde round trip must
/// not turn that number into null (serde_json writes a non-finite number
/// as null), so the event is the same as without the NUL but for the text.
/// (Such a surface is itself dubious; that is the generic parser's matter.)
#[test]
fn the_round_trip_keeps_non_finite_numbers() {
    let body = |address: &str| {
        format!(
            r#"{{"id":"evt_1","type":"property.updated","created":"2023-06-15T10:30:00Z",
            "data":{{"property":{{"id":"p1","price":1,"squareFeet":1e308,"address":"{address}"}}}}}}"#
        )
    };
    let clean = events(&headers("generic"), body("ab").as_bytes());
    let dirty = events(&headers("generic"), body("a\\u0000b").as_bytes());
    let surface = |e: &[PropertyEvent]| e[0].property.as_ref().and_then(|p| p.surface_m2);
    assert_eq!(
        surface(&dirty).map(f64::to_bits),
        surface(&clean).map(f64::to_bits)
    );
    assert_eq!(dirty, clean);
}

/// The strip itself keeps every number, even those JSON cannot write (a
/// NaN, an infinity: the serde round trip it first was made them null)
/// and the extreme `i64`s.
#[test]
fn stripping_keeps_numbers_json_cannot_write() {
    let mut event = schemas::sample::price_change();
    event.occurred_at_claimed = Some(i64::MAX);
    if let Some(p) = event.property.as_mut() {
        p.title = Some("T\u{0}2".into());
        p.price_per_m2 = Some(f64::INFINITY);
        p.surface_m2 = Some(f64::NAN);
        p.sold_at = Some(i64::MIN);
    }
    let mut expected = event.clone();
    if let Some(p) = expected.property.as_mut() {
        p.title = Some("T2".into());
    }
    assert!(crate::text_sanity::strip_nul(&mut event));
    let (got, want) = (
        event.property.as_ref().expect("a snapshot"),
        expected.property.as_ref().expect("a snapshot"),
    );
    assert_eq!(got.title, want.title);
    assert_eq!(got.price_per_m2, Some(f64::INFINITY));
    assert!(got.surface_m2.is_some_and(f64::is_nan));
    assert_eq!(got.sold_at, Some(i64::MIN));
    assert_eq!(event.occurred_at_claimed, Some(i64::MAX));
}
