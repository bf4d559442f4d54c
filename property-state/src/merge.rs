//! The merge: one event into a property's state.
//!
//! Per field, the event with the greatest [`Rank`] wins (later event time;
//! at equal times the smaller dedupe key, then the newer normalizer
//! version; two versions that tie on all three, which only a sender
//! reusing an event identity for other data produces, are ordered by the
//! value itself). Only the fields an event carries
//! ([`crate::carried`]) take part, so a partial event never erases what is
//! known. Winning is strict, so merging an event twice changes nothing;
//! and because every field keeps the greatest of its candidates, the state
//! is the same whatever order the events come in (`tests/merge_laws.rs`).
//!
//! Besides the snapshot the state keeps, for each field, the event version
//! that set it; the contributors (the event versions the current values
//! come from); the last event (the greatest contributor) and the fields it
//! set. All of it is a function of the set of events merged, not of their
//! order.

use std::cmp::Ordering;

use schemas::{Contributor, FieldVersion, PropertyEvent, PropertySnapshot, PropertyState};

use crate::carried::carried;
use crate::fields::FIELDS;
use crate::version::{Rank, version_key};

/// The result of merging one event.
#[derive(Debug, Clone, PartialEq)]
pub struct Merged {
    /// The state after the event.
    pub state: PropertyState,
    /// Whether the state differs from the one the event was merged into
    /// (a first state always does). An unchanged state is not written.
    pub changed: bool,
    /// The fields whose value the event changed.
    pub changed_fields: Vec<&'static str>,
}

/// Merges `event` into `prior` (`None`: the property's first event).
pub fn merge(prior: Option<&PropertyState>, event: &PropertyEvent) -> Merged {
    join(prior, &state_of(event))
}

/// Joins two states of one property: per field, the greater of the two
/// events that set it. `merge(s, e)` is `join(s, state_of(e))`, so folding
/// events and joining partial folds give the same state.
pub fn join(prior: Option<&PropertyState>, other: &PropertyState) -> Merged {
    let mut state = prior.cloned().unwrap_or_else(|| {
        blank(
            &other.property_key,
            &other.source,
            other.provider,
            &other.provider_property_id,
        )
    });
    let mut changed_fields = Vec::new();
    for field in FIELDS {
        let Some(incoming) = other.fields.get(field.path) else {
            continue;
        };
        let incoming_withheld = withheld(other, field.path);
        let wins = state.fields.get(field.path).is_none_or(|current| {
            match field_rank(incoming).cmp(&field_rank(current)) {
                Ordering::Greater => true,
                Ordering::Less => false,
                // One version, its value withheld on one side only: the
                // side that has the value wins, when it has one. A twin of
                // the version that clears the field (a reused event
                // identity) is not the withheld value, and would lose to
                // it in the merge (a value orders above none), so it does
                // not turn the withheld value into a known null
                // (breaker-s17).
                Ordering::Equal => match (withheld(&state, field.path), incoming_withheld) {
                    (true, false) => field.is_known(&other.property),
                    (false, true) => false,
                    _ => field.tie_key(&other.property) > field.tie_key(&state.property),
                },
            }
        });
        if !wins {
            continue;
        }
        // `same` alone misses a twin's -0.0 replacing 0.0 (equal, yet
        // written differently): the state would change without being
        // written, so what is written would depend on the order.
        if !field.same(&other.property, &state.property)
            || field.tie_key(&other.property) != field.tie_key(&state.property)
        {
            changed_fields.push(field.path);
        }
        field.copy(&other.property, &mut state.property);
        let _ = state
            .fields
            .insert(field.path.to_string(), incoming.clone());
        set_withheld(&mut state, field.path, incoming_withheld);
    }
    for incoming in &other.contributors {
        keep_contributor(&mut state, incoming);
    }
    settle_bookkeeping(&mut state);
    let changed =
        prior.is_none_or(|prior| !changed_fields.is_empty() || !same_bookkeeping(prior, &state));
    Merged {
        state,
        changed,
        changed_fields,
    }
}

