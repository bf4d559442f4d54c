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

use std::collections::HashMap;
use std::time::{Duration, Instant};

use anyhow::Context;
use common::headers;
use common::kafka::header_str;
use common::replay_range::{self, Selection};
use common::stage_loop::{Cancel, RetryPolicy, Verdict};
use rdkafka::Message;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::BorrowedMessage;
use rdkafka::producer::FutureProducer;
use rdkafka::{Offset, TopicPartitionList};
use tokio::runtime::Handle;

use crate::batch::Batch;
use crate::rows::{EventToWrite, Position};
use crate::settings::SinkSettings;
use crate::store::{PostgresSink, Sink};
use crate::writer::{Committer, STAGE};
use crate::writer_schemas::{Decoded, WriterSchemas};

/// Giving up when the DLQ yields nothing for this long before the range's end.
const IDLE_LIMIT: Duration = Duration::from_secs(30);
/// How often progress is printed.
const PROGRESS_EVERY: Duration = Duration::from_secs(2);
/// The registry's budget per writer schema before the replay stops.
const REGISTRY_RETRY: RetryPolicy = RetryPolicy::UNTIL_STOPPED.attempts(10);

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

/// What one DLQ record is to the replay.
#[derive(Debug, PartialEq, Eq)]
enum Sorted {
    OtherStage,
    OtherKind,
    /// Cannot be replayed from the DLQ (why).
    Unusable(&'static str),
    /// Replay it as the event read at this position.
    Replay(Position),
}

fn sort<M: Message>(message: &M, kind: Option<&str>) -> Sorted {
    if header_str(message, headers::ERROR_STAGE) != Some(STAGE) {
        return Sorted::OtherStage;
    }
    if kind.is_some_and(|k| header_str(message, headers::ERROR_KIND) != Some(k)) {
        return Sorted::OtherKind;
    }
    if header_str(message, headers::ERROR_PAYLOAD_TRUNCATED).is_some() {
        return Sorted::Unusable("its value was cut to fit the DLQ");
    }
    let origin = || {
        Some(Position {
            topic: header_str(message, headers::ORIGIN_TOPIC)?.to_string(),
            partition: header_str(message, headers::ORIGIN_PARTITION)?
                .parse()
                .ok()?,
            offset: header_str(message, headers::ORIGIN_OFFSET)?.parse().ok()?,
        })
    };
    origin().map_or(Sorted::Unusable("it has no origin headers"), Sorted::Replay)
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
        registry: crate::registry::decoder(&settings.schema_registry_url)?,
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

/// One replay's state.
struct Run<'a> {
    committer: Committer<PostgresSink, FutureProducer>,
    registry: schema_registry_converter::async_impl::avro::AvroDecoder,
    schemas: WriterSchemas,
    options: &'a ReplayOptions,
    summary: ReplaySummary,
    batch: Batch,
}

impl Run<'_> {
    /// Sorts, decodes and batches one DLQ record.
    fn one(&mut self, message: &BorrowedMessage<'_>) -> anyhow::Result<()> {
        self.summary.read += 1;
        let position = match sort(message, self.options.kind.as_deref()) {
            Sorted::OtherStage => {
                self.summary.other_stages += 1;
                return Ok(());
            }
            Sorted::OtherKind => {
                self.summary.other_kinds += 1;
                return Ok(());
            }
            Sorted::Unusable(why) => {
                tracing::warn!(
                    offset = message.offset(),
                    why,
                    "dead letter cannot be replayed from the DLQ"
                );
                self.summary.still_failing += 1;
                return Ok(());
            }
            Sorted::Replay(position) => position,
        };
        let bytes = message.payload().unwrap_or_default();
        let (registry, runtime) = (&self.registry, &self.committer.runtime);
        let fetch = |id| crate::registry::fetch(registry, runtime, id);
        let mut decoded = self.schemas.decode(bytes, fetch);
        if let Decoded::Unavailable { schema_id, .. } = decoded {
            let schemas = &mut self.schemas;
            REGISTRY_RETRY
                .run_blocking(&self.committer.cancel, "fetching a writer schema", |_| {
                    schemas
                        .fetch(schema_id, |id| {
                            crate::registry::fetch(registry, runtime, id)
                        })
                        .map_err(Verdict::Retry)
                })
                .map_err(|e| {
                    anyhow::anyhow!(
                        "the schema registry does not give writer schema {schema_id}: {e}"
                    )
                })?;
            decoded = self.schemas.decode(bytes, |_| Err("fetched".into()));
        }
        match decoded {
            Decoded::Event(event) => {
                let event = EventToWrite {
                    event: *event,
                    position,
                };
                self.batch.push(
                    event,
                    message.detach(),
                    tracing::Span::none(),
                    Instant::now(),
                );
            }
            Decoded::Fault(reason) | Decoded::Unavailable { reason, .. } => {
                tracing::warn!(offset = message.offset(), %reason, "dead letter still does not decode");
                self.summary.still_failing += 1;
            }
        }
        Ok(())
    }

