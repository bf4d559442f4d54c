//! The enrichment loop, `properties.events` → `properties.normalized` (and
//! `webhooks.dlq`): wiring of [`crate::event`] and [`crate::client`] to
//! Kafka and the registry.
//!
//! **Where it sits, and why.** The stage reads the *deduplicated* events,
//! picks Fluximmo references ([`crate::event::wants_enrichment`]), fetches
//! each property once per batch, and writes its full-snapshot event back to
//! `properties.normalized`, the topic normalize writes: dedupe, the state
//! writer and the sink then take it like any other event. So:
//! - other providers' events never wait for it (it is a side branch, its
//!   own consumer group, scaled on its own), and without a key nothing
//!   changes at all: references flow on as reference-only rows;
//! - a redelivered webhook is dropped by dedupe before it costs a call;
//! - **exactly-once**: a record's offset is committed only after every
//!   output it yields (its enriched event, or its dead letter) is
//!   acknowledged. A crash or a failed produce makes the stage read the
//!   batch again and fetch again, and the enriched event it writes again
//!   carries the same dedupe key (`<reference's key>:api`,
//!   [`crate::event::enriched`]), which dedupe drops: a refetch may cost a
//!   call, never a second row or `properties.events` record.
//!
//! Per batch: read (`[batch]`), decode the references (a writer schema the
//! registry cannot give now is asked again, never skipped), fetch
//! ([`ApiClient::fetch_all`]), build each output, send them all until
//! acknowledged (retried until the stop signal; repeats are dedupe's), and
//! commit. A refused key stops the stage with an error naming where the key
//! was read; a stop commits nothing unfinished.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use common::dead_letter::dead_letter_within;
use common::headers;
use common::kafka::{BatchSettings, header_str};
use common::produce::{OutRecord, record_budget, send_all};
use common::registry::Registry;
use common::stage_loop::{BatchWindow, Cancel, GaveUp, RetryPolicy, Verdict};
use normalize::outcome::Rules;
use rdkafka::Message;
use rdkafka::consumer::{CommitMode, Consumer, StreamConsumer};
use rdkafka::message::BorrowedMessage;
use rdkafka::producer::FutureProducer;
use schemas::PropertyEvent;
use schemas::writer_schemas::{Decoded, WriterSchemas};

use crate::client::{ApiClient, Fetched, Interrupted, lock};
use crate::event::{enriched, wants_enrichment};
use crate::metrics::{EnrichMetrics, STAGE};

/// The wired stage.
pub struct Enricher {
    pub(crate) consumer: StreamConsumer,
    pub(crate) producer: FutureProducer,
    pub(crate) registry: Registry,
    /// The id `PropertyEvent` is registered under on the output's subject.
    pub(crate) schema_id: u32,
    pub(crate) writer_schemas: Mutex<WriterSchemas<PropertyEvent>>,
    pub(crate) client: ApiClient,
    pub(crate) rules: Rules,
    pub(crate) dlq_topic: String,
    pub(crate) batch: BatchSettings,
    pub(crate) metrics: EnrichMetrics,
    pub(crate) cancel: Cancel,
}

/// What becomes of a reference that cannot be enriched.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Failures {
    /// A dead letter (the live stage).
    DeadLetter,
    /// Counted only (a replay: its dead letter exists already).
    Count,
}

/// What one call of [`Enricher::enrich`] did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Enriched {
    /// Fluximmo references among the records.
    pub references: u64,
    /// Enriched events written.
    pub enriched: u64,
    /// References not enriched.
    pub failed: u64,
}

/// One reference of a batch: the record it came from and its event.
struct Reference<'a> {
    message: &'a BorrowedMessage<'a>,
    event: PropertyEvent,
}

impl Enricher {
    /// Runs until the stop signal; `Err` on a fatal error (a refused key).
    pub async fn run(self) -> anyhow::Result<()> {
        tracing::info!(
            output = %self.rules.normalized_topic,
            batch_max_records = self.batch.max_records(),
            "enrich running"
        );
        let result = self.batches().await;
        match &result {
            Ok(()) => tracing::info!("enrich stopping"),
            Err(e) => tracing::error!(error = %e, "enrich stopping on a fatal error"),
        }
        result
    }