/// What `state` changed from `prior`, as a merge would say it: for a state
/// altered after its merge (values withheld, [`crate::withhold`]).
pub fn diff(prior: Option<&PropertyState>, state: PropertyState) -> Merged {
    let changed_fields: Vec<&'static str> = match prior {
        None => FIELDS
            .iter()
            .filter(|f| state.fields.contains_key(f.path))
            .map(|f| f.path)
            .collect(),
        Some(prior) => FIELDS
            .iter()
            .filter(|f| {
                !f.same(&prior.property, &state.property)
                    || f.tie_key(&prior.property) != f.tie_key(&state.property)
            })
            .map(|f| f.path)
            .collect(),
    };
    let changed =
        prior.is_none_or(|prior| !changed_fields.is_empty() || !same_bookkeeping(prior, &state));
    Merged {
        state,
        changed,
        changed_fields,
    }
}

/// Whether `state` withholds the value of field `path`.
pub(crate) fn withheld(state: &PropertyState, path: &str) -> bool {
    state.withheld_fields.iter().any(|f| f == path)
}

/// Marks the value of field `path` withheld (`on`) or present, keeping
/// the list in [`FIELDS`] order.
pub(crate) fn set_withheld(state: &mut PropertyState, path: &'static str, on: bool) {
    if withheld(state, path) == on {
        return;
    }
    if on {
        state.withheld_fields.push(path.to_string());
    } else {
        state.withheld_fields.retain(|f| f != path);
    }
    let order = |p: &String| FIELDS.iter().position(|f| f.path == p.as_str());
    state.withheld_fields.sort_by_key(order);
}

/// The state one event alone builds: every field it carries, set by it.
pub fn state_of(event: &PropertyEvent) -> PropertyState {
    let carried = carried(event);
    let version = FieldVersion {
        occurred_at: event.occurred_at,
        dedupe_key: event.dedupe_key.clone(),
        normalizer_version: event.lineage.normalizer_version.clone(),
    };
    let mut state = blank(
        &event.property_key,
        &event.source,
        event.provider,
        &event.provider_property_id,
    );
    for field in &carried.fields {
        field.copy(&carried.snapshot, &mut state.property);
        let _ = state.fields.insert(field.path.to_string(), version.clone());
    }
    if !carried.fields.is_empty() {
        state.contributors.push(Contributor {
            event_id: event.event_id.clone(),
            dedupe_key: event.dedupe_key.clone(),
            event_type: event.event_type,
            occurred_at: event.occurred_at,
            normalizer_version: event.lineage.normalizer_version.clone(),
        });
    }
    settle_bookkeeping(&mut state);
    state
}

/// A property known by its identity only: no field known yet.
pub(crate) fn blank(
    property_key: &str,
    source: &str,
    provider: schemas::Provider,
    provider_property_id: &str,
) -> PropertyState {
    PropertyState {
        property_key: property_key.to_string(),
        source: source.to_string(),
        provider,
        provider_property_id: provider_property_id.to_string(),
        property: PropertySnapshot::empty(),
        fields: Default::default(),
        contributors: Vec::new(),
        last_event: None,
        last_changed_fields: Vec::new(),
        contributing_events: 0,
        withheld_fields: Vec::new(),
    }
}

/// Folds events into a state in the order given (tests, replays).
pub fn merge_all<'a>(
    prior: Option<PropertyState>,
    events: impl IntoIterator<Item = &'a PropertyEvent>,
) -> Option<PropertyState> {
    events.into_iter().fold(prior, |state, event| {
        Some(merge(state.as_ref(), event).state)
    })
}

fn contributor_rank(c: &Contributor) -> Rank<'_> {
    Rank {
        occurred_at: c.occurred_at,
        dedupe_key: &c.dedupe_key,
        normalizer_version: version_key(&c.normalizer_version),
        normalizer_text: &c.normalizer_version,
    }
}

/// The rank of the event version that set a field.
fn field_rank(version: &FieldVersion) -> Rank<'_> {
    Rank {
        occurred_at: version.occurred_at,
        dedupe_key: &version.dedupe_key,
        normalizer_version: version_key(&version.normalizer_version),
        normalizer_text: &version.normalizer_version,
    }
}

