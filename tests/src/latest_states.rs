//! What `properties.latest` holds, read back as any consumer reads it:
//! each value decoded with the writer schema the registry returns for the
//! id in its wire-format prefix. The checks the state writer's tests
//! share: for each property, its last record on `properties.latest` is the
//! merge (`property_state::merge_all`) of its events on
//! `properties.events`, each record says which input produced it
//! (`source-offset`, `dedupe-key`), and no two consecutive records of a key
//! are the same state (nothing written twice).
//!
//! ```text
//! let latest = assert_latest_is_the_merge(&pipeline, 6, Duration::from_secs(60)).await;
//! assert_eq!(latest["generic:p1"].state.property.price, Some(1.0));
//! ```

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use apache_avro::Schema;
use rdkafka::Message;
use rdkafka::message::OwnedMessage;
use schemas::{PropertyEvent, PropertyState};

use crate::{Pipeline, header};

/// One record of `properties.latest`, decoded.
#[derive(Debug, Clone)]
pub struct LatestRecord {
    /// Its partition.
    pub partition: i32,
    /// Its offset.
    pub offset: i64,
    /// Its key, the property key.
    pub key: String,
    /// Its value.
    pub state: PropertyState,
    /// The registry id of its writer schema.
    pub schema_id: u32,
    /// Its `source-offset` header: the input offset on `properties.events`.
    pub source_offset: Option<i64>,
    /// Its `dedupe-key` header.
    pub dedupe_key: Option<String>,
    /// Its header names, in order.
    pub headers: Vec<String>,
}

/// One record of `properties.events`, decoded.
#[derive(Debug, Clone)]
pub struct EventRecord {
    /// Its partition.
    pub partition: i32,
    /// Its offset.
    pub offset: i64,
    /// Its value.
    pub event: PropertyEvent,
}

/// Writer schemas by id, fetched from the registry once each.
#[derive(Default)]
struct Writers(HashMap<u32, Schema>);

impl Writers {
    async fn get(&mut self, pipeline: &Pipeline, id: u32) -> &Schema {
        if let std::collections::hash_map::Entry::Vacant(slot) = self.0.entry(id) {
            let reply = pipeline.registry_get(&format!("/schemas/ids/{id}")).await;
            let text = reply["schema"].as_str().expect("a schema text");
            let _ = slot.insert(Schema::parse_str(text).expect("a valid Avro schema"));
        }
        &self.0[&id]
    }
}

/// The writer schema id and datum of a wire-format value.
fn split(message: &OwnedMessage) -> (u32, Vec<u8>) {
    let value = message.payload().expect("a value");
    let (id, datum) = schemas::wire::split(value).expect("the Confluent wire format");
    (id, datum.to_vec())
}

/// Every record of `properties.latest` now, in partition and offset order.
pub async fn latest_records(pipeline: &Pipeline) -> Vec<LatestRecord> {
    let mut writers = Writers::default();
    let mut out = Vec::new();
    for message in pipeline.read_topic(&pipeline.topics.latest()) {
        let (schema_id, datum) = split(&message);
        let writer = writers.get(pipeline, schema_id).await;
        let state = schemas::decode_state(writer, &datum).expect("a PropertyState");
        out.push(LatestRecord {
            partition: message.partition(),
            offset: message.offset(),
            key: crate::key(&message).expect("a property key"),
            state,
            schema_id,
            source_offset: header(&message, "source-offset").and_then(|v| v.parse().ok()),
            dedupe_key: header(&message, "dedupe-key"),
            headers: {
                use rdkafka::message::Headers;
                message
                    .headers()
                    .map(|h| h.iter().map(|h| h.key.to_string()).collect())
                    .unwrap_or_default()
            },
        });
    }
    out
}

/// Every record of `properties.events` now, in partition and offset order.
pub async fn event_records(pipeline: &Pipeline) -> Vec<EventRecord> {
    let mut writers = Writers::default();
    let mut out = Vec::new();
    for message in pipeline.read_topic(&pipeline.topics.events()) {
        let (schema_id, datum) = split(&message);
        let writer = writers.get(pipeline, schema_id).await;
        let event = schemas::decode_datum(writer, &datum).expect("a PropertyEvent");
        out.push(EventRecord {
            partition: message.partition(),
            offset: message.offset(),
            event,
        });
    }
    out
}

/// What is wrong with `latest` given `events`, if anything: each key's
/// last state must be the merge of its events, each record's source offset
/// must be an event of its key on the same partition with its dedupe key,
/// and no two consecutive records of a key may be equal.
pub fn problems(latest: &[LatestRecord], events: &[EventRecord]) -> Vec<String> {
    let mut by_key: BTreeMap<&str, Vec<&PropertyEvent>> = BTreeMap::new();
    for e in events {
        by_key
            .entry(&e.event.property_key)
            .or_default()
            .push(&e.event);
    }
    let mut problems = Vec::new();
    let mut last: BTreeMap<&str, &LatestRecord> = BTreeMap::new();
    for record in latest {
        if let Some(before) = last.insert(&record.key, record)
            && before.state == record.state
        {
            problems.push(format!(
                "{}: the same state twice (offsets {} and {}, source offsets {:?} and {:?})",
                record.key,
                before.offset,
                record.offset,
                before.source_offset,
                record.source_offset
            ));
        }
        let source = events
            .iter()
            .find(|e| e.partition == record.partition && Some(e.offset) == record.source_offset);
        match source {
            Some(e) if e.event.property_key == record.key
                && Some(&e.event.dedupe_key) == record.dedupe_key.as_ref() => {}
            _ => problems.push(format!(
                "{}: offset {} names source offset {:?} (dedupe key {:?}), which is not one of its events on partition {}",
                record.key, record.offset, record.source_offset, record.dedupe_key, record.partition
            )),
        }
    }
    for (key, events) in &by_key {
        let expected = property_state::merge_all(None, events.iter().copied());
        match last.get(key) {
            None => problems.push(format!("{key}: no state on properties.latest")),
            Some(record) if Some(&record.state) != expected.as_ref() => problems.push(format!(
                "{key}: the last state (offset {}) is not the merge of its {} events",
                record.offset,
                events.len()
            )),
            Some(_) => {}
        }
    }
    for key in last.keys().filter(|k| !by_key.contains_key(*k)) {
        problems.push(format!("{key}: a state without an event"));
    }
    problems
}

/// Waits (at most `timeout`) until `properties.events` holds at least
/// `events_expected` events and `properties.latest` is their merge for
/// every property, lets it settle, and asserts [`problems`] finds nothing;
/// returns each key's last record.
pub async fn assert_latest_is_the_merge(
    pipeline: &Pipeline,
    events_expected: usize,
    timeout: Duration,
) -> BTreeMap<String, LatestRecord> {
    let deadline = Instant::now() + timeout;
    loop {
        let events = event_records(pipeline).await;
        let found = problems(&latest_records(pipeline).await, &events);
        let done = events.len() >= events_expected && found.is_empty();
        if done || Instant::now() >= deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let latest = latest_records(pipeline).await;
    let events = event_records(pipeline).await;
    let found = problems(&latest, &events);
    assert!(
        events.len() >= events_expected && found.is_empty(),
        "properties.latest ({} records) is not the merge of properties.events ({} events):\n{}\n{}",
        latest.len(),
        events.len(),
        found
            .iter()
            .take(20)
            .cloned()
            .collect::<Vec<_>>()
            .join("\n"),
        pipeline.all_logs()
    );
    latest.into_iter().map(|r| (r.key.clone(), r)).collect()
}
