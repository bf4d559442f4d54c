//! What the state writer keeps per input partition: each property's
//! current state, as the last record of its key on the same partition of
//! `properties.latest` holds it, and the *mark*: the greatest input offset
//! whose state is on that partition (its `source-offset` header).

use std::collections::HashMap;

use schemas::PropertyState;

/// The state of one input partition.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PartitionState {
    properties: HashMap<String, PropertyState>,
    /// The greatest `source-offset` on the output partition: every input
    /// at or below it is in the states (README, "Delivery guarantees").
    pub mark: Option<i64>,
}

impl PartitionState {
    /// The state of property `key`, if it has one.
    pub fn get(&self, key: &str) -> Option<&PropertyState> {
        self.properties.get(key)
    }

    /// Sets the state of property `key`.
    pub fn set(&mut self, key: String, state: PropertyState) {
        let _ = self.properties.insert(key, state);
    }

    /// Forgets property `key` (a tombstone, or a record that is no state).
    pub fn forget(&mut self, key: &str) {
        let _ = self.properties.remove(key);
    }

    /// The output now holds the state of input `source_offset`.
    pub fn covered(&mut self, source_offset: i64) {
        self.mark = Some(self.mark.map_or(source_offset, |m| m.max(source_offset)));
    }

    /// Whether input `offset` is at or below the mark: its state is
    /// already on the output.
    pub fn already_written(&self, offset: i64) -> bool {
        self.mark.is_some_and(|m| offset <= m)
    }

    /// How many properties have a state.
    pub fn len(&self) -> usize {
        self.properties.len()
    }

    /// Whether no property has a state.
    pub fn is_empty(&self) -> bool {
        self.properties.is_empty()
    }

    /// The properties and their states.
    pub fn iter(&self) -> impl Iterator<Item = (&String, &PropertyState)> {
        self.properties.iter()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_mark_only_grows_and_covers_what_is_below_it() {
        let mut state = PartitionState::default();
        assert!(!state.already_written(0));
        state.covered(7);
        state.covered(3);
        assert_eq!(state.mark, Some(7));
        assert!(state.already_written(7) && state.already_written(0));
        assert!(!state.already_written(8));
    }
}
