//! Fluximmo API v2 answers: the `PropertyDto` a property fetch returns →
//! our [`PropertySnapshot`]. Pure (no IO): the enrichment stage fetches the
//! properties a Fluximmo webhook names (`GET /v2/protected/properties/{flxId}`
//! → `{"data": PropertyDto}`, [`parse_property_response`];
//! `POST /v2/protected/properties/_many` → `{"data": [PropertyDto, ...]}`,
//! [`parse_many_response`]) and turns each into a full-snapshot event; the
//! fuzz target `fluximmo_api` runs both on arbitrary bytes. The documented
//! DTO is in `../shared/fixtures/fluximmo/api/README.md`.
//!
//! Beside the snapshot, a [`FetchedProperty`] carries the `flxId`,
//! `meta.lastUpdatedAt` (the version of the property: the cache key and the
//! event time; `None` when absent or not an RFC 3339 time, then the stage
//! uses the arrival time and does not cache) and `meta.isTotallyOffline`.
//!
//! What maps to what (`fluximmo_api/map.rs` has the details):
//! - `type` → `property_type` (`CLASS_FLAT` apartment, `CLASS_HOUSE` house,
//!   `CLASS_LAND`, `CLASS_PARKING`, `CLASS_BUILDING`, `CLASS_SHOP` /
//!   `CLASS_PREMISES` / `CLASS_OFFICE` commercial; `CLASS_PROGRAM`,
//!   `CLASS_ROOM`, `CLASS_OTHER` and any value we do not know are `other`,
//!   `CLASS_UNKNOWN` is `unknown`, both keeping the value in
//!   `provider_property_type`); `offer.type` → `transaction_type`
//!   (`OFFER_BUY` sale, `OFFER_RENT` rent; every other offer, holidays,
//!   life annuity, lease-back, business take-over, auction, is `unknown`
//!   with the value in `provider_transaction_type`, so nothing is lost).
//! - `price.latest.value` / `.valuePerArea` → `price` / `price_per_m2`;
//!   `price.currency` `CURRENCY_EUR`, `EUR` → `EUR`, `CURRENCY_USD` → `USD`,
//!   null or absent → `EUR` (Fluximmo covers France), anything that is not
//!   a three-letter code → no currency. `price.initial` at
//!   `meta.firstSeenAt` and `price.latest` at `meta.lastUpdatedAt` →
//!   `price_history` (the DTO dates neither price: the first is the first
//!   advert's, the second held at the last update at the latest).
//! - `location` city, postal code, INSEE code, department → `location`;
//!   `locationCoordinate.location`, else `cityCoordinate.location`, read in
//!   the documented `[lng, lat]` order. A pair whose longitude is outside
//!   ±180 or latitude outside ±90 is ignored (both coordinates unknown). A
//!   pair sent swapped (`[lat, lng]`) is not swapped back: it cannot be
//!   told from a real point unless it is out of range, and then it is
//!   ignored, never guessed.
//! - `habitation`: `surface.total` (else `livingSpace`) → `surface_m2`,
//!   `roomCount`, `bedroomCount`, `bathroomCount`, `features.propertyFloor`
//!   → `floor`, `features.furniture` → `furnished`, `features.exposure` →
//!   `orientation` (`south_west`), `characteristics.hasLift` → `elevator`,
//!   `hasTerrace` → `terrace`, `hasBalcony` → `balcony`, `hasGarden` →
//!   `garden`, `hasParking` or `hasGarage` → `parking`, `climate` letters
//!   and scores → DPE / GES (`*_UNKNOWN` is unknown, `*_NC` the `unknown`
//!   class), `propertyCondition.constructionYear` / `renovationYear`;
//!   `land.surface` → `land_surface_m2`.
//! - `price.scope` → `price_scope` (verbatim), `price.variation`
//!   `sinceLastModified` / `sincePublished` → `price_change_percent` /
//!   `price_change_since_listed_percent`; `location.irisCode` →
//!   `location.iris_code`.
//! - `medias.images[].url` → `pictures`; `meta.firstSeenAt` /
//!   `lastSeenAt` → first / last seen; `meta.isTotallyOffline` → `status`
//!   `expired` (every advert offline) or `active`.
//! - `adverts[]` → `adverts`: `flxId`, title, `source.url`, the URL's host
//!   (else `source.website`) as `source_domain`, `seller.name`,
//!   `seller.type` (`agency`, `network`), `isPro`, `seller.siren` (else
//!   its `flxId`), `price.latest.value`, `isOnline` → `active` / `expired`,
//!   `firstSeenAt` / `lastSeenAt`.
//!
//! What the snapshot cannot hold yet (each needs a schema field): `tags`,
//! `isUrgent`, `hasAnomaly`; `offer.isCurrentlyOccupied`, `offer.renting.*`;
//! `isAuction`, `warrantyDeposit`, `charges`, the absolute variations, the
//! sources of `price.initial` / `latest`; the city centre when the
//! property's own position is known; `habitation.type` (T1...,
//! villa), `wcCount`, every surface but the total (`livingRoom`, `kitchen`,
//! `terraces`, `gardens`...), the other characteristics (`hasPool`,
//! `hasCellar`, `hasAlarm`, `hasFireplace`...), `features.propertyTotalFloor`, views,
//! materials, `hasThroughExposure`, heating (`heatTypes`, `heatTypeDetails`,
//! `heatings`), the climate dates, `interiorCondition`,
//! `generalConditions`; `land.*` but its surface; `parking.*`; image
//! hashes and ids, `virtualVisitExternalUrl`; `meta.lastPublishedAt`,
//! `totallyOfflineAt`; per advert: its description, location, media,
//! `offlineAt`, `hasAnomaly`, `isExclusive`, its price's currency, initial
//! price and variation, the seller's Fluximmo id beside a SIREN, and
//! `contactInCharge` (personal data, not carried).
//!
//! Lenient as the webhook parsers are: every field is optional, numbers may
//! be strings, an unknown enum keeps the provider's value, a null or absent
//! object leaves its fields unknown (`None`: a fetched property says
//! nothing is cleared). Strict where the result would be wrong: a body that
//! is not JSON, has no `data` (an `{"error": ...}` body is named), or a
//! property without `flxId`; an array the snapshot holds (`medias.images`,
//! `adverts`) longer than `max_array_items`, or a bulk answer of more
//! properties than `max_events_per_record`, is `TooManyItems` /
//! `TooManyEvents`. In a bulk answer an element that is not an object or
//! has no `flxId` is skipped: it names no property, so the ids the stage
//! asked for and does not find are "missing from the bulk answer", which
//! the stage handles per id (a fetch by id, then a dead letter).

