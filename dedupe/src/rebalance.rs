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
    /// Per partition, the generation of its latest reset or release: a
    /// restore started under one generation is not installed under another.
    generations: Mutex<HashMap<i32, u64>>,
    next_generation: std::sync::atomic::AtomicU64,
}

/// Which reset of a partition a restore was started for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RestoreTicket(u64);

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

    /// Starts a new generation of `partition`.
    fn bump(&self, partition: i32) {
        let generation = self
            .next_generation
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let _ = lock(&self.generations).insert(partition, generation);
    }

    /// The ticket of a restore of `partition` starting now.
    pub fn ticket(&self, partition: i32) -> RestoreTicket {
        RestoreTicket(
            lock(&self.generations)
                .get(&partition)
                .copied()
                .unwrap_or(u64::MAX),
        )
    }

    /// Whether a restore started with `ticket` may be installed: the
    /// partition is still pending, and was neither revoked nor reset since.
    /// A partition revoked during its restore and assigned back may have
    /// been written by another instance meanwhile, past what the restore
    /// read.
    pub fn is_current(&self, partition: i32, ticket: RestoreTicket) -> bool {
        self.pending().contains(&partition) && self.ticket(partition) == ticket
    }

    /// Drops the state of `partitions` and marks them for a restore.
    pub fn reset(&self, partitions: impl IntoIterator<Item = i32> + Clone) {
        {
            let mut states = self.states();
            for p in partitions.clone() {
                let _ = states.remove(&p);
                self.bump(p);
            }
        }
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
            self.bump(*p);
        }
        latest_done.retain(|(p, _)| !partitions.contains(p));
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
        partitions.release(&[1]);
        assert!(partitions.pending().is_empty());
        assert!(partitions.latest_done().is_empty());
    }

    #[test]
    fn a_restore_started_before_a_revocation_is_not_installed_after_a_reassignment() {
        let partitions = Partitions::default();
        partitions.reset([3]);
        let ticket = partitions.ticket(3);
        assert!(partitions.is_current(3, ticket));
        // The restore thread reads partition 3 to its high watermarks; the
        // loop's poll meanwhile runs a revocation (another instance takes
        // 3 and forwards on it) and then an assignment giving 3 back.
        partitions.release(&[3]);
        partitions.reset([3]);
        // 3 is pending again, which is all the loop used to check: the
        // stale state (without what the other instance forwarded) would
        // have been installed.
        assert!(partitions.pending().contains(&3));
        assert!(!partitions.is_current(3, ticket), "a stale restore");
        assert!(partitions.is_current(3, partitions.ticket(3)));
        // An abandon (reset) during a restore also starts a new one.
        let ticket = partitions.ticket(3);
        partitions.reset([3]);
        assert!(!partitions.is_current(3, ticket));
    }
}
