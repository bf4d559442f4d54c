//! The HTTP load generator: a fixed number of keep-alive connections, each
//! sending one request at a time for a fixed duration (closed loop, like
//! `wrk`), timing every request from send to the end of the response body.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use axum::body::Bytes;
use http_body_util::{BodyExt as _, Full};
use hyper::client::conn::http1;
use hyper::{Request, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use tokio::sync::Barrier;

use crate::latency::LatencySummary;

/// Builds the next request; called once per request, so it can sign each.
pub type RequestFactory = Arc<dyn Fn() -> anyhow::Result<Request<Full<Bytes>>> + Send + Sync>;

/// What a closed-loop run measured.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct LoadResult {
    /// Responses with status 200 during the measurement.
    pub ok: u64,
    /// Untimed warm-up requests answered 200 (one per connection), which
    /// also reached the topic.
    pub warm_up_ok: u64,
    /// Responses with any other status, plus connection errors.
    pub errors: u64,
    /// Requests per second (200s only).
    pub requests_per_sec: f64,
    /// Latency of the 200s.
    pub latency: LatencySummary,
}

struct ConnectionTally {
    warm_up_ok: u64,
    ok: u64,
    errors: u64,
    latencies: Vec<Duration>,
}

/// Runs `connections` connections against `address` for `duration`.
///
/// Each connection is opened and sends one untimed warm-up request first;
/// the clock starts when all of them are ready.
pub async fn closed_loop(
    address: SocketAddr,
    connections: usize,
    duration: Duration,
    request: RequestFactory,
) -> anyhow::Result<LoadResult> {
    let ready = Arc::new(Barrier::new(connections + 1));
    let mut tasks = Vec::with_capacity(connections);
    for _ in 0..connections {
        let request = Arc::clone(&request);
        let ready = Arc::clone(&ready);
        tasks.push(tokio::spawn(one_connection(
            address, ready, duration, request,
        )));
    }
    let _ = ready.wait().await;
    let started = Instant::now();
    let mut ok = 0;
    let mut warm_up_ok = 0;
    let mut errors = 0;
    let mut latencies = Vec::new();
    for task in tasks {
        let tally = task.await.context("a load connection task panicked")??;
        ok += tally.ok;
        warm_up_ok += tally.warm_up_ok;
        errors += tally.errors;
        latencies.extend(tally.latencies);
    }
    let elapsed = started.elapsed().as_secs_f64();
    Ok(LoadResult {
        ok,
        warm_up_ok,
        errors,
        requests_per_sec: ok as f64 / elapsed.max(f64::EPSILON),
        latency: LatencySummary::of(latencies),
    })
}

async fn connect(address: SocketAddr) -> anyhow::Result<http1::SendRequest<Full<Bytes>>> {
    let stream = TcpStream::connect(address)
        .await
        .with_context(|| format!("cannot connect to {address}"))?;
    stream.set_nodelay(true)?;
    let (sender, connection) = http1::handshake(TokioIo::new(stream)).await?;
    drop(tokio::spawn(connection));
    Ok(sender)
}

async fn send(
    sender: &mut http1::SendRequest<Full<Bytes>>,
    request: Request<Full<Bytes>>,
) -> anyhow::Result<StatusCode> {
    sender.ready().await?;
    let response = sender.send_request(request).await?;
    let status = response.status();
    let _ = response.into_body().collect().await?;
    Ok(status)
}

async fn one_connection(
    address: SocketAddr,
    ready: Arc<Barrier>,
    duration: Duration,
    request: RequestFactory,
) -> anyhow::Result<ConnectionTally> {
    let mut tally = ConnectionTally {
        warm_up_ok: 0,
        ok: 0,
        errors: 0,
        latencies: Vec::with_capacity(65_536),
    };
    let warm_up = async {
        let mut sender = connect(address).await?;
        let status = send(&mut sender, request()?).await?;
        anyhow::Ok((sender, status))
    }
    .await;
    // Wait for the others even on failure, so the barrier never hangs.
    let _ = ready.wait().await;
    let (mut sender, warm_up_status) = warm_up?;
    if warm_up_status.is_success() {
        tally.warm_up_ok += 1;
    }
    let deadline = Instant::now() + duration;
    while Instant::now() < deadline {
        let next = request()?;
        let sent = Instant::now();
        match send(&mut sender, next).await {
            Ok(status) if status.is_success() => {
                tally.ok += 1;
                tally.latencies.push(sent.elapsed());
            }
            Ok(_) => tally.errors += 1,
            Err(_) => {
                tally.errors += 1;
                sender = connect(address).await?;
            }
        }
    }
    Ok(tally)
}
