//! The normalize loop, `webhooks.raw` → `properties.normalized` or
//! `webhooks.dlq`: wiring of the pure core ([`crate::outcome`],
//! [`crate::delivery`], [`crate::failures`]) to Kafka and the registry, with
//! the loop kit ([`common::stage_loop`]).
//!
//! **Guarantee: a raw record's offset is committed only after every output
//! it yields (its events, or its dead letter) is acknowledged by the
//! broker.** So no record is lost, nothing is dropped silently, and a crash
//! or a stop only makes the stage process again what it had not committed;
//! the events that yields carry the same dedupe keys and dedupe drops them,
//! which makes the pipeline exactly-once after dedupe. Per batch:
//!
//! 1. Read: up to `batch.max_records`, at most `batch.max_wait_ms` after the
//!    first ([`BatchWindow`]), in offset order per partition.
//! 2. Decide each record: [`outcome::parse`] (events, or a dead letter of
//!    its kind; an event time it replaced, being in the future, is counted
//!    in `normalize_future_event_times_total`), then [`Registry::encode`],
//!    then [`outcome::assemble`] (records, or a `schema` / `too_large` dead
//!    letter). An unavailable registry is retried ([`RetryPolicy`]), never
//!    dead-lettered: only what is wrong with the record itself goes to the
//!    DLQ.
//! 3. Send the batch's outputs in offset order and wait for every
//!    acknowledgement; [`Delivery::settle`] decides each round: stored
//!    records are never sent again, transient failures are sent again, a
//!    record refused for its size is replaced by a dead letter.
//! 4. Commit the batch's offsets, only once [`Delivery::is_done`]. A stop
//!    ([`Cancel`]) ends the retries of steps 2–3 without committing.
//! 5. Fatal errors ([`crate::failures`]: the registry refusing the schema, a
//!    fatal librdkafka error) end the loop without committing; the process
//!    exits non-zero for its supervisor to restart it.
//!
//! Waiting idle counts as progress for [`common::stage_loop::Liveness`];
//! `/health` answers 503 when no batch completes for `stall_after_secs`
//! while the group has lag.

use std::sync::Arc;
use std::time::Instant;

use common::dead_letter::dead_letter_within;
use common::headers;
use common::instruments::Counter;
use common::kafka::{BatchSettings, RawFields};
use common::produce::{OutRecord, record_budget};
use common::stage_loop::{
    BatchWindow, Cancel, GaveUp, RetryPolicy, Verdict, record_span_continuing,
};
use common::stage_metrics::StageMetrics;
use rdkafka::Message;
use rdkafka::consumer::{CommitMode, Consumer, StreamConsumer};
use rdkafka::error::KafkaError;
use rdkafka::message::BorrowedMessage;
use rdkafka::producer::FutureProducer;
use schemas::PropertyEvent;
use tracing::Instrument;

use crate::delivery::{Delivery, Outputs};
use crate::failures::kafka_fatal;
use crate::outcome::{self, Origin, Outcome, RawHeaders, Rejection, Rules};
use crate::registry::Registry;
use crate::round::send_round;

/// Stage name in `error.stage`.
pub(crate) const STAGE: &str = "normalize";

/// The wired stage (built by [`Normalizer::connect`], `crate::connect`).
pub struct Normalizer {
    pub(crate) consumer: StreamConsumer,
    pub(crate) producer: FutureProducer,
    pub(crate) registry: Registry,
    pub(crate) rules: Rules,
    pub(crate) raw_topic: String,
    pub(crate) dlq_topic: String,
    pub(crate) batch: BatchSettings,
    pub(crate) metrics: Arc<StageMetrics>,
    /// Events whose `occurred_at` was replaced by their arrival time.
    pub(crate) future_event_times: Counter,
    pub(crate) cancel: Cancel,
    pub(crate) retry: RetryPolicy,
}

/// Normalize's metrics: the common stage series, and
/// `normalize_future_event_times_total`, the events whose `occurred_at` was
/// later than their arrival plus `max_future_skew_secs` and was replaced by
/// it ([`crate::event_time`]).
pub(crate) fn stage_metrics() -> (Arc<StageMetrics>, Counter) {
    let mut builder = StageMetrics::builder(STAGE);
    let future_event_times = builder.counter(
        "future_event_times",
        "Events whose occurred_at was later than received_at plus max_future_skew_secs, set to received_at",
    );
    (Arc::new(builder.build()), future_event_times)
}

