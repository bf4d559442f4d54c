//! Issue 10, measurement 1, and issue 22's comparison: ingest under load on
//! one broker, next to what bounds it and what a Python team would deploy,
//! measured in the same run. For each payload and connection count
//! (closed loop):
//!
//! 1. the bare HTTP ceiling (`bare_http`: same server loop, no Kafka);
//! 2. the broker ceiling (`broker_ceiling`: an rdkafka producer alone), with
//!    the payload only and with the headers ingest adds;
//! 3. ingest itself, generic HMAC source, every request signed;
//! 4. the Python peer (`peer`), writing one header, then ingest's
//!    `ingest-meta` header.
//!
//! For ingest and each peer the records on its topic are counted (every
//! 200 must be there), and its CPU per 1,000 webhooks and peak RSS are
//! read (workers included). For the first payload at the first connection
//! count, ingest is measured again with an attacker beside it (`attack`:
//! unsigned 1 MiB bodies that pass every check made before the body). Then,
//! for the first payload, an open-loop search finds the highest rate ingest,
//! the one-header peer and the bare HTTP server each sustain within a p99.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::Context as _;
use axum::body::Bytes;

use crate::http_load::{RequestFactory, closed_loop};
use crate::ingest_result::{OpenLoopRun, PayloadResult, PeerRun, UnderAttack, ratio};
use crate::open_loop_search::{self, SearchSettings};
use crate::peer::PeerHeaders;
use crate::pipeline::Infra;
use crate::receiver_load::{self, Receiver};
use crate::receivers::{PeerPlan, Receivers};
use crate::{attack, bare_http, broker_ceiling, requests, topics};

/// Attacking connections beside the legit load.
const ATTACK_CONNECTIONS: usize = 4;

/// Where the bench runs and how hard.
#[derive(Debug, Clone)]
pub struct IngestLoad {
    /// The infrastructure and the binaries (release builds for figures);
    /// its brokers are the ones measured.
    pub infra: Infra,
    /// The broker's label (`sqlite://`, `memory://`).
    pub broker: String,
    /// This program, to start the bare HTTP server as a child.
    pub self_exe: PathBuf,
    /// Connection counts (and producer senders for the ceilings), each
    /// measured in turn.
    pub connections: Vec<usize>,
    /// Duration of each measurement.
    pub duration: Duration,
    /// Unique per run and broker; prefixes the topics.
    pub run_id: String,
    /// The Python peers, or none to skip them.
    pub peers: Option<PeerPlan>,
    /// The open-loop search, or none to skip it.
    pub open_loop: Option<SearchSettings>,
}

/// What the scenario measured on one broker.
#[derive(Debug, Clone, Default)]
pub struct IngestRun {
    /// Per payload and connection count.
    pub payloads: Vec<PayloadResult>,
    /// The open-loop searches (first payload).
    pub open_loop: Vec<OpenLoopRun>,
}

/// Signed requests carrying `body`.
fn signed(body: &[u8]) -> anyhow::Result<RequestFactory> {
    let body = Bytes::from(body.to_vec());
    Ok(requests::signed(&requests::generic_source()?, move |_| {
        body.clone()
    }))
}

