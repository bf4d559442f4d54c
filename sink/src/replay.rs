//! `sink replay`: re-drives the sink's dead letters on `webhooks.dlq` back
//! into rows once their cause is fixed (a constraint relaxed, a decoder
//! fixed), as `normalize replay` does for normalize's.
//!
//! What it reads: the sink's dead letters (`error.stage = sink`; those of
//! other stages are counted and left alone), all of them or a DLQ offset
//! range or time range ([`Selection`]), optionally of one `error.kind`.
//! Each row keeps the position of the original record on
//! `properties.events` (the dead letter's origin headers), as the live
//! sink would have stored it.
//!
//! Safety: it reads by assignment up to the range's end, in its own
//! consumer group (`<group>-replay`), commits nothing, and writes no
//! offset to PostgreSQL, so neither the live group's Kafka offsets nor its
//! stored offsets move. It is idempotent: rows are written by the live
//! sink's statements, unique on the dedupe key, so an event already stored
//! adds no row (it is counted as already stored). A dead letter that still
//! fails (a row PostgreSQL still refuses, bytes that still do not decode,
//! a value cut to fit the DLQ) is counted and logged, never dead-lettered
//! again. `--dry-run` decodes every dead letter and tests every row against
//! PostgreSQL in a transaction it rolls back. The registry's failures stop
//! the replay with an error after a bounded retry; they never count as the
//! event's.

mod run;
mod sort;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use anyhow::Context;
use common::replay_range::{self, Selection};
use common::stage_loop::{Cancel, RetryPolicy};
use rdkafka::Message;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::producer::FutureProducer;
use rdkafka::{Offset, TopicPartitionList};
use tokio::runtime::Handle;

use crate::batch::Batch;
use crate::settings::SinkSettings;
use crate::store::PostgresSink;
use crate::writer::Committer;
use run::Run;
use schemas::writer_schemas::WriterSchemas;

/// Giving up when the DLQ yields nothing for this long before the range's end.
const IDLE_LIMIT: Duration = Duration::from_secs(30);
/// How often progress is printed.
const PROGRESS_EVERY: Duration = Duration::from_secs(2);

/// What to replay.
#[derive(Debug, Clone)]
pub struct ReplayOptions {
    /// Named in the logs and the summary.
    pub id: String,
    /// Which DLQ records to read.
    pub selection: Selection,
    /// Only dead letters of this `error.kind` (`decode`, `rejected`).
    pub kind: Option<String>,
    /// Decode and test, write nothing.
    pub dry_run: bool,
}

/// What a replay did (or, dry, would do).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ReplaySummary {
    /// DLQ records read.
    pub read: u64,
    /// Rows written that were not stored.
    pub landed: u64,
    /// Events whose row was already stored (nothing added).
    pub already_stored: u64,
    /// Dead letters that still fail.
    pub still_failing: u64,
    /// Dead letters of other stages, left alone.
    pub other_stages: u64,
    /// Sink dead letters of another `error.kind` than asked.
    pub other_kinds: u64,
}

/// Re-drives the dead letters `options` names, once.
pub fn replay(
    settings: &SinkSettings,
    options: &ReplayOptions,
    runtime: &Handle,
    cancel: &Cancel,
) -> anyhow::Result<ReplaySummary> {
    let topic = settings.topics.dlq();
    let reader: BaseConsumer = settings
        .kafka
        .reader()
        .create()
        .context("cannot create a metadata client")?;
    let ranges = replay_range::ranges(&reader, &topic, &options.selection)?;
    let total: u64 = ranges.iter().map(replay_range::Range::len).sum();
    let consumer: BaseConsumer = settings
        .kafka
        .consumer(&format!("{}-replay", settings.group))
        .create()
        .context("cannot create the replay consumer")?;
    let mut assignment = TopicPartitionList::new();
    for range in &ranges {
        assignment.add_partition_offset(&topic, range.partition, Offset::Offset(range.start))?;
    }
    consumer.assign(&assignment)?;
    let mut store = PostgresSink::new(&settings.database_url);
    let _applied =
        runtime.block_on(async { crate::migrate::apply(store.client().await?).await })?;
    let mut run = Run {
        committer: Committer::<_, FutureProducer> {
            store,
            dead_letters: None,
            runtime: runtime.clone(),
            cancel: cancel.clone(),
            policy: RetryPolicy::UNTIL_STOPPED,
            group: settings.group.clone(),
            topic: settings.topics.events(),
        },
        registry: common::registry::Registry::new(&settings.schema_registry_url)?,
        schemas: WriterSchemas::default(),
        options,
        summary: ReplaySummary::default(),
        batch: Batch::default(),
    };
    tracing::info!(id = %options.id, %topic, ?ranges, dry_run = options.dry_run, "sink replay starting");
    let end: HashMap<i32, i64> = ranges.iter().map(|r| (r.partition, r.end)).collect();
    let mut next: HashMap<i32, i64> = ranges.iter().map(|r| (r.partition, r.start)).collect();
    let (mut last_record, mut last_progress) = (Instant::now(), Instant::now());
    while next.iter().any(|(p, n)| *n < end[p]) {
        anyhow::ensure!(
            !cancel.is_cancelled(),
            "stopped before the end: {:?}",
            run.summary
        );
        if last_progress.elapsed() >= PROGRESS_EVERY {
            eprintln!(
                "replay {}: {} of {total} read, {}",
                options.id,
                run.summary.read,
                run.summary.line()
            );
            last_progress = Instant::now();
        }
        let Some(polled) = consumer.poll(Duration::from_millis(200)) else {
            anyhow::ensure!(
                last_record.elapsed() < IDLE_LIMIT,
                "{topic} yielded nothing for {IDLE_LIMIT:?} before the range's end"
            );
            continue;
        };
        let message = polled?;
        last_record = Instant::now();
        let partition = message.partition();
        if message.offset() >= end.get(&partition).copied().unwrap_or(0) {
            let _ = next.insert(partition, i64::MAX);
            continue;
        }
        let _ = next.insert(partition, message.offset() + 1);
        run.one(&message)?;
        if run.batch.events.len() >= settings.batch_max_events.max(1) {
            run.flush()?;
        }
    }
    run.flush()?;
    tracing::info!(id = %options.id, summary = ?run.summary, "sink replay finished");
    Ok(run.summary)
}

impl ReplaySummary {
    /// The counts, as one line.
    pub fn line(&self) -> String {
        format!(
            "landed {} ({} already stored), {} still failing, {} dead letters from other stages, {} of other kinds",
            self.landed,
            self.already_stored,
            self.still_failing,
            self.other_stages,
            self.other_kinds
        )
    }
}
