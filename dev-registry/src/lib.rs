//! `dev-registry`: a small Confluent-compatible schema registry for local
//! runs and tests. **Development only**: one instance, one compatibility
//! level (BACKWARD), Avro only, no deletes, no authentication.
//!
//! It serves the REST subset that Rust's `schema_registry_converter` and
//! Python's `confluent-kafka` Avro serializers use, and keeps its state in a
//! compacted Kafka topic (`_schemas`): the process itself is stateless and
//! rebuilds everything from the topic at start, so restarting it is safe.
//!
//! Modules: [`store`] holds the in-memory state and every decision (ids,
//! versions, compatibility, replay), pure and unit-tested; [`api`] the axum
//! router, handlers and error responses; [`kafka_log`] the `_schemas` topic
//! (create, replay, append); [`settings`] the configuration.

pub mod api;
pub mod kafka_log;
pub mod settings;
pub mod store;
