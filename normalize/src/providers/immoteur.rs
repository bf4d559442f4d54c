//! Immoteur `property-notification` webhooks: the whole aggregated property
//! (`id`, `status`, `classifieds[]`, `location`, `media`, `meta`,
//! `property`, `transaction`, `energy`).
//!
//! The event id is the `event-id` Kafka header (ingest copies
//! `X-Immoteur-Event-Id` there; it is the same for every delivery of one
//! event). Without it the dedupe key falls back to a hash of the raw body,
//! DESIGN.md's second choice, rather than dead-lettering a valid property.
//! The body has no event time: `occurred_at` is `meta.lastSeenAt`, else the
//! arrival time at ingest; a `lastSeenAt` that is present but unparseable
//! is an error. The event type follows `status.current`: `sold` → `sold`,
//! `expired`/`withdrawn`/`archived` → `expired`, anything else → `updated`
//! (the notification is a full snapshot, not a creation signal). Prices
//! are euros unless the body names a currency. An array the event would
//! hold (`classifieds`, `media.images`, a price history) longer than
//! `max_array_items` is an error naming it. Publisher e-mails and phones
//! are not carried (personal data, often invalid).

use schemas::{
    Advert, EnergyClass, EventType, Location, PricePoint, PropertyEvent, PropertySnapshot,
    PropertyType, Provider, TransactionType,
};
use serde_json::Value;

use super::event::{BodyHash, new_event};
use super::json::{
    at_most_items, body_object, boolean, country_code, first_time, int, items, lower, number,
    optional_time, text,
};
use super::{ParseError, RawContext};

/// Parses one property notification into exactly one event.
pub fn parse(context: &RawContext<'_>, body: &[u8]) -> Result<Vec<PropertyEvent>, ParseError> {
    let root = body_object(body)?;
    let property_id = text(root.get("id")).ok_or(ParseError::MissingField("id"))?;
    check_arrays(&root, context.limits.max_array_items)?;
    let meta = root.get("meta");
    let occurred_at = match meta.and_then(|m| m.get("lastSeenAt")) {
        None | Some(Value::Null) => context.received_at_ms,
        Some(_) => first_time(&[(meta.and_then(|m| m.get("lastSeenAt")), "meta.lastSeenAt")])?,
    };
    let status = lower(root.get("status").and_then(|s| s.get("current")))
        .or_else(|| lower(root.get("status")));
    let event_type = match status.as_deref() {
        Some("sold" | "vendu") => EventType::Sold,
        Some("expired" | "withdrawn" | "archived") => EventType::Expired,
        _ => EventType::Updated,
    };
    let event_id = context
        .event_id
        .map_or_else(|| BodyHash::of(body).position_id("0"), str::to_string);
    let mut event = new_event(
        context,
        Provider::Immoteur,
        event_id,
        property_id,
        event_type,
        occurred_at,
    );
    event.provider_event_type = Some("property-notification".to_string());
    event.property = Some(snapshot(&root, status));
    Ok(vec![event])
}

/// Every array of the notification the event holds has at most `max` items.
fn check_arrays(root: &Value, max: usize) -> Result<(), ParseError> {
    let price = root.get("transaction").and_then(|t| t.get("price"));
    at_most_items(
        price.and_then(|p| p.get("history")),
        "transaction.price.history",
        max,
    )?;
    at_most_items(
        root.get("media").and_then(|m| m.get("images")),
        "media.images",
        max,
    )?;
    at_most_items(root.get("classifieds"), "classifieds", max)?;
    for classified in items(root.get("classifieds")) {
        at_most_items(
            classified.get("transaction").and_then(|t| t.get("history")),
            "classifieds[].transaction.history",
            max,
        )?;
    }
    Ok(())
}

fn transaction_type(value: Option<String>) -> TransactionType {
    match value.as_deref() {
        Some("sale" | "sell" | "vente" | "buy") => TransactionType::Sale,
        Some("rent" | "rental" | "location" | "lease") => TransactionType::Rent,
        _ => TransactionType::Unknown,
    }
}

fn property_type(value: Option<String>) -> PropertyType {
    match value.as_deref() {
        Some("apartment" | "flat" | "appartement") => PropertyType::Apartment,
        Some("house" | "maison" | "villa") => PropertyType::House,
        Some("land" | "terrain" | "plot") => PropertyType::Land,
        Some("parking" | "garage" | "parking_space") => PropertyType::Parking,
        Some("commercial" | "office" | "shop" | "bureau" | "local_commercial") => {
            PropertyType::Commercial
        }
        Some("building" | "immeuble") => PropertyType::Building,
        Some(_) => PropertyType::Other,
        None => PropertyType::Unknown,
    }
}

