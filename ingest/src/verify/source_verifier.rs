//! [`SourceVerifier`]: all the checks of one source, built from its settings
//! at start, run on each request in two phases (the head, then the body).

use super::{
    Built, Check, CheckConfigError, Head, RequestView, Verdict, VerifyFailure, immoteur_headers,
    source_address,
};
use crate::settings::SourceSettings;

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

/// All the checks of one source.
#[derive(Debug)]
pub struct SourceVerifier {
    checks: Vec<Box<dyn Check>>,
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
        let mut address: Vec<Box<dyn Check>> = Vec::new();
        let mut checks: Vec<Box<dyn Check>> = Vec::with_capacity(source.checks.len() + 1);
        for check in &source.checks {
            match check.scheme().build(source, env)? {
                Built::Address(check) => address.push(check),
                Built::Request(check) => checks.push(check),
            }
        }
        let proves_something = source
            .checks
            .iter()
            .any(|check| check.scheme().proves_sender());
        if !proves_something && !source.unverified {
            return Err(CheckConfigError::NoCredential(source.name.clone()));
        }
        if let Some(implied) = immoteur_headers::implied_check(source) {
            checks.push(Box::new(implied));
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::verify::hmac_timestamp;
    use axum::http::HeaderMap;

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
}
