//! The HTTP surface: routes, the webhook handler, health endpoints.
//!
//! The handler's order is deliberate: find the source (404), check the
//! content type (415) and size (413) before reading, read the body with the
//! limit enforced while streaming, verify on the raw bytes (401), only then
//! parse it as JSON (400), publish, and answer 200 only after Kafka's
//! acknowledgement, or 503 once the acknowledgement bound has passed.
//! A client that does not send its body within the read deadline gets a 408.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::Json;
use axum::Router;
use axum::body::Body;
use axum::extract::{ConnectInfo, Path, Query, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, Producer};
use serde::Serialize;
use serde::de::IgnoredAny;

use crate::error::IngestError;
use crate::handover::{Handover, OwnedRecord};
use crate::metrics::Metrics;
use crate::record::{self, Arrival};
use crate::settings::{IngestSettings, SourceSettings};
use crate::verify::{RequestView, SourceVerifier};

/// A configured source, ready to verify requests.
#[derive(Debug)]
pub struct Source {
    /// Its settings.
    pub settings: SourceSettings,
    /// Its checks.
    pub verifier: SourceVerifier,
}

/// Shared state of the server.
pub struct AppState {
    /// Sources by name.
    pub sources: HashMap<String, Source>,
    /// The Kafka producer (its metadata answers readiness).
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
}

impl AppState {
    /// Builds the state, refusing any source whose checks are not usable.
    pub fn new(
        settings: &IngestSettings,
        producer: FutureProducer,
        handover: Handover,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> anyhow::Result<Self> {
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
            let verifier = SourceVerifier::build(source, env)?;
            let previous = sources.insert(
                source.name.clone(),
                Source {
                    settings: source.clone(),
                    verifier,
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
        })
    }
}

/// The 200 body.
#[derive(Debug, Serialize)]
pub struct Accepted {
    status: &'static str,
    id: String,
}

/// The router with every route and JSON fallbacks for 404 and 405.
pub fn router(state: Arc<AppState>) -> Router {
    Router::new()
        .route("/webhooks/{source}", post(receive))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
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
    Path(source_name): Path<String>,
    request: Request,
) -> Result<Json<Accepted>, IngestError> {
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
    let body = tokio::time::timeout(
        state.body_read_timeout,
        read_limited(body, state.body_limit),
    )
    .await
    .map_err(|_| IngestError::RequestTimeout {
        secs: state.body_read_timeout.as_secs(),
    })??;
    let peer = parts
        .extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ConnectInfo(addr)| addr.ip());
    let query = Query::<Vec<(String, String)>>::try_from_uri(&parts.uri)
        .map(|Query(q)| q)
        .unwrap_or_default();
    let verdict = source
        .verifier
        .verify(&RequestView {
            headers: &parts.headers,
            body: &body,
            now_ms: received_at_ms,
            peer,
            query: &query,
        })
        .map_err(|failure| {
            tracing::info!(source = %source_name, reason = failure.reason(), "verification failed");
            state
                .metrics
                .verification_failure(source_name, failure.reason());
            IngestError::from(failure)
        })?;
    let _: IgnoredAny =
        serde_json::from_slice(&body).map_err(|e| IngestError::NotJson(e.to_string()))?;

    let request_id = uuid::Uuid::new_v4().to_string();
    // The root of the webhook's trace (or a child of the sender's, when it
    // sent a valid `traceparent`); it lasts until Kafka's acknowledgement,
    // and its context travels on in the record's `traceparent` header.
    let span = tracing::info_span!("ingest webhook", source = %source_name, otel.kind = "server");
    common::trace_context::continue_trace(
        &span,
        parts
            .headers
            .get("traceparent")
            .and_then(|v| v.to_str().ok()),
    );
    let traceparent =
        common::trace_context::traceparent_of(&span).unwrap_or_else(common::traceparent::new_root);
    let arrival = Arrival {
        source: source_name,
        provider: source.settings.provider.as_str(),
        content_type: &content_type,
        received_at_ms,
        request_id: &request_id,
        verdict: &verdict,
        traceparent: &traceparent,
    };
    let key = record::key(&arrival);
    let headers = record::headers(&arrival)
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

async fn metrics(State(state): State<Arc<AppState>>) -> impl IntoResponse {
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        state.metrics.render(),
    )
}

async fn healthz() -> impl IntoResponse {
    Json(serde_json::json!({"status": "ok"}))
}

async fn readyz(State(state): State<Arc<AppState>>) -> impl IntoResponse {
    let producer = state.producer.clone();
    let topic = state.raw_topic.clone();
    let check = tokio::task::spawn_blocking(move || {
        producer
            .client()
            .fetch_metadata(Some(&topic), Duration::from_secs(1))
            .map(|m| {
                m.topics()
                    .iter()
                    .any(|t| t.name() == topic && !t.partitions().is_empty())
            })
    })
    .await;
    match check {
        Ok(Ok(true)) => (StatusCode::OK, Json(serde_json::json!({"status": "ready"}))),
        Ok(Ok(false)) => (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(serde_json::json!({"status": "not_ready", "reason": "topic missing"})),
        ),
        _ => (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(serde_json::json!({"status": "not_ready", "reason": "Kafka unreachable"})),
        ),
    }
}
