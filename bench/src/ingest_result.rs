//! What the ingest scenario measured, as `results.json` keeps it: for each
//! broker, payload and connection count, ingest beside its ceilings and the
//! Python peers (with their cost), ingest under attack, and the open-loop
//! searches. Fields added since the first results files have defaults, so
//! `estate-bench render` still reads those (a missing broker is the
//! `sqlite://` one they were measured on, at 32 connections).

use serde::{Deserialize, Serialize};

use crate::attack::AttackTally;
use crate::http_load::LoadResult;
use crate::open_loop_search::SearchResult;
use crate::peer::PeerHeaders;
use crate::receiver_load::ReceiverRun;

/// The durable local broker's label.
pub const SQLITE: &str = "sqlite://";
/// The in-memory broker's label (not durable: the pipeline's own cost).
pub const MEMORY: &str = "memory://";

fn sqlite() -> String {
    SQLITE.to_string()
}

fn thirty_two() -> usize {
    32
}

/// Ingest measured again with an attacker beside it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct UnderAttack {
    /// The legit load, measured while the attack ran.
    pub legit: LoadResult,
    /// What the attacker did.
    pub attack: AttackTally,
    /// Legit req/s under attack ÷ legit req/s without.
    pub ratio_to_unattacked: f64,
    /// Records the raw topic gained meanwhile: the legit 200s, and none of
    /// the attacker's requests.
    pub records_on_topic: i64,
}

/// One Python peer's measurement.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PeerRun {
    /// Which headers it wrote.
    pub headers: PeerHeaders,
    /// Its uvicorn workers.
    pub workers: usize,
    /// What it did and cost.
    #[serde(flatten)]
    pub run: ReceiverRun,
}

/// The measurements for one payload on one broker at one connection count.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PayloadResult {
    /// The broker's label ([`SQLITE`] or [`MEMORY`]).
    #[serde(default = "sqlite")]
    pub broker: String,
    /// Concurrent connections (and producer senders for the ceilings).
    #[serde(default = "thirty_two")]
    pub connections: usize,
    /// Payload name.
    pub payload: String,
    /// Payload size, bytes.
    pub bytes: usize,
    /// Bare HTTP server, no Kafka.
    pub bare_http: LoadResult,
    /// rdkafka producer alone, payload only.
    pub broker_ceiling: LoadResult,
    /// rdkafka producer alone, the record ingest writes (payload + headers).
    pub broker_ceiling_with_headers: LoadResult,
    /// Ingest.
    pub ingest: LoadResult,
    /// Records found on ingest's raw topic for this payload.
    pub ingest_records_on_topic: i64,
    /// Ingest's peak resident memory during the load, bytes.
    pub ingest_peak_rss_bytes: u64,
    /// CPU seconds ingest spent during the load (0 in older results).
    #[serde(default)]
    pub ingest_cpu_secs: f64,
    /// Ingest req/s ÷ broker ceiling records/s.
    pub ratio_to_broker_ceiling: f64,
    /// Ingest req/s ÷ the same-record broker ceiling.
    pub ratio_to_broker_ceiling_with_headers: f64,
    /// Ingest req/s ÷ bare HTTP req/s.
    pub ratio_to_bare_http: f64,
    /// Ingest with an attacker beside it (first payload only).
    #[serde(default)]
    pub under_attack: Option<UnderAttack>,
    /// The Python peers, one header then ingest's `ingest-meta` header (absent when the
    /// peer was skipped, and in older results).
    #[serde(default)]
    pub peers: Vec<PeerRun>,
}

impl PayloadResult {
    /// Ingest's measurement in the peers' shape.
    pub fn ingest_run(&self) -> ReceiverRun {
        ReceiverRun {
            load: self.ingest.clone(),
            records_on_topic: self.ingest_records_on_topic,
            cpu_secs: self.ingest_cpu_secs,
            peak_rss_bytes: self.ingest_peak_rss_bytes,
        }
    }

    /// The peer that wrote `headers`, if it ran.
    pub fn peer(&self, headers: PeerHeaders) -> Option<&PeerRun> {
        self.peers.iter().find(|p| p.headers == headers)
    }

    /// The measurements with their report names, baselines first.
    pub fn runs(&self) -> Vec<(&'static str, &LoadResult)> {
        let mut runs = vec![
            ("bare HTTP ceiling", &self.bare_http),
            ("broker ceiling, payload only", &self.broker_ceiling),
            (
                "broker ceiling, ingest's record",
                &self.broker_ceiling_with_headers,
            ),
            ("ingest", &self.ingest),
        ];
        for peer in &self.peers {
            runs.push((peer.headers.label(), &peer.run.load));
        }
        if let Some(attacked) = &self.under_attack {
            runs.push(("ingest, under attack", &attacked.legit));
        }
        runs
    }

    /// The receivers (ingest, then the peers) with their names.
    pub fn receivers(&self) -> Vec<(&'static str, ReceiverRun)> {
        std::iter::once(("ingest", self.ingest_run()))
            .chain(
                self.peers
                    .iter()
                    .map(|p| (p.headers.label(), p.run.clone())),
            )
            .collect()
    }
}

/// One receiver's open-loop search.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct OpenLoopRun {
    /// The broker's label.
    pub broker: String,
    /// The payload sent.
    pub payload: String,
    /// Which receiver: "ingest", a peer's label, or "bare HTTP ceiling".
    pub receiver: String,
    /// The p99 a step had to stay within, ms.
    pub p99_limit_ms: f64,
    /// Seconds each step lasted.
    pub step_secs: f64,
    /// Its steps and the highest rate that held.
    pub search: SearchResult,
}

/// `measured ÷ baseline`, 0 when the baseline is 0.
pub fn ratio(measured: f64, baseline: f64) -> f64 {
    if baseline > 0.0 {
        measured / baseline
    } else {
        0.0
    }
}
