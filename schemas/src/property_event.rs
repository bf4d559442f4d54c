//! Rust mirror of `avro/property_event.avsc`, field for field.
//!
//! Times are Unix milliseconds (Avro `timestamp-millis`). Enums carry an
//! `Unknown` fallback, so a reader never fails on a symbol it does not know.

use serde::{Deserialize, Serialize};

/// One normalized real-estate event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PropertyEvent {
    /// The provider's event id, or one derived from the dedupe key.
    pub event_id: String,
    /// Key shared by every delivery of the same event.
    pub dedupe_key: String,
    /// Configured ingest source.
    pub source: String,
    /// Provider kind of the source.
    pub provider: Provider,
    /// The provider's identifier of the property.
    pub provider_property_id: String,
    /// `<source>:<provider_property_id>`.
    pub property_key: String,
    /// What happened.
    pub event_type: EventType,
    /// When the provider says it happened (Unix ms).
    pub occurred_at: i64,
    /// When ingest received the webhook (Unix ms).
    pub received_at: i64,
    /// Matching alert or saved search.
    pub alert_id: Option<String>,
    /// The provider's own name for the event, verbatim.
    pub provider_event_type: Option<String>,
    /// The field change, when there is one.
    pub change: Option<FieldChange>,
    /// The property snapshot, when the provider sends one.
    pub property: Option<PropertySnapshot>,
    /// Origin of the event.
    pub lineage: Lineage,
    /// Snapshot fields this event explicitly says are empty, by path
    /// (`price`, `location.city`). A null snapshot field not listed here is
    /// unknown: merging the event leaves the known value alone.
    pub cleared_fields: Option<Vec<String>>,
    /// The sender's event time when it was later than `received_at` plus
    /// the allowed skew (`occurred_at` then holds `received_at`).
    pub occurred_at_claimed: Option<i64>,
    /// `Some(true)` when the provider says the property did not change (an
    /// Immoteur re-crawl): kept as a fact, it changes no property state.
    pub unchanged: Option<bool>,
}

/// Provider kinds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Provider {
    /// The generic HMAC-signed "real-estate platform" envelope.
    Generic,
    /// Fluximmo alerts.
    Fluximmo,
    /// Stream.estate (notif.immo).
    StreamEstate,
    /// Immoteur property notifications.
    Immoteur,
    /// Any Standard Webhooks sender.
    StandardWebhooks,
    /// A provider this reader does not know.
    Unknown,
}

/// Event types.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventType {
    /// A new listing.
    Created,
    /// A listing changed.
    Updated,
    /// The price changed.
    PriceChanged,
    /// The surface changed.
    SurfaceChanged,
    /// The pictures changed.
    PicturesChanged,
    /// The listing expired.
    Expired,
    /// The property was sold.
    Sold,
    /// Only the property's id was sent.
    ReferenceOnly,
    /// An event type this reader does not know.
    Unknown,
}

impl EventType {
    /// The Avro symbol (also the text stored in PostgreSQL).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Created => "created",
            Self::Updated => "updated",
            Self::PriceChanged => "price_changed",
            Self::SurfaceChanged => "surface_changed",
            Self::PicturesChanged => "pictures_changed",
            Self::Expired => "expired",
            Self::Sold => "sold",
            Self::ReferenceOnly => "reference_only",
            Self::Unknown => "unknown",
        }
    }
}

/// A single field's change.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FieldChange {
    /// Changed field, as the provider names it.
    pub field: String,
    /// Previous value as text.
    pub old_value: Option<String>,
    /// New value as text.
    pub new_value: Option<String>,
    /// Relative change in percent.
    pub percent: Option<f64>,
    /// Previous value as a number, when it is one.
    pub old_number: Option<f64>,
    /// New value as a number, when it is one.
    pub new_number: Option<f64>,
}

/// Sale or rent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TransactionType {
    /// For sale.
    Sale,
    /// For rent.
    Rent,
    /// Not known.
    Unknown,
}

