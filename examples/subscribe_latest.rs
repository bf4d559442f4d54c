//! `subscribe-latest`: how your own service keeps the latest state of every
//! property from the compacted `properties.latest` topic.
//!
//! A consumer in its own consumer group that reads the topic from the
//! beginning and commits no offsets: each start (and each partition the
//! group gives it) reads again from the beginning, and what compaction kept
//! rebuilds the table of states. It decodes each value with the writer's
//! schema, fetched from the schema registry by the id in the value's prefix,
//! as generic Avro turned into JSON: no Rust type of the `PropertyState`
//! record is needed, so it works with whatever compatible version is
//! registered. It keeps the latest state per property key in memory (a
//! tombstone removes the key) and prints each change of the table as one
//! JSON line; a record that repeats the state already held (a re-read, or a
//! state written again after a crash) prints nothing.
//!
//! A state whose `withheld_fields` is not empty was too large for one
//! record: those fields' values are left out (null) and only PostgreSQL's
//! `properties` row has them.
//!
//! Order: one property's states are on one partition, in order, so the last
//! record read for a key is its latest state. Started several times with the
//! same group, each instance holds the properties of its partitions; after a
//! rebalance it keeps those of a partition it lost until it restarts.

use std::collections::HashMap;

use anyhow::Context;
use clap::Parser;
use pipeline_examples::{Connection, decode};
use rdkafka::Message;
use serde_json::{Value, json};

/// Keep the latest state of every property from properties.latest, and
/// print each change as a JSON line.
///
/// Reads the compacted topic from the beginning in its own consumer group
/// and commits nothing, so every start rebuilds the table. Each line is
/// {"key", "partition", "offset", "state"}: the property key, where the
/// record is, and the new state decoded with its writer schema (null when a
/// tombstone removed the key). A record that repeats the state held prints
/// nothing. The topic is described in contract/asyncapi.json.
#[derive(Debug, Parser)]
#[command(version)]
struct Args {
    #[command(flatten)]
    connection: Connection,
    /// Your service's own consumer group (never a pipeline stage's).
    #[arg(long, default_value = "my-service-latest")]
    group: String,
    /// Topic to read.
    #[arg(long, default_value = "properties.latest")]
    topic: String,
}

/// The latest state of each property key.
#[derive(Debug, Default)]
struct LatestStates {
    states: HashMap<String, Value>,
}

impl LatestStates {
    /// Applies one record of `key`: a new state, or `None` for a tombstone.
    /// Whether the table changed.
    fn apply(&mut self, key: &str, state: Option<Value>) -> bool {
        match state {
            Some(state) if self.states.get(key) == Some(&state) => false,
            Some(state) => {
                let _ = self.states.insert(key.to_string(), state);
                true
            }
            None => self.states.remove(key).is_some(),
        }
    }

    /// The state held for `key`.
    fn get(&self, key: &str) -> Option<&Value> {
        self.states.get(key)
    }

    /// How many properties have a state.
    fn len(&self) -> usize {
        self.states.len()
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let consumer = args.connection.consumer(&args.group, &args.topic)?;
    let decoder = args.connection.decoder()?;
    let mut table = LatestStates::default();
    let read = args
        .connection
        .each_record(&consumer, async |message| {
            let Some(key) = message.key() else {
                eprintln!(
                    "record without a key at partition {} offset {} skipped",
                    message.partition(),
                    message.offset()
                );
                return Ok(());
            };
            let key = String::from_utf8_lossy(key);
            let state = match message.payload() {
                None => None,
                Some(_) => {
                    let value = decode(&decoder, message).await?;
                    Some(Value::try_from(value).with_context(|| {
                        format!(
                            "the state at partition {} offset {} has no JSON form",
                            message.partition(),
                            message.offset()
                        )
                    })?)
                }
            };
            if table.apply(&key, state) {
                let line = json!({
                    "key": key,
                    "partition": message.partition(),
                    "offset": message.offset(),
                    "state": table.get(&key),
                });
                println!("{line}");
            }
            Ok(())
        })
        .await;
    eprintln!("{} properties held", table.len());
    read
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_new_state_is_a_change_and_a_repeat_is_not() {
        let mut table = LatestStates::default();
        assert!(table.apply("s:1", Some(json!({"price": 1}))));
        assert!(!table.apply("s:1", Some(json!({"price": 1}))));
        assert!(table.apply("s:1", Some(json!({"price": 2}))));
        assert_eq!(table.get("s:1"), Some(&json!({"price": 2})));
        assert!(table.apply("s:2", Some(json!({"price": 2}))));
        assert_eq!(table.len(), 2);
    }

    #[test]
    fn a_tombstone_removes_the_key_once() {
        let mut table = LatestStates::default();
        assert!(!table.apply("s:1", None), "nothing to remove");
        assert!(table.apply("s:1", Some(json!({"price": 1}))));
        assert!(table.apply("s:1", None));
        assert_eq!(table.get("s:1"), None);
        assert!(!table.apply("s:1", None));
        assert_eq!(table.len(), 0);
    }
}