/// Whether two states agree on everything but the snapshot's values
/// (which `changed_fields` covers; comparing them would count a NaN inside
/// a list as a change on every redelivery).
fn same_bookkeeping(a: &PropertyState, b: &PropertyState) -> bool {
    a.property_key == b.property_key
        && a.source == b.source
        && a.provider == b.provider
        && a.provider_property_id == b.provider_property_id
        && a.fields == b.fields
        && a.contributors == b.contributors
        && a.last_event == b.last_event
        && a.last_changed_fields == b.last_changed_fields
        && a.contributing_events == b.contributing_events
        && a.withheld_fields == b.withheld_fields
}

/// Whether `version` was set by `contributor`: the same event version
/// (dedupe key, normalizer version and time: two events sharing a key but
/// not a time are two versions).
fn sets(version: &FieldVersion, contributor: &Contributor) -> bool {
    version.dedupe_key == contributor.dedupe_key
        && version.normalizer_version == contributor.normalizer_version
        && version.occurred_at == contributor.occurred_at
}

/// Whether two contributors are the same event version.
fn same_version(a: &Contributor, b: &Contributor) -> bool {
    a.dedupe_key == b.dedupe_key
        && a.normalizer_version == b.normalizer_version
        && a.occurred_at == b.occurred_at
}

/// Among contributors of one version, the one kept whatever the order
/// they come in: the smaller event id, then event type.
fn preferred(a: &Contributor, b: &Contributor) -> bool {
    (a.event_id.as_str(), format!("{:?}", a.event_type))
        < (b.event_id.as_str(), format!("{:?}", b.event_type))
}

/// Keeps `incoming` among the state's contributors when a field refers to
/// it (once per event version; of two contributors of one version, the
/// [`preferred`] one).
fn keep_contributor(state: &mut PropertyState, incoming: &Contributor) {
    if let Some(known) = state
        .contributors
        .iter_mut()
        .find(|c| same_version(c, incoming))
    {
        if preferred(incoming, known) {
            *known = incoming.clone();
        }
        return;
    }
    if state.fields.values().any(|v| sets(v, incoming)) {
        state.contributors.push(incoming.clone());
    }
}

/// Drops contributors no field refers to any more, orders them, and
/// derives the last event and the fields it set.
fn settle_bookkeeping(state: &mut PropertyState) {
    let fields = &state.fields;
    state
        .contributors
        .retain(|c| fields.values().any(|v| sets(v, c)));
    state
        .contributors
        .sort_by(|a, b| contributor_rank(a).cmp(&contributor_rank(b)));
    state.last_event = state.contributors.last().cloned();
    state.last_changed_fields = match &state.last_event {
        Some(last) => FIELDS
            .iter()
            .filter(|f| fields.get(f.path).is_some_and(|v| sets(v, last)))
            .map(|f| f.path.to_string())
            .collect(),
        None => Vec::new(),
    };
    let events: std::collections::BTreeSet<&str> = state
        .contributors
        .iter()
        .map(|c| c.dedupe_key.as_str())
        .collect();
    state.contributing_events = i32::try_from(events.len()).unwrap_or(i32::MAX);
}

#[cfg(test)]
mod tests {
    use schemas::EventType;

    use super::*;

    fn event(key: &str, event_type: EventType, occurred_at: i64) -> PropertyEvent {
        let mut e = schemas::sample::price_change();
        e.dedupe_key = key.to_string();
        e.event_id = key.to_string();
        e.event_type = event_type;
        e.occurred_at = occurred_at;
        e.received_at = occurred_at + 1;
        e.change = None;
        e
    }

