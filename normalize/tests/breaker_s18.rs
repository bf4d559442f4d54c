//! breaker-s18: attacks on the event-id bound
//! (`normalize::providers::{MAX_EVENT_ID_BYTES, bounded_event_id}`): an id
//! longer than 200 bytes becomes `sha256:<hex digest>` in the event and its
//! dedupe key, "still one id per event and the same on every redelivery"
//! (README, "What each provider yields"). Every event here is made by
//! normalize's sans-IO core (`normalize::outcome::parse`), the path both the
//! live loop and replay take (`Normalizer::outputs`); no broker is needed.

use normalize::outcome::{self, Origin, RawHeaders, Rules};
use normalize::providers::{Limits, MAX_EVENT_ID_BYTES, bounded_event_id};
use schemas::PropertyEvent;

fn rules() -> Rules {
    Rules {
        limits: Limits::default(),
        normalizer_version: None,
        normalized_topic: "properties.normalized".into(),
        message_max_bytes: 2_097_152,
        max_future_skew_ms: 3_600_000,
    }
}

fn origin(partition: i32, offset: i64) -> Origin<'static> {
    Origin {
        topic: "webhooks.raw",
        partition,
        offset,
    }
}

/// The events normalize makes of one raw record of `provider` (source of
/// the same name) with event-id header `event_id`, read at `origin`.
fn events(
    provider: &str,
    event_id: Option<&str>,
    body: &[u8],
    origin: Origin<'_>,
) -> Vec<PropertyEvent> {
    let raw = RawHeaders {
        source: Some(provider),
        provider: Some(provider),
        event_id,
        received_at: Some("1767225600000"),
        timestamp_ms: None,
    };
    outcome::parse(&raw, body, origin, &rules()).expect("parses")
}

/// A generic envelope with id `id` (JSON-escaped already) for property
/// `property_id` at price `price`.
fn generic(id: &str, property_id: &str, price: u32) -> Vec<u8> {
    format!(
        r#"{{"id":"{id}","type":"property.updated","created":"2026-01-01T00:00:00Z","data":{{"property":{{"id":"{property_id}","price":{price}}}}}}}"#
    )
    .into_bytes()
}

fn one(events: Vec<PropertyEvent>) -> PropertyEvent {
    assert_eq!(events.len(), 1);
    events.into_iter().next().expect("one event")
}

/// Attack: the digest form shares the namespace of the ids senders choose.
/// A sender's id that is itself `sha256:<hex>` (71 bytes, under the bound)
/// is kept as sent, so it is the same dedupe key as the digest of another
/// event's long id from the same source: two events (here two price
/// updates of one property, so one partition of `properties.normalized`)
/// share one dedupe key, and dedupe drops the second as a redelivery of
/// the first (a silent loss). Before the bound the two keys differed. A
/// digest's prefix only keeps it apart from senders' ids if no kept id can
/// carry that prefix (e.g. an id starting with `sha256:` is digested too).
///
/// Expected: two distinct events keep distinct dedupe keys ("still one id
/// per event"). Fixed: an id that starts with `sha256:` is digested too.
#[test]
fn breaker_s18_an_id_shaped_like_a_digest_is_not_another_events_key() {
    let long = format!("evt-{}", "a".repeat(300));
    let digest = bounded_event_id(long.clone());
    assert!(digest.len() <= MAX_EVENT_ID_BYTES);
    let first = one(events(
        "generic",
        None,
        &generic(&long, "p1", 100),
        origin(0, 1),
    ));
    let second = one(events(
        "generic",
        None,
        &generic(&digest, "p1", 200),
        origin(0, 2),
    ));
    assert_eq!(first.property_key, second.property_key, "one partition");
    assert_ne!(first.property, second.property, "two events");
    assert_ne!(
        first.dedupe_key, second.dedupe_key,
        "two events (prices 100 and 200) share one dedupe key; dedupe drops one"
    );
}

/// Ids at the bound: exactly 200 bytes is kept, 201 is digested, counted in
/// bytes (multi-byte UTF-8 around the bound), in the event id and its
/// dedupe key alike. No defect found: this guards the boundary.
#[test]
fn breaker_s18_ids_at_the_bound_are_counted_in_bytes() {
    let cases = [
        ("e".repeat(MAX_EVENT_ID_BYTES), true),
        ("e".repeat(MAX_EVENT_ID_BYTES + 1), false),
        ("é".repeat(MAX_EVENT_ID_BYTES / 2), true),
        (format!("{}a", "é".repeat(MAX_EVENT_ID_BYTES / 2)), false),
        (format!("{}€", "e".repeat(MAX_EVENT_ID_BYTES - 2)), false),
    ];
    for (id, kept) in cases {
        let e = one(events(
            "generic",
            None,
            &generic(&id, "p1", 1),
            origin(0, 1),
        ));
        assert_eq!(e.event_id == id, kept, "{} bytes", id.len());
        assert!(e.event_id.len() <= MAX_EVENT_ID_BYTES);
        assert_eq!(e.dedupe_key, format!("generic:{}", e.event_id));
    }
}

/// Ids holding NUL characters around the bound: the bound is applied to
/// the id as sent, NULs are stripped afterwards (`text_sanity`). The result
/// is still bounded, has no NUL, agrees with its dedupe key, and is the
/// same on a redelivery and on a replay (another offset, the same body).
/// No defect found.
#[test]
fn breaker_s18_nul_around_the_bound_stays_bounded_and_stable() {
    let nul = "\\u0000";
    let ids = [
        format!("{}{nul}", "a".repeat(MAX_EVENT_ID_BYTES - 1)),
        format!("{}{nul}", "a".repeat(MAX_EVENT_ID_BYTES)),
        format!("{nul}{}", "a".repeat(MAX_EVENT_ID_BYTES)),
        nul.repeat(MAX_EVENT_ID_BYTES + 1),
    ];
    for id in ids {
        let body = generic(&id, "p1", 1);
        let first = one(events("generic", None, &body, origin(0, 1)));
        let replayed = one(events("generic", None, &body, origin(3, 900)));
        assert!(first.event_id.len() <= MAX_EVENT_ID_BYTES, "{id}");
        assert!(!first.event_id.contains('\0') && !first.dedupe_key.contains('\0'));
        assert_eq!(first.dedupe_key, format!("generic:{}", first.event_id));
        assert_eq!(first.dedupe_key, replayed.dedupe_key, "{id}");
    }
}

/// The event-id header (Immoteur, Standard Webhooks), as long as ingest's
/// `max_header_bytes` (16 KiB) lets it be, is bounded too and stable.
/// No defect found.
#[test]
fn breaker_s18_event_id_headers_are_bounded() {
    let header = "h".repeat(16 * 1024 - 100);
    let fixture = std::fs::read(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../tests/fixtures/immoteur/property-notification.json"),
    )
    .expect("fixture");
    for (provider, body) in [
        ("immoteur", fixture.clone()),
        (
            "standard-webhooks",
            br#"{"type":"property.updated","timestamp":"2024-05-01T12:00:00Z","data":{"property":{"id":"p1"}}}"#.to_vec(),
        ),
    ] {
        let a = one(events(provider, Some(&header), &body, origin(0, 1)));
        let b = one(events(provider, Some(&header), &body, origin(1, 2)));
        assert_eq!(a.event_id, bounded_event_id(header.clone()), "{provider}");
        assert_eq!(a.dedupe_key, format!("{provider}:{}", a.event_id));
        assert_eq!(a.dedupe_key, b.dedupe_key);
    }
}
