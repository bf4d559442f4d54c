//! Hands accepted webhooks to the Kafka producer one broker round trip at a
//! time per partition.
//!
//! librdkafka's idempotent producer (2.12) sends a partition's next
//! ProduceRequest only while fewer than five of that partition's *records*
//! are in flight (`RD_KAFKA_IDEMP_MAX_INFLIGHT` compared with
//! `rktp_msgs_inflight`, a record count, in `rdkafka_broker.c`), so under
//! load a partition has one request in flight. (A second producer would
//! double that, but nisshi answered two producers writing the same
//! partitions 3 to 5 times more slowly than one: BENCHMARKS.md.) Records
//! that arrive meanwhile wait in its queue, and its broker thread polls
//! without sleeping until the acknowledgement comes back. Under load,
//! against a broker taking tens of milliseconds to acknowledge, that spin
//! took ingest 80–90 % of a core, and the broker, on the same machine, then
//! acknowledged more slowly still (BENCHMARKS.md).
//!
//! So handlers do not call the producer themselves. Each partition of
//! `webhooks.raw` has a lane: a queue and one task that gives the producer
//! everything queued so far whenever the producer could send it at once,
//! and otherwise waits for acknowledgements first. The producer never holds
//! records it may not send, so its thread sleeps, and each group leaves as
//! one request. A handler answers 200 only after its own record's
//! acknowledgement; records keep their arrival order within a partition.
//!
//! The lane is chosen as librdkafka's default partitioner would: the CRC-32
//! of the record key modulo the partition count, and keyless records in
//! turn. The partition count is read once, at start.

use std::sync::atomic::{AtomicUsize, Ordering};

use futures::StreamExt as _;
use futures::future::join_all;
use futures::stream::FuturesUnordered;
use rdkafka::error::KafkaError;
use rdkafka::message::OwnedHeaders;
use rdkafka::producer::future_producer::Delivery;
use rdkafka::producer::{FutureProducer, FutureRecord};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

/// Records one group may hold: a bound on memory, far above what arrives
/// during one round trip.
const MAX_GROUP: usize = 10_000;

/// Records a lane holds waiting for its next group; beyond it handlers are
/// refused (and answer 503) instead of queueing without bound.
const MAX_WAITING: usize = 20_000;

/// A record to publish, owning its parts.
#[derive(Debug)]
pub struct OwnedRecord {
    /// Record key.
    pub key: Option<Vec<u8>>,
    /// Record value: the request body, byte for byte.
    pub payload: axum::body::Bytes,
    /// Record headers.
    pub headers: OwnedHeaders,
}

/// Why a record was not stored.
#[derive(Debug, thiserror::Error)]
pub enum HandoverError {
    /// The producer refused or failed the record.
    #[error("Kafka refused the record: {0}")]
    Kafka(#[from] KafkaError),
    /// The lane is gone, or too far behind to take more.
    #[error("the producer is not taking records")]
    Closed,
}

type Reply = oneshot::Sender<Result<Delivery, KafkaError>>;

/// The handlers' side: one queue per partition.
#[derive(Debug)]
pub struct Handover {
    lanes: Vec<mpsc::Sender<(OwnedRecord, Reply)>>,
    keyless: AtomicUsize,
}

impl Handover {
    /// Starts one lane per partition of `topic` on the current Tokio
    /// runtime. The lanes end once the `Handover` is dropped and their
    /// queues are drained.
    pub fn start(
        producer: &FutureProducer,
        topic: &str,
        partitions: usize,
    ) -> (Self, Vec<JoinHandle<()>>) {
        let mut lanes = Vec::with_capacity(partitions.max(1));
        let mut tasks = Vec::with_capacity(partitions.max(1));
        for partition in 0..partitions.max(1) {
            let (queue, waiting) = mpsc::channel(MAX_WAITING);
            let partition = i32::try_from(partition).unwrap_or(i32::MAX);
            tasks.push(tokio::spawn(hand_over(
                producer.clone(),
                topic.to_string(),
                partition,
                waiting,
            )));
            lanes.push(queue);
        }
        let handover = Self {
            lanes,
            keyless: AtomicUsize::new(0),
        };
        (handover, tasks)
    }

