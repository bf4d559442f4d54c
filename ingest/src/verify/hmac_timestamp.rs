//! The generic provider's scheme: `X-Webhook-Signature` is the lowercase hex
//! HMAC-SHA256 of `X-Webhook-Timestamp` followed by the raw body, keyed with
//! a shared secret; the timestamp must be within a tolerance of arrival.
//!
//! Every configured secret is tried (rotation) and compared in constant time
//! (`Mac::verify_slice`); the loop does not stop early on a match, so timing
//! does not tell which secret matched.

use hmac::Mac;
use serde::Deserialize;

use super::crypto::new_mac;
use super::fail_closed::{
    check_tolerance, default_tolerance_secs, load_checked_secrets, load_first,
};
use super::wire::{check_skew, header_text, parse_unix_ms, tolerance_ms};
use super::{
    Built, Check, CheckConfigError, Env, Head, RequestView, Scheme, Verdict, VerifyFailure,
};
use crate::send::{SignRequest, Signed};
use crate::settings::{SecretBytes, SecretSettings, SourceSettings};

/// Scheme name reported in `verify-scheme`.
pub const SCHEME: &str = "hmac-sha256";

/// An `hmac-sha256` check as configured: hex HMAC-SHA256(secret, timestamp
/// + body) in a header.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HmacSha256Settings {
    /// Secrets accepted at once (rotation).
    pub secrets: Vec<SecretSettings>,
    /// Allowed distance between the sender's timestamp and now, seconds.
    #[serde(default = "default_tolerance_secs")]
    pub tolerance_secs: u64,
    /// Header carrying the signature.
    #[serde(default = "default_signature_header")]
    pub signature_header: String,
    /// Header carrying the timestamp.
    #[serde(default = "default_timestamp_header")]
    pub timestamp_header: String,
}

fn default_signature_header() -> String {
    "x-webhook-signature".into()
}
fn default_timestamp_header() -> String {
    "x-webhook-timestamp".into()
}

impl Scheme for HmacSha256Settings {
    /// Refuses a long tolerance and short secrets.
    fn build(&self, source: &SourceSettings, env: Env<'_>) -> Result<Built, CheckConfigError> {
        check_tolerance(source, SCHEME, self.tolerance_secs)?;
        Ok(Built::Request(Box::new(HmacTimestampCheck::new(
            load_checked_secrets(source, SCHEME, &self.secrets, env)?,
            self.tolerance_secs,
            &self.signature_header,
            &self.timestamp_header,
        ))))
    }

    /// The timestamp header, then the signature header.
    fn sign(&self, request: &SignRequest<'_>, out: &mut Signed) -> Result<(), CheckConfigError> {
        let secret = load_first(request, SCHEME, &self.secrets)?;
        let ts = request.now_secs.to_string();
        let signature = sign(secret.expose(), &ts, request.body);
        out.push_header(&self.timestamp_header, ts);
        out.push_header(&self.signature_header, signature);
        Ok(())
    }

    /// A passing check proves a credential.
    fn proves_sender(&self) -> bool {
        true
    }
}

/// The configured check.
#[derive(Debug)]
pub struct HmacTimestampCheck {
    secrets: Vec<(String, SecretBytes)>,
    tolerance_ms: i64,
    signature_header: String,
    timestamp_header: String,
}

impl HmacTimestampCheck {
    /// A check with labelled secrets and a tolerance in seconds.
    pub fn new(
        secrets: Vec<(String, SecretBytes)>,
        tolerance_secs: u64,
        signature_header: &str,
        timestamp_header: &str,
    ) -> Self {
        Self {
            secrets,
            tolerance_ms: tolerance_ms(tolerance_secs),
            signature_header: signature_header.to_ascii_lowercase(),
            timestamp_header: timestamp_header.to_ascii_lowercase(),
        }
    }
}

/// Computes the signature a sender puts in the header (lowercase hex).
pub fn sign(secret: &[u8], timestamp: &str, body: &[u8]) -> String {
    let mut mac = new_mac(secret);
    mac.update(timestamp.as_bytes());
    mac.update(body);
    hex::encode(mac.finalize().into_bytes())
}

/// What the headers of a request say, before its body is read.
struct SignedHead<'a> {
    timestamp: &'a str,
    skew_ms: i64,
    provided: Vec<u8>,
}

impl HmacTimestampCheck {
    /// The headers' part of the check: both present, the timestamp fresh,
    /// the signature 32 bytes of hex.
    fn head<'a>(&self, request: &RequestView<'a>) -> Result<SignedHead<'a>, VerifyFailure> {
        let timestamp = header_text(request.headers, &self.timestamp_header)
            .ok_or_else(|| VerifyFailure::MissingHeader(self.timestamp_header.clone()))?;
        let signature = header_text(request.headers, &self.signature_header)
            .ok_or_else(|| VerifyFailure::MissingHeader(self.signature_header.clone()))?;
        let sent_ms = parse_unix_ms(timestamp).ok_or(VerifyFailure::MalformedTimestamp)?;
        let skew_ms = check_skew(sent_ms, request.now_ms, self.tolerance_ms)?;
        let hex_part = signature.strip_prefix("sha256=").unwrap_or(signature);
        // 64 hex digits, checked before decoding so a long header costs nothing.
        if hex_part.len() != 64 {
            return Err(VerifyFailure::MalformedSignature);
        }
        let provided = hex::decode(hex_part).map_err(|_| VerifyFailure::MalformedSignature)?;
        Ok(SignedHead {
            timestamp,
            skew_ms,
            provided,
        })
    }
}

