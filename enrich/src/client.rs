//! The HTTP side of the stage: fetches the properties of one batch from
//! the Fluximmo API, with the call policy of the pure modules: the ids
//! de-duplicated and chunked ([`crate::chunks`]), one bulk call per chunk
//! (`POST [api] many_path`, `{"flxIds": [...]}`), the ids a bulk answer
//! left out fetched one by one (`GET [api] by_id_path`), each call after
//! the rate limiter ([`crate::rate_limit`]) and the circuit breaker
//! ([`crate::breaker`]) let it go, at most `max_concurrent_calls` at once,
//! bounded by `timeout_ms`, and retried per [`crate::outcome`] and
//! [`crate::backoff`]. The key goes in the `x-api-key` header only.
//!
//! Answers are kept in the [`FetchCache`] (`[api] cache_ttl_secs`), so an
//! id named again soon after costs no call.
//!
//! [`ApiClient::fetch_all`] answers every id: found, or failed with a
//! reason (the dead letter's), or the whole batch stops because the key
//! was refused (fatal for the stage) or the stage is stopping.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime};

use common::stage_loop::Cancel;
use futures::StreamExt as _;
use normalize::providers::Limits;
use normalize::providers::fluximmo_api::{
    FetchedProperty, parse_many_response, parse_property_response,
};
use tokio::sync::Semaphore;

use crate::api_key::ApiKey;
use crate::backoff::{BackoffPolicy, RetryBudget, parse_retry_after};
use crate::breaker::Breaker;
use crate::cache::FetchCache;
use crate::metrics::EnrichMetrics;
use crate::outcome::{Answer, KeySource, Outcome, Unauthorized, classify};
use crate::rate_limit::TokenBucket;
use crate::settings::ApiSettings;

/// What became of one id.
#[derive(Debug, Clone, PartialEq)]
pub enum Fetched {
    /// The API returned it.
    Found(Box<FetchedProperty>),
    /// It could not be had: a dead letter of this kind and reason.
    Failed {
        /// `not_found`, `timeout`, `server_error`, `rate_limited`,
        /// `connection`, `client_error`, `malformed`, `mismatch`,
        /// `too_large`.
        kind: &'static str,
        /// What happened, for the dead letter.
        reason: String,
    },
}

/// Why a batch's fetches stopped before every id was answered.
#[derive(Debug)]
pub enum Interrupted {
    /// The API refused the key: the stage stops.
    Unauthorized(Unauthorized),
    /// The stage is stopping.
    Stopped,
}

/// Why a call's waits ended early, inside the client.
enum Halt {
    /// Stopped or unauthorized.
    Interrupted(Interrupted),
    /// The batch's budget is spent: no further call could end in time (the
    /// call is a `timeout` failure of its ids).
    OutOfTime,
}

impl From<Interrupted> for Halt {
    fn from(interrupted: Interrupted) -> Self {
        Self::Interrupted(interrupted)
    }
}

/// When a batch's last call must have ended.
#[derive(Debug, Clone, Copy)]
struct Deadline(Instant);

impl Deadline {
    /// Whether `span` from now still ends by the deadline.
    fn leaves(self, span: Duration) -> bool {
        Instant::now() + span <= self.0
    }
}

