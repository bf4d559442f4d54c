//! The dedupe loop: `properties.normalized` → `properties.events` (+ `properties.latest`).
//!
//! Exactly-once argument without broker transactions (the output-first
//! recovery of DESIGN.md, "Dedupe"). For an input record on partition P:
//! 1. a first sighting is produced to partition P of `properties.events`,
//!    with its `dedupe-key` and `source-offset` headers, and acknowledged;
//! 2. only then its changelog record (key → first sighting and output
//!    offset) is produced to partition P of `dedupe.seen` and acknowledged;
//! 3. only then the input offset is committed.
//!
//! On assignment, before any record of P is processed, P's state is rebuilt
//! from the changelog and then from the output partition's tail past the
//! last offset the changelog knows ([`crate::restore`]). A crash after 1 but
//! before 2 therefore still finds the key (in the output's tail) and drops
//! the re-delivered record; a crash after 2 but before 3 finds it in the
//! changelog. Precondition: one instance owns P at a time (the consumer
//! group guarantees it) and records of P are processed one at a time, in
//! order, on this thread; the rebalance callback runs on the same thread,
//! so nothing is in flight when partitions are revoked.
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
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::Context;
use common::headers;
use common::kafka::{KafkaSettings, header_str};
use common::produce::{OutRecord, Stored, send_all};
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

use crate::changelog::SeenRecord;
use crate::restore::restore_partition;
use crate::settings::DedupeSettings;
use crate::state::{Decision, PartitionState};
use crate::transactions::{Mode, TRANSACTION_TIMEOUT, open_producer};

/// Header normalize sets when the event carries a property snapshot.
const HAS_SNAPSHOT: &str = "has-snapshot";

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// Counters exposed by the stage.
#[derive(Debug, Default)]
pub struct Counters {
    /// Events forwarded.
    pub forwarded: AtomicU64,
    /// Duplicates dropped.
    pub duplicates: AtomicU64,
    /// Keys expired after the TTL.
    pub expired: AtomicU64,
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
    /// Counters.
    pub counters: Arc<Counters>,
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
            counters: Arc::new(Counters::default()),
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
            let message = match self.consumer.poll(Duration::from_millis(100)) {
                None => continue,
                Some(Err(e)) => {
                    tracing::warn!(error = %e, "consumer error");
                    continue;
                }
                Some(Ok(message)) => message,
            };
            let offsets_committed = match self.handle(&message) {
                Ok(committed) => committed,
                Err(_) if self.stopping() => break,
                Err(e) => return Err(e.context("forwarding failed")),
            };
            if !offsets_committed {
                let tpl = common::kafka::offset_after(&message)?;
                if let Err(e) = self.consumer.commit(&tpl, CommitMode::Async) {
                    tracing::warn!(error = %e, "offset commit failed; the record will be seen again and dropped");
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
        let _ = self
            .counters
            .expired
            .fetch_add(tombstones.len() as u64, Ordering::Relaxed);
        tracing::info!(
            keys = tombstones.len(),
            "expired keys forgotten and tombstoned"
        );
        Ok(())
    }

    /// Handles one record until its outputs are durable. `Ok(true)` when
    /// its input offset was committed with them (a transaction), `Ok(false)`
    /// when the caller must commit it.
    fn handle(&self, message: &BorrowedMessage<'_>) -> anyhow::Result<bool> {
        let partition = message.partition();
        let Some(key) = header_str(message, headers::DEDUPE_KEY).map(str::to_string) else {
            tracing::error!(
                partition,
                offset = message.offset(),
                "record without a dedupe-key header forwarded as is"
            );
            let key = format!("offset:{}:{}", partition, message.offset());
            return self.forward(message, partition, &key);
        };
        let now = now_ms();
        let decision = self
            .shared
            .states()
            .get(&partition)
            .map_or(Decision::Forward, |s| s.decide(&key, now, self.ttl_ms));
        match decision {
            Decision::Duplicate => {
                let _ = self.counters.duplicates.fetch_add(1, Ordering::Relaxed);
                tracing::debug!(
                    key,
                    partition,
                    offset = message.offset(),
                    "duplicate dropped"
                );
                Ok(false)
            }
            Decision::Forward => self.forward(message, partition, &key),
        }
    }

    /// Writes the event (and its snapshot), then its changelog record, in
    /// one transaction with the input offset when the broker has them.
    fn forward(
        &self,
        message: &BorrowedMessage<'_>,
        partition: i32,
        key: &str,
    ) -> anyhow::Result<bool> {
        let output = OutRecord {
            topic: self.shared.events_topic.clone(),
            partition: Some(partition),
            key: message.key().map(<[u8]>::to_vec),
            payload: message.payload().map(<[u8]>::to_vec),
            headers: Vec::new(),
        }
        .with_headers_of(message, &[headers::SOURCE_OFFSET])
        .header(headers::SOURCE_OFFSET, message.offset().to_string());
        let mut records = vec![output.clone()];
        if header_str(message, HAS_SNAPSHOT) == Some("true") {
            records.push(OutRecord {
                topic: self.latest_topic.clone(),
                partition: None,
                ..output
            });
        }
        let now = now_ms();
        let transactional = self.shared.mode == Mode::Transactional;
        let next = common::kafka::offset_after(message)?;
        let group =
            if transactional {
                Some(self.consumer.group_metadata().ok_or_else(|| {
                    anyhow::anyhow!("no consumer group metadata for the transaction")
                })?)
            } else {
                None
            };
        let output_offset =
            self.shared
                .in_transaction(group.as_ref().map(|g| (&next, g)), || {
                    let stored = self.shared.send(&records)?;
                    let output_offset = stored.first().map(|s| s.offset).ok_or_else(|| {
                        anyhow::anyhow!("no acknowledgement for the output record")
                    })?;
                    let changelog = self.shared.changelog_record(
                        partition,
                        key,
                        now,
                        output_offset,
                        message.offset(),
                    );
                    let _ = self.shared.send(std::slice::from_ref(&changelog))?;
                    Ok(output_offset)
                })?;
        if let Some(state) = self.shared.states().get_mut(&partition) {
            state.remember(key, now);
            state.covered_output(output_offset);
        }
        let _ = self.counters.forwarded.fetch_add(1, Ordering::Relaxed);
        tracing::debug!(key, partition, output_offset, "forwarded");
        Ok(transactional)
    }
}
