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
//!
//! A record at or below its partition's `forwarded_through` (the highest
//! input offset whose event the restore found on the output) is already
//! done, whatever its key: the output-first recovery may deliver it again,
//! and forwarding it twice would double an acknowledged output.
//!
//! A record carrying a `replay-id` header (re-driven by `normalize replay`
//! after a parser fix) whose key was already seen is a correction: it is
//! forwarded anyway, counted apart, and changes nothing in the state (the
//! key keeps its first sighting). A replayed record whose key was never
//! seen is an ordinary first sighting.

use std::collections::{HashMap, HashSet};

use crate::state::{Decision, PartitionState};

/// What to do with one record of a batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BatchDecision {
    /// First sighting: forward it.
    Forward,
    /// Seen before (in the state, or earlier in this batch): drop it.
    Duplicate,
    /// Seen before, but replayed after a parser fix: forward it without
    /// touching the state.
    Correction,
    /// Its event is already on the output (a redelivery after a crash or
    /// a partial failure, read back by the restore): drop it, corrections
    /// included, so no acknowledged output is written twice.
    AlreadyForwarded,
    /// Its partition is not assigned to this instance: leave it, and do not
    /// commit its offset.
    NotOwned,
}

/// One record of a batch, as the decision sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchRecord<'a> {
    /// Input partition.
    pub partition: i32,
    /// Input offset.
    pub offset: i64,
    /// Dedupe key.
    pub key: &'a str,
    /// Whether it carries a `replay-id` header.
    pub replayed: bool,
}

/// Decides every record of a batch, in order.
pub fn decide_batch(
    states: &HashMap<i32, PartitionState>,
    records: &[BatchRecord<'_>],
    now_ms: i64,
    ttl_ms: i64,
) -> Vec<BatchDecision> {
    let mut forwarded: HashSet<(i32, &str)> = HashSet::new();
    records
        .iter()
        .map(|record| {
            let Some(state) = states.get(&record.partition) else {
                return BatchDecision::NotOwned;
            };
            if state.already_forwarded(record.offset) {
                return BatchDecision::AlreadyForwarded;
            }
            let seen = forwarded.contains(&(record.partition, record.key))
                || state.decide(record.key, now_ms, ttl_ms) == Decision::Duplicate;
            match (seen, record.replayed) {
                (true, true) => BatchDecision::Correction,
                (true, false) => BatchDecision::Duplicate,
                (false, _) => {
                    let _ = forwarded.insert((record.partition, record.key));
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

    fn live(items: &[(i32, &'static str)]) -> Vec<BatchRecord<'static>> {
        items
            .iter()
            .enumerate()
            .map(|(i, &(partition, key))| BatchRecord {
                partition,
                offset: 100 + i as i64,
                key,
                replayed: false,
            })
            .collect()
    }

    fn replayed(partition: i32, key: &'static str) -> BatchRecord<'static> {
        BatchRecord {
            partition,
            offset: 200,
            key,
            replayed: true,
        }
    }

    fn states() -> HashMap<i32, PartitionState> {
        let mut p0 = PartitionState::default();
        p0.remember("seen", 0);
        HashMap::from([(0, p0), (1, PartitionState::default())])
    }

    #[test]
    fn a_key_twice_in_one_batch_is_forwarded_once() {
        let got = decide_batch(&states(), &live(&[(0, "a"), (0, "a"), (0, "b")]), 10, TTL);
        use BatchDecision::*;
        assert_eq!(got, [Forward, Duplicate, Forward]);
    }

    #[test]
    fn keys_in_the_state_are_duplicates_until_their_ttl() {
        use BatchDecision::*;
        assert_eq!(
            decide_batch(&states(), &live(&[(0, "seen")]), 10, TTL),
            [Duplicate]
        );
        assert_eq!(
            decide_batch(&states(), &live(&[(0, "seen")]), TTL + 1, TTL),
            [Forward]
        );
    }

    #[test]
    fn the_same_key_on_two_partitions_is_decided_per_partition() {
        use BatchDecision::*;
        let got = decide_batch(
            &states(),
            &live(&[(0, "seen"), (1, "seen"), (1, "seen")]),
            10,
            TTL,
        );
        assert_eq!(got, [Duplicate, Forward, Duplicate]);
    }

    #[test]
    fn records_of_partitions_not_assigned_here_are_left_alone() {
        use BatchDecision::*;
        let got = decide_batch(&states(), &live(&[(2, "x"), (0, "x")]), 10, TTL);
        assert_eq!(got, [NotOwned, Forward]);
    }

    #[test]
    fn a_replayed_record_whose_key_was_seen_is_a_correction() {
        use BatchDecision::*;
        let got = decide_batch(
            &states(),
            &[replayed(0, "seen"), replayed(0, "new"), replayed(0, "new")],
            10,
            TTL,
        );
        assert_eq!(got, [Correction, Forward, Correction]);
    }

    #[test]
    fn an_ordinary_redelivery_after_a_correction_is_still_a_duplicate() {
        use BatchDecision::*;
        let mut records = vec![replayed(0, "seen")];
        records.extend(live(&[(0, "seen")]));
        assert_eq!(
            decide_batch(&states(), &records, 10, TTL),
            [Correction, Duplicate]
        );
    }

    #[test]
    fn inputs_the_restore_found_on_the_output_are_never_forwarded_again() {
        use BatchDecision::*;
        let mut states = states();
        if let Some(p0) = states.get_mut(&0) {
            p0.covered_input(101);
        }
        let records = [
            BatchRecord {
                partition: 0,
                offset: 100,
                key: "new",
                replayed: false,
            },
            BatchRecord {
                partition: 0,
                offset: 101,
                key: "seen",
                replayed: true,
            },
            BatchRecord {
                partition: 0,
                offset: 102,
                key: "new",
                replayed: false,
            },
            BatchRecord {
                partition: 1,
                offset: 100,
                key: "new",
                replayed: false,
            },
        ];
        assert_eq!(
            decide_batch(&states, &records, 10, TTL),
            [AlreadyForwarded, AlreadyForwarded, Forward, Forward]
        );
    }
}
