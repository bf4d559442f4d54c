//! The normalize loop: `webhooks.raw` → `properties.normalized` or `webhooks.dlq`.
//!
//! Delivery guarantee: at least once, in order per partition. Each raw
//! record is parsed, its events encoded in the Confluent wire format through
//! the schema registry and produced (or the record is dead-lettered), and the
//! input offsets are committed only after every output was acknowledged.
//! Records are taken in batches (up to `batch.max_records`, waiting at most
//! `batch.max_wait_ms` for more): the outputs of a whole batch are enqueued
//! in offset order and acknowledged together, then the batch's offsets are
//! committed. A crash in between re-processes the batch; the duplicate
//! events it produces carry the same dedupe keys and are dropped by dedupe.
//!
//! Transient failures (registry or Kafka unreachable) are retried with
//! backoff and never dead-lettered; only what is wrong with the record itself
//! (unparseable, not a property event, does not fit the schema, yields too
//! much, or an output too large to send) goes to the DLQ. Size is a property
//! of the record, so it is never retried ([`crate::sizing`]): an event over
//! the limit dead-letters its raw record (`too_large`), checked before
//! sending and again if the broker refuses it, and a dead letter over the
//! limit is sent with its value cut. When some records of a batch fail,
//! only those are sent again.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use common::dead_letter::{dead_letter_within, fit_dead_letter};
use common::headers;
use common::kafka::{BatchSettings, header_str};
use common::produce::{OutRecord, is_size_error, record_budget, send_each};
use common::stage_metrics::StageMetrics;
use rdkafka::Message;
use rdkafka::consumer::{CommitMode, Consumer, StreamConsumer};
use rdkafka::message::BorrowedMessage;
use rdkafka::producer::FutureProducer;
use schema_registry_converter::async_impl::avro::AvroEncoder;
use schema_registry_converter::async_impl::schema_registry::SrSettings;
use schema_registry_converter::schema_registry_common::{
    SchemaType, SubjectNameStrategy, SuppliedSchema,
};
use schemas::PropertyEvent;
use tokio::sync::watch;

use crate::providers::{self, Limits, ParseError, RawContext};
use crate::settings::NormalizeSettings;
use crate::sizing::{self, Form, Sent};

/// Stage name in `error.stage`.
const STAGE: &str = "normalize";

/// What one raw record turns into.
pub(crate) enum Outcome {
    Events(Vec<OutRecord>),
    DeadLetter(OutRecord),
}

/// The wired stage.
pub struct Normalizer {
    pub(crate) consumer: StreamConsumer,
    pub(crate) producer: FutureProducer,
    pub(crate) encoder: AvroEncoder,
    strategy: SubjectNameStrategy,
    raw_topic: String,
    normalized_topic: String,
    pub(crate) dlq_topic: String,
    batch: BatchSettings,
    normalizer_version: Option<String>,
    metrics: Arc<StageMetrics>,
    limits: Limits,
    /// The producer's `message.max.bytes`.
    message_max_bytes: usize,
}

/// Exponential backoff from 100 ms to 10 s.
pub(crate) fn backoff(attempt: u32) -> Duration {
    Duration::from_millis(100u64.saturating_mul(1 << attempt.min(7)).min(10_000))
}

impl Normalizer {
    /// Connects to Kafka and the registry and registers the schema.
    pub async fn connect(settings: &NormalizeSettings) -> anyhow::Result<Self> {
        let consumer: StreamConsumer = settings
            .kafka
            .consumer(&settings.group)
            .create()
            .context("cannot create the Kafka consumer")?;
        consumer.subscribe(&[&settings.topics.raw()])?;
        Self::with_consumer(settings, consumer).await
    }

