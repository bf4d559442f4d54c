//! Request verification: the checks a source requires, run on the raw bytes.
//!
//! Each scheme is one file implementing [`Check`]; a source's checks must all
//! pass. Verification runs in two phases so that a stranger's request costs
//! little: [`SourceVerifier::verify_head`] runs before the body is read and
//! decides everything the headers, the query and the peer address can
//! (address allowlist, bearer and secret tokens, Immoteur's headers, and the
//! timestamp and signature syntax of the signing schemes); only a request
//! that passes it has its body read, and [`SourceVerifier::verify_body`]
//! then checks the signatures over the raw bytes. What that costs depends on
//! our configuration (the number of secrets), never on the sender: each
//! secret's MAC is computed once per request and compared with every
//! candidate signature, and the number of candidates is capped.
//!
//! Verification fails closed: a source without a check that proves a
//! credential or an allowed address, or a check without a secret, is refused
//! at start unless the source says `unverified = true`; so are short
//! secrets, long tolerances and catch-all networks unless the source allows
//! them by name (see [`crate::settings::SourceSettings`]). Failures carry a
//! reason for metrics and logs but the response never says which secret was
//! close. Secrets are compared in constant time, and every configured secret
//! is always tried.

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

/// The head phase's verdicts of one request, to be completed by
/// [`SourceVerifier::verify_body`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeadVerdicts {
    /// One per check, in order; `None` where the body remains to be checked.
    verdicts: Vec<Option<Verdict>>,
}

impl HeadVerdicts {
    /// Whether some check still needs the body.
    pub fn needs_body(&self) -> bool {
        self.verdicts.iter().any(Option::is_none)
    }
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
    /// The source's checks prove neither a credential nor an address.
    #[error(
        "source `{0}`: `immoteur-headers` proves no credential (anyone can send well-formed \
         headers); add a `bearer` check with Immoteur's token"
    )]
    NoCredential(String),
    /// A secret is too short to resist guessing.
    #[error(
        "source `{source_name}`: check `{scheme}`: secret `{label}` is {len} bytes; use at least \
         {MIN_SECRET_BYTES} random bytes, or set `allow_short_secrets = true` on the source"
    )]
    ShortSecret {
        /// Source name.
        source_name: String,
        /// Scheme of the check.
        scheme: &'static str,
        /// The secret's label.
        label: String,
        /// Its length, bytes.
        len: usize,
    },
}

/// Shortest secret or token accepted without `allow_short_secrets`, bytes.
pub const MIN_SECRET_BYTES: usize = 16;

/// Longest timestamp tolerance accepted without `allow_long_tolerance`, s.
pub const MAX_TOLERANCE_SECS: u64 = 3600;

/// All the checks of one source.
#[derive(Debug)]
pub struct SourceVerifier {
    checks: Vec<Box<dyn Check>>,
}

/// Refuses a secret shorter than [`MIN_SECRET_BYTES`] unless the source
/// allows short secrets.
pub(crate) fn check_secret_length(
    source: &SourceSettings,
    scheme: &'static str,
    label: &str,
    secret: &[u8],
) -> Result<(), CheckConfigError> {
    if secret.len() < MIN_SECRET_BYTES && !source.allow_short_secrets {
        return Err(CheckConfigError::ShortSecret {
            source_name: source.name.clone(),
            scheme,
            label: label.to_string(),
            len: secret.len(),
        });
    }
    Ok(())
}

/// Refuses a tolerance over [`MAX_TOLERANCE_SECS`] unless the source allows
/// long tolerances: a captured request could be replayed for that long.
pub(crate) fn check_tolerance(
    source: &SourceSettings,
    scheme: &'static str,
    tolerance_secs: u64,
) -> Result<(), CheckConfigError> {
    if tolerance_secs > MAX_TOLERANCE_SECS && !source.allow_long_tolerance {
        return Err(CheckConfigError::Invalid(
            source.name.clone(),
            scheme,
            format!(
                "`tolerance_secs = {tolerance_secs}` lets a captured request be replayed that long; \
                 use at most {MAX_TOLERANCE_SECS}, or set `allow_long_tolerance = true` on the source"
            ),
        ));
    }
    Ok(())
}

