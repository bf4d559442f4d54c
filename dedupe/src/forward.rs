//! One batch, from the records read to the offsets committed: the IO around
//! [`crate::plan`]. The steps, and what enforces each:
//! 1. decide every record ([`plan_batch`]: first sightings, duplicates,
//!    corrections, inputs already forwarded, partitions not owned);
//! 2. check ownership ([`common::stage_loop::check_ownership`]) and produce the outputs
//!    once, in input order ([`crate::writer::Writer::send_once`]);
//! 3. if any output failed, settle ([`settle`]): the batch's partitions are
//!    reset (state dropped, paused, restored from the changelog and the
//!    output's tail, then read again from the committed offset), exactly as
//!    after a crash, so acknowledged outputs are found and never resent;
//! 4. check ownership again and write the changelog records
//!    ([`BatchPlan::changelog`], [`crate::writer::Writer::send_repeatable`]);
//! 5. teach the state ([`BatchPlan::remember`]) and commit the input
//!    offsets ([`BatchPlan::commit`]).
//!
//! With transactions, 2 and 4 and the offsets are one transaction.

use std::time::Instant;

use common::headers;
use common::kafka::{header_str, offsets_list};
use common::produce::OutRecord;
use common::stage_loop::{Abandon, Fence, record_span};
use rdkafka::Message;
use rdkafka::consumer::Consumer;
use rdkafka::message::BorrowedMessage;

use crate::batch::{BatchDecision, BatchRecord};
use crate::plan::{BatchPlan, Settled, plan_batch, settle};
use crate::runner::{Deduper, now_ms};

/// How a batch ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// Decided, written and committed (or to be committed by the caller).
    Done,
    /// Abandoned before it was complete; its partitions are read again
    /// after a restore.
    Abandoned,
}

