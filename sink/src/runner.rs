//! The sink loop: `properties.events` → PostgreSQL.
//!
//! Exactly-once argument: the rows of a batch and the next offset of every
//! partition in it are written in one database transaction. On every
//! assignment (and so at start) the consumer is positioned at the offsets
//! stored in the database before any record is fetched, so a batch is
//! either fully in the database and never read again, or not at all and
//! read again. Kafka's own committed offsets are only advisory. Rows are
//! also unique on the dedupe key, so even a record read twice (an operator
//! resetting offsets) lands once. Precondition: records are decoded and
//! batched on this one thread, and a revoked partition's pending records are
//! flushed inside the rebalance callback before the partition is released.
//!
//! Write-behind: a batch is handed to a writer thread, and the consumer
//! fills the next one while the database commits it, so reading and writing
//! overlap. At most one batch is in flight: the next hand-over, a
//! revocation and a stop each wait for it first, so the precondition above
//! still holds (the in-flight batch is committed before its partitions go).
//!
//! Batches size themselves: while the writer is free, a batch is handed
//! over as soon as no more records are waiting, so a record at a low rate
//! waits for no timer; while the writer is busy, records gather, so under
//! load batches grow towards `batch_max_events`. `batch_max_wait_ms` bounds
//! how long a batch keeps filling.
//!
//! PostgreSQL unavailable → the batch is retried with backoff; nothing is
//! acknowledged meanwhile, so nothing is lost. A record that cannot be
//! decoded goes to the DLQ with the reason, and its offset still advances.

use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use anyhow::Context;
use common::dead_letter::dead_letter;
use common::produce::{OutRecord, send_all};
use rdkafka::client::ClientContext;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext};
use rdkafka::message::{BorrowedMessage, OwnedMessage};
use rdkafka::producer::FutureProducer;
use rdkafka::topic_partition_list::TopicPartitionList;
use rdkafka::types::RDKafkaRespErr;
use rdkafka::{Message, Offset};
use schema_registry_converter::async_impl::avro::AvroDecoder;
use schema_registry_converter::async_impl::schema_registry::SrSettings;
use schemas::DatumDecoder;
use tokio::runtime::Handle;

use crate::rows::{EventToWrite, Position};
use crate::settings::SinkSettings;
use crate::store::{PostgresSink, Sink, WriteError};
use common::instruments::Histogram;
use common::stage_metrics::StageMetrics;

/// Records read but not yet committed to the database.
#[derive(Debug, Default)]
struct Batch {
    events: Vec<EventToWrite>,
    /// The consumed record of each event (same index), for dead letters.
    originals: Vec<OwnedMessage>,
    next_offsets: HashMap<i32, i64>,
    started: Option<Instant>,
    /// One span per record read, continuing its webhook's trace; they close
    /// when the batch is dropped, after its commit.
    spans: Vec<tracing::Span>,
}

/// The sink's metrics: the common stage series (`records_out` counts rows
/// written) and the commit latency.
#[derive(Debug)]
pub struct SinkMetrics {
    /// The common series, served on `/metrics`.
    pub stage: Arc<StageMetrics>,
    /// Seconds per database transaction (the batch's statements and commit).
    pub commit_seconds: Histogram,
}

impl Default for SinkMetrics {
    fn default() -> Self {
        let mut builder = StageMetrics::builder("sink");
        let commit_seconds = builder.seconds(
            "commit_seconds",
            "Seconds per batch transaction in PostgreSQL, statements and commit",
        );
        Self {
            stage: Arc::new(builder.build()),
            commit_seconds,
        }
    }
}

/// What the writer thread answers for one batch: its committed offsets, or
/// `None` if stopping interrupted the write.
type Committed = Option<HashMap<i32, i64>>;

/// What the consumer thread and its rebalance callback share.
struct Shared {
    metrics: SinkMetrics,
    sink: Mutex<PostgresSink>,
    batch: Mutex<Batch>,
    runtime: Handle,
    group: String,
    topic: String,
    stopping: Arc<AtomicBool>,
    producer: FutureProducer,
    dlq_topic: String,
    /// Batches for the writer thread, one at a time.
    jobs: SyncSender<Batch>,
    /// The writer thread's outcome for each batch.
    results: Mutex<Receiver<Committed>>,
    /// Whether a batch is on the writer thread.
    in_flight: AtomicBool,
    /// Whether the writer thread is still writing its batch (`in_flight`
    /// stays true until the consumer collects the outcome).
    writing: AtomicBool,
}

