//! The dedupe loop: `properties.normalized` → `properties.events` (+ `properties.latest`).
//!
//! Exactly-once argument without broker transactions (the output-first
//! recovery of DESIGN.md, "Dedupe"). Records are taken in batches (up to
//! `batch.max_records`, waiting at most `batch.max_wait_ms` for more); for
//! the first sightings of a batch on partition P:
//! 1. they are produced to partition P of `properties.events`, in input
//!    order, with their `dedupe-key` and `source-offset` headers, and all
//!    acknowledged;
//! 2. only then their changelog records (key → first sighting and output
//!    offset) are produced to partition P of `dedupe.seen` and acknowledged;
//! 3. only then the batch's input offsets are committed.
//!
//! On assignment, before any record of P is processed, P's state is rebuilt
//! from the changelog and then from the output partition's tail past the
//! last offset the changelog knows ([`crate::restore`]). A crash after 1 but
//! before 2 therefore still finds the key (in the output's tail) and drops
//! the re-delivered record; a crash after 2 but before 3 finds it in the
//! changelog. A key twice in one batch is forwarded once
//! ([`crate::batch`]). Precondition: one instance owns P at a time (the
//! consumer group guarantees it) and batches are processed one at a time,
//! in order, on this thread. The rebalance callback runs on the same thread
//! inside `poll`, so it can only run while a batch is being read, never
//! while one is being written; records of a partition revoked while their
//! batch was read are neither processed nor committed here.
//!
//! Keys are remembered for the TTL (default 7 days, longer than any
//! provider's retry schedule); a periodic sweep forgets older keys and writes
//! their tombstones, so `dedupe.seen` stays bounded once compacted.
//!
//! Where the broker supports transactions (Apache Kafka; detected at start
//! by [`crate::transactions`], logged once) the same steps run inside one
//! Kafka transaction that also commits the input offset, so they become
//! visible together or not at all (consumers of `properties.events` read
//! with `isolation.level=read_committed`, librdkafka's default). A failed
//! transaction is aborted and ends the process; the restarted instance
//! resumes from the last committed one. The local broker refuses
//! transactions, so the crash tests prove the output-first mode.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::Context;
use common::headers;
use common::instruments::Counter;
use common::kafka::{BatchSettings, KafkaSettings, header_str};
use common::produce::{OutRecord, Stored, send_all};
use common::stage_metrics::StageMetrics;
use rdkafka::Message;
use rdkafka::client::ClientContext;
use rdkafka::consumer::{
    BaseConsumer, CommitMode, Consumer, ConsumerContext, ConsumerGroupMetadata,
};
use rdkafka::message::BorrowedMessage;
use rdkafka::producer::{FutureProducer, Producer};
use rdkafka::topic_partition_list::TopicPartitionList;
use rdkafka::types::RDKafkaRespErr;
use tokio::runtime::Handle;

use crate::batch::{BatchDecision, BatchRecord, decide_batch};
use crate::changelog::SeenRecord;
use crate::restore::restore_partition;
use crate::settings::DedupeSettings;
use crate::state::PartitionState;
use crate::transactions::{Mode, TRANSACTION_TIMEOUT, open_producer};

