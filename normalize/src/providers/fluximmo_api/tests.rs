use schemas::{EnergyClass, EventType, PropertyEvent, PropertyType, Provider, TransactionType};
use serde_json::{Value, json};

use super::*;

mod hostile;
use crate::providers::RawContext;
use crate::providers::event::new_event;
use crate::providers::testing::{assert_golden_json, context, fixture};

pub(super) const FIXTURE: &str = "fluximmo-api/property-by-id.json";

pub(super) fn fixture_value() -> Value {
    serde_json::from_slice(&fixture(FIXTURE)).expect("fixture")
}

/// The fixture with `edit` applied to its `PropertyDto`.
pub(super) fn with(edit: impl FnOnce(&mut Value)) -> Vec<u8> {
    let mut value = fixture_value();
    edit(&mut value["data"]);
    serde_json::to_vec(&value).expect("serializes")
}

/// A bulk answer of `dtos`.
pub(super) fn bulk(dtos: Vec<Value>) -> Vec<u8> {
    serde_json::to_vec(&json!({ "data": dtos })).expect("serializes")
}

pub(super) fn remove(value: &mut Value, key: &str) {
    let _ = value.as_object_mut().and_then(|o| o.remove(key));
}

fn by_id(body: &[u8]) -> PropertySnapshot {
    parse_property_response(body, &Limits::default())
        .expect("parses")
        .snapshot
}

/// A fetched property as the event the stage will make of it, so that the
/// hostile cases also check that the snapshot fits the Avro schema.
fn event(context: &RawContext<'_>, property: FetchedProperty) -> PropertyEvent {
    let occurred_at = property.last_updated_at.unwrap_or(context.received_at_ms);
    let mut event = new_event(
        context,
        Provider::Fluximmo,
        format!("fetched-{}", property.flx_id),
        property.flx_id,
        EventType::Updated,
        occurred_at,
    );
    event.property = Some(property.snapshot);
    event
}

pub(super) fn by_id_events(
    context: &RawContext<'_>,
    body: &[u8],
) -> Result<Vec<PropertyEvent>, ParseError> {
    parse_property_response(body, &context.limits).map(|p| vec![event(context, p)])
}

pub(super) fn many_events(
    context: &RawContext<'_>,
    body: &[u8],
) -> Result<Vec<PropertyEvent>, ParseError> {
    let fetched = parse_many_response(body, &context.limits)?;
    Ok(fetched.into_iter().map(|p| event(context, p)).collect())
}

/// A body read both as a by-id and as a bulk answer, as events (for
/// [`crate::providers::fuzz_smoke`]).
pub(crate) fn answer_events(
    context: &RawContext<'_>,
    body: &[u8],
) -> Result<Vec<PropertyEvent>, ParseError> {
    let by_id = by_id_events(context, body).unwrap_or_default();
    let many = many_events(context, body)?;
    Ok(by_id.into_iter().chain(many).collect())
}

#[test]
fn the_fixture_maps_to_the_golden_snapshot() {
    let fetched = parse_property_response(&fixture(FIXTURE), &Limits::default()).expect("parses");
    assert_eq!(fetched.flx_id, "b6e2f0c4-9a1d-4c37-8e52-3f7a1d9c2e84");
    assert_eq!(fetched.last_updated_at, Some(1_793_869_802_000));
    assert_eq!(fetched.totally_offline, Some(false));
    let encoded = schemas::encode_datum(&event(&context("fluximmo"), fetched.clone()));
    assert!(encoded.is_ok(), "fits the schema: {encoded:?}");
    assert_golden_json(
        "fluximmo-api.property-by-id",
        &json!({
            "flx_id": fetched.flx_id,
            "last_updated_at": fetched.last_updated_at,
            "totally_offline": fetched.totally_offline,
            "snapshot": fetched.snapshot,
        }),
    );
}

