//! Stream.estate (notif.immo) search-match webhooks: `event`, `adEvent`
//! (the field change) and `match` (search, property, `propertyDocument`).
//!
//! Event names map to event types: `ad.update.price` → `price_changed`,
//! `ad.update.surface` → `surface_changed`, `ad.update.pictures` →
//! `pictures_changed`, `ad.update.expired` → `expired`, `property.ad.create`
//! → `created`, `property.ad.update` → `updated`; any other name is refused
//! (DLQ). The property id is the last segment of
//! `propertyDocument.property` (`/properties/<uuid>`), else of
//! `match.property`, else of the document's `@id`. The event time is
//! `adEvent.createdAt`, else `match.updatedAt`, else `match.createdAt`.
//! The search that matched goes to `alert_id`. Stream.estate sends no event
//! id: the dedupe key is a hash of the raw body (position `0`, one event per
//! body). An array the event would hold (`pictures`, `stations`, a
//! station's `lines`, `adverts`, an advert's `events`) longer than
//! `max_array_items` is an error naming it. Prices are euros (the provider
//! covers France only). Contact details (names, e-mails, phones) are not
//! carried: they are personal data no consumer needs, and real traffic has
//! invalid ones.
//!
//! The snapshot holds only what `propertyDocument` says: a key it does not
//! send is `None`, and one it sends as `null`, `""` or `[]` (or under a
//! `null` object, such as `city: null`) is listed in `cleared_fields`
//! ([`super::cleared`]); a field read from the document or else from its
//! adverts (`constructionYear`, the energy classes) is cleared only when
//! no advert has it either. A `propertyType` or `transactionType` code
//! that maps to `other` / `unknown` keeps the code as text in
//! `provider_property_type` / `provider_transaction_type`. Stream.estate
//! reports no sale (`sold_price` and `sold_at` are never set); an
//! `ad.update.expired` is an `expired` event whose status is what the
//! document says (`expired: true` → `expired`): the event is about one
//! advert, and a property with another live advert has not expired.

use schemas::{
    Advert, EventType, FieldChange, Location, PricePoint, PropertyEvent, PropertySnapshot,
    PropertyType, Provider, Station, TransactionType,
};
use serde_json::Value;

use super::cleared::Cleared;
use super::event::{BodyHash, new_event};
use super::json::{
    at_most_items, body_object, boolean, child, country_code, energy_class, first_time, id_segment,
    int, items, lower, number, optional_time, strings, text, url_host,
};
use super::{ParseError, RawContext};

/// Parses one Stream.estate webhook into exactly one event.
pub fn parse(context: &RawContext<'_>, body: &[u8]) -> Result<Vec<PropertyEvent>, ParseError> {
    let root = body_object(body)?;
    let name = root
        .get("event")
        .and_then(Value::as_str)
        .ok_or(ParseError::MissingField("event"))?;
    let event_type = match name {
        "ad.update.price" => EventType::PriceChanged,
        "ad.update.surface" => EventType::SurfaceChanged,
        "ad.update.pictures" => EventType::PicturesChanged,
        "ad.update.expired" => EventType::Expired,
        "property.ad.create" => EventType::Created,
        "property.ad.update" => EventType::Updated,
        other => return Err(ParseError::UnsupportedEventType(other.to_string())),
    };
    let ad_event = root.get("adEvent").filter(|v| v.is_object());
    let matched = root.get("match").filter(|v| v.is_object());
    let document = matched
        .and_then(|m| m.get("propertyDocument"))
        .filter(|v| v.is_object());
    if let Some(document) = document {
        check_arrays(document, context.limits.max_array_items)?;
    }
    let property_id = document
        .and_then(|d| id_segment(d.get("property")))
        .or_else(|| matched.and_then(|m| id_segment(m.get("property"))))
        .or_else(|| document.and_then(|d| id_segment(d.get("@id"))))
        .ok_or(ParseError::MissingField("match.propertyDocument.property"))?;
    let occurred_at = first_time(&[
        (
            ad_event.and_then(|e| e.get("createdAt")),
            "adEvent.createdAt",
        ),
        (matched.and_then(|m| m.get("updatedAt")), "match.updatedAt"),
        (matched.and_then(|m| m.get("createdAt")), "match.createdAt"),
    ])?;

    let mut event = new_event(
        context,
        Provider::StreamEstate,
        BodyHash::of(body).position_id("0"),
        property_id,
        event_type,
        occurred_at,
    );
    event.provider_event_type = Some(name.to_string());
    event.alert_id = matched.and_then(|m| id_segment(m.get("search")));
    event.change = ad_event.and_then(field_change);
    if let Some(document) = document {
        let mut cleared = Cleared::default();
        event.property = Some(snapshot(document, &mut cleared));
        event.cleared_fields = cleared.into_fields();
    }
    Ok(vec![event])
}