fn now_ms() -> i64 {
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

/// What the consumer thread and its rebalance callback share.
struct Shared {
    kafka: KafkaSettings,
    seen_topic: String,
    events_topic: String,
    input_topic: String,
    producer: FutureProducer,
    mode: Mode,
    runtime: Handle,
    states: Mutex<HashMap<i32, PartitionState>>,
    stopping: Arc<AtomicBool>,
}

impl Shared {
    fn states(&self) -> std::sync::MutexGuard<'_, HashMap<i32, PartitionState>> {
        self.states.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Produces `records` and waits for their acknowledgements. Without
    /// transactions a failure is retried until it works (or we stop); in a
    /// transaction it is returned, so the transaction aborts.
    fn send(&self, records: &[OutRecord]) -> anyhow::Result<Vec<Stored>> {
        let mut attempt = 0u32;
        loop {
            match self.runtime.block_on(send_all(&self.producer, records)) {
                Ok(stored) => return Ok(stored),
                Err(e) if self.mode == Mode::Transactional => return Err(e.into()),
                Err(e) => {
                    if self.stopping.load(Ordering::Relaxed) {
                        anyhow::bail!("stopping with unacknowledged records: {e}");
                    }
                    attempt += 1;
                    tracing::warn!(error = %e, attempt, "produce failed; retrying");
                    std::thread::sleep(Duration::from_millis(100 * u64::from(attempt.min(50))));
                }
            }
        }
    }

    /// Runs `body` inside one Kafka transaction, committing `offsets` for
    /// the consumer group with it, when the mode has transactions; runs it
    /// as is otherwise. A failed transaction is aborted and its error returned.
    fn in_transaction<T>(
        &self,
        offsets: Option<(&TopicPartitionList, &ConsumerGroupMetadata)>,
        body: impl FnOnce() -> anyhow::Result<T>,
    ) -> anyhow::Result<T> {
        if self.mode == Mode::OutputFirst {
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

    /// Restores one partition, retrying until it works or we stop.
    fn restore(&self, partition: i32) -> Option<PartitionState> {
        let mut attempt = 0u32;
        loop {
            match restore_partition(&self.kafka, &self.seen_topic, &self.events_topic, partition) {
                Ok(restored) => {
                    let mut state = restored.state;
                    let records: Vec<OutRecord> = restored
                        .recovered
                        .iter()
                        .map(|r| {
                            self.changelog_record(
                                partition,
                                &r.key,
                                r.seen_ms,
                                r.output_offset,
                                r.source_offset,
                            )
                        })
                        .collect();
                    if !records.is_empty() {
                        tracing::info!(
                            partition,
                            count = records.len(),
                            "writing changelog records missing after a crash"
                        );
                        if let Err(e) = self.in_transaction(None, || self.send(&records)) {
                            tracing::warn!(partition, error = %e, "cannot write recovered changelog records; retrying restore");
                            attempt += 1;
                            std::thread::sleep(Duration::from_millis(
                                200 * u64::from(attempt.min(20)),
                            ));
                            continue;
                        }
                        for r in &restored.recovered {
                            state.covered_output(r.output_offset);
                        }
                    }
                    tracing::info!(
                        partition,
                        keys = state.len(),
                        changelog_records = restored.changelog_records,
                        recovered = restored.recovered.len(),
                        "partition state restored"
                    );
                    return Some(state);
                }
                Err(e) => {
                    if self.stopping.load(Ordering::Relaxed) {
                        return None;
                    }
                    attempt += 1;
                    tracing::warn!(partition, error = %e, "restore failed; retrying");
                    std::thread::sleep(Duration::from_millis(200 * u64::from(attempt.min(20))));
                }
            }
        }
    }

    fn changelog_record(
        &self,
        partition: i32,
        key: &str,
        first_seen_ms: i64,
        output_offset: i64,
        source_offset: i64,
    ) -> OutRecord {
        OutRecord {
            topic: self.seen_topic.clone(),
            partition: Some(partition),
            key: Some(key.as_bytes().to_vec()),
            payload: Some(
                SeenRecord {
                    first_seen_ms,
                    output_offset,
                    source_offset,
                }
                .encode(),
            ),
            headers: Vec::new(),
        }
    }
}

/// Consumer context: restores state on assignment, drops it on revocation.
struct DedupeContext {
    shared: Arc<Shared>,
}

impl ClientContext for DedupeContext {}

impl ConsumerContext for DedupeContext {
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
                    .filter(|e| e.topic() == self.shared.input_topic)
                    .map(|e| e.partition())
                    .collect();
                tracing::info!(
                    ?partitions,
                    "partitions assigned; restoring state before processing"
                );
                for partition in partitions {
                    match self.shared.restore(partition) {
                        Some(state) => {
                            let _ = self.shared.states().insert(partition, state);
                        }
                        None => return,
                    }
                }
                if let Err(e) = consumer.assign(tpl) {
                    tracing::error!(error = %e, "assign failed");
                }
            }
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS => {
                let partitions: Vec<i32> = tpl.elements().iter().map(|e| e.partition()).collect();
                tracing::info!(?partitions, "partitions revoked; dropping their state");
                {
                    let mut states = self.shared.states();
                    for p in &partitions {
                        let _ = states.remove(p);
                    }
                }
                if let Err(e) = consumer.unassign() {
                    tracing::error!(error = %e, "unassign failed");
                }
            }
            other => {
                tracing::error!(error = ?other, "rebalance error; releasing partitions");
                self.shared.states().clear();
                let _ = consumer.unassign();
            }
        }
    }
}

/// The wired stage.
pub struct Deduper {
    consumer: BaseConsumer<DedupeContext>,
    shared: Arc<Shared>,
    ttl_ms: i64,
    expiry_interval: Duration,
    latest_topic: String,
    batch: BatchSettings,
    /// Counters.
    pub metrics: DedupeMetrics,
}