    async fn batches(&self) -> anyhow::Result<()> {
        while let Some((batch, started)) = self.next_batch().await {
            if !self.handle(&batch).await? {
                return Ok(());
            }
            let offsets = common::kafka::offsets_after_all(&batch)?;
            if let Err(e) = self.consumer.commit(&offsets, CommitMode::Async) {
                tracing::warn!(error = %e, "offset commit failed; the records may be enriched again");
            }
            self.metrics.stage.batch(batch.len(), started);
        }
        Ok(())
    }

    /// Reads one batch; `None` on the stop signal.
    async fn next_batch(&self) -> Option<(Vec<BorrowedMessage<'_>>, Instant)> {
        let mut window = BatchWindow::new(&self.batch);
        let mut batch = Vec::new();
        while let Some(wait) = window.next_wait(Instant::now()) {
            let received = tokio::select! {
                () = self.cancel.cancelled(), if window.is_empty() => return None,
                received = tokio::time::timeout(wait, self.consumer.recv()) => received,
            };
            match received {
                Ok(Ok(message)) => {
                    window.push(Instant::now());
                    batch.push(message);
                }
                Ok(Err(error)) => tracing::warn!(%error, "consumer error"),
                Err(_idle) if window.is_empty() => self.metrics.stage.liveness.idle(),
                Err(_window_closed) => break,
            }
        }
        Some((batch, window.started(Instant::now())))
    }

    /// Decodes, fetches, writes. `Ok(false)` when stopped (commit nothing).
    async fn handle<'a>(&self, batch: &'a [BorrowedMessage<'a>]) -> anyhow::Result<bool> {
        let Some(done) = self.enrich(batch, Failures::DeadLetter).await? else {
            return Ok(false);
        };
        if done.references > 0 {
            self.metrics.stage.records_out.inc_by(done.enriched);
            self.metrics.stage.dead_letters.inc_by(done.failed);
            tracing::info!(
                records = batch.len(),
                references = done.references,
                enriched = done.enriched,
                dead_letters = done.failed,
                "batch enriched"
            );
        }
        Ok(true)
    }

