//! [`Partitions`]: the per-partition state an output-first stage keeps
//! (dedupe's seen keys, the state writer's property states), shared by its
//! loop and its rebalance callback ([`super::PausingContext`]).
//!
//! A partition is either *ready* (its state is restored and it is being
//! read) or *pending* (just assigned, or reset after a batch on it was
//! abandoned: paused until its state is restored from the topics, see
//! [`super::restore_pending`]). Every reset and release starts a new
//! *generation* of the partition, so a restore started under one
//! generation is never installed under another ([`Partitions::is_current`]).

use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};

/// Per-partition state shared by the loop and the rebalance callback.
#[derive(Debug)]
pub struct Partitions<S> {
    states: Mutex<HashMap<i32, S>>,
    pending: Mutex<BTreeSet<i32>>,
    /// Per partition, the generation of its latest reset or release: a
    /// restore started under one generation is not installed under another.
    generations: Mutex<HashMap<i32, u64>>,
    next_generation: AtomicU64,
}

impl<S> Default for Partitions<S> {
    fn default() -> Self {
        Self {
            states: Mutex::new(HashMap::new()),
            pending: Mutex::new(BTreeSet::new()),
            generations: Mutex::new(HashMap::new()),
            next_generation: AtomicU64::new(0),
        }
    }
}

/// Which reset of a partition a restore was started for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RestoreTicket(u64);

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl<S> Partitions<S> {
    /// The restored states, by input partition.
    pub fn states(&self) -> MutexGuard<'_, HashMap<i32, S>> {
        lock(&self.states)
    }

    /// Partitions assigned here whose state is not restored yet.
    pub fn pending(&self) -> MutexGuard<'_, BTreeSet<i32>> {
        lock(&self.pending)
    }

    /// The partitions with a restored state.
    pub fn ready(&self) -> Vec<i32> {
        let mut ready: Vec<i32> = self.states().keys().copied().collect();
        ready.sort_unstable();
        ready
    }

    /// Starts a new generation of `partition`.
    fn bump(&self, partition: i32) {
        let generation = self.next_generation.fetch_add(1, Ordering::Relaxed);
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

    /// Installs the restored `state` of `partition`: it is ready.
    pub fn install(&self, partition: i32, state: S) {
        let _ = self.states().insert(partition, state);
        let _ = self.pending().remove(&partition);
    }

    /// Forgets `partitions` entirely (revoked).
    pub fn release(&self, partitions: &[i32]) {
        let mut states = self.states();
        let mut pending = self.pending();
        for p in partitions {
            let _ = states.remove(p);
            let _ = pending.remove(p);
            self.bump(*p);
        }
    }

    /// Forgets every partition (the group was left).
    pub fn release_all(&self) {
        let mut all: Vec<i32> = self.states().keys().copied().collect();
        all.extend(self.pending().iter().copied());
        self.release(&all);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reset_drops_the_state_and_marks_the_partition_pending() {
        let partitions = Partitions::default();
        partitions.install(1, "one");
        partitions.install(2, "two");
        partitions.reset([1]);
        assert!(!partitions.states().contains_key(&1));
        assert_eq!(partitions.ready(), [2]);
        assert!(partitions.pending().contains(&1));
        partitions.release(&[1]);
        assert!(partitions.pending().is_empty());
        partitions.release_all();
        assert!(partitions.ready().is_empty());
    }

    #[test]
    fn a_restore_started_before_a_revocation_is_not_installed_after_a_reassignment() {
        let partitions: Partitions<()> = Partitions::default();
        partitions.reset([3]);
        let ticket = partitions.ticket(3);
        assert!(partitions.is_current(3, ticket));
        // The restore thread reads partition 3 to its high watermarks; the
        // loop's poll meanwhile runs a revocation (another instance takes
        // 3 and writes on it) and then an assignment giving 3 back.
        partitions.release(&[3]);
        partitions.reset([3]);
        // 3 is pending again, which is all the loop used to check: the
        // stale state (without what the other instance wrote) would have
        // been installed.
        assert!(partitions.pending().contains(&3));
        assert!(!partitions.is_current(3, ticket), "a stale restore");
        assert!(partitions.is_current(3, partitions.ticket(3)));
        // An abandon (reset) during a restore also starts a new one.
        let ticket = partitions.ticket(3);
        partitions.reset([3]);
        assert!(!partitions.is_current(3, ticket));
    }
}