impl Deduper {
    /// Connects; `runtime` runs the async producer waits, `stopping` ends the loop.
    pub fn connect(
        settings: &DedupeSettings,
        runtime: Handle,
        stopping: Arc<AtomicBool>,
    ) -> anyhow::Result<Self> {
        let topics = &settings.topics;
        let names = [
            topics.normalized(),
            topics.events(),
            topics.seen(),
            topics.latest(),
        ];
        let refs: Vec<&str> = names.iter().map(String::as_str).collect();
        let counts = common::kafka::check_topics(&settings.kafka, &refs, Duration::from_secs(10))?;
        anyhow::ensure!(
            counts[0] == counts[1] && counts[0] == counts[2],
            "{}, {} and {} must have the same partition count (co-partitioning), found {counts:?}",
            names[0],
            names[1],
            names[2]
        );
        let (producer, mode) = open_producer(settings)?;
        let shared = Arc::new(Shared {
            kafka: settings.kafka.clone(),
            seen_topic: topics.seen(),
            events_topic: topics.events(),
            input_topic: topics.normalized(),
            producer,
            mode,
            runtime,
            states: Mutex::new(HashMap::new()),
            stopping,
        });
        let consumer: BaseConsumer<DedupeContext> = settings
            .kafka
            .consumer(&settings.group)
            .set("partition.assignment.strategy", "range")
            .create_with_context(DedupeContext {
                shared: Arc::clone(&shared),
            })
            .context("cannot create the Kafka consumer")?;
        consumer.subscribe(&[&topics.normalized()])?;
        tracing::info!(
            mode = mode.describe(),
            input = %topics.normalized(),
            output = %topics.events(),
            changelog = %topics.seen(),
            "dedupe running"
        );
        Ok(Self {
            consumer,
            shared,
            ttl_ms: i64::try_from(settings.ttl_secs.saturating_mul(1000)).unwrap_or(i64::MAX),
            expiry_interval: Duration::from_secs(settings.expiry_interval_secs.max(1)),
            latest_topic: topics.latest(),
            batch: settings.batch,
            metrics: DedupeMetrics::default(),
        })
    }

    /// The delivery mode detected at start.
    pub fn mode(&self) -> Mode {
        self.shared.mode
    }

    /// Runs on the calling (non-async) thread until `stopping` is set. A
    /// failed transaction ends it with an error: the process exits and, once
    /// restarted, resumes from the last committed transaction.
    pub fn run(self) -> anyhow::Result<()> {
        let mut last_sweep: Option<Instant> = None;
        while !self.stopping() {
            if last_sweep.is_none_or(|t| t.elapsed() >= self.expiry_interval) {
                match self.sweep_expired() {
                    Ok(()) => last_sweep = Some(Instant::now()),
                    Err(_) if self.stopping() => break,
                    Err(e) => return Err(e.context("expiry sweep failed")),
                }
            }
            let (batch, started) = self.next_batch();
            if batch.is_empty() {
                continue;
            }
            let (processed, offsets_committed) = match self.handle(&batch) {
                Ok(outcome) => outcome,
                Err(_) if self.stopping() => break,
                Err(e) => return Err(e.context("forwarding failed")),
            };
            self.metrics.stage.batch(processed.len(), started);
            if !offsets_committed && !processed.is_empty() {
                let tpl = common::kafka::offsets_after_all(processed.iter().copied())?;
                if let Err(e) = self.consumer.commit(&tpl, CommitMode::Async) {
                    tracing::warn!(error = %e, "offset commit failed; the records will be seen again and dropped");
                }
            }
        }
        tracing::info!("dedupe stopping");
        if self.shared.mode == Mode::OutputFirst {
            let _ = self.consumer.commit_consumer_state(CommitMode::Sync);
        }
        Ok(())
    }

    fn stopping(&self) -> bool {
        self.shared.stopping.load(Ordering::Relaxed)
    }

    /// Forgets keys past the TTL and writes their tombstones to the same
    /// changelog partition, so the compacted topic stays bounded. If the
    /// writes fail the keys are restored from the changelog at the next start
    /// and expire again.
    fn sweep_expired(&self) -> anyhow::Result<()> {
        let now = now_ms();
        let expired: Vec<(i32, Vec<String>)> = self
            .shared
            .states()
            .iter_mut()
            .map(|(partition, state)| (*partition, state.expire(now, self.ttl_ms)))
            .filter(|(_, keys)| !keys.is_empty())
            .collect();
        let tombstones: Vec<OutRecord> = expired
            .iter()
            .flat_map(|(partition, keys)| {
                keys.iter().map(|key| OutRecord {
                    topic: self.shared.seen_topic.clone(),
                    partition: Some(*partition),
                    key: Some(key.as_bytes().to_vec()),
                    payload: None,
                    headers: Vec::new(),
                })
            })
            .collect();
        if tombstones.is_empty() {
            return Ok(());
        }
        let _ = self
            .shared
            .in_transaction(None, || self.shared.send(&tombstones))?;
        self.metrics.expired.inc_by(tombstones.len() as u64);
        tracing::info!(
            keys = tombstones.len(),
            "expired keys forgotten and tombstoned"
        );
        Ok(())
    }

