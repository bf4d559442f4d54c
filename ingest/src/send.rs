//! Signing for `ingest-send`: given a source's configured checks, the
//! headers and query parameters that make a request pass them, like a
//! provider's "send a test event" button. Pure; the binary does the IO.
//! Each scheme signs for its own check (see [`crate::verify::Scheme`]).
//!
//! The first secret of each check is used (the current one in a rotation).
//! A `source-address` check cannot be signed for: the request must come
//! from an allowed address.

use crate::settings::SourceSettings;
use crate::verify::{CheckConfigError, Env, immoteur_headers};

/// What to add to a request so it passes a source's checks.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Signed {
    /// Headers to send.
    pub headers: Vec<(String, String)>,
    /// Query parameters to add to the URL.
    pub query: Vec<(String, String)>,
}

impl Signed {
    /// Adds a header to send.
    pub(crate) fn push_header(&mut self, name: &str, value: String) {
        self.headers.push((name.to_string(), value));
    }
}

/// What a check signs for: a body, for a source, at a time.
#[derive(Clone, Copy)]
pub struct SignRequest<'a> {
    /// The source whose checks the request must pass.
    pub source: &'a SourceSettings,
    /// The body, exactly as it will be sent.
    pub body: &'a [u8],
    /// Sending time, Unix seconds.
    pub now_secs: i64,
    /// Where secrets set as `env = "VAR"` are looked up.
    pub env: Env<'a>,
}

/// Signs `body` for `source` at Unix time `now_secs`, reading secrets
/// through `env`: each check in order adds what it needs, then Immoteur's
/// headers are added where the source's checks include them.
pub fn sign(
    source: &SourceSettings,
    body: &[u8],
    now_secs: i64,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Signed, CheckConfigError> {
    let request = SignRequest {
        source,
        body,
        now_secs,
        env,
    };
    let mut out = Signed::default();
    for check in &source.checks {
        check.scheme().sign(&request, &mut out)?;
    }
    immoteur_headers::sign_delivery(source, now_secs, &mut out);
    Ok(out)
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
