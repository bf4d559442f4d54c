//! One realistic `PropertyEvent`, for the crate's tests, its decode bench
//! and the docs: a price change carrying a full snapshot (energy class,
//! pictures, a station, price history and an advert), the sink's common
//! record.

use crate::{
    Advert, EnergyClass, EventType, FieldChange, Lineage, Location, PricePoint, PropertyEvent,
    PropertySnapshot, Provider, Station,
};

/// A price change with a full snapshot.
pub fn price_change() -> PropertyEvent {
    let mut property = PropertySnapshot::empty();
    property.price = Some(750_000.0);
    property.bedrooms = Some(2);
    property.surface_m2 = Some(111.48);
    property.location = Location {
        address: Some("123 Main St".into()),
        ..Location::default()
    };
    property.dpe_class = Some(EnergyClass::C);
    property.ges_value = Some(12.0);
    property.pictures = Some(vec!["https://img/1.jpg".into()]);
    property.stations = Some(vec![Station {
        name: "Jules Joffrin".into(),
        lines: vec!["Ligne 12".into()],
    }]);
    let history = vec![PricePoint {
        at: 1_686_825_000_000,
        price: 760_000.0,
    }];
    property.price_history = Some(history.clone());
    property.adverts = Some(vec![Advert {
        url: Some("https://example.fr/ad/1".into()),
        publisher_name: Some("Agence".into()),
        publisher_is_professional: Some(true),
        price_history: Some(history),
        ..Advert::default()
    }]);
    PropertyEvent {
        event_id: "evt_1".into(),
        dedupe_key: "generic:evt_1".into(),
        source: "generic".into(),
        provider: Provider::Generic,
        provider_property_id: "prop_1".into(),
        property_key: "generic:prop_1".into(),
        event_type: EventType::PriceChanged,
        occurred_at: 1_686_825_000_000,
        received_at: 1_686_825_001_000,
        alert_id: None,
        provider_event_type: Some("ad.update.price".into()),
        change: Some(FieldChange {
            field: "price".into(),
            old_value: Some("1".into()),
            new_value: None,
            percent: Some(-2.81),
            old_number: Some(1.0),
            new_number: None,
        }),
        property: Some(property),
        lineage: Lineage {
            raw_topic: "webhooks.raw".into(),
            raw_partition: 2,
            raw_offset: 42,
            normalizer_version: "0.1.0".into(),
        },
        cleared_fields: None,
        occurred_at_claimed: None,
        unchanged: None,
    }
}

/// [`price_change`] as one generic event of a property's history, for the
/// merge's and the state writer's tests: event id `id`, dedupe key
/// `generic:<id>`, at `occurred_at` (received 1 ms later), its full
/// snapshot and no field change.
pub fn snapshot_event(id: &str, occurred_at: i64) -> PropertyEvent {
    let mut e = price_change();
    e.event_id = id.into();
    e.dedupe_key = format!("generic:{id}");
    e.occurred_at = occurred_at;
    e.received_at = occurred_at + 1;
    e.change = None;
    e
}
