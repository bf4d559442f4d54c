//! Dedupe's core, sans IO: what one batch writes, remembers and commits.
//!
//! The runner reads a batch, asks [`plan_batch`] what to do, produces the
//! planned outputs, and then, from their acknowledged offsets, asks the plan
//! for the changelog records ([`BatchPlan::changelog`]), what the state
//! learns ([`BatchPlan::remember`]) and the offsets to commit
//! ([`BatchPlan::commit`]). When a produce fails in part, [`settle`] says
//! which partitions must be restored before the batch is planned again (the
//! output-first recovery treats it as a crash of those partitions), and
//! which snapshot outputs were acknowledged and so must not be sent again.
//! Everything here is a value, tested without a broker.

use std::collections::{BTreeSet, HashMap, HashSet};

use crate::batch::{BatchDecision, BatchRecord, decide_batch};
use crate::changelog::SeenRecord;
use crate::state::PartitionState;

/// One input record as the plan sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PlannedInput<'a> {
    /// Partition, offset, key and replay mark.
    pub record: BatchRecord<'a>,
    /// Whether it carries a snapshot (`has-snapshot: true`), which also goes
    /// to `properties.latest`.
    pub has_snapshot: bool,
}

/// Where a planned output goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Destination {
    /// `properties.latest` (no partition: keyed by property).
    Latest,
    /// The input's partition of `properties.events`.
    Events,
}

/// One record to produce: which input it copies, and where.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PlannedOutput {
    /// Index of the input in the batch.
    pub input: usize,
    /// Its destination.
    pub destination: Destination,
}

/// One changelog record to write once the outputs are acknowledged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChangelogEntry {
    /// Input (and changelog) partition.
    pub partition: i32,
    /// Dedupe key.
    pub key: String,
    /// The value.
    pub seen: SeenRecord,
}

/// What one batch does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BatchPlan {
    /// One decision per input, in order.
    pub decisions: Vec<BatchDecision>,
    /// The outputs, in input order (a snapshot before its event).
    pub outputs: Vec<PlannedOutput>,
    now_ms: i64,
}

/// Inputs whose `properties.latest` record was acknowledged by an earlier
/// attempt of the same batch: `(partition, offset)`.
pub type LatestDone = HashSet<(i32, i64)>;

/// Plans a batch against the partitions' states at `now_ms`.
pub fn plan_batch(
    states: &HashMap<i32, PartitionState>,
    inputs: &[PlannedInput<'_>],
    latest_done: &LatestDone,
    now_ms: i64,
    ttl_ms: i64,
) -> BatchPlan {
    let records: Vec<BatchRecord<'_>> = inputs.iter().map(|input| input.record).collect();
    let decisions = decide_batch(states, &records, now_ms, ttl_ms);
    let mut outputs = Vec::new();
    for (index, (input, decision)) in inputs.iter().zip(&decisions).enumerate() {
        if !matches!(decision, BatchDecision::Forward | BatchDecision::Correction) {
            continue;
        }
        let done = latest_done.contains(&(input.record.partition, input.record.offset));
        if input.has_snapshot && !done {
            outputs.push(PlannedOutput {
                input: index,
                destination: Destination::Latest,
            });
        }
        outputs.push(PlannedOutput {
            input: index,
            destination: Destination::Events,
        });
    }
    BatchPlan {
        decisions,
        outputs,
        now_ms,
    }
}

/// The outcome of producing a plan's outputs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Settled {
    /// Every output acknowledged: each one's offset, in output order.
    Acknowledged(Vec<i64>),
    /// Some failed. The batch is redone after restoring `restore`, every
    /// partition the attempt wrote to (their state learns from the output
    /// what was acknowledged, as after a crash); `latest_done` grows with
    /// the snapshot outputs that were acknowledged.
    Partial {
        /// Partitions to restore.
        restore: BTreeSet<i32>,
        /// Failed outputs.
        failed: usize,
    },
}