impl Normalizer {
    /// The stage's metrics (served on `/metrics` by the binary).
    pub fn metrics(&self) -> Arc<StageMetrics> {
        Arc::clone(&self.metrics)
    }

    /// Runs until the stop signal; commits what was fully processed. `Err`
    /// on a fatal error.
    pub async fn run(self) -> anyhow::Result<()> {
        tracing::info!(
            input = %self.raw_topic,
            output = %self.rules.normalized_topic,
            batch_max_records = self.batch.max_records(),
            batch_max_wait_ms = self.batch.max_wait_ms,
            message_max_bytes = self.rules.message_max_bytes,
            max_events_per_record = self.rules.limits.max_events_per_record,
            max_array_items = self.rules.limits.max_array_items,
            max_future_skew_ms = self.rules.max_future_skew_ms,
            "normalize running"
        );
        let result = self.batches().await;
        match &result {
            Ok(()) => tracing::info!("normalize stopping"),
            Err(e) => tracing::error!(error = %e, "normalize stopping on a fatal error"),
        }
        if result.is_ok()
            && let Err(e) = self.consumer.commit_consumer_state(CommitMode::Sync)
        {
            tracing::debug!(error = %e, "final commit");
        }
        result
    }

    /// Steps 1–4 for every batch until the stop signal.
    async fn batches(&self) -> anyhow::Result<()> {
        while let Some((batch, started)) = self.next_batch().await? {
            if !self.handle(&batch, started).await? {
                return Ok(());
            }
            let offsets = common::kafka::offsets_after_all(&batch)?;
            if let Err(e) = self.consumer.commit(&offsets, CommitMode::Async) {
                tracing::warn!(error = %e, "offset commit failed; the records may be re-processed");
            }
        }
        Ok(())
    }

    /// Step 1. `None` when the stop signal arrives before a record.
    async fn next_batch(&self) -> anyhow::Result<Option<(Vec<BorrowedMessage<'_>>, Instant)>> {
        let mut window = BatchWindow::new(&self.batch);
        let mut batch = Vec::new();
        while let Some(wait) = window.next_wait(Instant::now()) {
            let received = tokio::select! {
                () = self.cancel.cancelled(), if window.is_empty() => return Ok(None),
                received = tokio::time::timeout(wait, self.consumer.recv()) => received,
            };
            match received {
                Ok(Ok(message)) => {
                    window.push(Instant::now());
                    batch.push(message);
                }
                Ok(Err(e)) => self.consumer_error(&e)?,
                Err(_idle) if window.is_empty() => self.metrics.liveness.idle(),
                Err(_window_closed) => break,
            }
        }
        Ok(Some((batch, window.started(Instant::now()))))
    }

    fn consumer_error(&self, error: &KafkaError) -> anyhow::Result<()> {
        if let Some(fatal) = kafka_fatal(error, self.consumer.client().fatal_error()) {
            anyhow::bail!("fatal: {fatal}");
        }
        tracing::warn!(%error, "consumer error");
        Ok(())
    }

