//! The bare HTTP ceiling: ingest's own server loop (`ingest::serve`) with a
//! handler that reads the body and answers 200, without verification or
//! Kafka. Run as a child process (`estate-bench serve-bare`) so it pays
//! what ingest pays: its own process and runtime, loopback TCP.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use axum::Router;
use axum::body::Bytes;
use axum::http::StatusCode;
use axum::routing::{get, post};
use http_body_util::Full;
use hyper::Request;
use ingest::serve::{ServeSettings, serve};

use crate::http_load::RequestFactory;
use crate::process::{Running, free_port};

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

/// Starts this program's `serve-bare` as a child on a free port, logging
/// into `log_dir`, and waits until it answers.
pub async fn start(self_exe: &Path, log_dir: &Path) -> anyhow::Result<(Running, SocketAddr)> {
    let address: SocketAddr = ([127, 0, 0, 1], free_port()?).into();
    let listen = address.to_string();
    let mut server = Running::start(
        "bare-http",
        self_exe,
        &["serve-bare", "--listen", &listen],
        &[],
        log_dir,
    )?;
    server
        .wait_healthy(
            &format!("http://{address}/healthz"),
            Duration::from_secs(10),
        )
        .await?;
    Ok((server, address))
}

/// `POST /webhooks/generic` with `body`, unsigned: the bare server checks
/// nothing.
pub fn request(body: &[u8]) -> RequestFactory {
    let body = Bytes::from(body.to_vec());
    Arc::new(move |_| {
        Ok(Request::post("/webhooks/generic")
            .header("host", "127.0.0.1")
            .header("content-type", "application/json")
            .body(Full::new(body.clone()))?)
    })
}