fn snapshot(root: &Value, status: Option<String>) -> PropertySnapshot {
    let property = root.get("property");
    let field = |key: &str| property.and_then(|p| p.get(key));
    let transaction = root.get("transaction");
    let price = transaction.and_then(|t| t.get("price"));
    let energy = root.get("energy");
    let label = |kind: &str| {
        text(
            energy
                .and_then(|e| e.get(kind))
                .and_then(|k| k.get("label")),
        )
        .map(|l| EnergyClass::from_letter(&l))
    };
    let value = |kind: &str| {
        number(
            energy
                .and_then(|e| e.get(kind))
                .and_then(|k| k.get("value")),
        )
    };

    let mut p = PropertySnapshot::empty();
    p.transaction_type = transaction_type(lower(transaction.and_then(|t| t.get("type"))));
    p.property_type = property_type(lower(field("type")));
    p.title = text(root.get("title"));
    p.description = text(root.get("description"));
    p.price = number(price.and_then(|pr| pr.get("current"))).or_else(|| number(price));
    p.currency = p.price.map(|_| {
        text(price.and_then(|pr| pr.get("currency")))
            .map_or_else(|| "EUR".to_string(), |c| c.to_ascii_uppercase())
    });
    p.price_per_m2 = number(price.and_then(|pr| pr.get("perSquareUnit")));
    p.price_history = price_history(price.and_then(|pr| pr.get("history")));
    p.surface_m2 = number(field("area"));
    p.land_surface_m2 = number(field("landArea"));
    p.rooms = int(field("roomCount"));
    p.bedrooms = int(field("bedroomCount"));
    p.bathrooms = int(field("bathroomCount"));
    p.floor = int(field("floor"));
    p.furnished = boolean(field("furnished")).or_else(|| boolean(field("isFurnished")));
    p.elevator = boolean(field("elevatorExists")).or_else(|| boolean(field("elevator")));
    p.terrace = boolean(field("terraceExists")).or_else(|| boolean(field("terrace")));
    p.orientation = lower(field("orientation"));
    p.construction_year = int(field("constructionYear"));
    p.status = status;
    p.location = location(root.get("location"));
    p.first_seen_at = optional_time(root.get("meta").and_then(|m| m.get("firstSeenAt")));
    p.last_seen_at = optional_time(root.get("meta").and_then(|m| m.get("lastSeenAt")));
    p.dpe_class = label("dpe");
    p.dpe_value = value("dpe");
    p.ges_class = label("ges");
    p.ges_value = value("ges");
    p.pictures = pictures(root.get("media").and_then(|m| m.get("images")));
    p.adverts = root
        .get("classifieds")
        .and_then(Value::as_array)
        .map(|list| {
            list.iter()
                .filter(|c| c.is_object())
                .map(classified)
                .collect::<Vec<_>>()
        })
        .filter(|list| !list.is_empty());
    p
}

fn location(location: Option<&Value>) -> Location {
    let field = |key: &str| location.and_then(|l| l.get(key));
    let city = field("city");
    Location {
        address: text(field("address")),
        city: text(city.and_then(|c| c.get("name"))).or_else(|| text(city)),
        postcode: text(field("postcode")),
        insee_code: text(city.and_then(|c| c.get("inseeCode"))),
        department: text(field("department")),
        region: text(field("region")),
        country: country_code(field("country")),
        latitude: number(field("latitude")),
        longitude: number(field("longitude")),
    }
}

/// `[{"value": 750000, "timestamp": "..."}]`, oldest first; points without a
/// price or a time are skipped.
fn price_history(value: Option<&Value>) -> Option<Vec<PricePoint>> {
    let mut points: Vec<PricePoint> = value?
        .as_array()?
        .iter()
        .filter_map(|point| {
            Some(PricePoint {
                at: optional_time(point.get("timestamp"))?,
                price: number(point.get("value"))?,
            })
        })
        .collect();
    points.sort_by_key(|point| point.at);
    (!points.is_empty()).then_some(points)
}

/// Image URLs ordered by `position` (images without one keep their order, last).
fn pictures(value: Option<&Value>) -> Option<Vec<String>> {
    let mut images: Vec<(i64, String)> = value?
        .as_array()?
        .iter()
        .filter_map(|image| {
            let url = text(image.get("url")).or_else(|| text(Some(image)))?;
            let position = number(image.get("position")).map_or(i64::MAX, |p| p as i64);
            Some((position, url))
        })
        .collect();
    images.sort_by_key(|(position, _)| *position);
    let urls: Vec<String> = images.into_iter().map(|(_, url)| url).collect();
    (!urls.is_empty()).then_some(urls)
}