    /// Enriches the Fluximmo references among `records` (live records of
    /// `properties.events`, or their dead letters in a replay), writing
    /// each one's enriched event, or per `failures` its dead letter;
    /// `None` when stopped before every output was acknowledged.
    pub(crate) async fn enrich<'a>(
        &self,
        records: &'a [BorrowedMessage<'a>],
        failures: Failures,
    ) -> anyhow::Result<Option<Enriched>> {
        let mut references = Vec::new();
        for message in records {
            if header_str(message, headers::EVENT_TYPE) != Some("reference_only") {
                continue;
            }
            match self.decode(message).await {
                Some(event) if wants_enrichment(&event) => {
                    references.push(Reference { message, event });
                }
                Some(_) => {}
                None if self.cancel.is_cancelled() => return Ok(None),
                None => {}
            }
        }
        if references.is_empty() {
            return Ok(Some(Enriched::default()));
        }
        let wanted: Vec<(&str, i64)> = references
            .iter()
            .map(|r| (r.event.provider_property_id.as_str(), r.event.received_at))
            .collect();
        let fetched = match self.client.fetch_all(&wanted).await {
            Ok(fetched) => fetched,
            Err(Interrupted::Stopped) => return Ok(None),
            Err(Interrupted::Unauthorized(refused)) => anyhow::bail!("fatal: {refused}"),
        };
        let mut done = Enriched {
            references: references.len() as u64,
            ..Enriched::default()
        };
        let mut outputs = Vec::with_capacity(references.len());
        for reference in &references {
            let id = reference.event.provider_property_id.as_str();
            match self.output(reference, fetched.get(id)) {
                Ok(record) => {
                    done.enriched += 1;
                    outputs.push(record);
                }
                Err(dead_letter) => {
                    done.failed += 1;
                    if failures == Failures::DeadLetter {
                        outputs.push(dead_letter);
                    }
                }
            }
        }
        if !self.send(&outputs).await? {
            return Ok(None);
        }
        Ok(Some(done))
    }

    /// The record a reference yields: its enriched event, or (`Err`) its
    /// dead letter.
    fn output(
        &self,
        reference: &Reference<'_>,
        fetched: Option<&Fetched>,
    ) -> Result<OutRecord, OutRecord> {
        let (kind, reason) = match fetched {
            Some(Fetched::Found(property)) => {
                self.metrics.properties_fetched.inc();
                match enriched(&reference.event, property.as_ref().clone()) {
                    Ok(event) => match self.event_record(&event, reference.message) {
                        Ok(record) => return Ok(record),
                        Err(rejected) => rejected,
                    },
                    Err(mismatch) => ("mismatch", mismatch.to_string()),
                }
            }
            Some(Fetched::Failed { kind, reason }) => (*kind, reason.clone()),
            None => (
                "not_found",
                "the fetch returned nothing for this id".to_string(),
            ),
        };
        self.metrics.failed(kind);
        tracing::info!(
            kind,
            %reason,
            property_key = %reference.event.property_key,
            "not enriched: dead-lettered; the reference-only event stays"
        );
        Err(dead_letter_within(
            reference.message,
            &self.dlq_topic,
            STAGE,
            kind,
            &reason,
            record_budget(self.rules.message_max_bytes),
        ))
    }

    /// `event` encoded for `properties.normalized`, with the headers dedupe
    /// reads; `Err` with the dead letter's kind (`schema`, `too_large`) and
    /// reason when it cannot be encoded or is too large.
    fn event_record(
        &self,
        event: &PropertyEvent,
        message: &BorrowedMessage<'_>,
    ) -> Result<OutRecord, (&'static str, String)> {
        let datum = schemas::codec::encode_datum(event).map_err(|e| ("schema", e.to_string()))?;
        let value = schemas::wire::frame(self.schema_id, &datum);
        let traceparent = header_str(message, headers::TRACEPARENT).unwrap_or_default();
        let record = normalize::outcome::normalized_record(&self.rules, event, value, traceparent);
        let budget = record_budget(self.rules.message_max_bytes)
            .saturating_sub(common::produce::FORWARDING_ALLOWANCE);
        if record.wire_size() > budget {
            return Err((
                "too_large",
                format!(
                    "the enriched event is {} bytes, over the {budget} bytes a record of {} may take",
                    record.wire_size(),
                    self.rules.normalized_topic
                ),
            ));
        }
        Ok(record)
    }

    /// A value of `properties.events`; `None` for one that does not decode
    /// (logged: the sink dead-letters it) or when stopped while the
    /// registry was unavailable.
    async fn decode(&self, message: &BorrowedMessage<'_>) -> Option<PropertyEvent> {
        let bytes = message.payload()?;
        loop {
            let schema_id = schemas::wire::split(bytes).ok().map(|(id, _)| id);
            if let Some(id) = schema_id
                && !lock(&self.writer_schemas).knows(id)
            {
                match self.registry.fetch(id).await {
                    Ok(schema) => {
                        let _ = lock(&self.writer_schemas).fetch(id, |_| Ok(schema));
                    }
                    Err(reason) => {
                        tracing::warn!(schema_id = id, %reason, "writer schema not fetched; asking again");
                        tokio::select! {
                            () = self.cancel.cancelled() => return None,
                            () = tokio::time::sleep(Duration::from_secs(1)) => continue,
                        }
                    }
                }
            }
            let decoded =
                lock(&self.writer_schemas).decode(bytes, |_| Err("not fetched".to_string()));
            return match decoded {
                Decoded::Value(event) => Some(*event),
                Decoded::Fault(reason) => {
                    tracing::warn!(
                        partition = message.partition(),
                        offset = message.offset(),
                        %reason,
                        "an event that does not decode is not enriched"
                    );
                    None
                }
                Decoded::Unavailable { .. } => continue,
            };
        }
    }

    /// Sends every output until acknowledged; `Ok(false)` when stopped.
    async fn send(&self, outputs: &[OutRecord]) -> anyhow::Result<bool> {
        let sent = RetryPolicy::UNTIL_STOPPED
            .run(&self.cancel, "produce", |_| async {
                send_all(&self.producer, outputs)
                    .await
                    .map(drop)
                    .map_err(|e| Verdict::Retry(anyhow::Error::from(e)))
            })
            .await;
        match sent {
            Ok(()) => Ok(true),
            Err(GaveUp::Stopped(_)) => Ok(false),
            Err(other) => Err(other.into_error()),
        }
    }
}
