//! [`WriteBehind`]: the sink's write-behind protocol as a value with no IO.
//! The runner asks it what to do next ([`Step`]) and tells it what
//! happened; every rule of the exactly-once argument in
//! [`crate::runner`] is one method here:
//!
//! - **One batch in flight.** [`WriteBehind::step`] hands the pending
//!   batch to the writer only when no batch is in flight; a batch that is
//!   due while one is in flight waits for its outcome first ([`Step::Collect`]).
//! - **A failed commit is never skipped.** After a batch the writer could
//!   not commit ([`Written::Interrupted`]: the stage is stopping, or the
//!   writer is gone), nothing later is handed over: a later batch of the
//!   same partitions would store offsets past the failed records. The
//!   records are read again from the stored offsets.
//! - **Revocation.** [`WriteBehind::revoke_step`] waits for the batch in
//!   flight, then writes the revoked partitions' pending records, before the
//!   runner releases them; [`WriteBehind::release`] forgets their holds.
//! - **Stop.** [`WriteBehind::stop_step`] waits for the batch in flight and
//!   writes what is pending, unless a commit failed.
//! - **Hold, never skip.** A record that cannot be decoded for a reason that
//!   is not its own (the registry) is held: [`WriteBehind::hold`] pauses its
//!   partition at its offset, no later record of that partition is taken
//!   ([`WriteBehind::admit`]), so no commit moves past it; the runner
//!   retries when [`WriteBehind::retries_due`] says so, and
//!   [`WriteBehind::resume_at`] takes the partition up again from exactly
//!   that record.

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use common::kafka::BatchSettings;
use common::stage_loop::{BatchWindow, RetryPolicy};
use rdkafka::message::OwnedMessage;

use crate::batch::Batch;
use crate::rows::{EventToWrite, Position};
use schemas::PropertyEvent;
use schemas::writer_schemas::Decoded;

/// How often the consumer looks whether a busy writer is done.
const WRITER_CHECK: Duration = Duration::from_millis(2);

/// What the runner does next.
#[derive(Debug)]
pub enum Step {
    /// Nothing to hand over now: poll again.
    Poll,
    /// Wait for the writer's outcome of the batch in flight, then ask again.
    Collect,
    /// Hand this batch to the writer (it is now in flight), then ask again.
    Write(Batch),
    /// Nothing more to do (for a revocation or a stop: release; for the
    /// loop: a commit failed, stop the stage).
    Done,
}

/// The writer's outcome for one batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Written {
    /// Committed: partition → next offset now stored.
    Committed(HashMap<i32, i64>),
    /// Not committed (the stage is stopping, or the writer is gone).
    Interrupted,
}

/// What became of one consumed record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Next {
    /// Taken into the pending batch.
    Taken,
    /// The event's own fault: dead-letter it with this reason, then (once
    /// Kafka acknowledged it) [`WriteBehind::dead_lettered`].
    DeadLetter(String),
    /// Not the event's fault: its partition is held at it. `newly`: the
    /// runner pauses the partition.
    Held {
        /// The partition was not held before.
        newly: bool,
        /// Why.
        reason: String,
    },
}

/// A partition paused at a record it could not decode yet.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Held {
    offset: i64,
    /// The writer schema it waits for (`None`: held until the stop, its
    /// dead letter unacknowledged).
    schema_id: Option<u32>,
    attempts: u32,
    retry_at: Instant,
}

/// The write-behind protocol's state.
#[derive(Debug)]
pub struct WriteBehind {
    settings: BatchSettings,
    window: BatchWindow,
    pending: Batch,
    /// The offsets of the batch on the writer, until its outcome is collected.
    in_flight: Option<HashMap<i32, i64>>,
    held: BTreeMap<i32, Held>,
    /// Partition → the offset its next record must have (after a hold).
    resuming: BTreeMap<i32, i64>,
    failed: bool,
    retry: RetryPolicy,
}

