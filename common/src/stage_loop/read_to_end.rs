//! [`read_to_end`]: reading one partition from an offset to the high
//! watermark observed when the read starts, the way a stage restores its
//! state from a topic (dedupe from `dedupe.seen` and the output's tail, the
//! state writer from `properties.latest`).
//!
//! A read has no fixed deadline: it fails only when it makes no progress
//! for [`STALL_DEADLINE`], however large the topic, and it reports its
//! progress through the caller's callback every few seconds.

use std::time::{Duration, Instant};

use anyhow::Context as _;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::BorrowedMessage;
use rdkafka::{Message, Offset, TopicPartitionList};

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

/// Reads `topic`/`partition` with `reader` (a group-less client,
/// `KafkaSettings::reader`) from `start` (clamped to the low watermark) to
/// the high watermark observed now, calling `each` on every record in
/// order. An error from `each` ends the read with that error.
pub fn read_to_end(
    reader: &BaseConsumer,
    topic: &str,
    partition: i32,
    start: Offset,
    progress: &dyn Fn(&str, Progress),
    mut each: impl FnMut(&BorrowedMessage<'_>) -> anyhow::Result<()>,
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
    let result = loop {
        if last_read_at.elapsed() >= STALL_DEADLINE {
            break Err(anyhow::anyhow!(
                "restoring {topic}/{partition} read nothing for {STALL_DEADLINE:?} \
                 ({read} of {total} records read, up to offset {high})"
            ));
        }
        if reported_at.elapsed() >= PROGRESS_EVERY {
            progress(topic, Progress { read, total });
            reported_at = Instant::now();
        }
        match reader.poll(Duration::from_millis(200)) {
            None => {}
            Some(Ok(message)) => {
                read += 1;
                last_read_at = Instant::now();
                if let Err(e) = each(&message) {
                    break Err(e);
                }
                if message.offset() >= high - 1 {
                    break Ok(());
                }
            }
            Some(Err(KafkaError::PartitionEOF(_))) => break Ok(()),
            Some(Err(e)) => tracing::warn!(topic, partition, error = %e, "restore read error"),
        }
    };
    reader.unassign()?;
    result
}