/// How long the consumer waits for a first record before looking again.
const IDLE_POLL: Duration = Duration::from_millis(100);
/// How often the consumer looks whether a busy writer is done.
const WRITER_CHECK: Duration = Duration::from_millis(2);

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Shared {
    /// Waits for the batch on the writer thread, if any, and returns its
    /// committed offsets. A writer thread that is gone (it panicked) stops
    /// the stage: its batch is not in the database, and only a restart reads
    /// it again from the stored offsets.
    fn wait_for_write(&self) -> Committed {
        if !self.in_flight.swap(false, Ordering::SeqCst) {
            return Some(HashMap::new());
        }
        let outcome = lock(&self.results).recv();
        outcome.unwrap_or_else(|_| {
            tracing::error!("the sink's writer thread is gone; stopping");
            self.stopping.store(true, Ordering::SeqCst);
            None
        })
    }

    /// Hands the pending batch to the writer thread, once the previous one
    /// is committed; returns that previous batch's committed offsets.
    fn write_behind(&self) -> Committed {
        let previous = self.wait_for_write();
        let batch = std::mem::take(&mut *lock(&self.batch));
        if batch.next_offsets.is_empty() {
            return previous;
        }
        self.writing.store(true, Ordering::SeqCst);
        match self.jobs.send(batch) {
            Ok(()) => self.in_flight.store(true, Ordering::SeqCst),
            Err(std::sync::mpsc::SendError(batch)) => {
                self.writing.store(false, Ordering::SeqCst);
                tracing::error!("the sink's writer thread is gone; writing here and stopping");
                self.stopping.store(true, Ordering::SeqCst);
                let _ = self.write(batch);
            }
        }
        previous
    }

    /// Writes everything read so far before returning: the batch in
    /// flight, then the pending one. The committed offsets, or `None` if
    /// stopping interrupted a write.
    fn flush(&self) -> Committed {
        let mut committed = self.wait_for_write()?;
        let batch = std::mem::take(&mut *lock(&self.batch));
        committed.extend(self.write(batch)?);
        Some(committed)
    }

    /// Writes `batch`, retrying until it is committed. Returns the committed
    /// offsets, or `None` if stopping interrupted the retries (the records
    /// are then simply read again after restart).
    fn write(&self, mut batch: Batch) -> Committed {
        if batch.next_offsets.is_empty() {
            return Some(HashMap::new());
        }
        let mut attempt = 0u32;
        loop {
            let started = Instant::now();
            let result = {
                let mut sink = lock(&self.sink);
                self.runtime.block_on(sink.write_batch(
                    &self.group,
                    &self.topic,
                    &batch.events,
                    &batch.next_offsets,
                ))
            };
            match result {
                Ok(()) => {
                    self.metrics
                        .commit_seconds
                        .observe_duration(started.elapsed());
                    let stage = &self.metrics.stage;
                    stage.batch(batch.events.len(), batch.started.unwrap_or(started));
                    stage.records_out.inc_by(batch.events.len() as u64);
                    tracing::info!(
                        events = batch.events.len(),
                        commit_ms = started.elapsed().as_millis(),
                        "batch committed"
                    );
                    return Some(batch.next_offsets);
                }
                Err(WriteError::Rejected(reason)) => {
                    tracing::warn!(%reason, "PostgreSQL rejected a row; finding it");
                    if !self.dead_letter_rejected(&mut batch) {
                        return None;
                    }
                }
                Err(e) => {
                    if self.stopping.load(Ordering::Relaxed) {
                        tracing::warn!(error = %e, "stopping with an uncommitted batch; it will be read again");
                        return None;
                    }
                    attempt += 1;
                    let delay = Duration::from_millis(100 * u64::from(attempt.min(50)));
                    tracing::warn!(error = %e, attempt, ?delay, "database write failed; retrying the batch");
                    std::thread::sleep(delay);
                }
            }
        }
    }

    /// Finds the rows PostgreSQL refuses, dead-letters their records (and
    /// waits for the acknowledgements), and removes them from the batch,
    /// whose offsets still cover them. False if stopping interrupted it.
    fn dead_letter_rejected(&self, batch: &mut Batch) -> bool {
        let rejected = loop {
            let found = {
                let mut sink = lock(&self.sink);
                self.runtime.block_on(sink.find_rejected(&batch.events))
            };
            match found {
                Ok(rejected) => break rejected,
                Err(e) => {
                    if self.stopping.load(Ordering::Relaxed) {
                        return false;
                    }
                    tracing::warn!(error = %e, "cannot test the batch's rows; retrying");
                    std::thread::sleep(Duration::from_millis(500));
                }
            }
        };
        if rejected.is_empty() {
            // Not reproducible row by row: retry the batch as it is.
            std::thread::sleep(Duration::from_millis(500));
            return !self.stopping.load(Ordering::Relaxed);
        }
        let records: Vec<_> = rejected
            .iter()
            .filter_map(|(index, reason)| {
                let original = batch.originals.get(*index)?;
                tracing::error!(
                    partition = original.partition(),
                    offset = original.offset(),
                    %reason,
                    "event rejected by PostgreSQL; dead-lettered"
                );
                Some(dead_letter(
                    original,
                    &self.dlq_topic,
                    "sink",
                    "rejected",
                    reason,
                ))
            })
            .collect();
        if !self.write_dead_letters(&records) {
            return false;
        }
        let drop: std::collections::HashSet<usize> = rejected.iter().map(|(i, _)| *i).collect();
        let events = std::mem::take(&mut batch.events);
        let originals = std::mem::take(&mut batch.originals);
        (batch.events, batch.originals) = events
            .into_iter()
            .zip(originals)
            .enumerate()
            .filter(|(index, _)| !drop.contains(index))
            .map(|(_, pair)| pair)
            .unzip();
        true
    }

    /// Writes dead letters and waits for their acknowledgements, retrying
    /// until Kafka takes them. False if stopping interrupted it (the records
    /// are then read again after restart and dead-lettered again).
    fn write_dead_letters(&self, records: &[OutRecord]) -> bool {
        while let Err(e) = self.runtime.block_on(send_all(&self.producer, records)) {
            if self.stopping.load(Ordering::Relaxed) {
                return false;
            }
            tracing::warn!(error = %e, "cannot write to the DLQ; retrying");
            std::thread::sleep(Duration::from_millis(500));
        }
        let n = records.len() as u64;
        self.metrics.stage.dead_letters.inc_by(n);
        self.metrics.stage.records_in.inc_by(n);
        true
    }

    /// The database's offsets, retried until PostgreSQL answers.
    fn stored_offsets(&self) -> Option<HashMap<i32, i64>> {
        let mut attempt = 0u32;
        loop {
            let result = {
                let mut sink = lock(&self.sink);
                self.runtime
                    .block_on(sink.stored_offsets(&self.group, &self.topic))
            };
            match result {
                Ok(offsets) => return Some(offsets),
                Err(e) => {
                    if self.stopping.load(Ordering::Relaxed) {
                        return None;
                    }
                    attempt += 1;
                    tracing::warn!(error = %e, attempt, "cannot read stored offsets; retrying");
                    std::thread::sleep(Duration::from_millis(200 * u64::from(attempt.min(25))));
                }
            }
        }
    }
}

