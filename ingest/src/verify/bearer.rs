//! Bearer token: `Authorization: Bearer <token>` must equal one of the
//! configured tokens (Immoteur's personal access token). Compared in
//! constant time against every active token.

use serde::Deserialize;

use super::crypto::match_token;
use super::fail_closed::{load_checked_secrets, load_first};
use super::wire::header_text;
use super::{
    Built, Check, CheckConfigError, Env, Head, RequestView, Scheme, Verdict, VerifyFailure,
};
use crate::send::{SignRequest, Signed};
use crate::settings::{SecretBytes, SecretSettings, SourceSettings};

/// Scheme name reported in `verify-scheme`.
pub const SCHEME: &str = "bearer";

/// A `bearer` check as configured: `Authorization: Bearer <token>`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BearerSettings {
    /// Tokens accepted at once (rotation).
    pub tokens: Vec<SecretSettings>,
}

impl Scheme for BearerSettings {
    /// Refuses short tokens.
    fn build(&self, source: &SourceSettings, env: Env<'_>) -> Result<Built, CheckConfigError> {
        Ok(Built::Request(Box::new(BearerCheck::new(
            load_checked_secrets(source, SCHEME, &self.tokens, env)?,
        ))))
    }

    /// `Authorization: Bearer <first token>`.
    fn sign(&self, request: &SignRequest<'_>, out: &mut Signed) -> Result<(), CheckConfigError> {
        let token = load_first(request, SCHEME, &self.tokens)?;
        out.push_header(
            "authorization",
            format!("Bearer {}", String::from_utf8_lossy(token.expose())),
        );
        Ok(())
    }

    /// A passing check proves a credential.
    fn proves_sender(&self) -> bool {
        true
    }
}

/// The configured check.
#[derive(Debug)]
pub struct BearerCheck {
    tokens: Vec<(String, SecretBytes)>,
}

impl BearerCheck {
    /// A check with labelled tokens.
    pub fn new(tokens: Vec<(String, SecretBytes)>) -> Self {
        Self { tokens }
    }
}

impl Check for BearerCheck {
    fn verify_head(&self, request: &RequestView<'_>) -> Result<Head, VerifyFailure> {
        self.verify(request).map(Head::Verified)
    }

    fn verify(&self, request: &RequestView<'_>) -> Result<Verdict, VerifyFailure> {
        let value = header_text(request.headers, "authorization")
            .ok_or_else(|| VerifyFailure::MissingHeader("authorization".into()))?;
        let (scheme, token) = value
            .split_once(' ')
            .ok_or_else(|| VerifyFailure::MalformedHeader("authorization".into()))?;
        if !scheme.eq_ignore_ascii_case("bearer") {
            return Err(VerifyFailure::MalformedHeader("authorization".into()));
        }
        match match_token(token.trim().as_bytes(), &self.tokens) {
            Some(label) => Ok(Verdict::new(SCHEME, label)),
            None => Err(VerifyFailure::BadToken),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::{HeaderMap, HeaderValue};

    fn run(tokens: &[(&str, &str)], authorization: Option<&str>) -> Result<Verdict, VerifyFailure> {
        let check = BearerCheck::new(
            tokens
                .iter()
                .map(|(l, t)| (l.to_string(), SecretBytes::new(t.as_bytes().to_vec())))
                .collect(),
        );
        let mut h = HeaderMap::new();
        if let Some(v) = authorization {
            let _ = h.insert("authorization", HeaderValue::from_str(v).expect("ascii"));
        }
        check.verify(&RequestView {
            headers: &h,
            body: b"{}",
            now_ms: 0,
            peer: None,
            query: &[],
        })
    }

    #[test]
    fn accepts_any_active_token_and_reports_its_label() {
        let tokens = [("new", "pat-new"), ("old", "pat-old")];
        assert_eq!(
            run(&tokens, Some("Bearer pat-old"))
                .expect("valid")
                .key_label,
            "old"
        );
        assert_eq!(
            run(&tokens, Some("bearer pat-new"))
                .expect("valid")
                .key_label,
            "new"
        );
    }

    #[test]
    fn rejects_wrong_removed_and_missing_tokens() {
        assert_eq!(
            run(&[("new", "pat-new")], Some("Bearer pat-old")),
            Err(VerifyFailure::BadToken)
        );
        assert_eq!(
            run(&[("new", "pat-new")], None),
            Err(VerifyFailure::MissingHeader("authorization".into()))
        );
        assert_eq!(
            run(&[("new", "pat-new")], Some("Basic cGF0LW5ldw==")),
            Err(VerifyFailure::MalformedHeader("authorization".into()))
        );
        assert_eq!(
            run(&[("new", "pat-new")], Some("pat-new")),
            Err(VerifyFailure::MalformedHeader("authorization".into()))
        );
    }
}
