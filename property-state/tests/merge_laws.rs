//! The merge's laws, on random histories of one property: full and partial
//! events, cleared fields, status changes, ties on time and arrival,
//! corrections (a dedupe key again with a newer normalizer version),
//! events the provider marks unchanged, and duplicates. Any order gives the same state (commutative); joining the
//! folds of two halves gives the fold of the whole (associative); merging
//! an event or a state again changes nothing (idempotent).

use property_state::{join, merge, merge_all, state_of};
use proptest::prelude::*;
use schemas::{EventType, PropertyEvent, PropertySnapshot, PropertyState};

/// The fields the histories use, and what a cleared list may name.
const CLEARABLE: [&str; 5] = ["price", "bedrooms", "location.city", "title", "pictures"];

fn snapshot() -> impl Strategy<Value = Option<PropertySnapshot>> {
    let fields = (
        prop::option::of(1u8..4),
        prop::option::of(1i32..4),
        prop::option::of(prop::sample::select(vec!["Lyon", "Paris"])),
        prop::option::of(prop::sample::select(vec!["T2", "T3 lumineux"])),
        prop::option::of(prop::sample::select(vec!["active", "sold"])),
        prop::option::of(prop::collection::vec(
            prop::sample::select(vec!["a.jpg", "b.jpg"]),
            0..2,
        )),
    );
    prop::option::weighted(
        0.9,
        fields.prop_map(|(price, bedrooms, city, title, status, pictures)| {
            let mut s = PropertySnapshot::empty();
            s.price = price.map(f64::from);
            s.bedrooms = bedrooms;
            s.location.city = city.map(str::to_string);
            s.title = title.map(str::to_string);
            s.status = status.map(str::to_string);
            s.pictures = pictures.map(|p| p.into_iter().map(str::to_string).collect());
            s
        }),
    )
}

fn event_type() -> impl Strategy<Value = EventType> {
    prop::sample::select(vec![
        EventType::Created,
        EventType::Updated,
        EventType::PriceChanged,
        EventType::Sold,
        EventType::Expired,
        EventType::ReferenceOnly,
    ])
}

/// One version of one event: what a normalizer version made of it (a
/// fixed parser may also read a different event time).
type Version = (
    EventType,
    Option<PropertySnapshot>,
    Vec<&'static str>,
    i64,
    bool,
);

fn version() -> impl Strategy<Value = Version> {
    (
        event_type(),
        snapshot(),
        prop::sample::subsequence(CLEARABLE.to_vec(), 0..2),
        prop::sample::select(vec![0i64, 0, 0, 1]),
        prop::bool::weighted(0.1),
    )
}

/// A property's distinct events: up to six dedupe keys with their times
/// (few values, so ties happen), each in one or two normalizer versions;
/// sometimes both in one version (a sender reusing an event identity for
/// other data: the ranks tie and the values decide).
fn history() -> impl Strategy<Value = Vec<PropertyEvent>> {
    prop::collection::vec(
        (
            0i64..4,
            0i64..3,
            prop::collection::vec(version(), 1..3),
            prop::bool::weighted(0.2),
        ),
        1..7,
    )
    .prop_map(|keys| {
        let mut events = Vec::new();
        for (k, (occurred_at, received_at, versions, twins)) in keys.into_iter().enumerate() {
            let first_type = versions[0].0;
            for (v, (event_type, property, cleared, moved, unchanged)) in
                versions.into_iter().enumerate()
            {
                // Twins share their type too: of twins with two types,
                // `contributors` names the type of whichever came first
                // (see `breaker_attacks.rs`).
                let event_type = if twins { first_type } else { event_type };
                let mut e = schemas::sample::price_change();
                e.event_id = format!("evt-{k}");
                e.dedupe_key = format!("generic:evt-{k}");
                e.event_type = event_type;
                e.occurred_at = 1_000 + occurred_at + moved;
                e.received_at = 2_000 + received_at;
                e.change = None;
                e.property = property;
                e.cleared_fields =
                    (!cleared.is_empty()).then(|| cleared.iter().map(|p| p.to_string()).collect());
                e.lineage.normalizer_version = format!("0.{}.0", if twins { 1 } else { v + 1 });
                e.unchanged = unchanged.then_some(true);
                events.push(e);
            }
        }
        events
    })
}

/// A history delivered with duplicates, in two independent orders.
fn two_deliveries() -> impl Strategy<Value = (Vec<PropertyEvent>, Vec<PropertyEvent>)> {
    history().prop_flat_map(|events| {
        let n = events.len();
        prop::collection::vec(0..n, 0..n + 1).prop_flat_map(move |extra| {
            let mut delivered = events.clone();
            delivered.extend(extra.iter().map(|&i| events[i].clone()));
            (
                Just(delivered.clone()).prop_shuffle(),
                Just(delivered).prop_shuffle(),
            )
        })
    })
}

fn fold(events: &[PropertyEvent]) -> Option<PropertyState> {
    merge_all(None, events)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1_000))]

    #[test]
    fn any_order_with_duplicates_gives_the_same_state((a, b) in two_deliveries()) {
        prop_assert_eq!(fold(&a), fold(&b));
    }

    #[test]
    fn joining_two_halves_gives_the_whole((a, _) in two_deliveries(), cut in 0usize..20) {
        let cut = cut.min(a.len());
        let (left, right) = a.split_at(cut);
        let whole = fold(&a);
        let joined = match (fold(left), fold(right)) {
            (Some(l), Some(r)) => Some(join(Some(&l), &r).state),
            (l, r) => l.or(r),
        };
        prop_assert_eq!(joined, whole);
    }

    #[test]
    fn merging_again_changes_nothing((a, _) in two_deliveries()) {
        let state = fold(&a).expect("a history has events");
        for event in &a {
            let again = merge(Some(&state), event);
            prop_assert!(!again.changed, "{} changed it again", event.dedupe_key);
        }
        let with_itself = join(Some(&state), &state);
        prop_assert!(!with_itself.changed);
        prop_assert_eq!(&with_itself.state, &state);
    }

    #[test]
    fn an_event_alone_is_its_own_state((a, _) in two_deliveries()) {
        for event in &a {
            prop_assert_eq!(merge(None, event).state, state_of(event));
        }
    }
}
