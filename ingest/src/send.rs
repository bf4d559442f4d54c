//! Signing for `ingest-send`: given a source's configured checks, the
//! headers and query parameters that make a request pass them, like a
//! provider's "send a test event" button. Pure; the binary does the IO.
//!
//! The first secret of each check is used (the current one in a rotation).
//! A `source-address` check cannot be signed for: the request must come
//! from an allowed address.

use crate::settings::{CheckSettings, ProviderKind, SourceSettings};
use crate::verify::bearer::BearerSettings;
use crate::verify::hmac_timestamp::HmacSha256Settings;
use crate::verify::secret_token::SecretTokenSettings;
use crate::verify::standard_webhooks::StandardWebhooksSettings;
use crate::verify::{self, CheckConfigError, hmac_timestamp, immoteur_headers, standard_webhooks};

/// What to add to a request so it passes a source's checks.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Signed {
    /// Headers to send.
    pub headers: Vec<(String, String)>,
    /// Query parameters to add to the URL.
    pub query: Vec<(String, String)>,
}

/// Signs `body` for `source` at Unix time `now_secs`, reading secrets
/// through `env`.
pub fn sign(
    source: &SourceSettings,
    body: &[u8],
    now_secs: i64,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Signed, CheckConfigError> {
    let name = source.name.as_str();
    let ts = now_secs.to_string();
    let mut out = Signed::default();
    let mut push = |k: &str, v: String| out.headers.push((k.to_string(), v));
    let mut query = Vec::new();
    let mut immoteur = source.provider == ProviderKind::Immoteur;
    for check in &source.checks {
        match check {
            CheckSettings::HmacSha256(HmacSha256Settings {
                secrets,
                signature_header,
                timestamp_header,
                ..
            }) => {
                let secret = first(name, hmac_timestamp::SCHEME, secrets, env)?;
                push(timestamp_header, ts.clone());
                push(
                    signature_header,
                    hmac_timestamp::sign(secret.expose(), &ts, body),
                );
            }
            CheckSettings::StandardWebhooks(StandardWebhooksSettings { secrets, .. }) => {
                let secret = first(name, standard_webhooks::SCHEME, secrets, env)?;
                let key = standard_webhooks::decode_secret(secret.expose()).ok_or_else(|| {
                    CheckConfigError::Invalid(
                        name.to_string(),
                        standard_webhooks::SCHEME,
                        "signing needs the first key to be a `whsec_` secret".into(),
                    )
                })?;
                let id = format!("msg_{}", uuid::Uuid::new_v4().simple());
                push(
                    "webhook-signature",
                    standard_webhooks::sign(key.expose(), &id, &ts, body),
                );
                push("webhook-id", id);
                push("webhook-timestamp", ts.clone());
            }
            CheckSettings::Bearer(BearerSettings { tokens }) => {
                let token = first(name, verify::bearer::SCHEME, tokens, env)?;
                push(
                    "authorization",
                    format!("Bearer {}", String::from_utf8_lossy(token.expose())),
                );
            }
            CheckSettings::ImmoteurHeaders { .. } => immoteur = true,
            CheckSettings::SecretToken(SecretTokenSettings {
                tokens,
                header,
                query: param,
            }) => {
                let token = first(name, verify::secret_token::SCHEME, tokens, env)?;
                let token = String::from_utf8_lossy(token.expose()).into_owned();
                match (header, param) {
                    (Some(h), _) => push(h, token),
                    (None, Some(q)) => query.push((q.clone(), token)),
                    (None, None) => {}
                }
            }
            CheckSettings::SourceAddress { .. } => {}
        }
    }
    if immoteur {
        let uuid = || uuid::Uuid::new_v4().to_string();
        push(immoteur_headers::EVENT_ID, uuid());
        push(immoteur_headers::DELIVERY_ID, uuid());
        push(immoteur_headers::SERVICE_ID, uuid());
        push(immoteur_headers::TIMESTAMP, ts.clone());
    }
    out.query = query;
    Ok(out)
}

fn first(
    source: &str,
    scheme: &'static str,
    secrets: &[crate::settings::SecretSettings],
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<crate::settings::SecretBytes, CheckConfigError> {
    let mut loaded = verify::load_secrets(source, scheme, secrets.get(..1).unwrap_or(&[]), env)?;
    loaded
        .pop()
        .map(|(_, secret)| secret)
        .ok_or_else(|| CheckConfigError::NoSecret(source.to_string(), scheme))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::verify::{RequestView, SourceVerifier};
    use axum::http::{HeaderMap, HeaderName, HeaderValue};

    fn sources() -> Vec<SourceSettings> {
        #[derive(serde::Deserialize)]
        struct File {
            sources: Vec<SourceSettings>,
        }
        let text = include_str!("../../config/ingest.toml");
        let file: File = toml::from_str(text).expect("the shipped config parses");
        file.sources
    }

    #[test]
    fn every_shipped_source_passes_its_own_checks_when_signed() {
        let body = br#"{"hello":"world"}"#;
        let now_secs = 1_700_000_000;
        for source in sources() {
            let signed = sign(&source, body, now_secs, &|_| None).expect("signs");
            let mut headers = HeaderMap::new();
            for (k, v) in &signed.headers {
                let _ = headers.append(
                    HeaderName::from_bytes(k.as_bytes()).expect("name"),
                    HeaderValue::from_str(v).expect("value"),
                );
            }
            let verifier = SourceVerifier::build(&source, &|_| None).expect("builds");
            let verdict = verifier
                .verify(&RequestView {
                    headers: &headers,
                    body,
                    now_ms: now_secs * 1000,
                    peer: Some("127.0.0.1".parse().expect("ip")),
                    query: &signed.query,
                })
                .unwrap_or_else(|e| panic!("{}: {e}", source.name));
            assert!(!verdict.key_label.is_empty(), "{}", source.name);
        }
    }
}