    /// Queues `record` on its partition's lane and waits until the broker
    /// acknowledged it.
    pub async fn publish(&self, record: OwnedRecord) -> Result<Delivery, HandoverError> {
        let turn = self.keyless.fetch_add(1, Ordering::Relaxed);
        let lane = lane_of(record.key.as_deref(), self.lanes.len(), turn);
        let queue = self.lanes.get(lane).ok_or(HandoverError::Closed)?;
        let (reply, acknowledged) = oneshot::channel();
        queue
            .try_send((record, reply))
            .map_err(|_| HandoverError::Closed)?;
        match acknowledged.await {
            Ok(result) => Ok(result?),
            Err(_dropped) => Err(HandoverError::Closed),
        }
    }
}

/// The lane of a record: librdkafka's `consistent_random` partitioner (the
/// CRC-32 of a non-empty key modulo `lanes`), with `turn` spreading keyless
/// records.
pub fn lane_of(key: Option<&[u8]>, lanes: usize, turn: usize) -> usize {
    let lanes = lanes.max(1);
    match key {
        Some(key) if !key.is_empty() => crc32(key) as usize % lanes,
        _ => turn % lanes,
    }
}

/// CRC-32 (IEEE 802.3, reflected), the checksum librdkafka hashes keys with.
pub fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = 0xFFFF_FFFF_u32;
    for &byte in bytes {
        crc ^= u32::from(byte);
        for _ in 0..8 {
            let mask = (crc & 1).wrapping_neg();
            crc = (crc >> 1) ^ (0xEDB8_8320 & mask);
        }
    }
    !crc
}

/// Records a partition may have in flight before librdkafka's idempotent
/// producer holds back its next request (`RD_KAFKA_IDEMP_MAX_INFLIGHT`).
const PRODUCER_WINDOW: usize = 5;

/// A lane's task. While fewer than [`PRODUCER_WINDOW`] of its records are
/// in flight, it gives the producer everything queued so far, which
/// librdkafka sends at once, as it would have. At the window it waits for
/// acknowledgements instead, so the producer never holds records it may not
/// send. Each acknowledgement answers its handler.
async fn hand_over(
    producer: FutureProducer,
    topic: String,
    partition: i32,
    mut waiting: mpsc::Receiver<(OwnedRecord, Reply)>,
) {
    let mut in_flight = FuturesUnordered::new();
    let mut records_in_flight = 0usize;
    loop {
        tokio::select! {
            first = waiting.recv(), if records_in_flight < PRODUCER_WINDOW => {
                let Some(first) = first else {
                    break;
                };
                let mut group = vec![first];
                while group.len() < MAX_GROUP {
                    match waiting.try_recv() {
                        Ok(next) => group.push(next),
                        Err(_) => break,
                    }
                }
                records_in_flight += group.len();
                in_flight.push(send_group(&producer, &topic, partition, group));
            }
            Some(acknowledged) = in_flight.next(), if !in_flight.is_empty() => {
                records_in_flight = records_in_flight.saturating_sub(acknowledged);
            }
        }
    }
    while in_flight.next().await.is_some() {}
}

/// Enqueues `group` to `partition` now; the future answers each record's
/// handler as its acknowledgement (or refusal) comes and resolves to the
/// group's size.
fn send_group(
    producer: &FutureProducer,
    topic: &str,
    partition: i32,
    group: Vec<(OwnedRecord, Reply)>,
) -> impl std::future::Future<Output = usize> + use<> {
    let count = group.len();
    let mut pending = Vec::with_capacity(count);
    for (record, reply) in group {
        let mut future_record = FutureRecord::to(topic)
            .partition(partition)
            .payload(record.payload.as_ref())
            .headers(record.headers);
        if let Some(key) = record.key.as_deref() {
            future_record = future_record.key(key);
        }
        match producer.send_result(future_record) {
            Ok(delivery) => pending.push(async move {
                let result = match delivery.await {
                    Ok(Ok(delivered)) => Ok(delivered),
                    Ok(Err((e, _))) => Err(e),
                    Err(_canceled) => Err(KafkaError::Canceled),
                };
                // The handler may have stopped waiting; nothing to tell.
                let _ = reply.send(result);
            }),
            Err((e, _)) => {
                let _ = reply.send(Err(e));
            }
        }
    }
    async move {
        let _ = join_all(pending).await;
        count
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc32_is_the_ieee_checksum() {
        assert_eq!(crc32(b"123456789"), 0xCBF4_3926);
        assert_eq!(crc32(b""), 0);
    }

    #[test]
    fn a_key_always_takes_the_same_lane() {
        let key = Some(&b"evt_123456"[..]);
        let first = lane_of(key, 3, 0);
        assert!((0..10).all(|turn| lane_of(key, 3, turn) == first));
        assert_eq!(first, crc32(b"evt_123456") as usize % 3);
    }

    #[test]
    fn keyless_records_take_the_lanes_in_turn() {
        let lanes: Vec<usize> = (0..6).map(|turn| lane_of(None, 3, turn)).collect();
        assert_eq!(lanes, [0, 1, 2, 0, 1, 2]);
        assert_eq!(lane_of(Some(b""), 3, 4), 1);
    }

    #[test]
    fn no_partition_count_still_has_one_lane() {
        assert_eq!(lane_of(Some(b"k"), 0, 7), 0);
    }
}
