//! The sink loop, `properties.events` → PostgreSQL: wiring only; every
//! decision is made by the core it points at.
//!
//! Guarantee: each event lands in PostgreSQL exactly once, across crashes,
//! rebalances and outages, and none is dead-lettered for a reason that is
//! not its own. Step by step:
//!
//! 1. **Rows and offsets commit together.** A batch's rows and the next
//!    offset of every partition it covers are one database transaction
//!    ([`Committer::commit`] over [`crate::store::Sink::write_batch`]).
//!    Event rows are unique on the dedupe key; a property's row holds its
//!    state, which the batch merges its events into with the shared merge
//!    (`property_state::merge`, also behind `properties.latest`;
//!    [`crate::fold`]) under a row lock taken in key order, and merging an
//!    event twice changes nothing; stored offsets only move forward. So a
//!    record read twice lands once, and a batch committed late by an owner
//!    that lost its partition meanwhile changes nothing. (A property row
//!    another writer created after the batch read is never overwritten: the
//!    batch is written again, merging into it.)
//! 2. **Resume from the database.** On every assignment each partition is
//!    positioned at the offset the database stores ([`crate::rebalance`]);
//!    Kafka's committed offsets are advisory (lag monitoring only).
//! 3. **Write-behind, one batch in flight, never past a failure.** The
//!    writer thread commits batch N while the loop reads batch N+1
//!    ([`WriteBehind::step`]); after a batch that was not committed, no
//!    later one is handed over ([`WriteBehind::written`]).
//! 4. **Revocation and stop flush first**: the batch in flight, then what
//!    is pending ([`WriteBehind::revoke_step`], [`WriteBehind::stop_step`]).
//! 5. **The registry's failures hold, never skip.** A value whose writer
//!    schema cannot be had (unreachable, 5xx, or a 404 from a lagging
//!    registry) is [`Decoded::Unavailable`] ([`WriterSchemas::decode`]):
//!    [`WriteBehind::record`] holds its partition at it, the partition is
//!    paused, retried with backoff ([`WriteBehind::retries_due`]) and
//!    resumed from exactly that record ([`WriteBehind::resume_at`]).
//!    Nothing past it is committed, also when the stage stops meanwhile.
//! 6. **PostgreSQL unavailable**: [`Committer::commit`] retries the batch
//!    with [`RetryPolicy`] until it commits or the stage stops.
//! 7. **Only the event's own faults are dead-lettered**: bytes that do not
//!    decode once the writer schema is known ([`Decoded::Fault`]) and rows
//!    PostgreSQL refuses for their content ([`Committer::commit`]). Their
//!    offset advances only once Kafka acknowledged the dead letter
//!    ([`send_dead_letters`], then [`WriteBehind::dead_lettered`]).
//! 8. **Fatal errors exit.** A batch lost other than by a stop (the writer
//!    thread gone) ends [`SinkRunner::run`] with an error: the process
//!    exits non-zero, and its restart reads the records again.

use std::cell::RefCell;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;
use common::dead_letter::dead_letter_within;
use common::kafka::BatchSettings;
use common::produce::record_budget;
use common::stage_loop::{Cancel, RetryPolicy, record_span};
use common::stage_metrics::StageMetrics;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::BorrowedMessage;
use rdkafka::producer::FutureProducer;
use rdkafka::{Message, Offset};
use tokio::runtime::Handle;

use crate::metrics::SinkMetrics;
use crate::rebalance::{Shared, SinkContext, commit_advisory, set_paused};
use crate::rows::Position;
use crate::settings::SinkSettings;
use crate::store::PostgresSink;
use crate::write_behind::{Next, WriteBehind};
use crate::writer::{Committer, DeadLetters, STAGE, send_dead_letters};
use crate::writer_thread::{WriterHandle, drive, lock};
use common::registry::Registry;
use schemas::PropertyEvent;
use schemas::writer_schemas::{Decoded, WriterSchemas};

/// Bound on a seek back to a held record.
const SEEK_TIMEOUT: Duration = Duration::from_secs(5);

