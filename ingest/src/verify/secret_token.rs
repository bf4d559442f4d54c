//! Secret token in a header or a query parameter, for providers without a
//! signature scheme (Fluximmo): the endpoint is configured at the provider
//! with the token in its URL or a custom header. Compared in constant time
//! against every active token.

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
pub const SCHEME: &str = "secret-token";

/// A `secret-token` check as configured: a shared secret token in a header
/// or a query parameter.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SecretTokenSettings {
    /// Tokens accepted at once (rotation).
    pub tokens: Vec<SecretSettings>,
    /// Header carrying the token (exactly one of `header`, `query`).
    #[serde(default)]
    pub header: Option<String>,
    /// Query parameter carrying the token.
    #[serde(default)]
    pub query: Option<String>,
}

impl Scheme for SecretTokenSettings {
    /// Refuses short tokens, and anything but exactly one of `header` or
    /// `query`.
    fn build(&self, source: &SourceSettings, env: Env<'_>) -> Result<Built, CheckConfigError> {
        Ok(Built::Request(Box::new(SecretTokenCheck::new(
            &source.name,
            load_checked_secrets(source, SCHEME, &self.tokens, env)?,
            self.header.as_deref(),
            self.query.as_deref(),
        )?)))
    }

    /// The first token in the header, or else in the query parameter.
    fn sign(&self, request: &SignRequest<'_>, out: &mut Signed) -> Result<(), CheckConfigError> {
        let token = load_first(request, SCHEME, &self.tokens)?;
        let token = String::from_utf8_lossy(token.expose()).into_owned();
        match (&self.header, &self.query) {
            (Some(header), _) => out.push_header(header, token),
            (None, Some(query)) => out.query.push((query.clone(), token)),
            (None, None) => {}
        }
        Ok(())
    }

    /// A passing check proves a credential.
    fn proves_sender(&self) -> bool {
        true
    }
}

/// Where the token is carried.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenLocation {
    /// In this header (lowercase).
    Header(String),
    /// In this query parameter.
    Query(String),
}

/// The configured check.
#[derive(Debug)]
pub struct SecretTokenCheck {
    tokens: Vec<(String, SecretBytes)>,
    location: TokenLocation,
}

impl SecretTokenCheck {
    /// A check reading the token from exactly one of `header` or `query`.
    pub fn new(
        source: &str,
        tokens: Vec<(String, SecretBytes)>,
        header: Option<&str>,
        query: Option<&str>,
    ) -> Result<Self, CheckConfigError> {
        let location = match (header, query) {
            (Some(h), None) if !h.is_empty() => TokenLocation::Header(h.to_ascii_lowercase()),
            (None, Some(q)) if !q.is_empty() => TokenLocation::Query(q.to_string()),
            _ => {
                return Err(CheckConfigError::Invalid(
                    source.to_string(),
                    SCHEME,
                    "set exactly one of `header` or `query`".into(),
                ));
            }
        };
        Ok(Self { tokens, location })
    }

    /// Where this check reads its token.
    pub fn location(&self) -> &TokenLocation {
        &self.location
    }
}

impl Check for SecretTokenCheck {
    fn verify_head(&self, request: &RequestView<'_>) -> Result<Head, VerifyFailure> {
        self.verify(request).map(Head::Verified)
    }

    fn verify(&self, request: &RequestView<'_>) -> Result<Verdict, VerifyFailure> {
        let provided = match &self.location {
            TokenLocation::Header(name) => header_text(request.headers, name),
            TokenLocation::Query(name) => request
                .query
                .iter()
                .find(|(k, v)| k == name && !v.is_empty())
                .map(|(_, v)| v.as_str()),
        }
        .ok_or(VerifyFailure::MissingToken)?;
        match match_token(provided.as_bytes(), &self.tokens) {
            Some(label) => Ok(Verdict::new(SCHEME, label)),
            None => Err(VerifyFailure::BadToken),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::{HeaderMap, HeaderValue};

    fn tokens() -> Vec<(String, SecretBytes)> {
        vec![
            ("new".into(), SecretBytes::new(b"tok-new".to_vec())),
            ("old".into(), SecretBytes::new(b"tok-old".to_vec())),
        ]
    }

    fn run(
        check: &SecretTokenCheck,
        header: Option<&str>,
        query: &[(String, String)],
    ) -> Result<Verdict, VerifyFailure> {
        let mut h = HeaderMap::new();
        if let Some(v) = header {
            let _ = h.insert("x-fluximmo-token", HeaderValue::from_str(v).expect("ascii"));
        }
        check.verify(&RequestView {
            headers: &h,
            body: b"{}",
            now_ms: 0,
            peer: None,
            query,
        })
    }

    #[test]
    fn a_token_in_the_configured_header_is_accepted() {
        let c =
            SecretTokenCheck::new("f", tokens(), Some("X-Fluximmo-Token"), None).expect("valid");
        assert_eq!(run(&c, Some("tok-old"), &[]).expect("ok").key_label, "old");
        assert_eq!(run(&c, Some("tok-bad"), &[]), Err(VerifyFailure::BadToken));
        assert_eq!(run(&c, None, &[]), Err(VerifyFailure::MissingToken));
    }

    #[test]
    fn a_token_in_the_configured_query_parameter_is_accepted() {
        let c = SecretTokenCheck::new("f", tokens(), None, Some("token")).expect("valid");
        let q = |v: &str| {
            vec![
                ("other".to_string(), "x".to_string()),
                ("token".into(), v.into()),
            ]
        };
        assert_eq!(run(&c, None, &q("tok-new")).expect("ok").key_label, "new");
        assert_eq!(run(&c, None, &q("tok-ne")), Err(VerifyFailure::BadToken));
        assert_eq!(
            run(&c, Some("tok-new"), &[]),
            Err(VerifyFailure::MissingToken),
            "a header does not stand in for the query parameter"
        );
    }

    #[test]
    fn exactly_one_location_must_be_configured() {
        assert!(SecretTokenCheck::new("f", tokens(), Some("h"), Some("q")).is_err());
        assert!(SecretTokenCheck::new("f", tokens(), None, None).is_err());
    }
}
