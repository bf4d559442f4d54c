//! The state writer's core, sans IO: what one batch writes, learns and
//! commits.
//!
//! The runner reads a batch, decodes it, and asks [`plan_batch`] what to
//! do: each input, in partition and offset order, is merged
//! (`property_state::merge`) into its property's current state, the one
//! the batch itself left or else the partition's. An input that changes
//! the state gets one output: the new state, to the input's partition of
//! `properties.latest`, carrying the input's offset (`source-offset`). An
//! input that changes nothing gets none. Once the outputs' results are in,
//! [`settle`] sorts the batch's partitions: those whose every output was
//! acknowledged are *done* (their states learn the batch,
//! [`BatchPlan::apply`], and their offsets are committed,
//! [`BatchPlan::commit`]); those with a failed output are restored from
//! the topic and read again from the mark, as after a crash of those
//! partitions.
//!
//! **One output per change, never one per key and batch.** Coalescing the
//! changes of a key within a batch into its last state would break the
//! prefix argument the restore rests on: outputs are written in input order
//! and what is acknowledged is a prefix of them, so the mark (the greatest
//! `source-offset` on the output) says that every input at or below it is
//! in the states. Say inputs 10 (key `a`), 11 (key `b`) and 12 (key `a`)
//! change their states, and `a`'s two changes are written as one record
//! with source offset 12, after `b`'s. If only `b`'s record lands, the mark
//! is 11 and the restored `a` lacks input 10, which is at or below the mark
//! and so is never read again: lost. Written as three records, whatever
//! prefix lands, the mark is exactly the last input whose state is there.
//!
//! Everything here is a value, tested without a broker, down to a model of
//! the broker with partial failures and crashes ([`model`]).

use std::collections::{BTreeSet, HashMap};

use property_state::merge;
use schemas::{PropertyEvent, PropertyState};

use crate::fit::RecordLimit;
use crate::state::PartitionState;

/// One input record as the plan sees it.
#[derive(Debug, Clone, Copy)]
pub struct Input<'a> {
    /// Input partition.
    pub partition: i32,
    /// Input offset.
    pub offset: i64,
    /// The decoded event; `None` when its value does not decode (skipped).
    pub event: Option<&'a PropertyEvent>,
}

/// What happens to one input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// It changes its property's state: the new state is written.
    Changed,
    /// It changes nothing (already merged, or older on every field it
    /// carries): nothing is written.
    Unchanged,
    /// Its value does not decode: skipped (the sink dead-letters it).
    Undecodable,
    /// At or below the partition's mark: its state is already on the
    /// output (a redelivery the restore found done).
    AlreadyWritten,
    /// Its partition is not (or no longer) assigned here: neither decided
    /// nor committed; its new owner reads it again.
    NotOwned,
}

/// One record to produce: the new state of the property an input changed.
#[derive(Debug, Clone, PartialEq)]
pub struct Output {
    /// Index of the input in the batch.
    pub input: usize,
    /// The property's key (the record key).
    pub key: String,
    /// Its state after the input (with values withheld to fit a record).
    pub state: PropertyState,
    /// The state's Avro datum, as it is sent.
    pub datum: Vec<u8>,
    /// The fields withheld to fit this record that the merge had values
    /// for (empty: it fit as merged).
    pub withheld: Vec<&'static str>,
}

/// What one batch does.
#[derive(Debug, Clone, PartialEq)]
pub struct BatchPlan {
    /// One decision per input, in order.
    pub decisions: Vec<Decision>,
    /// The outputs, in input order: one per change.
    pub outputs: Vec<Output>,
}

