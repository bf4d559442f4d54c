//! Restoring the state writer's pending partitions: what a restore of
//! input partition P reads (the same partition of `properties.latest`,
//! from its beginning to the end offset observed when it starts, each
//! value decoded with its writer schema) and folds ([`crate::restore`]),
//! and where P resumes: past the mark, or at the committed offset when
//! that is further. The driving (pausing, polling meanwhile so the member
//! stays in its group, tickets against stale restores, resuming) is the
//! shared [`common::stage_loop::restore_pending`], outside the rebalance
//! callback.
//!
//! A read fails only when it stops making progress
//! ([`common::stage_loop::read_to_end`]); a registry that cannot give a
//! record's writer schema fails the restore too, which is retried (the
//! value is never taken for no state because the registry is down).

use anyhow::Context as _;
use common::headers;
use common::kafka::{KafkaSettings, header_str};
use common::stage_loop::{Progress, Restored, read_to_end, restore_pending};
use rdkafka::consumer::BaseConsumer;
use rdkafka::{Message, Offset};
use schemas::writer_schemas::Decoded;

use crate::registry::Schemas;
use crate::restore::{Record, Restore, Value};
use crate::runner::StateWriter;
use crate::state::PartitionState;

impl StateWriter {
    /// Restores every pending partition still assigned here, then resumes
    /// every assigned partition that has its state.
    pub(crate) fn restore_pending(&self) -> anyhow::Result<()> {
        let restoring = self
            .co
            .restoring(&self.cancel, &self.metrics.stage.liveness);
        let kafka = self.kafka.clone();
        let topic = self.writer.topic.clone();
        let schemas = self.schemas.clone();
        restore_pending(
            &restoring,
            "state-restore",
            move |partition, progress| {
                restore_partition(&kafka, &topic, &schemas, partition, progress)
            },
            |partition, restore| Some(self.resume(partition, restore)),
        )
    }

    /// Logs and counts a finished restore; the partition resumes past its
    /// mark.
    fn resume(&self, partition: i32, restore: Restore) -> Restored<PartitionState> {
        self.metrics.unreadable_states.inc_by(restore.unreadable);
        if restore.unreadable > 0 {
            tracing::warn!(
                partition,
                unreadable = restore.unreadable,
                "records on properties.latest that are no state of the state writer's \
                 (another producer's, or values that do not decode): a foreign one is \
                 ignored, an own one rebuilds its key from the events that follow; \
                 nothing but the state writer may write to properties.latest"
            );
        }
        tracing::info!(
            partition,
            properties = restore.state.len(),
            records = restore.records,
            unreadable = restore.unreadable,
            mark = restore.state.mark,
            "property states read back"
        );
        let done_through = restore.state.mark;
        Restored {
            state: restore.state,
            done_through,
        }
    }
}

/// Reads `partition` of `latest_topic` to its end and folds it.
pub(crate) fn restore_partition(
    kafka: &KafkaSettings,
    latest_topic: &str,
    schemas: &Schemas,
    partition: i32,
    progress: &dyn Fn(&str, Progress),
) -> anyhow::Result<Restore> {
    let reader: BaseConsumer = kafka
        .reader()
        .create()
        .context("cannot create a restore reader")?;
    let mut restore = Restore::default();
    read_to_end(
        &reader,
        latest_topic,
        partition,
        Offset::Beginning,
        progress,
        |message| {
            let key = message.key().and_then(|k| std::str::from_utf8(k).ok());
            let source_offset =
                header_str(message, headers::SOURCE_OFFSET).and_then(|v| v.parse().ok());
            let value = match message.payload() {
                None => Value::Tombstone,
                Some(bytes) => match schemas.state(bytes) {
                    Decoded::Value(state) => Value::State(state),
                    Decoded::Fault(reason) => {
                        // Without a source offset: what dedupe wrote there
                        // before the state writer (an event), expected once
                        // per key after an upgrade.
                        if source_offset.is_some() {
                            tracing::error!(partition, offset = message.offset(), key, %reason,
                                "a state record does not decode; its property is rebuilt from the events that follow");
                        } else {
                            tracing::debug!(partition, offset = message.offset(), key, %reason,
                                "a record that is no state (a legacy copy of an event) is ignored");
                        }
                        Value::Unreadable(reason)
                    }
                    Decoded::Unavailable { schema_id, reason } => anyhow::bail!(
                        "the schema registry cannot give writer schema {schema_id} of \
                         {latest_topic}/{partition} at offset {}: {reason}",
                        message.offset()
                    ),
                },
            };
            restore.apply(Record {
                key,
                value,
                source_offset,
            });
            Ok(())
        },
    )?;
    Ok(restore)
}
