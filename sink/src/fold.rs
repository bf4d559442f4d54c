//! A batch's events folded into their properties' states, with the shared
//! merge (`property_state::merge`, the function that also computes
//! `properties.latest`). Pure: the store reads the stored rows
//! ([`crate::stored`]), calls [`fold`], and writes what it returns.
//!
//! The events are grouped by property key, each group in the order read
//! (partition, then offset), and merged one by one into the property's
//! stored state. The merge is commutative, associative and idempotent, so
//! the order does not change the result, and a batch merged twice (a crash
//! before the commit, `sink replay`, a correction's redelivery) changes
//! nothing the second time. Only the properties whose state changed are
//! written; the others are counted.

use std::collections::{BTreeMap, HashMap};

use schemas::PropertyState;

use crate::rows::EventToWrite;
use crate::stored::{Prior, StoredRow};

/// A property whose state the batch changed: the row to write.
#[derive(Debug, Clone, PartialEq)]
pub struct ChangedProperty {
    /// The state after the batch.
    pub state: PropertyState,
    /// Where the state's last event was read (partition, offset): from this
    /// batch, or the stored row's when that event stays the last; `None`
    /// when the state has no last event or its position is not known.
    pub last_position: Option<(i32, i64)>,
    /// Whether the row existed (and is locked) when the batch read it; a
    /// new row is inserted, and an insert that finds a row means another
    /// writer created it meanwhile.
    pub existed: bool,
}

/// What a batch does to `properties`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Folded {
    /// The rows to write, by property key.
    pub changed: Vec<ChangedProperty>,
    /// Properties the batch's events left as they were.
    pub unchanged: usize,
    /// Properties whose stored row does not read (key, why): left alone.
    pub unreadable: Vec<(String, String)>,
}

/// The batch's events by property key (in key order, the order the rows
/// are locked in), each property's in the order read.
pub fn by_property(events: &[EventToWrite]) -> BTreeMap<&str, Vec<&EventToWrite>> {
    let mut groups: BTreeMap<&str, Vec<&EventToWrite>> = BTreeMap::new();
    for item in events {
        groups
            .entry(item.event.property_key.as_str())
            .or_default()
            .push(item);
    }
    for group in groups.values_mut() {
        group.sort_by_key(|e| (e.position.partition, e.position.offset));
    }
    groups
}

/// The property keys of a batch, sorted and once each.
pub fn property_keys(events: &[EventToWrite]) -> Vec<String> {
    by_property(events)
        .into_keys()
        .map(str::to_string)
        .collect()
}

/// Folds `events` into the stored rows of their properties (`stored`, by
/// property key; a property absent from it has no row yet).
pub fn fold(events: &[EventToWrite], stored: &HashMap<String, StoredRow>) -> Folded {
    let mut folded = Folded::default();
    for (key, group) in by_property(events) {
        let row = stored.get(key);
        let (mut state, legacy) = match row.map(|r| &r.prior) {
            None => (None, false),
            Some(Prior::State(s)) => (Some(s.as_ref().clone()), false),
            Some(Prior::Legacy(s)) => (Some(s.as_ref().clone()), true),
            Some(Prior::Unreadable(why)) => {
                folded.unreadable.push((key.to_string(), why.clone()));
                continue;
            }
        };
        let mut changed = false;
        for item in &group {
            let merged = property_state::merge(state.as_ref(), &item.event);
            changed |= merged.changed;
            state = Some(merged.state);
        }
        let Some(state) = state else {
            continue;
        };
        if changed || legacy {
            folded.changed.push(ChangedProperty {
                last_position: last_position(&state, &group, row),
                state,
                existed: row.is_some(),
            });
        } else {
            folded.unchanged += 1;
        }
    }
    folded
}

/// Where `state`'s last event was read: the last read of that event
/// version in the batch, else the stored row's position if it names the
/// same event.
fn last_position(
    state: &PropertyState,
    group: &[&EventToWrite],
    row: Option<&StoredRow>,
) -> Option<(i32, i64)> {
    let last = state.last_event.as_ref()?;
    group
        .iter()
        .rev()
        .find(|e| {
            e.event.dedupe_key == last.dedupe_key
                && e.event.lineage.normalizer_version == last.normalizer_version
                && e.event.occurred_at == last.occurred_at
        })
        .map(|e| (e.position.partition, e.position.offset))
        .or_else(|| {
            row?.last_event
                .as_ref()
                .filter(|s| {
                    s.dedupe_key == last.dedupe_key
                        && s.normalizer_version == last.normalizer_version
                })
                .map(|s| (s.partition, s.offset))
        })
}

