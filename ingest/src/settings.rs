//! Ingest's user-facing configuration: listen address, limits, Kafka, and
//! the configured webhook sources with their checks and secrets.
//!
//! Secrets come from the environment or a file (`env = "VAR"`, `file = "..."`)
//! or, for development only, inline (`value = "..."`). They are loaded once at
//! start into [`SecretBytes`], whose `Debug` never prints them.

use std::fmt;

use common::kafka::KafkaSettings;
use common::topics::TopicNames;
use serde::Deserialize;

pub use crate::verify::CheckSettings;

/// Everything ingest is configured with.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IngestSettings {
    /// Address of the public webhook listener.
    #[serde(default = "default_listen")]
    pub listen: String,
    /// Address of the operator endpoints (`/healthz`, `/readyz`,
    /// `/metrics`), apart from the public listener. Default loopback.
    #[serde(default = "default_admin_listen")]
    pub admin_listen: String,
    /// Most open connections on the public listener. At the cap, the
    /// oldest connection that is not in the middle of a request is closed
    /// to make room; when every one is, the new one is answered 503.
    #[serde(default = "default_max_connections")]
    pub max_connections: usize,
    /// Most webhook requests handled at once, all sources together; beyond
    /// it a 503 with `Retry-After`, at once.
    #[serde(default = "default_max_in_flight")]
    pub max_in_flight: usize,
    /// Most requests of one source handled at once, for a source that sets
    /// no `max_in_flight` of its own. Default: `max_in_flight` shared out
    /// evenly between the sources, so every source keeps its share however
    /// many of the others are attacked.
    #[serde(default)]
    pub max_in_flight_per_source: Option<usize>,
    /// Largest request head (request line and headers), bytes; beyond it
    /// the connection gets a 431 and is closed.
    #[serde(default = "default_max_header_bytes")]
    pub max_header_bytes: usize,
    /// How often readiness (Kafka reachable, `webhooks.raw` present) is
    /// checked in the background, ms; `/readyz` answers from the last check.
    #[serde(default = "default_readiness_interval_ms")]
    pub readiness_interval_ms: u64,
    /// Largest accepted body, bytes (checked while reading).
    #[serde(default = "default_body_limit")]
    pub body_limit_bytes: usize,
    /// How long a request waits for Kafka's acknowledgement before a 503.
    #[serde(default = "default_ack_timeout_ms")]
    pub ack_timeout_ms: u64,
    /// How long a client may take to send a request's headers before the
    /// connection is closed, ms (also bounds an idle keep-alive connection).
    #[serde(default = "default_header_read_timeout_ms")]
    pub header_read_timeout_ms: u64,
    /// How long in-flight requests may take to finish after SIGTERM, ms.
    #[serde(default = "default_drain_timeout_ms")]
    pub drain_timeout_ms: u64,
    /// How long a client may take to send its body before a 408, ms.
    #[serde(default = "default_body_read_timeout_ms")]
    pub body_read_timeout_ms: u64,
    /// Seconds a provider is asked to wait before retrying after a 503.
    #[serde(default = "default_retry_after")]
    pub retry_after_secs: u64,
    /// How a raw record carries what ingest knows about its request
    /// (source, provider, arrival, request id, verdict, trace context,
    /// event and delivery ids): `"one-header"` (default), the one
    /// `ingest-meta` header, form-encoded; or `"headers"`, one header per
    /// field, for subscribers whose tools read a named header (a tracing
    /// library taking `traceparent`, a filter on `provider`). The durable
    /// local broker stores each header as a row, so one header is the
    /// faster (BENCHMARKS.md). Every stage reads both.
    #[serde(default)]
    pub raw_metadata: RawMetadata,
    /// Kafka connection.
    #[serde(default)]
    pub kafka: KafkaSettings,
    /// Topic names.
    #[serde(default)]
    pub topics: TopicNames,
    /// Webhook sources, one per URL segment.
    #[serde(default)]
    pub sources: Vec<SourceSettings>,
}

/// How a raw record carries ingest's metadata ([`IngestSettings::raw_metadata`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RawMetadata {
    /// One `ingest-meta` header (`contract::ingest_meta`).
    #[default]
    OneHeader,
    /// One header per field, named as the fields.
    Headers,
}