    /// The stage around an already subscribed or assigned `consumer`
    /// (the live group's, or replay's).
    pub(crate) async fn with_consumer(
        settings: &NormalizeSettings,
        consumer: StreamConsumer,
    ) -> anyhow::Result<Self> {
        let raw_topic = settings.topics.raw();
        let normalized_topic = settings.topics.normalized();
        let dlq_topic = settings.topics.dlq();
        let kafka = settings.kafka.clone();
        let names = [
            raw_topic.clone(),
            normalized_topic.clone(),
            dlq_topic.clone(),
        ];
        let _ = tokio::task::spawn_blocking(move || {
            let refs: Vec<&str> = names.iter().map(String::as_str).collect();
            common::kafka::check_topics(&kafka, &refs, Duration::from_secs(10))
        })
        .await??;
        let producer: FutureProducer = settings.kafka.producer().create()?;
        let sr = SrSettings::new_builder(
            settings
                .schema_registry_url
                .trim_end_matches('/')
                .to_string(),
        )
        .no_proxy()
        .set_timeout(Duration::from_secs(5))
        .build()
        .map_err(|e| anyhow::anyhow!("invalid schema registry settings: {e}"))?;
        let encoder = AvroEncoder::new(sr);
        let strategy = SubjectNameStrategy::TopicNameStrategyWithSchema(
            normalized_topic.clone(),
            false,
            SuppliedSchema::new(
                Some(schemas::PROPERTY_EVENT_NAME.to_string()),
                SchemaType::Avro,
                schemas::PROPERTY_EVENT_AVSC.to_string(),
            ),
        );
        let normalizer = Self {
            consumer,
            producer,
            encoder,
            strategy,
            raw_topic,
            normalized_topic,
            dlq_topic,
            batch: settings.batch,
            normalizer_version: settings.normalizer_version.clone(),
            metrics: Arc::new(StageMetrics::builder("normalize").build()),
            limits: settings.limits,
            message_max_bytes: settings.kafka.message_max_bytes,
        };
        normalizer.register_schema().await?;
        Ok(normalizer)
    }

    /// Registers the schema at start, waiting for the registry if it is not
    /// up yet; an incompatible schema is fatal.
    pub(crate) async fn register_schema(&self) -> anyhow::Result<()> {
        let subject = self.strategy.get_subject()?;
        for attempt in 0.. {
            match self
                .encoder
                .get_schema_and_id(&subject, self.strategy.clone())
                .await
            {
                Ok(schema) => {
                    tracing::info!(subject, id = schema.id, "schema registered");
                    return Ok(());
                }
                Err(e) if e.retriable || attempt < 30 => {
                    tracing::warn!(subject, error = %e, "schema registry not ready; retrying");
                    self.encoder.remove_errors_from_cache();
                    tokio::time::sleep(backoff(attempt)).await;
                }
                Err(e) => anyhow::bail!("cannot register schema for {subject}: {e}"),
            }
        }
        unreachable!("the retry loop only ends by returning")
    }

    /// Runs until `shutdown` turns true; commits what was fully processed.
    pub async fn run(self, mut shutdown: watch::Receiver<bool>) -> anyhow::Result<()> {
        tracing::info!(
            input = %self.raw_topic,
            output = %self.normalized_topic,
            batch_max_records = self.batch.max_records(),
            batch_max_wait_ms = self.batch.max_wait_ms,
            message_max_bytes = self.message_max_bytes,
            max_events_per_record = self.limits.max_events_per_record,
            max_array_items = self.limits.max_array_items,
            "normalize running"
        );
        while let Some((batch, started)) = self.next_batch(&mut shutdown).await {
            if !self.handle(&batch, started, &mut shutdown).await {
                break;
            }
            let tpl = common::kafka::offsets_after_all(&batch)?;
            if let Err(e) = self.consumer.commit(&tpl, CommitMode::Async) {
                tracing::warn!(error = %e, "offset commit failed; the records may be re-processed");
            }
        }
        tracing::info!("normalize stopping");
        if let Err(e) = self.consumer.commit_consumer_state(CommitMode::Sync) {
            tracing::debug!(error = %e, "final commit");
        }
        Ok(())
    }

