//! Replay: re-drives records through the current parsers after a parser
//! fix, and produces the events they now yield on `properties.normalized`
//! with a `replay-id` header, so that dedupe forwards them even when their
//! key was seen and the sink corrects the stored rows (DESIGN.md,
//! "Normalize"). What it re-drives ([`ReplaySource`]):
//!
//! - the dead letters of the normalize stage on `webhooks.dlq` (events keep
//!   the lineage of the raw record, from the DLQ's origin headers, not of
//!   its DLQ copy; dead letters of other stages are left alone);
//! - raw records of one `webhooks.raw` partition in an offset range;
//! - raw records of every partition received in a time range (the broker's
//!   record timestamps, which ingest sets at arrival).
//!
//! Delivery: at least once, bounded. Replay reads by assignment, from the
//! range's start up to its end (for an open range, the end at start), in its
//! own consumer group (`<group>-replay`), and commits nothing, so the live
//! `normalize` group's offsets never move and a second replay re-reads
//! everything. A record that still fails is not dead-lettered again (that
//! would duplicate the DLQ); it is counted and logged with its reason. So
//! is a dead letter whose value was cut to fit the size limit
//! (`error.payload-truncated`): replay its raw record by offset instead, and
//! an event the broker refuses for its size.

use std::time::Duration;

use anyhow::{Context, bail};
use common::headers;
use common::kafka::{RawFields, header_str};
use common::produce::{OutRecord, is_size_error, send_each};
use common::replay_range::{RangeCursor, Selection, ranges};
use common::stage_loop::{Cancel, GaveUp, Verdict, record_span_continuing};
use rdkafka::consumer::{BaseConsumer, Consumer, StreamConsumer};
use rdkafka::producer::Producer;
use rdkafka::{Message, Offset, TopicPartitionList};

use crate::delivery::Outputs;
use crate::failures::kafka_fatal;
use crate::outcome::Origin;
use crate::runner::{Normalizer, STAGE};
use crate::settings::NormalizeSettings;

/// Header carried by every replayed event.
pub const REPLAY_ID: &str = headers::REPLAY_ID;
/// Giving up when the input yields nothing for this long before its end.
const IDLE_LIMIT: Duration = Duration::from_secs(30);

/// What a replay re-drives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReplaySource {
    /// Every dead letter of the normalize stage on `webhooks.dlq`.
    DeadLetters,
    /// Raw records of one partition, offsets `from` up to `to` (exclusive;
    /// `None`: the partition's end at start).
    RawOffsets {
        /// Partition of `webhooks.raw`.
        partition: i32,
        /// First offset.
        from: i64,
        /// End offset, exclusive.
        to: Option<i64>,
    },
    /// Raw records of every partition with a timestamp from `since_ms` up
    /// to `until_ms` (exclusive; `None`: the end at start). Unix ms.
    RawTimes {
        /// Start, inclusive.
        since_ms: i64,
        /// End, exclusive.
        until_ms: Option<i64>,
    },
}

/// What a replay did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ReplaySummary {
    /// Records read.
    pub read: u64,
    /// Records that yield events (possibly zero events).
    pub recovered: u64,
    /// Events produced.
    pub events: u64,
    /// Records that still fail.
    pub still_failing: u64,
    /// Dead letters from other stages, left alone.
    pub skipped: u64,
}

