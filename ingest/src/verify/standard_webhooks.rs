//! Standard Webhooks (<https://www.standardwebhooks.com/>):
//! `webhook-signature` holds space-separated `<version>,<base64>` entries
//! over `webhook-id.webhook-timestamp.body`: `v1` is HMAC-SHA256 keyed with
//! the base64 part of a `whsec_` secret, `v1a` an ed25519 signature checked
//! with a `whpk_` public key. `webhook-timestamp` is Unix seconds within the
//! tolerance. The `webhook-id` is the provider event id.
//!
//! A sender may sign with several keys and a receiver may hold several.
//! The sender does not choose what that costs: the header holds at most
//! [`MAX_SIGNATURE_ENTRIES`] entries (at most [`MAX_ED25519_ENTRIES`] of them
//! `v1a`), an entry of the wrong length is dropped before any decoding or
//! hashing, and each `whsec_` secret's MAC is computed once per request and
//! compared in constant time with every `v1` entry. Entries of other
//! versions are ignored, as the specification asks.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use ed25519_dalek::{Signature, VerifyingKey};
use hmac::Mac;
use serde::Deserialize;
use subtle::ConstantTimeEq;

use super::crypto::new_mac;
use super::fail_closed::{
    check_secret_length, check_tolerance, default_tolerance_secs, load_first, load_secrets,
};
use super::wire::{check_skew, header_text, tolerance_ms};
use super::{
    Built, Check, CheckConfigError, Env, Head, RequestView, Scheme, Verdict, VerifyFailure,
};
use crate::send::{SignRequest, Signed};
use crate::settings::{SecretBytes, SecretSettings, SourceSettings};

/// Scheme name reported in `verify-scheme`.
pub const SCHEME: &str = "standard-webhooks";

const ID: &str = "webhook-id";
const TIMESTAMP: &str = "webhook-timestamp";
const SIGNATURE: &str = "webhook-signature";
const SECRET_PREFIX: &str = "whsec_";
const PUBLIC_KEY_PREFIX: &str = "whpk_";

/// Most entries `webhook-signature` may hold; more is a malformed header.
pub const MAX_SIGNATURE_ENTRIES: usize = 16;

/// Most `v1a` entries one request may hold: each costs a hash of the whole
/// body per `whpk_` key.
pub const MAX_ED25519_ENTRIES: usize = 4;

/// Base64 length of a `v1` entry (32 bytes of HMAC-SHA256).
const V1_BASE64_LEN: usize = 44;

/// Base64 length of a `v1a` entry (64 bytes of ed25519 signature).
const V1A_BASE64_LEN: usize = 88;

/// A `standard-webhooks` check as configured: `v1` base64 HMAC-SHA256 of
/// `id.timestamp.body` keyed with `whsec_<base64>` secrets, or `v1a`
/// ed25519 signatures checked with `whpk_<base64>` public keys.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StandardWebhooksSettings {
    /// `whsec_...` secrets and `whpk_...` public keys accepted at once (rotation).
    pub secrets: Vec<SecretSettings>,
    /// Allowed distance between `webhook-timestamp` and now, seconds.
    #[serde(default = "default_tolerance_secs")]
    pub tolerance_secs: u64,
}

impl Scheme for StandardWebhooksSettings {
    /// Refuses a long tolerance, keys that are neither `whsec_` nor `whpk_`,
    /// and short `whsec_` keys.
    fn build(&self, source: &SourceSettings, env: Env<'_>) -> Result<Built, CheckConfigError> {
        check_tolerance(source, SCHEME, self.tolerance_secs)?;
        Ok(Built::Request(Box::new(StandardWebhooksCheck::new(
            decode_secrets(
                source,
                load_secrets(&source.name, SCHEME, &self.secrets, env)?,
            )?,
            self.tolerance_secs,
        ))))
    }

    /// A `v1` signature with a new `msg_` id; the first key must be a
    /// `whsec_` secret (a `whpk_` public key cannot sign).
    fn sign(&self, request: &SignRequest<'_>, out: &mut Signed) -> Result<(), CheckConfigError> {
        let secret = load_first(request, SCHEME, &self.secrets)?;
        let key = decode_secret(secret.expose()).ok_or_else(|| {
            CheckConfigError::Invalid(
                request.source.name.clone(),
                SCHEME,
                "signing needs the first key to be a `whsec_` secret".into(),
            )
        })?;
        let ts = request.now_secs.to_string();
        let id = format!("msg_{}", uuid::Uuid::new_v4().simple());
        out.push_header(SIGNATURE, sign(key.expose(), &id, &ts, request.body));
        out.push_header(ID, id);
        out.push_header(TIMESTAMP, ts);
        Ok(())
    }

