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
    encode_datum_as(schema(), event)
}

/// Encodes `event` as a bare Avro datum of `writer`, another version of the
/// schema: resolving against it keeps only the fields it knows (how tests
/// write what an older normalizer wrote).
pub fn encode_datum_as(writer: &Schema, event: &PropertyEvent) -> Result<Vec<u8>, CodecError> {
    encode_value(writer, event)
}

/// Encodes any serde value as a bare Avro datum of `writer` (shared with
/// the state's codec).
pub(crate) fn encode_value<T: serde::Serialize>(
    writer: &Schema,
    value: &T,
) -> Result<Vec<u8>, CodecError> {
    let value = apache_avro::to_value(value).map_err(|e| CodecError::Schema(e.to_string()))?;
    let resolved = value
        .resolve(writer)
        .map_err(|e| CodecError::Schema(e.to_string()))?;
    GenericDatumWriter::builder(writer)
        .build()
        .and_then(|w| w.write_value_to_vec(resolved))
        .map_err(|e| CodecError::Schema(e.to_string()))
}

/// Decodes the datums of one writer schema into this build's
/// [`PropertyEvent`]; built once per writer schema and kept (the sink keeps
/// one per schema registry id).
///
/// A datum written with this build's schema (the same parsing canonical
/// form) is deserialized straight into the Rust type. Any other writer's
/// datum is read into a generic Avro value and resolved against this
/// build's schema, as [`decode_datum`] does: slower, but it fills the
/// fields the writer did not know with their defaults.
#[derive(Debug)]
pub struct DatumDecoder {
    /// `None`: the writer is this build's schema.
    other_writer: Option<Schema>,
}

impl DatumDecoder {
    /// The decoder for datums written with `writer`.
    pub fn for_writer(writer: Schema) -> Self {
        let other_writer = (writer != *schema()).then_some(writer);
        Self { other_writer }
    }

    /// Whether datums are resolved from another schema (tests and logs).
    pub fn resolves(&self) -> bool {
        self.other_writer.is_some()
    }

    /// Decodes one datum.
    pub fn decode(&self, mut datum: &[u8]) -> Result<PropertyEvent, CodecError> {
        match &self.other_writer {
            Some(writer) => decode_datum(writer, datum),
            None => current_reader()
                .read_deser(&mut datum)
                .map_err(|e| CodecError::Decode(e.to_string())),
        }
    }
}

/// The reader of datums written with this build's schema, with its named
/// types resolved once.
fn current_reader() -> &'static GenericDatumReader<'static> {
    static READER: OnceLock<GenericDatumReader<'static>> = OnceLock::new();
    READER.get_or_init(|| {
        // Resolving the compiled-in schema's names cannot fail at run time
        // once the tests pass: a failure here is a build defect.
        #[allow(clippy::expect_used)]
        GenericDatumReader::builder(schema())
            .build()
            .expect("the bundled PropertyEvent schema resolves")
    })
}

/// Decodes a datum written with `writer` into this build's [`PropertyEvent`],
/// resolving it against this build's schema (see [`DatumDecoder`] for the
/// repeated case).
pub fn decode_datum(writer: &Schema, datum: &[u8]) -> Result<PropertyEvent, CodecError> {
    decode_value(writer, schema(), datum)
}

/// Decodes a datum of `writer` resolved against `reader` into any serde
/// value (shared with the state's codec).
pub(crate) fn decode_value<T: serde::de::DeserializeOwned>(
    writer: &Schema,
    reader: &Schema,
    mut datum: &[u8],
) -> Result<T, CodecError> {
    let value = GenericDatumReader::builder(writer)
        .reader_schema(reader)
        .build()
        .and_then(|r| r.read_value(&mut datum))
        .map_err(|e| CodecError::Decode(e.to_string()))?;
    apache_avro::from_value(&value).map_err(|e| CodecError::Decode(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{EventType, PropertySnapshot};

    fn sample() -> PropertyEvent {
        crate::sample::price_change()
    }

    #[test]
    fn round_trips_through_avro() {
        let event = sample();
        let bytes = encode_datum(&event).expect("encodes");
        assert_eq!(decode_datum(schema(), &bytes).expect("decodes"), event);
    }

    fn without_optional_parts() -> PropertyEvent {
        let mut event = sample();
        event.property = None;
        event.change = None;
        event.event_type = EventType::ReferenceOnly;
        event
    }

    #[test]
    fn round_trips_without_optional_parts() {
        let event = without_optional_parts();
        let bytes = encode_datum(&event).expect("encodes");
        assert_eq!(decode_datum(schema(), &bytes).expect("decodes"), event);
    }

    #[test]
    fn the_direct_decoder_reads_what_the_resolving_one_reads() {
        let decoder = DatumDecoder::for_writer(schema().clone());
        assert!(!decoder.resolves());
        for event in [sample(), without_optional_parts()] {
            let bytes = encode_datum(&event).expect("encodes");
            assert_eq!(decoder.decode(&bytes).expect("decodes"), event);
            assert_eq!(decode_datum(schema(), &bytes).expect("decodes"), event);
        }
    }

    #[test]
    fn the_direct_decoder_rejects_truncated_and_trailing_garbage() {
        let decoder = DatumDecoder::for_writer(schema().clone());
        let bytes = encode_datum(&sample()).expect("encodes");
        for cut in [0, 1, bytes.len() / 2, bytes.len() - 1] {
            assert!(decoder.decode(&bytes[..cut]).is_err(), "cut at {cut}");
        }
        assert!(decoder.decode(&[0xff; 64]).is_err());
    }

    #[test]
    fn truncated_bytes_are_an_error_not_a_panic() {
        let bytes = encode_datum(&sample()).expect("encodes");
        // No cut panics. apache-avro's generic reader takes a datum cut
        // right before its trailing null unions as those nulls (Kafka's
        // record framing and CRC are what catch such a cut), so the error
        // is asserted for cuts inside the record's body.
        for cut in 0..bytes.len() {
            let _ = decode_datum(schema(), &bytes[..cut]);
        }
        for cut in [0, 1, bytes.len() / 2, bytes.len() - 4] {
            assert!(
                decode_datum(schema(), &bytes[..cut]).is_err(),
                "cut at {cut}"
            );
        }
    }

    #[test]
    fn the_current_schema_reads_what_every_released_version_wrote() {
        // BACKWARD, transitively: readers on the current schema decode data
        // written with any released version.
        for (version, text) in crate::PROPERTY_EVENT_HISTORY {
            let old = Schema::parse_str(text).expect("a released schema parses");
            if let Err(e) =
                apache_avro::schema_compatibility::SchemaCompatibility::can_read(&old, schema())
            {
                panic!("the current schema cannot read {version} data: {e}");
            }
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
        let datum = encode_datum_as(&v1, &event).expect("writes v1");
        assert_eq!(decode_datum(&v1, &datum).expect("decodes"), event);
        let decoder = DatumDecoder::for_writer(v1);
        assert!(decoder.resolves());
        assert_eq!(decoder.decode(&datum).expect("decodes"), event);
    }
}