/// What one call (with its retries) came to.
enum Called {
    Body(Vec<u8>),
    NotFound,
    Failed { kind: &'static str, reason: String },
}

/// A client of the Fluximmo API.
pub struct ApiClient {
    http: reqwest::Client,
    settings: ApiSettings,
    backoff: BackoffPolicy,
    key: ApiKey,
    key_source: KeySource,
    limits: Limits,
    limiter: Mutex<TokenBucket>,
    breaker: Mutex<Breaker>,
    cache: Mutex<FetchCache>,
    calls: Semaphore,
    metrics: EnrichMetrics,
    cancel: Cancel,
}

impl ApiClient {
    /// A client with `settings`, authenticating with `key`.
    pub fn new(
        settings: &ApiSettings,
        key: ApiKey,
        key_source: KeySource,
        limits: Limits,
        metrics: EnrichMetrics,
        cancel: Cancel,
    ) -> anyhow::Result<Self> {
        let http = reqwest::Client::builder()
            .timeout(settings.timeout())
            .connect_timeout(settings.timeout())
            // A 3xx is not followed: reqwest keeps custom headers across
            // hosts, so following would hand `x-api-key` to wherever the
            // `Location` points. It is a `client_error` dead letter.
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .build()?;
        let limiter = TokenBucket::new(settings.rate_per_second, settings.burst, Instant::now())
            .map_err(|e| anyhow::anyhow!("[api] rate_per_second / burst: {e:?}"))?;
        Ok(Self {
            http,
            settings: settings.clone(),
            backoff: settings.backoff(),
            key,
            key_source,
            limits,
            limiter: Mutex::new(limiter),
            breaker: Mutex::new(Breaker::new(settings.breaker())),
            cache: Mutex::new(FetchCache::new(
                i64::try_from(settings.cache_ttl_secs.saturating_mul(1000)).unwrap_or(i64::MAX),
                settings.cache_max_entries,
            )),
            calls: Semaphore::new(settings.max_concurrent_calls.get()),
            metrics,
            cancel,
        })
    }

    /// Fetches every id of `wanted` (each once, whatever its repeats),
    /// each with the arrival time of the webhook that named it (Unix ms):
    /// an id the cache holds an answer for, fetched after that arrival,
    /// costs no call ([`FetchCache::get`]).
    ///
    /// Every call starts within `[api] batch_budget_ms` of this one's start
    /// and ends by then ([`Deadline`]): an id not answered by then is a
    /// `timeout` dead letter (a replay fetches it later), so a batch never
    /// keeps the consumer from polling past its `max.poll.interval.ms`
    /// (it would be taken out of its group and fetch the batch again, and
    /// again).
    pub async fn fetch_all(
        &self,
        wanted: &[(&str, i64)],
    ) -> Result<HashMap<String, Fetched>, Interrupted> {
        let started_ms = unix_ms();
        let deadline = Deadline(Instant::now() + self.settings.batch_budget());
        let mut fetched = HashMap::with_capacity(wanted.len());
        let mut latest: HashMap<&str, i64> = HashMap::with_capacity(wanted.len());
        for (id, received_at) in wanted {
            let at = latest.entry(id).or_insert(*received_at);
            *at = (*at).max(*received_at);
        }
        let mut to_fetch = Vec::with_capacity(wanted.len());
        {
            let cache = lock(&self.cache);
            for (id, _) in wanted {
                let Some(received_at) = latest.remove(id) else {
                    continue;
                };
                match cache.get(id, received_at, started_ms) {
                    Some(property) => {
                        self.metrics.cache_hits.inc();
                        let _ = fetched.insert(
                            (*id).to_string(),
                            Fetched::Found(Box::new(property.clone())),
                        );
                    }
                    None => to_fetch.push(*id),
                }
            }
        }
        let chunks = crate::chunks::plan(to_fetch, self.settings.chunk_size);
        let answers: Vec<Result<Vec<(String, Fetched)>, Interrupted>> =
            futures::stream::iter(chunks.iter().map(|chunk| self.fetch_chunk(chunk, deadline)))
                .buffer_unordered(self.settings.max_concurrent_calls.get())
                .collect()
                .await;
        let mut cache = lock(&self.cache);
        for answer in answers {
            for (id, result) in answer? {
                if let Fetched::Found(property) = &result {
                    cache.put(property, started_ms);
                }
                let _ = fetched.insert(id, result);
            }
        }
        Ok(fetched)
    }

