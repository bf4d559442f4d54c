//! breaker-s18: the enriched event appends `:api` to its reference's event
//! id and dedupe key (`enrich::event::enriched`), a path that builds a
//! `PropertyEvent` without normalize's event-id bound. Could it carry an
//! id over `MAX_EVENT_ID_BYTES`? Only if a Fluximmo reference's id came
//! within 4 bytes of the bound, and Fluximmo ids are always body-hash
//! position ids (`<64 hex>:<list>.<item>.<index>`, under 100 bytes), never
//! a sender's (not even a long `event-id` header). No defect found: this
//! guards it, on the largest position a record may hold
//! (`max_events_per_record`).

use normalize::outcome::{self, Origin, RawHeaders, Rules};
use normalize::providers::fluximmo_api::parse_property_response;
use normalize::providers::{Limits, MAX_EVENT_ID_BYTES};

#[test]
fn breaker_s18_an_enriched_event_id_stays_within_the_bound() {
    let limits = Limits::default();
    let ids: Vec<String> = (0..limits.max_events_per_record)
        .map(|i| format!("\"p{i}\""))
        .collect();
    let body = format!(
        r#"{{"data":{{"created":[],"updated":[{{"properties":[{}],"alert_id":"a"}}]}}}}"#,
        ids.join(",")
    );
    let header = "h".repeat(16_000);
    let raw = RawHeaders {
        source: Some("fluximmo"),
        provider: Some("fluximmo"),
        event_id: Some(&header),
        received_at: Some("1767225600000"),
        timestamp_ms: None,
    };
    let rules = Rules {
        limits,
        normalizer_version: None,
        normalized_topic: "properties.normalized".into(),
        message_max_bytes: 2_097_152,
        max_future_skew_ms: 3_600_000,
    };
    let origin = Origin {
        topic: "webhooks.raw",
        partition: 0,
        offset: 1,
    };
    let events = outcome::parse(&raw, body.as_bytes(), origin, &rules).expect("parses");
    let reference = events.last().expect("an event");
    assert!(enrich::event::wants_enrichment(reference));
    let answer = format!(
        r#"{{"data": {{"flxId": "{}", "price": {{"latest": {{"value": 1}}}}}}}}"#,
        reference.provider_property_id
    );
    let fetched = parse_property_response(answer.as_bytes(), &limits).expect("maps");
    let enriched = enrich::event::enriched(reference, fetched).expect("enriches");
    assert!(
        enriched.event_id.len() <= MAX_EVENT_ID_BYTES,
        "{}",
        enriched.event_id
    );
    assert_eq!(
        enriched.dedupe_key,
        format!("fluximmo:{}", enriched.event_id)
    );
}