impl WriteBehind {
    /// An empty protocol batching by `settings`, retrying holds by `retry`.
    pub fn new(settings: BatchSettings, retry: RetryPolicy) -> Self {
        Self {
            window: BatchWindow::new(&settings),
            settings,
            pending: Batch::default(),
            in_flight: None,
            held: BTreeMap::new(),
            resuming: BTreeMap::new(),
            failed: false,
            retry,
        }
    }

    /// Whether a record read at `partition`/`offset` is to be processed:
    /// not while its partition is held, and after a hold only from the held
    /// record on (records fetched before the seek are ignored).
    pub fn admit(&mut self, partition: i32, offset: i64) -> bool {
        if self.held.contains_key(&partition) || self.failed {
            return false;
        }
        match self.resuming.get(&partition) {
            Some(&at) if offset != at => false,
            Some(_) => {
                let _ = self.resuming.remove(&partition);
                true
            }
            None => true,
        }
    }

    /// Decides what becomes of a record read at `position` from its
    /// decoding: a valid event is taken; a broken value is to be
    /// dead-lettered; a value whose writer schema cannot be had now holds
    /// the partition at it (never a dead letter, never a commit past it).
    pub fn record(
        &mut self,
        position: Position,
        decoded: Decoded<PropertyEvent>,
        original: OwnedMessage,
        span: tracing::Span,
        now: Instant,
    ) -> Next {
        match decoded {
            Decoded::Value(event) => {
                let event = EventToWrite {
                    event: *event,
                    position,
                };
                self.take(event, original, span, now);
                Next::Taken
            }
            Decoded::Fault(reason) => Next::DeadLetter(reason),
            Decoded::Unavailable { schema_id, reason } => Next::Held {
                newly: self.hold(position.partition, position.offset, Some(schema_id), now),
                reason,
            },
        }
    }

    /// Takes a decoded event into the pending batch.
    pub fn take(
        &mut self,
        event: EventToWrite,
        original: OwnedMessage,
        span: tracing::Span,
        now: Instant,
    ) {
        self.window.push(now);
        self.pending.push(event, original, span, now);
    }

    /// The outcome of a record's dead letter: once Kafka acknowledged it,
    /// the record needs no row and the batch moves past it; if the stage
    /// stopped first, its partition is held at it, so no commit moves past
    /// a dead letter that was never written.
    pub fn dead_lettered(
        &mut self,
        partition: i32,
        offset: i64,
        acknowledged: bool,
        span: tracing::Span,
        now: Instant,
    ) {
        if acknowledged {
            self.window.push(now);
            self.pending.advance(partition, offset, span, now);
        } else {
            let _ = self.hold(partition, offset, None, now);
        }
    }

    /// Holds `partition` at the record at `offset`, which needs writer
    /// schema `schema_id` (its first retry after the policy's first delay;
    /// `None`: no retry, the stage is stopping). True when the partition
    /// was not held yet: the runner pauses it.
    pub fn hold(
        &mut self,
        partition: i32,
        offset: i64,
        schema_id: Option<u32>,
        now: Instant,
    ) -> bool {
        if self.held.contains_key(&partition) {
            return false;
        }
        let _ = self.resuming.remove(&partition);
        let retry_at = now + self.retry.delay(1);
        let _ = self.held.insert(
            partition,
            Held {
                offset,
                schema_id,
                attempts: 1,
                retry_at,
            },
        );
        true
    }

    /// Whether any partition is held (the loop then reports no progress
    /// while idle, so a wedged partition with lag turns `/health` 503).
    pub fn any_held(&self) -> bool {
        !self.held.is_empty()
    }

    /// The held partitions whose retry is due at `now`, with the writer
    /// schema each waits for.
    pub fn retries_due(&self, now: Instant) -> Vec<(i32, u32)> {
        self.held
            .iter()
            .filter(|(_, h)| h.retry_at <= now)
            .filter_map(|(p, h)| Some((*p, h.schema_id?)))
            .collect()
    }

    /// A retry of `partition` failed at `now`: the next one after a longer
    /// backoff. Returns the attempts so far.
    pub fn retry_failed(&mut self, partition: i32, now: Instant) -> u32 {
        let retry = self.retry;
        self.held.get_mut(&partition).map_or(0, |held| {
            held.attempts += 1;
            held.retry_at = now + retry.delay(held.attempts);
            held.attempts
        })
    }

