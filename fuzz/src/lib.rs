//! What every fuzz target checks, whatever bytes it is given: the parser of
//! one provider returns events or a precise error, never panics (libFuzzer
//! reports a panic as a crash), and every event it returns fits the Avro
//! schema (an event that does not encode would be dead-lettered as a schema
//! failure in production: a parser bug, so here it is a crash).

#![forbid(unsafe_code)]

use normalize::providers::{Limits, ProviderKind, RawContext, fluximmo_api, parse};
use schemas::{EventType, Lineage, PropertyEvent, Provider};

/// Parses `body` as `provider` would send it and encodes every event.
pub fn check(provider: ProviderKind, event_id: Option<&str>, body: &[u8]) {
    let context = RawContext {
        source: provider.as_str(),
        provider,
        event_id,
        received_at_ms: 1_700_000_000_000,
        topic: "webhooks.raw",
        partition: 0,
        offset: 0,
        limits: Limits::default(),
    };
    if let Ok(events) = parse(&context, body) {
        for event in &events {
            if let Err(error) = schemas::codec::encode_datum(event) {
                panic!("{provider}: a parsed event does not fit the schema: {error}\n{event:?}");
            }
        }
    }
}

/// Maps `body` as a Fluximmo API answer, by id and bulk, and encodes each
/// property's snapshot inside the event the enrichment stage would make.
pub fn check_fluximmo_api(body: &[u8]) {
    let limits = Limits::default();
    let by_id = fluximmo_api::parse_property_response(body, &limits).into_iter();
    let many = fluximmo_api::parse_many_response(body, &limits)
        .into_iter()
        .flatten();
    for property in by_id.chain(many) {
        let event = fetched_event(property);
        if let Err(error) = schemas::codec::encode_datum(&event) {
            panic!("fluximmo_api: a mapped snapshot does not fit the schema: {error}\n{event:?}");
        }
    }
}

/// A full-snapshot event holding `property`.
fn fetched_event(property: fluximmo_api::FetchedProperty) -> PropertyEvent {
    PropertyEvent {
        event_id: property.flx_id.clone(),
        dedupe_key: format!("fluximmo:{}", property.flx_id),
        source: "fluximmo".to_string(),
        provider: Provider::Fluximmo,
        property_key: format!("fluximmo:{}", property.flx_id),
        provider_property_id: property.flx_id,
        event_type: EventType::Updated,
        occurred_at: property.last_updated_at.unwrap_or(1_700_000_000_000),
        received_at: 1_700_000_000_000,
        alert_id: None,
        provider_event_type: None,
        change: None,
        property: Some(property.snapshot),
        lineage: Lineage {
            raw_topic: "webhooks.raw".to_string(),
            raw_partition: 0,
            raw_offset: 0,
            normalizer_version: "fuzz".to_string(),
        },
        cleared_fields: None,
        occurred_at_claimed: None,
        unchanged: None,
    }
}
