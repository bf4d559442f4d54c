//! Request verification: the checks a source requires, run on the raw bytes.
//!
//! Each scheme is one file implementing [`Check`]; a source's checks must all
//! pass. Verification fails closed: a source without checks is refused at
//! start unless it says `unverified = true`. Failures carry a reason for
//! metrics and logs but the response never says which secret was close.

pub mod hmac_timestamp;

use axum::http::HeaderMap;

use crate::settings::{CheckSettings, SecretError, SourceSettings};

/// What a check sees of a request.
#[derive(Debug, Clone, Copy)]
pub struct RequestView<'a> {
    /// Request headers.
    pub headers: &'a HeaderMap,
    /// The body, exactly as received.
    pub body: &'a [u8],
    /// Arrival time, Unix ms.
    pub now_ms: i64,
}

/// What a passing check reports (becomes the `verify-*` Kafka headers).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
    /// Scheme name, e.g. `hmac-sha256`.
    pub scheme: &'static str,
    /// Label of the secret that matched.
    pub key_label: String,
    /// Sender timestamp minus arrival, ms, where the scheme has a timestamp.
    pub skew_ms: Option<i64>,
}

/// Why a request failed verification.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VerifyFailure {
    /// A required header is absent.
    #[error("missing header {0}")]
    MissingHeader(String),
    /// The timestamp header is not a Unix time.
    #[error("timestamp header is not a Unix time")]
    MalformedTimestamp,
    /// The timestamp is outside the tolerance.
    #[error("timestamp is outside the allowed tolerance")]
    StaleTimestamp {
        /// Sender timestamp minus arrival, ms.
        skew_ms: i64,
    },
    /// The signature header cannot be decoded.
    #[error("signature header is malformed")]
    MalformedSignature,
    /// No configured secret produces this signature.
    #[error("signature does not match")]
    BadSignature,
}

impl VerifyFailure {
    /// Short machine-readable reason (metrics label, JSON `reason`).
    pub fn reason(&self) -> &'static str {
        match self {
            Self::MissingHeader(_) => "missing_header",
            Self::MalformedTimestamp => "malformed_timestamp",
            Self::StaleTimestamp { .. } => "stale_timestamp",
            Self::MalformedSignature => "malformed_signature",
            Self::BadSignature => "bad_signature",
        }
    }
}

/// One verification scheme, configured for one source.
pub trait Check: Send + Sync + std::fmt::Debug {
    /// Verifies the request, or says why not.
    fn verify(&self, request: &RequestView<'_>) -> Result<Verdict, VerifyFailure>;
}

/// A source's configuration cannot be turned into checks.
#[derive(Debug, thiserror::Error)]
pub enum CheckConfigError {
    /// No check and not explicitly unverified.
    #[error(
        "source `{0}` has no verification check; add one or set `unverified = true` explicitly"
    )]
    NoCheck(String),
    /// A check lists no secret.
    #[error("source `{0}`: check `{1}` has no secret")]
    NoSecret(String, &'static str),
    /// A secret cannot be loaded.
    #[error("source `{source_name}`: {error}")]
    Secret {
        /// Source name.
        source_name: String,
        /// The secret's error.
        error: SecretError,
    },
}

/// All the checks of one source.
#[derive(Debug)]
pub struct SourceVerifier {
    checks: Vec<Box<dyn Check>>,
}

impl SourceVerifier {
    /// Builds the checks of `source`, loading secrets through `env`.
    pub fn build(
        source: &SourceSettings,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Self, CheckConfigError> {
        if source.checks.is_empty() && !source.unverified {
            return Err(CheckConfigError::NoCheck(source.name.clone()));
        }
        let mut checks: Vec<Box<dyn Check>> = Vec::with_capacity(source.checks.len());
        for check in &source.checks {
            match check {
                CheckSettings::HmacSha256 {
                    secrets,
                    tolerance_secs,
                    signature_header,
                    timestamp_header,
                } => {
                    if secrets.is_empty() {
                        return Err(CheckConfigError::NoSecret(
                            source.name.clone(),
                            hmac_timestamp::SCHEME,
                        ));
                    }
                    let mut loaded = Vec::with_capacity(secrets.len());
                    for secret in secrets {
                        let bytes = secret.load(env).map_err(|error| CheckConfigError::Secret {
                            source_name: source.name.clone(),
                            error,
                        })?;
                        loaded.push((secret.label.clone(), bytes));
                    }
                    checks.push(Box::new(hmac_timestamp::HmacTimestampCheck::new(
                        loaded,
                        *tolerance_secs,
                        signature_header,
                        timestamp_header,
                    )));
                }
            }
        }
        Ok(Self { checks })
    }

    /// Runs every check; the verdict of the first one is reported (an
    /// unverified source reports scheme `none`).
    pub fn verify(&self, request: &RequestView<'_>) -> Result<Verdict, VerifyFailure> {
        let mut first = None;
        for check in &self.checks {
            let verdict = check.verify(request)?;
            if first.is_none() {
                first = Some(verdict);
            }
        }
        Ok(first.unwrap_or(Verdict {
            scheme: "none",
            key_label: String::new(),
            skew_ms: None,
        }))
    }
}

/// Reads a header as trimmed UTF-8 text.
pub(crate) fn header_text<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|v| !v.is_empty())
}

/// Parses a Unix timestamp in seconds (or milliseconds, if it is that large)
/// into milliseconds.
pub(crate) fn parse_unix_ms(text: &str) -> Option<i64> {
    let n: i64 = text.parse().ok()?;
    if n <= 0 {
        return None;
    }
    // 10^11 seconds is the year 5138: anything larger is milliseconds.
    if n >= 100_000_000_000 {
        Some(n)
    } else {
        n.checked_mul(1000)
    }
}