fn classified(ad: &Value) -> Advert {
    let source = ad.get("source");
    let publisher = ad.get("publisher");
    let publisher_field = |key: &str| publisher.and_then(|p| p.get(key));
    let transaction = ad.get("transaction");
    Advert {
        advert_id: text(ad.get("id")),
        title: text(ad.get("title")),
        url: text(source.and_then(|s| s.get("url"))),
        source_domain: lower(source.and_then(|s| s.get("domain"))),
        publisher_name: text(publisher_field("name")),
        publisher_type: lower(publisher_field("type")),
        publisher_is_professional: boolean(publisher_field("isProfessional")),
        publisher_id: text(publisher_field("id"))
            .or_else(|| text(publisher_field("siret")))
            .or_else(|| text(publisher_field("siren"))),
        price: number(transaction.and_then(|t| t.get("current"))),
        price_history: price_history(transaction.and_then(|t| t.get("history"))),
        status: lower(ad.get("status").and_then(|s| s.get("current"))),
        published_at: optional_time(ad.get("meta").and_then(|m| m.get("firstSeenAt"))),
        updated_at: optional_time(ad.get("meta").and_then(|m| m.get("lastSeenAt"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::providers::testing::{
        Expect, assert_golden, check_hostile, context, fixture, nested,
    };

    const FIXTURE: &str = "immoteur/property-notification.json";

    fn with(edit: impl FnOnce(&mut Value)) -> Vec<u8> {
        let mut value: Value = serde_json::from_slice(&fixture(FIXTURE)).expect("fixture");
        edit(&mut value);
        serde_json::to_vec(&value).expect("serializes")
    }

    fn with_event_id() -> RawContext<'static> {
        let mut c = context("immoteur");
        c.event_id = Some("6f1c8a52-0000-4000-8000-000000000001");
        c
    }

    #[test]
    fn the_fixture_becomes_one_full_snapshot() {
        let events = parse(&with_event_id(), &fixture(FIXTURE)).expect("parses");
        assert_golden("immoteur.property-notification", &events);
    }

    #[test]
    fn the_event_id_header_is_the_dedupe_key_across_redeliveries() {
        let first = parse(&with_event_id(), &fixture(FIXTURE)).expect("parses");
        let mut retry = with_event_id();
        retry.offset = 1234;
        let again = parse(&retry, &with(|v| v["description"] = Value::from("x"))).expect("parses");
        assert_eq!(
            first[0].dedupe_key,
            "immoteur:6f1c8a52-0000-4000-8000-000000000001"
        );
        assert_eq!(first[0].dedupe_key, again[0].dedupe_key);
    }

    #[test]
    fn without_an_event_id_the_body_hash_is_the_key() {
        let e = &parse(&context("immoteur"), &fixture(FIXTURE)).expect("parses")[0];
        assert_eq!(
            e.dedupe_key,
            format!(
                "immoteur:{}",
                BodyHash::of(&fixture(FIXTURE)).position_id("0")
            )
        );
    }

    #[test]
    fn status_drives_the_event_type() {
        for (status, expected) in [
            ("sold", EventType::Sold),
            ("Expired", EventType::Expired),
            ("available", EventType::Updated),
            ("en attente", EventType::Updated),
        ] {
            let body = with(|v| v["status"]["current"] = Value::from(status));
            assert_eq!(
                parse(&with_event_id(), &body).expect(status)[0].event_type,
                expected
            );
        }
    }

    fn images(n: usize) -> Vec<u8> {
        with(|v| {
            v["media"]["images"] = Value::from(
                (0..n)
                    .map(|i| serde_json::json!({"url": format!("https://i/{i}.jpg")}))
                    .collect::<Vec<_>>(),
            );
        })
    }

    #[test]
    fn every_array_an_event_holds_is_capped_and_named() {
        let mut c = with_event_id();
        c.limits.max_array_items = 2;
        let three = || {
            Value::from(vec![
                serde_json::json!({"value": 1, "timestamp": "2024-01-01T00:00:00Z"});
                3
            ])
        };
        for (field, body) in [
            ("media.images", images(3)),
            (
                "transaction.price.history",
                with(|v| v["transaction"]["price"]["history"] = three()),
            ),
            (
                "classifieds",
                with(|v| v["classifieds"] = Value::from(vec![serde_json::json!({}); 3])),
            ),
            (
                "classifieds[].transaction.history",
                with(|v| v["classifieds"][0]["transaction"]["history"] = three()),
            ),
        ] {
            assert_eq!(
                parse(&c, &body),
                Err(ParseError::TooManyItems {
                    field,
                    count: 3,
                    max: 2
                }),
                "{field}"
            );
        }
        assert_eq!(parse(&c, &images(2)).map(|e| e.len()), Ok(1));
    }

    #[test]
    fn hostile_variants_give_events_or_precise_errors() {
        let many_images = with(|v| {
            v["media"]["images"] = Value::from(
                (0..50_000)
                    .map(|i| serde_json::json!({"url": format!("https://i/{i}.jpg"), "position": 50_000 - i}))
                    .collect::<Vec<_>>(),
            );
        });
        let cases: Vec<(&str, Vec<u8>, Expect)> = vec![
            (
                "truncated",
                fixture(FIXTURE)[..200].to_vec(),
                Expect::Kind("invalid_json"),
            ),
            (
                "no id",
                with(|v| {
                    let _ = v.as_object_mut().map(|o| o.remove("id"));
                }),
                Expect::Error(ParseError::MissingField("id")),
            ),
            (
                "id is an object",
                with(|v| v["id"] = serde_json::json!({"x": 1})),
                Expect::Error(ParseError::MissingField("id")),
            ),
            (
                "numeric id",
                with(|v| v["id"] = Value::from(123)),
                Expect::Events(1),
            ),
            (
                "unparseable lastSeenAt",
                with(|v| v["meta"]["lastSeenAt"] = Value::from("hier")),
                Expect::Kind("invalid_field"),
            ),
            (
                "no meta at all",
                with(|v| {
                    let _ = v.as_object_mut().map(|o| o.remove("meta"));
                }),
                Expect::Events(1),
            ),
            (
                "numbers as strings",
                with(|v| {
                    v["transaction"]["price"]["current"] = Value::from("720000");
                    v["property"]["bedroomCount"] = Value::from("3");
                    v["property"]["terraceExists"] = Value::from("true");
                }),
                Expect::Events(1),
            ),
            (
                "unknown enums",
                with(|v| {
                    v["transaction"]["type"] = Value::from("viager");
                    v["property"]["type"] = Value::from("péniche");
                    v["energy"]["dpe"]["label"] = Value::from("H+");
                }),
                Expect::Events(1),
            ),
            (
                "nulls everywhere",
                with(|v| {
                    for key in [
                        "status",
                        "classifieds",
                        "location",
                        "media",
                        "property",
                        "transaction",
                        "energy",
                    ] {
                        v[key] = Value::Null;
                    }
                }),
                Expect::Events(1),
            ),
            (
                "invalid e-mail and extra fields",
                with(|v| {
                    v["classifieds"][0]["publisher"]["email"] = Value::from("@@@");
                    v["unexpected"] = serde_json::json!([{"deep": {"er": 1}}]);
                }),
                Expect::Events(1),
            ),
            (
                "classifieds is an object",
                with(|v| v["classifieds"] = serde_json::json!({"id": 1})),
                Expect::Events(1),
            ),
            (
                "huge image list",
                many_images,
                Expect::Error(ParseError::TooManyItems {
                    field: "media.images",
                    count: 50_000,
                    max: 1_000,
                }),
            ),
            ("image list at the limit", images(1_000), Expect::Events(1)),
            (
                "deep nesting",
                nested(10_000, "1").into_bytes(),
                Expect::Kind("invalid_json"),
            ),
            (
                "string body",
                br#""property""#.to_vec(),
                Expect::Kind("invalid_field"),
            ),
            (
                "not JSON",
                b"id=1&status=sold".to_vec(),
                Expect::Kind("invalid_json"),
            ),
        ];
        check_hostile(parse, &with_event_id(), &cases);
    }

    #[test]
    fn other_languages_and_unordered_images_are_kept() {
        let body = with(|v| {
            v["description"] = Value::from("Квартира с видом — 景色の良いアパート");
            v["media"]["images"] =
                serde_json::json!([{"url": "b", "position": 2}, {"url": "a", "position": 1}]);
        });
        let e = &parse(&with_event_id(), &body).expect("parses")[0];
        let p = e.property.as_ref().expect("snapshot");
        assert_eq!(
            p.description.as_deref(),
            Some("Квартира с видом — 景色の良いアパート")
        );
        assert_eq!(p.pictures, Some(vec!["a".to_string(), "b".to_string()]));
    }
}
