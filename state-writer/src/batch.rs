//! One batch, from the records read to the offsets committed: the IO
//! around [`crate::plan`]. The steps, and what enforces each:
//! 1. decode every value, holding the batch while the registry cannot give
//!    a writer schema ([`StateWriter::decode_holding`]);
//! 2. merge every event into its property's state, in input order, one
//!    output per change, each fitted into one record ([`plan_batch`],
//!    [`crate::fit`]);
//! 3. check ownership ([`common::stage_loop::CoPartitioned::before_write`]) and produce the outputs once,
//!    in input order, to the inputs' partitions of `properties.latest`
//!    ([`crate::writer::Writer::send_once`]);
//! 4. settle ([`settle`]): a partition whose outputs were all acknowledged
//!    learns the batch ([`BatchPlan::apply`]) and commits its input offsets
//!    ([`BatchPlan::commit`]); a partition with a failed output is reset
//!    (state dropped, paused, restored from the output and read again from
//!    the mark), exactly as after a crash of that partition.

use std::collections::BTreeSet;

use common::headers;
use common::kafka::header_str;
use common::produce::OutRecord;
use common::stage_loop::{Abandon, Polled, record_span};
use rdkafka::Message;

use crate::plan::{BatchPlan, Decision, Input, plan_batch, settle};
use crate::runner::StateWriter;
use crate::writer::Origin;

impl StateWriter {
    /// Handles one polled batch. `Err` only for what no retry can cure
    /// (a fatal producer error, a state that cannot be written) or a stop.
    pub(crate) fn handle(&self, polled: &Polled<'_>) -> anyhow::Result<()> {
        let batch = &polled.records;
        let Some(decoded) = self.decode_holding(batch)? else {
            return Ok(());
        };
        let inputs: Vec<Input<'_>> = batch
            .iter()
            .zip(&decoded.events)
            .map(|(m, event)| Input {
                partition: m.partition(),
                offset: m.offset(),
                event: event.as_ref(),
            })
            .collect();
        let plan = plan_batch(&self.co.partitions.states(), &inputs, &self.writer.limit())?;
        for output in plan.outputs.iter().filter(|o| !o.withheld.is_empty()) {
            self.metrics.withheld.inc();
            tracing::warn!(key = %output.key, withheld = ?output.withheld,
                "the state is over the record size limit: its largest values are withheld \
                 on properties.latest (PostgreSQL keeps them)");
        }
        let mut spans = Vec::with_capacity(batch.len());
        let mut traceparents = vec![String::new(); batch.len()];
        for (index, (message, decision)) in batch.iter().zip(&plan.decisions).enumerate() {
            if *decision == Decision::NotOwned {
                continue;
            }
            let (span, traceparent) = record_span("state-writer record", message);
            span.in_scope(|| tracing::debug!(?decision, offset = message.offset(), "merged"));
            spans.push(span);
            traceparents[index] = traceparent;
        }
        let records = plan
            .outputs
            .iter()
            .map(|output| {
                let message = &batch[output.input];
                let dedupe_key = header_str(message, headers::DEDUPE_KEY)
                    .or_else(|| inputs[output.input].event.map(|e| e.dedupe_key.as_str()))
                    .unwrap_or_default();
                let origin = Origin {
                    partition: message.partition(),
                    offset: message.offset(),
                    dedupe_key,
                    traceparent: &traceparents[output.input],
                };
                self.writer.record(&output.key, &output.datum, origin)
            })
            .collect::<anyhow::Result<Vec<OutRecord>>>()?;
        let (started, polled_at) = match decoded.held_until {
            Some(at) => (at, at),
            None => (polled.started, polled.polled_at),
        };
        let mut fence = self.co.fence(started, polled_at);
        let results = if records.is_empty() {
            Vec::new()
        } else {
            if let Some(reason) = self
                .co
                .before_write(&mut fence, inputs.iter().map(|i| (i.partition, i.offset)))?
            {
                self.abandon(&plan, &inputs, reason);
                return Ok(());
            }
            self.writer.send_once(&records)
        };
        let settled = settle(&plan, &inputs, &results);
        if !settled.restore.is_empty() {
            if let Some(fatal) = self.writer.fatal_error() {
                anyhow::bail!("the producer failed fatally: {fatal}");
            }
            let first = results.iter().find_map(|r| r.as_ref().err());
            tracing::warn!(failed = settled.failed, error = ?first, partitions = ?settled.restore,
                "outputs failed in part; those partitions are restored and read again");
            self.co
                .reset(&settled.restore.iter().copied().collect::<Vec<_>>());
        }
        let counted = |decision| {
            inputs
                .iter()
                .zip(&plan.decisions)
                .filter(|(i, d)| **d == decision && settled.done.contains(&i.partition))
                .count()
        };
        let (written, unchanged, undecodable) = (
            counted(Decision::Changed),
            counted(Decision::Unchanged),
            counted(Decision::Undecodable),
        );
        let decided = inputs
            .iter()
            .filter(|i| settled.done.contains(&i.partition))
            .count();
        let commit = plan.commit(&inputs, &settled.done);
        plan.apply(&mut self.co.partitions.states(), &inputs, &settled.done);
        self.co.commit(&commit)?;
        self.metrics.unchanged.inc_by(unchanged as u64);
        self.metrics.undecodable.inc_by(undecodable as u64);
        self.metrics.stage.records_out.inc_by(written as u64);
        if decided > 0 {
            self.metrics.stage.batch(decided, polled.started);
            tracing::info!(
                records = decided,
                written,
                unchanged,
                undecodable,
                "batch merged"
            );
        }
        drop(spans);
        Ok(())
    }

    /// Gives the batch up before it wrote anything: its partitions are
    /// reset (restored, then read again from where they resume) and nothing
    /// is committed.
    fn abandon(&self, plan: &BatchPlan, inputs: &[Input<'_>], reason: Abandon) {
        let partitions: Vec<i32> = inputs
            .iter()
            .zip(&plan.decisions)
            .filter(|(_, d)| **d != Decision::NotOwned)
            .map(|(i, _)| i.partition)
            .collect::<BTreeSet<i32>>()
            .into_iter()
            .collect();
        tracing::warn!(
            ?partitions,
            reason = reason.describe(),
            "batch abandoned; its partitions are restored and read again"
        );
        self.co.reset(&partitions);
    }
}