/// Every array of `propertyDocument` the event holds has at most `max` items.
fn check_arrays(document: &Value, max: usize) -> Result<(), ParseError> {
    at_most_items(
        document.get("pictures"),
        "match.propertyDocument.pictures",
        max,
    )?;
    at_most_items(
        document.get("stations"),
        "match.propertyDocument.stations",
        max,
    )?;
    for station in items(document.get("stations")) {
        at_most_items(
            station.get("lines"),
            "match.propertyDocument.stations[].lines",
            max,
        )?;
    }
    at_most_items(
        document.get("adverts"),
        "match.propertyDocument.adverts",
        max,
    )?;
    for advert in items(document.get("adverts")) {
        at_most_items(
            advert.get("events"),
            "match.propertyDocument.adverts[].events",
            max,
        )?;
    }
    Ok(())
}

/// `adEvent` (or an advert's `events[]` item) as a field change.
fn field_change(change: &Value) -> Option<FieldChange> {
    Some(FieldChange {
        field: text(change.get("fieldName"))?,
        old_value: text(change.get("fieldOldValue")),
        new_value: text(change.get("fieldNewValue")),
        percent: number(change.get("percentVariation")),
        old_number: number(change.get("fieldOldValue")),
        new_number: number(change.get("fieldNewValue")),
    })
}

/// `transactionType` codes, per the Stream.estate API documentation.
fn transaction_type(value: Option<&Value>) -> TransactionType {
    match int(value) {
        Some(0) => TransactionType::Sale,
        Some(1) => TransactionType::Rent,
        _ => TransactionType::Unknown,
    }
}

/// `propertyType` codes, per the Stream.estate API documentation.
fn property_type(value: Option<&Value>) -> PropertyType {
    match int(value) {
        Some(0) => PropertyType::Apartment,
        Some(1) => PropertyType::House,
        Some(2) => PropertyType::Building,
        Some(3) => PropertyType::Parking,
        Some(4 | 6) => PropertyType::Commercial,
        Some(5) => PropertyType::Land,
        Some(_) => PropertyType::Other,
        None => PropertyType::Unknown,
    }
}

/// The property snapshot from `propertyDocument`, noting what it clears.
fn snapshot(document: &Value, c: &mut Cleared) -> PropertySnapshot {
    let adverts: Vec<&Value> = items(document.get("adverts"))
        .iter()
        .filter(|v| v.is_object())
        .collect();
    // Fields the document lacks but its adverts carry: the first advert that has one.
    let from_adverts = |key: &str| {
        adverts
            .iter()
            .find_map(|a| a.get(key).filter(|v| !v.is_null()))
    };
    // The document's object, else an advert's, else what the document sent
    // (a `null` then clears the fields read from it).
    let energy = |key: &str| {
        document
            .get(key)
            .filter(|v| v.is_object())
            .or_else(|| from_adverts(key))
            .or_else(|| document.get(key))
    };
    let field = |key: &str| document.get(key);

    let mut p = PropertySnapshot::empty();
    (p.transaction_type, p.provider_transaction_type) = c.kind(
        ("transaction_type", "provider_transaction_type"),
        field("transactionType"),
        transaction_type,
    );
    (p.property_type, p.provider_property_type) = c.kind(
        ("property_type", "provider_property_type"),
        field("propertyType"),
        property_type,
    );
    p.title = c.one("title", field("title"), text);
    p.description = c.one("description", field("description"), text);
    p.price = c.one("price", field("price"), number);
    p.currency = p.price.map(|_| "EUR".to_string());
    p.surface_m2 = c.one("surface_m2", field("surface"), number);
    p.land_surface_m2 = c.one("land_surface_m2", field("landSurface"), number);
    p.price_per_m2 = c.one("price_per_m2", field("pricePerMeter"), number);
    p.rooms = c.one("rooms", field("room"), int);
    p.bedrooms = c.one("bedrooms", field("bedroom"), int);
    p.floor = c.one("floor", field("floor"), int);
    p.furnished = c.one("furnished", field("furnished"), boolean);
    p.elevator = c.one("elevator", field("elevator"), boolean);
    p.construction_year = c.either(
        "construction_year",
        [field("constructionYear"), from_adverts("constructionYear")],
        int,
    );
    p.status = c.one("status", field("expired"), expiry_status);
    p.location = location(document, c);
    p.first_seen_at = c.one("first_seen_at", field("createdAt"), optional_time);
    p.last_seen_at = c.one("last_seen_at", field("lastCrawledAt"), optional_time);
    let dpe = energy("energy");
    p.dpe_class = c.one("dpe_class", child(dpe, "category"), energy_class);
    p.dpe_value = c.one("dpe_value", child(dpe, "value"), number);
    let ges = energy("greenHouseGas");
    p.ges_class = c.one("ges_class", child(ges, "category"), energy_class);
    p.ges_value = c.one("ges_value", child(ges, "value"), number);
    p.pictures = c.one("pictures", field("pictures"), strings);
    p.stations = c.one("stations", field("stations"), stations);
    p.adverts = c.note(
        "adverts",
        &[field("adverts")],
        (!adverts.is_empty()).then(|| adverts.iter().map(|a| advert(a)).collect()),
    );
    p
}

