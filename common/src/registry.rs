//! A Confluent schema registry client for the stages that read and write
//! Avro values themselves (the state writer and the sink; the `registry`
//! feature):
//! registering a schema under its topic's subject at start
//! ([`Registry::register`]), and fetching a writer schema by id
//! ([`Registry::fetch`]) for `schemas::writer_schemas::WriterSchemas`.
//!
//! It calls the registry's REST API through `schema_registry_converter`'s
//! plain calls, not its encoder and decoder caches, which keep a refusal
//! (even a 404 a lagging registry gives for an id it does not know yet)
//! until told otherwise: nothing is cached here, so every retry asks the
//! registry again. Failures are sorted by [`failure_of`]: a refusal of
//! the schema (409 incompatible, 422 invalid) or of our requests (other
//! 4xx) is for an operator to fix; anything else (no answer, a 5xx, 404,
//! 408, 429) is retried.

use std::error::Error as _;
use std::time::Duration;

use apache_avro::Schema;
use schema_registry_converter::async_impl::schema_registry::{
    SrSettings, get_schema_by_id, post_schema,
};
use schema_registry_converter::error::SRCError;
use schema_registry_converter::schema_registry_common::{RawError, SchemaType, SuppliedSchema};

use crate::stage_loop::{Cancel, GaveUp, RetryPolicy, Verdict};

/// Bound on one registry request.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

/// What a registry failure means.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    /// No answer about the schema (unreachable, 5xx, 404, 408, 429): ask again.
    Unavailable(String),
    /// The registry refuses the schema or our requests: an operator must act.
    Refused(String),
}

/// A client of one registry.
#[derive(Clone)]
pub struct Registry {
    settings: SrSettings,
    url: String,
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registry").field("url", &self.url).finish()
    }
}

impl Registry {
    /// A client of the registry at `url` (a trailing slash is dropped: the
    /// registry would be asked for `//schemas/ids/…`).
    pub fn new(url: &str) -> anyhow::Result<Self> {
        let url = url.trim_end_matches('/').to_string();
        let settings = SrSettings::new_builder(url.clone())
            .no_proxy()
            .set_timeout(REQUEST_TIMEOUT)
            .build()
            .map_err(|e| anyhow::anyhow!("invalid schema registry settings for {url}: {e}"))?;
        Ok(Self { settings, url })
    }

    /// Registers the Avro schema `text` under `<topic>-value` (the
    /// topic-name strategy) and returns its id, waiting for the registry
    /// while it is unavailable. Fails at once, saying what to fix, when the
    /// registry refuses it; `stage` names who registers, in that message.
    pub async fn register(
        &self,
        topic: &str,
        text: &str,
        stage: &str,
        cancel: &Cancel,
    ) -> anyhow::Result<u32> {
        let subject = format!("{topic}-value");
        let registered = RetryPolicy::UNTIL_STOPPED
            .run(cancel, "schema registration", |_| async {
                let supplied = SuppliedSchema::new(None, SchemaType::Avro, text.to_string());
                post_schema(&self.settings, subject.clone(), supplied)
                    .await
                    .map_err(|e| match failure_of(&subject, stage, &e) {
                        Failure::Unavailable(why) => Verdict::Retry(why),
                        Failure::Refused(why) => Verdict::Fatal(why),
                    })
            })
            .await;
        match registered {
            Ok(schema) => {
                tracing::info!(%subject, id = schema.id, "schema registered");
                Ok(schema.id)
            }
            Err(GaveUp::Fatal(why)) => anyhow::bail!("fatal: {why}"),
            Err(gave_up) => anyhow::bail!("the schema of {subject} was not registered: {gave_up}"),
        }
    }

    /// The writer schema `id`, asked of the registry now (no cache: the
    /// caller keeps what it got). Every failure is for the caller to retry:
    /// a value's writer schema is never the value's fault.
    pub async fn fetch(&self, id: u32) -> Result<Schema, String> {
        let registered = get_schema_by_id(id, &self.settings)
            .await
            .map_err(|e| format!("schema registry {}: {e}", self.url))?;
        Schema::parse_str(&registered.schema)
            .map_err(|e| format!("schema {id} from the registry does not parse: {e}"))
    }

