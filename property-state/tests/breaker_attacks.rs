//! Hostile inputs to the merge (breaker20): each test is one attack that
//! broke a promise before its fix.

use schemas::{EventType, PricePoint, PropertyEvent, PropertySnapshot};

use property_state::{merge, merge_all};

fn event(key: &str, occurred_at: i64) -> PropertyEvent {
    let mut e = schemas::sample::price_change();
    e.dedupe_key = key.to_string();
    e.event_id = format!("{key}-{occurred_at}");
    e.event_type = EventType::Updated;
    e.occurred_at = occurred_at;
    e.received_at = occurred_at.saturating_add(1);
    e.change = None;
    e
}

/// Two events sharing a dedupe key and normalizer version but with
/// different times and data: the state (contributors, last event) must
/// not depend on which came first.
#[test]
fn one_dedupe_key_with_two_times_gives_one_state_in_either_order() {
    let mut a = event("same", 1_000);
    let mut pa = PropertySnapshot::empty();
    pa.price = Some(1.0);
    a.property = Some(pa);
    let mut b = event("same", 2_000);
    b.event_type = EventType::PriceChanged;
    let mut pb = PropertySnapshot::empty();
    pb.title = Some("b".into());
    b.property = Some(pb);
    let ab = merge_all(None, [&a, &b]).expect("a state");
    let ba = merge_all(None, [&b, &a]).expect("a state");
    assert_eq!(ab, ba);
    assert_eq!(ab.last_event.as_ref().map(|c| c.occurred_at), Some(2_000));
}

/// The same key, version and time but another event id or type (a
/// hand-built or replayed record): still one state whatever the order.
#[test]
fn one_version_with_two_event_ids_gives_one_state_in_either_order() {
    let a = event("same", 1_000);
    let mut b = a.clone();
    b.event_id = "other-id".into();
    b.event_type = EventType::PriceChanged;
    let ab = merge_all(None, [&a, &b]).expect("a state");
    let ba = merge_all(None, [&b, &a]).expect("a state");
    assert_eq!(ab, ba);
}

/// A NaN inside a list (a price point) makes the state unequal to itself:
/// the same event merged again must still change nothing (else the state
/// writer and the sink write it twice).
#[test]
fn a_nan_in_a_list_does_not_make_a_redelivery_a_change() {
    let mut e = event("nan", 1_000);
    if let Some(p) = e.property.as_mut() {
        p.price_history = Some(vec![PricePoint {
            at: 1,
            price: f64::NAN,
        }]);
    }
    let first = merge(None, &e).state;
    let again = merge(Some(&first), &e);
    assert!(!again.changed, "a redelivery is no change");
    assert!(again.changed_fields.is_empty());
}

/// Extreme times and hostile cleared lists do not panic and keep order
/// independence.
#[test]
fn extreme_times_and_odd_cleared_lists_hold() {
    let mut a = event("a", i64::MIN);
    a.cleared_fields = Some(vec![
        "price".into(),
        "price".into(),
        "".into(),
        "location.".into(),
        "no.such".into(),
    ]);
    let mut b = event("b", i64::MAX);
    b.property = None;
    b.cleared_fields = Some(vec!["bedrooms".into(), "bedrooms".into()]);
    let ab = merge_all(None, [&a, &b]).expect("a state");
    let ba = merge_all(None, [&b, &a]).expect("a state");
    assert_eq!(ab, ba);
    assert_eq!(ab.property.bedrooms, None);
    assert_eq!(ab.property.price, None, "a's own clear stands");
    assert!(
        ab.property.surface_m2.is_some(),
        "nobody cleared the surface"
    );
}

/// Two spellings of one normalizer version (`0.1.0` and `0.1.0+build.7`
/// have one version key) on the same key and time: the state must not
/// depend on which came first.
#[test]
fn two_spellings_of_one_version_give_one_state_in_either_order() {
    let a = event("k", 1_000);
    let mut b = a.clone();
    b.lineage.normalizer_version = "0.1.0+build.7".into();
    if let Some(p) = b.property.as_mut() {
        p.price = Some(2.0);
    }
    let ab = merge_all(None, [&a, &b]).expect("a state");
    let ba = merge_all(None, [&b, &a]).expect("a state");
    assert_eq!(ab, ba);
}

/// Two events with one dedupe key, time and normalizer version but
/// different data (a sender reusing its event identity, or a
/// non-deterministic normalizer): their ranks tie, and the value itself
/// breaks the tie, so the state does not depend on the order.
#[test]
fn one_version_with_two_payloads_gives_one_state_in_either_order() {
    let a = event("k", 1_000);
    let mut b = a.clone();
    if let Some(p) = b.property.as_mut() {
        p.price = Some(2.0);
    }
    let ab = merge_all(None, [&a, &b]).expect("a state");
    let ba = merge_all(None, [&b, &a]).expect("a state");
    assert_eq!(ab.property.price, ba.property.price);
    assert_eq!(ab, ba);
}

/// Twins of two event types (one dedupe key, time and normalizer version):
/// the snapshot and every field's version agree whatever the order; only
/// the type `contributors` names may be either twin's. Dedupe lets such
/// twins through only past its TTL, so this is documented rather than
/// bookkept (it would need every twin's identity kept for ever).
#[test]
fn twins_of_two_types_agree_on_the_snapshot_in_either_order() {
    let mut sold = event("k", 1_000);
    sold.event_type = EventType::Sold;
    sold.property = None;
    let mut updated = event("k", 1_000);
    if let Some(p) = updated.property.as_mut() {
        p.status = Some("active".into());
    }
    let earlier = event("a", 1_000);
    let one = merge_all(None, [&earlier, &sold, &updated]).expect("a state");
    let other = merge_all(None, [&updated, &earlier, &sold]).expect("a state");
    assert_eq!(one.property, other.property);
    assert_eq!(one.fields, other.fields);
}