    /// One chunk: its bulk call, then the ids it left out by id
    /// (`max_concurrent_calls` at once).
    async fn fetch_chunk(
        &self,
        chunk: &[&str],
        deadline: Deadline,
    ) -> Result<Vec<(String, Fetched)>, Interrupted> {
        let body = serde_json::json!({ "flxIds": chunk });
        let url = format!("{}{}", self.base(), self.settings.many_path);
        let called = self
            .call("many", || self.http.post(&url).json(&body), deadline)
            .await?;
        let mut found: Vec<(String, Fetched)> = Vec::with_capacity(chunk.len());
        let left_out: Vec<&str> = match called {
            Called::Body(bytes) => match parse_many_response(&bytes, &self.limits) {
                Ok(properties) => {
                    let returned: Vec<String> =
                        properties.iter().map(|p| p.flx_id.clone()).collect();
                    // An id answered twice: the newer version (by
                    // `meta.lastUpdatedAt`) stands, whatever the order.
                    let mut newest: HashMap<String, FetchedProperty> = HashMap::new();
                    for property in properties {
                        if !chunk.contains(&property.flx_id.as_str()) {
                            continue;
                        }
                        match newest.get(&property.flx_id) {
                            Some(held) if held.last_updated_at > property.last_updated_at => {}
                            _ => {
                                let _ = newest.insert(property.flx_id.clone(), property);
                            }
                        }
                    }
                    found.extend(
                        newest
                            .into_iter()
                            .map(|(id, property)| (id, Fetched::Found(Box::new(property)))),
                    );
                    crate::chunks::missing(chunk, returned.iter().map(String::as_str))
                }
                Err(error) => {
                    tracing::warn!(%error, ids = chunk.len(), "bulk answer not usable; fetching by id");
                    chunk.to_vec()
                }
            },
            Called::NotFound => chunk.to_vec(),
            Called::Failed {
                kind: TOO_LARGE, ..
            } => {
                tracing::warn!(ids = chunk.len(), "bulk answer too large; fetching by id");
                chunk.to_vec()
            }
            Called::Failed { kind, reason } => {
                return Ok(chunk
                    .iter()
                    .map(|id| {
                        let reason = format!("bulk fetch failed: {reason}");
                        (id.to_string(), Fetched::Failed { kind, reason })
                    })
                    .collect());
            }
        };
        let by_id: Vec<Result<(String, Fetched), Interrupted>> =
            futures::stream::iter(left_out.into_iter().map(|id| async move {
                Ok((id.to_string(), self.fetch_one(id, deadline).await?))
            }))
            .buffer_unordered(self.settings.max_concurrent_calls.get())
            .collect()
            .await;
        for answer in by_id {
            found.push(answer?);
        }
        Ok(found)
    }

    /// One id by `GET`.
    async fn fetch_one(&self, id: &str, deadline: Deadline) -> Result<Fetched, Interrupted> {
        // "", "." and ".." are no path segment: a URL parser resolves them
        // (even percent-encoded, `%2E%2E`) to the parent path, another
        // endpoint of the API.
        if matches!(id, "" | "." | "..") {
            return Ok(Fetched::Failed {
                kind: "client_error",
                reason: format!("{id:?} cannot be asked by id: it is not a URL path segment"),
            });
        }
        let path = self
            .settings
            .by_id_path
            .replace("{flxId}", &url_segment(id));
        let url = format!("{}{path}", self.base());
        Ok(
            match self.call("by_id", || self.http.get(&url), deadline).await? {
                Called::Body(bytes) => match parse_property_response(&bytes, &self.limits) {
                    // Not the property asked for: never kept (the cache would
                    // answer with it for the id it names, which nobody asked).
                    Ok(property) if property.flx_id != id => Fetched::Failed {
                        kind: "mismatch",
                        reason: format!(
                            "the API answered property {:?} for {id:?}: not the property the webhook names",
                            property.flx_id
                        ),
                    },
                    Ok(property) => Fetched::Found(Box::new(property)),
                    Err(error) => Fetched::Failed {
                        kind: "malformed",
                        reason: format!("the API's answer for {id:?} does not map: {error}"),
                    },
                },
                Called::NotFound => Fetched::Failed {
                    kind: "not_found",
                    reason: format!(
                        "the API does not know property {id:?} (404 or missing from the bulk answer)"
                    ),
                },
                Called::Failed { kind, reason } => Fetched::Failed { kind, reason },
            },
        )
    }

