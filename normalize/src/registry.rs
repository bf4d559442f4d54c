//! Normalize's schema registry client: registers `PropertyEvent` under
//! `<normalized topic>-value` (topic-name strategy) at start and encodes
//! events in the Confluent wire format. Failures are classified by
//! [`crate::failures::registry_failure`]: registration retries an
//! unavailable registry until it answers or the stage stops, and ends at
//! once, with what to fix, when the registry refuses the schema.

use std::time::Duration;

use anyhow::Context as _;
use common::stage_loop::{Cancel, GaveUp, RetryPolicy, Verdict};
use schema_registry_converter::async_impl::avro::AvroEncoder;
use schema_registry_converter::async_impl::schema_registry::SrSettings;
use schema_registry_converter::schema_registry_common::{
    SchemaType, SubjectNameStrategy, SuppliedSchema,
};
use schemas::PropertyEvent;

use crate::failures::{RegistryFailure, registry_failure};
use crate::outcome::Encoded;

/// Bound on each registry request.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

/// The encoder and the subject it registers under.
pub(crate) struct Registry {
    encoder: AvroEncoder,
    strategy: SubjectNameStrategy,
    subject: String,
}

impl Registry {
    /// A client of the registry at `url` for events on `normalized_topic`.
    pub(crate) fn new(url: &str, normalized_topic: &str) -> anyhow::Result<Self> {
        let sr = SrSettings::new_builder(url.trim_end_matches('/').to_string())
            .no_proxy()
            .set_timeout(REQUEST_TIMEOUT)
            .build()
            .map_err(|e| anyhow::anyhow!("invalid schema registry settings: {e}"))?;
        let strategy = SubjectNameStrategy::TopicNameStrategyWithSchema(
            normalized_topic.to_string(),
            false,
            SuppliedSchema::new(
                Some(schemas::PROPERTY_EVENT_NAME.to_string()),
                SchemaType::Avro,
                schemas::PROPERTY_EVENT_AVSC.to_string(),
            ),
        );
        let subject = strategy
            .get_subject()
            .context("cannot name the schema's subject")?;
        Ok(Self {
            encoder: AvroEncoder::new(sr),
            strategy,
            subject,
        })
    }

    /// Registers the schema, waiting for the registry while it is
    /// unavailable. Fatal when it refuses the schema (or `cancel` is set
    /// first).
    pub(crate) async fn register(&self, cancel: &Cancel) -> anyhow::Result<()> {
        let registered = RetryPolicy::UNTIL_STOPPED
            .run(cancel, "schema registration", |_| async {
                let result = self
                    .encoder
                    .get_schema_and_id(&self.subject, self.strategy.clone())
                    .await;
                result.map_err(|e| {
                    self.encoder.remove_errors_from_cache();
                    match registry_failure(&self.subject, &e) {
                        RegistryFailure::Unavailable(error) => Verdict::Retry(error),
                        RegistryFailure::Fatal(error) | RegistryFailure::Invalid(error) => {
                            Verdict::Fatal(error)
                        }
                    }
                })
            })
            .await;
        match registered {
            Ok(schema) => {
                tracing::info!(subject = %self.subject, id = schema.id, "schema registered");
                Ok(())
            }
            Err(GaveUp::Fatal(error)) => {
                tracing::error!(subject = %self.subject, %error, "cannot register the schema");
                anyhow::bail!("fatal: {error}")
            }
            Err(gave_up) => anyhow::bail!(
                "the schema of {} was not registered: {gave_up}",
                self.subject
            ),
        }
    }

    /// Encodes `events` in order, stopping at the first that the schema
    /// cannot encode. `Err` when the registry is unavailable (retry) or
    /// refuses the schema (fatal).
    pub(crate) async fn encode(
        &self,
        events: &[PropertyEvent],
    ) -> Result<Vec<Encoded>, Verdict<anyhow::Error>> {
        let mut encoded = Vec::with_capacity(events.len());
        for event in events {
            match self.encoder.encode_struct(event, &self.strategy).await {
                Ok(value) => {
                    tracing::debug!(
                        dedupe_key = %event.dedupe_key,
                        event_type = event.event_type.as_str(),
                        "normalized"
                    );
                    encoded.push(Encoded::Value(value));
                }
                Err(e) => match registry_failure(&self.subject, &e) {
                    RegistryFailure::Invalid(error) => {
                        encoded.push(Encoded::Invalid(error));
                        break;
                    }
                    RegistryFailure::Unavailable(error) => {
                        self.encoder.remove_errors_from_cache();
                        return Err(Verdict::Retry(anyhow::anyhow!(
                            "schema registry unavailable: {error}"
                        )));
                    }
                    RegistryFailure::Fatal(error) => {
                        return Err(Verdict::Fatal(anyhow::anyhow!("fatal: {error}")));
                    }
                },
            }
        }
        Ok(encoded)
    }
}
