//! Expiry: keys past the TTL are forgotten and tombstoned in the same
//! changelog partition, so the compacted `dedupe.seen` topic stays bounded.
//! Tombstones are repeatable writes: they are retried within one batch
//! budget ([`common::stage_loop::Fence::may_retry`]) and, when given up, are
//! written again by whoever restores those keys next.

use std::time::Instant;

use rdkafka::consumer::Consumer;

use crate::runner::{Deduper, now_ms};
use common::stage_loop::{Abandon, Fence};

impl Deduper {
    /// The fence of a repeatable write that starts now (tombstones, a
    /// restore's recovered changelog): it retries within one batch budget,
    /// so the loop is back to polling well within `max.poll.interval.ms`.
    pub(crate) fn repeatable_write_fence(&self) -> Fence {
        self.co.fence_from_now()
    }

    /// Forgets keys past the TTL and writes their tombstones to the same
    /// changelog partition, so the compacted topic stays bounded. If the
    /// writes fail the keys are restored from the changelog at the next start
    /// and expire again.
    pub(crate) fn sweep_expired(&self) -> anyhow::Result<()> {
        let now = now_ms();
        let tombstones: Vec<_> = self
            .co
            .partitions
            .states()
            .iter_mut()
            .flat_map(|(partition, state)| {
                let partition = *partition;
                state
                    .expire(now, self.ttl_ms)
                    .into_iter()
                    .map(move |key| (partition, key))
            })
            .map(|(partition, key)| self.writer.tombstone(partition, &key))
            .collect();
        if tombstones.is_empty() {
            return Ok(());
        }
        let fence = self.repeatable_write_fence();
        let may_retry = || fence.may_retry(Instant::now(), self.co.consumer.assignment_lost());
        let written = self.writer.in_transaction(None, || {
            self.writer
                .send_repeatable("tombstone write", &tombstones, &may_retry)
        });
        if let Err(e) = written {
            if e.is::<Abandon>() {
                // Whoever restores these keys next (the new owner, or this
                // instance after a restart) expires them again.
                tracing::warn!(keys = tombstones.len(), "{e}");
                return Ok(());
            }
            return Err(e);
        }
        self.metrics.expired.inc_by(tombstones.len() as u64);
        tracing::info!(
            keys = tombstones.len(),
            "expired keys forgotten and tombstoned"
        );
        Ok(())
    }
}