    /// Waits for a record, then takes what else arrives within the batch
    /// wait, up to the batch size. `None` when shutdown is requested.
    async fn next_batch(
        &self,
        shutdown: &mut watch::Receiver<bool>,
    ) -> Option<(Vec<BorrowedMessage<'_>>, Instant)> {
        let first = loop {
            let received = tokio::select! {
                m = self.consumer.recv() => m,
                _ = shutdown.changed() => return None,
            };
            match received {
                Ok(message) => break message,
                Err(e) => tracing::warn!(error = %e, "consumer error"),
            }
        };
        let started = Instant::now();
        let mut batch = vec![first];
        let deadline = tokio::time::Instant::now() + self.batch.max_wait();
        while batch.len() < self.batch.max_records() {
            match tokio::time::timeout_at(deadline, self.consumer.recv()).await {
                Ok(Ok(message)) => batch.push(message),
                Ok(Err(e)) => tracing::warn!(error = %e, "consumer error"),
                Err(_elapsed) => break,
            }
        }
        Some((batch, started))
    }

    /// Processes a batch until all its outputs are acknowledged. Returns
    /// false if shutdown interrupted the retries (the offsets must not be
    /// committed).
    async fn handle(
        &self,
        batch: &[BorrowedMessage<'_>],
        started: Instant,
        shutdown: &mut watch::Receiver<bool>,
    ) -> bool {
        let mut outcomes = Vec::with_capacity(batch.len());
        // One span per record, open until the batch is acknowledged.
        let mut spans = Vec::with_capacity(batch.len());
        for message in batch {
            let (span, traceparent) = record_span(message);
            spans.push(span);
            let mut attempt = 0u32;
            loop {
                match self.outcome(message, None, &traceparent).await {
                    Ok(outcome) => {
                        outcomes.push(outcome);
                        break;
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, offset = message.offset(), "schema registry unavailable; retrying");
                        self.encoder.remove_errors_from_cache();
                        if wait_or_shutdown(backoff(attempt), shutdown).await {
                            return false;
                        }
                        attempt += 1;
                    }
                }
            }
        }
        let mut tags = Vec::with_capacity(outcomes.len());
        let mut records = Vec::with_capacity(outcomes.len());
        for (raw, outcome) in outcomes.into_iter().enumerate() {
            match outcome {
                Outcome::Events(r) => {
                    let count = r.len();
                    for (index, record) in r.into_iter().enumerate() {
                        tags.push((raw, Form::Event, index, count));
                        records.push(record);
                    }
                }
                Outcome::DeadLetter(r) => {
                    tags.push((raw, Form::DeadLetter, 0, 1));
                    records.push(r);
                }
            }
        }
        let processed = Instant::now();
        let Some((events, dead_letters)) = self.deliver(batch, tags, records, shutdown).await
        else {
            return false;
        };
        drop(std::mem::take(&mut spans));
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
        true
    }