/// Settles a produce of `plan`'s outputs from their per-record results
/// (`Ok(offset)` when acknowledged), recording acknowledged snapshots in
/// `latest_done`.
pub fn settle<E>(
    plan: &BatchPlan,
    inputs: &[PlannedInput<'_>],
    results: &[Result<i64, E>],
    latest_done: &mut LatestDone,
) -> Settled {
    let mut failed = plan.outputs.len().saturating_sub(results.len());
    let mut offsets = Vec::with_capacity(results.len());
    for (output, result) in plan.outputs.iter().zip(results) {
        let record = inputs[output.input].record;
        match result {
            Ok(offset) => {
                offsets.push(*offset);
                if output.destination == Destination::Latest {
                    let _ = latest_done.insert((record.partition, record.offset));
                }
            }
            Err(_) => failed += 1,
        }
    }
    if failed == 0 {
        return Settled::Acknowledged(offsets);
    }
    let restore = plan
        .outputs
        .iter()
        .map(|output| inputs[output.input].record.partition)
        .collect();
    Settled::Partial { restore, failed }
}

impl BatchPlan {
    /// The changelog records of the batch's first sightings, given every
    /// output's acknowledged offset (in output order): key → first
    /// sighting, the event's output offset and its input offset.
    pub fn changelog(
        &self,
        inputs: &[PlannedInput<'_>],
        output_offsets: &[i64],
    ) -> Vec<ChangelogEntry> {
        self.event_offsets(output_offsets)
            .filter(|(input, _)| self.decisions[*input] == BatchDecision::Forward)
            .map(|(input, output_offset)| {
                let record = inputs[input].record;
                ChangelogEntry {
                    partition: record.partition,
                    key: record.key.to_string(),
                    seen: SeenRecord {
                        first_seen_ms: self.now_ms,
                        output_offset,
                        source_offset: record.offset,
                    },
                }
            })
            .collect()
    }

    /// `(input index, event output offset)` of every forwarded input.
    fn event_offsets<'a>(
        &'a self,
        output_offsets: &'a [i64],
    ) -> impl Iterator<Item = (usize, i64)> + 'a {
        self.outputs
            .iter()
            .zip(output_offsets)
            .filter(|(output, _)| output.destination == Destination::Events)
            .map(|(output, offset)| (output.input, *offset))
    }

    /// What the states learn once the changelog is acknowledged: each first
    /// sighting's key, the output the changelog now covers, and every
    /// forwarded input (corrections included) as done.
    pub fn remember(
        &self,
        states: &mut HashMap<i32, PartitionState>,
        inputs: &[PlannedInput<'_>],
        output_offsets: &[i64],
    ) {
        for (input, output_offset) in self.event_offsets(output_offsets) {
            let record = inputs[input].record;
            let Some(state) = states.get_mut(&record.partition) else {
                continue;
            };
            if self.decisions[input] == BatchDecision::Forward {
                state.remember(record.key, self.now_ms);
                state.covered_output(output_offset);
            }
            state.covered_input(record.offset);
        }
    }

    /// The offsets to commit: past the last input of each partition this
    /// instance decided (every decision but `NotOwned`).
    pub fn commit(&self, inputs: &[PlannedInput<'_>]) -> Vec<(i32, i64)> {
        let mut next: HashMap<i32, i64> = HashMap::new();
        for (input, decision) in inputs.iter().zip(&self.decisions) {
            if *decision == BatchDecision::NotOwned {
                continue;
            }
            let entry = next.entry(input.record.partition).or_insert(0);
            *entry = (*entry).max(input.record.offset + 1);
        }
        let mut out: Vec<(i32, i64)> = next.into_iter().collect();
        out.sort_unstable();
        out
    }

    /// How many inputs got `decision`.
    pub fn count(&self, decision: BatchDecision) -> usize {
        self.decisions.iter().filter(|d| **d == decision).count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TTL: i64 = 1_000;

    fn input(
        partition: i32,
        offset: i64,
        key: &'static str,
        snapshot: bool,
    ) -> PlannedInput<'static> {
        PlannedInput {
            record: BatchRecord {
                partition,
                offset,
                key,
                replayed: false,
            },
            has_snapshot: snapshot,
        }
    }

    fn states() -> HashMap<i32, PartitionState> {
        let mut p0 = PartitionState::default();
        p0.remember("seen", 0);
        HashMap::from([(0, p0), (1, PartitionState::default())])
    }

    #[test]
    fn first_sightings_become_outputs_changelog_state_and_commits() {
        let mut states = states();
        let inputs = [
            input(0, 10, "a", true),
            input(0, 11, "seen", false),
            input(1, 5, "b", false),
            input(0, 12, "a", false),
        ];
        let plan = plan_batch(&states, &inputs, &LatestDone::new(), 50, TTL);
        use BatchDecision::*;
        assert_eq!(plan.decisions, [Forward, Duplicate, Forward, Duplicate]);
        assert_eq!(
            plan.outputs,
            [
                PlannedOutput {
                    input: 0,
                    destination: Destination::Latest
                },
                PlannedOutput {
                    input: 0,
                    destination: Destination::Events
                },
                PlannedOutput {
                    input: 2,
                    destination: Destination::Events
                },
            ]
        );
        let acked = [7, 100, 40];
        let changelog = plan.changelog(&inputs, &acked);
        assert_eq!(
            changelog,
            [
                ChangelogEntry {
                    partition: 0,
                    key: "a".into(),
                    seen: SeenRecord {
                        first_seen_ms: 50,
                        output_offset: 100,
                        source_offset: 10
                    }
                },
                ChangelogEntry {
                    partition: 1,
                    key: "b".into(),
                    seen: SeenRecord {
                        first_seen_ms: 50,
                        output_offset: 40,
                        source_offset: 5
                    }
                },
            ]
        );
        plan.remember(&mut states, &inputs, &acked);
        assert_eq!(plan.commit(&inputs), [(0, 13), (1, 6)]);
        // The same inputs again (a redelivery) are all done.
        let again = plan_batch(&states, &inputs, &LatestDone::new(), 60, TTL);
        assert!(again.outputs.is_empty());
        assert_eq!(
            again.decisions,
            [AlreadyForwarded, Duplicate, AlreadyForwarded, Duplicate]
        );
        // A later duplicate of `a` is a duplicate; its TTL runs from 50.
        let later = [input(0, 20, "a", false)];
        assert_eq!(
            plan_batch(&states, &later, &LatestDone::new(), 60, TTL).decisions,
            [Duplicate]
        );
        assert_eq!(
            plan_batch(&states, &later, &LatestDone::new(), 50 + TTL, TTL).decisions,
            [Forward]
        );
    }

    #[test]
    fn corrections_are_forwarded_without_changelog_but_count_as_done() {
        let mut states = states();
        let mut correction = input(0, 30, "seen", true);
        correction.record.replayed = true;
        let inputs = [correction];
        let plan = plan_batch(&states, &inputs, &LatestDone::new(), 50, TTL);
        assert_eq!(plan.decisions, [BatchDecision::Correction]);
        assert_eq!(plan.outputs.len(), 2);
        let acked = [1, 2];
        assert!(plan.changelog(&inputs, &acked).is_empty());
        plan.remember(&mut states, &inputs, &acked);
        let again = plan_batch(&states, &inputs, &LatestDone::new(), 60, TTL);
        assert_eq!(again.decisions, [BatchDecision::AlreadyForwarded]);
    }

    #[test]
    fn a_partial_failure_restores_its_partitions_and_keeps_acknowledged_snapshots() {
        let states = states();
        let inputs = [input(0, 10, "a", true), input(1, 5, "b", true)];
        let mut latest_done = LatestDone::new();
        let plan = plan_batch(&states, &inputs, &latest_done, 50, TTL);
        assert_eq!(plan.outputs.len(), 4);
        // Partition 0's snapshot and event landed; partition 1's snapshot
        // landed, its event did not.
        let results: [Result<i64, &str>; 4] = [Ok(1), Ok(100), Ok(2), Err("timed out")];
        let settled = settle(&plan, &inputs, &results, &mut latest_done);
        assert_eq!(
            settled,
            Settled::Partial {
                restore: BTreeSet::from([0, 1]),
                failed: 1
            }
        );
        assert_eq!(latest_done, LatestDone::from([(0, 10), (1, 5)]));
        // After partition 0's restore (it read `a`'s event back), the redo
        // sends only partition 1's event.
        let mut restored = states.clone();
        if let Some(p0) = restored.get_mut(&0) {
            p0.remember("a", 50);
            p0.covered_input(10);
        }
        let redo = plan_batch(&restored, &inputs, &latest_done, 55, TTL);
        assert_eq!(
            redo.outputs,
            [PlannedOutput {
                input: 1,
                destination: Destination::Events
            }]
        );
        let ok: [Result<i64, &str>; 1] = [Ok(41)];
        assert_eq!(
            settle(&redo, &inputs, &ok, &mut latest_done),
            Settled::Acknowledged(vec![41])
        );
    }

    #[test]
    fn missing_results_count_as_failures() {
        let inputs = [input(0, 10, "a", false), input(1, 5, "b", false)];
        let plan = plan_batch(&states(), &inputs, &LatestDone::new(), 50, TTL);
        let results: [Result<i64, ()>; 1] = [Ok(1)];
        assert_eq!(
            settle(&plan, &inputs, &results, &mut LatestDone::new()),
            Settled::Partial {
                restore: BTreeSet::from([0, 1]),
                failed: 1
            }
        );
    }

    #[test]
    fn records_of_partitions_not_owned_are_neither_written_nor_committed() {
        let inputs = [input(7, 10, "a", true), input(0, 3, "b", false)];
        let plan = plan_batch(&states(), &inputs, &LatestDone::new(), 50, TTL);
        assert_eq!(plan.decisions[0], BatchDecision::NotOwned);
        assert_eq!(plan.outputs.len(), 1);
        assert_eq!(plan.commit(&inputs), [(0, 4)]);
    }
}
