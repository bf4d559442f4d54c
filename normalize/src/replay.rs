//! Replay: re-drives the dead letters on `webhooks.dlq` through the current
//! parsers, after a parser fix, and produces the events they now yield on
//! `properties.normalized` with a `replay-id` header.
//!
//! Delivery: at least once, bounded. Replay reads every partition of the
//! DLQ by assignment, from the beginning up to the end it saw at start, in
//! its own consumer group (`<group>-replay`) and commits nothing, so the
//! live `normalize` group's offsets never move and a second replay re-reads
//! everything (dedupe drops the events it already forwarded: their dedupe
//! keys are the same). Only dead letters from the normalize stage are
//! re-driven; a record that still fails stays where it is (it is not
//! dead-lettered again, which would duplicate the DLQ) and is counted and
//! logged with its reason. Events keep the lineage of the raw record (the
//! DLQ's `topic`/`partition`/`offset` headers), not of its DLQ copy.
//!
//! Not yet: replaying a raw offset or time range, and the dedupe/sink side
//! of corrections (forwarding replayed events whose key was seen and
//! overwriting rows), which DESIGN.md describes.

use std::collections::HashMap;
use std::time::Duration;

use anyhow::Context;
use common::headers;
use common::kafka::header_str;
use common::produce::send_all;
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::{Message, Offset, TopicPartitionList};

use crate::runner::{Normalizer, Outcome, backoff};
use crate::settings::NormalizeSettings;

/// Header carried by every replayed event.
pub const REPLAY_ID: &str = "replay-id";
/// Stage name dead letters of normalize carry in `error.stage`.
const STAGE: &str = "normalize";
/// Giving up when the DLQ yields nothing for this long before its end.
const IDLE_LIMIT: Duration = Duration::from_secs(30);

/// What a replay did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ReplaySummary {
    /// Dead letters read.
    pub read: u64,
    /// Dead letters that now yield events (possibly zero events).
    pub recovered: u64,
    /// Events produced.
    pub events: u64,
    /// Dead letters that still fail.
    pub still_failing: u64,
    /// Dead letters from other stages, left alone.
    pub skipped: u64,
}

/// Re-drives the DLQ once, up to its end at start.
pub async fn replay(
    settings: &NormalizeSettings,
    replay_id: &str,
) -> anyhow::Result<ReplaySummary> {
    let dlq = settings.topics.dlq();
    let group = format!("{}-replay", settings.group);
    let consumer: StreamConsumer = settings
        .kafka
        .consumer(&group)
        .create()
        .context("cannot create the replay consumer")?;
    let metadata = consumer
        .fetch_metadata(Some(&dlq), Duration::from_secs(10))
        .context("cannot read the DLQ's metadata")?;
    let partitions: Vec<i32> = metadata
        .topics()
        .iter()
        .flat_map(|t| t.partitions().iter().map(|p| p.id()))
        .collect();
    let mut end = HashMap::new();
    let mut next = HashMap::new();
    let mut assignment = TopicPartitionList::new();
    for &partition in &partitions {
        let (low, high) = consumer.fetch_watermarks(&dlq, partition, Duration::from_secs(10))?;
        let _ = end.insert(partition, high);
        let _ = next.insert(partition, low);
        assignment.add_partition_offset(&dlq, partition, Offset::Offset(low))?;
    }
    consumer.assign(&assignment)?;
    let normalizer = Normalizer::with_consumer(settings, consumer).await?;
    tracing::info!(replay_id, topic = %dlq, ?end, "replay starting");

    let mut summary = ReplaySummary::default();
    let done = |next: &HashMap<i32, i64>| next.iter().all(|(p, n)| *n >= end[p]);
    while !done(&next) {
        let message = tokio::time::timeout(IDLE_LIMIT, normalizer.consumer.recv())
            .await
            .map_err(|_| {
                anyhow::anyhow!("the DLQ yielded nothing for {IDLE_LIMIT:?} before its end")
            })??;
        let _ = next.insert(message.partition(), message.offset() + 1);
        summary.read += 1;
        if header_str(&message, headers::ERROR_STAGE) != Some(STAGE) {
            summary.skipped += 1;
            continue;
        }
        let origin = origin(&message);
        let origin_ref = origin.as_ref().map(|(t, p, o)| (t.as_str(), *p, *o));
        for attempt in 0u32.. {
            match normalizer.outcome(&message, origin_ref).await {
                Ok(Outcome::Events(records)) => {
                    let records: Vec<_> = records
                        .into_iter()
                        .map(|r| r.header(REPLAY_ID, replay_id))
                        .collect();
                    if let Err(e) = send_all(&normalizer.producer, &records).await {
                        tracing::warn!(error = %e, "produce failed; retrying");
                        tokio::time::sleep(backoff(attempt)).await;
                        continue;
                    }
                    summary.recovered += 1;
                    summary.events += records.len() as u64;
                }
                Ok(Outcome::DeadLetter(_)) => summary.still_failing += 1,
                Err(e) => {
                    tracing::warn!(error = %e, "schema registry unavailable; retrying");
                    normalizer.encoder.remove_errors_from_cache();
                    tokio::time::sleep(backoff(attempt)).await;
                    continue;
                }
            }
            break;
        }
    }
    tracing::info!(replay_id, ?summary, "replay finished");
    Ok(summary)
}

/// The raw record's position, from the DLQ's origin headers.
fn origin<M: Message>(message: &M) -> Option<(String, i32, i64)> {
    Some((
        header_str(message, headers::ORIGIN_TOPIC)?.to_string(),
        header_str(message, headers::ORIGIN_PARTITION)?
            .parse()
            .ok()?,
        header_str(message, headers::ORIGIN_OFFSET)?.parse().ok()?,
    ))
}
