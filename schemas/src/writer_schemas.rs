//! [`WriterSchemas`]: a cache of writer schemas by schema registry id, and
//! the one decision of whose fault a value that does not decode is
//! ([`Decoded`]), for any type this crate decodes from the Confluent wire
//! format ([`Decodable`]: a `PropertyEvent` read from `properties.events`,
//! a `PropertyState` read back from `properties.latest`). Pure but for the
//! `fetch` the caller passes (a registry client, or a closure in tests):
//!
//! - bytes that are not the Confluent wire format: the value's own fault;
//! - any registry failure: never the value's. Unreachable, a timeout, a
//!   5xx, and also a 404 for an id the registry does not know (yet: a
//!   lagging replica, a registry restored from an older backup) are all
//!   [`Decoded::Unavailable`]: the caller holds the record and asks again,
//!   never skips it. Failures are not cached, so a retry asks again;
//! - a datum the writer schema, once obtained, cannot decode: the value's
//!   own fault.
//!
//! The sink and the state writer both use it.

use std::collections::HashMap;
use std::sync::Arc;

use apache_avro::Schema;

use crate::{CodecError, DatumDecoder, PropertyEvent, PropertyState, decode_state};

/// A type decoded from datums of a writer schema.
pub trait Decodable: Sized {
    /// What is kept per writer schema.
    type Decoder;
    /// The decoder of datums written with `writer`.
    fn decoder(writer: Schema) -> Self::Decoder;
    /// Decodes one datum.
    fn decode(decoder: &Self::Decoder, datum: &[u8]) -> Result<Self, CodecError>;
}

impl Decodable for PropertyEvent {
    type Decoder = DatumDecoder;
    fn decoder(writer: Schema) -> DatumDecoder {
        DatumDecoder::for_writer(writer)
    }
    fn decode(decoder: &DatumDecoder, datum: &[u8]) -> Result<Self, CodecError> {
        decoder.decode(datum)
    }
}

impl Decodable for PropertyState {
    type Decoder = Schema;
    fn decoder(writer: Schema) -> Schema {
        writer
    }
    fn decode(writer: &Schema, datum: &[u8]) -> Result<Self, CodecError> {
        decode_state(writer, datum)
    }
}

/// What a consumed value is.
#[derive(Debug)]
pub enum Decoded<T> {
    /// A valid value.
    Value(Box<T>),
    /// The value itself is broken, for this reason.
    Fault(String),
    /// Its writer schema cannot be had now: hold the record and retry.
    Unavailable {
        /// The schema id the value names.
        schema_id: u32,
        /// Why the registry did not give it.
        reason: String,
    },
}

/// Writer schemas fetched so far, by schema id.
pub struct WriterSchemas<T: Decodable> {
    decoders: HashMap<u32, Arc<T::Decoder>>,
}

impl<T: Decodable> Default for WriterSchemas<T> {
    fn default() -> Self {
        Self {
            decoders: HashMap::new(),
        }
    }
}

