//! What an answer of the provider's API means for the call that got it:
//! [`classify`] turns an HTTP status (with its `Retry-After`, if any) or a
//! transport failure into an [`Outcome`] the stage acts on.
//!
//! - 2xx: [`Outcome::Success`] (the body is then the mapper's concern:
//!   malformed JSON is a dead letter there, not a retry here).
//! - 429, 408, 5xx, timeouts and connection errors: [`Outcome::Retry`],
//!   within the retry budget of [`crate::backoff`]; they are also the
//!   failures the [`crate::breaker`] counts.
//! - 404: [`Outcome::NotFound`]: the property keeps its `reference_only`
//!   event and gets a dead letter with [`Outcome::reason`].
//! - 401 and 403: [`Outcome::Unauthorized`]: fatal for the whole stage
//!   (every other call would fail the same way); [`Unauthorized`] is the
//!   error it stops with, naming where the key was read, never the key.
//! - Any other status (other 4xx, 1xx, a 3xx the client did not follow):
//!   [`Outcome::Fatal`] for that call: a dead letter, no retry.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

/// What came back from one call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answer {
    /// The server answered with this status; `retry_after` is its
    /// `Retry-After` header already turned into a delay
    /// ([`crate::backoff::parse_retry_after`]).
    Status {
        /// The HTTP status code.
        status: u16,
        /// The delay the server asked for, if any.
        retry_after: Option<Duration>,
    },
    /// No answer within the call's timeout.
    Timeout,
    /// The connection failed (refused, reset, DNS, TLS) before an answer.
    Connection,
}

/// Why a call is worth retrying.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RetryReason {
    /// 429 Too Many Requests.
    RateLimited,
    /// A 5xx, or 408 Request Timeout (the server gave up waiting).
    Server(u16),
    /// No answer within the call's timeout.
    Timeout,
    /// The connection failed.
    Connection,
}

/// What the stage does with a call's answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// 2xx: map the body.
    Success,
    /// Try again later, within the retry budget.
    Retry {
        /// Why.
        reason: RetryReason,
        /// The server's `Retry-After`: never wait less than it.
        retry_after: Option<Duration>,
    },
    /// 404: the API does not know the property.
    NotFound,
    /// 401 or 403: the key is refused; the stage stops.
    Unauthorized {
        /// The status code.
        status: u16,
    },
    /// Any other status: this call failed for good.
    Fatal {
        /// The status code.
        status: u16,
    },
}

/// The meaning of one answer.
pub fn classify(answer: Answer) -> Outcome {
    match answer {
        Answer::Timeout => Outcome::Retry {
            reason: RetryReason::Timeout,
            retry_after: None,
        },
        Answer::Connection => Outcome::Retry {
            reason: RetryReason::Connection,
            retry_after: None,
        },
        Answer::Status {
            status,
            retry_after,
        } => match status {
            200..=299 => Outcome::Success,
            429 => Outcome::Retry {
                reason: RetryReason::RateLimited,
                retry_after,
            },
            408 | 500..=599 => Outcome::Retry {
                reason: RetryReason::Server(status),
                retry_after,
            },
            404 => Outcome::NotFound,
            401 | 403 => Outcome::Unauthorized { status },
            _ => Outcome::Fatal { status },
        },
    }
}

impl Outcome {
    /// Whether the circuit breaker counts this answer as the API failing
    /// (a 404 or a refused key is the API working).
    pub fn is_api_failure(&self) -> bool {
        matches!(self, Self::Retry { .. })
    }

    /// A short, stable name of the outcome: the `kind` label of the error
    /// metric and the reason of a dead letter.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::Success => "success",
            Self::Retry { reason, .. } => match reason {
                RetryReason::RateLimited => "rate_limited",
                RetryReason::Server(_) => "server_error",
                RetryReason::Timeout => "timeout",
                RetryReason::Connection => "connection",
            },
            Self::NotFound => "not_found",
            Self::Unauthorized { .. } => "unauthorized",
            Self::Fatal { .. } => "client_error",
        }
    }
}

/// Where the API key was read: what an error may name instead of the key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeySource {
    /// An environment variable, by name.
    Env(String),
    /// A file, by path.
    File(PathBuf),
}

impl fmt::Display for KeySource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Env(name) => write!(f, "the environment variable {name}"),
            Self::File(path) => write!(f, "the file {}", path.display()),
        }
    }
}

/// The error the stage stops with when the API refuses its key. It holds
/// where the key came from and the status, and cannot hold the key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unauthorized {
    /// 401 or 403.
    pub status: u16,
    /// Where the refused key was read.
    pub key_source: KeySource,
}

impl fmt::Display for Unauthorized {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "the Fluximmo API refused the API key read from {} (HTTP {}): enrichment stops; check or replace the key there",
            self.key_source, self.status
        )
    }
}

impl std::error::Error for Unauthorized {}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(status: u16) -> Outcome {
        classify(Answer::Status {
            status,
            retry_after: None,
        })
    }

    #[test]
    fn success_is_any_2xx() {
        for code in [200, 201, 204, 299] {
            assert_eq!(status(code), Outcome::Success);
        }
    }

    #[test]
    fn rate_limits_server_errors_timeouts_and_connections_retry() {
        let wait = Some(Duration::from_secs(7));
        assert_eq!(
            classify(Answer::Status {
                status: 429,
                retry_after: wait
            }),
            Outcome::Retry {
                reason: RetryReason::RateLimited,
                retry_after: wait
            }
        );
        for code in [408, 500, 502, 503, 504, 599] {
            assert_eq!(
                status(code),
                Outcome::Retry {
                    reason: RetryReason::Server(code),
                    retry_after: None
                }
            );
        }
        for answer in [Answer::Timeout, Answer::Connection] {
            let outcome = classify(answer);
            assert!(matches!(outcome, Outcome::Retry { .. }));
            assert!(outcome.is_api_failure());
        }
    }

    #[test]
    fn not_found_unauthorized_and_other_statuses() {
        assert_eq!(status(404), Outcome::NotFound);
        assert_eq!(status(401), Outcome::Unauthorized { status: 401 });
        assert_eq!(status(403), Outcome::Unauthorized { status: 403 });
        for code in [400, 405, 409, 422, 100, 301, 304, 600] {
            assert_eq!(status(code), Outcome::Fatal { status: code });
        }
        for code in [404, 401, 400] {
            assert!(!status(code).is_api_failure());
        }
    }

    #[test]
    fn reasons_are_stable_names() {
        assert_eq!(status(404).reason(), "not_found");
        assert_eq!(status(429).reason(), "rate_limited");
        assert_eq!(status(503).reason(), "server_error");
        assert_eq!(classify(Answer::Timeout).reason(), "timeout");
        assert_eq!(classify(Answer::Connection).reason(), "connection");
        assert_eq!(status(401).reason(), "unauthorized");
        assert_eq!(status(422).reason(), "client_error");
        assert_eq!(status(200).reason(), "success");
    }

    #[test]
    fn the_unauthorized_message_names_the_source_not_the_key() {
        let env = Unauthorized {
            status: 401,
            key_source: KeySource::Env("FLUXIMMO_API_KEY".into()),
        };
        assert_eq!(
            env.to_string(),
            "the Fluximmo API refused the API key read from the environment variable FLUXIMMO_API_KEY (HTTP 401): enrichment stops; check or replace the key there"
        );
        let file = Unauthorized {
            status: 403,
            key_source: KeySource::File("/run/secrets/fluximmo".into()),
        };
        assert!(
            file.to_string()
                .contains("the file /run/secrets/fluximmo (HTTP 403)")
        );
    }
}
