//! [`CoPartitioned`]: the group consumer of a stage that writes
//! output-first to topics co-partitioned with its input, and restores a
//! state per input partition from them (dedupe, the state writer). It puts
//! together what such a stage does around its batches: checking at start
//! that every topic has the input's partition count and stopping when one
//! changes ([`partition_watch`]), joining the group with the pausing
//! rebalance callback ([`PausingContext`]), polling batches, restoring
//! outside the callback ([`Restoring`]), fencing a write
//! ([`check_ownership`]), resetting partitions after an abandoned batch, and
//! committing.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};

use super::{
    Abandon, Cancel, Fence, FencingSettings, Liveness, Partitions, PausingContext, Polled,
    Restoring, check_ownership, first_offsets, partition_watch, poll_batch,
};
use crate::kafka::{BatchSettings, KafkaSettings, offsets_list, partition_list};

/// The consumer side of a co-partitioned, output-first stage.
pub struct CoPartitioned<S: Send + 'static> {
    /// The group consumer on the input topic.
    pub consumer: BaseConsumer<PausingContext<S>>,
    /// The per-partition states, shared with its rebalance callback.
    pub partitions: Arc<Partitions<S>>,
    /// The input topic.
    pub input_topic: String,
    budget: Duration,
    recheck_after: Duration,
    watch: partition_watch::Watch,
    /// Set once a partition count changed.
    stopped: AtomicBool,
}

impl<S: Send + 'static> CoPartitioned<S> {
    /// Checks that `topics` (the input first, then the topics written and
    /// restored from) exist with one partition count, and joins `group` on
    /// the input with a consumer whose timeouts `fencing` nests in. The
    /// counts are then re-read while running, for `stage`'s report.
    pub fn connect(
        kafka: &KafkaSettings,
        group: &str,
        fencing: &FencingSettings,
        stage: &'static str,
        topics: Vec<String>,
    ) -> anyhow::Result<Self> {
        let names: Vec<&str> = topics.iter().map(String::as_str).collect();
        let counts = crate::kafka::check_topics(kafka, &names, Duration::from_secs(10))?;
        anyhow::ensure!(
            counts.windows(2).all(|pair| pair[0] == pair[1]),
            "{} must have the same partition count (co-partitioning: partition P of each is \
             written from partition P of {}), found {counts:?}",
            names.join(", "),
            names[0]
        );
        let input_topic = topics[0].clone();
        let partitions = Arc::new(Partitions::default());
        let consumer: BaseConsumer<PausingContext<S>> = fencing
            .consumer(kafka.consumer(group))?
            .create_with_context(PausingContext {
                partitions: Arc::clone(&partitions),
                input_topic: input_topic.clone(),
            })
            .context("cannot create the Kafka consumer")?;
        consumer.subscribe(&[&input_topic])?;
        Ok(Self {
            consumer,
            partitions,
            input_topic,
            budget: Duration::from_millis(fencing.batch_budget_ms),
            recheck_after: Duration::from_millis(fencing.recheck_after_ms),
            watch: partition_watch::spawn(kafka, stage, topics, counts)?,
            stopped: AtomicBool::new(false),
        })
    }

    /// Whether the stage still consumes. Once a partition count changed,
    /// it leaves the group, forgets every partition and reports the
    /// problem on `liveness`; from then on this waits a second (or until
    /// `cancel`) and answers `false`, until the process restarts.
    pub fn still_consuming(&self, cancel: &Cancel, liveness: &Liveness) -> bool {
        if self.stopped.load(Ordering::Relaxed) {
            let _ = cancel.sleep_blocking(Duration::from_secs(1));
            return false;
        }
        let Some(problem) = self.watch.problem() else {
            return true;
        };
        tracing::error!("{problem}");
        liveness.set_problem(problem);
        self.consumer.unsubscribe();
        self.partitions.release_all();
        self.stopped.store(true, Ordering::Relaxed);
        false
    }

    /// Polls one batch.
    pub fn poll(&self, batch: &BatchSettings) -> Polled<'_> {
        poll_batch(&self.consumer, batch)
    }

    /// What a restore of the pending partitions drives.
    pub fn restoring<'a>(
        &'a self,
        cancel: &'a Cancel,
        liveness: &'a Liveness,
    ) -> Restoring<'a, PausingContext<S>, S> {
        Restoring {
            consumer: &self.consumer,
            partitions: &self.partitions,
            input_topic: &self.input_topic,
            cancel,
            liveness,
        }
    }

    /// The fence of a batch whose first record was read at `started`,
    /// after a poll at `polled_at`.
    pub fn fence(&self, started: Instant, polled_at: Instant) -> Fence {
        Fence::new(started, polled_at, self.budget, self.recheck_after)
    }

    /// The fence of a repeatable write that starts now.
    pub fn fence_from_now(&self) -> Fence {
        let now = Instant::now();
        self.fence(now, now)
    }

    /// Whether a batch of `records` (`(partition, offset)`, in batch order)
    /// must be abandoned before its next write ([`check_ownership`], with
    /// the batch's first offsets of the partitions still owned here).
    pub fn before_write(
        &self,
        fence: &mut Fence,
        records: impl IntoIterator<Item = (i32, i64)>,
    ) -> anyhow::Result<Option<Abandon>> {
        let positions = first_offsets(records, &self.partitions.ready());
        check_ownership(fence, &self.consumer, &self.input_topic, &positions)
    }

    /// Pauses `partitions` and marks them for a restore (an abandoned or
    /// partly failed batch): their states are dropped, restored, and read
    /// again from where they resume.
    pub fn reset(&self, partitions: &[i32]) {
        if let Err(e) = self
            .consumer
            .pause(&partition_list(&self.input_topic, partitions))
        {
            tracing::warn!(error = %e, "cannot pause the partitions to restore");
        }
        self.partitions.reset(partitions.to_vec());
    }

    /// Commits `offsets` of the input asynchronously (a commit lost in a
    /// crash is recovered from the output: the inputs are read again and
    /// found done).
    pub fn commit(&self, offsets: &[(i32, i64)]) -> anyhow::Result<()> {
        if offsets.is_empty() {
            return Ok(());
        }
        let tpl = offsets_list(&self.input_topic, offsets)?;
        if let Err(e) = self.consumer.commit(&tpl, CommitMode::Async) {
            tracing::warn!(error = %e, "offset commit failed; the records will be read again and found done");
        }
        Ok(())
    }
}
