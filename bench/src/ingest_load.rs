//! Issue 10, measurement 1: ingest under load, with its ceilings measured
//! in the same run, for each payload:
//!
//! 1. the bare HTTP ceiling (`bare_http`: same server loop, no Kafka);
//! 2. the broker ceiling (`broker_ceiling`: an rdkafka producer alone), with
//!    the payload only and with the headers ingest adds;
//! 3. ingest itself, generic HMAC source, every request signed.
//!
//! Afterwards the records on ingest's raw topic are counted: every 200 must
//! be there. Ingest's peak RSS under load is sampled. For the first payload,
//! ingest is then measured again with an attacker beside it (`attack`:
//! unsigned 1 MiB bodies that pass every check made before the body), in
//! the same run, so the ratio says what an attack costs legit traffic.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::Context as _;
use axum::body::Bytes;
use http_body_util::Full;
use hyper::Request;
use serde::{Deserialize, Serialize};

use crate::attack::{self, AttackTally};
use crate::http_load::{LoadResult, RequestFactory, closed_loop};
use crate::pipeline::{Infra, Pipeline, Service};
use crate::process::{Running, free_port, sample_peak_rss};
use crate::{broker_ceiling, requests, topics};

/// Attacking connections beside the legit load.
const ATTACK_CONNECTIONS: usize = 4;

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

/// Where the bench runs and how hard.
#[derive(Debug, Clone)]
pub struct IngestLoad {
    /// The infrastructure and the binaries (release builds for figures).
    pub infra: Infra,
    /// This program, to start the bare HTTP server as a child.
    pub self_exe: PathBuf,
    /// Concurrent connections (and producer senders for the ceiling).
    pub connections: usize,
    /// Duration of each measurement.
    pub duration: Duration,
    /// Unique per run; prefixes the topics.
    pub run_id: String,
}

/// The measurements for one payload.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PayloadResult {
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
    /// Ingest req/s ÷ broker ceiling records/s.
    pub ratio_to_broker_ceiling: f64,
    /// Ingest req/s ÷ the same-record broker ceiling.
    pub ratio_to_broker_ceiling_with_headers: f64,
    /// Ingest req/s ÷ bare HTTP req/s.
    pub ratio_to_bare_http: f64,
    /// Ingest with an attacker beside it (first payload only).
    #[serde(default)]
    pub under_attack: Option<UnderAttack>,
}

impl PayloadResult {
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
        if let Some(attacked) = &self.under_attack {
            runs.push(("ingest, under attack", &attacked.legit));
        }
        runs
    }
}

