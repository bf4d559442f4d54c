//! The state writer's loop: `properties.events` → `properties.latest`.
//!
//! **Exactly-once without transactions, the output as the checkpoint.**
//! Each property's state is the merge of its events; the state writer
//! writes each new state once to `properties.latest`, even across crashes,
//! rebalances and partial failures, with no broker transactions:
//! 1. **One writer per partition.** `properties.latest` is co-partitioned
//!    with `properties.events` (checked at start and re-read while running,
//!    [`common::stage_loop::CoPartitioned::connect`]).
//!    The instance the group assigns input partition P writes only
//!    partition P of `properties.latest`, keyed by property
//!    ([`crate::writer::Writer::record`]).
//! 2. **The restore gives the state and the mark.** On assignment, and
//!    after a batch on P is abandoned, P is paused and restored outside the
//!    rebalance callback ([`crate::restoring`], over
//!    `common::stage_loop::restore_pending`, polling meanwhile): partition
//!    P of `properties.latest` is read from its beginning to its end; the
//!    last record of a key is its state, and the mark is the greatest
//!    `source-offset` header ([`crate::restore::Restore::apply`]). P then
//!    resumes at max(mark + 1, committed offset)
//!    ([`common::stage_loop::resume_offset`]).
//! 3. **Outputs are a prefix, in input order.** A batch's events are
//!    merged in partition and offset order, one output per change carrying
//!    its input offset, never one per key and batch
//!    ([`crate::plan::plan_batch`], whose module doc says why coalescing
//!    would lose a change). They are sent once with `send_in_order` by an
//!    idempotent producer with `enable.gapless.guarantee`
//!    ([`crate::writer::Writer::send_once`],
//!    `common::stage_loop::FencingSettings::producer`): what is
//!    acknowledged, and what landed, is a prefix of them on each partition.
//! 4. **Offsets follow the outputs.** Input offsets are committed only for
//!    partitions whose outputs were all acknowledged
//!    ([`crate::plan::settle`], [`crate::plan::BatchPlan::commit`]).
//! 5. **A partial failure is a crash of those partitions.** A partition
//!    with a failed output drops its in-memory state, is restored from the
//!    topic and read again from the mark ([`crate::plan::settle`],
//!    `StateWriter::handle`): an output that landed although its produce
//!    failed is found, and nothing acknowledged is sent twice.
//! 6. **Why nothing is lost or written twice.** An input at or below the
//!    mark is in the restored state: it was written (the outputs landed are
//!    a prefix up to the mark), or it changed nothing when it was merged,
//!    and the merge is a join (commutative, associative, idempotent,
//!    `property-state/tests/merge_laws.rs`): what a state absorbed, every
//!    later state absorbs. An input above the mark was not written, or
//!    changed nothing; merging it again gives the same state, so it is
//!    written at most once, and an unchanged state is never written.
//! 7. **A stalled owner stops writing.** Before it writes, a batch checks
//!    that it still owns its partitions ([`common::stage_loop::Fence`],
//!    [`common::stage_loop::check_ownership`]): past its wall-time budget,
//!    when the assignment is lost, or when the coordinator refuses a
//!    recheck, the batch is abandoned; the producer's delivery timeout is
//!    below the budget. As for dedupe, this is exactly-once for a single
//!    writer per partition, but for a stall in the microseconds between
//!    the last check and the hand-over of a record to the producer.
//! 8. **The registry never drops an event.** A value whose writer schema
//!    the registry cannot give now holds the batch ([`crate::hold`]); only
//!    a value broken on its own is skipped (the sink dead-letters it).

use std::time::Duration;

use anyhow::Context as _;
use common::kafka::{BatchSettings, KafkaSettings};
use common::stage_loop::{Cancel, CoPartitioned};
use rdkafka::producer::FutureProducer;
use tokio::runtime::Handle;

use crate::metrics::StateWriterMetrics;
use crate::registry::Schemas;
use crate::settings::StateWriterSettings;
use crate::state::PartitionState;
use crate::writer::Writer;

/// The wired stage.
pub struct StateWriter {
    /// The group consumer, its partitions' states and their fencing.
    pub(crate) co: CoPartitioned<PartitionState>,
    pub(crate) writer: Writer,
    pub(crate) schemas: Schemas,
    pub(crate) kafka: KafkaSettings,
    pub(crate) cancel: Cancel,
    batch: BatchSettings,
    /// Counters.
    pub metrics: StateWriterMetrics,
}

impl StateWriter {
    /// Checks the topics, registers the state's schema (waiting for an
    /// unavailable registry; a refusal is an error saying what to fix) and
    /// joins the group. `runtime` runs the producer's and the registry's
    /// waits; `cancel` ends the loop.
    pub fn connect(
        settings: &StateWriterSettings,
        runtime: Handle,
        cancel: Cancel,
    ) -> anyhow::Result<Self> {
        let topics = &settings.topics;
        let producer: FutureProducer = settings
            .fencing
            .producer(settings.kafka.producer())
            .create()
            .context("cannot create the Kafka producer")?;
        let schemas = Schemas::register(
            &settings.schema_registry_url,
            &topics.latest(),
            runtime.clone(),
            &cancel,
        )?;
        let co = CoPartitioned::connect(
            &settings.kafka,
            &settings.group,
            &settings.fencing,
            "state-writer",
            vec![topics.events(), topics.latest()],
        )?;
        tracing::info!(
            mode = "output-first: properties.latest is the checkpoint (no broker transactions)",
            input = %topics.events(),
            output = %topics.latest(),
            schema_id = schemas.state_schema_id,
            "state writer running"
        );
        let metrics = StateWriterMetrics::default();
        metrics
            .stage
            .liveness
            .set_stall_after(Duration::from_secs(settings.stall_after_secs));
        Ok(Self {
            co,
            writer: Writer::new(
                producer,
                runtime,
                topics.latest(),
                schemas.state_schema_id,
                settings.kafka.message_max_bytes,
            ),
            schemas,
            kafka: settings.kafka.clone(),
            cancel,
            batch: settings.batch,
            metrics,
        })
    }

    /// Runs on the calling (non-async) thread until stopped. What no retry
    /// can cure (a fatal producer error, a state that cannot be written)
    /// ends it with an error; once restarted, it resumes from the output.
    pub fn run(self) -> anyhow::Result<()> {
        while !self.cancel.is_cancelled() {
            if !self
                .co
                .still_consuming(&self.cancel, &self.metrics.stage.liveness)
            {
                continue;
            }
            self.restore_pending()?;
            let polled = self.co.poll(&self.batch);
            if polled.records.is_empty() {
                self.metrics.stage.liveness.idle();
                continue;
            }
            match self.handle(&polled) {
                Ok(()) => {}
                Err(_) if self.cancel.is_cancelled() => break,
                Err(e) => return Err(e.context("writing property states failed")),
            }
        }
        tracing::info!("state writer stopping");
        Ok(())
    }
}
