//! What every check shares: the [`Check`] trait a scheme implements, the
//! [`RequestView`] it sees of a request, the [`Verdict`] it reports when it
//! passes, what it decides before the body is read ([`Head`]) and why a
//! request fails ([`VerifyFailure`]).

use std::net::IpAddr;

use axum::http::HeaderMap;

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

/// What a check decided before the body was read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Head {
    /// The check passed on the headers, query and peer alone.
    Verified(Verdict),
    /// The headers are well formed; the signature over the body remains.
    NeedsBody,
}

/// One verification scheme, configured for one source.
pub trait Check: Send + Sync + std::fmt::Debug {
    /// Everything the check can decide without the body (`request.body` is
    /// empty here): a header-only check decides, a signing scheme checks
    /// that its headers are present, fresh and well formed.
    fn verify_head(&self, request: &RequestView<'_>) -> Result<Head, VerifyFailure>;

    /// Verifies the whole request, body included, or says why not.
    fn verify(&self, request: &RequestView<'_>) -> Result<Verdict, VerifyFailure>;
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
}
