//! The sink's consumer context: on assignment, each partition is positioned
//! at the offset the database stores for it (retried until PostgreSQL
//! answers or the stage stops); on revocation, the protocol's
//! [`WriteBehind::revoke_step`] is carried out (the batch in flight
//! committed, then the revoked partitions' pending records) before the
//! partitions are released. It also holds what the loop and the callback
//! share.

use std::collections::HashMap;
use std::sync::Mutex;

use common::stage_loop::{Cancel, RetryPolicy, Verdict};
use rdkafka::Offset;
use rdkafka::client::ClientContext;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext};
use rdkafka::topic_partition_list::TopicPartitionList;
use rdkafka::types::RDKafkaRespErr;
use tokio::runtime::Handle;

use crate::store::{PostgresSink, Sink};
use crate::write_behind::WriteBehind;
use crate::writer_thread::{WriterHandle, drive, lock};

/// What the consumer loop and its rebalance callback share.
pub(crate) struct Shared {
    /// The write-behind protocol.
    pub(crate) core: Mutex<WriteBehind>,
    /// The writer thread.
    pub(crate) writer: WriterHandle,
    /// A connection of its own for reading the stored offsets.
    pub(crate) offsets: Mutex<PostgresSink>,
    pub(crate) runtime: Handle,
    pub(crate) cancel: Cancel,
    pub(crate) group: String,
    pub(crate) topic: String,
}

/// The consumer context.
pub(crate) struct SinkContext {
    pub(crate) shared: std::sync::Arc<Shared>,
}

impl ClientContext for SinkContext {}

impl ConsumerContext for SinkContext {
    fn rebalance(
        &self,
        consumer: &BaseConsumer<Self>,
        err: RDKafkaRespErr,
        tpl: &mut TopicPartitionList,
    ) {
        let shared = &self.shared;
        let partitions: Vec<i32> = tpl.elements().iter().map(|e| e.partition()).collect();
        if err == RDKafkaRespErr::RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS {
            let Some(stored) = shared.stored_offsets() else {
                return;
            };
            for partition in &partitions {
                if let Some(next) = stored.get(partition)
                    && let Err(e) =
                        tpl.set_partition_offset(&shared.topic, *partition, Offset::Offset(*next))
                {
                    tracing::error!(partition, error = %e, "cannot position partition");
                }
            }
            tracing::info!(
                ?partitions,
                ?stored,
                "partitions assigned at the database's offsets"
            );
            if let Err(e) = consumer.assign(tpl) {
                tracing::error!(error = %e, "assign failed");
            }
            // A partition paused by an earlier owner's hold starts afresh.
            let _ = consumer.resume(tpl);
            return;
        }
        if err != RDKafkaRespErr::RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS {
            tracing::error!(error = ?err, "rebalance error; releasing partitions");
        }
        let committed = drive(&shared.core, &shared.writer, |wb| {
            wb.revoke_step(&partitions)
        });
        lock(&shared.core).release(&partitions);
        commit_advisory(consumer, &shared.topic, &committed);
        tracing::info!(?partitions, "partitions revoked after flushing");
        if let Err(e) = consumer.unassign() {
            tracing::error!(error = %e, "unassign failed");
        }
    }
}

impl Shared {
    /// The database's offsets, retried until PostgreSQL answers; `None`
    /// when the stage stops first.
    fn stored_offsets(&self) -> Option<HashMap<i32, i64>> {
        let mut store = lock(&self.offsets);
        RetryPolicy::UNTIL_STOPPED
            .run_blocking(&self.cancel, "reading the stored offsets", |_| {
                self.runtime
                    .block_on(store.stored_offsets(&self.group, &self.topic))
                    .map_err(|e| Verdict::Retry(format!("{e:#}")))
            })
            .ok()
    }
}

/// Commits the database's offsets to Kafka too. Advisory only, for lag
/// monitoring: the offsets in the database are the ones that count.
pub(crate) fn commit_advisory<C: ConsumerContext>(
    consumer: &BaseConsumer<C>,
    topic: &str,
    committed: &HashMap<i32, i64>,
) {
    if committed.is_empty() {
        return;
    }
    let mut tpl = TopicPartitionList::new();
    for (partition, next) in committed {
        let _ = tpl.add_partition_offset(topic, *partition, Offset::Offset(*next));
    }
    let _ = consumer.commit(&tpl, CommitMode::Async);
}

/// Pauses (or resumes) fetching from `partition` of `topic`.
pub(crate) fn set_paused<C: ConsumerContext>(
    consumer: &BaseConsumer<C>,
    topic: &str,
    partition: i32,
    pause: bool,
) {
    let mut tpl = TopicPartitionList::new();
    let _ = tpl.add_partition(topic, partition);
    let result = if pause {
        consumer.pause(&tpl)
    } else {
        consumer.resume(&tpl)
    };
    if let Err(e) = result {
        tracing::warn!(partition, pause, error = %e, "cannot change the partition's fetch state");
    }
}