    /// A passing check proves a credential.
    fn proves_sender(&self) -> bool {
        true
    }
}

/// A configured key: a `v1` HMAC secret or a `v1a` ed25519 public key.
#[derive(Debug, Clone)]
pub enum Key {
    /// `whsec_`: HMAC-SHA256 key bytes.
    Hmac(SecretBytes),
    /// `whpk_`: ed25519 public key.
    Ed25519(VerifyingKey),
}

/// The configured check, with decoded, labelled keys.
#[derive(Debug)]
pub struct StandardWebhooksCheck {
    keys: Vec<(String, Key)>,
    tolerance_ms: i64,
}

/// Turns `whsec_<base64>` secrets and `whpk_<base64>` public keys into
/// keys; anything else is a start error.
/// A `whsec_` key shorter than [`super::MIN_SECRET_BYTES`] once decoded is
/// refused unless the source allows short secrets.
pub fn decode_secrets(
    source: &SourceSettings,
    secrets: Vec<(String, SecretBytes)>,
) -> Result<Vec<(String, Key)>, CheckConfigError> {
    secrets
        .into_iter()
        .map(|(label, secret)| {
            let key = match decode_secret(secret.expose()) {
                Some(hmac) => {
                    check_secret_length(source, SCHEME, &label, hmac.expose())?;
                    Some(Key::Hmac(hmac))
                }
                None => decode_public_key(secret.expose()).map(Key::Ed25519),
            };
            key.map(|key| (label.clone(), key)).ok_or_else(|| {
                CheckConfigError::Invalid(
                    source.name.clone(),
                    SCHEME,
                    format!("secret `{label}` is neither `whsec_` nor `whpk_` followed by base64"),
                )
            })
        })
        .collect()
}

/// The ed25519 public key of a `whpk_<base64>` key.
pub fn decode_public_key(text: &[u8]) -> Option<VerifyingKey> {
    let b64 = text.strip_prefix(PUBLIC_KEY_PREFIX.as_bytes())?;
    let bytes: [u8; 32] = STANDARD.decode(b64).ok()?.try_into().ok()?;
    VerifyingKey::from_bytes(&bytes).ok()
}

fn signed_content(id: &str, timestamp: &str, body: &[u8]) -> Vec<u8> {
    let mut content = Vec::with_capacity(id.len() + timestamp.len() + body.len() + 2);
    content.extend_from_slice(id.as_bytes());
    content.push(b'.');
    content.extend_from_slice(timestamp.as_bytes());
    content.push(b'.');
    content.extend_from_slice(body);
    content
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
    mac.update(&signed_content(id, timestamp, body));
    format!("v1,{}", STANDARD.encode(mac.finalize().into_bytes()))
}

impl StandardWebhooksCheck {
    /// A check with decoded, labelled keys and a tolerance in seconds.
    pub fn new(keys: Vec<(String, Key)>, tolerance_secs: u64) -> Self {
        Self {
            keys,
            tolerance_ms: tolerance_ms(tolerance_secs),
        }
    }
}

/// The candidate signatures of one request, decoded.
#[derive(Debug, Default)]
struct Candidates {
    v1: Vec<[u8; 32]>,
    v1a: Vec<Signature>,
}

/// Splits `webhook-signature` into candidates: at most
/// [`MAX_SIGNATURE_ENTRIES`] entries, at most [`MAX_ED25519_ENTRIES`] `v1a`;
/// an entry of an unknown version or of the wrong length is skipped before
/// it is decoded. No usable entry is a malformed signature.
fn candidates(header: &str) -> Result<Candidates, VerifyFailure> {
    let mut out = Candidates::default();
    let mut entries = 0usize;
    let mut v1a_entries = 0usize;
    for entry in header.split(' ').filter(|e| !e.is_empty()) {
        entries += 1;
        if entries > MAX_SIGNATURE_ENTRIES {
            return Err(VerifyFailure::MalformedSignature);
        }
        match entry.split_once(',') {
            Some(("v1", b64)) if b64.len() == V1_BASE64_LEN => {
                if let Some(tag) = STANDARD
                    .decode(b64)
                    .ok()
                    .and_then(|bytes| <[u8; 32]>::try_from(bytes).ok())
                {
                    out.v1.push(tag);
                }
            }
            Some(("v1a", b64)) if b64.len() == V1A_BASE64_LEN => {
                v1a_entries += 1;
                if v1a_entries > MAX_ED25519_ENTRIES {
                    return Err(VerifyFailure::MalformedSignature);
                }
                if let Some(sig) = STANDARD
                    .decode(b64)
                    .ok()
                    .and_then(|bytes| Signature::from_slice(&bytes).ok())
                {
                    out.v1a.push(sig);
                }
            }
            _ => {}
        }
    }
    if out.v1.is_empty() && out.v1a.is_empty() {
        return Err(VerifyFailure::MalformedSignature);
    }
    Ok(out)
}