/// The wired stage.
pub struct SinkRunner {
    consumer: BaseConsumer<SinkContext>,
    shared: Arc<Shared>,
    metrics: Arc<SinkMetrics>,
    producer: FutureProducer,
    dlq_topic: String,
    dlq_budget: usize,
    registry: Registry,
    schemas: RefCell<WriterSchemas<PropertyEvent>>,
}

impl SinkRunner {
    /// Migrates the database, connects to Kafka and starts the writer.
    pub fn connect(
        settings: &SinkSettings,
        runtime: Handle,
        cancel: Cancel,
    ) -> anyhow::Result<Self> {
        let topic = settings.topics.events();
        let dlq_topic = settings.topics.dlq();
        let _ = common::kafka::check_topics(
            &settings.kafka,
            &[&topic, &dlq_topic],
            Duration::from_secs(10),
        )?;
        let mut store = PostgresSink::new(&settings.database_url);
        runtime.block_on(async {
            let applied = crate::migrate::apply(store.client().await?).await?;
            tracing::info!(applied, "database schema up to date");
            anyhow::Ok(())
        })?;
        let metrics = Arc::new(SinkMetrics::default());
        metrics
            .stage
            .liveness
            .set_stall_after(Duration::from_secs(settings.stall_after_secs));
        let producer: FutureProducer = settings.kafka.producer().create()?;
        let dlq_budget = record_budget(settings.kafka.message_max_bytes);
        let committer = Committer {
            store,
            dead_letters: Some(DeadLetters {
                sink: producer.clone(),
                topic: dlq_topic.clone(),
                budget: dlq_budget,
            }),
            runtime: runtime.clone(),
            cancel: cancel.clone(),
            policy: RetryPolicy::UNTIL_STOPPED,
            group: settings.group.clone(),
            topic: topic.clone(),
        };
        let batching = BatchSettings {
            max_records: settings.batch_max_events,
            max_wait_ms: settings.batch_max_wait_ms,
        };
        let shared = Arc::new(Shared {
            core: Mutex::new(WriteBehind::new(batching, RetryPolicy::UNTIL_STOPPED)),
            writer: WriterHandle::spawn(committer, Arc::clone(&metrics))?,
            offsets: Mutex::new(PostgresSink::new(&settings.database_url)),
            runtime,
            cancel,
            group: settings.group.clone(),
            topic: topic.clone(),
        });
        let consumer: BaseConsumer<SinkContext> = settings
            .kafka
            .consumer(&settings.group)
            .set("partition.assignment.strategy", "range")
            .create_with_context(SinkContext {
                shared: Arc::clone(&shared),
            })
            .context("cannot create the Kafka consumer")?;
        consumer.subscribe(&[&topic])?;
        tracing::info!(
            input = %topic,
            database = %crate::settings::redact_database_url(&settings.database_url),
            "sink running"
        );
        Ok(Self {
            consumer,
            shared,
            metrics,
            producer,
            dlq_topic,
            dlq_budget,
            registry: Registry::new(&settings.schema_registry_url)?,
            schemas: RefCell::new(WriterSchemas::default()),
        })
    }

    /// The stage's metrics (served on `/metrics` and `/health` by the binary).
    pub fn metrics(&self) -> Arc<StageMetrics> {
        Arc::clone(&self.metrics.stage)
    }

    /// Runs on the calling (non-async) thread until the stage is cancelled;
    /// an error when a batch was lost other than by a stop.
    pub fn run(self) -> anyhow::Result<()> {
        let shared = &self.shared;
        while !shared.cancel.is_cancelled() {
            if let Some(outcome) = shared.writer.try_collect()
                && let Some(committed) = lock(&shared.core).written(outcome)
            {
                commit_advisory(&self.consumer, &shared.topic, &committed);
            }
            self.retry_held();
            let wait = lock(&shared.core).poll_wait(Instant::now());
            let polled = self.consumer.poll(wait);
            let nothing_waiting = polled.is_none();
            match polled {
                // Idle counts as progress, unless a partition is held.
                None if !lock(&shared.core).any_held() => self.metrics.stage.liveness.idle(),
                None => {}
                Some(Err(e)) => tracing::warn!(error = %e, "consumer error"),
                Some(Ok(message)) => self.accept(&message),
            }
            let committed = drive(&shared.core, &shared.writer, |wb| {
                wb.step(Instant::now(), nothing_waiting)
            });
            commit_advisory(&self.consumer, &shared.topic, &committed);
            if lock(&shared.core).failed() {
                break;
            }
        }
        tracing::info!("sink stopping; flushing what was read");
        let committed = drive(&shared.core, &shared.writer, WriteBehind::stop_step);
        commit_advisory(&self.consumer, &shared.topic, &committed);
        if lock(&shared.core).failed() && !shared.cancel.is_cancelled() {
            anyhow::bail!(
                "a batch could not be committed (the writer thread is gone); \
                 restart the sink: it reads the batch again from the offsets stored in PostgreSQL"
            );
        }
        Ok(())
    }

