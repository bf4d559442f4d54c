//! Request verification: the checks a source requires, run on the raw bytes.
//!
//! Each scheme is one file implementing [`Check`]; a source's checks must all
//! pass. Verification fails closed: a source without checks, or a check
//! without a secret, is refused at start unless the source says
//! `unverified = true`. Failures carry a reason for metrics and logs but the
//! response never says which secret was close. Secrets are compared in
//! constant time, and every configured secret is always tried.

pub mod bearer;
pub mod hmac_timestamp;
pub mod immoteur_headers;
pub mod secret_token;
pub mod source_address;
pub mod standard_webhooks;

use std::net::IpAddr;

use axum::http::HeaderMap;
use hmac::{Hmac, KeyInit};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::settings::{
    CheckSettings, ProviderKind, SecretBytes, SecretError, SecretSettings, SourceSettings,
};

/// What a check sees of a request.
#[derive(Debug, Clone, Copy)]
pub struct RequestView<'a> {
    /// Request headers.
    pub headers: &'a HeaderMap,
    /// The body, exactly as received.
    pub body: &'a [u8],
    /// Arrival time, Unix ms.
    pub now_ms: i64,
    /// Address of the direct TCP peer, when known.
    pub peer: Option<IpAddr>,
    /// Query parameters, decoded, in order.
    pub query: &'a [(String, String)],
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
    /// Provider event id carried by the request's headers, if any.
    pub event_id: Option<String>,
    /// Provider delivery id carried by the request's headers, if any.
    pub delivery_id: Option<String>,
}

impl Verdict {
    /// A verdict with only a scheme and a key label.
    pub fn new(scheme: &'static str, key_label: impl Into<String>) -> Self {
        Self {
            scheme,
            key_label: key_label.into(),
            skew_ms: None,
            event_id: None,
            delivery_id: None,
        }
    }
}

/// Why a request failed verification.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VerifyFailure {
    /// A required header is absent.
    #[error("missing header {0}")]
    MissingHeader(String),
    /// A required header is present but not in the expected form.
    #[error("header {0} is malformed")]
    MalformedHeader(String),
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
    /// The token is absent.
    #[error("missing token")]
    MissingToken,
    /// The token matches no configured token.
    #[error("token does not match")]
    BadToken,
    /// The sender's address is not allowed.
    #[error("source address not allowed")]
    AddressNotAllowed,
}

