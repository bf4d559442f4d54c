//! How the stage is built: the API key (off without one), its consumer on
//! `properties.events`, the check that its topics exist, its producer, the
//! registration of `PropertyEvent` under the output's subject, and the API
//! client.

use std::sync::Mutex;
use std::time::Duration;

use anyhow::Context as _;
use common::registry::Registry;
use common::stage_loop::Cancel;
use normalize::outcome::Rules;
use normalize::providers::Limits;
use rdkafka::consumer::{Consumer, StreamConsumer};

use rdkafka::producer::FutureProducer;
use schemas::writer_schemas::WriterSchemas;

use crate::api_key::{KeyLookup, lookup};
use crate::client::ApiClient;
use crate::metrics::{EnrichMetrics, STAGE};
use crate::runner::Enricher;
use crate::settings::EnrichSettings;

/// librdkafka's `max.poll.interval.ms` when the configuration sets none.
const DEFAULT_MAX_POLL_INTERVAL_MS: u64 = 300_000;

/// What the stage starts as.
pub enum Started {
    /// Enrichment on.
    On(Box<Enricher>),
    /// No key: enrichment is off (logged once).
    Off,
}

/// Reads the key and, with one, connects to Kafka and the registry, the
/// consumer subscribed to `properties.events`.
pub async fn connect(
    settings: &EnrichSettings,
    metrics: EnrichMetrics,
    cancel: Cancel,
) -> anyhow::Result<Started> {
    let consumer = |group: &str| -> anyhow::Result<StreamConsumer> {
        let consumer: StreamConsumer = settings
            .kafka
            .consumer(group)
            .create()
            .context("cannot create the Kafka consumer")?;
        consumer.subscribe(&[&settings.topics.events()])?;
        Ok(consumer)
    };
    connect_with(settings, metrics, cancel, consumer).await
}

/// [`connect`] with the consumer `make_consumer` creates for the group
/// (the live group's subscription, or a replay's assignment).
pub(crate) async fn connect_with(
    settings: &EnrichSettings,
    metrics: EnrichMetrics,
    cancel: Cancel,
    make_consumer: impl FnOnce(&str) -> anyhow::Result<StreamConsumer>,
) -> anyhow::Result<Started> {
    let (key, source) = match lookup(
        settings.api.key_file.as_deref(),
        &settings.api.key_env,
        |name| std::env::var(name).ok(),
    )? {
        KeyLookup::Found(key, source) => (key, source),
        KeyLookup::Off => {
            tracing::warn!(
                key_env = %settings.api.key_env,
                "enrichment is off: no Fluximmo API key (set {} or [api] key_file); Fluximmo references flow on as reference-only events",
                settings.api.key_env
            );
            return Ok(Started::Off);
        }
    };
    tracing::info!(key_source = %source, base_url = %settings.api.base_url, "enrichment is on");
    let (events_topic, normalized_topic) = (settings.topics.events(), settings.topics.normalized());
    let dlq_topic = settings.topics.dlq();
    let names = [
        events_topic.clone(),
        normalized_topic.clone(),
        dlq_topic.clone(),
    ];
    let _ =
        common::kafka::check_topics_exist(&settings.kafka, &names, Duration::from_secs(10)).await?;
    let max_poll_interval_ms = settings
        .kafka
        .consumer(&settings.group)
        .get("max.poll.interval.ms")
        .map_or(Ok(DEFAULT_MAX_POLL_INTERVAL_MS), str::parse)
        .context("`max.poll.interval.ms` is not a number of milliseconds")?;
    settings.api.check_budget(max_poll_interval_ms)?;
    let consumer = make_consumer(&settings.group)?;
    let producer: FutureProducer = settings
        .kafka
        .producer()
        .create()
        .context("cannot create the Kafka producer")?;
    let registry = Registry::new(&settings.schema_registry_url)?;
    let schema_id = registry
        .register(
            &normalized_topic,
            schemas::PROPERTY_EVENT_AVSC,
            STAGE,
            &cancel,
        )
        .await?;
    let limits = Limits::default();
    metrics
        .stage
        .liveness
        .set_stall_after(settings.stall_after());
    let client = ApiClient::new(
        &settings.api,
        key,
        source,
        limits,
        metrics.clone(),
        cancel.clone(),
    )?;
    Ok(Started::On(Box::new(Enricher {
        consumer,
        producer,
        registry,
        schema_id,
        writer_schemas: Mutex::new(WriterSchemas::default()),
        client,
        rules: Rules {
            limits,
            normalizer_version: None,
            normalized_topic,
            message_max_bytes: settings.kafka.message_max_bytes,
            max_future_skew_ms: 0,
        },
        dlq_topic,
        batch: settings.batch,
        metrics,
        cancel,
    })))
}