/// Kind of property.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PropertyType {
    /// Apartment or flat.
    Apartment,
    /// House.
    House,
    /// Land or plot.
    Land,
    /// Parking space or garage.
    Parking,
    /// Shop, office or other commercial premises.
    Commercial,
    /// Whole building.
    Building,
    /// Anything else the provider names.
    Other,
    /// Not known.
    Unknown,
}

/// The property as described at the time of the event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PropertySnapshot {
    /// Sale or rent.
    pub transaction_type: TransactionType,
    /// The provider's own transaction kind, verbatim, when it maps to
    /// `Unknown`.
    pub provider_transaction_type: Option<String>,
    /// Kind of property.
    pub property_type: PropertyType,
    /// The provider's own property type, verbatim, when it maps to `Other`
    /// or `Unknown`.
    pub provider_property_type: Option<String>,
    /// Listing title.
    pub title: Option<String>,
    /// Listing description.
    pub description: Option<String>,
    /// Price in the major unit of `currency`.
    pub price: Option<f64>,
    /// ISO 4217 code.
    pub currency: Option<String>,
    /// Price per m² of living surface.
    pub price_per_m2: Option<f64>,
    /// What the price covers, as the provider says it.
    pub price_scope: Option<String>,
    /// Change of the price since its last change, percent.
    pub price_change_percent: Option<f64>,
    /// Change of the price since the listing was first published, percent.
    pub price_change_since_listed_percent: Option<f64>,
    /// Living surface, m².
    pub surface_m2: Option<f64>,
    /// Land surface, m².
    pub land_surface_m2: Option<f64>,
    /// Rooms.
    pub rooms: Option<i32>,
    /// Bedrooms.
    pub bedrooms: Option<i32>,
    /// Bathrooms.
    pub bathrooms: Option<i32>,
    /// Floor number.
    pub floor: Option<i32>,
    /// Let furnished.
    pub furnished: Option<bool>,
    /// Listing status.
    pub status: Option<String>,
    /// Price the property sold at, when the provider reports a sale.
    pub sold_price: Option<f64>,
    /// When the property sold (Unix ms).
    pub sold_at: Option<i64>,
    /// Where the property is.
    pub location: Location,
    /// First seen by the provider (Unix ms).
    pub first_seen_at: Option<i64>,
    /// Last seen by the provider (Unix ms).
    pub last_seen_at: Option<i64>,
    /// Prices over time, oldest first.
    pub price_history: Option<Vec<PricePoint>>,
    /// The building has an elevator.
    pub elevator: Option<bool>,
    /// A terrace.
    pub terrace: Option<bool>,
    /// A balcony.
    pub balcony: Option<bool>,
    /// A garden.
    pub garden: Option<bool>,
    /// A parking space or a garage.
    pub parking: Option<bool>,
    /// Main orientation, lower-cased.
    pub orientation: Option<String>,
    /// Year the building was built.
    pub construction_year: Option<i32>,
    /// Year of the last renovation.
    pub renovation_year: Option<i32>,
    /// Energy performance (DPE) class.
    pub dpe_class: Option<EnergyClass>,
    /// DPE value, kWh/m²/year.
    pub dpe_value: Option<f64>,
    /// Greenhouse-gas (GES) class.
    pub ges_class: Option<EnergyClass>,
    /// GES value, kg CO₂e/m²/year.
    pub ges_value: Option<f64>,
    /// Picture URLs.
    pub pictures: Option<Vec<String>>,
    /// Nearby public-transport stations.
    pub stations: Option<Vec<Station>>,
    /// The ads that describe the property.
    pub adverts: Option<Vec<Advert>>,
}

