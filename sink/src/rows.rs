//! Row mapping: a decoded `PropertyEvent` and where it was read from, to
//! the values of one `property_events` row; and a property's merged state
//! ([`crate::fold`]) to the values of its `properties` row
//! ([`property_row`]). Pure; the SQL lives in [`crate::statements`].

use schemas::{PropertyEvent, PropertyState, Provider};

use crate::fold::ChangedProperty;

/// Where an event was consumed from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Position {
    /// Topic.
    pub topic: String,
    /// Partition.
    pub partition: i32,
    /// Offset.
    pub offset: i64,
}

/// One event to write, with its position.
#[derive(Debug, Clone)]
pub struct EventToWrite {
    /// The decoded event.
    pub event: PropertyEvent,
    /// Where it was read.
    pub position: Position,
}

/// A normalizer version's sort key (the same key as the SQL
/// `normalizer_version_key`, migration `0006`).
pub use property_state::version_key;

/// One event per dedupe key, in first-seen order: a correction in the same
/// batch as the event it corrects replaces it when its normalizer version
/// is newer (then the one read last wins).
pub fn one_per_dedupe_key(events: &[EventToWrite]) -> Vec<&EventToWrite> {
    let mut index: std::collections::HashMap<&str, usize> = std::collections::HashMap::new();
    let mut out: Vec<&EventToWrite> = Vec::with_capacity(events.len());
    let order = |e: &EventToWrite| {
        (
            version_key(&e.event.lineage.normalizer_version),
            e.position.offset,
        )
    };
    for item in events {
        match index.get(item.event.dedupe_key.as_str()) {
            Some(&i) => {
                if let Some(kept) = out.get_mut(i)
                    && order(item) > order(kept)
                {
                    *kept = item;
                }
            }
            None => {
                let _ = index.insert(item.event.dedupe_key.as_str(), out.len());
                out.push(item);
            }
        }
    }
    out
}

/// The provider as stored: its [`common::ProviderKind`] name (as configured
/// in ingest), or `unknown` for a symbol this reader does not know.
pub fn provider_name(provider: Provider) -> &'static str {
    provider
        .kind()
        .map_or("unknown", common::ProviderKind::as_str)
}

/// The whole event as the `jsonb` document in `property_events.event`.
pub fn event_json(event: &PropertyEvent) -> String {
    serde_json::to_string(event).unwrap_or_else(|_| "{}".to_string())
}

/// Milliseconds to the seconds PostgreSQL's `to_timestamp` takes.
pub fn seconds(ms: i64) -> f64 {
    // Millisecond timestamps fit f64 exactly up to year 285,000.
    #[allow(clippy::cast_precision_loss)]
    let s = ms as f64 / 1000.0;
    s
}

/// The values of one `properties` row (times in Unix ms): every column is
/// derived from the property's state, its `state` column being that state.
#[derive(Debug, Clone, PartialEq)]
pub struct PropertyRow {
    /// `property_key`.
    pub property_key: String,
    /// `source`.
    pub source: String,
    /// `provider`, as [`provider_name`].
    pub provider: &'static str,
    /// `provider_property_id`.
    pub provider_property_id: String,
    /// `transaction_type`, the enum's symbol.
    pub transaction_type: String,
    /// `property_type`, the enum's symbol.
    pub property_type: String,
    /// `provider_transaction_type`.
    pub provider_transaction_type: Option<String>,
    /// `provider_property_type`.
    pub provider_property_type: Option<String>,
    /// `title`.
    pub title: Option<String>,
    /// `price`.
    pub price: Option<f64>,
    /// `currency`.
    pub currency: Option<String>,
    /// `price_per_m2`.
    pub price_per_m2: Option<f64>,
    /// `surface_m2`.
    pub surface_m2: Option<f64>,
    /// `rooms`.
    pub rooms: Option<i32>,
    /// `bedrooms`.
    pub bedrooms: Option<i32>,
    /// `bathrooms`.
    pub bathrooms: Option<i32>,
    /// `address`.
    pub address: Option<String>,
    /// `city`.
    pub city: Option<String>,
    /// `postcode`.
    pub postcode: Option<String>,
    /// `department`.
    pub department: Option<String>,
    /// `country`.
    pub country: Option<String>,
    /// `latitude`.
    pub latitude: Option<f64>,
    /// `longitude`.
    pub longitude: Option<f64>,
    /// `status`.
    pub status: Option<String>,
    /// `sold_price`.
    pub sold_price: Option<f64>,
    /// `sold_at`.
    pub sold_at: Option<i64>,
    /// `first_seen_at`: the provider's first-seen time, else the earliest
    /// contributing event's.
    pub first_seen_at: Option<i64>,
    /// `last_seen_at`: the provider's last-seen time, else the last
    /// event's.
    pub last_seen_at: Option<i64>,
    /// `last_event_type`: the last event that changed the state.
    pub last_event_type: Option<&'static str>,
    /// `last_event_at`.
    pub last_event_at: Option<i64>,
    /// `last_event_partition`.
    pub last_event_partition: Option<i32>,
    /// `last_event_offset`.
    pub last_event_offset: Option<i64>,
    /// `last_dedupe_key`.
    pub last_dedupe_key: Option<String>,
    /// `last_normalizer_version`.
    pub last_normalizer_version: Option<String>,
    /// `last_changed_fields`: the snapshot fields the last event set.
    pub last_changed_fields: Vec<String>,
    /// `contributing_events`.
    pub contributing_events: i32,
    /// `snapshot`: the merged snapshot, as JSON.
    pub snapshot: String,
    /// `state`: the whole `PropertyState`, as JSON.
    pub state: String,
    /// Whether the row exists (updated) or not yet (inserted).
    pub existed: bool,
}