#[cfg(test)]
mod tests {
    use schemas::{EventType, PropertySnapshot};

    use super::*;
    use crate::rows::Position;
    use crate::stored::StoredLastEvent;

    /// An event about `property`, keyed `key`, at `occurred_at`, read at
    /// offset `offset` of partition 0, carrying the sample's full snapshot.
    fn event(property: &str, key: &str, occurred_at: i64, offset: i64) -> EventToWrite {
        let mut e = schemas::sample::price_change();
        e.property_key = format!("generic:{property}");
        e.provider_property_id = property.to_string();
        e.dedupe_key = format!("generic:{key}");
        e.event_id = key.to_string();
        e.occurred_at = occurred_at;
        e.received_at = occurred_at + 1;
        EventToWrite {
            event: e,
            position: Position {
                topic: "events".into(),
                partition: 0,
                offset,
            },
        }
    }

    /// A sale carrying only its price and date.
    fn sale(property: &str, key: &str, occurred_at: i64, offset: i64) -> EventToWrite {
        let mut e = event(property, key, occurred_at, offset);
        e.event.event_type = EventType::Sold;
        let mut p = PropertySnapshot::empty();
        p.sold_price = Some(700_000.0);
        p.sold_at = Some(occurred_at);
        e.event.property = Some(p);
        e
    }

    fn stored_state(state: PropertyState, position: Option<(i32, i64)>) -> StoredRow {
        let last_event =
            state
                .last_event
                .as_ref()
                .zip(position)
                .map(|(l, (p, o))| StoredLastEvent {
                    dedupe_key: l.dedupe_key.clone(),
                    normalizer_version: l.normalizer_version.clone(),
                    partition: p,
                    offset: o,
                });
        StoredRow {
            prior: Prior::State(Box::new(state)),
            last_event,
        }
    }

    /// The stored rows after `first` alone, its row's last event read at `position`.
    fn stored_after(first: &EventToWrite, position: (i32, i64)) -> HashMap<String, StoredRow> {
        let state = property_state::merge(None, &first.event).state;
        HashMap::from([(
            first.event.property_key.clone(),
            stored_state(state, Some(position)),
        )])
    }

    #[test]
    fn a_sale_after_creation_keeps_what_was_known() {
        let batch = [event("a", "created", 1_000, 1), sale("a", "sold", 3_000, 2)];
        let folded = fold(&batch, &HashMap::new());
        assert_eq!(folded.changed.len(), 1);
        let row = &folded.changed[0];
        assert_eq!(row.state.property.price, Some(750_000.0));
        assert_eq!(row.state.property.bedrooms, Some(2));
        assert_eq!(row.state.property.status.as_deref(), Some("sold"));
        assert_eq!(row.state.property.sold_price, Some(700_000.0));
        assert_eq!(row.last_position, Some((0, 2)));
        assert!(!row.existed);
    }

    #[test]
    fn events_group_by_property_in_the_order_read() {
        let mut late = event("b", "x", 1, 9);
        late.position.partition = 1;
        let batch = [
            event("b", "y", 1, 5),
            late,
            event("a", "z", 1, 7),
            event("b", "w", 1, 2),
        ];
        let groups = by_property(&batch);
        let order: Vec<(&str, Vec<(i32, i64)>)> = groups
            .iter()
            .map(|(k, g)| {
                (
                    *k,
                    g.iter()
                        .map(|e| (e.position.partition, e.position.offset))
                        .collect(),
                )
            })
            .collect();
        assert_eq!(
            order,
            [
                ("generic:a", vec![(0, 7)]),
                ("generic:b", vec![(0, 2), (0, 5), (1, 9)])
            ]
        );
        assert_eq!(property_keys(&batch), ["generic:a", "generic:b"]);
    }

    #[test]
    fn a_batch_merged_again_changes_nothing() {
        let batch = [
            event("a", "created", 1_000, 1),
            sale("a", "sold", 3_000, 2),
            event("b", "other", 2_000, 3),
        ];
        let first = fold(&batch, &HashMap::new());
        let stored: HashMap<String, StoredRow> = first
            .changed
            .iter()
            .map(|c| {
                (
                    c.state.property_key.clone(),
                    stored_state(c.state.clone(), c.last_position),
                )
            })
            .collect();
        let again = fold(&batch, &stored);
        assert_eq!(again.changed, []);
        assert_eq!(again.unchanged, 2);
        assert_eq!(
            fold(&batch[1..2], &stored).unchanged,
            1,
            "or any part of it"
        );
    }

