//! Keeping a stalled owner from writing after it lost its partitions.
//!
//! Without broker transactions nothing on the broker stops an instance that
//! the group has replaced (it stalled past `session.timeout.ms`, e.g.
//! paused or swapped out) from writing once it runs again. So before every
//! write of a batch (each produce attempt, and dedupe's changelog write) the loop
//! asks [`Fence::before_write`]:
//! - past the batch's wall-time budget, the batch is abandoned: its
//!   partitions are restored and read again, and nothing more is written;
//! - when the group told the consumer that its assignment was lost, the
//!   batch is abandoned;
//! - when the last poll is older than `recheck_after`, the instance first
//!   asks the group coordinator (a synchronous commit of offsets it already
//!   owns, which the coordinator refuses from a member it replaced).
//!
//! The producer's `message.timeout.ms` is below the budget, so a record
//! queued before a stall fails rather than landing after the group moved
//! its partition. This makes the output-first mode exactly-once for a
//! single writer per partition; the window that remains (a stall between
//! the last check and the hand-over of a record to the producer) is closed
//! only by broker transactions (dedupe's `transactions = "required"`).
//!
//! Dedupe and the state writer both write output-first and fence the same
//! way; the bounds that make it work (budget, delivery timeout, recheck)
//! are [`super::FencingSettings`], and the coordinator recheck is
//! [`super::check_ownership`].

use std::time::{Duration, Instant};

/// What the loop must do before a write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BeforeWrite {
    /// Write.
    Proceed,
    /// Ask the coordinator first ([`Fence::confirmed`] on success).
    Recheck,
    /// Abandon the batch.
    Abandon(Abandon),
}

/// Why a batch is abandoned, or a repeatable write stops retrying.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Abandon {
    /// The batch ran past its budget.
    #[error("the write ran past the batch's wall-time budget; it is redone after a restore")]
    OverBudget,
    /// The group took the partitions away.
    #[error("this instance no longer owns its partitions; the write is left to the new owner")]
    Lost,
}

impl Abandon {
    /// How the reason is logged.
    pub fn describe(self) -> &'static str {
        match self {
            Self::OverBudget => "the batch ran past its wall-time budget",
            Self::Lost => "the consumer group no longer assigns its partitions here",
        }
    }
}

/// The fencing state of one batch.
#[derive(Debug, Clone, Copy)]
pub struct Fence {
    started: Instant,
    budget: Duration,
    recheck_after: Duration,
    /// The last proof of ownership: the last poll, or the last recheck.
    owned_at: Instant,
}

impl Fence {
    /// A batch whose first record was read at `started`, after a poll at
    /// `polled_at`.
    pub fn new(
        started: Instant,
        polled_at: Instant,
        budget: Duration,
        recheck_after: Duration,
    ) -> Self {
        Self {
            started,
            budget,
            recheck_after,
            owned_at: polled_at,
        }
    }

    /// The decision at `now`; `assignment_lost` is the consumer's own view.
    pub fn before_write(&self, now: Instant, assignment_lost: bool) -> BeforeWrite {
        if assignment_lost {
            return BeforeWrite::Abandon(Abandon::Lost);
        }
        if now.saturating_duration_since(self.started) > self.budget {
            return BeforeWrite::Abandon(Abandon::OverBudget);
        }
        if now.saturating_duration_since(self.owned_at) > self.recheck_after {
            return BeforeWrite::Recheck;
        }
        BeforeWrite::Proceed
    }

    /// Whether a repeatable write (changelog, tombstones) may try again at
    /// `now`: not once the partitions are lost (a late tombstone would make
    /// the new owner forget a key) nor past the budget (retrying longer
    /// would keep the loop from polling past `max.poll.interval.ms`).
    pub fn may_retry(&self, now: Instant, assignment_lost: bool) -> Result<(), Abandon> {
        match self.before_write(now, assignment_lost) {
            BeforeWrite::Abandon(reason) => Err(reason),
            BeforeWrite::Proceed | BeforeWrite::Recheck => Ok(()),
        }
    }

    /// The coordinator confirmed ownership at `at`.
    pub fn confirmed(&mut self, at: Instant) {
        self.owned_at = at;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BUDGET: Duration = Duration::from_secs(8);
    const RECHECK: Duration = Duration::from_secs(1);

    #[test]
    fn a_fresh_batch_writes_and_a_slow_one_rechecks_then_is_abandoned() {
        let start = Instant::now();
        let mut fence = Fence::new(start, start, BUDGET, RECHECK);
        assert_eq!(fence.before_write(start, false), BeforeWrite::Proceed);
        let later = start + Duration::from_millis(1500);
        assert_eq!(fence.before_write(later, false), BeforeWrite::Recheck);
        fence.confirmed(later);
        assert_eq!(fence.before_write(later, false), BeforeWrite::Proceed);
        assert_eq!(
            fence.before_write(start + Duration::from_secs(9), false),
            BeforeWrite::Abandon(Abandon::OverBudget)
        );
    }

    #[test]
    fn a_stall_past_the_session_timeout_is_caught_by_the_budget() {
        // Paused right after the poll for 30 s: whatever the recheck says,
        // the batch is over its budget and writes nothing.
        let start = Instant::now();
        let fence = Fence::new(start, start, BUDGET, RECHECK);
        assert_eq!(
            fence.before_write(start + Duration::from_secs(30), false),
            BeforeWrite::Abandon(Abandon::OverBudget)
        );
    }

    #[test]
    fn a_repeatable_write_retries_within_the_budget_while_owned() {
        let start = Instant::now();
        let fence = Fence::new(start, start, BUDGET, RECHECK);
        assert_eq!(
            fence.may_retry(start + Duration::from_secs(5), false),
            Ok(())
        );
        assert_eq!(
            fence.may_retry(start + Duration::from_secs(9), false),
            Err(Abandon::OverBudget)
        );
        assert_eq!(fence.may_retry(start, true), Err(Abandon::Lost));
    }

    #[test]
    fn a_lost_assignment_abandons_at_once() {
        let start = Instant::now();
        let fence = Fence::new(start, start, BUDGET, RECHECK);
        assert_eq!(
            fence.before_write(start, true),
            BeforeWrite::Abandon(Abandon::Lost)
        );
    }
}