    /// Sends `records` until each is acknowledged or, refused for its size,
    /// replaced ([`sizing::plan`]). `tags` say what each is: the index of
    /// its raw record in `batch`, its form, and for an event its position
    /// among the raw record's events. Returns the events and dead letters
    /// stored, or `None` if shutdown interrupted the retries.
    async fn deliver(
        &self,
        batch: &[BorrowedMessage<'_>],
        mut tags: Vec<(usize, Form, usize, usize)>,
        mut records: Vec<OutRecord>,
        shutdown: &mut watch::Receiver<bool>,
    ) -> Option<(u64, u64)> {
        let (mut events, mut dead_letters) = (0u64, 0u64);
        for attempt in 0u32.. {
            let mut results = Vec::with_capacity(records.len());
            let mut transient = None;
            for (record, result) in records
                .iter()
                .zip(send_each(&self.producer, &records).await)
            {
                results.push(match result {
                    Ok(_) => Sent::Stored,
                    // A broker refuses whole batches: only a record refused
                    // alone is too large by itself.
                    Err(e) if is_size_error(&e) => {
                        match send_each(&self.producer, std::slice::from_ref(record))
                            .await
                            .pop()
                        {
                            Some(Ok(_)) => Sent::Stored,
                            Some(Err(e)) if is_size_error(&e) => Sent::TooLarge(e.to_string()),
                            Some(Err(e)) => {
                                transient = Some(e.to_string());
                                Sent::Transient
                            }
                            None => Sent::Transient,
                        }
                    }
                    Err(e) => {
                        transient = Some(e.to_string());
                        Sent::Transient
                    }
                });
            }
            for ((_, form, _, _), result) in tags.iter().zip(&results) {
                if *result == Sent::Stored {
                    match form {
                        Form::Event => events += 1,
                        Form::DeadLetter | Form::Minimal => dead_letters += 1,
                    }
                }
            }
            let forms: Vec<(usize, Form)> =
                tags.iter().map(|(raw, form, _, _)| (*raw, *form)).collect();
            let plan = sizing::plan(&forms, &results);
            let (mut next_tags, mut next_records) = (Vec::new(), Vec::new());
            for &i in &plan.dead_letter {
                let (raw, _, index, count) = tags[i];
                let error = match &results[i] {
                    Sent::TooLarge(error) => error.as_str(),
                    _ => "",
                };
                let reason = format!(
                    "{} for {} is {} bytes and was refused, sent alone: {error}",
                    sizing::describe(index, count, &records[i]),
                    records[i].topic,
                    records[i].wire_size()
                );
                next_tags.push((raw, Form::DeadLetter, 0, 1));
                next_records.push(self.dead_letter(&batch[raw], "too_large", &reason));
            }
            for &i in &plan.minimal {
                let raw = tags[i].0;
                tracing::warn!(
                    offset = batch[raw].offset(),
                    partition = batch[raw].partition(),
                    size = records[i].wire_size(),
                    "the dead letter was refused for its size; sending it without its value, key and original headers"
                );
                next_tags.push((raw, Form::Minimal, 0, 1));
                next_records.push(fit_dead_letter(std::mem::take(&mut records[i]), 0));
            }
            for &i in &plan.give_up {
                let raw = tags[i].0;
                tracing::error!(
                    offset = batch[raw].offset(),
                    partition = batch[raw].partition(),
                    topic = %records[i].topic,
                    size = records[i].wire_size(),
                    "even a minimal dead letter was refused for its size; the raw record stays only on its topic"
                );
            }
            for &i in &plan.retry {
                next_tags.push(tags[i]);
                next_records.push(std::mem::take(&mut records[i]));
            }
            if next_records.is_empty() {
                return Some((events, dead_letters));
            }
            (tags, records) = (next_tags, next_records);
            if !plan.retry.is_empty() {
                tracing::warn!(
                    error = transient.as_deref().unwrap_or_default(),
                    failed = plan.retry.len(),
                    "produce failed; retrying the failed records"
                );
                if wait_or_shutdown(backoff(attempt), shutdown).await {
                    return None;
                }
            }
        }
        None
    }

    /// The stage's metrics (served on `/metrics` by the binary).
    pub fn metrics(&self) -> Arc<StageMetrics> {
        Arc::clone(&self.metrics)
    }

    /// Parses and encodes; `Err` only for transient registry failures.
    /// `origin` is the raw record's position when `message` is a replayed
    /// dead letter; `traceparent` goes on the events (the record's span).
    pub(crate) async fn outcome(
        &self,
        message: &BorrowedMessage<'_>,
        origin: Option<(&str, i32, i64)>,
        traceparent: &str,
    ) -> Result<Outcome, schema_registry_converter::error::SRCError> {
        let body = message.payload().unwrap_or_default();
        let parsed = parse_message(message, body, origin, self.limits).map(|mut events| {
            if let Some(version) = &self.normalizer_version {
                for event in &mut events {
                    event.lineage.normalizer_version.clone_from(version);
                }
            }
            events
        });
        let events = match parsed {
            Ok(events) => events,
            Err(e) => {
                return Ok(Outcome::DeadLetter(self.dead_letter(
                    message,
                    e.kind(),
                    &e.to_string(),
                )));
            }
        };
        let mut records = Vec::with_capacity(events.len());
        for event in &events {
            let value = match self.encoder.encode_struct(event, &self.strategy).await {
                Ok(v) => v,
                Err(e) if e.retriable => return Err(e),
                Err(e) => {
                    return Ok(Outcome::DeadLetter(self.dead_letter(
                        message,
                        "schema",
                        &e.to_string(),
                    )));
                }
            };
            tracing::debug!(
                dedupe_key = %event.dedupe_key,
                event_type = event.event_type.as_str(),
                partition = message.partition(),
                offset = message.offset(),
                "normalized"
            );
            records.push(self.normalized_record(event, value, traceparent));
        }
        let budget = sizing::event_budget(self.message_max_bytes);
        if let Some((index, size)) = sizing::first_oversized(&records, budget) {
            let reason = sizing::too_large_reason(
                &sizing::describe(index, records.len(), &records[index]),
                &self.normalized_topic,
                size,
                self.message_max_bytes,
            );
            return Ok(Outcome::DeadLetter(self.dead_letter(
                message,
                "too_large",
                &reason,
            )));
        }
        Ok(Outcome::Events(records))
    }

    pub(crate) fn normalized_record(
        &self,
        event: &PropertyEvent,
        value: Vec<u8>,
        traceparent: &str,
    ) -> OutRecord {
        OutRecord {
            topic: self.normalized_topic.clone(),
            partition: None,
            key: Some(event.property_key.clone().into_bytes()),
            payload: Some(value),
            headers: Vec::new(),
        }
        .header(headers::TRACEPARENT, traceparent)
        .header(headers::DEDUPE_KEY, event.dedupe_key.as_str())
        .header(headers::EVENT_TYPE, event.event_type.as_str())
        .header(
            headers::HAS_SNAPSHOT,
            if event.property.is_some() {
                "true"
            } else {
                "false"
            },
        )
    }

    fn dead_letter(&self, message: &BorrowedMessage<'_>, kind: &str, reason: &str) -> OutRecord {
        tracing::info!(
            kind,
            reason,
            offset = message.offset(),
            partition = message.partition(),
            "dead-lettered"
        );
        dead_letter_within(
            message,
            &self.dlq_topic,
            STAGE,
            kind,
            reason,
            record_budget(self.message_max_bytes),
        )
    }
}

/// The span of one raw record, continuing the webhook's trace, and the
/// `traceparent` its events carry.
pub(crate) fn record_span<M: Message>(message: &M) -> (tracing::Span, String) {
    let span = tracing::info_span!(
        "normalize record",
        partition = message.partition(),
        offset = message.offset()
    );
    let received = header_str(message, headers::TRACEPARENT);
    common::trace_context::continue_trace(&span, received);
    let traceparent = common::trace_context::traceparent_of(&span)
        .or_else(|| received.map(str::to_string))
        .unwrap_or_default();
    (span, traceparent)
}

/// Builds the parser context from the raw record's headers and parses it.
/// `origin` overrides the lineage (topic, partition, offset) when the record
/// is a dead letter being replayed: the event must trace back to the raw
/// record, not to its copy on the DLQ.
pub(crate) fn parse_message<M: Message>(
    message: &M,
    body: &[u8],
    origin: Option<(&str, i32, i64)>,
    limits: Limits,
) -> Result<Vec<PropertyEvent>, ParseError> {
    let source =
        header_str(message, headers::SOURCE).ok_or(ParseError::MissingHeader(headers::SOURCE))?;
    let provider = header_str(message, headers::PROVIDER)
        .ok_or(ParseError::MissingHeader(headers::PROVIDER))?;
    let received_at_ms = header_str(message, headers::RECEIVED_AT)
        .and_then(|v| v.parse().ok())
        .or_else(|| message.timestamp().to_millis())
        .ok_or(ParseError::MissingHeader(headers::RECEIVED_AT))?;
    // Whether the kind is known is asked last, as when the parsers matched
    // on the header's text: a record missing a header is named for that.
    let provider = providers::provider_kind(provider)?;
    let (topic, partition, offset) =
        origin.unwrap_or((message.topic(), message.partition(), message.offset()));
    let context = RawContext {
        source,
        provider,
        event_id: header_str(message, headers::EVENT_ID).filter(|id| !id.trim().is_empty()),
        received_at_ms,
        topic,
        partition,
        offset,
        limits,
    };
    providers::parse(&context, body)
}

/// Sleeps, returning true if shutdown was requested meanwhile.
async fn wait_or_shutdown(delay: Duration, shutdown: &mut watch::Receiver<bool>) -> bool {
    tokio::select! {
        () = tokio::time::sleep(delay) => *shutdown.borrow(),
        _ = shutdown.changed() => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rdkafka::Timestamp;
    use rdkafka::message::{Header, OwnedHeaders, OwnedMessage};

    /// A raw record with these headers (values as bytes) and timestamp.
    fn raw(headers: &[(&str, &[u8])], timestamp: Timestamp) -> OwnedMessage {
        let headers = headers
            .iter()
            .fold(OwnedHeaders::new(), |all, (key, value)| {
                all.insert(Header {
                    key,
                    value: Some(*value),
                })
            });
        OwnedMessage::new(
            None,
            None,
            "webhooks.raw".to_string(),
            timestamp,
            0,
            7,
            Some(headers),
        )
    }

    fn outcome(headers: &[(&str, &[u8])], timestamp: Timestamp) -> Result<usize, ParseError> {
        let message = raw(headers, timestamp);
        parse_message(&message, b"{}", None, Limits::default()).map(|events| events.len())
    }

    /// Only the exact configured spelling names a kind: anything else is
    /// dead-lettered as `unknown_provider`, naming the value, as before
    /// `ProviderKind` (b9f8a70); a value that is no UTF-8 is no header.
    #[test]
    fn a_provider_header_that_names_no_kind_is_unknown_provider() {
        for value in [
            "zillow",
            "",
            "Generic",
            "GENERIC",
            "stream_estate",
            "StreamEstate",
            " generic",
            "generic ",
            "generic\n",
            "standard_webhooks",
        ] {
            let error = outcome(
                &[("source", b"s"), ("provider", value.as_bytes())],
                Timestamp::CreateTime(1),
            )
            .expect_err("no such kind");
            assert_eq!(error, ParseError::UnknownProvider(value.to_string()));
            assert_eq!(error.kind(), "unknown_provider");
            assert_eq!(
                error.to_string(),
                format!("no parser for provider `{value}`")
            );
        }
        assert_eq!(
            outcome(
                &[("source", b"s"), ("provider", b"gen\xffric")],
                Timestamp::CreateTime(1)
            ),
            Err(ParseError::MissingHeader("provider"))
        );
        assert_eq!(
            outcome(&[("source", b"s")], Timestamp::CreateTime(1)),
            Err(ParseError::MissingHeader("provider"))
        );
    }

    /// The headers are checked in the order they were before
    /// `ProviderKind`: `source`, `provider` present, an arrival time, and
    /// only then whether the provider is known.
    #[test]
    fn a_missing_arrival_time_is_named_before_an_unknown_provider() {
        assert_eq!(
            outcome(
                &[("source", b"s"), ("provider", b"zillow")],
                Timestamp::NotAvailable
            ),
            Err(ParseError::MissingHeader("received-at"))
        );
        assert_eq!(
            outcome(&[("provider", b"zillow")], Timestamp::CreateTime(1)),
            Err(ParseError::MissingHeader("source"))
        );
        assert_eq!(
            outcome(
                &[
                    ("source", b"s"),
                    ("provider", b"zillow"),
                    ("received-at", b"1700000000000")
                ],
                Timestamp::NotAvailable
            ),
            Err(ParseError::UnknownProvider("zillow".into()))
        );
    }
}
