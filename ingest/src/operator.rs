//! The operator endpoints, served on `admin_listen`, apart from the public
//! webhook listener: `GET /healthz` (the process answers), `GET /readyz`
//! (the last background readiness check, see [`crate::readiness`]) and
//! `GET /metrics` (Prometheus text). None of them is reachable by the
//! strangers who can reach the webhook route, and none costs a Kafka round
//! trip per request.

use std::sync::Arc;

use axum::Json;
use axum::Router;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;

use crate::error::IngestError;
use crate::server::AppState;

/// The operator router.
pub fn router(state: Arc<AppState>) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .fallback(|| async { IngestError::NotFound })
        .with_state(state)
}

async fn metrics(
    axum::extract::State(state): axum::extract::State<Arc<AppState>>,
) -> impl IntoResponse {
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

async fn readyz(
    axum::extract::State(state): axum::extract::State<Arc<AppState>>,
) -> impl IntoResponse {
    match state.readiness.get().reason() {
        None => (StatusCode::OK, Json(serde_json::json!({"status": "ready"}))),
        Some(reason) => (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(serde_json::json!({"status": "not_ready", "reason": reason})),
        ),
    }
}
