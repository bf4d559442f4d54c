//! Immoteur's delivery headers: `X-Immoteur-Event-Id`,
//! `X-Immoteur-Delivery-Id` and `X-Immoteur-Service-Id` must be UUIDs and
//! `X-Immoteur-Timestamp` Unix seconds within the tolerance. Not a
//! credential by itself (the bearer token is); it bounds replays and yields
//! the event id (record key, `event-id`) and the delivery id (`delivery-id`).

use serde::Deserialize;

use super::fail_closed::{check_tolerance, default_tolerance_secs};
use super::wire::{check_skew, header_text, tolerance_ms};
use super::{
    Built, Check, CheckConfigError, CheckSettings, Env, Head, RequestView, Scheme, Verdict,
    VerifyFailure,
};
use crate::send::{SignRequest, Signed};
use crate::settings::{ProviderKind, SourceSettings};

/// Scheme name of this check (reported only if it is a source's only check).
pub const SCHEME: &str = "immoteur-headers";
/// Tolerance when the check is added by default, seconds.
pub const DEFAULT_TOLERANCE_SECS: u64 = 300;

/// Header carrying the event id (the same for every delivery of one event).
pub const EVENT_ID: &str = "x-immoteur-event-id";
/// Header carrying the delivery id (new for every attempt).
pub const DELIVERY_ID: &str = "x-immoteur-delivery-id";
/// Header carrying the emitting service's id.
pub const SERVICE_ID: &str = "x-immoteur-service-id";
/// Header carrying the attempt's Unix time, seconds.
pub const TIMESTAMP: &str = "x-immoteur-timestamp";

/// An `immoteur-headers` check as configured: Immoteur's delivery headers,
/// event, delivery and service ids (UUIDs) and a Unix-seconds timestamp
/// within the tolerance. Added by default to every `immoteur` source;
/// configure it only to change the tolerance.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ImmoteurHeadersSettings {
    /// Allowed distance between `X-Immoteur-Timestamp` and now, seconds.
    #[serde(default = "default_tolerance_secs")]
    pub tolerance_secs: u64,
}

impl Scheme for ImmoteurHeadersSettings {
    /// Refuses a long tolerance.
    fn build(&self, source: &SourceSettings, _env: Env<'_>) -> Result<Built, CheckConfigError> {
        check_tolerance(source, SCHEME, self.tolerance_secs)?;
        Ok(Built::Request(Box::new(ImmoteurHeadersCheck::new(
            self.tolerance_secs,
        ))))
    }

    /// Anyone can send well-formed headers.
    fn proves_sender(&self) -> bool {
        false
    }

    /// Nothing here: Immoteur's delivery headers are added once per
    /// request, after every other check's ([`sign_delivery`]), whether this
    /// check is configured or implied.
    fn sign(&self, _request: &SignRequest<'_>, _out: &mut Signed) -> Result<(), CheckConfigError> {
        Ok(())
    }
}

/// Whether `source` configures an `immoteur-headers` check itself.
fn configured(source: &SourceSettings) -> bool {
    source
        .checks
        .iter()
        .any(|check| matches!(check, CheckSettings::ImmoteurHeaders(_)))
}

/// The check an `immoteur` source gets without configuring it: Immoteur's
/// headers within [`DEFAULT_TOLERANCE_SECS`], run after the configured
/// checks. `None` for another provider, or when the source configures the
/// check itself.
pub(crate) fn implied_check(source: &SourceSettings) -> Option<ImmoteurHeadersCheck> {
    (source.provider == ProviderKind::Immoteur && !configured(source))
        .then(|| ImmoteurHeadersCheck::new(DEFAULT_TOLERANCE_SECS))
}

/// Adds Immoteur's four headers (new UUIDs, the timestamp `now_secs`) to a
/// signed request, once, after every check's, for an `immoteur` source or
/// one with an `immoteur-headers` check.
pub(crate) fn sign_delivery(source: &SourceSettings, now_secs: i64, out: &mut Signed) {
    if source.provider != ProviderKind::Immoteur && !configured(source) {
        return;
    }
    let uuid = || uuid::Uuid::new_v4().to_string();
    out.push_header(EVENT_ID, uuid());
    out.push_header(DELIVERY_ID, uuid());
    out.push_header(SERVICE_ID, uuid());
    out.push_header(TIMESTAMP, now_secs.to_string());
}

/// The configured check.
#[derive(Debug)]
pub struct ImmoteurHeadersCheck {
    tolerance_ms: i64,
}

