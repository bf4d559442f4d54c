//! How the normalize stage is built: its Kafka consumer (the live group's,
//! or replay's assignment), the check that its topics exist, its producer,
//! and the schema registration, which waits for an unavailable registry and
//! is fatal when the registry refuses the schema
//! ([`crate::registry::Registry::register`]).

use std::time::Duration;

use anyhow::Context;
use common::stage_loop::{Cancel, RetryPolicy};
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::producer::FutureProducer;

use crate::registry::Registry;
use crate::runner::{Normalizer, stage_metrics};
use crate::settings::NormalizeSettings;

impl Normalizer {
    /// Connects to Kafka and the registry and registers the schema; gives
    /// up when `cancel` is set.
    pub async fn connect(settings: &NormalizeSettings, cancel: Cancel) -> anyhow::Result<Self> {
        let consumer: StreamConsumer = settings
            .kafka
            .consumer(&settings.group)
            .create()
            .context("cannot create the Kafka consumer")?;
        consumer.subscribe(&[&settings.topics.raw()])?;
        Self::with_consumer(settings, consumer, cancel).await
    }

    /// The stage around an already subscribed or assigned `consumer`
    /// (the live group's, or replay's).
    pub(crate) async fn with_consumer(
        settings: &NormalizeSettings,
        consumer: StreamConsumer,
        cancel: Cancel,
    ) -> anyhow::Result<Self> {
        let (raw_topic, normalized_topic) = (settings.topics.raw(), settings.topics.normalized());
        let dlq_topic = settings.topics.dlq();
        let names = [
            raw_topic.clone(),
            normalized_topic.clone(),
            dlq_topic.clone(),
        ];
        let _ = common::kafka::check_topics_exist(&settings.kafka, &names, Duration::from_secs(10))
            .await?;
        let producer: FutureProducer = settings.kafka.producer().create()?;
        let registry = Registry::new(&settings.schema_registry_url, &normalized_topic)?;
        registry.register(&cancel).await?;
        let (metrics, future_event_times) = stage_metrics();
        metrics.liveness.set_stall_after(settings.stall_after());
        Ok(Self {
            consumer,
            producer,
            registry,
            rules: settings.rules(),
            raw_topic,
            dlq_topic,
            batch: settings.batch,
            metrics,
            future_event_times,
            cancel,
            retry: RetryPolicy::UNTIL_STOPPED,
        })
    }
}