mod map;
#[cfg(test)]
pub(crate) mod tests;

use schemas::PropertySnapshot;
use serde_json::Value;

use super::json::{at_most_items, body_object, boolean, child, optional_time, text};
use super::{Limits, ParseError, at_most_events};

/// One property the API returned, mapped.
#[derive(Debug, Clone, PartialEq)]
pub struct FetchedProperty {
    /// The property's `flxId` (the id the webhook names).
    pub flx_id: String,
    /// `meta.lastUpdatedAt`, Unix ms: the property's version.
    pub last_updated_at: Option<i64>,
    /// `meta.isTotallyOffline`: every advert is offline.
    pub totally_offline: Option<bool>,
    /// The property, mapped.
    pub snapshot: PropertySnapshot,
}

/// Field paths of errors, by-id answer or bulk answer.
struct Paths {
    flx_id: &'static str,
    images: &'static str,
    adverts: &'static str,
}

const BY_ID: Paths = Paths {
    flx_id: "data.flxId",
    images: "data.medias.images",
    adverts: "data.adverts",
};

const BULK: Paths = Paths {
    flx_id: "data[].flxId",
    images: "data[].medias.images",
    adverts: "data[].adverts",
};

/// A `GET /v2/protected/properties/{flxId}` answer: `{"data": PropertyDto}`.
pub fn parse_property_response(
    body: &[u8],
    limits: &Limits,
) -> Result<FetchedProperty, ParseError> {
    let data = response_data(body)?;
    if !data.is_object() {
        return Err(invalid("data", "expected a PropertyDto object"));
    }
    fetched(&data, limits, &BY_ID)
}

/// A `POST /v2/protected/properties/_many` answer:
/// `{"data": [PropertyDto, ...]}`, in the answer's order; elements that
/// name no property are skipped (module doc).
pub fn parse_many_response(
    body: &[u8],
    limits: &Limits,
) -> Result<Vec<FetchedProperty>, ParseError> {
    let data = response_data(body)?;
    let dtos = data
        .as_array()
        .ok_or_else(|| invalid("data", "expected an array of PropertyDto"))?;
    at_most_events(dtos.len(), limits)?;
    dtos.iter()
        .filter(|dto| names_a_property(dto))
        .map(|dto| fetched(dto, limits, &BULK))
        .collect()
}

/// The body's `data`, or why there is none.
fn response_data(body: &[u8]) -> Result<Value, ParseError> {
    let mut root = body_object(body)?;
    if let Some(error) = root.get("error").filter(|e| e.is_object()) {
        return Err(invalid("error", &api_error(error)));
    }
    match root.get_mut("data").map(Value::take) {
        None | Some(Value::Null) => Err(ParseError::MissingField("data")),
        Some(data) => Ok(data),
    }
}

/// `{"message": ..., "code": ...}` as one line.
fn api_error(error: &Value) -> String {
    let message = text(error.get("message")).unwrap_or_else(|| "no message".to_string());
    let code = text(error.get("code")).unwrap_or_else(|| "none".to_string());
    format!("the API answered an error: {message} (code {code})")
}

/// Whether a bulk element is an object with a `flxId`.
fn names_a_property(dto: &Value) -> bool {
    dto.is_object() && text(dto.get("flxId")).is_some()
}

/// One `PropertyDto`, checked against the limits and mapped.
fn fetched(dto: &Value, limits: &Limits, paths: &Paths) -> Result<FetchedProperty, ParseError> {
    let flx_id = text(dto.get("flxId")).ok_or(ParseError::MissingField(paths.flx_id))?;
    let max = limits.max_array_items;
    at_most_items(child(dto.get("medias"), "images"), paths.images, max)?;
    at_most_items(dto.get("adverts"), paths.adverts, max)?;
    let meta = dto.get("meta");
    Ok(FetchedProperty {
        flx_id,
        last_updated_at: optional_time(child(meta, "lastUpdatedAt")),
        totally_offline: boolean(child(meta, "isTotallyOffline")),
        snapshot: map::snapshot(dto),
    })
}

fn invalid(field: &'static str, reason: &str) -> ParseError {
    ParseError::InvalidField {
        field,
        reason: reason.to_string(),
    }
}
