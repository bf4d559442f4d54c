//! The state writer's side of the schema registry: the id its states are
//! written under (`PROPERTY_STATE_AVSC`, registered at start under
//! `<latest topic>-value`, topic-name strategy; a refusal ends the process
//! with what to fix, an unavailable registry is waited for), and the
//! writer-schema caches of what it reads: the events of
//! `properties.events`, and its own states when it restores a partition of
//! `properties.latest` (shared with the restore thread).
//!
//! Fetching a writer schema never fails a value: the caller holds it
//! ([`crate::hold`]) or retries the restore until the registry answers.

use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use common::registry::Registry;
use common::stage_loop::Cancel;
use schemas::writer_schemas::{Decoded, WriterSchemas};
use schemas::{PropertyEvent, PropertyState};
use tokio::runtime::Handle;

/// The registry client and what was fetched from it.
#[derive(Clone)]
pub struct Schemas {
    registry: Registry,
    runtime: Handle,
    events: Arc<Mutex<WriterSchemas<PropertyEvent>>>,
    states: Arc<Mutex<WriterSchemas<PropertyState>>>,
    /// The id of the state schema this build writes.
    pub state_schema_id: u32,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Schemas {
    /// Registers the state schema for `latest_topic` (waiting for an
    /// unavailable registry until `cancel` is set) and returns the caches.
    pub fn register(
        url: &str,
        latest_topic: &str,
        runtime: Handle,
        cancel: &Cancel,
    ) -> anyhow::Result<Self> {
        let registry = Registry::new(url)?;
        let state_schema_id = runtime.block_on(registry.register(
            latest_topic,
            schemas::PROPERTY_STATE_AVSC,
            "state-writer",
            cancel,
        ))?;
        let mut states = WriterSchemas::default();
        // This build's own schema needs no round trip to read back.
        let _ = states.fetch(state_schema_id, |_| Ok(schemas::state_schema().clone()));
        Ok(Self {
            registry,
            runtime,
            events: Arc::new(Mutex::new(WriterSchemas::default())),
            states: Arc::new(Mutex::new(states)),
            state_schema_id,
        })
    }

    /// Decodes an event value of `properties.events`.
    pub fn event(&self, bytes: &[u8]) -> Decoded<PropertyEvent> {
        lock(&self.events).decode(bytes, |id| self.registry.fetch_blocking(&self.runtime, id))
    }

    /// Fetches the events' writer schema `id` if it is not cached yet.
    pub fn fetch_event_schema(&self, id: u32) -> Result<(), String> {
        lock(&self.events).fetch(id, |id| self.registry.fetch_blocking(&self.runtime, id))
    }

    /// Decodes a state value of `properties.latest`.
    pub fn state(&self, bytes: &[u8]) -> Decoded<PropertyState> {
        lock(&self.states).decode(bytes, |id| self.registry.fetch_blocking(&self.runtime, id))
    }
}
