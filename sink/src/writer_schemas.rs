//! [`WriterSchemas`]: the sink's writer-schema cache (schema id → decoder)
//! and the one decision of whose fault a value that does not decode is
//! ([`Decoded`]). Pure but for the `fetch` the caller passes (the runner's
//! asks the registry; the tests' are closures):
//!
//! - bytes that are not the Confluent wire format: the event's own fault;
//! - any registry failure: never the event's. Unreachable, a timeout, a
//!   5xx, and also a 404 for an id the registry does not know (yet: a
//!   lagging replica, a registry restored from an older backup) are all
//!   [`Decoded::Unavailable`]: the record is held and retried, never
//!   dead-lettered. Failures are not cached, so a retry asks again;
//! - a datum the writer schema, once obtained, cannot decode: the event's
//!   own fault.

use std::collections::HashMap;
use std::sync::Arc;

use apache_avro::Schema;
use schemas::{DatumDecoder, PropertyEvent};

/// What a consumed value is.
#[derive(Debug)]
pub enum Decoded {
    /// A valid event.
    Event(Box<PropertyEvent>),
    /// The value itself is broken: dead-letter it with this reason.
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
#[derive(Debug, Default)]
pub struct WriterSchemas {
    decoders: HashMap<u32, Arc<DatumDecoder>>,
}

impl WriterSchemas {
    /// Decodes a Confluent wire-format value, fetching its writer schema
    /// with `fetch` the first time its id is seen.
    pub fn decode(
        &mut self,
        bytes: &[u8],
        fetch: impl FnOnce(u32) -> Result<Schema, String>,
    ) -> Decoded {
        let (schema_id, datum) = match schemas::wire::split(bytes) {
            Ok(split) => split,
            Err(e) => return Decoded::Fault(format!("not a schema registry value: {e}")),
        };
        let decoder = match self.decoder(schema_id, fetch) {
            Ok(decoder) => decoder,
            Err(reason) => return Decoded::Unavailable { schema_id, reason },
        };
        match decoder.decode(datum) {
            Ok(event) => Decoded::Event(Box::new(event)),
            Err(e) => Decoded::Fault(format!("cannot decode with writer schema {schema_id}: {e}")),
        }
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
    ) -> Result<Arc<DatumDecoder>, String> {
        if let Some(decoder) = self.decoders.get(&schema_id) {
            return Ok(Arc::clone(decoder));
        }
        let decoder = Arc::new(DatumDecoder::for_writer(fetch(schema_id)?));
        tracing::info!(
            schema_id,
            resolved_to_current = decoder.resolves(),
            "writer schema fetched"
        );
        let _ = self.decoders.insert(schema_id, Arc::clone(&decoder));
        Ok(decoder)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn value(schema_id: u32) -> Vec<u8> {
        let datum = schemas::encode_datum(&schemas::sample::price_change()).expect("encodes");
        schemas::wire::frame(schema_id, &datum)
    }

    fn registry(schema: &Schema) -> impl FnOnce(u32) -> Result<Schema, String> {
        let schema = schema.clone();
        move |_| Ok(schema)
    }

    fn not_found(id: u32) -> Result<Schema, String> {
        Err(format!("40403 schema {id} not found"))
    }

    #[test]
    fn a_value_decodes_and_its_writer_schema_is_fetched_once() {
        let mut cache = WriterSchemas::default();
        let decoded = cache.decode(&value(7), registry(schemas::schema()));
        assert!(matches!(decoded, Decoded::Event(_)), "{decoded:?}");
        let again = cache.decode(&value(7), |_| panic!("cached: not fetched again"));
        assert!(matches!(again, Decoded::Event(_)), "{again:?}");
    }

    #[test]
    fn a_registry_404_is_not_the_events_fault_and_is_not_cached() {
        let mut cache = WriterSchemas::default();
        match cache.decode(&value(9), not_found) {
            Decoded::Unavailable { schema_id, reason } => {
                assert_eq!(schema_id, 9);
                assert!(reason.contains("40403"), "{reason}");
            }
            other => panic!("held, not dead-lettered: {other:?}"),
        }
        let unreachable = cache.decode(&value(9), |_| Err("connection refused".into()));
        assert!(matches!(unreachable, Decoded::Unavailable { .. }));
        assert_eq!(cache.fetch(9, registry(schemas::schema())), Ok(()));
        assert!(matches!(
            cache.decode(&value(9), |_| panic!("cached")),
            Decoded::Event(_)
        ));
    }

    #[test]
    fn broken_bytes_are_the_events_own_fault() {
        let mut cache = WriterSchemas::default();
        for bytes in [&b"{\"json\":1}"[..], &[0, 0, 0][..]] {
            let decoded = cache.decode(bytes, |_| panic!("no schema id to fetch"));
            assert!(matches!(decoded, Decoded::Fault(_)), "{decoded:?}");
        }
        let mut cut = value(7);
        cut.truncate(cut.len() / 2);
        let decoded = cache.decode(&cut, registry(schemas::schema()));
        assert!(matches!(decoded, Decoded::Fault(ref r) if r.contains("writer schema 7")));
        let decoded = cache.decode(&value(8), registry(&Schema::String));
        assert!(matches!(decoded, Decoded::Fault(_)), "{decoded:?}");
    }
}
