//! The canonical `PropertyEvent` and the merged `PropertyState`: their Avro
//! schemas, Rust types and codecs.
//!
//! `avro/property_event.avsc` is the source of truth; [`PropertyEvent`]
//! mirrors it field for field. Normalize encodes events in the Confluent wire
//! format (magic byte, 4-byte schema id, Avro binary) through the schema
//! registry; dedupe forwards the bytes untouched; the sink decodes them with
//! the writer's schema fetched by id ([`DatumDecoder`]): straight into the
//! Rust type when the writer is this crate's schema, otherwise resolved
//! against it (so older and newer writers both decode, per Avro schema
//! resolution). [`writer_schemas`] caches writer schemas by registry id
//! for any reader of the wire format, and says whose fault a value that
//! does not decode is.

pub mod codec;
pub mod property_event;
pub mod property_state;
mod provider;
pub mod sample;
pub mod state_codec;
pub mod wire;
pub mod writer_schemas;

pub use codec::{CodecError, DatumDecoder, decode_datum, encode_datum, schema};
pub use property_event::{
    Advert, EnergyClass, EventType, FieldChange, Lineage, Location, PricePoint, PropertyEvent,
    PropertySnapshot, PropertyType, Provider, Station, TransactionType,
};
pub use property_state::{Contributor, FieldVersion, PropertyState};
pub use state_codec::{decode_state, encode_state, state_schema};

/// The `PropertyEvent` schema text, as registered in the schema registry.
pub const PROPERTY_EVENT_AVSC: &str = include_str!("../avro/property_event.avsc");

/// The first registered (walking-skeleton) schema, kept to prove that every
/// later version can still read what it wrote (BACKWARD compatibility).
pub const PROPERTY_EVENT_AVSC_V1: &str = include_str!("../avro/history/property_event.v1.avsc");

/// Every released version of the schema, oldest first: the current schema
/// must read what each of them wrote (BACKWARD, transitively).
pub const PROPERTY_EVENT_HISTORY: [(&str, &str); 3] = [
    ("v1", PROPERTY_EVENT_AVSC_V1),
    ("v2", include_str!("../avro/history/property_event.v2.avsc")),
    ("v3", include_str!("../avro/history/property_event.v3.avsc")),
];

/// The `PropertyState` schema text (`properties.latest-value`).
pub const PROPERTY_STATE_AVSC: &str = include_str!("../avro/property_state.avsc");

/// Every released version of the state schema, oldest first: the current
/// one must read what each of them wrote (BACKWARD, transitively).
pub const PROPERTY_STATE_HISTORY: [(&str, &str); 1] =
    [("v1", include_str!("../avro/history/property_state.v1.avsc"))];

/// Full name of the record, for record-name subject strategies.
pub const PROPERTY_EVENT_NAME: &str = "estate.pipeline.PropertyEvent";

/// Full name of the state record, for record-name subject strategies.
pub const PROPERTY_STATE_NAME: &str = "estate.pipeline.PropertyState";
