//! Ingest's one error type: every way a request can fail, mapped to its
//! status code and JSON body in one place.
//!
//! Messages name the problem precisely but never a secret, nor which secret
//! was close to matching.

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use crate::verify::VerifyFailure;

/// Why a webhook was not accepted.
#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    /// No source with this name is configured.
    #[error("unknown source `{0}`")]
    UnknownSource(String),
    /// The route exists but not for this method (the router adds `Allow`).
    #[error("method not allowed; the Allow header lists the methods of this path")]
    MethodNotAllowed,
    /// No route matches.
    #[error("no such endpoint")]
    NotFound,
    /// The content type is not JSON.
    #[error("content type must be application/json, got `{0}`")]
    UnsupportedMediaType(String),
    /// The body is larger than the limit.
    #[error("body exceeds the limit of {limit} bytes")]
    PayloadTooLarge {
        /// The limit, bytes.
        limit: usize,
    },
    /// The body could not be read.
    #[error("cannot read the request body: {0}")]
    BodyRead(String),
    /// The body is not JSON.
    #[error("body is not valid JSON: {0}")]
    NotJson(String),
    /// Verification failed.
    #[error("request verification failed: {0}")]
    Unauthorized(VerifyFailure),
    /// The sender's address is not allowed for this source.
    #[error("request refused: {0}")]
    Forbidden(VerifyFailure),
    /// The client did not send its body within the read deadline.
    #[error("the request body was not received within {secs} s")]
    RequestTimeout {
        /// The deadline, seconds.
        secs: u64,
    },
    /// Kafka did not acknowledge in time; the sender should retry.
    #[error("the event could not be stored right now; retry later")]
    Unavailable {
        /// Seconds to wait before retrying.
        retry_after_secs: u64,
    },
    /// A cap on requests in flight is reached; the sender should retry.
    #[error("too many requests are being handled right now; retry later")]
    Overloaded {
        /// Seconds to wait before retrying.
        retry_after_secs: u64,
    },
    /// The source's rate limit is exceeded; the sender should slow down.
    #[error("this source's rate limit is exceeded; retry after {retry_after_secs} s")]
    RateLimited {
        /// Seconds until a request will be admitted again.
        retry_after_secs: u64,
    },
}

impl From<VerifyFailure> for IngestError {
    /// A refused address is a 403 (no credential would help); every other
    /// failure is a 401.
    fn from(failure: VerifyFailure) -> Self {
        match failure {
            VerifyFailure::AddressNotAllowed => Self::Forbidden(failure),
            _ => Self::Unauthorized(failure),
        }
    }
}

#[derive(Serialize)]
struct ErrorBody<'a> {
    status: &'static str,
    error: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    reason: Option<&'static str>,
    message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    request_id: Option<&'a str>,
}