/// `expired` (a boolean) as a status.
fn expiry_status(expired: Option<&Value>) -> Option<String> {
    boolean(expired).map(|expired| if expired { "expired" } else { "active" }.to_string())
}

fn location(document: &Value, c: &mut Cleared) -> Location {
    let city = document.get("city");
    let coordinates = document
        .get("locations")
        .filter(|v| v.is_object())
        .or_else(|| child(city, "location"))
        .or_else(|| document.get("locations"));
    let city_field = |key: &str| child(city, key);
    let country = city_field("country");
    Location {
        address: None,
        city: c.one("location.city", city_field("name"), text),
        postcode: c.one("location.postcode", city_field("zipcode"), text),
        insee_code: c.one("location.insee_code", city_field("insee"), text),
        iris_code: None,
        department: c.one(
            "location.department",
            child(city_field("department"), "code"),
            text,
        ),
        region: c.one("location.region", child(city_field("region"), "name"), text),
        country: c.either(
            "location.country",
            [child(country, "code"), child(country, "name")],
            country_code,
        ),
        latitude: c.one("location.latitude", child(coordinates, "lat"), number),
        longitude: c.one("location.longitude", child(coordinates, "lon"), number),
    }
}

fn stations(value: Option<&Value>) -> Option<Vec<Station>> {
    let list: Vec<Station> = value?
        .as_array()?
        .iter()
        .filter_map(|s| {
            Some(Station {
                name: text(s.get("name"))?,
                lines: s
                    .get("lines")
                    .and_then(Value::as_array)
                    .map(|lines| lines.iter().filter_map(|l| text(l.get("name"))).collect())
                    .unwrap_or_default(),
            })
        })
        .collect();
    (!list.is_empty()).then_some(list)
}

fn advert(ad: &Value) -> Advert {
    let url = text(ad.get("url"));
    let publisher = ad.get("publisher");
    let mut history: Vec<PricePoint> = ad
        .get("events")
        .and_then(Value::as_array)
        .map(|events| events.iter().filter_map(field_change_point).collect())
        .unwrap_or_default();
    history.sort_by_key(|point| point.at);
    Advert {
        advert_id: text(ad.get("uuid")),
        title: text(ad.get("title")),
        source_domain: url.as_deref().and_then(url_host),
        url,
        publisher_name: text(publisher.and_then(|p| p.get("name"))),
        publisher_type: lower(publisher.and_then(|p| p.get("category"))),
        publisher_is_professional: None,
        publisher_id: None,
        price: number(ad.get("price")),
        price_history: (!history.is_empty()).then_some(history),
        status: expiry_status(ad.get("expired")),
        published_at: optional_time(ad.get("createdAt")),
        updated_at: optional_time(ad.get("updatedAt")),
    }
}

