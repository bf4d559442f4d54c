//! Dedupe's core, sans IO: what one batch writes, remembers and commits.
//!
//! The runner reads a batch, asks [`plan_batch`] what to do, produces the
//! planned outputs, and then, from their acknowledged offsets, asks the plan
//! for the changelog records ([`BatchPlan::changelog`]), what the state
//! learns ([`BatchPlan::remember`]) and the offsets to commit
//! ([`BatchPlan::commit`]). When a produce fails in part, [`settle`] says
//! which partitions must be restored before the batch is planned again (the
//! output-first recovery treats it as a crash of those partitions).
//! Everything here is a value, tested without a broker.
//!
//! Dedupe writes only `properties.events` (and its changelog): the
//! properties' state on `properties.latest` is the state writer's, which
//! decodes and merges the events; dedupe forwards their bytes untouched.

use std::collections::{BTreeSet, HashMap};

use crate::batch::{BatchDecision, BatchRecord, decide_batch};
use crate::changelog::SeenRecord;
use crate::state::PartitionState;

/// One record to produce: the input it copies to the input's partition of
/// `properties.events`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PlannedOutput {
    /// Index of the input in the batch.
    pub input: usize,
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
    /// The outputs, in input order.
    pub outputs: Vec<PlannedOutput>,
    now_ms: i64,
}

