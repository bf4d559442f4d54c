//! The HTTP load generator: a fixed number of keep-alive connections, each
//! sending one request at a time for a fixed duration (closed loop, like
//! `wrk`), timing every request from send to the end of the response body;
//! or a fixed rate spread over connections (open loop), timing each
//! request from the moment it was due.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
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

/// Builds request number `n` (counting from 0 across all connections);
/// called once per request, so it can sign each and vary its body.
pub type RequestFactory = Arc<dyn Fn(u64) -> anyhow::Result<Request<Full<Bytes>>> + Send + Sync>;

/// What a closed-loop run measured.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
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
    let counter = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::with_capacity(connections);
    for _ in 0..connections {
        let next = {
            let request = Arc::clone(&request);
            let counter = Arc::clone(&counter);
            move || request(counter.fetch_add(1, Ordering::Relaxed))
        };
        let ready = Arc::clone(&ready);
        tasks.push(tokio::spawn(one_connection(address, ready, duration, next)));
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

/// Opens one HTTP/1.1 connection to `address`.
pub(crate) async fn connect(
    address: SocketAddr,
) -> anyhow::Result<http1::SendRequest<Full<Bytes>>> {
    let stream = TcpStream::connect(address)
        .await
        .with_context(|| format!("cannot connect to {address}"))?;
    stream.set_nodelay(true)?;
    let (sender, connection) = http1::handshake(TokioIo::new(stream)).await?;
    drop(tokio::spawn(connection));
    Ok(sender)
}

/// Sends `request` and reads the whole answer; its status.
pub(crate) async fn send(
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
    request: impl Fn() -> anyhow::Result<Request<Full<Bytes>>>,
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

/// What a fixed-rate run measured, with the outcome of every request.
#[derive(Debug, Clone, Default)]
pub struct OpenLoopResult {
    /// Counts, rate and latency (from each request's scheduled send time,
    /// so a stall shows up as latency instead of hiding as a lower rate).
    pub load: LoadResult,
    /// `accepted[n]`: request `n` got a 200.
    pub accepted: Vec<bool>,
    /// Whether the run gave up because a request fell too far behind its
    /// schedule (the requests not sent count as errors).
    pub gave_up: bool,
}

/// Sends `rate` requests per second for `duration` (open loop), spread over
/// `workers` keep-alive connections; request `n` is scheduled at `n / rate`.
pub async fn open_loop(
    address: SocketAddr,
    rate: f64,
    duration: Duration,
    workers: usize,
    request: RequestFactory,
) -> anyhow::Result<OpenLoopResult> {
    open_loop_until_late(address, rate, duration, workers, request, None).await
}

/// [`open_loop`], giving up once a request is due more than `give_up_late`
/// ago when its worker gets to it: a receiver that cannot keep up then
/// fails its step in about that time, instead of the whole backlog being
/// sent at the rate it can take.
pub async fn open_loop_until_late(
    address: SocketAddr,
    rate: f64,
    duration: Duration,
    workers: usize,
    request: RequestFactory,
    give_up_late: Option<Duration>,
) -> anyhow::Result<OpenLoopResult> {
    let total = (rate * duration.as_secs_f64()).round().max(1.0) as u64;
    let interval = Duration::from_secs_f64(1.0 / rate.max(f64::MIN_POSITIVE));
    let workers = workers.max(1);
    let mut senders = Vec::with_capacity(workers);
    for _ in 0..workers {
        senders.push(connect(address).await?);
    }
    let gave_up = Arc::new(AtomicBool::new(false));
    let start = tokio::time::Instant::now();
    let mut tasks = Vec::with_capacity(workers);
    for (worker, mut sender) in senders.into_iter().enumerate() {
        let request = Arc::clone(&request);
        let gave_up = Arc::clone(&gave_up);
        tasks.push(tokio::spawn(async move {
            let mut outcomes = Vec::new();
            let mut latencies = Vec::new();
            for n in (worker as u64..total).step_by(workers) {
                let scheduled = start + interval.mul_f64(n as f64);
                tokio::time::sleep_until(scheduled).await;
                let late = give_up_late.is_some_and(|limit| scheduled.elapsed() > limit);
                if late || gave_up.load(Ordering::Relaxed) {
                    gave_up.store(true, Ordering::Relaxed);
                    break;
                }
                let ok = match send(&mut sender, request(n)?).await {
                    Ok(status) => status.is_success(),
                    Err(_) => {
                        sender = connect(address).await?;
                        false
                    }
                };
                if ok {
                    latencies.push(scheduled.elapsed());
                }
                outcomes.push((n, ok));
            }
            anyhow::Ok((outcomes, latencies))
        }));
    }
    let mut accepted = vec![false; total as usize];
    let mut latencies = Vec::with_capacity(total as usize);
    for task in tasks {
        let (outcomes, samples) = task.await.context("a load worker panicked")??;
        for (n, ok) in outcomes {
            if let Some(slot) = accepted.get_mut(n as usize) {
                *slot = ok;
            }
        }
        latencies.extend(samples);
    }
    let elapsed = start.elapsed().as_secs_f64();
    let ok = accepted.iter().filter(|a| **a).count() as u64;
    Ok(OpenLoopResult {
        load: LoadResult {
            ok,
            warm_up_ok: 0,
            errors: total - ok,
            requests_per_sec: ok as f64 / elapsed.max(f64::EPSILON),
            latency: LatencySummary::of(latencies),
        },
        accepted,
        gave_up: gave_up.load(Ordering::Relaxed),
    })
}