    /// Handles one record until its outputs are durable. `Ok(true)` when
    /// its input offset was committed with them (a transaction), `Ok(false)`
    /// when the caller must commit it.
    /// Waits up to 100 ms for a record, then takes what else arrives within
    /// the batch wait, up to the batch size. Empty when nothing came.
    fn next_batch(&self) -> (Vec<BorrowedMessage<'_>>, Instant) {
        let mut batch = Vec::new();
        let mut first_at: Option<Instant> = None;
        let mut deadline: Option<Instant> = None;
        while batch.len() < self.batch.max_records() {
            let wait = match deadline {
                None => Duration::from_millis(100),
                Some(deadline) => deadline.saturating_duration_since(Instant::now()),
            };
            match self.consumer.poll(wait) {
                Some(Ok(message)) => {
                    batch.push(message);
                    let _ = first_at.get_or_insert_with(Instant::now);
                    let _ = deadline.get_or_insert_with(|| Instant::now() + self.batch.max_wait());
                }
                Some(Err(e)) => tracing::warn!(error = %e, "consumer error"),
                None => break,
            }
            if deadline.is_some_and(|d| Instant::now() >= d) {
                break;
            }
        }
        (batch, first_at.unwrap_or_else(Instant::now))
    }

    /// Decides and forwards a batch. Returns the records it processed (those
    /// of partitions still assigned here) and whether their offsets were
    /// already committed (inside a transaction).
    fn handle<'a>(
        &self,
        batch: &'a [BorrowedMessage<'a>],
    ) -> anyhow::Result<(Vec<&'a BorrowedMessage<'a>>, bool)> {
        let keys: Vec<String> = batch
            .iter()
            .map(|message| match header_str(message, headers::DEDUPE_KEY) {
                Some(key) => key.to_string(),
                None => {
                    tracing::error!(
                        partition = message.partition(),
                        offset = message.offset(),
                        "record without a dedupe-key header forwarded as is"
                    );
                    format!("offset:{}:{}", message.partition(), message.offset())
                }
            })
            .collect();
        let now = now_ms();
        let decisions = {
            let items: Vec<BatchRecord<'_>> = batch
                .iter()
                .zip(&keys)
                .map(|(m, k)| BatchRecord {
                    partition: m.partition(),
                    key: k.as_str(),
                    replayed: header_str(m, headers::REPLAY_ID).is_some(),
                })
                .collect();
            decide_batch(&self.shared.states(), &items, now, self.ttl_ms)
        };
        let mut processed = Vec::with_capacity(batch.len());
        let mut outputs = Vec::new();
        let mut corrections = 0u64;
        // (partition, key, source offset, index of its event in `outputs`)
        let mut forwards: Vec<(i32, &str, i64, usize)> = Vec::new();
        // One span per record, open until the batch is written.
        let mut spans = Vec::with_capacity(batch.len());
        for ((message, key), decision) in batch.iter().zip(&keys).zip(&decisions) {
            if *decision == BatchDecision::NotOwned {
                continue;
            }
            let span = tracing::info_span!(
                "dedupe record",
                partition = message.partition(),
                offset = message.offset(),
                decision = ?decision
            );
            let received = header_str(message, headers::TRACEPARENT);
            common::trace_context::continue_trace(&span, received);
            let traceparent = common::trace_context::traceparent_of(&span)
                .or_else(|| received.map(str::to_string))
                .unwrap_or_default();
            spans.push(span);
            match decision {
                BatchDecision::NotOwned => continue,
                BatchDecision::Duplicate => {
                    self.metrics.duplicates.inc();
                    tracing::debug!(
                        key,
                        partition = message.partition(),
                        offset = message.offset(),
                        "duplicate dropped"
                    );
                }
                BatchDecision::Forward => {
                    tracing::debug!(
                        key,
                        partition = message.partition(),
                        offset = message.offset(),
                        "forwarded"
                    );
                    let index = self.outputs_of(message, &traceparent, &mut outputs);
                    forwards.push((message.partition(), key, message.offset(), index));
                }
                BatchDecision::Correction => {
                    corrections += 1;
                    tracing::info!(
                        key,
                        partition = message.partition(),
                        offset = message.offset(),
                        replay_id = header_str(message, headers::REPLAY_ID),
                        "correction forwarded"
                    );
                    let _ = self.outputs_of(message, &traceparent, &mut outputs);
                }
            }
            processed.push(message);
        }
        if outputs.is_empty() {
            tracing::info!(
                records = processed.len(),
                forwarded = 0,
                "batch deduplicated"
            );
            return Ok((processed, false));
        }
        let transactional = self.shared.mode == Mode::Transactional;
        let next = common::kafka::offsets_after_all(processed.iter().copied())?;
        let group =
            if transactional {
                Some(self.consumer.group_metadata().ok_or_else(|| {
                    anyhow::anyhow!("no consumer group metadata for the transaction")
                })?)
            } else {
                None
            };
        let output_offsets =
            self.shared
                .in_transaction(group.as_ref().map(|g| (&next, g)), || {
                    let stored = self.shared.send(&outputs)?;
                    let mut output_offsets = Vec::with_capacity(forwards.len());
                    let mut changelog = Vec::with_capacity(forwards.len());
                    for &(partition, key, source_offset, index) in &forwards {
                        let output_offset =
                            stored.get(index).map(|s| s.offset).ok_or_else(|| {
                                anyhow::anyhow!("no acknowledgement for an output record")
                            })?;
                        output_offsets.push(output_offset);
                        changelog.push(self.shared.changelog_record(
                            partition,
                            key,
                            now,
                            output_offset,
                            source_offset,
                        ));
                    }
                    if !changelog.is_empty() {
                        let _ = self.shared.send(&changelog)?;
                    }
                    Ok(output_offsets)
                })?;
        {
            let mut states = self.shared.states();
            for (&(partition, key, _, _), output_offset) in forwards.iter().zip(&output_offsets) {
                if let Some(state) = states.get_mut(&partition) {
                    state.remember(key, now);
                    state.covered_output(*output_offset);
                }
            }
        }
        self.metrics
            .stage
            .records_out
            .inc_by(forwards.len() as u64 + corrections);
        self.metrics.corrections.inc_by(corrections);
        drop(spans);
        tracing::info!(
            records = processed.len(),
            forwarded = forwards.len(),
            corrections,
            "batch deduplicated"
        );
        Ok((processed, transactional))
    }

    /// Appends the records a first sighting produces: the event on the
    /// input's partition of `properties.events`, and its snapshot on
    /// `properties.latest` when it has one. Each carries only the headers
    /// its readers use: the event its `dedupe-key` and `source-offset`
    /// (state restoration), `event-type` and `replay-id`; the snapshot its
    /// `dedupe-key`; both the new `traceparent`. Returns the index of the
    /// event in `outputs`: its acknowledged offset is the one the changelog
    /// records.
    ///
    /// Size: these outputs cannot exceed the producer's `message_max_bytes`
    /// when dedupe and normalize share it (the default), so dedupe has no
    /// size check and no dead-letter path. Each output is the input's key
    /// and value with at most the input's headers, minus `has-snapshot`,
    /// plus `source-offset` and a fresh `traceparent`: at most 72 bytes
    /// more, and normalize sends only events that fit its budget minus
    /// `common::produce::FORWARDING_ALLOWANCE` (128 bytes) for this. A lower
    /// limit here than in normalize, or a `properties.events` topic whose
    /// `max.message.bytes` is below it, would make `send` retry a refused
    /// batch forever: keep the limits equal (issue 19 will give dedupe
    /// per-record results).
    fn outputs_of(
        &self,
        message: &BorrowedMessage<'_>,
        traceparent: &str,
        outputs: &mut Vec<OutRecord>,
    ) -> usize {
        let record = |topic: &str, partition| OutRecord {
            topic: topic.to_string(),
            partition,
            key: message.key().map(<[u8]>::to_vec),
            payload: message.payload().map(<[u8]>::to_vec),
            headers: Vec::new(),
        };
        if header_str(message, headers::HAS_SNAPSHOT) == Some("true") {
            outputs.push(
                record(&self.latest_topic, None)
                    .header(headers::TRACEPARENT, traceparent)
                    .with_headers_named(message, &[headers::DEDUPE_KEY]),
            );
        }
        outputs.push(
            record(&self.shared.events_topic, Some(message.partition()))
                .header(headers::TRACEPARENT, traceparent)
                .with_headers_named(
                    message,
                    &[headers::DEDUPE_KEY, headers::EVENT_TYPE, headers::REPLAY_ID],
                )
                .header(headers::SOURCE_OFFSET, message.offset().to_string()),
        );
        outputs.len() - 1
    }
}