impl PropertySnapshot {
    /// An empty snapshot of unknown kind, to fill field by field.
    pub fn empty() -> Self {
        Self {
            transaction_type: TransactionType::Unknown,
            provider_transaction_type: None,
            property_type: PropertyType::Unknown,
            provider_property_type: None,
            title: None,
            description: None,
            price: None,
            currency: None,
            price_per_m2: None,
            price_scope: None,
            price_change_percent: None,
            price_change_since_listed_percent: None,
            surface_m2: None,
            land_surface_m2: None,
            rooms: None,
            bedrooms: None,
            bathrooms: None,
            floor: None,
            furnished: None,
            status: None,
            sold_price: None,
            sold_at: None,
            location: Location::default(),
            first_seen_at: None,
            last_seen_at: None,
            price_history: None,
            elevator: None,
            terrace: None,
            balcony: None,
            garden: None,
            parking: None,
            orientation: None,
            construction_year: None,
            renovation_year: None,
            dpe_class: None,
            dpe_value: None,
            ges_class: None,
            ges_value: None,
            pictures: None,
            stations: None,
            adverts: None,
        }
    }
}

/// French DPE/GES letter class.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EnergyClass {
    /// A (best).
    A,
    /// B.
    B,
    /// C.
    C,
    /// D.
    D,
    /// E.
    E,
    /// F.
    F,
    /// G (worst).
    G,
    /// Anything else.
    Unknown,
}

impl EnergyClass {
    /// Reads a letter in either case; anything else is `Unknown`.
    pub fn from_letter(letter: &str) -> Self {
        match letter.trim().to_ascii_lowercase().as_str() {
            "a" => Self::A,
            "b" => Self::B,
            "c" => Self::C,
            "d" => Self::D,
            "e" => Self::E,
            "f" => Self::F,
            "g" => Self::G,
            _ => Self::Unknown,
        }
    }
}

/// One price a listing had from a given time.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PricePoint {
    /// When the price took effect (Unix ms).
    pub at: i64,
    /// The price, in the snapshot's currency.
    pub price: f64,
}

/// A public-transport station near the property.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Station {
    /// Station name.
    pub name: String,
    /// Lines serving it.
    pub lines: Vec<String>,
}

/// One classified ad for the property.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Advert {
    /// The provider's id of the ad.
    pub advert_id: Option<String>,
    /// Ad title.
    pub title: Option<String>,
    /// URL on the publisher's site.
    pub url: Option<String>,
    /// Domain of the publishing site.
    pub source_domain: Option<String>,
    /// Publisher name.
    pub publisher_name: Option<String>,
    /// Kind of publisher, lower-cased.
    pub publisher_type: Option<String>,
    /// Professional publisher.
    pub publisher_is_professional: Option<bool>,
    /// Publisher id, SIREN or SIRET.
    pub publisher_id: Option<String>,
    /// Current price of the ad.
    pub price: Option<f64>,
    /// The ad's prices over time, oldest first.
    pub price_history: Option<Vec<PricePoint>>,
    /// Status, lower-cased.
    pub status: Option<String>,
    /// First seen (Unix ms).
    pub published_at: Option<i64>,
    /// Last changed (Unix ms).
    pub updated_at: Option<i64>,
}

/// Where a property is.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Location {
    /// Street address, one line.
    pub address: Option<String>,
    /// City.
    pub city: Option<String>,
    /// Postal code.
    pub postcode: Option<String>,
    /// INSEE municipality code.
    pub insee_code: Option<String>,
    /// INSEE IRIS code (sub-municipal statistical unit).
    pub iris_code: Option<String>,
    /// Department or county.
    pub department: Option<String>,
    /// Region or state.
    pub region: Option<String>,
    /// ISO 3166-1 alpha-2.
    pub country: Option<String>,
    /// Latitude.
    pub latitude: Option<f64>,
    /// Longitude.
    pub longitude: Option<f64>,
}

/// Where an event came from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Lineage {
    /// Raw record's topic.
    pub raw_topic: String,
    /// Raw record's partition.
    pub raw_partition: i32,
    /// Raw record's offset.
    pub raw_offset: i64,
    /// Normalizer version.
    pub normalizer_version: String,
}
