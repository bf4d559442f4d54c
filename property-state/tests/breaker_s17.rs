//! breaker-s17: the merge of a state whose values are withheld
//! (`property_state::withhold`) with events of the same version.

use property_state::withhold::withhold_largest;
use property_state::{merge, merge_all};
use schemas::PropertySnapshot;
use schemas::sample::snapshot_event as event;

/// Two events of one version (a sender reusing an event identity, which
/// dedupe lets through past its TTL; README: "ordered by the value
/// itself"): one with a long description, one that clears it. The merge
/// keeps the description whatever the order (a value orders above none).
/// The state writer withholds that description; then the clearing twin
/// arrives (or is redelivered) and, because "on equal rank the side that
/// has the value wins", it wins over the withheld value although it has
/// none: the record now says the description is known to be empty (null,
/// not withheld) while every other holder of the state has it, and each
/// redelivery of the pair writes two records (the description comes back,
/// is withheld, and is cleared again).
#[test]
fn breaker_s17_a_cleared_twin_does_not_clear_a_withheld_value() {
    let mut described = event("twin", 1_000);
    described.property = Some(PropertySnapshot::empty());
    if let Some(p) = described.property.as_mut() {
        p.description = Some("d".repeat(5_000));
        p.price = Some(1.0);
    }
    let mut cleared = described.clone();
    cleared.property = Some(PropertySnapshot::empty());
    cleared.cleared_fields = Some(vec!["description".into()]);
    for order in [[&described, &cleared], [&cleared, &described]] {
        let pure = merge_all(None, order).expect("a state");
        assert_eq!(
            pure.property.description.as_deref().map(str::len),
            Some(5_000)
        );
    }

    let mut written = merge(None, &described).state;
    assert_eq!(withhold_largest(&mut written), Some("description"));
    let merged = merge(Some(&written), &cleared);
    assert_eq!(
        merged.state.withheld_fields,
        ["description"],
        "the description is still known, and still withheld"
    );
    assert!(!merged.changed, "the twin loses to the withheld value");
}
