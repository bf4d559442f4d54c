//! A stand-in for the Fluximmo API (the provider's servers are the one thing
//! the tests mock): an HTTP server answering the documented calls with the
//! documented shapes, built on the fixture `fluximmo-api/property-by-id.json`
//! (its `PropertyDto` with the `flxId` asked for), and faults a test
//! injects:
//! - `POST /v2/protected/properties/_many`, `{"flxIds": [...]}` →
//!   `{"data": [PropertyDto...]}`, unknown ids and ids set
//!   [`FluximmoApi::leave_out_of_bulk`] left out;
//! - `GET /v2/protected/properties/{flxId}` → `{"data": PropertyDto}`, or a
//!   404 `{"error": {...}}` for an id it does not know;
//! - a key other than the stand-in's → 401;
//! - [`FluximmoApi::fail_next`]: the next calls answer a fault (429 with or
//!   without `Retry-After`, 500, an answer slower than the client's
//!   timeout, malformed JSON).
//!
//! It counts every call and every id asked for, so a test can tell that a
//! redelivery cost no call.

use std::collections::{HashSet, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Value, json};

/// The key the stand-in accepts.
pub const API_KEY: &str = "test-fluximmo-api-key";

/// A fault the next call answers with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// 429, with `Retry-After: <seconds>` when given.
    RateLimited(Option<u64>),
    /// 500.
    ServerError,
    /// The answer comes after this long.
    Slow(Duration),
    /// 200 with a body that is not JSON.
    Malformed,
}

#[derive(Default)]
struct Inner {
    /// Every id is known (the bench's stand-in).
    knows_all: bool,
    /// Added to every answer.
    latency: Duration,
    /// Added to every by-id answer.
    by_id_latency: Duration,
    /// Requests that matched neither documented call (a path traversal).
    foreign: Vec<String>,
    known: HashSet<String>,
    left_out: HashSet<String>,
    faults: VecDeque<Fault>,
    calls: u64,
    ids_asked: Vec<String>,
}

/// A running stand-in.
#[derive(Clone)]
pub struct FluximmoApi {
    address: SocketAddr,
    inner: Arc<Mutex<Inner>>,
    dto: Arc<Value>,
}

