//! Rebuilds one input partition's dedupe state before it is processed.
//!
//! Two reads, both to the high watermark observed at the start:
//! 1. the same partition of the changelog `dedupe.seen`: every key with its
//!    first sighting (tombstones remove keys), and the highest output offset
//!    the changelog knows;
//! 2. the same partition of `properties.events`, from just past that offset:
//!    events that reached the output before a crash but whose changelog
//!    record was never written. Their keys are remembered too (a key
//!    already known keeps its first sighting: the tail may hold a
//!    correction), and returned so the caller writes the missing changelog
//!    records.
//!
//! Both reads also give the partition's `forwarded_through`: the highest
//! input offset (`source_offset`) whose event is on the output, so inputs
//! redelivered after a crash or a partial failure are never forwarded again.
//!
//! A read has no fixed deadline: it fails only when it makes no progress for
//! [`STALL_DEADLINE`], however large the changelog, and it reports its
//! progress through the caller's callback every few seconds. The runner
//! runs it outside the rebalance callback, on a thread of its own.

use std::time::{Duration, Instant};

use anyhow::Context;
use common::headers;
use common::kafka::{KafkaSettings, header_str};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::{Message, Offset, TopicPartitionList};

use crate::changelog::SeenRecord;
use crate::state::PartitionState;

/// An output record with no changelog record yet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recovered {
    /// Dedupe key.
    pub key: String,
    /// Its record in the output partition.
    pub output_offset: i64,
    /// The input offset it came from, when the header says.
    pub source_offset: i64,
    /// Output record time, Unix ms.
    pub seen_ms: i64,
}

/// Result of restoring one partition.
#[derive(Debug, Default)]
pub struct Restored {
    /// The state.
    pub state: PartitionState,
    /// Output records whose changelog records are missing.
    pub recovered: Vec<Recovered>,
    /// Changelog records read.
    pub changelog_records: u64,
}

/// Longest a restore read may go without reading a record before it is
/// reported as stuck.
pub const STALL_DEADLINE: Duration = Duration::from_secs(30);

/// How often progress is reported.
const PROGRESS_EVERY: Duration = Duration::from_secs(2);

/// Where a restore read stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Progress {
    /// Records read so far from the topic being read.
    pub read: u64,
    /// Records to read from it (from the start offset to the high watermark).
    pub total: u64,
}

/// Restores `partition` from `seen_topic` and `events_topic`, calling
/// `progress` every few seconds while it reads.
pub fn restore_partition(
    kafka: &KafkaSettings,
    seen_topic: &str,
    events_topic: &str,
    partition: i32,
    progress: &dyn Fn(&str, Progress),
) -> anyhow::Result<Restored> {
    let reader: BaseConsumer = kafka
        .reader()
        .create()
        .context("cannot create a restore reader")?;
    let mut restored = Restored::default();
    read_to_end(
        &reader,
        seen_topic,
        partition,
        Offset::Beginning,
        progress,
        |message| {
            let Some(key) = message.key().and_then(|k| std::str::from_utf8(k).ok()) else {
                return;
            };
            restored.changelog_records += 1;
            match message.payload() {
                None => restored.state.forget(key),
                Some(bytes) => match SeenRecord::decode(bytes) {
                    Ok(record) => {
                        restored.state.remember(key, record.first_seen_ms);
                        restored.state.covered_output(record.output_offset);
                        restored.state.covered_input(record.source_offset);
                    }
                    Err(e) => {
                        tracing::warn!(key, error = %e, "unreadable changelog record skipped")
                    }
                },
            }
        },
    )?;
    let start = restored
        .state
        .last_output_offset
        .map_or(Offset::Beginning, |o| Offset::Offset(o + 1));
    read_to_end(
        &reader,
        events_topic,
        partition,
        start,
        progress,
        |message| {
            let Some(key) = header_str(message, headers::DEDUPE_KEY) else {
                return;
            };
            let seen_ms = message.timestamp().to_millis().unwrap_or(0);
            let source_offset = header_str(message, headers::SOURCE_OFFSET)
                .and_then(|v| v.parse().ok())
                .unwrap_or(-1);
            restored.state.covered_input(source_offset);
            if restored.state.contains(key) {
                return;
            }
            restored.state.remember(key, seen_ms);
            restored.recovered.push(Recovered {
                key: key.to_string(),
                output_offset: message.offset(),
                source_offset,
                seen_ms,
            });
        },
    )?;
    Ok(restored)
}

/// Reads `topic`/`partition` from `start` to the high watermark observed now.
fn read_to_end(
    reader: &BaseConsumer,
    topic: &str,
    partition: i32,
    start: Offset,
    progress: &dyn Fn(&str, Progress),
    mut each: impl FnMut(&rdkafka::message::BorrowedMessage<'_>),
) -> anyhow::Result<()> {
    let (low, high) = reader
        .fetch_watermarks(topic, partition, Duration::from_secs(10))
        .with_context(|| format!("cannot read watermarks of {topic}/{partition}"))?;
    let first = match start {
        Offset::Offset(o) => o.max(low),
        _ => low,
    };
    if first >= high {
        return Ok(());
    }
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(topic, partition, Offset::Offset(first))?;
    reader.assign(&tpl)?;
    let total = u64::try_from(high - first).unwrap_or(0);
    let mut read = 0u64;
    let mut last_read_at = Instant::now();
    let mut reported_at = Instant::now();
    loop {
        anyhow::ensure!(
            last_read_at.elapsed() < STALL_DEADLINE,
            "restoring {topic}/{partition} read nothing for {STALL_DEADLINE:?} \
             ({read} of {total} records read, up to offset {high})"
        );
        if reported_at.elapsed() >= PROGRESS_EVERY {
            progress(topic, Progress { read, total });
            reported_at = Instant::now();
        }
        match reader.poll(Duration::from_millis(200)) {
            None => {}
            Some(Ok(message)) => {
                read += 1;
                last_read_at = Instant::now();
                each(&message);
                if message.offset() >= high - 1 {
                    break;
                }
            }
            Some(Err(KafkaError::PartitionEOF(_))) => break,
            Some(Err(e)) => tracing::warn!(topic, partition, error = %e, "restore read error"),
        }
    }
    reader.unassign()?;
    Ok(())
}
