//! Immoteur `property-notification` webhooks: the whole aggregated property
//! (`id`, `status`, `classifieds[]`, `location`, `media`, `meta`,
//! `property`, `transaction`, `energy`).
//!
//! The event id is the `event-id` Kafka header (ingest copies
//! `X-Immoteur-Event-Id` there; it is the same for every delivery of one
//! event). Without it the dedupe key falls back to a hash of the raw body,
//! DESIGN.md's second choice, rather than dead-lettering a valid property.
//!
//! **Times and re-crawls.** Immoteur notifies on every change and also on
//! every re-crawl (about every 24 h), even when nothing changed; a re-crawl
//! moves `meta.lastSeenAt` and keeps `meta.lastModifiedAt`. So
//! `occurred_at` is `meta.lastModifiedAt`, the time the data last changed,
//! else `meta.lastSeenAt`, else the arrival time at ingest; either meta
//! time present but unparseable is an error. A notification whose
//! `lastSeenAt` is later than its `lastModifiedAt` is a re-crawl: it is
//! marked `unchanged` (the property's merge takes nothing from it, so it
//! writes no new state), has the `occurred_at` of the change it repeats,
//! and does not carry `last_seen_at`. `last_seen_at` is `meta.lastSeenAt`
//! only on a real change: in a property's state it is the time Immoteur
//! saw the property as last changed, not its latest crawl. An advert's
//! `updated_at` is its classified's `meta.lastModifiedAt`, else its
//! `lastSeenAt`, for the same reason. Without `lastModifiedAt` a re-crawl
//! cannot be told from a change: `occurred_at` and `last_seen_at` are
//! `lastSeenAt`, and each re-crawl moves them.
//!
//! The event type follows `status.current`: `sold` → `sold`,
//! `expired`/`withdrawn`/`archived` → `expired`, anything else → `updated`
//! (the notification is a full snapshot, not a creation signal). Immoteur
//! reports a sale by that status only: its body has no sale price or date
//! (`transaction.price.current` is the last asking price), so `sold_price`
//! and `sold_at` are never set. A property type that maps to `other` (a
//! `castle`) or a transaction kind that maps to `unknown` (`viager`) keeps
//! the provider's value in `provider_property_type` /
//! `provider_transaction_type` ([`super::cleared::Cleared::kind`]).
//!
//! A key the body does not send is `None`, and one it sends as `null`,
//! `""` or `[]` (or under a `null` object) is listed in `cleared_fields`
//! ([`super::cleared`]). Prices are euros unless the body names a currency.
//! An array the event would hold (`classifieds`, `media.images`, a price
//! history) longer than `max_array_items` is an error naming it. Publisher
//! e-mails and phones are not carried (personal data, often invalid).

use schemas::{
    Advert, EventType, Location, PricePoint, PropertyEvent, PropertySnapshot, PropertyType,
    Provider, TransactionType,
};
use serde_json::Value;

use super::cleared::Cleared;
use super::event::{BodyHash, new_event};
use super::json::{
    at_most_items, body_object, boolean, checked_time, child, country_code, energy_class, int,
    items, lower, number, optional_time, text,
};
use super::{ParseError, RawContext};

/// Parses one property notification into exactly one event.
pub fn parse(context: &RawContext<'_>, body: &[u8]) -> Result<Vec<PropertyEvent>, ParseError> {
    let root = body_object(body)?;
    let property_id = text(root.get("id")).ok_or(ParseError::MissingField("id"))?;
    check_arrays(&root, context.limits.max_array_items)?;
    let meta = root.get("meta");
    let times = MetaTimes::of(meta)?;
    let occurred_at = times
        .last_modified_at
        .or(times.last_seen_at)
        .unwrap_or(context.received_at_ms);
    let status = root.get("status");
    let mut cleared = Cleared::default();
    let status = cleared.either(
        "status",
        [child(status, "current"), status.filter(|s| !s.is_object())],
        lower,
    );
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
    let mut snapshot = snapshot(&root, &mut cleared);
    snapshot.status = status;
    snapshot.last_seen_at = if times.is_recrawl() {
        None
    } else {
        cleared.one("last_seen_at", child(meta, "lastSeenAt"), |_| {
            times.last_seen_at
        })
    };
    event.property = Some(snapshot);
    event.cleared_fields = cleared.into_fields();
    event.unchanged = times.is_recrawl().then_some(true);
    Ok(vec![event])
}

