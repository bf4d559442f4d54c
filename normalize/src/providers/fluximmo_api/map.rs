//! A `PropertyDto` → [`PropertySnapshot`], field by field (the parent
//! module's doc says what maps to what). Every reader takes the DTO's value
//! as an `Option<&Value>` and gives `None` for anything absent, null or
//! unusable.

use schemas::{
    Advert, EnergyClass, Location, PricePoint, PropertySnapshot, PropertyType, TransactionType,
};
use serde_json::Value;

use super::super::cleared::Kind;
use super::super::json::{
    boolean, child, int, items, lower, number, optional_time, text, url_host,
};

/// The snapshot of one `PropertyDto`.
pub(super) fn snapshot(dto: &Value) -> PropertySnapshot {
    let habitation = dto.get("habitation");
    let price = dto.get("price");
    let meta = dto.get("meta");
    let mut p = PropertySnapshot::empty();
    (p.property_type, p.provider_property_type) =
        with_provider_value(dto.get("type"), property_type);
    (p.transaction_type, p.provider_transaction_type) =
        with_provider_value(child(dto.get("offer"), "type"), transaction_type);
    p.title = text(dto.get("title"));
    p.description = text(dto.get("description"));
    p.price = latest_value(price);
    p.price_per_m2 = number(child(child(price, "latest"), "valuePerArea"));
    p.price_scope = text(child(price, "scope"));
    let variation = child(price, "variation");
    p.price_change_percent = number(child(variation, "sinceLastModified"));
    p.price_change_since_listed_percent = number(child(variation, "sincePublished"));
    p.currency = p.price.and_then(|_| currency(child(price, "currency")));
    p.price_history = price_history(
        price,
        optional_time(child(meta, "firstSeenAt")),
        optional_time(child(meta, "lastUpdatedAt")),
    );
    p.location = location(dto.get("location"));
    habitation_fields(&mut p, habitation);
    p.land_surface_m2 = number(child(dto.get("land"), "surface"));
    p.pictures = pictures(child(dto.get("medias"), "images"));
    p.first_seen_at = optional_time(child(meta, "firstSeenAt"));
    p.last_seen_at = optional_time(child(meta, "lastSeenAt"));
    p.status = boolean(child(meta, "isTotallyOffline")).map(|offline| offline_status(!offline));
    p.adverts = adverts(dto.get("adverts"));
    p
}

/// A kind mapped with `map`, and the provider's value when the kind does
/// not say it (`other`, `unknown`).
fn with_provider_value<K: Kind>(value: Option<&Value>, map: fn(&str) -> K) -> (K, Option<String>) {
    let Some(verbatim) = text(value) else {
        return (K::UNKNOWN, None);
    };
    let kind = map(&verbatim);
    let kept = kind.keeps_provider_value().then_some(verbatim);
    (kind, kept)
}

/// `EnumPropertyClassDto` (2024, plus the 2026 `CLASS_ROOM` / `CLASS_OTHER`).
fn property_type(class: &str) -> PropertyType {
    match class {
        "CLASS_FLAT" => PropertyType::Apartment,
        "CLASS_HOUSE" => PropertyType::House,
        "CLASS_LAND" => PropertyType::Land,
        "CLASS_PARKING" => PropertyType::Parking,
        "CLASS_BUILDING" => PropertyType::Building,
        "CLASS_SHOP" | "CLASS_PREMISES" | "CLASS_OFFICE" => PropertyType::Commercial,
        "CLASS_UNKNOWN" => PropertyType::Unknown,
        _ => PropertyType::Other,
    }
}

/// `EnumPropertyOfferTypeDto`: only a plain sale or rent is one of ours.
fn transaction_type(offer: &str) -> TransactionType {
    match offer {
        "OFFER_BUY" => TransactionType::Sale,
        "OFFER_RENT" => TransactionType::Rent,
        _ => TransactionType::Unknown,
    }
}

/// `price.latest.value` of a `PriceDto`.
fn latest_value(price: Option<&Value>) -> Option<f64> {
    number(child(child(price, "latest"), "value"))
}

/// `EnumCurrencyDto` in any of its spellings, as an ISO 4217 code.
fn currency(value: Option<&Value>) -> Option<String> {
    let Some(raw) = text(value) else {
        return Some("EUR".to_string());
    };
    let upper = raw.to_ascii_uppercase();
    let code = upper.strip_prefix("CURRENCY_").unwrap_or(&upper);
    (code.len() == 3 && code.chars().all(|c| c.is_ascii_uppercase())).then(|| code.to_string())
}

/// `price.initial` at `initial_at` and `price.latest` at `latest_at`,
/// oldest first; a point without a price or a time is left out, and the
/// latest is left out when it repeats the initial.
fn price_history(
    price: Option<&Value>,
    initial_at: Option<i64>,
    latest_at: Option<i64>,
) -> Option<Vec<PricePoint>> {
    let point = |at: Option<i64>, value: Option<f64>| {
        Some(PricePoint {
            at: at?,
            price: value?,
        })
    };
    let initial = point(initial_at, number(child(child(price, "initial"), "value")));
    let latest = point(latest_at, latest_value(price));
    let mut points: Vec<PricePoint> = initial.into_iter().chain(latest).collect();
    points.sort_by_key(|p| p.at);
    points.dedup_by(|later, earlier| later.price == earlier.price);
    (!points.is_empty()).then_some(points)
}

fn location(location: Option<&Value>) -> Location {
    let field = |key: &str| child(location, key);
    let (longitude, latitude) = coordinates(child(field("locationCoordinate"), "location"))
        .or_else(|| coordinates(child(field("cityCoordinate"), "location")))
        .unzip();
    Location {
        city: text(field("city")),
        postcode: text(field("postalCode")),
        insee_code: text(field("inseeCode")),
        iris_code: text(field("irisCode")),
        department: text(field("department")),
        latitude,
        longitude,
        ..Location::default()
    }
}