#[test]
fn the_fixture_values_checked_by_hand() {
    let p = by_id(&fixture(FIXTURE));
    assert_eq!(
        (p.property_type, p.provider_property_type),
        (PropertyType::House, None)
    );
    assert_eq!(p.transaction_type, TransactionType::Sale);
    assert_eq!(
        (p.price, p.currency.as_deref()),
        (Some(449_000.0), Some("EUR"))
    );
    assert_eq!(p.price_per_m2, Some(3805.08));
    let history: Vec<f64> = p.price_history.iter().flatten().map(|h| h.price).collect();
    assert_eq!(history, [469_000.0, 449_000.0]);
    assert_eq!(
        (p.location.latitude, p.location.longitude),
        (Some(47.1862), Some(-1.5571)),
        "the property's own position, [lng, lat]"
    );
    assert_eq!(p.location.postcode.as_deref(), Some("44400"));
    assert_eq!(
        (p.surface_m2, p.land_surface_m2),
        (Some(118.0), Some(520.0))
    );
    assert_eq!(
        (p.rooms, p.bedrooms, p.bathrooms, p.floor),
        (Some(6), Some(4), Some(2), Some(0))
    );
    assert_eq!(
        (p.elevator, p.terrace, p.furnished),
        (Some(false), Some(true), Some(false))
    );
    assert_eq!(
        (p.dpe_class, p.dpe_value),
        (Some(EnergyClass::C), Some(142.0))
    );
    assert_eq!(
        (p.ges_class, p.ges_value),
        (Some(EnergyClass::B), Some(8.0))
    );
    assert_eq!(p.orientation.as_deref(), Some("south_west"));
    assert_eq!(p.status.as_deref(), Some("active"));
    let adverts = p.adverts.unwrap_or_default();
    let summary: Vec<_> = adverts
        .iter()
        .map(|a| {
            (
                a.source_domain.as_deref(),
                a.publisher_type.as_deref(),
                a.status.as_deref(),
                a.price,
            )
        })
        .collect();
    assert_eq!(
        summary,
        [
            (
                Some("seloger.com"),
                Some("agency"),
                Some("active"),
                Some(449_000.0)
            ),
            (Some("leboncoin.fr"), None, Some("expired"), Some(465_000.0)),
        ]
    );
}

#[test]
fn classes_and_offers_map_and_keep_what_they_cannot_say() {
    for (class, offer, expected) in [
        (
            "CLASS_FLAT",
            "OFFER_RENT",
            (PropertyType::Apartment, None, TransactionType::Rent, None),
        ),
        (
            "CLASS_OFFICE",
            "OFFER_BUY",
            (PropertyType::Commercial, None, TransactionType::Sale, None),
        ),
        (
            "CLASS_ROOM",
            "OFFER_HOLIDAYS",
            (
                PropertyType::Other,
                Some("CLASS_ROOM"),
                TransactionType::Unknown,
                Some("OFFER_HOLIDAYS"),
            ),
        ),
        (
            "CLASS_UNKNOWN",
            "OFFER_UNKNOWN",
            (
                PropertyType::Unknown,
                Some("CLASS_UNKNOWN"),
                TransactionType::Unknown,
                Some("OFFER_UNKNOWN"),
            ),
        ),
        (
            "CLASS_CASTLE_2030",
            "OFFER_SWAP",
            (
                PropertyType::Other,
                Some("CLASS_CASTLE_2030"),
                TransactionType::Unknown,
                Some("OFFER_SWAP"),
            ),
        ),
    ] {
        let p = by_id(&with(|dto| {
            dto["type"] = Value::from(class);
            dto["offer"]["type"] = Value::from(offer);
        }));
        assert_eq!(
            (
                p.property_type,
                p.provider_property_type.as_deref(),
                p.transaction_type,
                p.provider_transaction_type.as_deref()
            ),
            expected,
            "{class} {offer}"
        );
    }
}

#[test]
fn every_currency_spelling_is_read() {
    for (currency, expected) in [
        (json!("CURRENCY_EUR"), Some("EUR")),
        (json!("EUR"), Some("EUR")),
        (Value::Null, Some("EUR")),
        (json!("CURRENCY_USD"), Some("USD")),
        (json!("euros"), None),
    ] {
        let p = by_id(&with(|dto| dto["price"]["currency"] = currency.clone()));
        assert_eq!(p.currency.as_deref(), expected, "{currency}");
    }
    let p = by_id(&with(|dto| remove(&mut dto["price"], "latest")));
    assert_eq!((p.price, p.currency), (None, None), "no price, no currency");
}