    #[test]
    fn a_sale_after_creation_keeps_the_known_data_and_records_the_sale() {
        let created = event("created", EventType::Created, 1_000);
        let mut sold = event("sold", EventType::Sold, 3_000);
        let mut sale = PropertySnapshot::empty();
        sale.sold_price = Some(700_000.0);
        sale.sold_at = Some(2_900);
        sold.property = Some(sale);
        let state = merge_all(None, [&created, &sold]).expect("a state");
        assert_eq!(state.property.price, Some(750_000.0));
        assert_eq!(state.property.bedrooms, Some(2));
        assert_eq!(
            state.property.location.address.as_deref(),
            Some("123 Main St")
        );
        assert_eq!(state.property.status.as_deref(), Some("sold"));
        assert_eq!(state.property.sold_price, Some(700_000.0));
        assert_eq!(state.fields["status"].occurred_at, 3_000);
        assert_eq!(state.fields["price"].dedupe_key, "created");
        assert_eq!(
            state.last_event.as_ref().map(|c| c.dedupe_key.as_str()),
            Some("sold")
        );
        assert_eq!(
            state.last_changed_fields,
            ["status", "sold_price", "sold_at"]
        );
        assert_eq!(state.contributing_events, 2);
    }

    #[test]
    fn an_older_event_arriving_late_loses_the_fields_a_newer_one_set() {
        let new = event("new", EventType::Updated, 2_025);
        let mut old = event("old", EventType::Updated, 2_020);
        if let Some(p) = old.property.as_mut() {
            p.price = Some(1.0);
            p.title = Some("only the old one says".into());
        }
        let state = merge_all(None, [&new, &old]).expect("a state");
        assert_eq!(state.property.price, Some(750_000.0));
        assert_eq!(
            state.property.title.as_deref(),
            Some("only the old one says")
        );
    }

    #[test]
    fn an_event_the_provider_says_changes_nothing_changes_nothing() {
        let first = event("first", EventType::Updated, 5_000);
        let mut again = event("again", EventType::Updated, 6_000);
        again.unchanged = Some(true);
        if let Some(p) = again.property.as_mut() {
            p.last_seen_at = Some(6_000);
        }
        let state = merge(None, &first).state;
        let merged = merge(Some(&state), &again);
        assert!(!merged.changed);
        assert!(merged.changed_fields.is_empty());
    }

    #[test]
    fn a_correction_wins_over_the_version_it_corrects() {
        let original = event("k", EventType::Updated, 5_000);
        let mut fixed = original.clone();
        fixed.lineage.normalizer_version = "0.2.0".into();
        if let Some(p) = fixed.property.as_mut() {
            p.bedrooms = Some(3);
        }
        let state = merge(None, &original).state;
        let merged = merge(Some(&state), &fixed);
        assert!(merged.changed);
        assert_eq!(merged.changed_fields, ["bedrooms"]);
        assert_eq!(merged.state.property.bedrooms, Some(3));
        assert_eq!(merged.state.contributing_events, 1);
        // And the original replayed afterwards does not undo it.
        let again = merge(Some(&merged.state), &original);
        assert!(!again.changed);
    }

    #[test]
    fn a_reference_creates_the_property_then_changes_nothing() {
        let mut reference = event("ref", EventType::ReferenceOnly, 1);
        reference.property = None;
        let first = merge(None, &reference);
        assert!(first.changed);
        assert!(first.state.fields.is_empty());
        assert_eq!(first.state.last_event, None);
        let mut other = reference.clone();
        other.dedupe_key = "ref2".into();
        assert!(!merge(Some(&first.state), &other).changed);
    }

    #[test]
    fn a_cleared_field_erases_only_when_newer() {
        let created = event("a", EventType::Created, 1_000);
        let mut cleared = event("b", EventType::Updated, 2_000);
        cleared.property = None;
        cleared.cleared_fields = Some(vec!["bedrooms".into()]);
        let state = merge_all(None, [&created, &cleared]).expect("a state");
        assert_eq!(state.property.bedrooms, None);
        assert!(state.fields.contains_key("bedrooms"));
        assert_eq!(state.property.price, Some(750_000.0));
        let mut stale = cleared.clone();
        stale.occurred_at = 500;
        let kept = merge_all(None, [&created, &stale]).expect("a state");
        assert_eq!(kept.property.bedrooms, Some(2));
    }
}