/// A `[lng, lat]` pair (a third member, an altitude, is ignored) whose
/// longitude is within ±180 and latitude within ±90.
fn coordinates(value: Option<&Value>) -> Option<(f64, f64)> {
    let pair = value?.as_array()?;
    if !(2..=3).contains(&pair.len()) {
        return None;
    }
    let longitude = number(pair.first())?;
    let latitude = number(pair.get(1))?;
    (longitude.abs() <= 180.0 && latitude.abs() <= 90.0).then_some((longitude, latitude))
}

/// What `habitation` (a `TypeHabitationDto`) says that the snapshot holds.
fn habitation_fields(p: &mut PropertySnapshot, habitation: Option<&Value>) {
    let field = |key: &str| child(habitation, key);
    let surface = field("surface");
    let characteristics = field("characteristics");
    let has = |key: &str| boolean(child(characteristics, key));
    let features = field("features");
    let climate = field("climate");
    p.surface_m2 =
        number(child(surface, "total")).or_else(|| number(child(surface, "livingSpace")));
    p.rooms = int(field("roomCount"));
    p.bedrooms = int(field("bedroomCount"));
    p.bathrooms = int(field("bathroomCount"));
    p.floor = int(child(features, "propertyFloor"));
    p.furnished = furnished(child(features, "furniture"));
    p.orientation = suffix(child(features, "exposure"), "EXPOSURE_");
    p.elevator = has("hasLift");
    p.terrace = has("hasTerrace");
    p.balcony = has("hasBalcony");
    p.garden = has("hasGarden");
    p.parking = either(has("hasParking"), has("hasGarage"));
    let condition = field("propertyCondition");
    p.construction_year = int(child(condition, "constructionYear"));
    p.renovation_year = int(child(condition, "renovationYear"));
    p.dpe_class = energy_class(child(climate, "epcEnergy"), "ENERGY_CLASSIFICATION_");
    p.dpe_value = number(child(climate, "epcEnergyScore"));
    p.ges_class = energy_class(child(climate, "epcClimate"), "GREENHOUSE_CLASSIFICATION_");
    p.ges_value = number(child(climate, "epcClimateScore"));
}

/// `EnumFurnitureDto`: furnished, partly or fully, or not.
fn furnished(value: Option<&Value>) -> Option<bool> {
    match text(value)?.as_str() {
        "UNFURNISHED" => Some(false),
        "PARTIALLY_FURNISHED" | "FULLY_FURNISHED" => Some(true),
        _ => None,
    }
}

/// An enum's value without its `prefix`, lower-cased (`EXPOSURE_SOUTH_WEST`
/// → `south_west`); its `UNKNOWN` value is none.
fn suffix(value: Option<&Value>, prefix: &str) -> Option<String> {
    let raw = text(value)?;
    let rest = raw.strip_prefix(prefix).unwrap_or(&raw);
    (rest != "UNKNOWN").then(|| rest.to_lowercase())
}

/// Either one says yes, both must say no (`parking`: a parking space or a
/// garage).
fn either(a: Option<bool>, b: Option<bool>) -> Option<bool> {
    match (a, b) {
        (Some(true), _) | (_, Some(true)) => Some(true),
        (Some(false), Some(false)) => Some(false),
        _ => None,
    }
}

/// A DPE / GES enum (`ENERGY_CLASSIFICATION_C`, or a bare `C`) as a class:
/// `UNKNOWN` is none, `NC` (not communicated) and anything else `unknown`.
fn energy_class(value: Option<&Value>, prefix: &str) -> Option<EnergyClass> {
    suffix(value, prefix).map(|letter| EnergyClass::from_letter(&letter))
}

/// `medias.images[].url`, in order, once each.
fn pictures(images: Option<&Value>) -> Option<Vec<String>> {
    let mut urls: Vec<String> = Vec::new();
    for url in items(images)
        .iter()
        .filter_map(|image| text(image.get("url")))
    {
        if !urls.contains(&url) {
            urls.push(url);
        }
    }
    (!urls.is_empty()).then_some(urls)
}

/// `isTotallyOffline` / `isOnline` in the pipeline's status vocabulary.
fn offline_status(online: bool) -> String {
    if online { "active" } else { "expired" }.to_string()
}

fn adverts(value: Option<&Value>) -> Option<Vec<Advert>> {
    let adverts: Vec<Advert> = items(value)
        .iter()
        .filter(|ad| ad.is_object())
        .map(advert)
        .collect();
    (!adverts.is_empty()).then_some(adverts)
}

/// One `PropertyAdvertDto`.
fn advert(ad: &Value) -> Advert {
    let source = ad.get("source");
    let seller = ad.get("seller");
    let url = text(child(source, "url"));
    Advert {
        advert_id: text(ad.get("flxId")).or_else(|| text(child(source, "flxId"))),
        title: text(ad.get("title")),
        source_domain: url
            .as_deref()
            .and_then(url_host)
            .or_else(|| lower(child(source, "website"))),
        url,
        publisher_name: text(child(seller, "name")),
        publisher_type: suffix(child(seller, "type"), "SELLER_TYPE_"),
        publisher_is_professional: boolean(ad.get("isPro")),
        publisher_id: text(child(seller, "siren")).or_else(|| text(child(seller, "flxId"))),
        price: latest_value(ad.get("price")),
        price_history: None,
        status: boolean(ad.get("isOnline")).map(offline_status),
        published_at: optional_time(ad.get("firstSeenAt")),
        updated_at: optional_time(ad.get("lastSeenAt")),
    }
}
