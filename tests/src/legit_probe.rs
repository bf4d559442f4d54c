//! A provider that keeps sending while ingest is attacked: correctly signed
//! requests to the `generic` source, one after the other on a kept-alive
//! connection opened before the attack, and `/healthz` polled on ingest's
//! operator address. The attack tests assert that every
//! one of its requests was stored and answered 200 inside the providers' 5 s
//! budget, and that ingest answered its health check throughout.

use std::time::{Duration, Instant};

use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::{GENERIC_SECRET, Pipeline, Service, unix_now};

/// The providers' delivery budget: an answer later than this is a failure.
pub const BUDGET: Duration = Duration::from_secs(5);

/// What the probe saw.
#[derive(Debug, Default)]
pub struct ProbeReport {
    /// Status (0 for no answer) and latency of each webhook sent.
    pub webhooks: Vec<(u16, Duration)>,
    /// Health checks sent, and those not answered 200 within the budget.
    pub health_checks: usize,
    /// Health checks that failed.
    pub health_failures: usize,
}

impl ProbeReport {
    /// How many webhooks were answered 200.
    pub fn accepted(&self) -> usize {
        self.webhooks.iter().filter(|(s, _)| *s == 200).count()
    }

    /// Asserts every webhook got a 200 within the budget, at least
    /// `min_sent` were sent, and every health check was answered.
    pub fn assert_served(&self, min_sent: usize) {
        assert!(
            self.webhooks.len() >= min_sent,
            "only {} legit webhooks were sent during the attack (expected at least {min_sent}): \
             each took too long",
            self.webhooks.len()
        );
        let late: Vec<_> = self
            .webhooks
            .iter()
            .filter(|(status, took)| *status != 200 || *took > BUDGET)
            .collect();
        assert!(
            late.is_empty(),
            "legit webhooks not answered 200 within {BUDGET:?}: {late:?} (of {})",
            self.webhooks.len()
        );
        assert!(self.health_checks > 0, "no health check ran");
        assert_eq!(
            self.health_failures, 0,
            "/healthz failed {} of {} times",
            self.health_failures, self.health_checks
        );
    }
}

/// A running probe.
#[derive(Debug)]
pub struct LegitProbe {
    stop: watch::Sender<bool>,
    webhooks: JoinHandle<Vec<(u16, Duration)>>,
    health: JoinHandle<(usize, usize)>,
}

impl LegitProbe {
    /// Starts sending to `pipeline`'s ingest, on clients of its own; returns
    /// once its connection is open and its first webhook answered, so that
    /// an attack started next finds it there, as it would find a provider's
    /// kept-alive connection.
    pub async fn start(pipeline: &Pipeline) -> Self {
        let (stop, stopped) = watch::channel(false);
        let http = reqwest::Client::builder()
            .timeout(BUDGET + Duration::from_secs(1))
            .build()
            .expect("http client");
        let url = format!("{}/webhooks/generic", pipeline.ingest_url);
        let (answered, first_answered) = tokio::sync::oneshot::channel::<()>();
        let webhooks = {
            let stopped = stopped.clone();
            let http = http.clone();
            tokio::spawn(async move {
                let mut answered = Some(answered);
                let mut seen = Vec::new();
                let mut n = 0u64;
                while !*stopped.borrow() {
                    n += 1;
                    let body = format!(
                        r#"{{"id":"evt_legit_{n}","type":"property.created","created":"2026-01-01T00:00:00Z","data":{{"id":"legit-{n}","price":100000}}}}"#
                    );
                    let ts = unix_now().to_string();
                    let sig = ingest::verify::hmac_timestamp::sign(
                        GENERIC_SECRET.as_bytes(),
                        &ts,
                        body.as_bytes(),
                    );
                    let started = Instant::now();
                    let status = http
                        .post(&url)
                        .header("content-type", "application/json")
                        .header("x-webhook-timestamp", ts)
                        .header("x-webhook-signature", sig)
                        .body(body)
                        .send()
                        .await
                        .map_or(0, |r| r.status().as_u16());
                    seen.push((status, started.elapsed()));
                    if let Some(answered) = answered.take() {
                        let _ = answered.send(());
                    }
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                seen
            })
        };
        let health_url = pipeline.health_url(Service::Ingest);
        let health = tokio::spawn(async move {
            let (mut checks, mut failures) = (0, 0);
            while !*stopped.borrow() {
                checks += 1;
                let ok = http
                    .get(&health_url)
                    .timeout(BUDGET)
                    .send()
                    .await
                    .is_ok_and(|r| r.status().is_success());
                if !ok {
                    failures += 1;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            (checks, failures)
        });
        let _ = tokio::time::timeout(BUDGET, first_answered).await;
        Self {
            stop,
            webhooks,
            health,
        }
    }

    /// Stops sending and reports.
    pub async fn finish(self) -> ProbeReport {
        let _ = self.stop.send(true);
        let webhooks = self.webhooks.await.expect("the probe ran");
        let (health_checks, health_failures) = self.health.await.expect("the probe ran");
        ProbeReport {
            webhooks,
            health_checks,
            health_failures,
        }
    }
}