impl Check for HmacTimestampCheck {
    fn verify_head(&self, request: &RequestView<'_>) -> Result<Head, VerifyFailure> {
        self.head(request).map(|_| Head::NeedsBody)
    }

    fn verify(&self, request: &RequestView<'_>) -> Result<Verdict, VerifyFailure> {
        let signed = self.head(request)?;
        // One MAC per configured secret, whatever the request holds.
        let mut matched: Option<&str> = None;
        for (label, secret) in &self.secrets {
            let mut mac = new_mac(secret.expose());
            mac.update(signed.timestamp.as_bytes());
            mac.update(request.body);
            if mac.verify_slice(&signed.provided).is_ok() && matched.is_none() {
                matched = Some(label);
            }
        }
        match matched {
            Some(label) => Ok(Verdict {
                skew_ms: Some(signed.skew_ms),
                ..Verdict::new(SCHEME, label)
            }),
            None => Err(VerifyFailure::BadSignature),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::{HeaderMap, HeaderValue};

    const BODY: &[u8] = br#"{"id":"evt_1","type":"property.created"}"#;
    const NOW_MS: i64 = 1_700_000_000_000;

    fn check(secrets: &[(&str, &str)]) -> HmacTimestampCheck {
        HmacTimestampCheck::new(
            secrets
                .iter()
                .map(|(l, s)| (l.to_string(), SecretBytes::new(s.as_bytes().to_vec())))
                .collect(),
            300,
            "X-Webhook-Signature",
            "X-Webhook-Timestamp",
        )
    }

    fn headers(ts: &str, sig: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        let _ = h.insert(
            "x-webhook-timestamp",
            HeaderValue::from_str(ts).expect("ascii"),
        );
        let _ = h.insert(
            "x-webhook-signature",
            HeaderValue::from_str(sig).expect("ascii"),
        );
        h
    }

    fn run(
        check: &HmacTimestampCheck,
        h: &HeaderMap,
        body: &[u8],
    ) -> Result<Verdict, VerifyFailure> {
        check.verify(&RequestView {
            headers: h,
            body,
            now_ms: NOW_MS,
            peer: None,
            query: &[],
        })
    }

    #[test]
    fn accepts_a_correct_signature_and_reports_the_key_and_skew() {
        let ts = "1700000010";
        let h = headers(ts, &sign(b"s1", ts, BODY));
        let verdict = run(&check(&[("current", "s1")]), &h, BODY).expect("valid");
        assert_eq!(verdict.scheme, SCHEME);
        assert_eq!(verdict.key_label, "current");
        assert_eq!(verdict.skew_ms, Some(10_000));
    }

    #[test]
    fn any_active_secret_matches_during_rotation() {
        let ts = "1700000000";
        let h = headers(ts, &sign(b"old", ts, BODY));
        let verdict = run(&check(&[("new", "new"), ("old", "old")]), &h, BODY).expect("valid");
        assert_eq!(verdict.key_label, "old");
        assert_eq!(
            run(&check(&[("new", "new")]), &h, BODY),
            Err(VerifyFailure::BadSignature)
        );
    }

    #[test]
    fn rejects_a_body_changed_by_one_byte() {
        let ts = "1700000000";
        let h = headers(ts, &sign(b"s1", ts, BODY));
        let mut tampered = BODY.to_vec();
        tampered[5] ^= 1;
        assert_eq!(
            run(&check(&[("k", "s1")]), &h, &tampered),
            Err(VerifyFailure::BadSignature)
        );
    }

    #[test]
    fn rejects_stale_and_future_timestamps() {
        for ts in ["1699999699", "1700000301"] {
            let h = headers(ts, &sign(b"s1", ts, BODY));
            assert!(matches!(
                run(&check(&[("k", "s1")]), &h, BODY),
                Err(VerifyFailure::StaleTimestamp { .. })
            ));
        }
    }

    #[test]
    fn missing_and_malformed_headers_have_precise_reasons() {
        let c = check(&[("k", "s1")]);
        let empty = HeaderMap::new();
        assert_eq!(
            run(&c, &empty, BODY),
            Err(VerifyFailure::MissingHeader("x-webhook-timestamp".into()))
        );
        let mut only_ts = HeaderMap::new();
        let _ = only_ts.insert(
            "x-webhook-timestamp",
            HeaderValue::from_static("1700000000"),
        );
        assert_eq!(
            run(&c, &only_ts, BODY),
            Err(VerifyFailure::MissingHeader("x-webhook-signature".into()))
        );
        assert_eq!(
            run(&c, &headers("yesterday", "00"), BODY),
            Err(VerifyFailure::MalformedTimestamp)
        );
        assert_eq!(
            run(&c, &headers("1700000000", "zz"), BODY),
            Err(VerifyFailure::MalformedSignature)
        );
        assert_eq!(
            run(&c, &headers("1700000000", "abcd"), BODY),
            Err(VerifyFailure::MalformedSignature)
        );
    }

    #[test]
    fn millisecond_timestamps_and_prefixed_signatures_are_accepted() {
        let ts = "1700000000500";
        let sig = format!("sha256={}", sign(b"s1", ts, BODY));
        let verdict = run(&check(&[("k", "s1")]), &headers(ts, &sig), BODY).expect("valid");
        assert_eq!(verdict.skew_ms, Some(500));
    }
}
