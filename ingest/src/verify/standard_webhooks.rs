//! Standard Webhooks (<https://www.standardwebhooks.com/>), `v1`:
//! `webhook-signature` holds space-separated `v1,<base64>` entries, each the
//! HMAC-SHA256 of `webhook-id.webhook-timestamp.body` keyed with the base64
//! part of a `whsec_` secret; `webhook-timestamp` is Unix seconds within the
//! tolerance. The `webhook-id` is the provider event id.
//!
//! Every (entry, secret) pair is tried and compared in constant time, so a
//! sender may sign with several keys and a receiver may hold several.
//! `v1a` (ed25519) entries are not checked yet: they are skipped, so a
//! request signed only with `v1a` is refused, never let through.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hmac::Mac;

use super::{
    Check, CheckConfigError, RequestView, Verdict, VerifyFailure, check_skew, header_text, new_mac,
    tolerance_ms,
};
use crate::settings::SecretBytes;

/// Scheme name reported in `verify-scheme`.
pub const SCHEME: &str = "standard-webhooks";

const ID: &str = "webhook-id";
const TIMESTAMP: &str = "webhook-timestamp";
const SIGNATURE: &str = "webhook-signature";
const SECRET_PREFIX: &str = "whsec_";

/// The configured check; secrets are the decoded key bytes.
#[derive(Debug)]
pub struct StandardWebhooksCheck {
    secrets: Vec<(String, SecretBytes)>,
    tolerance_ms: i64,
}

/// Turns `whsec_<base64>` secrets into key bytes; anything else is a start error.
pub fn decode_secrets(
    source: &str,
    secrets: Vec<(String, SecretBytes)>,
) -> Result<Vec<(String, SecretBytes)>, CheckConfigError> {
    secrets
        .into_iter()
        .map(|(label, secret)| {
            decode_secret(secret.expose())
                .map(|key| (label.clone(), key))
                .ok_or_else(|| {
                    CheckConfigError::Invalid(
                        source.to_string(),
                        SCHEME,
                        format!("secret `{label}` is not `whsec_` followed by base64"),
                    )
                })
        })
        .collect()
}

/// The key bytes of a `whsec_<base64>` secret.
pub fn decode_secret(secret: &[u8]) -> Option<SecretBytes> {
    let b64 = secret.strip_prefix(SECRET_PREFIX.as_bytes())?;
    let key = STANDARD.decode(b64).ok()?;
    (!key.is_empty()).then(|| SecretBytes::new(key))
}

/// The `v1,<base64>` signature a sender puts in `webhook-signature`.
pub fn sign(key: &[u8], id: &str, timestamp: &str, body: &[u8]) -> String {
    let mut mac = new_mac(key);
    mac.update(id.as_bytes());
    mac.update(b".");
    mac.update(timestamp.as_bytes());
    mac.update(b".");
    mac.update(body);
    format!("v1,{}", STANDARD.encode(mac.finalize().into_bytes()))
}

impl StandardWebhooksCheck {
    /// A check with decoded, labelled keys and a tolerance in seconds.
    pub fn new(secrets: Vec<(String, SecretBytes)>, tolerance_secs: u64) -> Self {
        Self {
            secrets,
            tolerance_ms: tolerance_ms(tolerance_secs),
        }
    }
}

