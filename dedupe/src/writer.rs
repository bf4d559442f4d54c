//! Dedupe's writes to Kafka: the producer, the delivery mode, and the two
//! ways records are sent.
//!
//! - Outputs (`properties.events`) are sent once per
//!   attempt ([`Writer::send_once`]) with one result per record: resending
//!   a batch whose produce failed in part would write its acknowledged
//!   records twice, so the loop settles it ([`crate::plan::settle`]) and
//!   redoes it from the input after a restore instead.
//! - Changelog records and tombstones are safe to repeat (the changelog is
//!   compacted by key and a record says the same thing twice), so
//!   [`Writer::send_repeatable`] retries them with the stage's retry policy
//!   until they are acknowledged, the stage stops, the partitions are lost
//!   or the batch budget is spent (then the batch is abandoned and the
//!   restore writes what is missing).
//!
//! With broker transactions every write of a batch runs inside one
//! transaction ([`Writer::in_transaction`]) and a failure is returned, so
//! the transaction aborts and the process exits.

use common::produce::{OutRecord, send_all};
use common::stage_loop::{Abandon, Cancel, GaveUp, RetryPolicy, Verdict};
use rdkafka::consumer::ConsumerGroupMetadata;
use rdkafka::error::KafkaError;
use rdkafka::producer::{FutureProducer, Producer};
use rdkafka::topic_partition_list::TopicPartitionList;
use tokio::runtime::Handle;

use crate::changelog::SeenRecord;
use crate::transactions::{Mode, TRANSACTION_TIMEOUT};

/// The producer side of dedupe.
pub struct Writer {
    producer: FutureProducer,
    /// The delivery mode detected at start.
    pub mode: Mode,
    runtime: Handle,
    cancel: Cancel,
    /// `dedupe.seen`.
    pub seen_topic: String,
}

impl Writer {
    /// Wraps a producer opened by [`crate::transactions::open_producer`].
    pub fn new(
        producer: FutureProducer,
        mode: Mode,
        runtime: Handle,
        cancel: Cancel,
        seen_topic: String,
    ) -> Self {
        Self {
            producer,
            mode,
            runtime,
            cancel,
            seen_topic,
        }
    }

    /// Whether writes run inside transactions.
    pub fn transactional(&self) -> bool {
        self.mode == Mode::Transactional
    }

    /// Sends `records` once and waits for every acknowledgement: the offset
    /// of each, or its error. What is acknowledged is a prefix of `records`
    /// on each partition: a record refused when queued stops the queueing,
    /// and the producer's gapless guarantee turns any other gap into a fatal
    /// error (the process exits). The restore's `forwarded_through` rests
    /// on it: an input below an acknowledged output was never left out.
    pub fn send_once(&self, records: &[OutRecord]) -> Vec<Result<i64, KafkaError>> {
        common::produce::offsets_in_order(&self.runtime, &self.producer, records)
    }

    /// The producer's fatal error, if it has one (an idempotent producer
    /// that cannot guarantee order any more): the process must exit.
    pub fn fatal_error(&self) -> Option<String> {
        common::produce::fatal_error(&self.producer)
    }

    /// Sends records that may be sent twice, retrying until they are all
    /// acknowledged; in a transaction, once. Before each retry `may_retry`
    /// is asked ([`common::stage_loop::Fence::may_retry`]): a stalled instance
    /// that lost its partitions gives the write up rather than write over
    /// what the new owner wrote (a late tombstone would make it forget a
    /// key), and a write past the budget gives up so that the loop polls
    /// again; either way the error is the [`Abandon`] reason.
    pub fn send_repeatable(
        &self,
        what: &str,
        records: &[OutRecord],
        may_retry: &dyn Fn() -> Result<(), Abandon>,
    ) -> anyhow::Result<()> {
        if records.is_empty() {
            return Ok(());
        }
        if self.transactional() {
            let _ = self.runtime.block_on(send_all(&self.producer, records))?;
            return Ok(());
        }
        RetryPolicy::UNTIL_STOPPED
            .run_blocking(&self.cancel, what, |attempt| {
                if attempt > 1 {
                    may_retry().map_err(|reason| Verdict::Fatal(anyhow::Error::new(reason)))?;
                }
                self.runtime
                    .block_on(send_all(&self.producer, records))
                    .map(|_| ())
                    .map_err(|e| match self.fatal_error() {
                        Some(fatal) => Verdict::Fatal(anyhow::anyhow!("{e} ({fatal})")),
                        None => Verdict::Retry(anyhow::Error::from(e)),
                    })
            })
            .map_err(|gave_up: GaveUp<anyhow::Error>| match gave_up {
                GaveUp::Stopped(e) => e.context("stopping with unacknowledged records"),
                GaveUp::Fatal(e) if e.is::<Abandon>() => e,
                other => anyhow::anyhow!("{other}"),
            })
    }

    /// Runs `body` inside one Kafka transaction, committing `offsets` for
    /// the consumer group with it, when the mode has transactions; runs it
    /// as is otherwise. A failed transaction is aborted and its error
    /// returned.
    pub fn in_transaction<T>(
        &self,
        offsets: Option<(&TopicPartitionList, &ConsumerGroupMetadata)>,
        body: impl FnOnce() -> anyhow::Result<T>,
    ) -> anyhow::Result<T> {
        if !self.transactional() {
            return body();
        }
        self.producer.begin_transaction()?;
        let result = body().and_then(|value| {
            if let Some((tpl, group)) = offsets {
                self.producer
                    .send_offsets_to_transaction(tpl, group, TRANSACTION_TIMEOUT)?;
            }
            self.producer.commit_transaction(TRANSACTION_TIMEOUT)?;
            Ok(value)
        });
        if result.is_err()
            && let Err(e) = self.producer.abort_transaction(TRANSACTION_TIMEOUT)
        {
            tracing::error!(error = %e, "cannot abort the transaction");
        }
        result
    }

    /// The changelog record of `key` on `partition`.
    pub fn changelog_record(&self, partition: i32, key: &str, seen: SeenRecord) -> OutRecord {
        OutRecord {
            topic: self.seen_topic.clone(),
            partition: Some(partition),
            key: Some(key.as_bytes().to_vec()),
            payload: Some(seen.encode()),
            headers: Vec::new(),
        }
    }

    /// The tombstone of `key` on `partition`.
    pub fn tombstone(&self, partition: i32, key: &str) -> OutRecord {
        OutRecord {
            payload: None,
            ..self.changelog_record(partition, key, SeenRecord::default())
        }
    }
}