    /// One request with its retries, all started in time to end by
    /// `deadline` (else a `timeout` failure).
    async fn call(
        &self,
        call: &'static str,
        request: impl Fn() -> reqwest::RequestBuilder,
        deadline: Deadline,
    ) -> Result<Called, Interrupted> {
        match self.call_within(call, request, deadline).await {
            Ok(called) => Ok(called),
            Err(Halt::OutOfTime) => Ok(Called::Failed {
                kind: "timeout",
                reason: format!(
                    "not answered within the batch's budget ([api] batch_budget_ms = {})",
                    self.settings.batch_budget_ms
                ),
            }),
            Err(Halt::Interrupted(interrupted)) => Err(interrupted),
        }
    }

    async fn call_within(
        &self,
        call: &'static str,
        request: impl Fn() -> reqwest::RequestBuilder,
        deadline: Deadline,
    ) -> Result<Called, Halt> {
        let mut budget = RetryBudget::new(self.backoff, Instant::now());
        loop {
            self.wait_for_turn(deadline).await?;
            let slot = self
                .calls
                .acquire()
                .await
                .map_err(|_| Interrupted::Stopped)?;
            // Checked before the breaker's permit is taken: a permit must
            // be recorded, or a half-open breaker waits for its probe
            // for ever.
            let permit = loop {
                if !deadline.leaves(self.settings.timeout()) {
                    return Err(Halt::OutOfTime);
                }
                let acquired = lock(&self.breaker).try_acquire(Instant::now());
                match acquired {
                    Ok(permit) => break permit,
                    Err(wait) => {
                        self.sleep(wait.max(Duration::from_millis(50)), deadline)
                            .await?;
                    }
                }
            };
            let started = Instant::now();
            let sent = request()
                .header("x-api-key", self.key.expose())
                .send()
                .await;
            let (answer, body) = match sent {
                Ok(response) => read(response).await,
                Err(e) if e.is_timeout() => (Answer::Timeout, None),
                Err(_) => (Answer::Connection, None),
            };
            drop(slot);
            let outcome = self.settle(permit, answer, call, started);
            match outcome {
                Outcome::Success => {
                    return Ok(match body {
                        Some(Body::Read(body)) => Called::Body(body),
                        Some(Body::TooLarge) => Called::Failed {
                            kind: TOO_LARGE,
                            reason: format!("the answer is over {MAX_ANSWER_BYTES} bytes"),
                        },
                        None => Called::Failed {
                            kind: "connection",
                            reason: "the answer's body could not be read".into(),
                        },
                    });
                }
                Outcome::NotFound => return Ok(Called::NotFound),
                Outcome::Unauthorized { status } => {
                    return Err(Halt::Interrupted(Interrupted::Unauthorized(Unauthorized {
                        status,
                        key_source: self.key_source.clone(),
                    })));
                }
                Outcome::Fatal { status } => {
                    return Ok(Called::Failed {
                        kind: outcome.reason(),
                        reason: format!("the API answered HTTP {status}"),
                    });
                }
                Outcome::Retry { .. } => {
                    if let Some(called) = self.retry(&mut budget, answer, deadline).await? {
                        return Ok(called);
                    }
                }
            }
        }
    }

    /// After a retriable failure: waits the backoff (`None`: call again),
    /// or gives up (`Some`: the failure).
    async fn retry(
        &self,
        budget: &mut RetryBudget,
        answer: Answer,
        deadline: Deadline,
    ) -> Result<Option<Called>, Halt> {
        let outcome = classify(answer);
        let retry_after = match outcome {
            Outcome::Retry { retry_after, .. } => retry_after,
            _ => None,
        };
        match budget.next_delay(Instant::now(), retry_after, rand::random()) {
            Ok(delay) => {
                self.sleep(delay, deadline).await?;
                Ok(None)
            }
            Err(gave_up) => Ok(Some(Called::Failed {
                kind: outcome.reason(),
                reason: format!(
                    "{} after {} calls: {gave_up:?}",
                    outcome.reason(),
                    budget.calls()
                ),
            })),
        }
    }

    /// Records a call's answer with the breaker and the metrics.
    fn settle(
        &self,
        permit: crate::breaker::Permit,
        answer: Answer,
        call: &'static str,
        started: Instant,
    ) -> Outcome {
        let outcome = classify(answer);
        let now = Instant::now();
        let state = {
            let mut breaker = lock(&self.breaker);
            breaker.record(permit, outcome.is_api_failure(), now);
            breaker.state(now)
        };
        self.metrics.breaker_state(state.gauge());
        self.metrics.call(call, outcome.reason(), started.elapsed());
        tracing::debug!(
            call,
            outcome = outcome.reason(),
            elapsed_ms = started.elapsed().as_millis(),
            "API call"
        );
        outcome
    }

