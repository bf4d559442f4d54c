//! [`PausingContext`]: the rebalance callback of an output-first stage.
//! It never restores (a restore can take minutes on a large topic, and the
//! callback runs inside `poll`): on assignment it pauses the new
//! partitions and marks them pending in [`Partitions`]; the loop restores
//! them outside the callback ([`super::restore_pending`]) and resumes them.
//! On revocation their state is dropped at once, so no record of a
//! partition that is no longer ours is decided or written here.

use std::sync::Arc;

use rdkafka::client::ClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext};
use rdkafka::topic_partition_list::TopicPartitionList;
use rdkafka::types::RDKafkaRespErr;

use super::Partitions;

/// The consumer context: pauses and marks assigned partitions, releases
/// revoked ones.
pub struct PausingContext<S> {
    /// Shared with the loop.
    pub partitions: Arc<Partitions<S>>,
    /// The input topic.
    pub input_topic: String,
}

impl<S: Send + 'static> ClientContext for PausingContext<S> {}

impl<S: Send + 'static> ConsumerContext for PausingContext<S> {
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
                self.partitions.release_all();
                let _ = consumer.unassign();
            }
        }
    }
}