fn default_listen() -> String {
    "127.0.0.1:8080".into()
}
fn default_admin_listen() -> String {
    "127.0.0.1:9100".into()
}
fn default_max_connections() -> usize {
    1024
}
fn default_max_in_flight() -> usize {
    512
}
fn default_max_header_bytes() -> usize {
    16 * 1024
}
fn default_readiness_interval_ms() -> u64 {
    2000
}
fn default_body_limit() -> usize {
    1024 * 1024
}
fn default_ack_timeout_ms() -> u64 {
    3000
}
fn default_header_read_timeout_ms() -> u64 {
    10_000
}
fn default_drain_timeout_ms() -> u64 {
    10_000
}
fn default_body_read_timeout_ms() -> u64 {
    10_000
}
fn default_retry_after() -> u64 {
    5
}

/// One webhook endpoint, `POST /webhooks/{name}`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SourceSettings {
    /// URL segment, also the `source` header and the key prefix.
    pub name: String,
    /// Provider kind (tells normalize which parser applies).
    pub provider: ProviderKind,
    /// Checks that must all pass.
    #[serde(default)]
    pub checks: Vec<CheckSettings>,
    /// Accept requests with no check at all. Must be said explicitly.
    #[serde(default)]
    pub unverified: bool,
    /// Accept secrets and tokens shorter than 16 bytes (refused otherwise:
    /// a short secret can be guessed).
    #[serde(default)]
    pub allow_short_secrets: bool,
    /// Accept a timestamp tolerance over an hour (refused otherwise: a
    /// captured request can be replayed for as long).
    #[serde(default)]
    pub allow_long_tolerance: bool,
    /// Accept `0.0.0.0/0` or `::/0` in `allow` or `trusted_proxies`
    /// (refused otherwise: it lets any address in, or lets any peer forge
    /// `X-Forwarded-For`).
    #[serde(default)]
    pub allow_any_address: bool,
    /// Make a sender's `traceparent` the parent of ingest's span. Off by
    /// default: a stranger's trace context is kept only as a span link, so
    /// it cannot steer sampling or graft our spans onto its trace.
    #[serde(default)]
    pub trust_traceparent: bool,
    /// Most requests of this source handled at once; beyond it a 503 with
    /// `Retry-After`, at once. Default: no cap of its own (the global
    /// `max_in_flight` still applies).
    #[serde(default)]
    pub max_in_flight: Option<usize>,
    /// A rate limit for this source; beyond it a 429 with `Retry-After`.
    #[serde(default)]
    pub rate_limit: Option<RateLimitSettings>,
}

/// A token bucket: `per_second` requests on average, bursts of `burst`.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateLimitSettings {
    /// Requests per second, sustained.
    pub per_second: f64,
    /// Requests accepted at once after a quiet period (at least 1).
    pub burst: u32,
}

impl SourceSettings {
    /// A source with no check and every option at its default (tests and
    /// benches build on it).
    pub fn named(name: &str, provider: ProviderKind) -> Self {
        Self {
            name: name.to_string(),
            provider,
            checks: Vec::new(),
            unverified: false,
            allow_short_secrets: false,
            allow_long_tolerance: false,
            allow_any_address: false,
            trust_traceparent: false,
            max_in_flight: None,
            rate_limit: None,
        }
    }
}

/// Provider kinds ingest knows: the one list, shared by every stage.
pub use common::ProviderKind;

/// Where a secret comes from. Exactly one of `value`, `env`, `file`.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SecretSettings {
    /// Label reported in the `verify-key` header (never the secret).
    pub label: String,
    /// The secret inline (development only).
    #[serde(default)]
    pub value: Option<String>,
    /// Name of an environment variable holding the secret.
    #[serde(default)]
    pub env: Option<String>,
    /// Path of a file holding the secret (trailing newline ignored).
    #[serde(default)]
    pub file: Option<String>,
}

impl fmt::Debug for SecretSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SecretSettings")
            .field("label", &self.label)
            .field("value", &self.value.as_ref().map(|_| "<redacted>"))
            .field("env", &self.env)
            .field("file", &self.file)
            .finish()
    }
}

/// Secret material, loaded. `Debug` prints only its length.
#[derive(Clone)]
pub struct SecretBytes(Vec<u8>);

impl SecretBytes {
    /// Wraps secret bytes.
    pub fn new(bytes: Vec<u8>) -> Self {
        Self(bytes)
    }
    /// The raw bytes, for MAC computation only.
    pub fn expose(&self) -> &[u8] {
        &self.0
    }
}