#[test]
fn coordinates_are_lng_lat_and_out_of_range_ones_are_ignored() {
    let at = |pair: Value| {
        let p = by_id(&with(|dto| {
            dto["location"]["locationCoordinate"]["location"] = pair;
            remove(&mut dto["location"], "cityCoordinate");
        }));
        (p.location.longitude, p.location.latitude)
    };
    assert_eq!(
        at(json!([-1.5571, 47.1862])),
        (Some(-1.5571), Some(47.1862))
    );
    assert_eq!(
        at(json!([47.1862, -1.5571])),
        (Some(47.1862), Some(-1.5571)),
        "an in-range swapped pair cannot be told and is read as documented"
    );
    assert_eq!(
        at(json!([-22.27, 166.45])),
        (None, None),
        "swapped, latitude out of range"
    );
    assert_eq!(at(json!(["2.35", "48.85"])), (Some(2.35), Some(48.85)));
    for junk in [
        json!([1.0]),
        json!([1, 2, 3, 4]),
        json!({"lat": 1, "lng": 2}),
        json!([null, 2]),
    ] {
        assert_eq!(at(junk.clone()), (None, None), "{junk}");
    }
    let p = by_id(&with(|dto| {
        dto["location"]["locationCoordinate"] = Value::Null
    }));
    assert_eq!(
        (p.location.longitude, p.location.latitude),
        (Some(-1.5636), Some(47.1906)),
        "the city centre stands in"
    );
}

#[test]
fn a_bulk_answer_keeps_its_order_and_skips_what_names_no_property() {
    let dto = fixture_value()["data"].clone();
    let mut other = dto.clone();
    other["flxId"] = Value::from("p-2");
    other["meta"]["isTotallyOffline"] = Value::from(true);
    let body = bulk(vec![
        dto,
        json!("junk"),
        json!({"type": "CLASS_FLAT"}),
        other,
    ]);
    let fetched = parse_many_response(&body, &Limits::default()).expect("parses");
    let got: Vec<_> = fetched
        .iter()
        .map(|f| {
            (
                f.flx_id.as_str(),
                f.totally_offline,
                f.snapshot.status.as_deref(),
            )
        })
        .collect();
    assert_eq!(
        got,
        [
            (
                "b6e2f0c4-9a1d-4c37-8e52-3f7a1d9c2e84",
                Some(false),
                Some("active")
            ),
            ("p-2", Some(true), Some("expired")),
        ]
    );
}

/// What the hostile variants read, field by field: unknown and missing are `None`.
#[test]
fn nulls_unknowns_and_strings_read_as_documented() {
    let p = by_id(&with(|dto| {
        dto["habitation"]["roomCount"] = json!("6");
        dto["habitation"]["climate"]["epcEnergy"] = json!("ENERGY_CLASSIFICATION_NC");
        dto["habitation"]["climate"]["epcClimate"] = json!("GREENHOUSE_CLASSIFICATION_UNKNOWN");
        dto["habitation"]["characteristics"] =
            json!({"hasTerrace": false, "hasBalcony": true, "hasGarage": "true"});
        dto["habitation"]["features"]["exposure"] = json!("EXPOSURE_UNKNOWN");
        dto["habitation"]["propertyCondition"]["constructionYear"] = json!(19.78);
        dto["medias"] = Value::Null;
        dto["meta"] = Value::Null;
    }));
    assert_eq!(p.rooms, Some(6));
    assert_eq!(
        (p.dpe_class, p.ges_class),
        (Some(EnergyClass::Unknown), None)
    );
    assert_eq!(
        (p.terrace, p.balcony, p.elevator),
        (Some(false), Some(true), None),
        "a balcony is its own field"
    );
    assert_eq!(
        (p.parking, p.garden),
        (Some(true), None),
        "a garage is parking"
    );
    assert_eq!((p.orientation, p.construction_year), (None, None));
    assert_eq!((p.pictures, p.status, p.first_seen_at), (None, None, None));
    let history: Vec<f64> = p.price_history.iter().flatten().map(|h| h.price).collect();
    assert!(history.is_empty(), "no times, no history: {history:?}");
    let empty = by_id(br#"{"data":{"flxId":"p"}}"#);
    assert_eq!(empty, PropertySnapshot::empty());
}
