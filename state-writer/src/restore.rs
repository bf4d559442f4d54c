//! Rebuilding one input partition's state from the same partition of
//! `properties.latest`, pure: [`Restore::apply`] folds the partition's
//! records, from its beginning to its end, into the
//! [`PartitionState`] the loop resumes with.
//!
//! - `properties.latest` is compacted by property key: the last record of
//!   a key is its state, whatever compaction removed before it.
//! - A tombstone removes the key: it is how an operator deletes a
//!   property's state (the next event of the property starts it again).
//!   The state writer itself never writes one.
//! - A record that is not the state writer's (no `source-offset` header,
//!   whatever its value, even a valid state: what dedupe wrote there
//!   before the state writer existed, or another producer's stray value)
//!   is ignored: the key keeps the last state the
//!   state writer wrote, so a foreign write cannot erase fields no event
//!   cleared. Compaction keeps only a key's last record, so once it has
//!   run over a foreign record the key's earlier state is gone and the key
//!   is rebuilt from its events that follow; `properties.latest` is the
//!   state writer's alone (README, "Property state"). Counted and logged
//!   by the caller.
//! - A record of the state writer's whose value does not decode (its
//!   writer schema unknown to the registry, a broken value) removes the
//!   key: the key's state is rebuilt from its events that follow. Counted
//!   and logged by the caller.
//! - The mark is the greatest `source-offset` header of the partition's
//!   records (a record without one, dedupe's legacy copy, adds nothing):
//!   the state of every input at or below it is in the fold. The state
//!   writer never removes a key, so the record carrying the greatest
//!   source offset of a key is its last one, which compaction keeps.
//!
//! The IO around it (reading to the end, fetching writer schemas) is in
//! [`crate::restoring`].

use schemas::PropertyState;

use crate::state::PartitionState;

/// A record's value, as the restore sees it.
#[derive(Debug)]
pub enum Value {
    /// No value.
    Tombstone,
    /// A property state.
    State(Box<PropertyState>),
    /// A value that is no state, for this reason.
    Unreadable(String),
}

/// One record of `properties.latest`.
#[derive(Debug)]
pub struct Record<'a> {
    /// Its key (the property key), when it is UTF-8.
    pub key: Option<&'a str>,
    /// Its value.
    pub value: Value,
    /// Its `source-offset` header, when it has a valid one.
    pub source_offset: Option<i64>,
}

/// The fold of a partition's records.
#[derive(Debug, Default)]
pub struct Restore {
    /// The state so far.
    pub state: PartitionState,
    /// Records read.
    pub records: u64,
    /// Records whose value was no state of the state writer's (no state,
    /// or a state without a `source-offset`).
    pub unreadable: u64,
    /// Records without a key, ignored.
    pub without_key: u64,
}