impl Deduper {
    /// Handles one batch read at `started` after a poll at `polled_at`.
    pub(crate) fn handle(
        &self,
        batch: &[BorrowedMessage<'_>],
        started: Instant,
        polled_at: Instant,
    ) -> anyhow::Result<Outcome> {
        let keys: Vec<String> = batch.iter().map(dedupe_key).collect();
        let inputs: Vec<BatchRecord<'_>> = batch
            .iter()
            .zip(&keys)
            .map(|(m, key)| BatchRecord {
                partition: m.partition(),
                offset: m.offset(),
                key,
                replayed: header_str(m, headers::REPLAY_ID).is_some(),
            })
            .collect();
        let plan = plan_batch(&self.co.partitions.states(), &inputs, now_ms(), self.ttl_ms);
        let mut spans = Vec::with_capacity(batch.len());
        let mut outputs = Vec::with_capacity(plan.outputs.len());
        let mut traceparents = vec![String::new(); batch.len()];
        for (index, (message, decision)) in batch.iter().zip(&plan.decisions).enumerate() {
            if *decision == BatchDecision::NotOwned {
                continue;
            }
            let (span, traceparent) = record_span("dedupe record", message);
            span.in_scope(|| tracing::debug!(?decision, key = keys[index], "decided"));
            spans.push(span);
            traceparents[index] = traceparent;
        }
        for output in &plan.outputs {
            let message = &batch[output.input];
            outputs.push(self.output_of(message, &traceparents[output.input]));
        }
        let mut fence = self.co.fence(started, polled_at);
        let outcome = if outputs.is_empty() {
            self.commit(&plan, &inputs)?;
            Outcome::Done
        } else if self.writer.transactional() {
            self.write_in_transaction(&plan, &inputs, &outputs)?
        } else {
            self.write_output_first(&plan, &inputs, &outputs, &mut fence)?
        };
        if outcome == Outcome::Done {
            for (message, _) in batch
                .iter()
                .zip(&plan.decisions)
                .filter(|(_, d)| **d == BatchDecision::Correction)
            {
                tracing::info!(
                    key = header_str(message, headers::DEDUPE_KEY),
                    partition = message.partition(),
                    offset = message.offset(),
                    replay_id = header_str(message, headers::REPLAY_ID),
                    "correction forwarded"
                );
            }
            let forwarded = plan.count(BatchDecision::Forward) as u64;
            let corrections = plan.count(BatchDecision::Correction) as u64;
            let dropped =
                plan.count(BatchDecision::Duplicate) + plan.count(BatchDecision::AlreadyForwarded);
            self.metrics.duplicates.inc_by(dropped as u64);
            self.metrics.corrections.inc_by(corrections);
            self.metrics
                .stage
                .records_out
                .inc_by(forwarded + corrections);
            self.metrics
                .stage
                .batch(batch.len() - plan.count(BatchDecision::NotOwned), started);
            tracing::info!(
                records = batch.len(),
                forwarded,
                corrections,
                dropped,
                "batch deduplicated"
            );
        }
        drop(spans);
        Ok(outcome)
    }

    fn write_output_first(
        &self,
        plan: &BatchPlan,
        inputs: &[BatchRecord<'_>],
        outputs: &[OutRecord],
        fence: &mut Fence,
    ) -> anyhow::Result<Outcome> {
        if let Some(reason) = self.fence(fence, inputs)? {
            return self.abandon(plan, inputs, reason.describe());
        }
        let results = self.writer.send_once(outputs);
        let offsets = match settle(plan, inputs, &results) {
            Settled::Acknowledged(offsets) => offsets,
            Settled::Partial { failed, .. } => {
                if let Some(fatal) = self.writer.fatal_error() {
                    anyhow::bail!("the producer failed fatally: {fatal}");
                }
                let first = results.iter().find_map(|r| r.as_ref().err());
                tracing::warn!(failed, error = ?first, "outputs failed in part");
                return self.abandon(plan, inputs, "a produce failed in part");
            }
        };
        let changelog = self.changelog_records(plan, inputs, &offsets);
        if let Some(reason) = self.fence(fence, inputs)? {
            return self.abandon(plan, inputs, reason.describe());
        }
        let may_retry = || fence.may_retry(Instant::now(), self.co.consumer.assignment_lost());
        if let Err(e) = self
            .writer
            .send_repeatable("changelog write", &changelog, &may_retry)
        {
            if self.cancel.is_cancelled() {
                return Err(e);
            }
            tracing::warn!(error = %e, "changelog write failed");
            return self.abandon(plan, inputs, "the changelog write failed");
        }
        plan.remember(&mut self.co.partitions.states(), inputs, &offsets);
        self.commit(plan, inputs)?;
        Ok(Outcome::Done)
    }

    fn write_in_transaction(
        &self,
        plan: &BatchPlan,
        inputs: &[BatchRecord<'_>],
        outputs: &[OutRecord],
    ) -> anyhow::Result<Outcome> {
        let next = offsets_list(&self.co.input_topic, &plan.commit(inputs))?;
        let group = self
            .co
            .consumer
            .group_metadata()
            .ok_or_else(|| anyhow::anyhow!("no consumer group metadata for the transaction"))?;
        let offsets = self.writer.in_transaction(Some((&next, &group)), || {
            let offsets = self
                .writer
                .send_once(outputs)
                .into_iter()
                .collect::<Result<Vec<i64>, _>>()?;
            let changelog = self.changelog_records(plan, inputs, &offsets);
            self.writer
                .send_repeatable("changelog write", &changelog, &|| Ok(()))?;
            Ok(offsets)
        })?;
        plan.remember(&mut self.co.partitions.states(), inputs, &offsets);
        Ok(Outcome::Done)
    }

    /// The batch's changelog records, given its outputs' offsets.
    fn changelog_records(
        &self,
        plan: &BatchPlan,
        inputs: &[BatchRecord<'_>],
        offsets: &[i64],
    ) -> Vec<OutRecord> {
        plan.changelog(inputs, offsets)
            .iter()
            .map(|entry| {
                self.writer
                    .changelog_record(entry.partition, &entry.key, entry.seen)
            })
            .collect()
    }

    /// Whether the batch must be abandoned before its next write.
    fn fence(
        &self,
        fence: &mut Fence,
        inputs: &[BatchRecord<'_>],
    ) -> anyhow::Result<Option<Abandon>> {
        self.co
            .before_write(fence, inputs.iter().map(|i| (i.partition, i.offset)))
    }

    /// Gives the batch up: its partitions are reset (restored, then read
    /// again from their committed offsets) and nothing is committed.
    fn abandon(
        &self,
        plan: &BatchPlan,
        inputs: &[BatchRecord<'_>],
        reason: &str,
    ) -> anyhow::Result<Outcome> {
        let partitions: Vec<i32> = plan.commit(inputs).into_iter().map(|(p, _)| p).collect();
        tracing::warn!(
            ?partitions,
            reason,
            "batch abandoned; its partitions are restored and read again"
        );
        self.co.reset(&partitions);
        Ok(Outcome::Abandoned)
    }

    /// Commits past the batch's decided records (output-first mode).
    fn commit(&self, plan: &BatchPlan, inputs: &[BatchRecord<'_>]) -> anyhow::Result<()> {
        if self.writer.transactional() {
            return Ok(());
        }
        self.co.commit(&plan.commit(inputs))
    }

    /// The record a forwarded input produces on the input's partition of
    /// `properties.events`: the input's key and value, with only the
    /// headers its readers use (`dedupe-key`, `event-type`, `replay-id`,
    /// and `source-offset`, read by the restore) and a new `traceparent`.
    ///
    /// Size: it cannot exceed the producer's `message_max_bytes` when
    /// dedupe and normalize share it (the default): it is the input's key
    /// and value with at most 72 bytes more of headers, and normalize keeps
    /// `common::produce::FORWARDING_ALLOWANCE` (128 bytes) free for them. A
    /// record the broker refuses anyway fails its produce and the batch is
    /// retried after a restore; keep the limits equal.
    fn output_of(&self, message: &BorrowedMessage<'_>, traceparent: &str) -> OutRecord {
        OutRecord {
            topic: self.events_topic.clone(),
            partition: Some(message.partition()),
            key: message.key().map(<[u8]>::to_vec),
            payload: message.payload().map(<[u8]>::to_vec),
            headers: Vec::new(),
        }
        .header(headers::TRACEPARENT, traceparent)
        .with_headers_named(
            message,
            &[headers::DEDUPE_KEY, headers::EVENT_TYPE, headers::REPLAY_ID],
        )
        .header(headers::SOURCE_OFFSET, message.offset().to_string())
    }
}

/// The record's dedupe key, or a key of its own (forwarded once) when the
/// header is missing.
fn dedupe_key(message: &BorrowedMessage<'_>) -> String {
    match header_str(message, headers::DEDUPE_KEY) {
        Some(key) => key.to_string(),
        None => {
            tracing::error!(
                partition = message.partition(),
                offset = message.offset(),
                "record without a dedupe-key header forwarded as is"
            );
            format!("offset:{}:{}", message.partition(), message.offset())
        }
    }
}