impl VerifyFailure {
    /// Every value [`VerifyFailure::reason`] can return, in declaration
    /// order. `ingest/openapi.json`'s `RefusalReason` enum is checked against
    /// it, and a test checks that each variant's reason is listed here.
    pub const ALL_REASONS: &'static [&'static str] = &[
        "missing_header",
        "malformed_header",
        "malformed_timestamp",
        "stale_timestamp",
        "malformed_signature",
        "bad_signature",
        "missing_token",
        "bad_token",
        "address_not_allowed",
    ];

    /// One value of each variant, for tests that must cover them all.
    /// [`VerifyFailure::variant_index`] has no wildcard arm, so a new
    /// variant does not compile until it is given an index, and
    /// `every_variant_is_sampled_and_its_reason_listed` fails until it is
    /// sampled here.
    #[cfg(test)]
    pub(crate) fn every_variant() -> Vec<Self> {
        vec![
            Self::MissingHeader("x-webhook-signature".into()),
            Self::MalformedHeader("x-forwarded-for".into()),
            Self::MalformedTimestamp,
            Self::StaleTimestamp { skew_ms: -301_000 },
            Self::MalformedSignature,
            Self::BadSignature,
            Self::MissingToken,
            Self::BadToken,
            Self::AddressNotAllowed,
        ]
    }

    /// The variant's position (see [`VerifyFailure::every_variant`]).
    #[cfg(test)]
    pub(crate) fn variant_index(&self) -> usize {
        match self {
            Self::MissingHeader(_) => 0,
            Self::MalformedHeader(_) => 1,
            Self::MalformedTimestamp => 2,
            Self::StaleTimestamp { .. } => 3,
            Self::MalformedSignature => 4,
            Self::BadSignature => 5,
            Self::MissingToken => 6,
            Self::BadToken => 7,
            Self::AddressNotAllowed => 8,
        }
    }

    /// How many variants there are (one more than the largest index).
    #[cfg(test)]
    pub(crate) const VARIANTS: usize = 9;

    /// Short machine-readable reason (metrics label, JSON `reason`).
    pub fn reason(&self) -> &'static str {
        match self {
            Self::MissingHeader(_) => "missing_header",
            Self::MalformedHeader(_) => "malformed_header",
            Self::MalformedTimestamp => "malformed_timestamp",
            Self::StaleTimestamp { .. } => "stale_timestamp",
            Self::MalformedSignature => "malformed_signature",
            Self::BadSignature => "bad_signature",
            Self::MissingToken => "missing_token",
            Self::BadToken => "bad_token",
            Self::AddressNotAllowed => "address_not_allowed",
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
    /// A check's settings are not usable.
    #[error("source `{0}`: check `{1}`: {2}")]
    Invalid(String, &'static str, String),
}

/// All the checks of one source.
#[derive(Debug)]
pub struct SourceVerifier {
    checks: Vec<Box<dyn Check>>,
}

/// Loads a check's labelled secrets; an empty list fails closed.
pub(crate) fn load_secrets(
    source: &str,
    scheme: &'static str,
    secrets: &[SecretSettings],
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Vec<(String, SecretBytes)>, CheckConfigError> {
    if secrets.is_empty() {
        return Err(CheckConfigError::NoSecret(source.to_string(), scheme));
    }
    secrets
        .iter()
        .map(|secret| {
            secret
                .load(env)
                .map(|bytes| (secret.label.clone(), bytes))
                .map_err(|error| CheckConfigError::Secret {
                    source_name: source.to_string(),
                    error,
                })
        })
        .collect()
}

impl SourceVerifier {
    /// Builds the checks of `source`, loading secrets through `env`.
    ///
    /// Address checks run first (a refused address is a 403 whatever else
    /// it sends); an `immoteur` source always checks Immoteur's headers.
    pub fn build(
        source: &SourceSettings,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Self, CheckConfigError> {
        if source.checks.is_empty() && !source.unverified {
            return Err(CheckConfigError::NoCheck(source.name.clone()));
        }
        let name = source.name.as_str();
        let mut address: Vec<Box<dyn Check>> = Vec::new();
        let mut checks: Vec<Box<dyn Check>> = Vec::with_capacity(source.checks.len() + 1);
        let mut has_immoteur_headers = false;
        for check in &source.checks {
            match check {
                CheckSettings::HmacSha256 {
                    secrets,
                    tolerance_secs,
                    signature_header,
                    timestamp_header,
                } => checks.push(Box::new(hmac_timestamp::HmacTimestampCheck::new(
                    load_secrets(name, hmac_timestamp::SCHEME, secrets, env)?,
                    *tolerance_secs,
                    signature_header,
                    timestamp_header,
                ))),
                CheckSettings::StandardWebhooks {
                    secrets,
                    tolerance_secs,
                } => checks.push(Box::new(standard_webhooks::StandardWebhooksCheck::new(
                    standard_webhooks::decode_secrets(
                        name,
                        load_secrets(name, standard_webhooks::SCHEME, secrets, env)?,
                    )?,
                    *tolerance_secs,
                ))),
                CheckSettings::Bearer { tokens } => checks.push(Box::new(
                    bearer::BearerCheck::new(load_secrets(name, bearer::SCHEME, tokens, env)?),
                )),
                CheckSettings::ImmoteurHeaders { tolerance_secs } => {
                    has_immoteur_headers = true;
                    checks.push(Box::new(immoteur_headers::ImmoteurHeadersCheck::new(
                        *tolerance_secs,
                    )));
                }
                CheckSettings::SecretToken {
                    tokens,
                    header,
                    query,
                } => checks.push(Box::new(secret_token::SecretTokenCheck::new(
                    name,
                    load_secrets(name, secret_token::SCHEME, tokens, env)?,
                    header.as_deref(),
                    query.as_deref(),
                )?)),
                CheckSettings::SourceAddress {
                    allow,
                    trusted_proxies,
                } => address.push(Box::new(source_address::SourceAddressCheck::new(
                    name,
                    allow,
                    trusted_proxies,
                )?)),
            }
        }
        if source.provider == ProviderKind::Immoteur && !has_immoteur_headers {
            checks.push(Box::new(immoteur_headers::ImmoteurHeadersCheck::new(
                immoteur_headers::DEFAULT_TOLERANCE_SECS,
            )));
        }
        address.append(&mut checks);
        Ok(Self { checks: address })
    }

    /// Runs every check. The scheme and key of the first credential check
    /// are reported (address checks count only when nothing else ran; an
    /// unverified source reports scheme `none`); skew and provider ids come
    /// from whichever check found them.
    pub fn verify(&self, request: &RequestView<'_>) -> Result<Verdict, VerifyFailure> {
        let mut verdicts = Vec::with_capacity(self.checks.len());
        for check in &self.checks {
            verdicts.push(check.verify(request)?);
        }
        let mut out = verdicts
            .iter()
            .find(|v| v.scheme != source_address::SCHEME && v.scheme != immoteur_headers::SCHEME)
            .or_else(|| verdicts.first())
            .cloned()
            .unwrap_or_else(|| Verdict::new("none", ""));
        for v in &verdicts {
            out.skew_ms = out.skew_ms.or(v.skew_ms);
            out.event_id = out.event_id.take().or_else(|| v.event_id.clone());
            out.delivery_id = out.delivery_id.take().or_else(|| v.delivery_id.clone());
        }
        Ok(out)
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

/// Checks a sender timestamp (Unix ms) against arrival; returns the skew.
pub(crate) fn check_skew(
    sent_ms: i64,
    now_ms: i64,
    tolerance_ms: i64,
) -> Result<i64, VerifyFailure> {
    let skew_ms = sent_ms.saturating_sub(now_ms);
    if skew_ms.saturating_abs() > tolerance_ms {
        return Err(VerifyFailure::StaleTimestamp { skew_ms });
    }
    Ok(skew_ms)
}

/// An HMAC-SHA256 keyed with `secret`.
pub(crate) fn new_mac(secret: &[u8]) -> Hmac<Sha256> {
    // HMAC takes keys of any length; this cannot fail for SHA-256.
    match Hmac::<Sha256>::new_from_slice(secret) {
        Ok(mac) => mac,
        Err(_) => unreachable!("HMAC accepts keys of any length"),
    }
}

/// A tolerance in seconds, as milliseconds.
pub(crate) fn tolerance_ms(tolerance_secs: u64) -> i64 {
    i64::try_from(tolerance_secs.saturating_mul(1000)).unwrap_or(i64::MAX)
}

/// The label of the secret equal to `provided`, compared in constant time.
///
/// Both sides are hashed first so the comparison takes the same time whatever
/// the lengths, and every secret is compared (no early exit on a match).
pub(crate) fn match_token<'a>(
    provided: &[u8],
    secrets: &'a [(String, SecretBytes)],
) -> Option<&'a str> {
    let provided = Sha256::digest(provided);
    let mut matched = None;
    for (label, secret) in secrets {
        let expected = Sha256::digest(secret.expose());
        if bool::from(provided.as_slice().ct_eq(expected.as_slice())) && matched.is_none() {
            matched = Some(label.as_str());
        }
    }
    matched
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_variant_is_sampled_and_its_reason_listed() {
        let samples = VerifyFailure::every_variant();
        let mut indices: Vec<usize> = samples.iter().map(VerifyFailure::variant_index).collect();
        indices.sort_unstable();
        assert_eq!(
            indices,
            (0..VerifyFailure::VARIANTS).collect::<Vec<_>>(),
            "every_variant() holds one value of each variant"
        );
        let reasons: Vec<&str> = samples.iter().map(VerifyFailure::reason).collect();
        assert_eq!(
            reasons,
            VerifyFailure::ALL_REASONS,
            "ALL_REASONS lists each variant's reason, once, in order"
        );
    }

    #[test]
    fn tokens_match_by_label_whatever_their_length() {
        let secrets = vec![
            ("new".to_string(), SecretBytes::new(b"tok-new".to_vec())),
            (
                "old".to_string(),
                SecretBytes::new(b"tok-old-longer".to_vec()),
            ),
        ];
        assert_eq!(match_token(b"tok-old-longer", &secrets), Some("old"));
        assert_eq!(match_token(b"tok-new", &secrets), Some("new"));
        assert_eq!(match_token(b"tok-ne", &secrets), None);
        assert_eq!(match_token(b"", &secrets), None);
    }
}