impl Check for StandardWebhooksCheck {
    fn verify(&self, request: &RequestView<'_>) -> Result<Verdict, VerifyFailure> {
        let missing = |name: &str| VerifyFailure::MissingHeader(name.to_string());
        let id = header_text(request.headers, ID).ok_or_else(|| missing(ID))?;
        let timestamp =
            header_text(request.headers, TIMESTAMP).ok_or_else(|| missing(TIMESTAMP))?;
        let signature =
            header_text(request.headers, SIGNATURE).ok_or_else(|| missing(SIGNATURE))?;
        let sent_secs: i64 = timestamp
            .parse()
            .map_err(|_| VerifyFailure::MalformedTimestamp)?;
        let sent_ms = sent_secs
            .checked_mul(1000)
            .ok_or(VerifyFailure::MalformedTimestamp)?;
        let skew_ms = check_skew(sent_ms, request.now_ms, self.tolerance_ms)?;
        let provided: Vec<Vec<u8>> = signature
            .split(' ')
            .filter_map(|entry| entry.strip_prefix("v1,"))
            .filter_map(|b64| STANDARD.decode(b64).ok())
            .filter(|sig| sig.len() == 32)
            .collect();
        if provided.is_empty() {
            return Err(VerifyFailure::MalformedSignature);
        }
        let mut matched: Option<&str> = None;
        for (label, key) in &self.secrets {
            for sig in &provided {
                let mut mac = new_mac(key.expose());
                mac.update(id.as_bytes());
                mac.update(b".");
                mac.update(timestamp.as_bytes());
                mac.update(b".");
                mac.update(request.body);
                if mac.verify_slice(sig).is_ok() && matched.is_none() {
                    matched = Some(label);
                }
            }
        }
        match matched {
            Some(label) => Ok(Verdict {
                skew_ms: Some(skew_ms),
                event_id: Some(id.to_string()),
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

    // The example published with the Standard Webhooks specification.
    const SPEC_SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    const SPEC_ID: &str = "msg_p5jXN8AQM9LWM0D4loKWxJek";
    const SPEC_TS: &str = "1614265330";
    const SPEC_BODY: &[u8] = br#"{"test": 2432232314}"#;
    const SPEC_SIG: &str = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=";
    const SPEC_NOW_MS: i64 = 1_614_265_330_000;

    fn check(secrets: &[(&str, &str)]) -> StandardWebhooksCheck {
        let raw = secrets
            .iter()
            .map(|(l, s)| (l.to_string(), SecretBytes::new(s.as_bytes().to_vec())))
            .collect();
        StandardWebhooksCheck::new(decode_secrets("sw", raw).expect("whsec secrets"), 300)
    }

    fn headers(id: Option<&str>, ts: Option<&str>, sig: Option<&str>) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (name, value) in [(ID, id), (TIMESTAMP, ts), (SIGNATURE, sig)] {
            if let Some(v) = value {
                let _ = h.insert(name, HeaderValue::from_str(v).expect("ascii"));
            }
        }
        h
    }

    fn run(
        c: &StandardWebhooksCheck,
        h: &HeaderMap,
        body: &[u8],
    ) -> Result<Verdict, VerifyFailure> {
        c.verify(&RequestView {
            headers: h,
            body,
            now_ms: SPEC_NOW_MS,
            peer: None,
            query: &[],
        })
    }

    #[test]
    fn signs_the_specification_example() {
        let key = decode_secret(SPEC_SECRET.as_bytes()).expect("valid secret");
        assert_eq!(sign(key.expose(), SPEC_ID, SPEC_TS, SPEC_BODY), SPEC_SIG);
    }

    #[test]
    fn accepts_the_specification_example_and_reports_the_webhook_id() {
        let h = headers(Some(SPEC_ID), Some(SPEC_TS), Some(SPEC_SIG));
        let verdict = run(&check(&[("spec", SPEC_SECRET)]), &h, SPEC_BODY).expect("valid");
        assert_eq!(verdict.scheme, SCHEME);
        assert_eq!(verdict.key_label, "spec");
        assert_eq!(verdict.event_id.as_deref(), Some(SPEC_ID));
        assert_eq!(verdict.skew_ms, Some(0));
    }

    #[test]
    fn any_entry_may_match_any_active_secret() {
        let other = "whsec_c2Vjb25kLWtleS1mb3Itcm90YXRpb24=";
        let sig = format!("v1,bm90LWEtc2lnbmF0dXJlLW9mLTMyLWJ5dGVzLi4uLg== v1a,xyz {SPEC_SIG}");
        let h = headers(Some(SPEC_ID), Some(SPEC_TS), Some(&sig));
        let verdict = run(
            &check(&[("new", other), ("old", SPEC_SECRET)]),
            &h,
            SPEC_BODY,
        )
        .expect("old key still active");
        assert_eq!(verdict.key_label, "old");
        assert_eq!(
            run(&check(&[("new", other)]), &h, SPEC_BODY),
            Err(VerifyFailure::BadSignature)
        );
    }

    #[test]
    fn rejects_tampering_staleness_and_missing_headers() {
        let c = check(&[("spec", SPEC_SECRET)]);
        let h = headers(Some(SPEC_ID), Some(SPEC_TS), Some(SPEC_SIG));
        let mut tampered = SPEC_BODY.to_vec();
        tampered[3] ^= 1;
        assert_eq!(run(&c, &h, &tampered), Err(VerifyFailure::BadSignature));
        let other_id = headers(Some("msg_other"), Some(SPEC_TS), Some(SPEC_SIG));
        assert_eq!(
            run(&c, &other_id, SPEC_BODY),
            Err(VerifyFailure::BadSignature)
        );
        let stale = headers(Some(SPEC_ID), Some("1614265000"), Some(SPEC_SIG));
        assert!(matches!(
            run(&c, &stale, SPEC_BODY),
            Err(VerifyFailure::StaleTimestamp { .. })
        ));
        assert_eq!(
            run(&c, &headers(None, Some(SPEC_TS), Some(SPEC_SIG)), SPEC_BODY),
            Err(VerifyFailure::MissingHeader(ID.into()))
        );
        assert_eq!(
            run(
                &c,
                &headers(Some(SPEC_ID), Some(SPEC_TS), Some("v2,abc")),
                SPEC_BODY
            ),
            Err(VerifyFailure::MalformedSignature)
        );
    }

    #[test]
    fn secrets_without_the_whsec_prefix_are_a_start_error() {
        let raw = vec![(
            "k".to_string(),
            SecretBytes::new(b"MfKQ9r8GKYqrTwjU".to_vec()),
        )];
        assert!(matches!(
            decode_secrets("sw", raw),
            Err(CheckConfigError::Invalid(..))
        ));
    }
}
