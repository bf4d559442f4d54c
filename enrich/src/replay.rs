//! `enrich replay`: re-drives the stage's dead letters (`webhooks.dlq`,
//! `error.stage = enrich`) once the API gives what it did not (a property
//! that was missing, a key that was refused, an outage past the retry
//! budget). Each reference is fetched again and its enriched event written
//! to `properties.normalized`; dedupe forwards it like a live one (its key
//! `<reference's key>:api` was never forwarded, or it is dropped as the
//! duplicate it is).
//!
//! Delivery: at least once, bounded. The replay reads by assignment from
//! the DLQ's start up to its end at start, in its own consumer group
//! (`<group>-replay`), and commits nothing. A reference that still fails is
//! counted and logged, not dead-lettered again (that would duplicate the
//! DLQ); dead letters of other stages are left alone.

use std::time::Duration;

use anyhow::{Context as _, bail};
use common::headers;
use common::kafka::header_str;
use common::replay_range::{RangeCursor, Selection, ranges};
use common::stage_loop::Cancel;
use rdkafka::consumer::{BaseConsumer, Consumer, StreamConsumer};
use rdkafka::message::BorrowedMessage;
use rdkafka::{Message, Offset, TopicPartitionList};

use crate::connect::{Started, connect_with};
use crate::metrics::{EnrichMetrics, STAGE};
use crate::runner::{Enriched, Failures};
use crate::settings::EnrichSettings;

/// Giving up when the DLQ yields nothing for this long before its end.
const IDLE_LIMIT: Duration = Duration::from_secs(30);

/// What a replay did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct ReplaySummary {
    /// Dead letters read.
    pub read: u64,
    /// The stage's own among them.
    pub ours: u64,
    /// References enriched.
    pub enriched: u64,
    /// References that still fail.
    pub still_failing: u64,
}

/// Re-drives every dead letter of the stage once.
pub async fn replay(settings: &EnrichSettings, cancel: Cancel) -> anyhow::Result<ReplaySummary> {
    let topic = settings.topics.dlq();
    let ranges = {
        let (kafka, topic) = (settings.kafka.clone(), topic.clone());
        tokio::task::spawn_blocking(move || {
            let client: BaseConsumer = kafka
                .reader()
                .create()
                .context("cannot create a metadata client")?;
            ranges(&client, &topic, &Selection::Everything)
        })
        .await??
    };
    let make_consumer = |group: &str| -> anyhow::Result<StreamConsumer> {
        let consumer: StreamConsumer = settings
            .kafka
            .consumer(&format!("{group}-replay"))
            .create()
            .context("cannot create the replay consumer")?;
        let mut assignment = TopicPartitionList::new();
        for range in &ranges {
            assignment.add_partition_offset(
                &topic,
                range.partition,
                Offset::Offset(range.start),
            )?;
        }
        consumer.assign(&assignment)?;
        Ok(consumer)
    };
    let enricher = match connect_with(settings, EnrichMetrics::new(), cancel, make_consumer).await?
    {
        Started::On(enricher) => enricher,
        Started::Off => bail!(
            "no Fluximmo API key: set {} or [api] key_file to replay",
            settings.api.key_env
        ),
    };
    tracing::info!(%topic, ?ranges, "enrich replay starting");
    let mut cursor = RangeCursor::new(&ranges);
    let mut summary = ReplaySummary::default();
    while !cursor.done() {
        let received = tokio::select! {
            () = enricher.cancel.cancelled() => bail!("replay stopped before the DLQ's end"),
            received = tokio::time::timeout(IDLE_LIMIT, enricher.consumer.recv()) => received,
        };
        let message: BorrowedMessage<'_> = received.map_err(|_| {
            anyhow::anyhow!("{topic} yielded nothing for {IDLE_LIMIT:?} before its end")
        })??;
        if !cursor.take(message.partition(), message.offset()) {
            continue;
        }
        summary.read += 1;
        if header_str(&message, headers::ERROR_STAGE) != Some(STAGE) {
            continue;
        }
        summary.ours += 1;
        let one = std::slice::from_ref(&message);
        match enricher.enrich(one, Failures::Count).await? {
            Some(Enriched {
                enriched, failed, ..
            }) => {
                summary.enriched += enriched;
                summary.still_failing += failed;
            }
            None => bail!("replay stopped before the DLQ's end"),
        }
    }
    tracing::info!(?summary, "enrich replay finished");
    Ok(summary)
}
