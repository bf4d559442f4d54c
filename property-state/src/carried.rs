//! What one event says about its property: the fields it carries and
//! their values, including what its type implies (a `sold` event makes the
//! status `sold` even when the provider sent no status).

use schemas::{EventType, PropertyEvent, PropertySnapshot};

use crate::fields::{FIELDS, Field, field};

/// The fields an event carries, with the snapshot holding their values.
#[derive(Debug)]
pub struct Carried {
    /// The values (fields not carried are empty).
    pub snapshot: PropertySnapshot,
    /// The carried fields, in the schema's order.
    pub fields: Vec<&'static Field>,
}

/// The fields `event` carries: the known fields of its snapshot, the
/// fields it lists in `cleared_fields` (empty), and the status its type
/// implies when the snapshot has none. An event marked `unchanged` (the
/// provider says nothing changed) carries nothing.
pub fn carried(event: &PropertyEvent) -> Carried {
    if event.unchanged == Some(true) {
        return Carried {
            snapshot: PropertySnapshot::empty(),
            fields: Vec::new(),
        };
    }
    let mut snapshot = event
        .property
        .clone()
        .unwrap_or_else(PropertySnapshot::empty);
    let cleared = event.cleared_fields.as_deref().unwrap_or_default();
    for path in cleared {
        if let Some(f) = field(path) {
            f.clear(&mut snapshot);
        }
    }
    if snapshot.status.is_none()
        && let Some(status) = implied_status(event.event_type)
        && !cleared.iter().any(|p| p == "status")
    {
        snapshot.status = Some(status.to_string());
    }
    let fields = FIELDS
        .iter()
        .filter(|f| f.is_known(&snapshot) || cleared.iter().any(|p| p == f.path))
        .collect();
    Carried { snapshot, fields }
}

/// The status an event type implies.
fn implied_status(event_type: EventType) -> Option<&'static str> {
    match event_type {
        EventType::Sold => Some("sold"),
        EventType::Expired => Some("expired"),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn paths(c: &Carried) -> Vec<&str> {
        c.fields.iter().map(|f| f.path).collect()
    }

    #[test]
    fn a_partial_event_carries_only_its_known_fields() {
        let mut event = schemas::sample::price_change();
        let mut snapshot = PropertySnapshot::empty();
        snapshot.price = Some(1.0);
        snapshot.location.city = Some("Lyon".into());
        event.property = Some(snapshot);
        assert_eq!(paths(&carried(&event)), ["price", "location.city"]);
    }

    #[test]
    fn a_cleared_field_is_carried_empty() {
        let mut event = schemas::sample::price_change();
        event.cleared_fields = Some(vec!["bedrooms".into(), "no.such.field".into()]);
        let c = carried(&event);
        assert!(paths(&c).contains(&"bedrooms"));
        assert_eq!(c.snapshot.bedrooms, None);
    }

    #[test]
    fn a_sale_without_a_status_implies_sold() {
        let mut event = schemas::sample::price_change();
        event.event_type = EventType::Sold;
        event.property = None;
        let c = carried(&event);
        assert_eq!(paths(&c), ["status"]);
        assert_eq!(c.snapshot.status.as_deref(), Some("sold"));
    }

    #[test]
    fn a_reference_carries_nothing() {
        let mut event = schemas::sample::price_change();
        event.event_type = EventType::ReferenceOnly;
        event.property = None;
        assert!(carried(&event).fields.is_empty());
    }
}