impl Restore {
    /// Folds the next record.
    pub fn apply(&mut self, record: Record<'_>) {
        self.records += 1;
        if let Some(offset) = record.source_offset {
            self.state.covered(offset);
        }
        let Some(key) = record.key else {
            self.without_key += 1;
            return;
        };
        match record.value {
            // Another producer's: ignored like its other values (a stray
            // copy of an old state would undo what events changed since).
            Value::State(_) if record.source_offset.is_none() => self.unreadable += 1,
            Value::State(state) => self.state.set(key.to_string(), *state),
            Value::Tombstone => self.state.forget(key),
            Value::Unreadable(_) => {
                self.unreadable += 1;
                if record.source_offset.is_some() {
                    self.state.forget(key);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state(key: &str, price: f64) -> Box<PropertyState> {
        let mut event = schemas::sample::price_change();
        event.property_key = key.to_string();
        if let Some(p) = event.property.as_mut() {
            p.price = Some(price);
        }
        Box::new(property_state::state_of(&event))
    }

    fn record(key: &str, value: Value, source_offset: Option<i64>) -> Record<'_> {
        Record {
            key: Some(key),
            value,
            source_offset,
        }
    }

    #[test]
    fn the_last_record_of_a_key_is_its_state_and_the_mark_the_greatest_source_offset() {
        let history = [("a", 1.0, 3), ("b", 2.0, 9), ("b", 4.0, 10), ("a", 5.0, 12)];
        let mut restore = Restore::default();
        for (key, price, offset) in history {
            restore.apply(record(key, Value::State(state(key, price)), Some(offset)));
        }
        // Compaction keeps each key's last record: the same fold.
        let mut compacted = Restore::default();
        for (key, price, offset) in [history[2], history[3]] {
            compacted.apply(record(key, Value::State(state(key, price)), Some(offset)));
        }
        for restore in [&restore, &compacted] {
            assert_eq!(restore.state.mark, Some(12));
            assert_eq!(restore.state.len(), 2);
            let price = |key: &str| restore.state.get(key).and_then(|s| s.property.price);
            assert_eq!((price("a"), price("b")), (Some(5.0), Some(4.0)));
        }
        assert_eq!(restore.records, 4);
    }

    #[test]
    fn a_foreign_value_after_a_state_keeps_the_state() {
        let mut restore = Restore::default();
        restore.apply(record("a", Value::State(state("a", 1.0)), Some(1)));
        // Dedupe's legacy copy of an event, or a stray producer's value:
        // no source offset, not the state writer's.
        restore.apply(record("a", Value::Unreadable("an event".into()), None));
        assert_eq!(
            restore.state.get("a").and_then(|s| s.property.price),
            Some(1.0)
        );
        assert_eq!((restore.unreadable, restore.state.mark), (1, Some(1)));
    }

    #[test]
    fn a_tombstone_or_an_own_value_that_is_no_state_removes_the_key() {
        let mut restore = Restore::default();
        restore.apply(record("a", Value::State(state("a", 1.0)), Some(1)));
        restore.apply(record("b", Value::State(state("b", 1.0)), Some(2)));
        restore.apply(record("a", Value::Tombstone, None));
        // The state writer's own record, whose value does not decode.
        restore.apply(record("b", Value::Unreadable("broken".into()), Some(3)));
        restore.apply(Record {
            key: None,
            value: Value::State(state("c", 1.0)),
            source_offset: Some(4),
        });
        assert!(restore.state.is_empty());
        assert_eq!(restore.state.mark, Some(4));
        assert_eq!((restore.unreadable, restore.without_key), (1, 1));
    }

    #[test]
    fn an_empty_partition_has_no_mark() {
        let restore = Restore::default();
        assert_eq!(restore.state.mark, None);
        assert!(restore.state.is_empty());
    }

    /// breaker-s9: a valid state without a `source-offset` is another
    /// producer's too (the state writer always writes the header): it must
    /// not replace the key's state any more than a value that is no state.
    #[test]
    fn a_foreign_state_after_an_own_one_keeps_the_own_state() {
        let mut restore = Restore::default();
        restore.apply(record("a", Value::State(state("a", 1.0)), Some(1)));
        restore.apply(record("a", Value::State(state("a", 9.0)), None));
        restore.apply(record("b", Value::State(state("b", 9.0)), None));
        assert_eq!(
            restore.state.get("a").and_then(|s| s.property.price),
            Some(1.0)
        );
        assert!(restore.state.get("b").is_none());
        assert_eq!((restore.unreadable, restore.state.mark), (2, Some(1)));
    }

    /// breaker-s9: a foreign record carrying a `source-offset` (any
    /// producer can write the header) far past the inputs the state writer
    /// merged raises the mark: every input up to it is then taken for
    /// already written and skipped, and its change never reaches
    /// `properties.latest`. The pure fold cannot tell; the fix needs the
    /// restore to bound the mark by the input partition's end offset
    /// (IO in `restoring.rs`), or a header a stray producer does not copy.
    #[test]
    #[ignore = "still broken: a forged source-offset past the input's end pushes the mark and skips events"]
    fn a_forged_source_offset_does_not_push_the_mark_past_the_merged_inputs() {
        let mut restore = Restore::default();
        restore.apply(record("a", Value::State(state("a", 1.0)), Some(3)));
        restore.apply(record(
            "z",
            Value::Unreadable("garbage".into()),
            Some(i64::MAX),
        ));
        assert_eq!(restore.state.mark, Some(3), "input 4 is not written yet");
        assert!(!restore.state.already_written(4));
    }
}