/// Consumer context: seeks to the database's offsets on assignment, flushes
/// before revocation.
struct SinkContext {
    shared: Arc<Shared>,
}

impl ClientContext for SinkContext {}

impl ConsumerContext for SinkContext {
    fn rebalance(
        &self,
        consumer: &BaseConsumer<Self>,
        err: RDKafkaRespErr,
        tpl: &mut TopicPartitionList,
    ) {
        match err {
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS => {
                let Some(stored) = self.shared.stored_offsets() else {
                    return;
                };
                let partitions: Vec<i32> = tpl.elements().iter().map(|e| e.partition()).collect();
                for partition in &partitions {
                    if let Some(next) = stored.get(partition)
                        && let Err(e) = tpl.set_partition_offset(
                            &self.shared.topic,
                            *partition,
                            Offset::Offset(*next),
                        )
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
            }
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS => {
                let _ = self.shared.flush();
                tracing::info!("partitions revoked after flushing");
                if let Err(e) = consumer.unassign() {
                    tracing::error!(error = %e, "unassign failed");
                }
            }
            other => {
                tracing::error!(error = ?other, "rebalance error; releasing partitions");
                *lock(&self.shared.batch) = Batch::default();
                let _ = consumer.unassign();
            }
        }
    }
}

/// The wired stage.
pub struct SinkRunner {
    consumer: BaseConsumer<SinkContext>,
    shared: Arc<Shared>,
    decoder: AvroDecoder,
    writer_schemas: RefCell<HashMap<u32, Arc<DatumDecoder>>>,
    batch_max_events: usize,
    batch_max_wait: Duration,
}

impl SinkRunner {
    /// Migrates the database and connects to Kafka.
    pub fn connect(
        settings: &SinkSettings,
        runtime: Handle,
        stopping: Arc<AtomicBool>,
    ) -> anyhow::Result<Self> {
        let topic = settings.topics.events();
        let dlq_topic = settings.topics.dlq();
        let _ = common::kafka::check_topics(
            &settings.kafka,
            &[&topic, &dlq_topic],
            Duration::from_secs(10),
        )?;
        let mut sink = PostgresSink::new(&settings.database_url);
        runtime.block_on(async {
            let client = sink.client().await?;
            let applied = crate::migrate::apply(client).await?;
            tracing::info!(applied, "database schema up to date");
            anyhow::Ok(())
        })?;
        let sr = SrSettings::new_builder(
            settings
                .schema_registry_url
                .trim_end_matches('/')
                .to_string(),
        )
        .no_proxy()
        .set_timeout(Duration::from_secs(5))
        .build()
        .map_err(|e| anyhow::anyhow!("invalid schema registry settings: {e}"))?;
        let (jobs, pending) = sync_channel::<Batch>(0);
        let (done, results) = sync_channel(1);
        let shared = Arc::new(Shared {
            metrics: SinkMetrics::default(),
            sink: Mutex::new(sink),
            batch: Mutex::new(Batch::default()),
            runtime,
            group: settings.group.clone(),
            topic: topic.clone(),
            stopping,
            producer: settings.kafka.producer().create()?,
            dlq_topic,
            jobs,
            results: Mutex::new(results),
            in_flight: AtomicBool::new(false),
            writing: AtomicBool::new(false),
        });
        let writer = Arc::clone(&shared);
        let _thread = std::thread::Builder::new()
            .name("sink-writer".into())
            .spawn(move || {
                for batch in pending {
                    let committed = writer.write(batch);
                    writer.writing.store(false, Ordering::SeqCst);
                    if done.send(committed).is_err() {
                        break;
                    }
                }
            })
            .context("cannot start the sink's writer thread")?;
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
            decoder: AvroDecoder::new(sr),
            writer_schemas: RefCell::new(HashMap::new()),
            batch_max_events: settings.batch_max_events.max(1),
            batch_max_wait: Duration::from_millis(settings.batch_max_wait_ms),
        })
    }

    /// The stage's metrics (served on `/metrics` by the binary).
    pub fn metrics(&self) -> Arc<StageMetrics> {
        Arc::clone(&self.shared.metrics.stage)
    }

    /// Runs on the calling (non-async) thread until stopping is set.
    pub fn run(self) -> anyhow::Result<()> {
        while !self.shared.stopping.load(Ordering::Relaxed) {
            let writer_free = !self.shared.writing.load(Ordering::SeqCst);
            let started = lock(&self.shared.batch).started;
            let wait = match started {
                None => IDLE_POLL,
                // The writer is free: take what has already arrived, then
                // hand it over rather than wait for more.
                Some(_) if writer_free => Duration::ZERO,
                // The writer is busy: keep filling, and look again soon.
                Some(s) => self
                    .batch_max_wait
                    .saturating_sub(s.elapsed())
                    .min(WRITER_CHECK),
            };
            let polled = self.consumer.poll(wait);
            let nothing_waiting = polled.is_none();
            match polled {
                None => {}
                Some(Err(e)) => tracing::warn!(error = %e, "consumer error"),
                Some(Ok(message)) => self.accept(&message),
            }
            let due = {
                let batch = lock(&self.shared.batch);
                batch.events.len() >= self.batch_max_events
                    || batch.started.is_some_and(|s| {
                        (writer_free && nothing_waiting) || s.elapsed() >= self.batch_max_wait
                    })
            };
            if due {
                self.commit_advisory(self.shared.write_behind());
            }
        }
        tracing::info!("sink stopping; flushing the last batch");
        self.commit_advisory(self.shared.flush());
        Ok(())
    }

    /// Commits the database's offsets to Kafka too (for lag monitoring).
    fn commit_advisory(&self, committed: Committed) {
        let Some(committed) = committed else {
            return;
        };
        if committed.is_empty() {
            return;
        }
        // Advisory only: the database's offsets are the ones that count.
        let mut tpl = TopicPartitionList::new();
        for (partition, next) in &committed {
            let _ = tpl.add_partition_offset(&self.shared.topic, *partition, Offset::Offset(*next));
        }
        let _ = self.consumer.commit(&tpl, CommitMode::Async);
    }

    /// Decodes one record into the batch (or the DLQ).
    fn accept(&self, message: &BorrowedMessage<'_>) {
        let position = Position {
            topic: message.topic().to_string(),
            partition: message.partition(),
            offset: message.offset(),
        };
        let span = tracing::info_span!(
            "sink record",
            partition = message.partition(),
            offset = message.offset()
        );
        common::trace_context::continue_trace(
            &span,
            common::kafka::header_str(message, common::headers::TRACEPARENT),
        );
        let decoded = self.decode(message.payload().unwrap_or_default());
        let mut batch = lock(&self.shared.batch);
        batch.spans.push(span);
        let _ = batch.started.get_or_insert_with(Instant::now);
        let _ = batch
            .next_offsets
            .insert(position.partition, position.offset + 1);
        match decoded {
            Ok(event) => {
                batch.events.push(EventToWrite { event, position });
                batch.originals.push(message.detach());
            }
            Err(reason) => {
                drop(batch);
                self.dead_letter(message, &reason);
            }
        }
    }

    fn decode(&self, bytes: &[u8]) -> Result<schemas::PropertyEvent, String> {
        let (id, datum) = schemas::wire::split(bytes).map_err(|e| e.to_string())?;
        let cached = self.writer_schemas.borrow().get(&id).cloned();
        let datum_decoder = match cached {
            Some(s) => s,
            None => {
                let mut attempt = 0u32;
                let fetched = loop {
                    match self.shared.runtime.block_on(self.decoder.get_schema(id)) {
                        Ok(s) => break Arc::new(DatumDecoder::for_writer(s.parsed.clone())),
                        Err(e) if e.retriable && !self.shared.stopping.load(Ordering::Relaxed) => {
                            attempt += 1;
                            tracing::warn!(id, error = %e, "schema registry unavailable; retrying");
                            self.decoder.remove_errors_from_cache();
                            std::thread::sleep(Duration::from_millis(
                                200 * u64::from(attempt.min(25)),
                            ));
                        }
                        Err(e) => {
                            self.decoder.remove_errors_from_cache();
                            return Err(format!("cannot fetch writer schema {id}: {e}"));
                        }
                    }
                };
                tracing::info!(
                    id,
                    resolved_to_current = fetched.resolves(),
                    "writer schema fetched"
                );
                let _ = self
                    .writer_schemas
                    .borrow_mut()
                    .insert(id, Arc::clone(&fetched));
                fetched
            }
        };
        datum_decoder.decode(datum).map_err(|e| e.to_string())
    }

    fn dead_letter(&self, message: &BorrowedMessage<'_>, reason: &str) {
        tracing::error!(
            partition = message.partition(),
            offset = message.offset(),
            reason,
            "undecodable event dead-lettered"
        );
        let record = dead_letter(message, &self.shared.dlq_topic, "sink", "decode", reason);
        let _ = self.shared.write_dead_letters(&[record]);
    }
}