/// Plans a batch against the partitions' states at `now_ms`.
pub fn plan_batch(
    states: &HashMap<i32, PartitionState>,
    inputs: &[BatchRecord<'_>],
    now_ms: i64,
    ttl_ms: i64,
) -> BatchPlan {
    let decisions = decide_batch(states, inputs, now_ms, ttl_ms);
    let outputs = decisions
        .iter()
        .enumerate()
        .filter(|(_, d)| matches!(d, BatchDecision::Forward | BatchDecision::Correction))
        .map(|(input, _)| PlannedOutput { input })
        .collect();
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
    /// what was acknowledged, as after a crash).
    Partial {
        /// Partitions to restore.
        restore: BTreeSet<i32>,
        /// Failed outputs.
        failed: usize,
    },
}

/// Settles a produce of `plan`'s outputs from their per-record results
/// (`Ok(offset)` when acknowledged).
pub fn settle<E>(
    plan: &BatchPlan,
    inputs: &[BatchRecord<'_>],
    results: &[Result<i64, E>],
) -> Settled {
    let mut failed = plan.outputs.len().saturating_sub(results.len());
    let mut offsets = Vec::with_capacity(results.len());
    for result in results.iter().take(plan.outputs.len()) {
        match result {
            Ok(offset) => offsets.push(*offset),
            Err(_) => failed += 1,
        }
    }
    if failed == 0 {
        return Settled::Acknowledged(offsets);
    }
    let restore = plan
        .outputs
        .iter()
        .map(|output| inputs[output.input].partition)
        .collect();
    Settled::Partial { restore, failed }
}

impl BatchPlan {
    /// The changelog records of the batch's first sightings, given every
    /// output's acknowledged offset (in output order): key → first
    /// sighting, the event's output offset and its input offset.
    pub fn changelog(
        &self,
        inputs: &[BatchRecord<'_>],
        output_offsets: &[i64],
    ) -> Vec<ChangelogEntry> {
        self.event_offsets(output_offsets)
            .filter(|(input, _)| self.decisions[*input] == BatchDecision::Forward)
            .map(|(input, output_offset)| {
                let record = inputs[input];
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
            .map(|(output, offset)| (output.input, *offset))
    }

    /// What the states learn once the changelog is acknowledged: each first
    /// sighting's key, the output the changelog now covers, and every
    /// forwarded input (corrections included) as done.
    pub fn remember(
        &self,
        states: &mut HashMap<i32, PartitionState>,
        inputs: &[BatchRecord<'_>],
        output_offsets: &[i64],
    ) {
        for (input, output_offset) in self.event_offsets(output_offsets) {
            let record = inputs[input];
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
    pub fn commit(&self, inputs: &[BatchRecord<'_>]) -> Vec<(i32, i64)> {
        let mut next: HashMap<i32, i64> = HashMap::new();
        for (input, decision) in inputs.iter().zip(&self.decisions) {
            if *decision == BatchDecision::NotOwned {
                continue;
            }
            let entry = next.entry(input.partition).or_insert(0);
            *entry = (*entry).max(input.offset + 1);
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

    fn input(partition: i32, offset: i64, key: &'static str) -> BatchRecord<'static> {
        BatchRecord {
            partition,
            offset,
            key,
            replayed: false,
        }
    }

    fn states() -> HashMap<i32, PartitionState> {
        let mut p0 = PartitionState::default();
        p0.remember("seen", 0);
        HashMap::from([(0, p0), (1, PartitionState::default())])
    }

    fn outputs(inputs: &[usize]) -> Vec<PlannedOutput> {
        inputs
            .iter()
            .map(|&input| PlannedOutput { input })
            .collect()
    }

    #[test]
    fn first_sightings_become_outputs_changelog_state_and_commits() {
        let mut states = states();
        let inputs = [
            input(0, 10, "a"),
            input(0, 11, "seen"),
            input(1, 5, "b"),
            input(0, 12, "a"),
        ];
        let plan = plan_batch(&states, &inputs, 50, TTL);
        use BatchDecision::*;
        assert_eq!(plan.decisions, [Forward, Duplicate, Forward, Duplicate]);
        assert_eq!(plan.outputs, outputs(&[0, 2]));
        let acked = [100, 40];
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
        let again = plan_batch(&states, &inputs, 60, TTL);
        assert!(again.outputs.is_empty());
        assert_eq!(
            again.decisions,
            [AlreadyForwarded, Duplicate, AlreadyForwarded, Duplicate]
        );
        // A later duplicate of `a` is a duplicate; its TTL runs from 50.
        let later = [input(0, 20, "a")];
        assert_eq!(plan_batch(&states, &later, 60, TTL).decisions, [Duplicate]);
        assert_eq!(
            plan_batch(&states, &later, 50 + TTL, TTL).decisions,
            [Forward]
        );
    }

    #[test]
    fn corrections_are_forwarded_without_changelog_but_count_as_done() {
        let mut states = states();
        let mut correction = input(0, 30, "seen");
        correction.replayed = true;
        let inputs = [correction];
        let plan = plan_batch(&states, &inputs, 50, TTL);
        assert_eq!(plan.decisions, [BatchDecision::Correction]);
        assert_eq!(plan.outputs, outputs(&[0]));
        let acked = [2];
        assert!(plan.changelog(&inputs, &acked).is_empty());
        plan.remember(&mut states, &inputs, &acked);
        let again = plan_batch(&states, &inputs, 60, TTL);
        assert_eq!(again.decisions, [BatchDecision::AlreadyForwarded]);
    }

    #[test]
    fn a_partial_failure_restores_its_partitions_and_the_redo_sends_only_the_rest() {
        let states = states();
        let inputs = [input(0, 10, "a"), input(1, 5, "b")];
        let plan = plan_batch(&states, &inputs, 50, TTL);
        assert_eq!(plan.outputs.len(), 2);
        // Partition 0's event landed, partition 1's did not.
        let results: [Result<i64, &str>; 2] = [Ok(100), Err("timed out")];
        assert_eq!(
            settle(&plan, &inputs, &results),
            Settled::Partial {
                restore: BTreeSet::from([0, 1]),
                failed: 1
            }
        );
        // After partition 0's restore (it read `a`'s event back), the redo
        // sends only partition 1's event.
        let mut restored = states.clone();
        if let Some(p0) = restored.get_mut(&0) {
            p0.remember("a", 50);
            p0.covered_input(10);
        }
        let redo = plan_batch(&restored, &inputs, 55, TTL);
        assert_eq!(redo.outputs, outputs(&[1]));
        let ok: [Result<i64, &str>; 1] = [Ok(41)];
        assert_eq!(settle(&redo, &inputs, &ok), Settled::Acknowledged(vec![41]));
    }

    #[test]
    fn missing_results_count_as_failures() {
        let inputs = [input(0, 10, "a"), input(1, 5, "b")];
        let plan = plan_batch(&states(), &inputs, 50, TTL);
        let results: [Result<i64, ()>; 1] = [Ok(1)];
        assert_eq!(
            settle(&plan, &inputs, &results),
            Settled::Partial {
                restore: BTreeSet::from([0, 1]),
                failed: 1
            }
        );
    }

    #[test]
    fn records_of_partitions_not_owned_are_neither_written_nor_committed() {
        let inputs = [input(7, 10, "a"), input(0, 3, "b")];
        let plan = plan_batch(&states(), &inputs, 50, TTL);
        assert_eq!(plan.decisions[0], BatchDecision::NotOwned);
        assert_eq!(plan.outputs, outputs(&[1]));
        assert_eq!(plan.commit(&inputs), [(0, 4)]);
    }
}

/// The plan driven against a model of the broker: random batches, random
/// partial failures, crashes between the outputs and the changelog, and
/// restores emulated by replaying the changelog and the output's tail into
/// a fresh state, as [`crate::restore`] does.
#[cfg(test)]
mod model {
    use common::lcg::Lcg;
    use std::collections::HashSet;

    use super::*;

    const PARTITIONS: i32 = 2;
    const KEYS: [&str; 6] = ["a", "b", "c", "d", "e", "f"];

    /// One input record of the model.
    struct In {
        key: &'static str,
        replayed: bool,
    }

    #[derive(Default)]
    struct Broker {
        /// Per partition: the events' source offsets and keys, in order.
        events: HashMap<i32, Vec<(i64, String)>>,
        /// Per partition: the changelog.
        changelog: HashMap<i32, Vec<(String, SeenRecord)>>,
        committed: HashMap<i32, i64>,
    }

    impl Broker {
        /// What [`crate::restore::restore_partition`] and the install make
        /// of a partition: the state, and the recovered changelog records
        /// written.
        fn restore(&mut self, partition: i32) -> PartitionState {
            let mut state = PartitionState::default();
            for (key, seen) in self.changelog.entry(partition).or_default().iter() {
                state.remember(key, seen.first_seen_ms);
                state.covered_output(seen.output_offset);
                state.covered_input(seen.source_offset);
            }
            let start = state.last_output_offset.map_or(0, |o| o + 1);
            let events = self.events.entry(partition).or_default().clone();
            let mut recovered = Vec::new();
            for (output_offset, (source_offset, key)) in events
                .iter()
                .enumerate()
                .skip(usize::try_from(start).unwrap_or(0))
            {
                let output_offset = output_offset as i64;
                state.covered_input(*source_offset);
                if state.contains(key) {
                    continue;
                }
                state.remember(key, 0);
                recovered.push((
                    key.clone(),
                    SeenRecord {
                        first_seen_ms: 0,
                        output_offset,
                        source_offset: *source_offset,
                    },
                ));
            }
            for (_, seen) in &recovered {
                state.covered_output(seen.output_offset);
            }
            self.changelog
                .entry(partition)
                .or_default()
                .extend(recovered);
            state
        }
    }

    /// Runs one random history; returns what went wrong, if anything.
    fn run(seed: u64, gaps: bool, crashes: bool) -> Result<(), String> {
        let mut rng = Lcg(seed);
        let log: HashMap<i32, Vec<In>> = (0..PARTITIONS)
            .map(|p| {
                let records = (0..30)
                    .map(|_| In {
                        key: KEYS[rng.below(KEYS.len() as u64) as usize],
                        replayed: rng.chance(15),
                    })
                    .collect();
                (p, records)
            })
            .collect();
        let mut broker = Broker::default();
        let mut states: HashMap<i32, PartitionState> = HashMap::new();
        let mut position: HashMap<i32, i64> = HashMap::new();
        for p in 0..PARTITIONS {
            let _ = states.insert(p, broker.restore(p));
            let _ = position.insert(p, 0);
        }
        let mut failures_left = 12;
        for _round in 0..400 {
            // A batch: a few records of each partition from its position.
            let mut batch: Vec<(i32, i64)> = Vec::new();
            for p in 0..PARTITIONS {
                let from = position[&p];
                let n = rng.below(5) as i64;
                let to = (from + n).min(log[&p].len() as i64);
                batch.extend((from..to).map(|o| (p, o)));
                let _ = position.insert(p, to);
            }
            if batch.is_empty() {
                if position.values().all(|o| *o >= 30) {
                    break;
                }
                continue;
            }
            let inputs: Vec<BatchRecord<'_>> = batch
                .iter()
                .map(|&(p, o)| {
                    let record = &log[&p][o as usize];
                    BatchRecord {
                        partition: p,
                        offset: o,
                        key: record.key,
                        replayed: record.replayed,
                    }
                })
                .collect();
            let plan = plan_batch(&states, &inputs, 0, i64::MAX);
            // Which outputs land and which are acknowledged. Without gaps
            // (an idempotent producer's order), what lands on a partition
            // is a prefix of its outputs and what is acknowledged a prefix
            // of that.
            let fail = failures_left > 0 && rng.chance(30);
            // Per partition: whether outputs are still acknowledged, and
            // still landing.
            let mut open: HashMap<i32, (bool, bool)> = HashMap::new();
            let mut results: Vec<Result<i64, ()>> = Vec::new();
            for output in &plan.outputs {
                let record = inputs[output.input];
                let p = record.partition;
                let (this_fails, lands) = if gaps {
                    let this_fails = fail && rng.chance(40);
                    (this_fails, !this_fails || rng.chance(50))
                } else {
                    let (acked, landing) = open.entry(p).or_insert((true, true));
                    if fail && *acked && rng.chance(40) {
                        *acked = false;
                    }
                    if !*acked && *landing && rng.chance(50) {
                        *landing = false;
                    }
                    (!*acked, *landing)
                };
                let events = broker.events.entry(p).or_default();
                if lands {
                    events.push((record.offset, record.key.to_string()));
                }
                let offset = events.len() as i64 - 1;
                results.push(if this_fails { Err(()) } else { Ok(offset) });
            }
            let settled = settle(&plan, &inputs, &results);
            let crash = crashes && rng.chance(5);
            match settled {
                Settled::Partial { restore, .. } => {
                    failures_left -= 1;
                    for p in restore {
                        let _ = states.insert(p, broker.restore(p));
                        let _ = position.insert(p, broker.committed.get(&p).copied().unwrap_or(0));
                    }
                    continue;
                }
                Settled::Acknowledged(offsets) if !crash => {
                    for entry in plan.changelog(&inputs, &offsets) {
                        broker
                            .changelog
                            .entry(entry.partition)
                            .or_default()
                            .push((entry.key, entry.seen));
                    }
                    plan.remember(&mut states, &inputs, &offsets);
                    for (p, next) in plan.commit(&inputs) {
                        let before = broker.committed.insert(p, next).unwrap_or(0);
                        if next < before {
                            return Err(format!("commit of {p} went back from {before} to {next}"));
                        }
                    }
                }
                Settled::Acknowledged(_) => {
                    // Crash between the outputs and the changelog.
                    for p in 0..PARTITIONS {
                        let _ = states.insert(p, broker.restore(p));
                        let _ = position.insert(p, broker.committed.get(&p).copied().unwrap_or(0));
                    }
                }
            }
        }
        // Every input that must be forwarded is on the output exactly once:
        // a key's first record, and a replayed record of a key seen before.
        for p in 0..PARTITIONS {
            let mut seen = HashSet::new();
            let events = broker.events.entry(p).or_default();
            for (offset, record) in log[&p].iter().enumerate() {
                let offset = offset as i64;
                let expected = usize::from(!seen.contains(record.key) || record.replayed);
                let _ = seen.insert(record.key);
                let got = events.iter().filter(|(o, _)| *o == offset).count();
                if got != expected {
                    return Err(format!(
                        "input {p}/{offset} (key {}, replayed {}) is on the output {got} times, \
                         not {expected}",
                        record.key, record.replayed
                    ));
                }
            }
        }
        Ok(())
    }

    #[test]
    fn ordered_partial_failures_and_crashes_forward_every_input_exactly_once() {
        for seed in 0..300 {
            if let Err(e) = run(seed, false, true) {
                panic!("seed {seed}: {e}");
            }
            if let Err(e) = run(seed, false, false) {
                panic!("seed {seed} (no crash): {e}");
            }
        }
    }

    /// Why the writer must never leave a gap: when an event fails and a
    /// later event of the same partition in the same attempt is acknowledged
    /// (a record refused locally as too large, or a broker refusal of one
    /// produce request while the next succeeds), the restore's
    /// `forwarded_through` covers the failed input and the redo drops it as
    /// `AlreadyForwarded`: it would be lost (the model finds it within the first seeds).
    /// So gaps are excluded where outputs are sent, not here:
    /// `Writer::send_once` stops queueing at the first local refusal
    /// (`common::produce::send_in_order`, tested against the mock cluster)
    /// and the producer runs with `enable.gapless.guarantee`, which makes
    /// any other possible gap a fatal error that ends the process. This
    /// test documents the hazard; it stays ignored because the model's gaps
    /// cannot happen with that writer.
    #[test]
    #[ignore = "documents the gap hazard that the writer excludes (send_in_order, gapless guarantee)"]
    fn a_failed_output_followed_by_an_acknowledged_one_is_not_lost() {
        for seed in 0..300 {
            if let Err(e) = run(seed, true, false) {
                panic!("seed {seed}: {e}");
            }
        }
    }
}