/// Loads a check's labelled secrets and refuses short ones (unless the
/// source allows them); an empty list fails closed.
pub(crate) fn load_checked_secrets(
    source: &SourceSettings,
    scheme: &'static str,
    secrets: &[SecretSettings],
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Vec<(String, SecretBytes)>, CheckConfigError> {
    let loaded = load_secrets(&source.name, scheme, secrets, env)?;
    for (label, secret) in &loaded {
        check_secret_length(source, scheme, label, secret.expose())?;
    }
    Ok(loaded)
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
                } => {
                    check_tolerance(source, hmac_timestamp::SCHEME, *tolerance_secs)?;
                    checks.push(Box::new(hmac_timestamp::HmacTimestampCheck::new(
                        load_checked_secrets(source, hmac_timestamp::SCHEME, secrets, env)?,
                        *tolerance_secs,
                        signature_header,
                        timestamp_header,
                    )));
                }
                CheckSettings::StandardWebhooks {
                    secrets,
                    tolerance_secs,
                } => {
                    check_tolerance(source, standard_webhooks::SCHEME, *tolerance_secs)?;
                    checks.push(Box::new(standard_webhooks::StandardWebhooksCheck::new(
                        standard_webhooks::decode_secrets(
                            source,
                            load_secrets(name, standard_webhooks::SCHEME, secrets, env)?,
                        )?,
                        *tolerance_secs,
                    )));
                }
                CheckSettings::Bearer { tokens } => {
                    checks.push(Box::new(bearer::BearerCheck::new(load_checked_secrets(
                        source,
                        bearer::SCHEME,
                        tokens,
                        env,
                    )?)))
                }
                CheckSettings::ImmoteurHeaders { tolerance_secs } => {
                    check_tolerance(source, immoteur_headers::SCHEME, *tolerance_secs)?;
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
                    load_checked_secrets(source, secret_token::SCHEME, tokens, env)?,
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
                    source.allow_any_address,
                )?)),
            }
        }
        let proves_something = source
            .checks
            .iter()
            .any(|check| !matches!(check, CheckSettings::ImmoteurHeaders { .. }));
        if !proves_something && !source.unverified {
            return Err(CheckConfigError::NoCredential(source.name.clone()));
        }
        if source.provider == ProviderKind::Immoteur && !has_immoteur_headers {
            checks.push(Box::new(immoteur_headers::ImmoteurHeadersCheck::new(
                immoteur_headers::DEFAULT_TOLERANCE_SECS,
            )));
        }
        address.append(&mut checks);
        Ok(Self { checks: address })
    }

    /// The phase before the body: runs every check on the headers, query
    /// and peer (`request.body` is ignored), in order, stopping at the
    /// first failure. What it returns goes to [`Self::verify_body`].
    pub fn verify_head(&self, request: &RequestView<'_>) -> Result<HeadVerdicts, VerifyFailure> {
        let head = RequestView {
            body: &[],
            ..*request
        };
        let mut verdicts = Vec::with_capacity(self.checks.len());
        for check in &self.checks {
            verdicts.push(match check.verify_head(&head)? {
                Head::Verified(verdict) => Some(verdict),
                Head::NeedsBody => None,
            });
        }
        Ok(HeadVerdicts { verdicts })
    }

    /// The phase after the body: runs the checks the head phase left open
    /// on the whole request, then reports one verdict. The scheme and key
    /// of the first credential check are reported (address checks count
    /// only when nothing else ran; an unverified source reports scheme
    /// `none`); skew and provider ids come from whichever check found them.
    pub fn verify_body(
        &self,
        request: &RequestView<'_>,
        head: HeadVerdicts,
    ) -> Result<Verdict, VerifyFailure> {
        let mut verdicts = Vec::with_capacity(self.checks.len());
        for (check, early) in self.checks.iter().zip(head.verdicts) {
            verdicts.push(match early {
                Some(verdict) => verdict,
                None => check.verify(request)?,
            });
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

    /// Both phases on a request whose body is already at hand.
    pub fn verify(&self, request: &RequestView<'_>) -> Result<Verdict, VerifyFailure> {
        let head = self.verify_head(request)?;
        self.verify_body(request, head)
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

    fn source(text: &str) -> SourceSettings {
        toml::from_str(text).unwrap_or_else(|e| panic!("test source does not parse: {e}"))
    }

    fn refusal(text: &str) -> String {
        SourceVerifier::build(&source(text), &|_| None)
            .expect_err("refused at start")
            .to_string()
    }

    #[test]
    fn immoteur_headers_alone_prove_nothing_and_are_refused() {
        let alone = r#"
            name = "immo"
            provider = "immoteur"
            checks = [{ kind = "immoteur-headers" }]
        "#;
        assert!(refusal(alone).contains("proves no credential"));
        let with_token = r#"
            name = "immo"
            provider = "immoteur"
            checks = [
              { kind = "immoteur-headers", tolerance_secs = 60 },
              { kind = "bearer", tokens = [{ label = "t", value = "a-token-of-20-bytes!" }] },
            ]
        "#;
        assert!(SourceVerifier::build(&source(with_token), &|_| None).is_ok());
    }

    #[test]
    fn short_secrets_are_refused_unless_allowed_by_name() {
        for check in [
            r#"{ kind = "hmac-sha256", secrets = [{ label = "s", value = "short" }] }"#,
            r#"{ kind = "bearer", tokens = [{ label = "s", value = "short" }] }"#,
            r#"{ kind = "secret-token", query = "t", tokens = [{ label = "s", value = "short" }] }"#,
        ] {
            let text = format!("name = \"x\"\nprovider = \"generic\"\nchecks = [{check}]\n");
            let message = refusal(&text);
            assert!(message.contains("secret `s` is 5 bytes"), "{message}");
            assert!(
                !message.contains("short\u{60}"),
                "never the secret: {message}"
            );
            let allowed = format!("allow_short_secrets = true\n{text}");
            assert!(
                SourceVerifier::build(&source(&allowed), &|_| None).is_ok(),
                "{check}"
            );
        }
    }

    #[test]
    fn long_tolerances_are_refused_unless_allowed_by_name() {
        let text = r#"
            name = "x"
            provider = "generic"
            checks = [{ kind = "hmac-sha256", tolerance_secs = 86400, secrets = [{ label = "s", value = "sixteen-bytes-ok" }] }]
        "#;
        assert!(refusal(text).contains("allow_long_tolerance"));
        let allowed = format!("allow_long_tolerance = true\n{text}");
        assert!(SourceVerifier::build(&source(&allowed), &|_| None).is_ok());
        let at_max = text.replace("86400", "3600");
        assert!(SourceVerifier::build(&source(&at_max), &|_| None).is_ok());
    }

    #[test]
    fn header_only_checks_decide_before_the_body_and_signatures_after() {
        let text = r#"
            name = "x"
            provider = "generic"
            checks = [
              { kind = "bearer", tokens = [{ label = "b", value = "bearer-token-0123" }] },
              { kind = "hmac-sha256", secrets = [{ label = "h", value = "hmac-secret-01234" }] },
            ]
        "#;
        let verifier = SourceVerifier::build(&source(text), &|_| None).expect("builds");
        let body = br#"{"id":1}"#;
        let ts = "1700000000";
        let mut headers = HeaderMap::new();
        let _ = headers.insert("authorization", "Bearer wrong".parse().expect("value"));
        fn view<'a>(headers: &'a HeaderMap, body: &'a [u8]) -> RequestView<'a> {
            RequestView {
                headers,
                body,
                now_ms: 1_700_000_000_000,
                peer: None,
                query: &[],
            }
        }
        assert_eq!(
            verifier.verify_head(&view(&headers, b"")),
            Err(VerifyFailure::BadToken),
            "a bad token is refused before the body"
        );
        let _ = headers.insert(
            "authorization",
            "Bearer bearer-token-0123".parse().expect("value"),
        );
        let _ = headers.insert("x-webhook-timestamp", ts.parse().expect("value"));
        let sig = hmac_timestamp::sign(b"hmac-secret-01234", ts, body);
        let _ = headers.insert("x-webhook-signature", sig.parse().expect("value"));
        let head = verifier
            .verify_head(&view(&headers, b""))
            .expect("head passes");
        assert!(head.needs_body());
        assert_eq!(
            verifier.verify_body(&view(&headers, b"{}"), head.clone()),
            Err(VerifyFailure::BadSignature)
        );
        let verdict = verifier
            .verify_body(&view(&headers, body), head)
            .expect("signed body");
        assert_eq!(verdict.scheme, "bearer");
        assert_eq!(verdict.skew_ms, Some(0));
    }

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
