//! One `sink replay` run's work per dead letter and per batch: decode the
//! value (asking the registry again, within a budget, for a writer schema
//! it does not have yet), batch the events at their origin positions, and
//! write them without any offset, or, dry, test them in a transaction
//! rolled back; and count what landed, what was already stored and what
//! still fails.

use std::time::Instant;

use common::stage_loop::{RetryPolicy, Verdict};
use rdkafka::Message;
use rdkafka::message::BorrowedMessage;
use rdkafka::producer::FutureProducer;

use super::sort::{Sorted, sort};
use super::{ReplayOptions, ReplaySummary};
use crate::batch::Batch;
use crate::rows::EventToWrite;
use crate::store::{PostgresSink, Sink};
use crate::writer::Committer;
use common::registry::Registry;
use schemas::PropertyEvent;
use schemas::writer_schemas::{Decoded, WriterSchemas};

/// The registry's budget per writer schema before the replay stops.
const REGISTRY_RETRY: RetryPolicy = RetryPolicy::UNTIL_STOPPED.attempts(10);

/// One replay's state.
pub(super) struct Run<'a> {
    pub(super) committer: Committer<PostgresSink, FutureProducer>,
    pub(super) registry: Registry,
    pub(super) schemas: WriterSchemas<PropertyEvent>,
    pub(super) options: &'a ReplayOptions,
    pub(super) summary: ReplaySummary,
    pub(super) batch: Batch,
}

impl Run<'_> {
    /// Sorts, decodes and batches one DLQ record.
    pub(super) fn one(&mut self, message: &BorrowedMessage<'_>) -> anyhow::Result<()> {
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
        let fetch = |id| runtime.block_on(registry.fetch(id));
        let mut decoded = self.schemas.decode(bytes, fetch);
        if let Decoded::Unavailable { schema_id, .. } = decoded {
            let schemas = &mut self.schemas;
            REGISTRY_RETRY
                .run_blocking(&self.committer.cancel, "fetching a writer schema", |_| {
                    schemas
                        .fetch(schema_id, |id| runtime.block_on(registry.fetch(id)))
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
            Decoded::Value(event) => {
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
    pub(super) fn flush(&mut self) -> anyhow::Result<()> {
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
