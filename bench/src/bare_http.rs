//! The bare HTTP ceiling: ingest's own server loop (`ingest::serve`) with a
//! handler that reads the body and answers 200, without verification or
//! Kafka. Run as a child process (`estate-bench serve-bare`) so it pays
//! what ingest pays: its own process and runtime, loopback TCP.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Context as _;
use axum::Router;
use axum::body::Bytes;
use axum::http::StatusCode;
use axum::routing::{get, post};
use ingest::serve::{ServeSettings, serve};

/// Serves `POST /webhooks/{source}` → 200 and `GET /healthz` on `listen`
/// until SIGTERM or Ctrl-C.
pub async fn run(listen: SocketAddr) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| format!("cannot listen on {listen}"))?;
    let router = Router::new()
        .route(
            "/webhooks/{source}",
            post(|body: Bytes| async move {
                let _ = body.len();
                StatusCode::OK
            }),
        )
        .route("/healthz", get(|| async { StatusCode::OK }));
    let settings = ServeSettings {
        header_read_timeout: Duration::from_secs(10),
        drain_timeout: Duration::from_secs(1),
        max_header_bytes: 16 * 1024,
        max_connections: 1024,
        retry_after_secs: 5,
    };
    serve(listener, router, settings, common::shutdown::signal()).await;
    Ok(())
}