/// Runs the measurements for each `(name, body)` payload.
pub async fn run(load: &IngestLoad, payloads: &[(String, Vec<u8>)]) -> anyhow::Result<IngestRun> {
    let brokers = &load.infra.brokers;
    let ceiling_topic = topics::create(
        &load.infra.bin_dir,
        brokers,
        &format!("bench.{}.ceiling.", load.run_id),
    )?
    .raw();
    let mut receivers = Receivers::start(
        &load.infra,
        &load.self_exe,
        &load.run_id,
        load.peers.as_ref(),
    )
    .await?;
    let mut run = IngestRun::default();
    for (name, body) in payloads {
        for &connections in &load.connections {
            let say = |what: &str| {
                eprintln!(
                    "ingest load on {}, payload {name} ({} B), {connections} connections: {what}",
                    load.broker,
                    body.len()
                );
            };
            say("bare HTTP ceiling");
            let bare_http = closed_loop(
                receivers.bare_http,
                connections,
                load.duration,
                bare_http::request(body),
            )
            .await?;
            say("broker ceiling, payload only");
            let ceiling = broker_ceiling::measure(
                brokers,
                &ceiling_topic,
                body,
                None,
                connections,
                load.duration,
            )
            .await?;
            say("broker ceiling, ingest's record with headers");
            let ceiling_with_headers = broker_ceiling::measure(
                brokers,
                &ceiling_topic,
                body,
                Some(broker_ceiling::ingest_record_headers(
                    ingest::settings::RawMetadata::default(),
                )),
                connections,
                load.duration,
            )
            .await?;
            say("ingest");
            let ingest = receiver_load::measure(
                &receivers.ingest,
                connections,
                load.duration,
                signed(body)?,
            )
            .await?;
            let mut peers = Vec::new();
            for peer in &receivers.peers {
                say(peer.headers.label());
                peers.push(PeerRun {
                    headers: peer.headers,
                    workers: peer.workers,
                    run: receiver_load::measure(
                        &peer.receiver,
                        connections,
                        load.duration,
                        signed(body)?,
                    )
                    .await?,
                });
            }
            let under_attack = if run.payloads.is_empty() {
                say(&format!(
                    "ingest with {ATTACK_CONNECTIONS} attacking connections beside it"
                ));
                Some(
                    under_attack(
                        &receivers.ingest,
                        connections,
                        load.duration,
                        body,
                        ingest.load.requests_per_sec,
                    )
                    .await?,
                )
            } else {
                None
            };
            receivers.check_alive()?;
            let rate = ingest.load.requests_per_sec;
            run.payloads.push(PayloadResult {
                broker: load.broker.clone(),
                connections,
                payload: name.clone(),
                bytes: body.len(),
                ratio_to_broker_ceiling: ratio(rate, ceiling.requests_per_sec),
                ratio_to_broker_ceiling_with_headers: ratio(
                    rate,
                    ceiling_with_headers.requests_per_sec,
                ),
                ratio_to_bare_http: ratio(rate, bare_http.requests_per_sec),
                bare_http,
                broker_ceiling: ceiling,
                broker_ceiling_with_headers: ceiling_with_headers,
                ingest_records_on_topic: ingest.records_on_topic,
                ingest_peak_rss_bytes: ingest.peak_rss_bytes,
                ingest_cpu_secs: ingest.cpu_secs,
                ingest: ingest.load,
                under_attack,
                peers,
            });
        }
    }
    if let (Some(settings), Some((name, body)), Some(first)) =
        (&load.open_loop, payloads.first(), run.payloads.first())
    {
        run.open_loop = open_loop(load, &receivers, settings, name, body, first).await?;
        receivers.check_alive()?;
    }
    drop(receivers);
    Ok(run)
}

/// Ingest's legit load measured again beside the attacker.
async fn under_attack(
    ingest: &Receiver,
    connections: usize,
    duration: Duration,
    body: &[u8],
    unattacked_per_sec: f64,
) -> anyhow::Result<UnderAttack> {
    let before = topics::count_records(&ingest.brokers, &ingest.topic)?;
    let stop = Arc::new(AtomicBool::new(false));
    let attacker = tokio::spawn(attack::run(
        ingest.address,
        ATTACK_CONNECTIONS,
        Arc::clone(&stop),
    ));
    let legit = closed_loop(ingest.address, connections, duration, signed(body)?).await;
    stop.store(true, Ordering::Relaxed);
    let attack = attacker.await.context("the attacker panicked")?;
    let legit = legit?;
    let records_on_topic = topics::count_records(&ingest.brokers, &ingest.topic)? - before;
    Ok(UnderAttack {
        records_on_topic,
        ratio_to_unattacked: ratio(legit.requests_per_sec, unattacked_per_sec),
        legit,
        attack,
    })
}

/// The open-loop searches for ingest, the one-header peer and the bare
/// HTTP server, each starting at a quarter of its closed-loop rate at the
/// first connection count.
async fn open_loop(
    load: &IngestLoad,
    receivers: &Receivers,
    settings: &SearchSettings,
    name: &str,
    body: &[u8],
    closed: &PayloadResult,
) -> anyhow::Result<Vec<OpenLoopRun>> {
    let mut targets = vec![(
        "ingest",
        receivers.ingest.address,
        closed.ingest.requests_per_sec,
        signed(body)?,
    )];
    if let (Some(peer), Some(measured)) = (
        receivers.peer(PeerHeaders::One),
        closed.peer(PeerHeaders::One),
    ) {
        targets.push((
            PeerHeaders::One.label(),
            peer.receiver.address,
            measured.run.load.requests_per_sec,
            signed(body)?,
        ));
    }
    targets.push((
        "bare HTTP ceiling",
        receivers.bare_http,
        closed.bare_http.requests_per_sec,
        bare_http::request(body),
    ));
    let mut runs = Vec::new();
    for (receiver, address, closed_rate, request) in targets {
        eprintln!(
            "open loop on {}, payload {name}: {receiver}, from {:.0}/s",
            load.broker,
            closed_rate / 4.0
        );
        let search = open_loop_search::run(address, closed_rate / 4.0, settings, request).await?;
        runs.push(OpenLoopRun {
            broker: load.broker.clone(),
            payload: name.to_string(),
            receiver: receiver.to_string(),
            p99_limit_ms: settings.p99_limit_ms,
            step_secs: settings.step.as_secs_f64(),
            search,
        });
    }
    Ok(runs)
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
