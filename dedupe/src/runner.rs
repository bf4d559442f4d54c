//! The dedupe loop: `properties.normalized` → `properties.events`.
//!
//! Dedupe forwards each event's bytes untouched, deciding from its
//! `dedupe-key` header alone: it never decodes Avro and never asks the
//! schema registry. The property's state (`properties.latest`) is the state
//! writer's, downstream of `properties.events`: it decodes, merges and
//! scales on its own, and a registry outage stops only it.
//!
//! Exactly-once argument without broker transactions (the output-first
//! recovery of DESIGN.md, "Dedupe"), for a single writer per partition.
//! Records are taken in batches ([`common::stage_loop::BatchWindow`]); for a
//! batch on partition P ([`crate::forward`]):
//! 1. every record is decided against P's state
//!    ([`crate::plan::plan_batch`]);
//! 2. the first sightings (and corrections) are produced to partition P of
//!    `properties.events`, in input order, with their `dedupe-key` and
//!    `source-offset` headers, once, and all acknowledged; if any fails the
//!    batch is abandoned and P is reset as after a crash
//!    ([`crate::plan::settle`]), so an acknowledged output is never sent
//!    again;
//! 3. only then their changelog records (key → first sighting, output
//!    offset, input offset) go to partition P of `dedupe.seen`
//!    ([`crate::plan::BatchPlan::changelog`]);
//! 4. only then the batch's input offsets are committed
//!    ([`crate::plan::BatchPlan::commit`]).
//!
//! Before P is processed, and again after a batch on it is abandoned, P's
//! state is rebuilt from the changelog and then from the output's tail
//! past the last offset the changelog knows ([`crate::restore`]), outside
//! the rebalance callback ([`crate::restoring`]), and P is read again from
//! its committed offset. A crash (or a failed write) after 2 but before 3
//! therefore finds the key and the input offset in the output's tail, and
//! after 3 but before 4 in the changelog: the redelivered record is dropped
//! ([`crate::batch`], `AlreadyForwarded`). Before each write the batch checks
//! that it still owns P ([`common::stage_loop::Fence`]): past its wall-time
//! budget, or when the group has moved P, it is abandoned, so an instance
//! that stalled does not write once another owns P. Partition counts are
//! re-read while running ([`common::stage_loop::partition_watch`]). With broker transactions (detected
//! at start by [`crate::transactions`]) steps 2 to 4 are one transaction; a
//! failed one ends the process, which resumes from the last committed one.
//!
//! Keys are remembered for the TTL (default 7 days); a periodic sweep
//! forgets older keys and writes their tombstones.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use common::instruments::Counter;
use common::kafka::{BatchSettings, KafkaSettings};
use common::stage_loop::{Cancel, CoPartitioned};
use common::stage_metrics::StageMetrics;
use rdkafka::consumer::{CommitMode, Consumer};

use crate::forward::Outcome;
use crate::settings::DedupeSettings;
use crate::state::PartitionState;
use crate::transactions::{Mode, open_producer};
use crate::writer::Writer;
use tokio::runtime::Handle;

/// Unix milliseconds now.
pub(crate) fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// Dedupe's metrics: the common stage series (`records_out` counts first
/// sightings and corrections forwarded) and its own.
#[derive(Debug)]
pub struct DedupeMetrics {
    /// The common series, served on `/metrics`.
    pub stage: Arc<StageMetrics>,
    /// Duplicates dropped.
    pub duplicates: Counter,
    /// Replayed events forwarded although their key was seen.
    pub corrections: Counter,
    /// Keys forgotten after the TTL.
    pub expired: Counter,
}

impl Default for DedupeMetrics {
    fn default() -> Self {
        let mut builder = StageMetrics::builder("dedupe");
        let duplicates = builder.counter("duplicates", "Events dropped as duplicates");
        let corrections = builder.counter(
            "corrections",
            "Replayed events forwarded although their key was seen",
        );
        let expired = builder.counter("expired_keys", "Keys forgotten after the TTL");
        Self {
            stage: Arc::new(builder.build()),
            duplicates,
            corrections,
            expired,
        }
    }
}

/// The wired stage.
pub struct Deduper {
    /// The group consumer, its partitions' states and their fencing.
    pub(crate) co: CoPartitioned<PartitionState>,
    pub(crate) writer: Writer,
    pub(crate) kafka: KafkaSettings,
    pub(crate) cancel: Cancel,
    pub(crate) ttl_ms: i64,
    pub(crate) events_topic: String,
    expiry_interval: Duration,
    batch: BatchSettings,
    /// Counters.
    pub metrics: DedupeMetrics,
}

impl Deduper {
    /// Connects; `runtime` runs the async producer waits, `cancel` ends the loop.
    pub fn connect(
        settings: &DedupeSettings,
        runtime: Handle,
        cancel: Cancel,
    ) -> anyhow::Result<Self> {
        let topics = &settings.topics;
        let producer = settings.fencing.producer(settings.kafka.producer());
        let (producer, mode) = open_producer(settings, producer, &cancel)?;
        let co = CoPartitioned::connect(
            &settings.kafka,
            &settings.group,
            &settings.fencing,
            "dedupe",
            vec![topics.normalized(), topics.events(), topics.seen()],
        )?;
        tracing::info!(
            mode = mode.describe(),
            input = %topics.normalized(),
            output = %topics.events(),
            changelog = %topics.seen(),
            "dedupe running"
        );
        let metrics = DedupeMetrics::default();
        metrics
            .stage
            .liveness
            .set_stall_after(Duration::from_secs(settings.stall_after_secs));
        Ok(Self {
            co,
            writer: Writer::new(producer, mode, runtime, cancel.clone(), topics.seen()),
            kafka: settings.kafka.clone(),
            cancel,
            ttl_ms: i64::try_from(settings.ttl_secs.saturating_mul(1000)).unwrap_or(i64::MAX),
            events_topic: topics.events(),
            expiry_interval: Duration::from_secs(settings.expiry_interval_secs.max(1)),
            batch: settings.batch,
            metrics,
        })
    }

    /// The delivery mode detected at start.
    pub fn mode(&self) -> Mode {
        self.writer.mode
    }

    /// Runs on the calling (non-async) thread until stopped. A failed
    /// transaction or a fatal producer error ends it with an error: the
    /// process exits and, once restarted, resumes from the last commit.
    pub fn run(self) -> anyhow::Result<()> {
        let mut last_sweep: Option<Instant> = None;
        while !self.cancel.is_cancelled() {
            if !self
                .co
                .still_consuming(&self.cancel, &self.metrics.stage.liveness)
            {
                continue;
            }
            self.restore_pending()?;
            if last_sweep.is_none_or(|t| t.elapsed() >= self.expiry_interval) {
                match self.sweep_expired() {
                    Ok(()) => last_sweep = Some(Instant::now()),
                    Err(_) if self.cancel.is_cancelled() => break,
                    Err(e) => return Err(e.context("expiry sweep failed")),
                }
            }
            let polled = self.co.poll(&self.batch);
            if polled.records.is_empty() {
                self.metrics.stage.liveness.idle();
                continue;
            }
            match self.handle(&polled.records, polled.started, polled.polled_at) {
                Ok(Outcome::Done | Outcome::Abandoned) => {}
                Err(_) if self.cancel.is_cancelled() => break,
                Err(e) => return Err(e.context("forwarding failed")),
            }
        }
        tracing::info!("dedupe stopping");
        if self.writer.mode == Mode::OutputFirst {
            let _ = self.co.consumer.commit_consumer_state(CommitMode::Sync);
        }
        Ok(())
    }
}
