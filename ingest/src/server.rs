//! The public HTTP surface: the webhook route and its handler.
//!
//! The handler's order is deliberate, cheapest refusal first, so that what
//! a stranger's request costs is bounded by our configuration: find the
//! source (404); check the content type (415) and the declared size (413),
//! permanent refusals that must not turn into a 503 under load; admit the
//! request within the in-flight caps (503, at once, nothing read); run
//! every check that needs only the headers, the query or the peer address
//! (401 / 403, before the body is read); read the body with the limit
//! enforced while streaming (413, or 408 past the read deadline); verify
//! the signatures over the raw bytes (401; off the async workers for large
//! bodies); parse it as JSON (400); only then take a token from the
//! source's rate limit (429: strangers cannot spend a provider's rate),
//! publish, and answer 200 only after Kafka's acknowledgement, or 503 once
//! the acknowledgement bound has passed. A body Kafka refuses for its size
//! is a 413, never a 503: retrying cannot help.
//!
//! The operator endpoints are in [`crate::operator`], on their own listener.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::Json;
use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::rejection::PathRejection;
use axum::extract::{ConnectInfo, Path, Query, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::routing::{get, post};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::FutureProducer;
use serde::Serialize;
use serde::de::IgnoredAny;
use tokio::sync::Semaphore;

use crate::admission::{self, Admission, Refusal};
use crate::error::IngestError;
use crate::handover::{Handover, HandoverError, OwnedRecord};
use crate::metrics::Metrics;
use crate::readiness::ReadinessCell;
use crate::record::{self, Arrival};
use crate::settings::{IngestSettings, SourceSettings};
use crate::verify::{HeadVerdicts, RequestView, SourceVerifier, Verdict, VerifyFailure};

/// Bodies up to this size are verified on the async worker that read them;
/// larger ones on a blocking thread, a few at a time, so that hashing
/// megabytes never holds up the runtime that answers everyone else.
const INLINE_VERIFY_MAX_BYTES: usize = 64 * 1024;

/// A configured source, ready to verify requests.
#[derive(Debug)]
pub struct Source {
    /// Its settings.
    pub settings: SourceSettings,
    /// Its checks.
    pub verifier: Arc<SourceVerifier>,
    /// Its large bodies verified at once, off the async workers: one
    /// source's flood of large bodies waits for its own permits only.
    pub verify_permits: Arc<Semaphore>,
}

/// Shared state of the server.
pub struct AppState {
    /// Sources by name.
    pub sources: HashMap<String, Source>,
    /// The Kafka producer.
    pub producer: FutureProducer,
    /// Where handlers queue their records for the producer.
    pub handover: Handover,
    /// Full name of `webhooks.raw`.
    pub raw_topic: String,
    /// Body limit, bytes.
    pub body_limit: usize,
    /// Bound on the wait for Kafka's acknowledgement.
    pub ack_timeout: Duration,
    /// Bound on reading the request body.
    pub body_read_timeout: Duration,
    /// Prometheus metrics.
    pub metrics: Metrics,
    /// `Retry-After` on a 503, seconds.
    pub retry_after_secs: u64,
    /// How records carry ingest's metadata.
    pub raw_metadata: crate::settings::RawMetadata,
    /// In-flight caps and rate limits.
    pub admission: Admission,
    /// The last readiness check (answered by `/readyz`).
    pub readiness: ReadinessCell,
}

impl AppState {
    /// Builds the state, refusing any source whose checks are not usable.
    pub fn new(
        settings: &IngestSettings,
        producer: FutureProducer,
        handover: Handover,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> anyhow::Result<Self> {
        admission::check_settings(settings)?;
        if admission::caps_overcommit(settings) {
            tracing::warn!(
                max_in_flight = settings.max_in_flight,
                "the sources' in-flight caps add up to more than max_in_flight: an attack on \
                 some sources can take the slots of the others"
            );
        }
        let cores = std::thread::available_parallelism().map_or(1, std::num::NonZero::get);
        let mut sources = HashMap::new();
        for source in &settings.sources {
            anyhow::ensure!(
                !source.name.is_empty()
                    && source
                        .name
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'),
                "source name `{}` must be non-empty and use only letters, digits, `-` and `_`",
                source.name
            );
            let verifier = Arc::new(SourceVerifier::build(source, env)?);
            let previous = sources.insert(
                source.name.clone(),
                Source {
                    settings: source.clone(),
                    verifier,
                    verify_permits: Arc::new(Semaphore::new(cores)),
                },
            );
            anyhow::ensure!(
                previous.is_none(),
                "source `{}` is configured twice",
                source.name
            );
        }
        Ok(Self {
            sources,
            producer,
            handover,
            raw_topic: settings.topics.raw(),
            body_limit: settings.body_limit_bytes,
            ack_timeout: Duration::from_millis(settings.ack_timeout_ms),
            body_read_timeout: Duration::from_millis(settings.body_read_timeout_ms),
            metrics: Metrics::default(),
            retry_after_secs: settings.retry_after_secs,
            raw_metadata: settings.raw_metadata,
            admission: Admission::new(settings, Instant::now()),
            readiness: ReadinessCell::default(),
        })
    }
}

/// The 200 body.
#[derive(Debug, Serialize)]
pub struct Accepted {
    status: &'static str,
    id: String,
}

/// The public router: the webhook route, and JSON fallbacks for 404 and
/// 405. The operator endpoints are not on it ([`crate::operator`]).
pub fn router(state: Arc<AppState>) -> Router {
    Router::new()
        .route("/webhooks/{source}", post(receive))
        .route("/openapi.json", get(crate::openapi::document))
        .fallback(|| async { IngestError::NotFound })
        .method_not_allowed_fallback(|| async { IngestError::MethodNotAllowed })
        .with_state(state)
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

fn is_json_content_type(headers: &HeaderMap) -> Result<String, IngestError> {
    let value = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let essence = value
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    if essence == "application/json"
        || (essence.starts_with("application/") && essence.ends_with("+json"))
    {
        Ok(value)
    } else {
        Err(IngestError::UnsupportedMediaType(value))
    }
}

async fn read_limited(body: Body, limit: usize) -> Result<axum::body::Bytes, IngestError> {
    // `to_bytes` stops reading as soon as the limit is crossed, so an
    // oversize body is never buffered whole.
    axum::body::to_bytes(body, limit).await.map_err(|e| {
        let too_large = std::error::Error::source(&e)
            .is_some_and(|s| s.is::<http_body_util::LengthLimitError>());
        if too_large {
            IngestError::PayloadTooLarge { limit }
        } else {
            IngestError::BodyRead(e.to_string())
        }
    })
}

async fn receive(
    State(state): State<Arc<AppState>>,
    source_name: Result<Path<String>, PathRejection>,
    request: Request,
) -> Result<Json<Accepted>, IngestError> {
    // A segment that is not UTF-8 once decoded names no source: a JSON 404
    // like any other unknown source, not axum's text/plain 400.
    let Ok(Path(source_name)) = source_name else {
        state
            .metrics
            .request("unknown", StatusCode::NOT_FOUND.as_u16());
        return Err(IngestError::UnknownSource("(not UTF-8)".into()));
    };
    let _in_flight = state.metrics.in_flight();
    let result = handle(&state, &source_name, request).await;
    let status = match &result {
        Ok(_) => StatusCode::OK,
        Err(e) => e.status(),
    };
    let label = if state.sources.contains_key(&source_name) {
        source_name.as_str()
    } else {
        "unknown"
    };
    state.metrics.request(label, status.as_u16());
    result
}

/// The answer to a request the admission refused.
fn shed(state: &AppState, refusal: Refusal) -> IngestError {
    match refusal {
        Refusal::Overloaded => IngestError::Overloaded {
            retry_after_secs: state.retry_after_secs,
        },
        Refusal::RateLimited(wait) => IngestError::RateLimited {
            retry_after_secs: admission::retry_after_secs(wait),
        },
    }
}

/// Logs and counts a failed check, and turns it into its answer.
fn refused(state: &AppState, source_name: &str, failure: VerifyFailure) -> IngestError {
    // Counted in metrics; one log line per refusal would let a flood fill
    // the logs, so it is a debug line.
    tracing::debug!(source = %source_name, reason = failure.reason(), "verification failed");
    state
        .metrics
        .verification_failure(source_name, failure.reason());
    IngestError::from(failure)
}

/// What the body phase found wrong.
enum BodyRefusal {
    Verify(VerifyFailure),
    NotJson(String),
}

/// The body phase: the signatures over the raw bytes, then the JSON syntax.
fn check_body(
    verifier: &SourceVerifier,
    view: &RequestView<'_>,
    head: HeadVerdicts,
) -> Result<Verdict, BodyRefusal> {
    let verdict = verifier
        .verify_body(view, head)
        .map_err(BodyRefusal::Verify)?;
    let _: IgnoredAny =
        serde_json::from_slice(view.body).map_err(|e| BodyRefusal::NotJson(e.to_string()))?;
    Ok(verdict)
}

/// Runs [`check_body`] inline for a small body, or on a blocking thread
/// (a few at a time) for a large one.
/// `body` is the bytes of `view.body`, shared with the blocking thread.
async fn check_body_off_runtime(
    source: &Source,
    view: &RequestView<'_>,
    body: &Bytes,
    head: HeadVerdicts,
) -> Result<Verdict, BodyRefusal> {
    if body.len() <= INLINE_VERIFY_MAX_BYTES {
        return check_body(&source.verifier, view, head);
    }
    let unavailable = || BodyRefusal::NotJson("verification could not run".into());
    let _permit = Arc::clone(&source.verify_permits)
        .acquire_owned()
        .await
        .map_err(|_| unavailable())?;
    let (verifier, headers, body, query) = (
        Arc::clone(&source.verifier),
        view.headers.clone(),
        body.clone(),
        view.query.to_vec(),
    );
    let (now_ms, peer) = (view.now_ms, view.peer);
    tokio::task::spawn_blocking(move || {
        let view = RequestView {
            headers: &headers,
            body: &body,
            now_ms,
            peer,
            query: &query,
        };
        check_body(&verifier, &view, head)
    })
    .await
    .map_err(|_| unavailable())?
}

/// Whether Kafka refused a record for its size (locally, against the
/// producer's `message.max.bytes`, or at the broker): permanent, a 413.
fn is_too_large(error: &HandoverError) -> bool {
    matches!(error, HandoverError::Kafka(e) if common::produce::is_size_error(e))
}

async fn handle(
    state: &AppState,
    source_name: &str,
    request: Request,
) -> Result<Json<Accepted>, IngestError> {
    let received_at_ms = now_ms();
    let source = state
        .sources
        .get(source_name)
        .ok_or_else(|| IngestError::UnknownSource(source_name.to_string()))?;
    // Permanent refusals first: a body over the limit is a 413 and a wrong
    // content type a 415 whatever the load, never a 503 to retry.
    let (parts, body) = request.into_parts();
    let content_type = is_json_content_type(&parts.headers)?;
    let declared = parts
        .headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|n| n > state.body_limit) {
        return Err(IngestError::PayloadTooLarge {
            limit: state.body_limit,
        });
    }
    let _admitted = state
        .admission
        .admit(source_name)
        .map_err(|refusal| shed(state, refusal))?;
    let peer = parts
        .extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ConnectInfo(addr)| addr.ip());
    let query = Query::<Vec<(String, String)>>::try_from_uri(&parts.uri)
        .map(|Query(q)| q)
        .unwrap_or_default();
    let head = source
        .verifier
        .verify_head(&RequestView {
            headers: &parts.headers,
            body: &[],
            now_ms: received_at_ms,
            peer,
            query: &query,
        })
        .map_err(|failure| refused(state, source_name, failure))?;
    let body = tokio::time::timeout(
        state.body_read_timeout,
        read_limited(body, state.body_limit),
    )
    .await
    .map_err(|_| IngestError::RequestTimeout {
        secs: state.body_read_timeout.as_secs(),
    })??;
    let view = RequestView {
        headers: &parts.headers,
        body: &body,
        now_ms: received_at_ms,
        peer,
        query: &query,
    };
    let verdict = check_body_off_runtime(source, &view, &body, head)
        .await
        .map_err(|refusal| match refusal {
            BodyRefusal::Verify(failure) => refused(state, source_name, failure),
            BodyRefusal::NotJson(message) => IngestError::NotJson(message),
        })?;
    // Only a verified request spends the source's rate.
    state
        .admission
        .take_token(source_name, Instant::now())
        .map_err(|refusal| shed(state, refusal))?;

    let request_id = uuid::Uuid::new_v4().to_string();
    // The root of the webhook's trace. A sender's valid `traceparent` is
    // kept as a link, or, for a source trusted for tracing, made the
    // parent; its context travels on in the record's `traceparent` header.
    let span = tracing::info_span!("ingest webhook", source = %source_name, otel.kind = "server");
    let sender_trace = parts
        .headers
        .get("traceparent")
        .and_then(|v| v.to_str().ok());
    if source.settings.trust_traceparent {
        common::trace_context::continue_trace(&span, sender_trace);
    } else {
        common::trace_context::link_trace(&span, sender_trace);
    }
    let traceparent =
        common::trace_context::traceparent_of(&span).unwrap_or_else(common::traceparent::new_root);
    let arrival = Arrival {
        source: source_name,
        provider: source.settings.provider,
        content_type: &content_type,
        received_at_ms,
        request_id: &request_id,
        verdict: &verdict,
        traceparent: &traceparent,
    };
    let key = record::key(&arrival);
    let headers = record::kafka_headers(record::headers(&arrival), state.raw_metadata)
        .iter()
        .fold(OwnedHeaders::new(), |h, (k, v)| {
            h.insert(Header {
                key: k,
                value: Some(v.as_bytes()),
            })
        });
    let owned = OwnedRecord {
        key: key.map(String::into_bytes),
        payload: body,
        headers,
    };
    let unavailable = IngestError::Unavailable {
        retry_after_secs: state.retry_after_secs,
    };
    let started = Instant::now();
    let outcome = tokio::time::timeout(state.ack_timeout, state.handover.publish(owned)).await;
    state.metrics.produce(
        match &outcome {
            Ok(Ok(_)) => "acked",
            Ok(Err(_)) => "refused",
            Err(_) => "timeout",
        },
        started.elapsed(),
    );
    match outcome {
        Ok(Ok(delivered)) => {
            tracing::debug!(
                source = %source_name,
                request_id,
                partition = delivered.partition,
                offset = delivered.offset,
                "stored"
            );
            Ok(Json(Accepted {
                status: "accepted",
                id: request_id,
            }))
        }
        Ok(Err(e)) if is_too_large(&e) => {
            tracing::warn!(source = %source_name, error = %e, "Kafka refused the record for its size; answered 413");
            Err(IngestError::PayloadTooLarge {
                limit: state.body_limit,
            })
        }
        Ok(Err(e)) => {
            tracing::warn!(source = %source_name, error = %e, "record not stored");
            Err(unavailable)
        }
        Err(_elapsed) => {
            tracing::warn!(
                source = %source_name,
                timeout_ms = state.ack_timeout.as_millis(),
                "Kafka did not acknowledge in time; answered 503 (the record may still land)"
            );
            Err(unavailable)
        }
    }
}