impl FluximmoApi {
    /// Serves the properties `known` on a free loopback port.
    pub async fn start(known: &[&str]) -> Self {
        let fixture: Value =
            serde_json::from_slice(&crate::fixture("fluximmo-api/property-by-id.json"))
                .expect("the API fixture is JSON");
        let inner = Arc::new(Mutex::new(Inner {
            known: known.iter().map(|id| (*id).to_string()).collect(),
            ..Inner::default()
        }));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the API stand-in");
        let address = listener.local_addr().expect("its address");
        let api = Self {
            address,
            inner,
            dto: Arc::new(fixture["data"].clone()),
        };
        let app = axum::Router::new()
            .route("/v2/protected/properties/_many", post(many))
            .route("/v2/protected/properties/{flx_id}", get(by_id))
            .fallback(foreign)
            .with_state(api.clone());
        drop(tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        }));
        api
    }

    /// Its base URL (`ENRICH__API__BASE_URL`).
    pub fn base_url(&self) -> String {
        format!("http://{}", self.address)
    }

    /// The next calls answer `faults`, in order.
    pub fn fail_next(&self, faults: &[Fault]) {
        self.lock().faults.extend(faults.iter().copied());
    }

    /// The API knows every id, and answers each call after `latency` (the
    /// bench's stand-in of a remote API).
    pub fn know_all_with_latency(&self, latency: Duration) {
        let mut inner = self.lock();
        inner.knows_all = true;
        inner.latency = latency;
    }

    /// Every by-id answer comes after `latency` (a degraded by-id path).
    pub fn slow_by_id(&self, latency: Duration) {
        self.lock().by_id_latency = latency;
    }

    /// The requests that matched no documented call, as `METHOD path`.
    pub fn foreign_requests(&self) -> Vec<String> {
        self.lock().foreign.clone()
    }

    /// Drops the faults not answered yet (the API recovers).
    pub fn clear_faults(&self) {
        self.lock().faults.clear();
    }

    /// The API knows `id` from now on.
    pub fn know(&self, id: &str) {
        let _ = self.lock().known.insert(id.to_string());
    }

    /// `id` is left out of bulk answers (still served by id).
    pub fn leave_out_of_bulk(&self, id: &str) {
        let _ = self.lock().left_out.insert(id.to_string());
    }

    /// Calls answered so far (faults included).
    pub fn calls(&self) -> u64 {
        self.lock().calls
    }

    /// Every id asked for, in order (bulk and by id).
    pub fn ids_asked(&self) -> Vec<String> {
        self.lock().ids_asked.clone()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The fixture's `PropertyDto` as property `id`.
    fn dto(&self, id: &str) -> Value {
        let mut dto = (*self.dto).clone();
        dto["flxId"] = json!(id);
        dto
    }

    /// Counts the call and checks the key; the fault to answer, if any.
    async fn admit(&self, headers: &HeaderMap, ids: &[String]) -> Option<Response> {
        let latency = self.lock().latency;
        if !latency.is_zero() {
            tokio::time::sleep(latency).await;
        }
        let fault = {
            let mut inner = self.lock();
            inner.calls += 1;
            inner.ids_asked.extend(ids.iter().cloned());
            if headers.get("x-api-key").and_then(|v| v.to_str().ok()) != Some(API_KEY) {
                return Some(error(StatusCode::UNAUTHORIZED, "invalid api key"));
            }
            inner.faults.pop_front()
        };
        match fault? {
            Fault::RateLimited(retry_after) => {
                let mut response = error(StatusCode::TOO_MANY_REQUESTS, "slow down");
                if let Some(seconds) = retry_after {
                    let _ = response
                        .headers_mut()
                        .insert("retry-after", seconds.to_string().parse().ok()?);
                }
                Some(response)
            }
            Fault::ServerError => Some(error(StatusCode::INTERNAL_SERVER_ERROR, "boom")),
            Fault::Slow(delay) => {
                tokio::time::sleep(delay).await;
                None
            }
            Fault::Malformed => Some((StatusCode::OK, "{\"data\": [").into_response()),
        }
    }
}

fn error(status: StatusCode, message: &str) -> Response {
    (
        status,
        Json(json!({"error": {"message": message, "code": status.as_u16()}})),
    )
        .into_response()
}

async fn many(State(api): State<FluximmoApi>, headers: HeaderMap, body: String) -> Response {
    let ids: Vec<String> = serde_json::from_str::<Value>(&body)
        .ok()
        .and_then(|v| v.get("flxIds").cloned())
        .and_then(|v| serde_json::from_value(v).ok())
        .unwrap_or_default();
    if let Some(fault) = api.admit(&headers, &ids).await {
        return fault;
    }
    let served: Vec<Value> = {
        let inner = api.lock();
        ids.iter()
            .filter(|id| {
                (inner.knows_all || inner.known.contains(*id)) && !inner.left_out.contains(*id)
            })
            .map(|id| api.dto(id))
            .collect()
    };
    Json(json!({ "data": served })).into_response()
}

async fn by_id(
    State(api): State<FluximmoApi>,
    Path(flx_id): Path<String>,
    headers: HeaderMap,
) -> Response {
    if let Some(fault) = api.admit(&headers, std::slice::from_ref(&flx_id)).await {
        return fault;
    }
    let by_id_latency = api.lock().by_id_latency;
    if !by_id_latency.is_zero() {
        tokio::time::sleep(by_id_latency).await;
    }
    let known = {
        let inner = api.lock();
        inner.knows_all || inner.known.contains(&flx_id)
    };
    if !known {
        return error(StatusCode::NOT_FOUND, "property not found");
    }
    Json(json!({ "data": api.dto(&flx_id) })).into_response()
}

async fn foreign(State(api): State<FluximmoApi>, request: axum::extract::Request) -> Response {
    let line = format!("{} {}", request.method(), request.uri());
    api.lock().foreign.push(line);
    error(StatusCode::IM_A_TEAPOT, "no such call")
}