impl fmt::Debug for SecretBytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SecretBytes(<{} bytes redacted>)", self.0.len())
    }
}

/// A secret that cannot be loaded or is empty.
#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    /// Not exactly one of value/env/file.
    #[error("secret `{0}` must set exactly one of `value`, `env`, `file`")]
    Ambiguous(String),
    /// The variable is not set.
    #[error("secret `{label}`: environment variable {var} is not set")]
    MissingEnv {
        /// Secret label.
        label: String,
        /// Variable name.
        var: String,
    },
    /// The file cannot be read.
    #[error("secret `{label}`: cannot read {path}: {source}")]
    File {
        /// Secret label.
        label: String,
        /// File path.
        path: String,
        /// IO error.
        source: std::io::Error,
    },
    /// Empty secrets fail closed.
    #[error("secret `{0}` is empty")]
    Empty(String),
}

impl SecretSettings {
    /// Loads the secret, using `env` to look variables up.
    pub fn load(&self, env: impl Fn(&str) -> Option<String>) -> Result<SecretBytes, SecretError> {
        let text = match (&self.value, &self.env, &self.file) {
            (Some(v), None, None) => v.clone(),
            (None, Some(var), None) => env(var).ok_or_else(|| SecretError::MissingEnv {
                label: self.label.clone(),
                var: var.clone(),
            })?,
            (None, None, Some(path)) => std::fs::read_to_string(path)
                .map_err(|source| SecretError::File {
                    label: self.label.clone(),
                    path: path.clone(),
                    source,
                })?
                .trim_end_matches(['\r', '\n'])
                .to_string(),
            _ => return Err(SecretError::Ambiguous(self.label.clone())),
        };
        if text.is_empty() {
            return Err(SecretError::Empty(self.label.clone()));
        }
        Ok(SecretBytes::new(text.into_bytes()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_raw_metadata(value: &str) -> Result<IngestSettings, common::config::ConfigError> {
        let vars = [("INGEST__RAW_METADATA".to_string(), value.to_string())];
        common::config::load_from("INGEST", None, &vars)
    }

    #[test]
    fn raw_metadata_is_one_header_unless_set_to_headers() {
        let default: IngestSettings =
            common::config::load_from("INGEST", None, &[]).expect("defaults");
        assert_eq!(default.raw_metadata, RawMetadata::OneHeader);
        let headers = with_raw_metadata("headers").expect("headers");
        assert_eq!(headers.raw_metadata, RawMetadata::Headers);
        let one = with_raw_metadata("one-header").expect("one-header");
        assert_eq!(one.raw_metadata, RawMetadata::OneHeader);
    }

    /// A value that is not a layout refuses the start, naming the values.
    #[test]
    fn a_bad_raw_metadata_is_refused_naming_the_choices() {
        for bad in ["bogus", "HEADERS", "one_header", ""] {
            let error = with_raw_metadata(bad).expect_err(bad).to_string();
            assert!(
                error.contains("`one-header`")
                    && error.contains("`headers`")
                    && error.contains("`raw_metadata`"),
                "{bad:?}: {error}"
            );
        }
    }

    #[test]
    fn secret_debug_output_never_shows_the_secret() {
        let s = SecretSettings {
            label: "current".into(),
            value: Some("hunter2".into()),
            env: None,
            file: None,
        };
        assert!(!format!("{s:?}").contains("hunter2"));
        let loaded = s.load(|_| None).expect("loads");
        assert!(!format!("{loaded:?}").contains("hunter2"));
        assert_eq!(loaded.expose(), b"hunter2");
    }

    #[test]
    fn secrets_from_env_and_errors() {
        let from_env = SecretSettings {
            label: "k".into(),
            value: None,
            env: Some("X".into()),
            file: None,
        };
        assert_eq!(
            from_env.load(|_| Some("s3".into())).expect("env").expose(),
            b"s3"
        );
        assert!(matches!(
            from_env.load(|_| None),
            Err(SecretError::MissingEnv { .. })
        ));
        assert!(matches!(
            from_env.load(|_| Some(String::new())),
            Err(SecretError::Empty(_))
        ));
        let both = SecretSettings {
            value: Some("a".into()),
            ..from_env
        };
        assert!(matches!(
            both.load(|_| None),
            Err(SecretError::Ambiguous(_))
        ));
    }
}