impl ImmoteurHeadersCheck {
    /// A check with a tolerance in seconds.
    pub fn new(tolerance_secs: u64) -> Self {
        Self {
            tolerance_ms: tolerance_ms(tolerance_secs),
        }
    }
}

fn uuid_header<'a>(request: &RequestView<'a>, name: &str) -> Result<&'a str, VerifyFailure> {
    let value = header_text(request.headers, name)
        .ok_or_else(|| VerifyFailure::MissingHeader(name.to_string()))?;
    uuid::Uuid::try_parse(value)
        .map(|_| value)
        .map_err(|_| VerifyFailure::MalformedHeader(name.to_string()))
}

impl Check for ImmoteurHeadersCheck {
    fn verify_head(&self, request: &RequestView<'_>) -> Result<Head, VerifyFailure> {
        self.verify(request).map(Head::Verified)
    }

    fn verify(&self, request: &RequestView<'_>) -> Result<Verdict, VerifyFailure> {
        let event_id = uuid_header(request, EVENT_ID)?;
        let delivery_id = uuid_header(request, DELIVERY_ID)?;
        let _service_id = uuid_header(request, SERVICE_ID)?;
        let timestamp = header_text(request.headers, TIMESTAMP)
            .ok_or_else(|| VerifyFailure::MissingHeader(TIMESTAMP.to_string()))?;
        let sent_ms = timestamp
            .parse::<i64>()
            .ok()
            .filter(|s| *s > 0)
            .and_then(|s| s.checked_mul(1000))
            .ok_or(VerifyFailure::MalformedTimestamp)?;
        let skew_ms = check_skew(sent_ms, request.now_ms, self.tolerance_ms)?;
        Ok(Verdict {
            skew_ms: Some(skew_ms),
            event_id: Some(event_id.to_string()),
            delivery_id: Some(delivery_id.to_string()),
            ..Verdict::new(SCHEME, "")
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::{HeaderMap, HeaderValue};

    const EVENT: &str = "6f1c2b9e-5d1a-4c3e-9f0a-2b7d8e9f1a2b";
    const DELIVERY: &str = "0b4e8f2a-7c6d-4e5f-8a9b-1c2d3e4f5a6b";
    const SERVICE: &str = "9a8b7c6d-5e4f-4a3b-8c2d-1e0f9a8b7c6d";
    const NOW_MS: i64 = 1_700_000_000_000;

    fn headers(skip: Option<&str>, replace: Option<(&str, &str)>) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (name, value) in [
            (EVENT_ID, EVENT),
            (DELIVERY_ID, DELIVERY),
            (SERVICE_ID, SERVICE),
            (TIMESTAMP, "1700000002"),
        ] {
            if skip == Some(name) {
                continue;
            }
            let value = match replace {
                Some((n, v)) if n == name => v,
                _ => value,
            };
            let _ = h.insert(name, HeaderValue::from_str(value).expect("ascii"));
        }
        h
    }

    fn run(h: &HeaderMap) -> Result<Verdict, VerifyFailure> {
        ImmoteurHeadersCheck::new(300).verify(&RequestView {
            headers: h,
            body: b"{}",
            now_ms: NOW_MS,
            peer: None,
            query: &[],
        })
    }

    #[test]
    fn valid_headers_yield_the_event_and_delivery_ids() {
        let v = run(&headers(None, None)).expect("valid");
        assert_eq!(v.event_id.as_deref(), Some(EVENT));
        assert_eq!(v.delivery_id.as_deref(), Some(DELIVERY));
        assert_eq!(v.skew_ms, Some(2000));
    }

    #[test]
    fn each_header_is_required() {
        for name in [EVENT_ID, DELIVERY_ID, SERVICE_ID, TIMESTAMP] {
            assert_eq!(
                run(&headers(Some(name), None)),
                Err(VerifyFailure::MissingHeader(name.into())),
                "{name}"
            );
        }
    }

    #[test]
    fn ids_must_be_uuids_and_the_timestamp_fresh() {
        assert_eq!(
            run(&headers(None, Some((DELIVERY_ID, "delivery-1")))),
            Err(VerifyFailure::MalformedHeader(DELIVERY_ID.into()))
        );
        assert_eq!(
            run(&headers(None, Some((TIMESTAMP, "soon")))),
            Err(VerifyFailure::MalformedTimestamp)
        );
        assert!(matches!(
            run(&headers(None, Some((TIMESTAMP, "1699999000")))),
            Err(VerifyFailure::StaleTimestamp { .. })
        ));
    }
}
