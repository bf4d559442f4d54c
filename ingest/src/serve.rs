//! The HTTP server loop: accepts connections, serves the router over
//! HTTP/1.1 with a header read deadline, and drains on shutdown.
//!
//! `axum::serve` sets no timer, so a client could hold a connection open
//! forever by never finishing its headers; here hyper closes it after
//! `header_read_timeout` (the handler bounds the body separately, with a
//! 408). Each request carries its peer address as `ConnectInfo`, which the
//! source-address check reads. On shutdown the listener is closed first,
//! then in-flight requests get up to `drain_timeout` to finish.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::pin;
use std::time::Duration;

use axum::Router;
use axum::extract::{ConnectInfo, Extension};
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;

/// Connection deadlines.
#[derive(Debug, Clone, Copy)]
pub struct Deadlines {
    /// Time allowed to send a request's headers.
    pub header_read_timeout: Duration,
    /// Time allowed to in-flight requests after shutdown begins.
    pub drain_timeout: Duration,
}

/// Serves `router` on `listener` until `shutdown` resolves, then drains.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    deadlines: Deadlines,
    shutdown: impl Future<Output = ()>,
) {
    let graceful = GracefulShutdown::new();
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
        let service = TowerToHyperService::new(
            router
                .clone()
                .layer(Extension(ConnectInfo::<SocketAddr>(peer))),
        );
        let mut builder = http1::Builder::new();
        let _ = builder
            .timer(TokioTimer::new())
            .header_read_timeout(deadlines.header_read_timeout);
        let connection = graceful.watch(builder.serve_connection(TokioIo::new(stream), service));
        // Detached: the graceful watcher, not the handle, tracks it.
        drop(tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!(%peer, error = %e, "connection ended with an error");
            }
        }));
    }
    drop(listener);
    tracing::info!(
        connections = graceful.count(),
        "stopped accepting; draining in-flight requests"
    );
    tokio::select! {
        () = graceful.shutdown() => tracing::info!("all connections drained"),
        () = tokio::time::sleep(deadlines.drain_timeout) => {
            tracing::warn!(timeout_ms = deadlines.drain_timeout.as_millis(), "drain timed out; closing the rest");
        }
    }
}