    #[test]
    fn the_fold_does_not_depend_on_the_order_read() {
        let created = event("a", "created", 1_000, 1);
        let sold = sale("a", "sold", 3_000, 2);
        let mut updated = event("a", "updated", 2_000, 3);
        if let Some(p) = updated.event.property.as_mut() {
            p.price = Some(720_000.0);
        }
        let one = fold(
            &[created.clone(), updated.clone(), sold.clone()],
            &HashMap::new(),
        );
        let mut swapped = [sold, updated, created];
        swapped[0].position.offset = 1;
        swapped[2].position.offset = 2;
        let other = fold(&swapped, &HashMap::new());
        assert_eq!(one.changed[0].state, other.changed[0].state);
        assert_eq!(one.changed[0].state.property.price, Some(720_000.0));
    }

    #[test]
    fn a_no_op_event_is_counted_not_written() {
        let stored = stored_after(&event("a", "created", 1_000, 1), (0, 1));
        // The same data re-notified a day later, which the provider marks
        // as unchanged (an Immoteur re-crawl).
        let mut again = event("a", "again", 1_000, 8);
        again.event.received_at += 86_400_000;
        again.event.unchanged = Some(true);
        let folded = fold(&[again], &stored);
        assert_eq!((folded.changed.len(), folded.unchanged), (0, 1));
    }

    #[test]
    fn a_stored_last_event_keeps_its_position_when_it_stays_the_last() {
        let stored = stored_after(&event("a", "newer", 5_000, 1), (3, 77));
        // An older event arriving late fills a field only it knows.
        let mut older = event("a", "older", 1_000, 9);
        let mut p = PropertySnapshot::empty();
        p.title = Some("only the older one says".into());
        older.event.property = Some(p);
        let folded = fold(&[older], &stored);
        let row = &folded.changed[0];
        assert_eq!(
            row.state.last_event.as_ref().map(|l| l.dedupe_key.as_str()),
            Some("generic:newer")
        );
        assert_eq!(row.last_position, Some((3, 77)));
        assert!(row.existed);
    }

    #[test]
    fn a_reference_creates_a_property_with_no_last_event() {
        let mut reference = event("a", "ref", 1_000, 4);
        reference.event.event_type = EventType::ReferenceOnly;
        reference.event.property = None;
        let folded = fold(&[reference], &HashMap::new());
        let row = &folded.changed[0];
        assert_eq!(row.state.last_event, None);
        assert_eq!(row.last_position, None);
    }

    #[test]
    fn a_legacy_row_is_written_once_even_when_nothing_changes_it() {
        let created = event("a", "created", 1_000, 1);
        let state = property_state::merge(None, &created.event).state;
        let stored = HashMap::from([(
            "generic:a".to_string(),
            StoredRow {
                prior: Prior::Legacy(Box::new(state.clone())),
                last_event: None,
            },
        )]);
        let folded = fold(&[created], &stored);
        assert_eq!(folded.changed.len(), 1, "its state column gets filled");
        assert_eq!(folded.changed[0].state, state);
    }

    #[test]
    fn an_unreadable_row_is_left_alone() {
        let stored = HashMap::from([(
            "generic:a".to_string(),
            StoredRow {
                prior: Prior::Unreadable("its state does not read".into()),
                last_event: None,
            },
        )]);
        let folded = fold(&[event("a", "created", 1_000, 1)], &stored);
        assert_eq!(folded.changed, []);
        assert_eq!(folded.unchanged, 0);
        assert_eq!(folded.unreadable.len(), 1);
    }

    /// Two events sharing a dedupe key but not a time (breaker20): the
    /// last event's position is the read of the one that is last, not of
    /// the other read after it.
    #[test]
    fn the_last_position_is_the_last_events_own_read() {
        let newer = event("p", "same", 2_000, 7);
        let older = event("p", "same", 1_000, 9);
        let folded = fold(&[newer, older], &HashMap::new());
        let row = &folded.changed[0];
        assert_eq!(
            row.state.last_event.as_ref().map(|e| e.occurred_at),
            Some(2_000)
        );
        assert_eq!(row.last_position, Some((0, 7)));
    }
}