    /// Writes (or, dry, tests) the batch's rows, without any offset.
    fn flush(&mut self) -> anyhow::Result<()> {
        let mut batch = std::mem::take(&mut self.batch);
        batch.next_offsets.clear();
        if batch.events.is_empty() {
            return Ok(());
        }
        let stored = {
            let keys: Vec<&str> = batch
                .events
                .iter()
                .map(|e| e.event.dedupe_key.as_str())
                .collect();
            let (store, runtime) = (&mut self.committer.store, &self.committer.runtime);
            RetryPolicy::UNTIL_STOPPED
                .run_blocking(&self.committer.cancel, "looking up stored events", |_| {
                    runtime
                        .block_on(store.stored_keys(&keys))
                        .map_err(|e| Verdict::Retry(format!("{e:#}")))
                })
                .map_err(|e| anyhow::anyhow!("{e}"))?
        };
        let refused: Vec<String> =
            if self.options.dry_run {
                let (store, runtime) = (&mut self.committer.store, &self.committer.runtime);
                let found = RetryPolicy::UNTIL_STOPPED
                    .run_blocking(&self.committer.cancel, "testing the rows", |_| {
                        runtime
                            .block_on(store.find_rejected(&batch.events))
                            .map_err(|e| Verdict::Retry(format!("{e:#}")))
                    })
                    .map_err(|e| anyhow::anyhow!("{e}"))?;
                found
                    .into_iter()
                    .filter_map(|(i, _)| Some(batch.events.get(i)?.event.dedupe_key.clone()))
                    .collect()
            } else {
                let commit = self
                    .committer
                    .commit(&mut batch)
                    .map_err(|_| anyhow::anyhow!("stopped before the end: {:?}", self.summary))?;
                commit.rejected.into_iter().map(|(key, reason)| {
                tracing::warn!(dedupe_key = %key, %reason, "PostgreSQL still refuses the row");
                key
            }).collect()
            };
        // A real commit removed the refused rows from the batch; a dry run
        // left them in it.
        if !self.options.dry_run {
            self.summary.still_failing += refused.len() as u64;
        }
        for key in batch.events.iter().map(|e| &e.event.dedupe_key) {
            if refused.contains(key) {
                self.summary.still_failing += 1;
            } else if stored.contains(key) {
                self.summary.already_stored += 1;
            } else {
                self.summary.landed += 1;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rdkafka::message::{Header, OwnedHeaders, OwnedMessage};

    fn letter(headers: &[(&str, &str)]) -> OwnedMessage {
        let headers = headers.iter().fold(OwnedHeaders::new(), |h, (k, v)| {
            h.insert(Header {
                key: k,
                value: Some(v.as_bytes()),
            })
        });
        OwnedMessage::new(
            None,
            None,
            "dlq".into(),
            rdkafka::Timestamp::NotAvailable,
            0,
            0,
            Some(headers),
        )
    }

    const ORIGIN: [(&str, &str); 3] = [
        ("topic", "properties.events"),
        ("partition", "2"),
        ("offset", "41"),
    ];

    #[test]
    fn only_the_sinks_dead_letters_of_the_asked_kind_are_replayed_at_their_origin() {
        let with = |extra: &[(&'static str, &'static str)]| {
            let mut all = ORIGIN.to_vec();
            all.extend_from_slice(extra);
            letter(&all)
        };
        let sink = with(&[("error.stage", "sink"), ("error.kind", "rejected")]);
        let expected = Position {
            topic: "properties.events".into(),
            partition: 2,
            offset: 41,
        };
        assert_eq!(sort(&sink, None), Sorted::Replay(expected.clone()));
        assert_eq!(sort(&sink, Some("rejected")), Sorted::Replay(expected));
        assert_eq!(sort(&sink, Some("decode")), Sorted::OtherKind);
        assert_eq!(
            sort(&with(&[("error.stage", "normalize")]), None),
            Sorted::OtherStage
        );
        let cut = with(&[
            ("error.stage", "sink"),
            ("error.payload-truncated", "3000000"),
        ]);
        assert!(matches!(sort(&cut, None), Sorted::Unusable(_)));
        let lost = letter(&[("error.stage", "sink")]);
        assert!(matches!(sort(&lost, None), Sorted::Unusable(_)));
    }
}