/// The `properties` row of a changed property.
pub fn property_row(changed: &ChangedProperty) -> Result<PropertyRow, serde_json::Error> {
    let state = &changed.state;
    let p = &state.property;
    let l = &p.location;
    let last = state.last_event.as_ref();
    Ok(PropertyRow {
        property_key: state.property_key.clone(),
        source: state.source.clone(),
        provider: provider_name(state.provider),
        provider_property_id: state.provider_property_id.clone(),
        transaction_type: enum_text(&p.transaction_type),
        property_type: enum_text(&p.property_type),
        provider_transaction_type: p.provider_transaction_type.clone(),
        provider_property_type: p.provider_property_type.clone(),
        title: p.title.clone(),
        price: p.price,
        currency: p.currency.clone(),
        price_per_m2: p.price_per_m2,
        surface_m2: p.surface_m2,
        rooms: p.rooms,
        bedrooms: p.bedrooms,
        bathrooms: p.bathrooms,
        address: l.address.clone(),
        city: l.city.clone(),
        postcode: l.postcode.clone(),
        department: l.department.clone(),
        country: l.country.clone(),
        latitude: l.latitude,
        longitude: l.longitude,
        status: p.status.clone(),
        sold_price: p.sold_price,
        sold_at: p.sold_at,
        first_seen_at: p
            .first_seen_at
            .or_else(|| state.contributors.iter().map(|c| c.occurred_at).min()),
        last_seen_at: p.last_seen_at.or_else(|| last.map(|c| c.occurred_at)),
        last_event_type: last.map(|c| c.event_type.as_str()),
        last_event_at: last.map(|c| c.occurred_at),
        last_event_partition: changed.last_position.map(|(partition, _)| partition),
        last_event_offset: changed.last_position.map(|(_, offset)| offset),
        last_dedupe_key: last.map(|c| c.dedupe_key.clone()),
        last_normalizer_version: last.map(|c| c.normalizer_version.clone()),
        last_changed_fields: state.last_changed_fields.clone(),
        contributing_events: state.contributing_events,
        snapshot: serde_json::to_string(p)?,
        state: state_json(state)?,
        existed: changed.existed,
    })
}

/// The state as the `jsonb` document stored in `properties.state` (what
/// [`crate::stored::StoredRow::of`] reads back).
pub fn state_json(state: &PropertyState) -> Result<String, serde_json::Error> {
    serde_json::to_string(state)
}

