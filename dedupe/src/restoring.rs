//! Dedupe's side of restoring pending partitions: what a restore reads
//! ([`crate::restore::restore_partition`]: the changelog, then the
//! output's tail) and what is done with it before the partition resumes
//! (the changelog records the restore found missing are written). The
//! driving (pausing, polling meanwhile, tickets, resuming at the committed
//! offset) is the shared [`common::stage_loop::restore_pending`].

use std::time::Instant;

use common::produce::OutRecord;
use common::stage_loop::{Restored, restore_pending};
use rdkafka::consumer::Consumer;

use crate::changelog::SeenRecord;
use crate::restore::{self, restore_partition};
use crate::runner::Deduper;
use crate::state::PartitionState;

impl Deduper {
    /// Restores every pending partition still assigned here, then resumes
    /// every assigned partition that has its state.
    pub(crate) fn restore_pending(&self) -> anyhow::Result<()> {
        let restoring = self
            .co
            .restoring(&self.cancel, &self.metrics.stage.liveness);
        let kafka = self.kafka.clone();
        let (seen, events) = (self.writer.seen_topic.clone(), self.events_topic.clone());
        restore_pending(
            &restoring,
            "dedupe-restore",
            move |partition, progress| {
                restore_partition(&kafka, &seen, &events, partition, progress)
            },
            |partition, restored| self.prepare(partition, restored),
        )
    }

    /// Writes the changelog records a restore found missing; `None` when
    /// they cannot be written now (the partition is restored again). The
    /// partition then resumes at its committed offset: what was forwarded
    /// past it is dropped as `AlreadyForwarded`.
    fn prepare(
        &self,
        partition: i32,
        restored: restore::Restored,
    ) -> Option<Restored<PartitionState>> {
        let mut state = restored.state;
        let records: Vec<OutRecord> = restored
            .recovered
            .iter()
            .map(|r| {
                let seen = SeenRecord {
                    first_seen_ms: r.seen_ms,
                    output_offset: r.output_offset,
                    source_offset: r.source_offset,
                };
                self.writer.changelog_record(partition, &r.key, seen)
            })
            .collect();
        if !records.is_empty() {
            tracing::info!(
                partition,
                count = records.len(),
                "writing changelog records missing after a crash"
            );
            let fence = self.repeatable_write_fence();
            if let Err(e) = self.writer.in_transaction(None, || {
                self.writer
                    .send_repeatable("recovered changelog write", &records, &|| {
                        fence.may_retry(Instant::now(), self.co.consumer.assignment_lost())
                    })
            }) {
                tracing::warn!(partition, error = %e, "cannot write recovered changelog records; retrying the restore");
                return None;
            }
            for r in &restored.recovered {
                state.covered_output(r.output_offset);
            }
        }
        tracing::info!(
            partition,
            keys = state.len(),
            changelog_records = restored.changelog_records,
            recovered = restored.recovered.len(),
            forwarded_through = state.forwarded_through,
            "dedupe state read back"
        );
        Some(Restored {
            state,
            done_through: None,
        })
    }
}