    /// The offset to seek `partition` to before resuming it (its held record).
    pub fn held_offset(&self, partition: i32) -> Option<i64> {
        self.held.get(&partition).map(|h| h.offset)
    }

    /// The runner sought `partition` back to its held record and resumes
    /// it: from now on its records are taken again, from exactly that one.
    pub fn resume_at(&mut self, partition: i32) {
        if let Some(held) = self.held.remove(&partition) {
            let _ = self.resuming.insert(partition, held.offset);
        }
    }

    /// How long the next poll may wait at `now`: idle while nothing is
    /// pending; not at all while the writer is free (a batch goes as soon
    /// as nothing more waits); briefly while the writer is busy.
    pub fn poll_wait(&self, now: Instant) -> Duration {
        let left = self.window.next_wait(now).unwrap_or(Duration::ZERO);
        if self.pending.is_empty() {
            left
        } else if self.in_flight.is_none() {
            Duration::ZERO
        } else {
            left.min(WRITER_CHECK)
        }
    }

    /// What the loop does next at `now`; `nothing_waiting` when the last
    /// poll found no record. A batch is due when it is full or old enough,
    /// or as soon as the writer is free and nothing more waits.
    pub fn step(&mut self, now: Instant, nothing_waiting: bool) -> Step {
        if self.failed {
            return Step::Done;
        }
        if self.pending.is_empty() {
            return Step::Poll;
        }
        let full_or_old = self.window.next_wait(now).is_none();
        if !(full_or_old || self.in_flight.is_none() && nothing_waiting) {
            return Step::Poll;
        }
        if self.in_flight.is_some() {
            return Step::Collect;
        }
        self.hand_over(std::mem::take)
    }

    /// What a revocation of `partitions` does next: wait for the batch in
    /// flight, then write the partitions' pending records, then release.
    pub fn revoke_step(&mut self, partitions: &[i32]) -> Step {
        if self.in_flight.is_some() {
            return Step::Collect;
        }
        if self.failed {
            return Step::Done;
        }
        let batch = self.pending.take_partitions(partitions);
        if batch.is_empty() {
            return Step::Done;
        }
        self.hand_over(|_| batch)
    }

    /// What a stop does next: wait for the batch in flight, then write
    /// what is pending (unless a commit failed), then stop.
    pub fn stop_step(&mut self) -> Step {
        if self.in_flight.is_some() {
            return Step::Collect;
        }
        if self.failed || self.pending.is_empty() {
            return Step::Done;
        }
        self.hand_over(std::mem::take)
    }

    fn hand_over(&mut self, take: impl FnOnce(&mut Batch) -> Batch) -> Step {
        let batch = take(&mut self.pending);
        if self.pending.is_empty() {
            self.window = BatchWindow::new(&self.settings);
        }
        self.in_flight = Some(batch.next_offsets.clone());
        Step::Write(batch)
    }

    /// Forgets the holds of revoked `partitions` (the next owner reads them
    /// from the stored offsets).
    pub fn release(&mut self, partitions: &[i32]) {
        self.held.retain(|p, _| !partitions.contains(p));
        self.resuming.retain(|p, _| !partitions.contains(p));
    }

    /// The writer's outcome for the batch in flight. Returns the offsets it
    /// committed (for the advisory Kafka commit). After
    /// [`Written::Interrupted`], nothing more is handed over and what is
    /// pending is dropped: it is read again from the stored offsets.
    pub fn written(&mut self, outcome: Written) -> Option<HashMap<i32, i64>> {
        self.in_flight = None;
        match outcome {
            Written::Committed(offsets) => Some(offsets),
            Written::Interrupted => {
                self.failed = true;
                self.pending = Batch::default();
                None
            }
        }
    }

    /// Whether a commit failed (the stage must stop; a restart reads the
    /// records again).
    pub fn failed(&self) -> bool {
        self.failed
    }
}

#[cfg(test)]
mod tests;
