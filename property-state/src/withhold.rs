//! Withholding values from a state too large for one record.
//!
//! Normalize refuses an event over the record size limit, so every event
//! fits a record; a state is the merge of several events and may not (one
//! event with a long description, another with hundreds of pictures). The
//! state writer must still write it, or its whole partition of
//! `properties.latest` stands still. So it withholds the state's largest
//! values, one at a time, largest first, until the record fits
//! ([`withhold_largest`]): a withheld field stays known (its version stays
//! in `fields`, so the merge still orders events for it) but its value is
//! null and its path is listed in `withheld_fields`. The next event that
//! wins the field brings its value back (`crate::merge`).
//!
//! What is withheld is part of the state the writer keeps and restores, so
//! a restart or a rebalance gives the same records as an uninterrupted run.
//! It depends on the order events arrived in, which no other part of the
//! state does; PostgreSQL's `properties` row (no size limit) keeps every
//! value, whatever the order (README, "Property state").

use schemas::PropertyState;

use crate::fields::{FIELDS, Field};
use crate::merge::{blank, set_withheld, withheld};

/// Withholds the largest value of `state` that is not withheld yet (ties:
/// the field first in [`FIELDS`]), returning its path; `None` when no value
/// is left to withhold.
pub fn withhold_largest(state: &mut PropertyState) -> Option<&'static str> {
    let mut largest: Option<(usize, &'static Field)> = None;
    for field in FIELDS {
        if !field.is_known(&state.property) || withheld(state, field.path) {
            continue;
        }
        let size = value_size(field, state);
        if largest.is_none_or(|(most, _)| size > most) {
            largest = Some((size, field));
        }
    }
    let (_, field) = largest?;
    field.clear(&mut state.property);
    set_withheld(state, field.path, true);
    Some(field.path)
}

/// How large a field's value is, to rank the values to withhold: the
/// bytes it takes in the record (the state's Avro datum with only this
/// value, the same on every machine). Its printed form is no measure: a
/// price history or an advert list prints its struct and field names for
/// every item, several times its encoded size (breaker-s17).
fn value_size(field: &Field, state: &PropertyState) -> usize {
    let mut probe = blank("", "", state.provider, "");
    field.copy(&state.property, &mut probe.property);
    schemas::encode_state(&probe).map_or_else(
        |_| field.tie_key(&state.property).len(),
        |datum| datum.len(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::merge::{merge, state_of};
    use schemas::sample::snapshot_event as event;

    fn big(id: &str, occurred_at: i64) -> schemas::PropertyEvent {
        let mut e = event(id, occurred_at);
        if let Some(p) = e.property.as_mut() {
            p.description = Some("d".repeat(5_000));
            p.pictures = Some((0..50).map(|i| format!("https://img/{i}.jpg")).collect());
        }
        e
    }

    #[test]
    fn the_largest_value_goes_first_and_stays_known() {
        let mut state = state_of(&big("a", 1_000));
        assert_eq!(withhold_largest(&mut state), Some("description"));
        assert_eq!(state.property.description, None);
        assert!(state.fields.contains_key("description"));
        assert_eq!(withhold_largest(&mut state), Some("pictures"));
        assert_eq!(state.withheld_fields, ["description", "pictures"]);
        assert!(state.property.price.is_some());
    }

    #[test]
    fn every_value_can_be_withheld_and_then_there_is_none_left() {
        let mut state = state_of(&big("a", 1_000));
        let mut count = 0;
        while withhold_largest(&mut state).is_some() {
            count += 1;
        }
        assert_eq!(count, state.withheld_fields.len());
        assert!(FIELDS.iter().all(|f| !f.is_known(&state.property)));
        assert_eq!(withhold_largest(&mut state), None);
    }

    #[test]
    fn an_older_event_does_not_bring_a_withheld_value_back() {
        let mut state = state_of(&big("new", 2_000));
        let _ = withhold_largest(&mut state);
        let older = big("old", 1_000);
        let merged = merge(Some(&state), &older);
        assert!(!merged.changed);
        assert_eq!(merged.state.property.description, None);
        assert_eq!(merged.state.withheld_fields, ["description"]);
    }

    #[test]
    fn a_newer_event_brings_the_field_back() {
        let mut state = state_of(&big("old", 1_000));
        let _ = withhold_largest(&mut state);
        let mut newer = event("new", 2_000);
        if let Some(p) = newer.property.as_mut() {
            p.description = Some("short".into());
        }
        let merged = merge(Some(&state), &newer);
        assert!(merged.changed);
        assert_eq!(merged.state.property.description.as_deref(), Some("short"));
        assert!(merged.state.withheld_fields.is_empty());
    }

    #[test]
    fn the_same_event_again_restores_the_value_it_set() {
        let original = big("a", 1_000);
        let mut state = state_of(&original);
        let _ = withhold_largest(&mut state);
        let merged = merge(Some(&state), &original);
        assert!(merged.changed);
        assert_eq!(merged.state, state_of(&original));
    }
}