impl<T: Decodable> std::fmt::Debug for WriterSchemas<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WriterSchemas")
            .field("ids", &self.decoders.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl<T: Decodable> WriterSchemas<T> {
    /// Decodes a Confluent wire-format value, fetching its writer schema
    /// with `fetch` the first time its id is seen.
    pub fn decode(
        &mut self,
        bytes: &[u8],
        fetch: impl FnOnce(u32) -> Result<Schema, String>,
    ) -> Decoded<T> {
        let (schema_id, datum) = match crate::wire::split(bytes) {
            Ok(split) => split,
            Err(e) => return Decoded::Fault(format!("not a schema registry value: {e}")),
        };
        let decoder = match self.decoder(schema_id, fetch) {
            Ok(decoder) => decoder,
            Err(reason) => return Decoded::Unavailable { schema_id, reason },
        };
        match T::decode(&decoder, datum) {
            Ok(value) => Decoded::Value(Box::new(value)),
            Err(e) => Decoded::Fault(format!("cannot decode with writer schema {schema_id}: {e}")),
        }
    }

    /// Whether the writer schema `schema_id` is cached.
    pub fn knows(&self, schema_id: u32) -> bool {
        self.decoders.contains_key(&schema_id)
    }

    /// Makes sure the writer schema `schema_id` is cached, fetching it with
    /// `fetch` if not.
    pub fn fetch(
        &mut self,
        schema_id: u32,
        fetch: impl FnOnce(u32) -> Result<Schema, String>,
    ) -> Result<(), String> {
        self.decoder(schema_id, fetch).map(drop)
    }

    fn decoder(
        &mut self,
        schema_id: u32,
        fetch: impl FnOnce(u32) -> Result<Schema, String>,
    ) -> Result<Arc<T::Decoder>, String> {
        if let Some(decoder) = self.decoders.get(&schema_id) {
            return Ok(Arc::clone(decoder));
        }
        let decoder = Arc::new(T::decoder(fetch(schema_id)?));
        let _ = self.decoders.insert(schema_id, Arc::clone(&decoder));
        Ok(decoder)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn value(schema_id: u32) -> Vec<u8> {
        let datum = crate::encode_datum(&crate::sample::price_change()).expect("encodes");
        crate::wire::frame(schema_id, &datum)
    }

    fn registry(schema: &Schema) -> impl FnOnce(u32) -> Result<Schema, String> {
        let schema = schema.clone();
        move |_| Ok(schema)
    }

    #[test]
    fn a_value_decodes_and_its_writer_schema_is_fetched_once() {
        let mut cache = WriterSchemas::<PropertyEvent>::default();
        let decoded = cache.decode(&value(7), registry(crate::schema()));
        assert!(matches!(decoded, Decoded::Value(_)), "{decoded:?}");
        assert!(cache.knows(7));
        let again = cache.decode(&value(7), |_| panic!("cached: not fetched again"));
        assert!(matches!(again, Decoded::Value(_)), "{again:?}");
    }

    #[test]
    fn a_registry_failure_is_not_the_values_fault_and_is_not_cached() {
        let mut cache = WriterSchemas::<PropertyEvent>::default();
        match cache.decode(&value(9), |id| Err(format!("40403 schema {id} not found"))) {
            Decoded::Unavailable { schema_id, reason } => {
                assert_eq!(schema_id, 9);
                assert!(reason.contains("40403"), "{reason}");
            }
            other => panic!("held, not skipped: {other:?}"),
        }
        assert!(!cache.knows(9));
        assert_eq!(cache.fetch(9, registry(crate::schema())), Ok(()));
        assert!(matches!(
            cache.decode(&value(9), |_| panic!("cached")),
            Decoded::Value(_)
        ));
    }

    #[test]
    fn broken_bytes_are_the_values_own_fault() {
        let mut cache = WriterSchemas::<PropertyEvent>::default();
        for bytes in [&b"{\"json\":1}"[..], &[0, 0, 0][..]] {
            let decoded = cache.decode(bytes, |_| panic!("no schema id to fetch"));
            assert!(matches!(decoded, Decoded::Fault(_)), "{decoded:?}");
        }
        let mut cut = value(7);
        cut.truncate(cut.len() / 2);
        let decoded = cache.decode(&cut, registry(crate::schema()));
        assert!(matches!(decoded, Decoded::Fault(ref r) if r.contains("writer schema 7")));
    }

    #[test]
    fn a_state_decodes_and_an_event_is_no_state() {
        let event = crate::sample::price_change();
        let state = PropertyState {
            property_key: event.property_key.clone(),
            source: event.source.clone(),
            provider: event.provider,
            provider_property_id: event.provider_property_id.clone(),
            property: crate::PropertySnapshot::empty(),
            fields: Default::default(),
            contributors: Vec::new(),
            last_event: None,
            last_changed_fields: Vec::new(),
            contributing_events: 0,
            withheld_fields: Vec::new(),
        };
        let framed = crate::wire::frame(3, &crate::encode_state(&state).expect("encodes"));
        let mut cache = WriterSchemas::<PropertyState>::default();
        match cache.decode(&framed, registry(crate::state_schema())) {
            Decoded::Value(decoded) => assert_eq!(*decoded, state),
            other => panic!("a state: {other:?}"),
        }
        // What dedupe used to write to properties.latest: an event, under
        // the event schema's id. It is no state.
        let legacy = cache.decode(&value(1), registry(crate::schema()));
        assert!(matches!(legacy, Decoded::Fault(_)), "{legacy:?}");
    }
}
