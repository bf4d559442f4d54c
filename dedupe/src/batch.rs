//! Dedupe decisions for a batch of input records, pure.
//!
//! The loop takes records in batches so that one produce round trip covers
//! many of them. Within a batch a key can appear twice (a provider retry
//! that arrived right behind the original); the second must be dropped even
//! though the state does not know the key yet, because the state learns a
//! key only after its changelog record is acknowledged. A record whose
//! partition is not (or no longer) assigned here is not decided at all: a
//! rebalance while the batch was being read took it away, and the new
//! owner will read it again.

use std::collections::{HashMap, HashSet};

use crate::state::{Decision, PartitionState};

/// What to do with one record of a batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BatchDecision {
    /// First sighting: forward it.
    Forward,
    /// Seen before (in the state, or earlier in this batch): drop it.
    Duplicate,
    /// Its partition is not assigned to this instance: leave it, and do not
    /// commit its offset.
    NotOwned,
}

/// Decides every `(partition, key)` of a batch, in order.
pub fn decide_batch(
    states: &HashMap<i32, PartitionState>,
    records: &[(i32, &str)],
    now_ms: i64,
    ttl_ms: i64,
) -> Vec<BatchDecision> {
    let mut forwarded: HashSet<(i32, &str)> = HashSet::new();
    records
        .iter()
        .map(|&(partition, key)| {
            let Some(state) = states.get(&partition) else {
                return BatchDecision::NotOwned;
            };
            if forwarded.contains(&(partition, key)) {
                return BatchDecision::Duplicate;
            }
            match state.decide(key, now_ms, ttl_ms) {
                Decision::Duplicate => BatchDecision::Duplicate,
                Decision::Forward => {
                    let _ = forwarded.insert((partition, key));
                    BatchDecision::Forward
                }
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const TTL: i64 = 1_000;

    fn states() -> HashMap<i32, PartitionState> {
        let mut p0 = PartitionState::default();
        p0.remember("seen", 0);
        HashMap::from([(0, p0), (1, PartitionState::default())])
    }

    #[test]
    fn a_key_twice_in_one_batch_is_forwarded_once() {
        let got = decide_batch(&states(), &[(0, "a"), (0, "a"), (0, "b")], 10, TTL);
        use BatchDecision::*;
        assert_eq!(got, [Forward, Duplicate, Forward]);
    }

    #[test]
    fn keys_in_the_state_are_duplicates_until_their_ttl() {
        use BatchDecision::*;
        assert_eq!(
            decide_batch(&states(), &[(0, "seen")], 10, TTL),
            [Duplicate]
        );
        assert_eq!(
            decide_batch(&states(), &[(0, "seen")], TTL + 1, TTL),
            [Forward]
        );
    }

    #[test]
    fn the_same_key_on_two_partitions_is_decided_per_partition() {
        use BatchDecision::*;
        let got = decide_batch(&states(), &[(0, "seen"), (1, "seen"), (1, "seen")], 10, TTL);
        assert_eq!(got, [Duplicate, Forward, Duplicate]);
    }

    #[test]
    fn records_of_partitions_not_assigned_here_are_left_alone() {
        use BatchDecision::*;
        let got = decide_batch(&states(), &[(2, "x"), (0, "x")], 10, TTL);
        assert_eq!(got, [NotOwned, Forward]);
    }
}
