//! Rust mirror of `avro/property_state.avsc`: a property's merged state,
//! the value of `properties.latest` and what PostgreSQL's `properties`
//! table holds. The merge that builds it is `property_state::merge`; this
//! module only carries the data.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::{EventType, PropertySnapshot, Provider};

/// A property's state: the per-field merge of its events.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PropertyState {
    /// `<source>:<provider_property_id>`, the record's key.
    pub property_key: String,
    /// Configured ingest source.
    pub source: String,
    /// Provider kind of the source.
    pub provider: Provider,
    /// The provider's identifier of the property.
    pub provider_property_id: String,
    /// The merged snapshot; null where no event said.
    pub property: PropertySnapshot,
    /// For each snapshot field the state knows, by path, the event that
    /// set it. A field absent from the map is unknown.
    pub fields: BTreeMap<String, FieldVersion>,
    /// The event versions the current field values come from, oldest
    /// first; a correction that replaced only some fields of an event
    /// leaves both versions.
    pub contributors: Vec<Contributor>,
    /// The newest contributor: the last event that changed the state.
    pub last_event: Option<Contributor>,
    /// The snapshot fields whose value `last_event` set.
    pub last_changed_fields: Vec<String>,
    /// How many distinct events (dedupe keys) the state is built from.
    pub contributing_events: i32,
    /// The snapshot fields whose value is withheld (null here although
    /// known, their version in `fields`) so that the state fits one record
    /// of `properties.latest`; empty on nearly every state. Only the state
    /// writer withholds (`property_state::withhold`); PostgreSQL's row
    /// keeps every value.
    #[serde(default)]
    pub withheld_fields: Vec<String>,
}

/// The event that set one snapshot field.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FieldVersion {
    /// That event's time.
    pub occurred_at: i64,
    /// That event's dedupe key (one of the contributors).
    pub dedupe_key: String,
    /// That event's normalizer version.
    pub normalizer_version: String,
}

/// An event whose data is in a state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Contributor {
    /// The provider's event id.
    pub event_id: String,
    /// The event's dedupe key.
    pub dedupe_key: String,
    /// What happened.
    pub event_type: EventType,
    /// When it happened (after the time-sanity check).
    pub occurred_at: i64,
    /// The normalizer version that produced this version of the event.
    pub normalizer_version: String,
}
