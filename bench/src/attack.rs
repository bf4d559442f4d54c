//! An attacker for the ingest bench: the most a stranger can make ingest do
//! per request without a credential. Each connection sends, in a loop,
//! `POST /webhooks/generic` with a fresh timestamp and a well-formed but
//! wrong signature, so every check made before the body passes, over a
//! 1 MiB JSON body: ingest reads the whole body and computes one HMAC over
//! it before it can answer 401. Ingest's legit throughput is measured with
//! and without this running beside it, in the same run.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use axum::body::Bytes;
use http_body_util::Full;
use hyper::Request;
use serde::{Deserialize, Serialize};

use crate::http_load::{connect, send};

/// Bytes in each attack body.
pub const BODY_BYTES: usize = 1024 * 1024;

/// What the attacker's connections did.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct AttackTally {
    /// Connections attacking at once.
    pub connections: usize,
    /// Requests answered 401 (refused as they should be).
    pub refused: u64,
    /// Requests answered anything else, or not answered.
    pub other: u64,
}

/// A 1 MiB JSON body.
fn body() -> Bytes {
    let mut body = br#"{"pad":""#.to_vec();
    body.resize(BODY_BYTES - 2, b'x');
    body.extend_from_slice(br#""}"#);
    Bytes::from(body)
}

/// Runs `connections` attacking connections against `address` until `stop`.
pub async fn run(address: SocketAddr, connections: usize, stop: Arc<AtomicBool>) -> AttackTally {
    let body = body();
    let refused = Arc::new(AtomicU64::new(0));
    let other = Arc::new(AtomicU64::new(0));
    let tasks: Vec<_> = (0..connections)
        .map(|_| {
            let (body, stop, refused, other) = (
                body.clone(),
                Arc::clone(&stop),
                Arc::clone(&refused),
                Arc::clone(&other),
            );
            tokio::spawn(async move {
                let mut sender = None;
                while !stop.load(Ordering::Relaxed) {
                    let mut current = match sender.take() {
                        Some(s) => s,
                        None => match connect(address).await {
                            Ok(s) => s,
                            Err(_) => {
                                let _ = other.fetch_add(1, Ordering::Relaxed);
                                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                                continue;
                            }
                        },
                    };
                    let now = SystemTime::now()
                        .duration_since(UNIX_EPOCH)
                        .map_or(0, |d| d.as_secs());
                    let Ok(request) = Request::post("/webhooks/generic")
                        .header("host", "127.0.0.1")
                        .header("content-type", "application/json")
                        .header("x-webhook-timestamp", now.to_string())
                        .header("x-webhook-signature", "ab".repeat(32))
                        .body(Full::new(body.clone()))
                    else {
                        break;
                    };
                    match send(&mut current, request).await {
                        Ok(status) if status.as_u16() == 401 => {
                            let _ = refused.fetch_add(1, Ordering::Relaxed);
                            sender = Some(current);
                        }
                        Ok(_) => {
                            let _ = other.fetch_add(1, Ordering::Relaxed);
                            sender = Some(current);
                        }
                        Err(_) => {
                            let _ = other.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                }
            })
        })
        .collect();
    for task in tasks {
        let _ = task.await;
    }
    AttackTally {
        connections,
        refused: refused.load(Ordering::Relaxed),
        other: other.load(Ordering::Relaxed),
    }
}
