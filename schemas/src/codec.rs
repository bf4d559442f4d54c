//! Avro binary encoding and decoding of [`PropertyEvent`] against the schema.

use std::sync::OnceLock;

use apache_avro::Schema;
use apache_avro::reader::datum::GenericDatumReader;
use apache_avro::writer::datum::GenericDatumWriter;

use crate::{PROPERTY_EVENT_AVSC, PropertyEvent};

/// Why an event could not be encoded or decoded.
#[derive(Debug, thiserror::Error)]
pub enum CodecError {
    /// The value does not fit the schema.
    #[error("event does not fit the PropertyEvent schema: {0}")]
    Schema(String),
    /// The bytes are not a valid datum for the writer's schema.
    #[error("cannot decode PropertyEvent: {0}")]
    Decode(String),
}

/// The parsed `PropertyEvent` schema (this build's reader schema).
pub fn schema() -> &'static Schema {
    static SCHEMA: OnceLock<Schema> = OnceLock::new();
    SCHEMA.get_or_init(|| {
        // The schema is compiled in and covered by tests: failing here is a
        // build defect, not bad input.
        #[allow(clippy::expect_used)]
        Schema::parse_str(PROPERTY_EVENT_AVSC).expect("the bundled PropertyEvent schema is valid")
    })
}

/// Encodes `event` as a bare Avro datum (no wire-format header).
pub fn encode_datum(event: &PropertyEvent) -> Result<Vec<u8>, CodecError> {
    let value = apache_avro::to_value(event).map_err(|e| CodecError::Schema(e.to_string()))?;
    let resolved = value
        .resolve(schema())
        .map_err(|e| CodecError::Schema(e.to_string()))?;
    GenericDatumWriter::builder(schema())
        .build()
        .and_then(|w| w.write_value_to_vec(resolved))
        .map_err(|e| CodecError::Schema(e.to_string()))
}

/// Decodes a datum written with `writer` into this build's [`PropertyEvent`].
pub fn decode_datum(writer: &Schema, mut datum: &[u8]) -> Result<PropertyEvent, CodecError> {
    let value = GenericDatumReader::builder(writer)
        .reader_schema(schema())
        .build()
        .and_then(|r| r.read_value(&mut datum))
        .map_err(|e| CodecError::Decode(e.to_string()))?;
    apache_avro::from_value(&value).map_err(|e| CodecError::Decode(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        Advert, EnergyClass, EventType, FieldChange, Lineage, Location, PricePoint,
        PropertySnapshot, Provider, Station,
    };

    fn sample() -> PropertyEvent {
        let mut property = PropertySnapshot::empty();
        property.price = Some(750_000.0);
        property.bedrooms = Some(2);
        property.surface_m2 = Some(111.48);
        property.location = Location {
            address: Some("123 Main St".into()),
            ..Location::default()
        };
        property.dpe_class = Some(EnergyClass::C);
        property.ges_value = Some(12.0);
        property.pictures = Some(vec!["https://img/1.jpg".into()]);
        property.stations = Some(vec![Station {
            name: "Jules Joffrin".into(),
            lines: vec!["Ligne 12".into()],
        }]);
        let history = vec![PricePoint {
            at: 1_686_825_000_000,
            price: 760_000.0,
        }];
        property.price_history = Some(history.clone());
        property.adverts = Some(vec![Advert {
            url: Some("https://example.fr/ad/1".into()),
            publisher_name: Some("Agence".into()),
            publisher_is_professional: Some(true),
            price_history: Some(history),
            ..Advert::default()
        }]);
        PropertyEvent {
            event_id: "evt_1".into(),
            dedupe_key: "generic:evt_1".into(),
            source: "generic".into(),
            provider: Provider::Generic,
            provider_property_id: "prop_1".into(),
            property_key: "generic:prop_1".into(),
            event_type: EventType::PriceChanged,
            occurred_at: 1_686_825_000_000,
            received_at: 1_686_825_001_000,
            alert_id: None,
            provider_event_type: Some("ad.update.price".into()),
            change: Some(FieldChange {
                field: "price".into(),
                old_value: Some("1".into()),
                new_value: None,
                percent: Some(-2.81),
                old_number: Some(1.0),
                new_number: None,
            }),
            property: Some(property),
            lineage: Lineage {
                raw_topic: "webhooks.raw".into(),
                raw_partition: 2,
                raw_offset: 42,
                normalizer_version: "0.1.0".into(),
            },
        }
    }

    #[test]
    fn round_trips_through_avro() {
        let event = sample();
        let bytes = encode_datum(&event).expect("encodes");
        assert_eq!(decode_datum(schema(), &bytes).expect("decodes"), event);
    }

    #[test]
    fn round_trips_without_optional_parts() {
        let mut event = sample();
        event.property = None;
        event.change = None;
        event.event_type = EventType::ReferenceOnly;
        let bytes = encode_datum(&event).expect("encodes");
        assert_eq!(decode_datum(schema(), &bytes).expect("decodes"), event);
    }

    #[test]
    fn truncated_bytes_are_an_error_not_a_panic() {
        let bytes = encode_datum(&sample()).expect("encodes");
        for cut in [0, 1, bytes.len() / 2, bytes.len() - 1] {
            assert!(
                decode_datum(schema(), &bytes[..cut]).is_err(),
                "cut at {cut}"
            );
        }
    }

    #[test]
    fn the_current_schema_reads_what_v1_wrote() {
        let v1 = Schema::parse_str(crate::PROPERTY_EVENT_AVSC_V1).expect("v1 parses");
        // BACKWARD: readers on the current schema decode data written with v1.
        if let Err(e) =
            apache_avro::schema_compatibility::SchemaCompatibility::can_read(&v1, schema())
        {
            panic!("the current schema cannot read v1 data: {e}");
        }
    }

    #[test]
    fn a_v1_datum_decodes_with_the_new_fields_null() {
        let v1 = Schema::parse_str(crate::PROPERTY_EVENT_AVSC_V1).expect("v1 parses");
        let mut event = sample();
        event.provider_event_type = None;
        if let Some(change) = event.change.as_mut() {
            change.old_number = None;
            change.new_number = None;
        }
        let mut old = PropertySnapshot::empty();
        old.price = Some(1.0);
        event.property = Some(old);
        // Resolving against v1 keeps only the fields v1 knows: a v1 datum.
        let v1_value = apache_avro::to_value(&event)
            .expect("to value")
            .resolve(&v1)
            .expect("fits v1");
        let datum = GenericDatumWriter::builder(&v1)
            .build()
            .and_then(|w| w.write_value_to_vec(v1_value))
            .expect("writes v1");
        assert_eq!(decode_datum(&v1, &datum).expect("decodes"), event);
    }
}