    /// Steps 2 and 3. `Ok(false)` when the stop signal cut the retries (the
    /// offsets must not be committed).
    async fn handle(
        &self,
        batch: &[BorrowedMessage<'_>],
        started: Instant,
    ) -> anyhow::Result<bool> {
        let mut outputs = Vec::with_capacity(batch.len());
        // One span per record, open until the batch is acknowledged.
        let mut spans = Vec::with_capacity(batch.len());
        for message in batch {
            let fields = RawFields::of(message);
            let received = fields.get(headers::TRACEPARENT);
            let (span, traceparent) = record_span_continuing("normalize record", message, received);
            let decided = self.outputs(message, &fields, None, &traceparent);
            spans.push(span.clone());
            // The record's log lines carry its partition and offset.
            match decided.instrument(span).await {
                Ok(decided) => outputs.push(decided),
                Err(gave_up) => return stopped_or_fatal(gave_up),
            }
        }
        let processed = Instant::now();
        let (events, dead_letters) = match self.deliver(batch, Delivery::new(outputs)).await {
            Ok(stored) => stored,
            Err(gave_up) => return stopped_or_fatal(gave_up),
        };
        drop(spans);
        self.metrics.batch(batch.len(), started);
        self.metrics.records_out.inc_by(events);
        self.metrics.dead_letters.inc_by(dead_letters);
        tracing::info!(
            records = batch.len(),
            events,
            dead_letters,
            process_ms = (processed - started).as_millis(),
            acknowledge_ms = processed.elapsed().as_millis(),
            "batch normalized"
        );
        Ok(true)
    }

    /// Step 2 for one record: its outputs, retrying an unavailable registry.
    /// `fields` is ingest's metadata on it (`RawFields::of(message)`, read
    /// once per record); `origin` is the raw record's position when
    /// `message` is a replayed dead letter; `traceparent` goes on the events.
    pub(crate) async fn outputs(
        &self,
        message: &BorrowedMessage<'_>,
        fields: &RawFields<'_>,
        origin: Option<Origin<'_>>,
        traceparent: &str,
    ) -> Result<Outputs, GaveUp<anyhow::Error>> {
        let origin = origin.unwrap_or(Origin {
            topic: message.topic(),
            partition: message.partition(),
            offset: message.offset(),
        });
        let body = message.payload().unwrap_or_default();
        let raw = RawHeaders::of(fields, message);
        let events = match outcome::parse(&raw, body, origin, &self.rules) {
            Ok(events) => events,
            Err(rejection) => {
                return Ok(Outputs::DeadLetter(self.dead_letter(message, &rejection)));
            }
        };
        self.note_future_times(&events);
        let encoded = self
            .retry
            .run(&self.cancel, "encoding", |_| self.registry.encode(&events))
            .await?;
        Ok(
            match outcome::assemble(&events, encoded, traceparent, &self.rules) {
                Outcome::Events(records) => Outputs::Events(records),
                Outcome::DeadLetter(rejection) => {
                    Outputs::DeadLetter(self.dead_letter(message, &rejection))
                }
            },
        )
    }

    /// Step 3: sends rounds until every output is stored or replaced;
    /// returns the events and dead letters stored.
    async fn deliver(
        &self,
        batch: &[BorrowedMessage<'_>],
        delivery: Delivery,
    ) -> Result<(u64, u64), GaveUp<anyhow::Error>> {
        // The retried closure may only hold shared references.
        let delivery = &tokio::sync::Mutex::new(delivery);
        self.retry
            .run(&self.cancel, "produce", |_| async move {
                let mut delivery = delivery.lock().await;
                loop {
                    let (sent, error) = send_round(&self.producer, delivery.records()).await?;
                    let failed = delivery.settle(&sent, |raw, rejection| {
                        self.dead_letter(&batch[raw], rejection)
                    });
                    if delivery.is_done() {
                        return Ok(delivery.stored());
                    }
                    if failed > 0 {
                        let error = error.unwrap_or_default();
                        return Err(Verdict::Retry(anyhow::anyhow!(
                            "{failed} records not acknowledged: {error}"
                        )));
                    }
                }
            })
            .await
    }

    /// Counts and logs (at debug: one line per event, never the body) the
    /// events whose time [`crate::event_time`] replaced.
    fn note_future_times(&self, events: &[PropertyEvent]) {
        for event in events {
            if let Some(claimed) = event.occurred_at_claimed {
                self.future_event_times.inc();
                tracing::debug!(
                    property_key = %event.property_key,
                    dedupe_key = %event.dedupe_key,
                    claimed_ms = claimed,
                    received_at_ms = event.received_at,
                    "event time in the future: occurred_at set to the arrival time"
                );
            }
        }
    }

    /// The dead letter of `message` for `rejection`, within the size budget.
    fn dead_letter(&self, message: &BorrowedMessage<'_>, rejection: &Rejection) -> OutRecord {
        tracing::info!(
            kind = rejection.kind,
            reason = %rejection.reason,
            offset = message.offset(),
            partition = message.partition(),
            "dead-lettered"
        );
        dead_letter_within(
            message,
            &self.dlq_topic,
            STAGE,
            rejection.kind,
            &rejection.reason,
            record_budget(self.rules.message_max_bytes),
        )
    }
}

/// `Ok(false)` for a stop (nothing is committed), `Err` for a fatal error.
fn stopped_or_fatal(gave_up: GaveUp<anyhow::Error>) -> anyhow::Result<bool> {
    match gave_up {
        GaveUp::Stopped(_) => Ok(false),
        other => Err(other.into_error()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn future_event_times_are_a_series_of_the_stage() {
        let (metrics, future_event_times) = stage_metrics();
        assert!(
            metrics
                .encode()
                .contains("normalize_future_event_times_total 0"),
            "{}",
            metrics.encode()
        );
        future_event_times.inc_by(2);
        let text = metrics.encode();
        assert!(
            text.contains("normalize_future_event_times_total 2"),
            "{text}"
        );
        assert!(text.contains("normalize_records_in_total 0"), "{text}");
    }
}