/// An enum's symbol, as stored in a text column.
fn enum_text<T: serde::Serialize>(value: &T) -> String {
    serde_json::to_value(value)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_else(|| "unknown".to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use schemas::{EventType, Lineage, PropertySnapshot, PropertyType, TransactionType};

    fn event() -> PropertyEvent {
        let mut p = PropertySnapshot::empty();
        p.transaction_type = TransactionType::Sale;
        p.property_type = PropertyType::Apartment;
        p.price = Some(1.0);
        PropertyEvent {
            event_id: "e".into(),
            dedupe_key: "s:e".into(),
            source: "s".into(),
            provider: Provider::StreamEstate,
            provider_property_id: "p".into(),
            property_key: "s:p".into(),
            event_type: EventType::Created,
            occurred_at: 1500,
            received_at: 2000,
            alert_id: None,
            provider_event_type: None,
            change: None,
            property: Some(p),
            lineage: Lineage {
                raw_topic: "t".into(),
                raw_partition: 0,
                raw_offset: 0,
                normalizer_version: "v".into(),
            },
            cleared_fields: None,
            occurred_at_claimed: None,
            unchanged: None,
        }
    }

    #[test]
    fn maps_names_and_documents() {
        let e = event();
        assert_eq!(provider_name(e.provider), "stream-estate");
        assert_eq!(provider_name(Provider::Unknown), "unknown");
        assert!(event_json(&e).contains("\"dedupe_key\":\"s:e\""));
        assert!((seconds(1500) - 1.5).abs() < f64::EPSILON);
    }

    fn at(key: &str, occurred_at: i64, offset: i64, snapshot: bool) -> EventToWrite {
        let mut e = event();
        e.property_key = key.into();
        e.occurred_at = occurred_at;
        if !snapshot {
            e.property = None;
        }
        EventToWrite {
            event: e,
            position: Position {
                topic: "t".into(),
                partition: 0,
                offset,
            },
        }
    }

    fn changed(events: &[EventToWrite]) -> ChangedProperty {
        let folded = crate::fold::fold(events, &std::collections::HashMap::new());
        folded
            .changed
            .into_iter()
            .next()
            .expect("one changed property")
    }

    #[test]
    fn a_row_is_the_merged_state_not_the_last_snapshot() {
        let created = at("s:p", 1_000, 1, true);
        let mut sold = at("s:p", 3_000, 2, true);
        sold.event.event_type = EventType::Sold;
        sold.event.dedupe_key = "s:sold".into();
        let mut sale = PropertySnapshot::empty();
        sale.sold_price = Some(0.9);
        sale.sold_at = Some(2_500);
        sale.provider_transaction_type = Some("viager".into());
        sold.event.property = Some(sale);
        let row = property_row(&changed(&[created, sold])).expect("a row");
        assert_eq!(row.property_key, "s:p");
        assert_eq!(row.provider, "stream-estate");
        assert_eq!(
            (row.transaction_type.as_str(), row.property_type.as_str()),
            ("sale", "apartment")
        );
        assert_eq!(row.price, Some(1.0), "kept from the creation");
        assert_eq!(row.status.as_deref(), Some("sold"));
        assert_eq!((row.sold_price, row.sold_at), (Some(0.9), Some(2_500)));
        assert_eq!(row.provider_transaction_type.as_deref(), Some("viager"));
        assert_eq!(row.last_event_type, Some("sold"));
        assert_eq!(row.last_event_at, Some(3_000));
        assert_eq!(
            (row.last_event_partition, row.last_event_offset),
            (Some(0), Some(2))
        );
        assert_eq!(row.last_dedupe_key.as_deref(), Some("s:sold"));
        assert_eq!(row.last_normalizer_version.as_deref(), Some("v"));
        assert_eq!(
            row.last_changed_fields,
            [
                "provider_transaction_type",
                "status",
                "sold_price",
                "sold_at"
            ]
        );
        assert_eq!(row.contributing_events, 2);
        assert_eq!(
            (row.first_seen_at, row.last_seen_at),
            (Some(1_000), Some(3_000))
        );
        let snapshot: serde_json::Value = serde_json::from_str(&row.snapshot).expect("JSON");
        assert_eq!(snapshot["price"], 1.0);
        assert_eq!(snapshot["sold_price"], 0.9);
        let state: PropertyState = serde_json::from_str(&row.state).expect("the state reads back");
        assert_eq!(state.property.status.as_deref(), Some("sold"));
        assert!(!row.existed);
    }

    #[test]
    fn a_property_known_only_by_reference_has_no_last_event() {
        let mut reference = at("s:p", 1_000, 1, false);
        reference.event.event_type = EventType::ReferenceOnly;
        let row = property_row(&changed(&[reference])).expect("a row");
        assert_eq!(
            (row.transaction_type.as_str(), row.property_type.as_str()),
            ("unknown", "unknown")
        );
        assert_eq!(row.last_event_type, None);
        assert_eq!(row.last_event_at, None);
        assert_eq!(
            (row.last_event_partition, row.last_event_offset),
            (None, None)
        );
        assert_eq!((row.first_seen_at, row.last_seen_at), (None, None));
        assert!(row.last_changed_fields.is_empty());
        assert_eq!(row.contributing_events, 0);
    }

    #[test]
    fn the_provider_times_win_over_the_event_times() {
        let mut e = at("s:p", 1_000, 1, true);
        if let Some(p) = e.event.property.as_mut() {
            p.first_seen_at = Some(10);
            p.last_seen_at = Some(20);
        }
        let row = property_row(&changed(&[e])).expect("a row");
        assert_eq!((row.first_seen_at, row.last_seen_at), (Some(10), Some(20)));
    }

    #[test]
    fn a_batch_keeps_one_event_per_dedupe_key_the_newest_version_winning() {
        let versioned = |key: &str, version: &str, offset: i64| {
            let mut item = at("s:p", 1, offset, true);
            item.event.dedupe_key = key.into();
            item.event.lineage.normalizer_version = version.into();
            item
        };
        let batch = vec![
            versioned("a", "0.9.0", 1),
            versioned("b", "0.9.0", 2),
            versioned("a", "0.10.0", 3),
            versioned("a", "0.9.5", 4),
        ];
        let kept: Vec<(&str, &str)> = one_per_dedupe_key(&batch)
            .iter()
            .map(|e| {
                (
                    e.event.dedupe_key.as_str(),
                    e.event.lineage.normalizer_version.as_str(),
                )
            })
            .collect();
        assert_eq!(kept, [("a", "0.10.0"), ("b", "0.9.0")]);
    }
}