/// Plans a batch against the partitions' states, each new state fitted
/// into one record under `limit` ([`crate::fit`]). `Err` only for a state
/// that cannot be written at all.
pub fn plan_batch(
    states: &HashMap<i32, PartitionState>,
    inputs: &[Input<'_>],
    limit: &RecordLimit,
) -> anyhow::Result<BatchPlan> {
    let mut decisions = Vec::with_capacity(inputs.len());
    let mut outputs: Vec<Output> = Vec::new();
    // The batch's latest output per (partition, key): the state the next
    // change of that key starts from.
    let mut latest: HashMap<(i32, &str), usize> = HashMap::new();
    for (index, input) in inputs.iter().enumerate() {
        let Some(state) = states.get(&input.partition) else {
            decisions.push(Decision::NotOwned);
            continue;
        };
        if state.already_written(input.offset) {
            decisions.push(Decision::AlreadyWritten);
            continue;
        }
        let Some(event) = input.event else {
            decisions.push(Decision::Undecodable);
            continue;
        };
        let key = event.property_key.as_str();
        let prior = match latest.get(&(input.partition, key)) {
            Some(&at) => Some(&outputs[at].state),
            None => state.get(key),
        };
        let merged = merge(prior, event);
        if !merged.changed {
            decisions.push(Decision::Unchanged);
            continue;
        }
        let fitted = limit.fit(prior, merged, &event.dedupe_key, input.offset)?;
        if !fitted.merged.changed {
            decisions.push(Decision::Unchanged);
            continue;
        }
        decisions.push(Decision::Changed);
        let _ = latest.insert((input.partition, key), outputs.len());
        outputs.push(Output {
            input: index,
            key: key.to_string(),
            state: fitted.merged.state,
            datum: fitted.datum,
            withheld: fitted.withheld,
        });
    }
    Ok(BatchPlan { decisions, outputs })
}

/// How a batch's partitions came out of the produce.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settlement {
    /// Partitions decided here whose every output was acknowledged (or
    /// that had none): they learn the batch and commit it.
    pub done: BTreeSet<i32>,
    /// Partitions with an output that failed: their states are dropped,
    /// restored from the output, and read again from where they resume.
    pub restore: BTreeSet<i32>,
    /// Outputs that failed (a missing result counts as failed).
    pub failed: usize,
}

