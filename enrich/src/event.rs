//! Which events the stage enriches, and the event an enrichment yields:
//! pure functions from a Fluximmo `reference_only` event (read from
//! `properties.events`) and the property the API returned
//! (`normalize::providers::fluximmo_api::FetchedProperty`) to a
//! full-snapshot `PropertyEvent` for `properties.normalized`.
//!
//! The enriched event is a function of the reference and the fetched
//! property only, so a crash that fetches again yields the same dedupe key
//! (`<reference's dedupe key>:api`) and dedupe drops the second copy:
//! - ids, source, provider, property key, alert id, provider event type,
//!   times and lineage are the reference's (its `occurred_at` is the
//!   webhook's arrival: Fluximmo's body carries no time, and a second fetch
//!   must not move the event in the property's history);
//! - `event_type` is `created` for an id of the webhook's `created` list,
//!   `updated` otherwise;
//! - the snapshot is the fetched property's; a field it does not know stays
//!   unknown (`None`), so the merge keeps what an earlier event set.

use normalize::providers::fluximmo_api::FetchedProperty;
use schemas::{EventType, PropertyEvent, Provider};

/// Appended to the reference's event id and dedupe key.
pub const ENRICHED_SUFFIX: &str = ":api";

/// Whether the stage fetches the property `event` names: a Fluximmo
/// reference without a snapshot (never an event the stage wrote itself).
pub fn wants_enrichment(event: &PropertyEvent) -> bool {
    event.provider == Provider::Fluximmo
        && event.event_type == EventType::ReferenceOnly
        && event.property.is_none()
        && !event.dedupe_key.ends_with(ENRICHED_SUFFIX)
}

/// Why a fetched property cannot enrich a reference.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mismatch {
    /// The API answered with another property than the one asked for.
    OtherProperty {
        /// The id the reference names.
        asked: String,
        /// The `flxId` the answer holds.
        got: String,
    },
}

impl std::fmt::Display for Mismatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::OtherProperty { asked, got } => write!(
                f,
                "the API answered property {got:?} for {asked:?}: not the property the webhook names"
            ),
        }
    }
}

/// The full-snapshot event of `reference` with `fetched`.
pub fn enriched(
    reference: &PropertyEvent,
    fetched: FetchedProperty,
) -> Result<PropertyEvent, Mismatch> {
    if fetched.flx_id != reference.provider_property_id {
        return Err(Mismatch::OtherProperty {
            asked: reference.provider_property_id.clone(),
            got: fetched.flx_id,
        });
    }
    let event_type = if reference.provider_event_type.as_deref() == Some("created") {
        EventType::Created
    } else {
        EventType::Updated
    };
    Ok(PropertyEvent {
        event_id: format!("{}{ENRICHED_SUFFIX}", reference.event_id),
        dedupe_key: format!("{}{ENRICHED_SUFFIX}", reference.dedupe_key),
        event_type,
        property: Some(fetched.snapshot),
        change: None,
        cleared_fields: None,
        unchanged: None,
        ..reference.clone()
    })
}

#[cfg(test)]
mod tests {
    use normalize::providers::Limits;
    use normalize::providers::fluximmo_api::parse_property_response;

    use super::*;

    fn reference(list: &str) -> PropertyEvent {
        let mut event = schemas::sample::price_change();
        event.provider = Provider::Fluximmo;
        event.event_type = EventType::ReferenceOnly;
        event.property = None;
        event.change = None;
        event.provider_property_id = "flx-1".into();
        event.property_key = "fluximmo:flx-1".into();
        event.event_id = "h1.created.0.0".into();
        event.dedupe_key = "fluximmo:h1.created.0.0".into();
        event.provider_event_type = Some(list.into());
        event.alert_id = Some("alert-7".into());
        event
    }

    fn fetched(flx_id: &str) -> FetchedProperty {
        let body = format!(
            r#"{{"data": {{"flxId": "{flx_id}", "price": {{"latest": {{"value": 250000}}}},
               "location": {{"city": "Lyon"}}}}}}"#
        );
        parse_property_response(body.as_bytes(), &Limits::default()).expect("maps")
    }

    #[test]
    fn only_fluximmo_references_without_a_snapshot_are_enriched() {
        let plain = reference("created");
        assert!(wants_enrichment(&plain));
        let mut other = plain.clone();
        other.provider = Provider::Generic;
        assert!(!wants_enrichment(&other));
        let mut created = plain.clone();
        created.event_type = EventType::Created;
        assert!(!wants_enrichment(&created));
        let ours = enriched(&plain, fetched("flx-1")).expect("enriches");
        assert!(!wants_enrichment(&ours), "never enriches its own output");
        let mut looped = ours;
        looped.event_type = EventType::ReferenceOnly;
        looped.property = None;
        assert!(!wants_enrichment(&looped), "its dedupe key says it is ours");
    }

    #[test]
    fn the_enriched_event_derives_everything_from_the_reference_and_the_answer() {
        let reference = reference("created");
        let event = enriched(&reference, fetched("flx-1")).expect("enriches");
        assert_eq!(event.dedupe_key, "fluximmo:h1.created.0.0:api");
        assert_eq!(event.event_id, "h1.created.0.0:api");
        assert_eq!(event.event_type, EventType::Created);
        assert_eq!(event.property_key, reference.property_key);
        assert_eq!(event.alert_id.as_deref(), Some("alert-7"));
        assert_eq!(event.occurred_at, reference.occurred_at);
        assert_eq!(event.lineage, reference.lineage);
        let snapshot = event.property.as_ref().expect("a snapshot");
        assert_eq!(snapshot.price, Some(250_000.0));
        assert_eq!(snapshot.location.city.as_deref(), Some("Lyon"));
        assert_eq!(
            enriched(&reference, fetched("flx-1")),
            Ok(event),
            "a second fetch of the same answer yields the same event"
        );
        let updated = enriched(&self::reference("updated"), fetched("flx-1")).expect("enriches");
        assert_eq!(updated.event_type, EventType::Updated);
    }

    #[test]
    fn an_answer_for_another_property_is_refused() {
        let error = enriched(&reference("created"), fetched("flx-2")).expect_err("mismatch");
        assert!(error.to_string().contains("flx-2"), "{error}");
    }
}