/// What the headers of a request say, before its body is read.
struct SignedHead<'a> {
    id: &'a str,
    timestamp: &'a str,
    skew_ms: i64,
    candidates: Candidates,
}

impl StandardWebhooksCheck {
    /// The headers' part of the check: the three headers present, the
    /// timestamp fresh, the signature list well formed.
    fn head<'a>(&self, request: &RequestView<'a>) -> Result<SignedHead<'a>, VerifyFailure> {
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
        Ok(SignedHead {
            id,
            timestamp,
            skew_ms,
            candidates: candidates(signature)?,
        })
    }
}

impl Check for StandardWebhooksCheck {
    fn verify_head(&self, request: &RequestView<'_>) -> Result<Head, VerifyFailure> {
        self.head(request).map(|_| Head::NeedsBody)
    }

    fn verify(&self, request: &RequestView<'_>) -> Result<Verdict, VerifyFailure> {
        let signed = self.head(request)?;
        let Candidates { v1, v1a } = &signed.candidates;
        // ed25519 needs the signed content in one piece; built only if used.
        let mut content: Option<Vec<u8>> = None;
        let mut matched: Option<&str> = None;
        for (label, key) in &self.keys {
            let ok = match key {
                Key::Hmac(secret) if !v1.is_empty() => {
                    // Once per secret, then compared with every candidate.
                    let mut mac = new_mac(secret.expose());
                    mac.update(signed.id.as_bytes());
                    mac.update(b".");
                    mac.update(signed.timestamp.as_bytes());
                    mac.update(b".");
                    mac.update(request.body);
                    let tag = mac.finalize().into_bytes();
                    v1.iter().fold(false, |any, candidate| {
                        any | bool::from(tag.as_slice().ct_eq(candidate))
                    })
                }
                Key::Ed25519(public) if !v1a.is_empty() => {
                    let content = content.get_or_insert_with(|| {
                        signed_content(signed.id, signed.timestamp, request.body)
                    });
                    v1a.iter().fold(false, |any, sig| {
                        any | public.verify_strict(content, sig).is_ok()
                    })
                }
                _ => false,
            };
            if ok && matched.is_none() {
                matched = Some(label);
            }
        }
        match matched {
            Some(label) => Ok(Verdict {
                skew_ms: Some(signed.skew_ms),
                event_id: Some(signed.id.to_string()),
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
        StandardWebhooksCheck::new(
            decode_secrets(
                &SourceSettings::named("sw", crate::settings::ProviderKind::StandardWebhooks),
                raw,
            )
            .expect("whsec secrets"),
            300,
        )
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
        let sig = format!("v1,eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHg= v1a,xyz {SPEC_SIG}");
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
    fn v1a_ed25519_signatures_are_checked_with_whpk_public_keys() {
        use ed25519_dalek::{Signer, SigningKey};
        let signing = SigningKey::from_bytes(&[7; 32]);
        let public = format!(
            "whpk_{}",
            STANDARD.encode(signing.verifying_key().as_bytes())
        );
        let content = signed_content(SPEC_ID, SPEC_TS, SPEC_BODY);
        let sig = format!("v1a,{}", STANDARD.encode(signing.sign(&content).to_bytes()));
        let c = check(&[("hmac", SPEC_SECRET), ("ed", &public)]);
        let h = headers(Some(SPEC_ID), Some(SPEC_TS), Some(&sig));
        assert_eq!(run(&c, &h, SPEC_BODY).expect("valid v1a").key_label, "ed");
        let mut tampered = SPEC_BODY.to_vec();
        tampered[0] = b' ';
        assert_eq!(run(&c, &h, &tampered), Err(VerifyFailure::BadSignature));
        let hmac_only = check(&[("hmac", SPEC_SECRET)]);
        assert_eq!(
            run(&hmac_only, &h, SPEC_BODY),
            Err(VerifyFailure::BadSignature),
            "a v1a entry is never checked against an HMAC secret"
        );
    }

    #[test]
    fn a_flood_of_entries_is_refused_before_any_hashing() {
        let c = check(&[("spec", SPEC_SECRET)]);
        let flood = vec!["v1,AAAA"; 20_000].join(" ");
        let h = headers(Some(SPEC_ID), Some(SPEC_TS), Some(&flood));
        assert_eq!(
            run(&c, &h, SPEC_BODY),
            Err(VerifyFailure::MalformedSignature)
        );
        // The cap itself, with the valid entry last: still verified.
        let filler = "v1,eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHg=";
        let mut at_cap = vec![filler; MAX_SIGNATURE_ENTRIES - 1];
        at_cap.push(SPEC_SIG);
        let h = headers(Some(SPEC_ID), Some(SPEC_TS), Some(&at_cap.join(" ")));
        assert_eq!(
            run(&c, &h, SPEC_BODY).expect("at the cap").key_label,
            "spec"
        );
        let mut over = at_cap.clone();
        over.insert(0, filler);
        let h = headers(Some(SPEC_ID), Some(SPEC_TS), Some(&over.join(" ")));
        assert_eq!(
            run(&c, &h, SPEC_BODY),
            Err(VerifyFailure::MalformedSignature)
        );
    }

    #[test]
    fn entries_of_the_wrong_length_or_version_are_skipped_not_hashed() {
        let parsed = candidates("v1,AAAA v2,xyz v1a,AAAA v1 ,, v1,").expect_err("nothing usable");
        assert_eq!(parsed, VerifyFailure::MalformedSignature);
        let parsed = candidates(&format!("v1,AAAA {SPEC_SIG} v9,{}", &SPEC_SIG[3..]))
            .expect("one usable entry");
        assert_eq!(parsed.v1.len(), 1);
        assert!(parsed.v1a.is_empty());
        let ed = format!("v1a,{}", "A".repeat(V1A_BASE64_LEN));
        let five = [ed.as_str(); MAX_ED25519_ENTRIES + 1].join(" ");
        assert_eq!(
            candidates(&five).map(|c| c.v1a.len()),
            Err(VerifyFailure::MalformedSignature)
        );
    }

    #[test]
    fn the_head_phase_refuses_stale_or_malformed_headers_without_the_body() {
        let c = check(&[("spec", SPEC_SECRET)]);
        let view = |h: &HeaderMap| {
            c.verify_head(&RequestView {
                headers: h,
                body: &[],
                now_ms: SPEC_NOW_MS,
                peer: None,
                query: &[],
            })
        };
        let good = headers(Some(SPEC_ID), Some(SPEC_TS), Some(SPEC_SIG));
        assert_eq!(view(&good), Ok(Head::NeedsBody));
        let stale = headers(Some(SPEC_ID), Some("1614265000"), Some(SPEC_SIG));
        assert!(matches!(
            view(&stale),
            Err(VerifyFailure::StaleTimestamp { .. })
        ));
        let junk = headers(Some(SPEC_ID), Some(SPEC_TS), Some("v1,AAAA"));
        assert_eq!(view(&junk), Err(VerifyFailure::MalformedSignature));
    }

    #[test]
    fn short_whsec_keys_are_refused_unless_the_source_allows_them() {
        let short = format!("whsec_{}", STANDARD.encode(b"only-12-byte"));
        let raw = || vec![("k".to_string(), SecretBytes::new(short.as_bytes().to_vec()))];
        let mut source =
            SourceSettings::named("sw", crate::settings::ProviderKind::StandardWebhooks);
        let refused = decode_secrets(&source, raw()).expect_err("12 bytes is too short");
        assert!(
            refused.to_string().contains("allow_short_secrets"),
            "{refused}"
        );
        source.allow_short_secrets = true;
        assert!(decode_secrets(&source, raw()).is_ok());
    }

    #[test]
    fn secrets_without_the_whsec_prefix_are_a_start_error() {
        let raw = vec![(
            "k".to_string(),
            SecretBytes::new(b"MfKQ9r8GKYqrTwjU".to_vec()),
        )];
        assert!(matches!(
            decode_secrets(
                &SourceSettings::named("sw", crate::settings::ProviderKind::StandardWebhooks),
                raw
            ),
            Err(CheckConfigError::Invalid(..))
        ));
    }
}