/// Settles a produce of `plan`'s outputs from their per-record results
/// (`Ok(offset)` when acknowledged), in output order.
pub fn settle<E>(plan: &BatchPlan, inputs: &[Input<'_>], results: &[Result<i64, E>]) -> Settlement {
    let mut restore = BTreeSet::new();
    let mut failed = 0;
    for (index, output) in plan.outputs.iter().enumerate() {
        if !results.get(index).is_some_and(Result::is_ok) {
            failed += 1;
            let _ = restore.insert(inputs[output.input].partition);
        }
    }
    let done = inputs
        .iter()
        .zip(&plan.decisions)
        .filter(|(_, d)| **d != Decision::NotOwned)
        .map(|(input, _)| input.partition)
        .filter(|p| !restore.contains(p))
        .collect();
    Settlement {
        done,
        restore,
        failed,
    }
}

impl BatchPlan {
    /// The offsets to commit for the partitions in `done`: past the last
    /// input of each that this instance decided.
    pub fn commit(&self, inputs: &[Input<'_>], done: &BTreeSet<i32>) -> Vec<(i32, i64)> {
        let mut next: HashMap<i32, i64> = HashMap::new();
        for (input, decision) in inputs.iter().zip(&self.decisions) {
            if *decision == Decision::NotOwned || !done.contains(&input.partition) {
                continue;
            }
            let entry = next.entry(input.partition).or_insert(0);
            *entry = (*entry).max(input.offset + 1);
        }
        let mut out: Vec<(i32, i64)> = next.into_iter().collect();
        out.sort_unstable();
        out
    }

    /// What the states of the partitions in `done` learn once their
    /// outputs are acknowledged: each changed property's new state, and
    /// the mark up to its input.
    pub fn apply(
        self,
        states: &mut HashMap<i32, PartitionState>,
        inputs: &[Input<'_>],
        done: &BTreeSet<i32>,
    ) {
        for output in self.outputs {
            let input = inputs[output.input];
            if !done.contains(&input.partition) {
                continue;
            }
            if let Some(state) = states.get_mut(&input.partition) {
                state.set(output.key, output.state);
                state.covered(input.offset);
            }
        }
    }

    /// How many inputs got `decision`.
    pub fn count(&self, decision: Decision) -> usize {
        self.decisions.iter().filter(|d| **d == decision).count()
    }
}

#[cfg(test)]
mod tests {
    use schemas::{EventType, PropertySnapshot};

    use super::*;

    /// An event of property `key` at `time`, with a price.
    pub(super) fn event(key: &str, dedupe_key: &str, time: i64, price: f64) -> PropertyEvent {
        let mut e = schemas::sample::price_change();
        e.property_key = key.to_string();
        e.dedupe_key = dedupe_key.to_string();
        e.event_id = dedupe_key.to_string();
        e.event_type = EventType::Updated;
        e.occurred_at = time;
        e.received_at = time + 1;
        e.change = None;
        if let Some(p) = e.property.as_mut() {
            p.price = Some(price);
        }
        e
    }

    fn input(partition: i32, offset: i64, event: &PropertyEvent) -> Input<'_> {
        Input {
            partition,
            offset,
            event: Some(event),
        }
    }

    /// Plans under a limit no test state reaches.
    pub(super) fn plan(states: &HashMap<i32, PartitionState>, inputs: &[Input<'_>]) -> BatchPlan {
        plan_batch(states, inputs, &RecordLimit::new(1_000_000)).expect("every state fits")
    }

    fn owned(partitions: &[i32]) -> HashMap<i32, PartitionState> {
        partitions
            .iter()
            .map(|&p| (p, PartitionState::default()))
            .collect()
    }

    fn price(state: &PropertyState) -> Option<f64> {
        state.property.price
    }

    /// A state over the record limit is written with values withheld, and
    /// a restore from what was written gives the next batch the same
    /// records as an uninterrupted run (breaker-s16).
    #[test]
    fn withheld_values_survive_a_restore_unchanged() {
        use crate::restore::{Record, Restore, Value};
        let limit = RecordLimit::new(4_000);
        let mut described = event("a", "described", 1_000, 1.0);
        let mut pictured = event("a", "pictured", 2_000, 1.0);
        let mut newer = event("a", "newer", 3_000, 2.0);
        if let (Some(d), Some(p), Some(n)) = (
            described.property.as_mut(),
            pictured.property.as_mut(),
            newer.property.as_mut(),
        ) {
            d.description = Some("d".repeat(2_500));
            p.description = None;
            p.pictures = Some(
                (0..150)
                    .map(|i| format!("https://img/{i:03}.jpg"))
                    .collect(),
            );
            n.description = None;
            n.pictures = None;
        }
        let all = [
            input(0, 0, &described),
            input(0, 1, &pictured),
            input(0, 2, &newer),
        ];
        let whole = plan_batch(&owned(&[0]), &all, &limit).expect("fits");
        assert_eq!(whole.decisions, [Decision::Changed; 3]);
        assert_eq!(whole.outputs[1].withheld, ["pictures"]);
        assert_eq!(whole.outputs[2].state.withheld_fields, ["pictures"]);
        assert!(whole.outputs[2].withheld.is_empty(), "withheld before");

        // Crash after the first two: restore them from their datums.
        let mut restore = Restore::default();
        for (offset, output) in whole.outputs[..2].iter().enumerate() {
            let state =
                schemas::decode_state(schemas::state_schema(), &output.datum).expect("decodes");
            assert_eq!(state, output.state);
            restore.apply(Record {
                key: Some("a"),
                value: Value::State(Box::new(state)),
                source_offset: Some(offset as i64),
            });
        }
        let states = HashMap::from([(0, restore.state)]);
        let resumed = plan_batch(&states, &all, &limit).expect("fits");
        assert_eq!(
            resumed.decisions,
            [
                Decision::AlreadyWritten,
                Decision::AlreadyWritten,
                Decision::Changed
            ]
        );
        // (Compared as states: Avro maps have no order, and the encoder
        // writes `fields` in a hash map's.)
        assert_eq!(resumed.outputs.len(), 1);
        assert!(resumed.outputs[0].state == whole.outputs[2].state);
        assert_eq!(resumed.outputs[0].withheld, whole.outputs[2].withheld);
    }

    /// breaker20: a record on `properties.latest` that is not the state
    /// writer's (a stray value from another producer) after a key's state
    /// must not make the restore forget the key while the mark stays past
    /// the events that built it: the next partial event would start from
    /// nothing and erase fields no event cleared (here `bedrooms`).
    #[test]
    fn a_foreign_record_after_a_state_does_not_erase_its_fields() {
        use crate::restore::{Record, Restore, Value};
        let created = event("a", "created", 1_000, 1.0);
        let mut restore = Restore::default();
        restore.apply(Record {
            key: Some("a"),
            value: Value::State(Box::new(property_state::state_of(&created))),
            source_offset: Some(0),
        });
        restore.apply(Record {
            key: Some("a"),
            value: Value::Unreadable("a stray value".into()),
            source_offset: None,
        });
        let mut partial = event("a", "price", 2_000, 2.0);
        let mut snapshot = PropertySnapshot::empty();
        snapshot.price = Some(2.0);
        partial.property = Some(snapshot);
        let states = HashMap::from([(0, restore.state)]);
        let plan = plan(&states, &[input(0, 1, &partial)]);
        let written = &plan.outputs[0].state;
        assert_eq!(written.property.price, Some(2.0));
        assert_eq!(written.property.bedrooms, Some(2), "no event cleared it");
    }

    #[test]
    fn each_change_of_a_key_is_its_own_output_in_input_order() {
        let created = event("a", "e1", 1_000, 1.0);
        let other = event("b", "e2", 1_000, 2.0);
        // A price change alone.
        let mut newer = event("a", "e3", 2_000, 3.0);
        let mut price_only = PropertySnapshot::empty();
        price_only.price = Some(3.0);
        newer.property = Some(price_only);
        let inputs = [
            input(0, 10, &created),
            input(0, 11, &other),
            input(0, 12, &newer),
        ];
        let plan = plan(&owned(&[0]), &inputs);
        assert_eq!(plan.decisions, [Decision::Changed; 3]);
        let written: Vec<(usize, &str, Option<f64>)> = plan
            .outputs
            .iter()
            .map(|o| (o.input, o.key.as_str(), price(&o.state)))
            .collect();
        assert_eq!(
            written,
            [
                (0, "a", Some(1.0)),
                (1, "b", Some(2.0)),
                (2, "a", Some(3.0))
            ]
        );
        // The second change of `a` started from the first: both events
        // contribute, and the first's other fields are kept.
        assert_eq!(plan.outputs[2].state.contributing_events, 2);
        assert_eq!(plan.outputs[2].state.property.bedrooms, Some(2));
    }

    #[test]
    fn a_duplicate_an_older_event_and_a_broken_value_write_nothing() {
        let newer = event("a", "e1", 2_000, 3.0);
        let older = event("a", "e2", 1_000, 1.0);
        let inputs = [
            input(0, 1, &newer),
            input(0, 2, &newer),
            input(0, 3, &older),
            Input {
                partition: 0,
                offset: 4,
                event: None,
            },
        ];
        let plan = plan(&owned(&[0]), &inputs);
        assert_eq!(
            plan.decisions,
            [
                Decision::Changed,
                Decision::Unchanged,
                // The older event carries only fields the newer one set.
                Decision::Unchanged,
                Decision::Undecodable
            ]
        );
        assert_eq!(plan.outputs.len(), 1);
        let done = BTreeSet::from([0]);
        assert_eq!(plan.commit(&inputs, &done), [(0, 5)]);
    }

    #[test]
    fn a_partial_sale_keeps_the_known_data() {
        let created = event("a", "e1", 1_000, 750_000.0);
        let mut sold = event("a", "e2", 3_000, 0.0);
        sold.event_type = EventType::Sold;
        let mut sale = PropertySnapshot::empty();
        sale.sold_price = Some(700_000.0);
        sold.property = Some(sale);
        let inputs = [input(0, 1, &created), input(0, 2, &sold)];
        let plan = plan(&owned(&[0]), &inputs);
        let last = &plan.outputs[1].state;
        assert_eq!(price(last), Some(750_000.0));
        assert_eq!(last.property.status.as_deref(), Some("sold"));
        assert_eq!(last.property.sold_price, Some(700_000.0));
    }

    #[test]
    fn inputs_at_or_below_the_mark_and_of_partitions_not_owned_are_left_alone() {
        let e = event("a", "e1", 1_000, 1.0);
        let mut states = owned(&[0]);
        if let Some(p0) = states.get_mut(&0) {
            p0.covered(5);
        }
        let inputs = [input(0, 5, &e), input(3, 6, &e), input(0, 6, &e)];
        let plan = plan(&states, &inputs);
        assert_eq!(
            plan.decisions,
            [
                Decision::AlreadyWritten,
                Decision::NotOwned,
                Decision::Changed
            ]
        );
        let settled = settle(&plan, &inputs, &[Ok::<i64, ()>(0)]);
        assert_eq!(settled.done, BTreeSet::from([0]));
        assert_eq!(plan.commit(&inputs, &settled.done), [(0, 7)]);
    }

    #[test]
    fn a_partial_failure_restores_only_the_partitions_whose_outputs_failed() {
        let a = event("a", "e1", 1_000, 1.0);
        let b = event("b", "e2", 1_000, 2.0);
        let c = event("c", "e3", 1_000, 3.0);
        let unchanged_a = a.clone();
        let inputs = [
            input(0, 10, &a),
            input(1, 20, &b),
            input(1, 21, &c),
            input(2, 30, &unchanged_a),
        ];
        let mut states = owned(&[0, 1, 2]);
        if let Some(p2) = states.get_mut(&2) {
            p2.set("a".into(), property_state::state_of(&a));
        }
        let plan = plan(&states, &inputs);
        assert_eq!(plan.outputs.len(), 3);
        // Partition 0's output acknowledged; partition 1's second failed
        // (its first may have landed: the restore will say).
        let results: [Result<i64, &str>; 3] = [Ok(7), Ok(8), Err("timed out")];
        let settled = settle(&plan, &inputs, &results);
        assert_eq!(
            settled,
            Settlement {
                done: BTreeSet::from([0, 2]),
                restore: BTreeSet::from([1]),
                failed: 1
            }
        );
        assert_eq!(plan.commit(&inputs, &settled.done), [(0, 11), (2, 31)]);
        plan.apply(&mut states, &inputs, &settled.done);
        assert_eq!(states[&0].mark, Some(10));
        assert!(states[&0].get("a").is_some());
        assert!(states[&1].is_empty(), "a failed partition learns nothing");
        assert_eq!(states[&2].mark, None, "an unchanged input moves no mark");
    }

    #[test]
    fn missing_results_count_as_failures() {
        let a = event("a", "e1", 1_000, 1.0);
        let inputs = [input(0, 1, &a)];
        let plan = plan(&owned(&[0]), &inputs);
        let settled = settle::<()>(&plan, &inputs, &[]);
        assert_eq!(settled.restore, BTreeSet::from([0]));
        assert_eq!(settled.failed, 1);
        assert!(settled.done.is_empty());
    }
}

/// The plan driven against a model of the broker: random batches of
/// events for a few properties, out of order and repeated; outputs that
/// land and are acknowledged as a gapless idempotent producer allows (a
/// prefix per partition); partial failures; crashes between the
/// acknowledgement and the commit; and restores emulated by folding the
/// output partition as [`crate::restore`] does and resuming as
/// `common::stage_loop::resume_offset` says.
#[cfg(test)]
mod model {
    use common::lcg::Lcg;
    use std::collections::BTreeMap;

    use common::stage_loop::resume_offset;
    use property_state::merge_all;

    use super::tests::{event, plan};
    use super::*;
    use crate::restore::{Record, Restore, Value};

    const PARTITIONS: i32 = 2;
    const RECORDS: i64 = 30;
    const KEYS: [&str; 3] = ["a", "b", "c"];

    /// What the broker holds.
    #[derive(Default)]
    struct Broker {
        /// Per partition of `properties.latest`: (key, state, source offset).
        latest: BTreeMap<i32, Vec<(String, PropertyState, i64)>>,
        committed: BTreeMap<i32, i64>,
    }

    impl Broker {
        /// The restore of `partition`, and where it resumes.
        fn restore(&self, partition: i32) -> (PartitionState, i64) {
            let mut restore = Restore::default();
            for (key, state, offset) in self.latest.get(&partition).into_iter().flatten() {
                restore.apply(Record {
                    key: Some(key),
                    value: Value::State(Box::new(state.clone())),
                    source_offset: Some(*offset),
                });
            }
            let committed = self.committed.get(&partition).copied();
            let at = resume_offset(committed, restore.state.mark).unwrap_or(0);
            (restore.state, at)
        }
    }

    /// The input log: per partition, each record's event. Events repeat
    /// (a redelivery) and come out of order in time.
    fn log(rng: &mut Lcg) -> BTreeMap<i32, Vec<PropertyEvent>> {
        (0..PARTITIONS)
            .map(|p| {
                let mut events: Vec<PropertyEvent> = Vec::new();
                for o in 0..RECORDS {
                    if o > 0 && rng.chance(15) {
                        let again = events[rng.below(o as u64) as usize].clone();
                        events.push(again);
                        continue;
                    }
                    let key = KEYS[rng.below(KEYS.len() as u64) as usize];
                    let time = 1_000 + rng.below(5) as i64 * 1_000;
                    let price = rng.below(4) as f64;
                    events.push(event(key, &format!("p{p}-{o}"), time, price));
                }
                (p, events)
            })
            .collect()
    }

    /// Runs one random history; returns what went wrong, if anything.
    fn run(seed: u64) -> Result<(), String> {
        let mut rng = Lcg(seed);
        let log = log(&mut rng);
        let mut broker = Broker::default();
        let mut states: HashMap<i32, PartitionState> = HashMap::new();
        let mut position: BTreeMap<i32, i64> = BTreeMap::new();
        let restore_into = |broker: &Broker,
                            states: &mut HashMap<i32, PartitionState>,
                            position: &mut BTreeMap<i32, i64>,
                            p: i32| {
            let (state, at) = broker.restore(p);
            let _ = states.insert(p, state);
            let _ = position.insert(p, at);
        };
        for p in 0..PARTITIONS {
            restore_into(&broker, &mut states, &mut position, p);
        }
        let mut failures_left = 15;
        for _round in 0..1_000 {
            let mut batch: Vec<(i32, i64)> = Vec::new();
            for p in 0..PARTITIONS {
                let from = position[&p];
                let to = (from + rng.below(6) as i64).min(RECORDS);
                batch.extend((from..to).map(|o| (p, o)));
                let _ = position.insert(p, to);
            }
            if batch.is_empty() {
                if position.values().all(|o| *o >= RECORDS) {
                    break;
                }
                continue;
            }
            let inputs: Vec<Input<'_>> = batch
                .iter()
                .map(|&(p, o)| Input {
                    partition: p,
                    offset: o,
                    event: Some(&log[&p][o as usize]),
                })
                .collect();
            let plan = plan(&states, &inputs);
            // Per partition, what lands is a prefix of its outputs and what
            // is acknowledged a prefix of that.
            let fail = failures_left > 0 && rng.chance(30);
            let mut open: HashMap<i32, (bool, bool)> = HashMap::new();
            let mut results: Vec<Result<i64, ()>> = Vec::new();
            for output in &plan.outputs {
                let input = inputs[output.input];
                let (acked, landing) = open.entry(input.partition).or_insert((true, true));
                if fail && *acked && rng.chance(40) {
                    *acked = false;
                }
                if !*acked && *landing && rng.chance(50) {
                    *landing = false;
                }
                if *landing {
                    broker.latest.entry(input.partition).or_default().push((
                        output.key.clone(),
                        output.state.clone(),
                        input.offset,
                    ));
                }
                results.push(if *acked { Ok(0) } else { Err(()) });
            }
            let settled = settle(&plan, &inputs, &results);
            if !settled.restore.is_empty() {
                failures_left -= 1;
            }
            if rng.chance(5) {
                // A crash after the produce, before anything is committed.
                for p in 0..PARTITIONS {
                    restore_into(&broker, &mut states, &mut position, p);
                }
                continue;
            }
            for (p, next) in plan.commit(&inputs, &settled.done) {
                let before = broker.committed.insert(p, next).unwrap_or(0);
                if next < before {
                    return Err(format!("commit of {p} went back from {before} to {next}"));
                }
            }
            plan.apply(&mut states, &inputs, &settled.done);
            for &p in &settled.restore {
                restore_into(&broker, &mut states, &mut position, p);
            }
        }
        if position.values().any(|o| *o < RECORDS) {
            return Err(format!("never finished: {position:?}"));
        }
        check(&log, &broker)
    }

    /// Each record of a key on `properties.latest` is the merge of the
    /// key's events up to its source offset, no two consecutive records of
    /// a key are equal, and each key's last record is the merge of all its
    /// events.
    fn check(log: &BTreeMap<i32, Vec<PropertyEvent>>, broker: &Broker) -> Result<(), String> {
        for (p, events) in log {
            let of_key = |key: &str, through: i64| {
                merge_all(
                    None,
                    events
                        .iter()
                        .take(usize::try_from(through + 1).unwrap_or(0))
                        .filter(|e| e.property_key == key),
                )
            };
            let records = broker.latest.get(p).cloned().unwrap_or_default();
            let mut last: HashMap<&str, &PropertyState> = HashMap::new();
            for (key, state, offset) in &records {
                if of_key(key, *offset).as_ref() != Some(state) {
                    return Err(format!(
                        "partition {p}: the record of {key} at source offset {offset} is not \
                         the merge of its events up to there"
                    ));
                }
                if last.insert(key, state) == Some(state) {
                    return Err(format!(
                        "partition {p}: {key}'s state at source offset {offset} was written twice"
                    ));
                }
            }
            for key in KEYS {
                let expected = of_key(key, RECORDS);
                if expected.as_ref() != last.get(key).copied() {
                    return Err(format!(
                        "partition {p}: {key}'s last state is not the merge"
                    ));
                }
            }
        }
        Ok(())
    }

    #[test]
    fn partial_failures_and_crashes_write_each_change_once_and_end_at_the_merge() {
        for seed in 0..200 {
            if let Err(e) = run(seed) {
                panic!("seed {seed}: {e}");
            }
        }
    }
}