    /// Decodes one record and hands it to the protocol ([`WriteBehind::record`]).
    fn accept(&self, message: &BorrowedMessage<'_>) {
        let (partition, offset) = (message.partition(), message.offset());
        if !lock(&self.shared.core).admit(partition, offset) {
            return;
        }
        let (span, _) = record_span("sink record", message);
        let decoded = self.decode(message.payload().unwrap_or_default());
        let position = Position {
            topic: message.topic().to_string(),
            partition,
            offset,
        };
        let now = Instant::now();
        let next =
            lock(&self.shared.core).record(position, decoded, message.detach(), span.clone(), now);
        match next {
            Next::Taken => {}
            Next::Held { newly, reason } => {
                if newly {
                    tracing::warn!(partition, offset, %reason, "writer schema unavailable; partition paused until the registry answers");
                    set_paused(&self.consumer, &self.shared.topic, partition, true);
                }
            }
            Next::DeadLetter(reason) => {
                tracing::error!(partition, offset, %reason, "undecodable event dead-lettered");
                let record = dead_letter_within(
                    message,
                    &self.dlq_topic,
                    STAGE,
                    "decode",
                    &reason,
                    self.dlq_budget,
                );
                let shared = &self.shared;
                let mut core = lock(&shared.core);
                let acknowledged = send_dead_letters(
                    &shared.runtime,
                    &shared.cancel,
                    &RetryPolicy::UNTIL_STOPPED,
                    &self.producer,
                    &[record],
                );
                if acknowledged {
                    self.metrics.stage.dead_letters.inc();
                }
                core.dead_lettered(partition, offset, acknowledged, span, now);
            }
        }
    }

    fn decode(&self, bytes: &[u8]) -> Decoded<PropertyEvent> {
        let fetch = |id| self.registry.fetch_blocking(&self.shared.runtime, id);
        self.schemas.borrow_mut().decode(bytes, fetch)
    }

    /// Asks the registry again for each held partition whose retry is due;
    /// seeks a partition back to its held record and resumes it once its
    /// writer schema is in the cache.
    fn retry_held(&self) {
        let now = Instant::now();
        let due = lock(&self.shared.core).retries_due(now);
        for (partition, schema_id) in due {
            let fetch = |id| self.registry.fetch_blocking(&self.shared.runtime, id);
            let fetched = self.schemas.borrow_mut().fetch(schema_id, fetch);
            let held_at = lock(&self.shared.core).held_offset(partition);
            let sought = fetched.and_then(|()| {
                let at = held_at.ok_or_else(|| "no longer held".to_string())?;
                self.consumer
                    .seek(
                        &self.shared.topic,
                        partition,
                        Offset::Offset(at),
                        SEEK_TIMEOUT,
                    )
                    .map_err(|e| format!("cannot seek back to offset {at}: {e}"))
            });
            match sought {
                Ok(()) => {
                    lock(&self.shared.core).resume_at(partition);
                    set_paused(&self.consumer, &self.shared.topic, partition, false);
                    tracing::info!(partition, schema_id, offset = ?held_at, "writer schema fetched; partition resumed");
                }
                Err(reason) => {
                    let attempts = lock(&self.shared.core).retry_failed(partition, now);
                    tracing::warn!(partition, schema_id, attempts, %reason, "partition stays paused");
                }
            }
        }
    }
}