    /// [`Self::fetch`] from a thread outside `runtime` (a stage's consumer
    /// loop), logging what came of it.
    pub fn fetch_blocking(
        &self,
        runtime: &tokio::runtime::Handle,
        id: u32,
    ) -> Result<Schema, String> {
        let fetched = runtime.block_on(self.fetch(id));
        match &fetched {
            Ok(_) => tracing::info!(schema_id = id, "writer schema fetched"),
            Err(reason) => tracing::warn!(schema_id = id, %reason, "writer schema not fetched"),
        }
        fetched
    }
}

/// Sorts a failure of a registry call about `subject`, made by `stage`.
pub fn failure_of(subject: &str, stage: &str, error: &SRCError) -> Failure {
    let raw = error
        .source()
        .and_then(|source| source.downcast_ref::<RawError>());
    let answer = raw.map(|r| r.message.as_str()).unwrap_or_default();
    let status = raw
        .and_then(|r| http_status_of_code(r.error_code))
        .or_else(|| http_status_in(&error.error));
    match status {
        Some(409) => Failure::Refused(format!(
            "the schema registry refuses the schema of {subject} as incompatible with its \
             registered versions (409: {answer}). Changes must stay BACKWARD compatible \
             (README, \"The PropertyEvent schema\"): fix the schema, or the subject's \
             compatibility setting, then restart {stage}"
        )),
        Some(422) => Failure::Refused(format!(
            "the schema registry refuses the schema of {subject} as invalid (422: {answer})"
        )),
        Some(code @ 400..=499) if ![404, 408, 429].contains(&code) => Failure::Refused(format!(
            "the schema registry refuses {stage}'s requests for {subject} ({code}: {answer}); \
             check its URL and credentials"
        )),
        _ => Failure::Unavailable(error.to_string()),
    }
}

/// The HTTP status a registry `error_code` starts with (40401 → 404).
fn http_status_of_code(code: u32) -> Option<u16> {
    let digits = code.to_string();
    (digits.len() >= 3)
        .then(|| digits[..3].parse().ok())
        .flatten()
}

/// The status in the client's message ("... failed with status 409 Conflict").
fn http_status_in(message: &str) -> Option<u16> {
    let (_, after) = message.split_once("status ")?;
    after.get(..3)?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw_error(code: u32) -> RawError {
        serde_json::from_str(&format!(
            r#"{{"error_code":{code},"message":"registry says no"}}"#
        ))
        .unwrap_or_else(|e| panic!("a registry error body: {e}"))
    }

    fn refusal(status: &str, code: u32) -> SRCError {
        let raw = raw_error(code);
        let text = format!("HTTP request to schema registry failed with status {status}");
        SRCError::non_retryable_with_cause(raw, &text)
    }

    #[test]
    fn a_refused_schema_names_what_to_fix_and_the_rest_is_retried() {
        let Failure::Refused(why) = failure_of("t-value", "state-writer", &refusal("409", 409))
        else {
            panic!("an incompatible schema is refused");
        };
        assert!(
            why.contains("BACKWARD") && why.contains("restart state-writer"),
            "{why}"
        );
        assert!(matches!(
            failure_of("t-value", "s", &refusal("422", 42201)),
            Failure::Refused(_)
        ));
        assert!(matches!(
            failure_of("t-value", "s", &refusal("401", 401)),
            Failure::Refused(_)
        ));
        for (status, code) in [("404", 40401), ("503", 50301), ("429", 429)] {
            assert!(
                matches!(
                    failure_of("t-value", "s", &refusal(status, code)),
                    Failure::Unavailable(_)
                ),
                "{status}"
            );
        }
        let unreachable = SRCError::retryable_with_cause(raw_error(0), "connection refused");
        assert!(matches!(
            failure_of("t-value", "s", &unreachable),
            Failure::Unavailable(_)
        ));
    }

    #[test]
    fn statuses_come_from_the_code_or_the_message() {
        assert_eq!(http_status_of_code(40401), Some(404));
        assert_eq!(http_status_of_code(409), Some(409));
        assert_eq!(http_status_of_code(7), None);
        assert_eq!(http_status_in("failed with status 409 Conflict"), Some(409));
        assert_eq!(http_status_in("no status here"), None);
    }

    /// breaker-s9: the sink now uses this client; a registry URL ending in
    /// `/` (or several) must still ask for `/schemas/ids/…`, not `//…`.
    #[test]
    fn trailing_slashes_are_dropped_from_the_url() {
        for url in ["http://127.0.0.1:8081/", "http://127.0.0.1:8081//"] {
            let registry = Registry::new(url).expect("a valid URL");
            assert_eq!(registry.url, "http://127.0.0.1:8081");
        }
    }
}