/// Re-drives `source` once.
pub async fn replay(
    settings: &NormalizeSettings,
    source: &ReplaySource,
    replay_id: &str,
    cancel: Cancel,
) -> anyhow::Result<ReplaySummary> {
    let topic = match source {
        ReplaySource::DeadLetters => settings.topics.dlq(),
        _ => settings.topics.raw(),
    };
    let ranges = {
        let (kafka, topic, source) = (settings.kafka.clone(), topic.clone(), source.clone());
        tokio::task::spawn_blocking(move || {
            let client: BaseConsumer = kafka
                .reader()
                .create()
                .context("cannot create a metadata client")?;
            ranges(&client, &topic, &source.selection())
        })
        .await??
    };
    let group = format!("{}-replay", settings.group);
    let consumer: StreamConsumer = settings
        .kafka
        .consumer(&group)
        .create()
        .context("cannot create the replay consumer")?;
    let mut assignment = TopicPartitionList::new();
    for range in &ranges {
        assignment.add_partition_offset(&topic, range.partition, Offset::Offset(range.start))?;
    }
    consumer.assign(&assignment)?;
    let normalizer = Normalizer::with_consumer(settings, consumer, cancel).await?;
    tracing::info!(replay_id, %topic, ?ranges, "replay starting");

    let mut cursor = RangeCursor::new(&ranges);
    let mut summary = ReplaySummary::default();
    while !cursor.done() {
        let received = tokio::select! {
            () = normalizer.cancel.cancelled() => bail!("replay {replay_id} stopped before the range's end"),
            received = tokio::time::timeout(IDLE_LIMIT, normalizer.consumer.recv()) => received,
        };
        let message = received.map_err(|_| {
            anyhow::anyhow!("{topic} yielded nothing for {IDLE_LIMIT:?} before the range's end")
        })??;
        if !cursor.take(message.partition(), message.offset()) {
            continue;
        }
        summary.read += 1;
        let origin = match source {
            ReplaySource::DeadLetters => {
                if header_str(&message, headers::ERROR_STAGE) != Some(STAGE) {
                    summary.skipped += 1;
                    continue;
                }
                if header_str(&message, headers::ERROR_PAYLOAD_TRUNCATED).is_some() {
                    tracing::warn!(
                        origin = ?dead_letter_origin(&message),
                        "this dead letter's value was cut to fit the size limit; replay its raw record by offset"
                    );
                    summary.still_failing += 1;
                    continue;
                }
                dead_letter_origin(&message)
            }
            _ => None,
        };
        let origin_ref = origin.as_ref().map(|(topic, partition, offset)| Origin {
            topic,
            partition: *partition,
            offset: *offset,
        });
        let fields = RawFields::of(&message);
        let received = fields.get(headers::TRACEPARENT);
        let (_span, traceparent) = record_span_continuing("normalize replay", &message, received);
        let records = match normalizer
            .outputs(&message, &fields, origin_ref, &traceparent)
            .await
        {
            Ok(Outputs::Events(records)) => records,
            Ok(Outputs::DeadLetter(_)) => {
                summary.still_failing += 1;
                continue;
            }
            Err(gave_up) => bail!("replay {replay_id} ended before the range's end: {gave_up}"),
        };
        let records: Vec<_> = records
            .into_iter()
            .map(|r| r.header(REPLAY_ID, replay_id))
            .collect();
        let events = records.len() as u64;
        match send_replayed(&normalizer, records).await {
            Ok(()) => {
                summary.recovered += 1;
                summary.events += events;
            }
            Err(GaveUp::Fatal(SendError::TooLarge(error))) => {
                tracing::warn!(%error, offset = message.offset(), "an event was refused for its size");
                summary.still_failing += 1;
            }
            Err(gave_up) => bail!("replay {replay_id} ended before the range's end: {gave_up}"),
        }
    }
    tracing::info!(replay_id, ?summary, "replay finished");
    Ok(summary)
}

/// Why replayed events were not all stored.
#[derive(Debug)]
enum SendError {
    /// An event was refused for its size (it stays failing).
    TooLarge(String),
    /// librdkafka's fatal error: the replay cannot go on.
    Fatal(String),
    /// A failure that may pass: retried.
    Transient(String),
}

impl std::fmt::Display for SendError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::TooLarge(e) | Self::Fatal(e) | Self::Transient(e) => f.write_str(e),
        }
    }
}

/// Sends one raw record's replayed events until each is acknowledged,
/// sending again only those that failed (an acknowledged correction sent
/// twice would be forwarded twice), with the stage's retry policy.
async fn send_replayed(
    normalizer: &Normalizer,
    records: Vec<OutRecord>,
) -> Result<(), GaveUp<SendError>> {
    // The retried closure may only hold shared references.
    let pending = &tokio::sync::Mutex::new(records);
    normalizer
        .retry
        .run(&normalizer.cancel, "replay produce", |_| async move {
            let mut pending = pending.lock().await;
            let results = send_each(&normalizer.producer, &pending).await;
            let mut failed = Vec::new();
            let mut error = None;
            for (record, result) in std::mem::take(&mut *pending).into_iter().zip(results) {
                let Err(e) = result else { continue };
                if is_size_error(&e) {
                    return Err(Verdict::Fatal(SendError::TooLarge(e.to_string())));
                }
                if let Some(fatal) = kafka_fatal(&e, normalizer.producer.client().fatal_error()) {
                    return Err(Verdict::Fatal(SendError::Fatal(fatal)));
                }
                error = Some(e.to_string());
                failed.push(record);
            }
            *pending = failed;
            match error {
                None => Ok(()),
                Some(e) => Err(Verdict::Retry(SendError::Transient(e))),
            }
        })
        .await
}

impl ReplaySource {
    /// The part of its topic a replay of this source reads.
    fn selection(&self) -> Selection {
        match *self {
            Self::DeadLetters => Selection::Everything,
            Self::RawOffsets {
                partition,
                from,
                to,
            } => Selection::Offsets {
                partition,
                from,
                to,
            },
            Self::RawTimes { since_ms, until_ms } => Selection::Times { since_ms, until_ms },
        }
    }
}

/// The raw record's position, from the DLQ's origin headers.
fn dead_letter_origin<M: Message>(message: &M) -> Option<(String, i32, i64)> {
    Some((
        header_str(message, headers::ORIGIN_TOPIC)?.to_string(),
        header_str(message, headers::ORIGIN_PARTITION)?
            .parse()
            .ok()?,
        header_str(message, headers::ORIGIN_OFFSET)?.parse().ok()?,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_source_reads_the_selection_it_names() {
        assert_eq!(ReplaySource::DeadLetters.selection(), Selection::Everything);
        let offsets = ReplaySource::RawOffsets {
            partition: 2,
            from: 5,
            to: None,
        };
        assert_eq!(
            offsets.selection(),
            Selection::Offsets {
                partition: 2,
                from: 5,
                to: None
            }
        );
        let times = ReplaySource::RawTimes {
            since_ms: 1,
            until_ms: Some(9),
        };
        assert_eq!(
            times.selection(),
            Selection::Times {
                since_ms: 1,
                until_ms: Some(9)
            }
        );
    }
}