/// The notification's `meta` times.
#[derive(Debug, Clone, Copy)]
struct MetaTimes {
    /// `meta.lastModifiedAt`: when the data last changed.
    last_modified_at: Option<i64>,
    /// `meta.lastSeenAt`: when Immoteur last crawled the property.
    last_seen_at: Option<i64>,
}

impl MetaTimes {
    /// Both times; either present but unparseable is an error.
    fn of(meta: Option<&Value>) -> Result<Self, ParseError> {
        Ok(Self {
            last_modified_at: checked_time(child(meta, "lastModifiedAt"), "meta.lastModifiedAt")?,
            last_seen_at: checked_time(child(meta, "lastSeenAt"), "meta.lastSeenAt")?,
        })
    }

    /// A re-crawl: seen again after the data last changed.
    fn is_recrawl(self) -> bool {
        matches!(
            (self.last_seen_at, self.last_modified_at),
            (Some(seen), Some(modified)) if seen > modified
        )
    }
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

/// The snapshot the notification describes, noting what it clears in `c`;
/// its status and `last_seen_at` are the caller's.
fn snapshot(root: &Value, c: &mut Cleared) -> PropertySnapshot {
    let property = root.get("property");
    let field = |key: &str| child(property, key);
    let transaction = root.get("transaction");
    let price = child(transaction, "price");
    let energy = root.get("energy");
    let label = |kind: &str| child(child(energy, kind), "label");
    let value = |kind: &str| child(child(energy, kind), "value");
    let meta = root.get("meta");
    let images = child(root.get("media"), "images");
    let classifieds = root.get("classifieds");

    let mut p = PropertySnapshot::empty();
    (p.transaction_type, p.provider_transaction_type) = c.kind(
        ("transaction_type", "provider_transaction_type"),
        child(transaction, "type"),
        |v| transaction_type(lower(v)),
    );
    (p.property_type, p.provider_property_type) = c.kind(
        ("property_type", "provider_property_type"),
        field("type"),
        |v| property_type(lower(v)),
    );
    p.title = c.one("title", root.get("title"), text);
    p.description = c.one("description", root.get("description"), text);
    let direct = price.filter(|pr| !pr.is_object());
    p.price = c.either("price", [child(price, "current"), direct], number);
    p.currency = p.price.map(|_| {
        text(child(price, "currency"))
            .map_or_else(|| "EUR".to_string(), |code| code.to_ascii_uppercase())
    });
    p.price_per_m2 = c.one("price_per_m2", child(price, "perSquareUnit"), number);
    p.price_history = c.one("price_history", child(price, "history"), price_history);
    p.surface_m2 = c.one("surface_m2", field("area"), number);
    p.land_surface_m2 = c.one("land_surface_m2", field("landArea"), number);
    p.rooms = c.one("rooms", field("roomCount"), int);
    p.bedrooms = c.one("bedrooms", field("bedroomCount"), int);
    p.bathrooms = c.one("bathrooms", field("bathroomCount"), int);
    p.floor = c.one("floor", field("floor"), int);
    let booleans = |first: &str, second: &str| [field(first), field(second)];
    p.furnished = c.either("furnished", booleans("furnished", "isFurnished"), boolean);
    p.elevator = c.either("elevator", booleans("elevatorExists", "elevator"), boolean);
    p.terrace = c.either("terrace", booleans("terraceExists", "terrace"), boolean);
    p.orientation = c.one("orientation", field("orientation"), lower);
    p.construction_year = c.one("construction_year", field("constructionYear"), int);
    p.location = location(root.get("location"), c);
    p.first_seen_at = c.one("first_seen_at", child(meta, "firstSeenAt"), optional_time);
    p.dpe_class = c.one("dpe_class", label("dpe"), energy_class);
    p.dpe_value = c.one("dpe_value", value("dpe"), number);
    p.ges_class = c.one("ges_class", label("ges"), energy_class);
    p.ges_value = c.one("ges_value", value("ges"), number);
    p.pictures = c.one("pictures", images, pictures);
    p.adverts = c.one("adverts", classifieds, |list| {
        let adverts: Vec<Advert> = items(list)
            .iter()
            .filter(|ad| ad.is_object())
            .map(classified)
            .collect();
        (!adverts.is_empty()).then_some(adverts)
    });
    p
}

fn location(location: Option<&Value>, c: &mut Cleared) -> Location {
    let field = |key: &str| child(location, key);
    let city = field("city");
    let city_text = city.filter(|v| !v.is_object());
    Location {
        address: c.one("location.address", field("address"), text),
        city: c.either("location.city", [child(city, "name"), city_text], text),
        postcode: c.one("location.postcode", field("postcode"), text),
        insee_code: c.one("location.insee_code", child(city, "inseeCode"), text),
        iris_code: None,
        department: c.one("location.department", field("department"), text),
        region: c.one("location.region", field("region"), text),
        country: c.one("location.country", field("country"), country_code),
        latitude: c.one("location.latitude", field("latitude"), number),
        longitude: c.one("location.longitude", field("longitude"), number),
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
    let meta = ad.get("meta");
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
        published_at: optional_time(child(meta, "firstSeenAt")),
        updated_at: optional_time(child(meta, "lastModifiedAt"))
            .or_else(|| optional_time(child(meta, "lastSeenAt"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::providers::testing::{
        Expect, LOCATION_PATHS, assert_golden, check_hostile, context, fixture, nested,
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
                "unparseable lastModifiedAt",
                with(|v| v["meta"]["lastModifiedAt"] = Value::from(20_250_620)),
                Expect::Kind("invalid_field"),
            ),
            (
                "a re-crawl of a change",
                changed(|v| v["meta"]["lastSeenAt"] = Value::from("2025-06-21T11:00:00Z")),
                Expect::Events(1),
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

    /// The fixture as a real change at its `lastSeenAt`: `lastModifiedAt`
    /// equal to it, on the property and on its classified.
    fn changed(edit: impl FnOnce(&mut Value)) -> Vec<u8> {
        with(|v| {
            v["meta"]["lastModifiedAt"] = Value::from("2025-06-20T11:00:00Z");
            v["classifieds"][0]["meta"] = serde_json::json!({
                "firstSeenAt": "2025-05-10T08:00:00Z",
                "lastModifiedAt": "2025-06-20T11:00:00Z",
                "lastSeenAt": "2025-06-20T11:00:00Z"
            });
            edit(v);
        })
    }

    /// A re-crawl a day later of the same data: a new notification (new
    /// event id, later arrival) whose `lastSeenAt` moved and whose
    /// `lastModifiedAt` did not.
    #[test]
    fn a_recrawl_has_the_time_and_the_data_of_the_change_it_repeats() {
        let original = &parse(&with_event_id(), &changed(|_| ())).expect("parses")[0];
        let mut next_day = context("immoteur");
        next_day.event_id = Some("6f1c8a52-0000-4000-8000-000000000002");
        next_day.received_at_ms += 86_400_000;
        next_day.offset += 1;
        let recrawl = changed(|v| {
            v["meta"]["lastSeenAt"] = Value::from("2025-06-21T11:00:00Z");
            v["classifieds"][0]["meta"]["lastSeenAt"] = Value::from("2025-06-21T11:05:00Z");
        });
        let recrawl = &parse(&next_day, &recrawl).expect("parses")[0];
        assert_ne!(recrawl.dedupe_key, original.dedupe_key, "another event");
        assert_eq!(
            (original.unchanged, recrawl.unchanged),
            (None, Some(true)),
            "the provider says nothing changed"
        );
        assert_eq!(original.occurred_at, 1_750_417_200_000, "lastModifiedAt");
        assert_eq!(recrawl.occurred_at, original.occurred_at);
        assert_eq!(recrawl.event_type, original.event_type);
        let (original_p, recrawl_p) = (
            original.property.as_ref().expect("snapshot"),
            recrawl.property.as_ref().expect("snapshot"),
        );
        assert_eq!(original_p.last_seen_at, Some(1_750_417_200_000));
        assert_eq!(
            recrawl_p.last_seen_at, None,
            "a re-crawl does not carry last_seen_at"
        );
        assert_eq!(
            recrawl_p,
            &PropertySnapshot {
                last_seen_at: None,
                ..original_p.clone()
            },
            "the same data, advert times included"
        );
        assert_eq!(recrawl.cleared_fields, original.cleared_fields);
        assert!(
            !recrawl
                .cleared_fields
                .iter()
                .flatten()
                .any(|path| path == "last_seen_at"),
            "not carried is not cleared"
        );
        let state = property_state::merge(None, original).state;
        let after = property_state::merge(Some(&state), recrawl);
        assert!(!after.changed, "{:?}", after.changed_fields);
        assert_eq!(after.state, state);
    }

    #[test]
    fn a_change_after_the_last_crawl_is_still_a_change() {
        let body = with(|v| {
            v["meta"]["lastModifiedAt"] = Value::from("2025-06-21T00:00:00Z");
        });
        let e = &parse(&with_event_id(), &body).expect("parses")[0];
        assert_eq!(e.occurred_at, 1_750_464_000_000, "lastModifiedAt");
        assert_eq!(
            e.property.as_ref().and_then(|p| p.last_seen_at),
            Some(1_750_417_200_000),
            "lastSeenAt is not later than the change: carried"
        );
    }

    #[test]
    fn meta_times_present_but_unreadable_are_errors_naming_them() {
        for (key, field) in [
            ("lastModifiedAt", "meta.lastModifiedAt"),
            ("lastSeenAt", "meta.lastSeenAt"),
        ] {
            let body = changed(|v| v["meta"][key] = Value::from("hier"));
            assert!(
                matches!(
                    parse(&with_event_id(), &body),
                    Err(ParseError::InvalidField { field: f, .. }) if f == field
                ),
                "{key}"
            );
        }
        let body = changed(|v| v["meta"]["lastModifiedAt"] = Value::Null);
        assert_eq!(
            parse(&with_event_id(), &body).expect("parses")[0].occurred_at,
            1_750_417_200_000,
            "a null lastModifiedAt falls back to lastSeenAt"
        );
    }

    #[test]
    fn kinds_it_cannot_map_keep_the_providers_words() {
        let body = with(|v| {
            v["property"]["type"] = Value::from("castle");
            v["transaction"]["type"] = Value::from("viager");
        });
        let e = &parse(&with_event_id(), &body).expect("parses")[0];
        let p = e.property.as_ref().expect("snapshot");
        assert_eq!(p.property_type, PropertyType::Other);
        assert_eq!(p.provider_property_type.as_deref(), Some("castle"));
        assert_eq!(p.transaction_type, TransactionType::Unknown);
        assert_eq!(p.provider_transaction_type.as_deref(), Some("viager"));
        assert_eq!(
            e.cleared_fields,
            Some(vec!["transaction_type".to_string()]),
            "an unmapped kind clears the enum, so state and provider value agree"
        );
        let e = &parse(&with_event_id(), &fixture(FIXTURE)).expect("parses")[0];
        let p = e.property.as_ref().expect("snapshot");
        assert_eq!(
            (p.property_type, p.transaction_type),
            (PropertyType::Apartment, TransactionType::Sale)
        );
        assert_eq!(
            (&p.provider_property_type, &p.provider_transaction_type),
            (&None, &None)
        );
        assert_eq!(
            e.cleared_fields,
            Some(
                ["provider_transaction_type", "provider_property_type"]
                    .map(String::from)
                    .to_vec()
            )
        );
    }

    #[test]
    fn explicit_nulls_and_empties_are_cleared_and_absent_keys_are_unknown() {
        let body = with(|v| {
            v["description"] = Value::Null;
            v["location"] = Value::Null;
            v["media"]["images"] = serde_json::json!([]);
            v["transaction"]["price"]["history"] = serde_json::json!([]);
            v["property"]["terraceExists"] = Value::Null;
            v["energy"]["ges"] = Value::Null;
            let _ = v.as_object_mut().map(|o| o.remove("classifieds"));
            let _ = v["property"].as_object_mut().map(|o| o.remove("area"));
        });
        let e = &parse(&with_event_id(), &body).expect("parses")[0];
        let p = e.property.as_ref().expect("snapshot");
        assert_eq!((p.description.as_ref(), p.surface_m2), (None, None));
        assert_eq!(p.location, Location::default());
        assert_eq!(p.price, Some(720_000.0));
        let cleared = e.cleared_fields.clone().unwrap_or_default();
        let others = ["description", "price_history", "terrace", "ges_class"];
        for path in others
            .iter()
            .chain(&LOCATION_PATHS)
            .chain(&["ges_value", "pictures"])
        {
            assert!(cleared.iter().any(|c| c == *path), "{path} in {cleared:?}");
        }
        for path in ["adverts", "surface_m2", "price", "dpe_class", "status"] {
            assert!(!cleared.iter().any(|c| c == path), "{path} in {cleared:?}");
        }
        assert!(schemas::encode_datum(e).is_ok());
    }

    #[test]
    fn a_sold_status_is_the_only_sale_immoteur_reports() {
        let body = with(|v| v["status"]["current"] = Value::from("sold"));
        let e = &parse(&with_event_id(), &body).expect("parses")[0];
        let p = e.property.as_ref().expect("snapshot");
        assert_eq!(e.event_type, EventType::Sold);
        assert_eq!(p.status.as_deref(), Some("sold"));
        assert_eq!((p.sold_price, p.sold_at), (None, None));
        assert_eq!(p.price, Some(720_000.0), "the last asking price");
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
