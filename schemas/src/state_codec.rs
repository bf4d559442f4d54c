//! Avro binary encoding and decoding of [`PropertyState`], the value of
//! `properties.latest`, against `avro/property_state.avsc`.

use std::sync::OnceLock;

use crate::codec::{decode_value, encode_value};
use crate::{CodecError, PROPERTY_STATE_AVSC, PropertyState};
use apache_avro::Schema;

/// The parsed `PropertyState` schema (this build's reader schema).
pub fn state_schema() -> &'static Schema {
    static SCHEMA: OnceLock<Schema> = OnceLock::new();
    SCHEMA.get_or_init(|| {
        // Compiled in and covered by tests: failing here is a build defect.
        #[allow(clippy::expect_used)]
        Schema::parse_str(PROPERTY_STATE_AVSC).expect("the bundled PropertyState schema is valid")
    })
}

/// Encodes `state` as a bare Avro datum (no wire-format header).
pub fn encode_state(state: &PropertyState) -> Result<Vec<u8>, CodecError> {
    encode_value(state_schema(), state)
}

/// Decodes a datum written with `writer` (a version of the `PropertyState`
/// schema) into this build's [`PropertyState`].
pub fn decode_state(writer: &Schema, datum: &[u8]) -> Result<PropertyState, CodecError> {
    decode_value(writer, state_schema(), datum)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::{Contributor, EventType, FieldVersion};

    fn sample_state() -> PropertyState {
        let event = crate::sample::price_change();
        let contributor = Contributor {
            event_id: event.event_id.clone(),
            dedupe_key: event.dedupe_key.clone(),
            event_type: EventType::PriceChanged,
            occurred_at: event.occurred_at,
            normalizer_version: "0.1.0".into(),
        };
        let version = FieldVersion {
            occurred_at: event.occurred_at,
            dedupe_key: event.dedupe_key.clone(),
            normalizer_version: "0.1.0".into(),
        };
        PropertyState {
            property_key: event.property_key.clone(),
            source: event.source.clone(),
            provider: event.provider,
            provider_property_id: event.provider_property_id.clone(),
            property: event
                .property
                .clone()
                .unwrap_or_else(crate::PropertySnapshot::empty),
            fields: BTreeMap::from([("price".to_string(), version)]),
            contributors: vec![contributor.clone()],
            last_event: Some(contributor),
            last_changed_fields: vec!["price".into()],
            contributing_events: 1,
            withheld_fields: Vec::new(),
        }
    }

    #[test]
    fn a_state_round_trips_through_avro() {
        let state = sample_state();
        let bytes = encode_state(&state).expect("encodes");
        assert_eq!(
            decode_state(state_schema(), &bytes).expect("decodes"),
            state
        );
    }

    #[test]
    fn the_current_state_schema_reads_what_every_released_version_wrote() {
        for (version, text) in crate::PROPERTY_STATE_HISTORY {
            let old = Schema::parse_str(text).expect("a released schema parses");
            if let Err(e) = apache_avro::schema_compatibility::SchemaCompatibility::can_read(
                &old,
                state_schema(),
            ) {
                panic!("the current state schema cannot read {version} data: {e}");
            }
        }
    }

    #[test]
    fn a_v1_state_decodes_with_nothing_withheld() {
        let (_, text) = crate::PROPERTY_STATE_HISTORY[0];
        let v1 = Schema::parse_str(text).expect("v1 parses");
        let state = sample_state();
        let datum = crate::codec::encode_value(&v1, &state).expect("writes v1");
        let decoded = decode_state(&v1, &datum).expect("decodes");
        assert!(decoded.withheld_fields.is_empty());
        assert_eq!(decoded, state);
    }

    #[test]
    fn withheld_fields_round_trip() {
        let mut state = sample_state();
        state.withheld_fields = vec!["description".into(), "pictures".into()];
        let bytes = encode_state(&state).expect("encodes");
        assert_eq!(
            decode_state(state_schema(), &bytes).expect("decodes"),
            state
        );
    }

    /// The types the state shares with the event are the event's, verbatim:
    /// a reader of both topics sees one `PropertySnapshot`.
    #[test]
    fn the_state_schema_embeds_the_event_schema_types_verbatim() {
        let event: serde_json::Value =
            serde_json::from_str(crate::PROPERTY_EVENT_AVSC).expect("event schema is JSON");
        let state: serde_json::Value =
            serde_json::from_str(PROPERTY_STATE_AVSC).expect("state schema is JSON");
        let field = |schema: &serde_json::Value, name: &str| {
            schema["fields"]
                .as_array()
                .and_then(|fields| fields.iter().find(|f| f["name"] == name))
                .map(|f| f["type"].clone())
                .unwrap_or_else(|| panic!("no field {name}"))
        };
        assert_eq!(field(&state, "provider"), field(&event, "provider"));
        assert_eq!(field(&state, "property"), field(&event, "property")[1]);
        let contributor = &field(&state, "contributors")["items"];
        let event_type = contributor["fields"]
            .as_array()
            .and_then(|fields| fields.iter().find(|f| f["name"] == "event_type"))
            .map(|f| f["type"].clone());
        assert_eq!(event_type, Some(field(&event, "event_type")));
    }
}