    /// Waits for the rate limiter's token.
    async fn wait_for_turn(&self, deadline: Deadline) -> Result<(), Halt> {
        loop {
            let taken = lock(&self.limiter).try_take(Instant::now());
            match taken {
                Ok(()) => return Ok(()),
                Err(wait) => self.sleep(wait, deadline).await?,
            }
        }
    }

    /// Waits `wait`, unless a call after it could not end by `deadline`
    /// (`OutOfTime`) or the stage stops.
    async fn sleep(&self, wait: Duration, deadline: Deadline) -> Result<(), Halt> {
        if !deadline.leaves(wait + self.settings.timeout()) {
            return Err(Halt::OutOfTime);
        }
        tokio::select! {
            () = self.cancel.cancelled() => Err(Halt::Interrupted(Interrupted::Stopped)),
            () = tokio::time::sleep(wait) => Ok(()),
        }
    }

    fn base(&self) -> &str {
        self.settings.base_url.trim_end_matches('/')
    }
}

/// The most bytes an answer's body may have: far more than any property
/// (or bulk chunk) a record can carry, and bounded so a hostile or broken
/// answer is refused before it is held in memory whole.
const MAX_ANSWER_BYTES: usize = 16 << 20;

/// The kind of an answer over [`MAX_ANSWER_BYTES`].
const TOO_LARGE: &str = "too_large";

/// A success's body.
enum Body {
    Read(Vec<u8>),
    /// Over [`MAX_ANSWER_BYTES`]: not read further.
    TooLarge,
}

/// A response's answer, and its body when it is a success (a body that
/// cannot be read is a timeout or a connection failure: retried).
async fn read(mut response: reqwest::Response) -> (Answer, Option<Body>) {
    let status = response.status().as_u16();
    let retry_after = response
        .headers()
        .get(reqwest::header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| parse_retry_after(v, SystemTime::now()));
    let answer = Answer::Status {
        status,
        retry_after,
    };
    if !(200..300).contains(&status) {
        return (answer, None);
    }
    if response
        .content_length()
        .is_some_and(|n| n > MAX_ANSWER_BYTES as u64)
    {
        return (answer, Some(Body::TooLarge));
    }
    let mut bytes = Vec::new();
    loop {
        match response.chunk().await {
            Ok(Some(chunk)) if bytes.len() + chunk.len() > MAX_ANSWER_BYTES => {
                return (answer, Some(Body::TooLarge));
            }
            Ok(Some(chunk)) => bytes.extend_from_slice(&chunk),
            Ok(None) => return (answer, Some(Body::Read(bytes))),
            Err(e) if e.is_timeout() => return (Answer::Timeout, None),
            Err(_) => return (Answer::Connection, None),
        }
    }
}

/// Now, Unix ms.
fn unix_ms() -> i64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// `mutex`'s guard, also after a panic elsewhere poisoned it: what the
/// stage guards is a rate limiter, a breaker, a cache and writer schemas,
/// none of which a half-done update makes lose or double a record.
pub(crate) fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// `id` as one URL path segment: unreserved characters kept, every other
/// byte percent-encoded (an id naming `../admin` stays one segment).
fn url_segment(id: &str) -> String {
    id.bytes()
        .map(|b| {
            let dots_only = id.bytes().all(|c| c == b'.');
            if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') && !dots_only {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_id_stays_one_path_segment() {
        assert_eq!(url_segment("flx-1_a.b~"), "flx-1_a.b~");
        assert_eq!(url_segment("../admin"), "..%2Fadmin");
        assert_eq!(url_segment(".."), "%2E%2E");
        assert_eq!(url_segment("a b?c#"), "a%20b%3Fc%23");
    }
}

#[cfg(test)]
#[path = "client/hostile_tests.rs"]
mod hostile_tests;