/// Runs the measurements for each `(name, body)` payload.
pub async fn run(
    load: &IngestLoad,
    payloads: &[(String, Vec<u8>)],
) -> anyhow::Result<Vec<PayloadResult>> {
    let brokers = &load.infra.brokers;
    let ceiling_topics = topics::create(
        &load.infra.bin_dir,
        brokers,
        &format!("bench.{}.ceiling.", load.run_id),
    )?;
    let mut pipeline = Pipeline::create(&load.infra, &format!("{}-ingest", load.run_id)).await?;
    pipeline.start(Service::Ingest).await?;
    let ingest_pid = pipeline
        .process(Service::Ingest)
        .map(Running::pid)
        .context("ingest did not start")?;
    let raw_topic = pipeline.topics.raw();
    let source = requests::generic_source()?;
    let mut results = Vec::with_capacity(payloads.len());
    for (name, body) in payloads {
        eprintln!(
            "ingest load, payload {name} ({} B): bare HTTP ceiling",
            body.len()
        );
        let bare_http = measure_bare_http(load, body).await?;
        eprintln!("ingest load, payload {name}: broker ceiling, payload only");
        let ceiling = broker_ceiling::measure(
            brokers,
            &ceiling_topics.raw(),
            body,
            None,
            load.connections,
            load.duration,
        )
        .await?;
        eprintln!("ingest load, payload {name}: broker ceiling, ingest's record with headers");
        let ceiling_with_headers = broker_ceiling::measure(
            brokers,
            &ceiling_topics.raw(),
            body,
            Some(broker_ceiling::ingest_record_headers(
                ingest::settings::RawMetadata::default(),
            )),
            load.connections,
            load.duration,
        )
        .await?;
        eprintln!("ingest load, payload {name}: ingest");
        let before = topics::count_records(brokers, &raw_topic)?;
        let stop = Arc::new(AtomicBool::new(false));
        let sampler = {
            let stop = Arc::clone(&stop);
            std::thread::spawn(move || sample_peak_rss(ingest_pid, &stop))
        };
        // The same signed load, alone and then beside the attacker.
        let signed_load = || {
            closed_loop(
                pipeline.ingest_address,
                load.connections,
                load.duration,
                requests::signed(&source, {
                    let body = Bytes::from(body.clone());
                    move |_| body.clone()
                }),
            )
        };
        let measured = signed_load().await;
        stop.store(true, Ordering::Relaxed);
        let peak_rss = sampler.join().unwrap_or(0);
        let measured = measured?;
        let after = topics::count_records(brokers, &raw_topic)?;
        let under_attack = if results.is_empty() {
            eprintln!(
                "ingest load, payload {name}: ingest with {ATTACK_CONNECTIONS} attacking connections beside it"
            );
            let stop = Arc::new(AtomicBool::new(false));
            let attacker = tokio::spawn(attack::run(
                pipeline.ingest_address,
                ATTACK_CONNECTIONS,
                Arc::clone(&stop),
            ));
            let legit = signed_load().await;
            stop.store(true, Ordering::Relaxed);
            let attack = attacker.await.context("the attacker panicked")?;
            let legit = legit?;
            let records_on_topic = topics::count_records(brokers, &raw_topic)? - after;
            Some(UnderAttack {
                records_on_topic,
                ratio_to_unattacked: ratio(legit.requests_per_sec, measured.requests_per_sec),
                legit,
                attack,
            })
        } else {
            None
        };
        pipeline.check_alive()?;
        results.push(PayloadResult {
            payload: name.clone(),
            bytes: body.len(),
            ratio_to_broker_ceiling: ratio(measured.requests_per_sec, ceiling.requests_per_sec),
            ratio_to_broker_ceiling_with_headers: ratio(
                measured.requests_per_sec,
                ceiling_with_headers.requests_per_sec,
            ),
            ratio_to_bare_http: ratio(measured.requests_per_sec, bare_http.requests_per_sec),
            bare_http,
            broker_ceiling: ceiling,
            broker_ceiling_with_headers: ceiling_with_headers,
            ingest: measured,
            ingest_records_on_topic: after - before,
            ingest_peak_rss_bytes: peak_rss,
            under_attack,
        });
    }
    drop(pipeline);
    Ok(results)
}

fn ratio(measured: f64, baseline: f64) -> f64 {
    if baseline > 0.0 {
        measured / baseline
    } else {
        0.0
    }
}

async fn measure_bare_http(load: &IngestLoad, body: &[u8]) -> anyhow::Result<LoadResult> {
    let port = free_port()?;
    let address: SocketAddr = ([127, 0, 0, 1], port).into();
    let listen = address.to_string();
    let mut server = Running::start(
        "bare-http",
        &load.self_exe,
        &["serve-bare", "--listen", &listen],
        &[],
        &load.infra.out_dir,
    )?;
    server
        .wait_healthy(
            &format!("http://{address}/healthz"),
            Duration::from_secs(10),
        )
        .await?;
    let body = Bytes::from(body.to_vec());
    let factory: RequestFactory = Arc::new(move |_| {
        Ok(Request::post("/webhooks/generic")
            .header("host", "127.0.0.1")
            .header("content-type", "application/json")
            .body(Full::new(body.clone()))?)
    });
    closed_loop(address, load.connections, load.duration, factory).await
}

/// Reads a payload file, with a clear error.
pub fn read_payload(path: &Path) -> anyhow::Result<(String, Vec<u8>)> {
    let body =
        std::fs::read(path).with_context(|| format!("cannot read payload {}", path.display()))?;
    let name = path.file_name().map_or_else(
        || path.display().to_string(),
        |n| n.to_string_lossy().into_owned(),
    );
    Ok((name, body))
}