/// A price change in an advert's `events[]` as the price it set.
fn field_change_point(change: &Value) -> Option<PricePoint> {
    let change_field = field_change(change)?;
    (change_field.field == "price").then_some(())?;
    Some(PricePoint {
        at: optional_time(change.get("createdAt"))?,
        price: change_field.new_number?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::providers::testing::{
        Expect, LOCATION_PATHS, assert_golden, check_hostile, context, fixture, nested,
    };
    use schemas::EnergyClass;

    fn fixture_value() -> Value {
        serde_json::from_slice(&fixture("stream-estate/ad.update.price.json")).expect("fixture")
    }

    fn with(edit: impl FnOnce(&mut Value)) -> Vec<u8> {
        let mut value = fixture_value();
        edit(&mut value);
        serde_json::to_vec(&value).expect("serializes")
    }

    fn document(value: &mut Value) -> &mut Value {
        &mut value["match"]["propertyDocument"]
    }

    #[test]
    fn the_price_fixture_becomes_one_price_changed_event() {
        let events = parse(
            &context("stream-estate"),
            &fixture("stream-estate/ad.update.price.json"),
        )
        .expect("parses");
        assert_golden("stream-estate.ad.update.price", &events);
    }

    #[test]
    fn every_documented_event_name_has_its_type() {
        for (name, expected) in [
            ("ad.update.price", EventType::PriceChanged),
            ("ad.update.surface", EventType::SurfaceChanged),
            ("ad.update.pictures", EventType::PicturesChanged),
            ("ad.update.expired", EventType::Expired),
            ("property.ad.create", EventType::Created),
            ("property.ad.update", EventType::Updated),
        ] {
            let body = with(|v| v["event"] = Value::from(name));
            let events = parse(&context("stream-estate"), &body).expect(name);
            assert_eq!(events[0].event_type, expected, "{name}");
            assert_eq!(events[0].provider_event_type.as_deref(), Some(name));
        }
    }

    #[test]
    fn property_type_and_transaction_codes_map_to_enums() {
        let body = with(|v| {
            document(v)["propertyType"] = Value::from(1);
            document(v)["transactionType"] = Value::from("0");
        });
        let events = parse(&context("stream-estate"), &body).expect("parses");
        let p = events[0].property.as_ref().expect("snapshot");
        assert_eq!(p.property_type, PropertyType::House);
        assert_eq!(p.transaction_type, TransactionType::Sale);
        let body = with(|v| {
            document(v)["propertyType"] = Value::from(42);
            document(v)["transactionType"] = Value::from(9);
        });
        let events = parse(&context("stream-estate"), &body).expect("parses");
        let p = events[0].property.as_ref().expect("snapshot");
        assert_eq!(p.property_type, PropertyType::Other);
        assert_eq!(p.transaction_type, TransactionType::Unknown);
        assert_eq!(
            (
                p.provider_property_type.as_deref(),
                p.provider_transaction_type.as_deref()
            ),
            (Some("42"), Some("9")),
            "codes it cannot map are kept as the provider sent them"
        );
        assert_eq!(
            events[0].cleared_fields,
            Some(vec!["transaction_type".to_string()])
        );
    }

    #[test]
    fn explicit_nulls_and_empties_in_the_document_are_cleared() {
        let body = with(|v| {
            document(v)["city"] = Value::Null;
            document(v)["locations"] = Value::Null;
            document(v)["pictures"] = serde_json::json!([]);
            document(v)["description"] = Value::from(" ");
            document(v)["energy"] = Value::Null;
            document(v)["greenHouseGas"] = Value::Null;
            document(v)["propertyType"] = Value::Null;
            let _ = document(v).as_object_mut().map(|d| d.remove("price"));
        });
        let e = &parse(&context("stream-estate"), &body).expect("parses")[0];
        let p = e.property.as_ref().expect("snapshot");
        assert_eq!(p.location, Location::default());
        assert_eq!((p.price, p.currency.as_deref()), (None, None));
        assert_eq!(
            (p.dpe_class, p.ges_class),
            (Some(EnergyClass::C), Some(EnergyClass::D)),
            "the advert's energy stands in for the document's"
        );
        let kinds = [
            "provider_transaction_type",
            "property_type",
            "provider_property_type",
            "description",
        ];
        let expected: Vec<&str> = kinds
            .into_iter()
            .chain(LOCATION_PATHS.into_iter().skip(1))
            .chain(["pictures"])
            .collect();
        assert_eq!(
            e.cleared_fields.clone().unwrap_or_default(),
            expected,
            "all but the address, which Stream.estate never sends"
        );
        assert!(schemas::encode_datum(e).is_ok());
    }

    #[test]
    fn a_field_no_advert_has_either_is_cleared_with_the_documents_null() {
        let body = with(|v| {
            document(v)["energy"] = Value::Null;
            document(v)["constructionYear"] = Value::Null;
            let _ = document(v)["adverts"][0]
                .as_object_mut()
                .map(|a| a.remove("energy"));
        });
        let e = &parse(&context("stream-estate"), &body).expect("parses")[0];
        let p = e.property.as_ref().expect("snapshot");
        assert_eq!(p.dpe_class, None);
        assert_eq!(p.construction_year, Some(1982), "from the advert");
        let cleared = e.cleared_fields.clone().unwrap_or_default();
        assert!(cleared.iter().any(|c| c == "dpe_class"), "{cleared:?}");
        assert!(cleared.iter().any(|c| c == "dpe_value"), "{cleared:?}");
        assert!(!cleared.iter().any(|c| c == "construction_year"));
    }

    #[test]
    fn an_expiry_says_what_the_document_says_and_no_sale() {
        let body = with(|v| v["event"] = Value::from("ad.update.expired"));
        let e = &parse(&context("stream-estate"), &body).expect("parses")[0];
        let p = e.property.as_ref().expect("snapshot");
        assert_eq!(e.event_type, EventType::Expired);
        assert_eq!(p.status.as_deref(), Some("expired"));
        assert_eq!((p.sold_price, p.sold_at), (None, None));
        let body = with(|v| {
            v["event"] = Value::from("ad.update.expired");
            let _ = document(v).as_object_mut().map(|d| d.remove("expired"));
        });
        let e = &parse(&context("stream-estate"), &body).expect("parses")[0];
        assert_eq!(
            e.property.as_ref().and_then(|p| p.status.as_deref()),
            None,
            "one advert expiring is not the property expiring"
        );
    }

    #[test]
    fn a_change_without_a_document_still_identifies_the_property() {
        let body =
            br#"{"event":"ad.update.surface","adEvent":{"fieldName":"surface","fieldOldValue":30,
            "fieldNewValue":"32.5","percentVariation":6.67,"createdAt":"2024-01-01T00:00:00Z"},
            "match":{"property":"/properties/p-1","search":"/searches/s-1"}}"#;
        let e = &parse(&context("stream-estate"), body).expect("parses")[0];
        assert_eq!(e.property_key, "stream-estate:p-1");
        assert_eq!(e.alert_id.as_deref(), Some("s-1"));
        assert!(e.property.is_none());
        let change = e.change.as_ref().expect("change");
        assert_eq!(
            (change.old_number, change.new_number),
            (Some(30.0), Some(32.5))
        );
        assert_eq!(change.old_value.as_deref(), Some("30"));
    }

    fn pictures(n: usize) -> Vec<u8> {
        with(|v| {
            document(v)["pictures"] = Value::from(
                (0..n)
                    .map(|i| format!("https://p/{i}.jpg"))
                    .collect::<Vec<_>>(),
            );
        })
    }

    #[test]
    fn every_array_an_event_holds_is_capped_and_named() {
        let mut c = context("stream-estate");
        // The fixture holds at most 3 items per array.
        c.limits.max_array_items = 3;
        let station = || serde_json::json!({"name": "s", "lines": [{"name": "1"}]});
        let line = || serde_json::json!({"name": "1"});
        let change = || serde_json::json!({"fieldName": "price", "fieldNewValue": 1, "createdAt": "2024-01-01T00:00:00Z"});
        for (field, body) in [
            ("match.propertyDocument.pictures", pictures(4)),
            (
                "match.propertyDocument.stations",
                with(|v| document(v)["stations"] = Value::from(vec![station(); 4])),
            ),
            (
                "match.propertyDocument.stations[].lines",
                with(|v| {
                    document(v)["stations"] = serde_json::json!([{"name": "s", "lines": [line(), line(), line(), line()]}]);
                }),
            ),
            (
                "match.propertyDocument.adverts",
                with(|v| document(v)["adverts"] = Value::from(vec![serde_json::json!({}); 4])),
            ),
            (
                "match.propertyDocument.adverts[].events",
                with(|v| {
                    document(v)["adverts"] =
                        serde_json::json!([{"events": [change(), change(), change(), change()]}]);
                }),
            ),
        ] {
            assert_eq!(
                parse(&c, &body),
                Err(ParseError::TooManyItems {
                    field,
                    count: 4,
                    max: 3
                }),
                "{field}"
            );
        }
        assert_eq!(parse(&c, &pictures(3)).map(|e| e.len()), Ok(1));
    }

    #[test]
    fn hostile_variants_give_events_or_precise_errors() {
        let many_pictures = with(|v| {
            document(v)["pictures"] = Value::from(
                (0..50_000)
                    .map(|i| format!("https://p/{i}.jpg"))
                    .collect::<Vec<_>>(),
            );
        });
        let cases: Vec<(&str, Vec<u8>, Expect)> = vec![
            (
                "truncated",
                fixture("stream-estate/ad.update.price.json")[..300].to_vec(),
                Expect::Kind("invalid_json"),
            ),
            (
                "unknown event",
                with(|v| v["event"] = Value::from("search.deleted")),
                Expect::Error(ParseError::UnsupportedEventType("search.deleted".into())),
            ),
            (
                "event is a number",
                with(|v| v["event"] = Value::from(3)),
                Expect::Error(ParseError::MissingField("event")),
            ),
            (
                "no property anywhere",
                with(|v| {
                    let _ = v["match"].as_object_mut().map(|m| m.remove("property"));
                    let _ = document(v).as_object_mut().map(|d| {
                        let _ = d.remove("property");
                        d.remove("@id")
                    });
                }),
                Expect::Error(ParseError::MissingField("match.propertyDocument.property")),
            ),
            (
                "no time anywhere",
                with(|v| {
                    let _ = v["adEvent"].as_object_mut().map(|e| e.remove("createdAt"));
                    let _ = v["match"].as_object_mut().map(|m| {
                        let _ = m.remove("createdAt");
                        m.remove("updatedAt")
                    });
                }),
                Expect::Error(ParseError::MissingField("adEvent.createdAt")),
            ),
            (
                "unparseable time",
                with(|v| v["adEvent"]["createdAt"] = Value::from("24/08/2019")),
                Expect::Kind("invalid_field"),
            ),
            (
                "null time falls back",
                with(|v| v["adEvent"]["createdAt"] = Value::Null),
                Expect::Events(1),
            ),
            (
                "adEvent is a string",
                with(|v| v["adEvent"] = Value::from("x")),
                Expect::Events(1),
            ),
            (
                "numbers as strings and strings as numbers",
                with(|v| {
                    document(v)["price"] = Value::from("950");
                    document(v)["room"] = Value::from("3");
                    document(v)["title"] = Value::from(12);
                    v["adEvent"]["percentVariation"] = Value::from(-2.81);
                }),
                Expect::Events(1),
            ),
            (
                "adverts of the wrong type",
                with(|v| document(v)["adverts"] = Value::from("none")),
                Expect::Events(1),
            ),
            (
                "null everywhere optional",
                with(|v| {
                    for key in [
                        "city",
                        "stations",
                        "pictures",
                        "price",
                        "energy",
                        "locations",
                    ] {
                        document(v)[key] = Value::Null;
                    }
                }),
                Expect::Events(1),
            ),
            (
                "invalid e-mail and unknown fields",
                with(|v| {
                    document(v)["adverts"][0]["contact"]["email"] = Value::from("not-an-email");
                    document(v)["novelty"] = serde_json::json!({"x": [1, 2]});
                }),
                Expect::Events(1),
            ),
            (
                "energy letter unknown",
                with(|v| document(v)["adverts"][0]["energy"]["category"] = Value::from("Z")),
                Expect::Events(1),
            ),
            (
                "huge picture list",
                many_pictures,
                Expect::Error(ParseError::TooManyItems {
                    field: "match.propertyDocument.pictures",
                    count: 50_000,
                    max: 1_000,
                }),
            ),
            (
                "picture list at the limit",
                pictures(1_000),
                Expect::Events(1),
            ),
            (
                "deep nesting",
                nested(10_000, "1").into_bytes(),
                Expect::Kind("invalid_json"),
            ),
            ("array body", b"[]".to_vec(), Expect::Kind("invalid_field")),
        ];
        check_hostile(parse, &context("stream-estate"), &cases);
    }
}