/// Twins (one dedupe key, time and normalizer version) whose prices are
/// -0.0 and 0.0: equal numbers, but written differently (Avro, the
/// PostgreSQL row). The tie-break keeps 0.0 whatever the order; when 0.0
/// arrives second it replaces -0.0, and that must count as a change, else
/// the state writer and the sink keep the -0.0 they wrote and what is
/// written depends on which twin came first.
#[test]
fn a_negative_zero_twin_replaced_by_its_zero_twin_is_a_change() {
    let mut negative = event("k", 1_000);
    let mut zero = event("k", 1_000);
    if let (Some(n), Some(z)) = (negative.property.as_mut(), zero.property.as_mut()) {
        n.price = Some(-0.0);
        z.price = Some(0.0);
    }
    let first = merge(None, &negative).state;
    let second = merge(Some(&first), &zero);
    assert!(second.changed, "-0.0 became 0.0: the state must be written");
    assert_eq!(second.changed_fields, ["price"]);
    let price = second.state.property.price.expect("a price");
    assert!(price == 0.0 && price.is_sign_positive());
    // The other order writes 0.0 first; -0.0 then loses and changes nothing.
    let other = merge(Some(&merge(None, &zero).state), &negative);
    assert!(!other.changed);
    assert!(
        other
            .state
            .property
            .price
            .is_some_and(|p| p.is_sign_positive())
    );
}

/// Twins whose only difference is the sign of a NaN inside a list: their
/// `Debug` texts (the tie key) are both `NaN`, so the tie stays a tie and
/// the state keeps whichever came first; the NaN's sign bit, which Avro
/// keeps, then depends on the order. JSON cannot carry a NaN, so only a
/// foreign producer writing Avro to `properties.events` can do this;
/// telling the two apart would need a tie key that sees a float's bits.
#[test]
#[ignore = "still broken: twins differing only in a NaN's sign keep the first one's bits"]
fn twins_differing_in_a_nans_sign_give_one_state_in_either_order() {
    let mut a = event("k", 1_000);
    let mut b = event("k", 1_000);
    if let (Some(pa), Some(pb)) = (a.property.as_mut(), b.property.as_mut()) {
        pa.price_history = Some(vec![PricePoint {
            at: 1,
            price: f64::NAN,
        }]);
        pb.price_history = Some(vec![PricePoint {
            at: 1,
            price: -f64::NAN,
        }]);
    }
    let sign = |events: [&PropertyEvent; 2]| {
        merge_all(None, events)
            .and_then(|s| s.property.price_history)
            .and_then(|h| h.first().map(|p| p.price.is_sign_negative()))
    };
    assert_eq!(sign([&a, &b]), sign([&b, &a]));
}

/// The losing twin redelivered: its values lose, but it may be the
/// preferred contributor (smaller event id), so the first time it changes
/// the bookkeeping and is a change; again, it changes nothing. Joining
/// the twins' states either way gives one state.
#[test]
fn a_losing_twin_changes_only_the_bookkeeping_once() {
    let mut winner = event("k", 1_000);
    winner.event_id = "z".into();
    let mut loser = winner.clone();
    loser.event_id = "a".into();
    if let (Some(w), Some(l)) = (winner.property.as_mut(), loser.property.as_mut()) {
        w.price = Some(9.0);
        l.price = Some(1.0);
    }
    let first = merge(None, &winner).state;
    let once = merge(Some(&first), &loser);
    assert!(
        once.changed,
        "the preferred contributor is now the loser's id"
    );
    assert!(once.changed_fields.is_empty());
    assert_eq!(once.state.property.price, Some(9.0));
    assert_eq!(once.state.contributors.len(), 1);
    assert_eq!(once.state.contributors[0].event_id, "a");
    assert!(!merge(Some(&once.state), &loser).changed);
    assert!(!merge(Some(&once.state), &winner).changed);
    let wl = property_state::join(
        Some(&property_state::state_of(&winner)),
        &property_state::state_of(&loser),
    );
    let lw = property_state::join(
        Some(&property_state::state_of(&loser)),
        &property_state::state_of(&winner),
    );
    assert_eq!(wl.state, lw.state);
    assert_eq!(wl.state, once.state);
}

/// Twins where one clears a list and the other sends it empty, and one
/// clears a number the other sends: `Some` prints greater than `None`, so
/// the values win in either order, and a cleared twin arriving second
/// changes nothing.
#[test]
fn a_cleared_twin_loses_to_a_valued_twin_in_either_order() {
    let mut valued = event("k", 1_000);
    if let Some(p) = valued.property.as_mut() {
        p.pictures = Some(Vec::new());
        p.bedrooms = Some(3);
    }
    let mut cleared = valued.clone();
    cleared.property = None;
    cleared.cleared_fields = Some(vec!["pictures".into(), "bedrooms".into()]);
    let vc = merge_all(None, [&valued, &cleared]).expect("a state");
    let cv = merge_all(None, [&cleared, &valued]).expect("a state");
    assert_eq!(vc, cv);
    assert_eq!(vc.property.pictures, Some(Vec::new()));
    assert_eq!(vc.property.bedrooms, Some(3));
    assert!(!merge(Some(&vc), &cleared).changed);
}
