//! Restoring pending partitions outside the rebalance callback.
//!
//! A partition is pending when it was just assigned or when a batch on it
//! was abandoned; it stays paused until its state is back. The loop calls
//! [`Deduper::restore_pending`] before each batch: it pauses every assigned
//! partition, restores the pending ones on a thread of their own
//! ([`crate::restore::restore_partition`], whose reads fail only when they
//! stop making progress), and keeps polling meanwhile, so the consumer
//! stays in its group (`max.poll.interval.ms`) and rebalance callbacks run.
//! Progress is logged and counts as the loop's progress on `/health`. Each
//! restored partition gets the changelog records the restore found missing,
//! is moved back to its committed offset (a batch abandoned on it is read
//! again) and resumed. A failed restore is retried at the next call.

use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::produce::OutRecord;
use rdkafka::consumer::Consumer;
use rdkafka::{Message, Offset, TopicPartitionList};

use crate::changelog::SeenRecord;
use crate::restore::{Progress, Restored, restore_partition};
use crate::runner::Deduper;

/// What the restore thread reports.
enum Report {
    Progress(i32, String, Progress),
    Done(i32, anyhow::Result<Restored>),
}

impl Deduper {
    /// Restores every pending partition still assigned here, then resumes
    /// every assigned partition that has its state.
    pub(crate) fn restore_pending(&self) -> anyhow::Result<()> {
        if self.partitions.pending().is_empty() {
            return Ok(());
        }
        let assigned = self.assigned()?;
        let pending: Vec<i32> = {
            let mut pending = self.partitions.pending();
            pending.retain(|p| assigned.contains(p));
            pending.iter().copied().collect()
        };
        if pending.is_empty() {
            return Ok(());
        }
        let all = self.partition_list(&assigned)?;
        self.consumer.pause(&all)?;
        tracing::info!(?pending, "restoring partition state");
        let (tx, rx) = mpsc::channel();
        let kafka = self.kafka.clone();
        let (seen, events) = (self.writer.seen_topic.clone(), self.events_topic.clone());
        let tickets: Vec<_> = pending
            .iter()
            .map(|&p| (p, self.partitions.ticket(p)))
            .collect();
        let to_restore = pending.clone();
        let _thread = std::thread::Builder::new()
            .name("dedupe-restore".into())
            .spawn(move || {
                for partition in to_restore {
                    let progress_tx = tx.clone();
                    let report = move |topic: &str, progress: Progress| {
                        let _ = progress_tx.send(Report::Progress(
                            partition,
                            topic.to_string(),
                            progress,
                        ));
                    };
                    let result = restore_partition(&kafka, &seen, &events, partition, &report);
                    if tx.send(Report::Done(partition, result)).is_err() {
                        return;
                    }
                }
            })?;
        let mut left = pending.len();
        // Progress is records read: a read that is stuck still reports
        // every few seconds, and a failed restore is no progress either.
        let mut last_read: std::collections::HashMap<(i32, String), u64> =
            std::collections::HashMap::new();
        while left > 0 && !self.cancel.is_cancelled() {
            if let Some(Ok(message)) = self.consumer.poll(Duration::from_millis(100)) {
                // Fetched before the pause: read it again later, or, if the
                // consumer cannot move back, restore that partition too
                // (which moves it back to its committed offset).
                let partition = message.partition();
                if let Err(e) = self.consumer.seek(
                    message.topic(),
                    partition,
                    Offset::Offset(message.offset()),
                    Duration::from_secs(5),
                ) {
                    tracing::warn!(partition, error = %e, "cannot move back; restoring the partition");
                    self.partitions.reset([partition]);
                }
            }
            while let Ok(report) = rx.try_recv() {
                match report {
                    Report::Progress(partition, topic, Progress { read, total }) => {
                        tracing::info!(partition, topic, read, total, "restoring");
                        let before = last_read.insert((partition, topic), read);
                        if before.is_none_or(|before| read > before) {
                            self.metrics.stage.liveness.progressed();
                        }
                    }
                    Report::Done(partition, result) => {
                        left -= 1;
                        if result.is_ok() {
                            self.metrics.stage.liveness.progressed();
                        }
                        match result {
                            Ok(restored) => {
                                let ticket = tickets.iter().find(|(p, _)| *p == partition);
                                match ticket {
                                    Some(&(_, ticket))
                                        if self.partitions.is_current(partition, ticket) =>
                                    {
                                        self.install(partition, restored)?
                                    }
                                    _ => tracing::info!(
                                        partition,
                                        "restore result dropped: the partition was revoked or \
                                         reset while it ran"
                                    ),
                                }
                            }
                            Err(e) => {
                                tracing::warn!(partition, error = %e, "restore failed; retrying")
                            }
                        }
                    }
                }
            }
        }
        let ready: Vec<i32> = {
            let states = self.partitions.states();
            assigned
                .iter()
                .copied()
                .filter(|p| states.contains_key(p))
                .collect()
        };
        self.consumer.resume(&self.partition_list(&ready)?)?;
        if !self.partitions.pending().is_empty() {
            let _ = self.cancel.sleep_blocking(Duration::from_secs(1));
        }
        Ok(())
    }

    /// Writes the changelog records a restore found missing, moves the
    /// partition back to its committed offset and installs its state (the
    /// caller checked that the restore is current).
    fn install(&self, partition: i32, restored: Restored) -> anyhow::Result<()> {
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
                        fence.may_retry(Instant::now(), self.consumer.assignment_lost())
                    })
            }) {
                tracing::warn!(partition, error = %e, "cannot write recovered changelog records; retrying the restore");
                return Ok(());
            }
            for r in &restored.recovered {
                state.covered_output(r.output_offset);
            }
        }
        let committed = self
            .consumer
            .committed_offsets(self.partition_list(&[partition])?, Duration::from_secs(10));
        let offset = match committed.map(|tpl| tpl.elements().first().map(|e| e.offset())) {
            Ok(Some(Offset::Offset(o))) => Offset::Offset(o),
            Ok(_) => Offset::Beginning,
            Err(e) => {
                tracing::warn!(partition, error = %e, "cannot read the committed offset; retrying the restore");
                return Ok(());
            }
        };
        if let Err(e) = self.consumer.seek(
            &self.input_topic,
            partition,
            offset,
            Duration::from_secs(10),
        ) {
            tracing::warn!(partition, error = %e, "cannot move back to the committed offset; retrying the restore");
            return Ok(());
        }
        tracing::info!(
            partition,
            keys = state.len(),
            changelog_records = restored.changelog_records,
            recovered = restored.recovered.len(),
            forwarded_through = state.forwarded_through,
            "partition state restored"
        );
        let _ = self.partitions.states().insert(partition, state);
        let _ = self.partitions.pending().remove(&partition);
        Ok(())
    }

    /// The input partitions assigned here now.
    pub(crate) fn assigned(&self) -> anyhow::Result<Vec<i32>> {
        Ok(self
            .consumer
            .assignment()?
            .elements()
            .iter()
            .filter(|e| e.topic() == self.input_topic)
            .map(|e| e.partition())
            .collect())
    }

    /// `partitions` of the input topic as a list.
    pub(crate) fn partition_list(&self, partitions: &[i32]) -> anyhow::Result<TopicPartitionList> {
        let mut tpl = TopicPartitionList::new();
        for &p in partitions {
            let _ = tpl.add_partition(&self.input_topic, p);
        }
        Ok(tpl)
    }
}
