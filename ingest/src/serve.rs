//! The HTTP server loop: accepts connections within the connection cap,
//! serves the router over HTTP/1.1 with a header read deadline and a size
//! limit on the request head, and drains on shutdown.
//!
//! `axum::serve` sets no timer and no cap, so a client could hold a
//! connection open forever by never finishing its headers, and any number
//! of clients could. Here hyper closes a connection after
//! `header_read_timeout`, answers 431 to a head over `max_header_bytes`,
//! and the [`ConnectionTable`] keeps at most `max_connections` open: at the
//! cap the oldest connection not handling a request is closed to make room,
//! and when all are busy the new one gets a 503 with `Retry-After` and is
//! closed. The handler bounds the body separately, with a 408. Each request
//! carries its peer address as `ConnectInfo`, which the source-address check
//! reads. On shutdown the listener is closed first, then in-flight requests
//! get up to `drain_timeout` to finish.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{ConnectInfo, Extension};
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use tokio::io::AsyncWriteExt as _;
use tokio::net::{TcpListener, TcpStream};
use tower::ServiceExt as _;

use crate::connections::{ConnectionSlot, ConnectionTable};

/// Most headers in one request.
const MAX_HEADERS: usize = 64;

/// How the listener treats its connections.
#[derive(Debug, Clone, Copy)]
pub struct ServeSettings {
    /// Time allowed to send a request's headers.
    pub header_read_timeout: Duration,
    /// Time allowed to in-flight requests after shutdown begins.
    pub drain_timeout: Duration,
    /// Largest request head, bytes.
    pub max_header_bytes: usize,
    /// Most open connections.
    pub max_connections: usize,
    /// `Retry-After` of the 503 a refused connection gets, seconds.
    pub retry_after_secs: u64,
}

/// Serves `router` on `listener` until `shutdown` resolves, then drains.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    settings: ServeSettings,
    shutdown: impl Future<Output = ()>,
) {
    let graceful = GracefulShutdown::new();
    let table = ConnectionTable::new(settings.max_connections);
    let mut shutdown = pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Out of file descriptors and the like: back off, keep serving.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let Ok(slot) = table.admit(Instant::now()) else {
            drop(tokio::spawn(refuse(stream, settings.retry_after_secs)));
            continue;
        };
        serve_connection(&graceful, stream, peer, slot, router.clone(), &settings);
    }
    drop(listener);
    tracing::info!(
        connections = graceful.count(),
        "stopped accepting; draining in-flight requests"
    );
    tokio::select! {
        () = graceful.shutdown() => tracing::info!("all connections drained"),
        () = tokio::time::sleep(settings.drain_timeout) => {
            tracing::warn!(timeout_ms = settings.drain_timeout.as_millis(), "drain timed out; closing the rest");
            table.close_all();
        }
    }
}

/// Serves one admitted connection on a task of its own, until it ends or
/// the table closes it to make room.
fn serve_connection(
    graceful: &GracefulShutdown,
    stream: TcpStream,
    peer: SocketAddr,
    slot: ConnectionSlot,
    router: Router,
    settings: &ServeSettings,
) {
    let router = router.layer(Extension(ConnectInfo::<SocketAddr>(peer)));
    let activity = Arc::clone(&slot.activity);
    let service = hyper::service::service_fn(move |request: hyper::Request<_>| {
        let router = router.clone();
        let activity = Arc::clone(&activity);
        activity.request_started(Instant::now());
        async move {
            let response = router.oneshot(request.map(axum::body::Body::new)).await;
            activity.request_finished(Instant::now());
            response
        }
    });
    let mut builder = http1::Builder::new();
    let _ = builder
        .timer(TokioTimer::new())
        .header_read_timeout(settings.header_read_timeout)
        .max_header_size(settings.max_header_bytes)
        .max_headers(MAX_HEADERS);
    // hyper's read buffer stays at its default (about 400 KiB): with a
    // smaller one, a client still writing an oversize body met a closed
    // socket before it could read its 413.
    let connection = graceful.watch(builder.serve_connection(TokioIo::new(stream), service));
    // Detached: the graceful watcher, not the handle, tracks it.
    drop(tokio::spawn(async move {
        let close = Arc::clone(&slot.close);
        tokio::select! {
            ended = connection => if let Err(e) = ended {
                tracing::debug!(%peer, error = %e, "connection ended with an error");
            },
            () = close.notified() => {
                tracing::debug!(%peer, "connection closed to make room for a new one");
            }
        }
        drop(slot);
    }));
}

/// Answers a connection over the cap with a 503 and closes it.
async fn refuse(mut stream: TcpStream, retry_after_secs: u64) {
    let body = r#"{"status":"error","error":"overloaded","message":"too many open connections; retry later"}"#;
    let response = format!(
        "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\nretry-after: {retry_after_secs}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
    let written = tokio::time::timeout(Duration::from_secs(1), async {
        stream.write_all(response.as_bytes()).await?;
        stream.shutdown().await
    })
    .await;
    if !matches!(written, Ok(Ok(()))) {
        tracing::debug!("could not answer a refused connection");
    }
}