impl IngestError {
    /// Every value [`IngestError::code`] can return, in declaration order.
    /// `ingest/openapi.json`'s `ErrorCode` enum is checked against it, and a
    /// test checks that each variant's code is listed here.
    pub const ALL_CODES: &'static [&'static str] = &[
        "unknown_source",
        "not_found",
        "method_not_allowed",
        "unsupported_media_type",
        "payload_too_large",
        "body_read_error",
        "invalid_json",
        "unauthorized",
        "forbidden",
        "request_timeout",
        "unavailable",
        "overloaded",
        "rate_limited",
    ];

    /// One value of each variant (and of each refusal reason), for tests
    /// that must cover them all. [`IngestError::variant_index`] has no
    /// wildcard arm, so a new variant does not compile until it is given an
    /// index, and `every_variant_is_sampled_and_its_code_listed` fails until
    /// it is sampled here.
    #[cfg(test)]
    pub(crate) fn every_variant() -> Vec<Self> {
        let mut all = vec![
            Self::UnknownSource("nowhere".into()),
            Self::NotFound,
            Self::MethodNotAllowed,
            Self::UnsupportedMediaType("text/plain".into()),
            Self::PayloadTooLarge { limit: 1024 },
            Self::BodyRead("connection reset".into()),
            Self::NotJson("expected value".into()),
        ];
        all.extend(VerifyFailure::every_variant().into_iter().map(Self::from));
        all.extend([
            Self::RequestTimeout { secs: 10 },
            Self::Unavailable {
                retry_after_secs: 5,
            },
            Self::Overloaded {
                retry_after_secs: 5,
            },
            Self::RateLimited {
                retry_after_secs: 2,
            },
        ]);
        all
    }

    /// The variant's position (see [`IngestError::every_variant`]).
    #[cfg(test)]
    pub(crate) fn variant_index(&self) -> usize {
        match self {
            Self::UnknownSource(_) => 0,
            Self::NotFound => 1,
            Self::MethodNotAllowed => 2,
            Self::UnsupportedMediaType(_) => 3,
            Self::PayloadTooLarge { .. } => 4,
            Self::BodyRead(_) => 5,
            Self::NotJson(_) => 6,
            Self::Unauthorized(_) => 7,
            Self::Forbidden(_) => 8,
            Self::RequestTimeout { .. } => 9,
            Self::Unavailable { .. } => 10,
            Self::Overloaded { .. } => 11,
            Self::RateLimited { .. } => 12,
        }
    }

    /// How many variants there are (one more than the largest index).
    #[cfg(test)]
    pub(crate) const VARIANTS: usize = 13;

    /// The HTTP status of this error.
    pub fn status(&self) -> StatusCode {
        match self {
            Self::UnknownSource(_) | Self::NotFound => StatusCode::NOT_FOUND,
            Self::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            Self::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::PayloadTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            Self::BodyRead(_) | Self::NotJson(_) => StatusCode::BAD_REQUEST,
            Self::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            Self::Forbidden(_) => StatusCode::FORBIDDEN,
            Self::RequestTimeout { .. } => StatusCode::REQUEST_TIMEOUT,
            Self::Unavailable { .. } | Self::Overloaded { .. } => StatusCode::SERVICE_UNAVAILABLE,
            Self::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
        }
    }

    /// Short machine-readable error code.
    pub fn code(&self) -> &'static str {
        match self {
            Self::UnknownSource(_) => "unknown_source",
            Self::NotFound => "not_found",
            Self::MethodNotAllowed => "method_not_allowed",
            Self::UnsupportedMediaType(_) => "unsupported_media_type",
            Self::PayloadTooLarge { .. } => "payload_too_large",
            Self::BodyRead(_) => "body_read_error",
            Self::NotJson(_) => "invalid_json",
            Self::Unauthorized(_) => "unauthorized",
            Self::Forbidden(_) => "forbidden",
            Self::RequestTimeout { .. } => "request_timeout",
            Self::Unavailable { .. } => "unavailable",
            Self::Overloaded { .. } => "overloaded",
            Self::RateLimited { .. } => "rate_limited",
        }
    }
}

impl IntoResponse for IngestError {
    fn into_response(self) -> Response {
        let body = ErrorBody {
            status: "error",
            error: self.code(),
            reason: match &self {
                Self::Unauthorized(failure) | Self::Forbidden(failure) => Some(failure.reason()),
                _ => None,
            },
            message: self.to_string(),
            request_id: None,
        };
        let mut response = (self.status(), Json(body)).into_response();
        // No `Allow` on a 405 here: the router adds one naming the methods
        // of the matched path (`POST` for a webhook, `GET,HEAD` for the
        // others); a fixed `POST` would be wrong for every GET route.
        if let Self::Unavailable { retry_after_secs }
        | Self::Overloaded { retry_after_secs }
        | Self::RateLimited { retry_after_secs } = &self
            && let Ok(v) = HeaderValue::from_str(&retry_after_secs.to_string())
        {
            let _ = response.headers_mut().insert(header::RETRY_AFTER, v);
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_variant_is_sampled_and_its_code_listed() {
        let samples = IngestError::every_variant();
        let mut indices: Vec<usize> = samples.iter().map(IngestError::variant_index).collect();
        indices.sort_unstable();
        indices.dedup();
        assert_eq!(
            indices,
            (0..IngestError::VARIANTS).collect::<Vec<_>>(),
            "every_variant() holds a value of each variant"
        );
        let mut codes: Vec<&str> = samples.iter().map(IngestError::code).collect();
        codes.dedup();
        assert_eq!(
            codes,
            IngestError::ALL_CODES,
            "ALL_CODES lists each variant's code, once, in order"
        );
    }
}
