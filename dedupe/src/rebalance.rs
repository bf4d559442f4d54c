//! What the consumer's rebalance callback does, and the partition state it
//! shares with the loop. The callback never restores (a restore can take
//! minutes on a large changelog, and the callback runs inside `poll`): on
//! assignment it pauses the new partitions and marks them pending; the loop
//! restores them outside the callback ([`crate::restoring`]) and resumes
//! them. On revocation their state is dropped at once, so no record of a
//! partition that is no longer ours is decided or written here.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Mutex, MutexGuard, PoisonError};

use rdkafka::client::ClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext};
use rdkafka::topic_partition_list::TopicPartitionList;
use rdkafka::types::RDKafkaRespErr;

use crate::plan::LatestDone;
use crate::state::PartitionState;

/// Per-partition state shared by the loop and the rebalance callback.
#[derive(Debug, Default)]
pub struct Partitions {
    states: Mutex<HashMap<i32, PartitionState>>,
    pending: Mutex<BTreeSet<i32>>,
    latest_done: Mutex<LatestDone>,
    /// Bumped whenever a partition is reset or released: a restore started
    /// before is stale (another instance may have written since it read).
    epochs: Mutex<HashMap<i32, u64>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Partitions {
    /// The restored states, by input partition.
    pub fn states(&self) -> MutexGuard<'_, HashMap<i32, PartitionState>> {
        lock(&self.states)
    }

    /// Partitions assigned here whose state is not restored yet.
    pub fn pending(&self) -> MutexGuard<'_, BTreeSet<i32>> {
        lock(&self.pending)
    }

    /// Inputs whose snapshot an abandoned attempt already wrote.
    pub fn latest_done(&self) -> MutexGuard<'_, LatestDone> {
        lock(&self.latest_done)
    }

    /// The partition's epoch: a restore result is installed only if it has
    /// not changed since the restore started.
    pub fn epoch(&self, partition: i32) -> u64 {
        lock(&self.epochs).get(&partition).copied().unwrap_or(0)
    }

    fn bump(&self, partitions: impl IntoIterator<Item = i32>) {
        let mut epochs = lock(&self.epochs);
        for p in partitions {
            *epochs.entry(p).or_insert(0) += 1;
        }
    }

    /// Drops the state of `partitions` and marks them for a restore.
    pub fn reset(&self, partitions: impl IntoIterator<Item = i32> + Clone) {
        {
            let mut states = self.states();
            for p in partitions.clone() {
                let _ = states.remove(&p);
            }
        }
        self.bump(partitions.clone());
        self.pending().extend(partitions);
    }

    /// Forgets `partitions` entirely (revoked).
    fn release(&self, partitions: &[i32]) {
        let mut states = self.states();
        let mut pending = self.pending();
        let mut latest_done = self.latest_done();
        for p in partitions {
            let _ = states.remove(p);
            let _ = pending.remove(p);
        }
        latest_done.retain(|(p, _)| !partitions.contains(p));
        drop((states, pending, latest_done));
        self.bump(partitions.iter().copied());
    }
}

/// The consumer context: pauses and marks assigned partitions, releases
/// revoked ones.
pub struct DedupeContext {
    /// Shared with the loop.
    pub partitions: std::sync::Arc<Partitions>,
    /// The input topic.
    pub input_topic: String,
}

impl ClientContext for DedupeContext {}

impl ConsumerContext for DedupeContext {
    fn rebalance(
        &self,
        consumer: &BaseConsumer<Self>,
        err: RDKafkaRespErr,
        tpl: &mut TopicPartitionList,
    ) {
        match err {
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS => {
                let partitions: Vec<i32> = tpl
                    .elements()
                    .iter()
                    .filter(|e| e.topic() == self.input_topic)
                    .map(|e| e.partition())
                    .collect();
                if let Err(e) = consumer.assign(tpl) {
                    tracing::error!(error = %e, "assign failed");
                    return;
                }
                if let Err(e) = consumer.pause(tpl) {
                    tracing::error!(error = %e, "cannot pause the assigned partitions");
                }
                tracing::info!(
                    ?partitions,
                    "partitions assigned; paused until their state is restored"
                );
                self.partitions.reset(partitions);
            }
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS => {
                let partitions: Vec<i32> = tpl.elements().iter().map(|e| e.partition()).collect();
                tracing::info!(?partitions, "partitions revoked; dropping their state");
                self.partitions.release(&partitions);
                if let Err(e) = consumer.unassign() {
                    tracing::error!(error = %e, "unassign failed");
                }
            }
            other => {
                tracing::error!(error = ?other, "rebalance error; releasing partitions");
                let all: Vec<i32> = self.partitions.states().keys().copied().collect();
                self.partitions.release(&all);
                let pending: Vec<i32> = self.partitions.pending().iter().copied().collect();
                self.partitions.release(&pending);
                let _ = consumer.unassign();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reset_drops_the_state_and_marks_the_partition_pending() {
        let partitions = Partitions::default();
        let _ = partitions.states().insert(1, PartitionState::default());
        let _ = partitions.states().insert(2, PartitionState::default());
        let _ = partitions.latest_done().insert((1, 5));
        partitions.reset([1]);
        assert!(!partitions.states().contains_key(&1));
        assert!(partitions.states().contains_key(&2));
        assert!(partitions.pending().contains(&1));
        let epoch = partitions.epoch(1);
        partitions.release(&[1]);
        assert!(partitions.pending().is_empty());
        assert!(partitions.latest_done().is_empty());
        assert!(
            partitions.epoch(1) > epoch,
            "a restore started before is stale"
        );
        partitions.reset([1]);
        assert_eq!(partitions.epoch(2), 0);
    }
}
