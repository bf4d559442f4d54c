//! Issue 10, measurement 1: ingest under load, with its ceilings measured
//! in the same run, for each payload:
//!
//! 1. the bare HTTP ceiling (`bare_http`: same server loop, no Kafka);
//! 2. the broker ceiling (`broker_ceiling`: an rdkafka producer alone), with
//!    the payload only and with the headers ingest adds;
//! 3. ingest itself, generic HMAC source, every request signed.
//!
//! Afterwards the records on ingest's raw topic are counted: every 200 must
//! be there. Ingest's peak RSS under load is sampled.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::Context as _;
use axum::body::Bytes;
use http_body_util::Full;
use hyper::Request;
use ingest::settings::SourceSettings;
use serde::Serialize;

use crate::http_load::{LoadResult, RequestFactory, closed_loop};
use crate::process::{Running, free_port, sample_peak_rss};
use crate::{broker_ceiling, topics};

/// The generic source's configuration: HMAC-SHA256 with a bench secret.
const SOURCE_TOML: &str = r#"
[[sources]]
name = "generic"
provider = "generic"
  [[sources.checks]]
  kind = "hmac-sha256"
  tolerance_secs = 300
  secrets = [{ label = "bench", value = "bench-generic-secret" }]
"#;

/// Where the bench runs and how hard.
#[derive(Debug, Clone)]
pub struct IngestLoad {
    /// Kafka bootstrap servers.
    pub brokers: String,
    /// Directory with the pipeline's binaries (release builds for figures).
    pub bin_dir: PathBuf,
    /// This program, to start the bare HTTP server as a child.
    pub self_exe: PathBuf,
    /// Logs and results go here.
    pub out_dir: PathBuf,
    /// Concurrent connections (and producer senders for the ceiling).
    pub connections: usize,
    /// Duration of each measurement.
    pub duration: Duration,
    /// Unique per run; prefixes the topics.
    pub run_id: String,
}

/// The measurements for one payload.
#[derive(Debug, Clone, Serialize)]
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
}

impl PayloadResult {
    /// The measurements with their report names, baselines first.
    pub fn runs(&self) -> [(&'static str, &LoadResult); 4] {
        [
            ("bare HTTP ceiling", &self.bare_http),
            ("broker ceiling, payload only", &self.broker_ceiling),
            (
                "broker ceiling, ingest's record",
                &self.broker_ceiling_with_headers,
            ),
            ("ingest", &self.ingest),
        ]
    }
}

/// Runs the measurements for each `(name, body)` payload.
pub async fn run(
    load: &IngestLoad,
    payloads: &[(String, Vec<u8>)],
) -> anyhow::Result<Vec<PayloadResult>> {
    let ceiling_topics = topics::create(
        &load.bin_dir,
        &load.brokers,
        &format!("bench.{}.ceiling.", load.run_id),
    )?;
    let ingest_topics = topics::create(
        &load.bin_dir,
        &load.brokers,
        &format!("bench.{}.ingest.", load.run_id),
    )?;
    let source = generic_source()?;
    let ingest = start_ingest(load, &ingest_topics.prefix).await?;
    let ingest_address: SocketAddr = ingest.1;
    let mut results = Vec::with_capacity(payloads.len());
    for (name, body) in payloads {
        eprintln!(
            "ingest load, payload {name} ({} B): bare HTTP ceiling",
            body.len()
        );
        let bare_http = measure_bare_http(load, body).await?;
        eprintln!("ingest load, payload {name}: broker ceiling, payload only");
        let ceiling = broker_ceiling::measure(
            &load.brokers,
            &ceiling_topics.raw(),
            body,
            None,
            load.connections,
            load.duration,
        )
        .await?;
        eprintln!("ingest load, payload {name}: broker ceiling, ingest's record with headers");
        let ceiling_with_headers = broker_ceiling::measure(
            &load.brokers,
            &ceiling_topics.raw(),
            body,
            Some(broker_ceiling::ingest_record_headers()),
            load.connections,
            load.duration,
        )
        .await?;
        eprintln!("ingest load, payload {name}: ingest");
        let before = topics::count_records(&load.brokers, &ingest_topics.raw())?;
        let stop = Arc::new(AtomicBool::new(false));
        let sampler = {
            let stop = Arc::clone(&stop);
            let pid = ingest.0.pid();
            std::thread::spawn(move || sample_peak_rss(pid, &stop))
        };
        let measured = closed_loop(
            ingest_address,
            load.connections,
            load.duration,
            signed_requests(&source, body.clone()),
        )
        .await;
        stop.store(true, Ordering::Relaxed);
        let peak_rss = sampler.join().unwrap_or(0);
        let measured = measured?;
        let after = topics::count_records(&load.brokers, &ingest_topics.raw())?;
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
        });
    }
    drop(ingest);
    Ok(results)
}

fn ratio(measured: f64, baseline: f64) -> f64 {
    if baseline > 0.0 {
        measured / baseline
    } else {
        0.0
    }
}

fn generic_source() -> anyhow::Result<SourceSettings> {
    #[derive(serde::Deserialize)]
    struct File {
        sources: Vec<SourceSettings>,
    }
    let file: File = toml::from_str(SOURCE_TOML).context("the bench's source config")?;
    file.sources
        .into_iter()
        .next()
        .context("the bench's source config has no source")
}

async fn start_ingest(load: &IngestLoad, prefix: &str) -> anyhow::Result<(Running, SocketAddr)> {
    let port = free_port()?;
    let address: SocketAddr = ([127, 0, 0, 1], port).into();
    let config = load.out_dir.join("ingest.toml");
    std::fs::write(&config, SOURCE_TOML)
        .with_context(|| format!("cannot write {}", config.display()))?;
    let env = vec![
        ("INGEST_CONFIG".to_string(), config.display().to_string()),
        ("INGEST__LISTEN".to_string(), address.to_string()),
        ("INGEST__KAFKA__BROKERS".to_string(), load.brokers.clone()),
        ("INGEST__TOPICS__PREFIX".to_string(), prefix.to_string()),
        ("RUST_LOG".to_string(), "warn".to_string()),
    ];
    let mut ingest = Running::start(
        "ingest",
        &load.bin_dir.join("ingest"),
        &[],
        &env,
        &load.out_dir,
    )?;
    ingest
        .wait_healthy(&format!("http://{address}/readyz"), Duration::from_secs(30))
        .await?;
    Ok((ingest, address))
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
        &load.out_dir,
    )?;
    server
        .wait_healthy(
            &format!("http://{address}/healthz"),
            Duration::from_secs(10),
        )
        .await?;
    let body = Bytes::from(body.to_vec());
    let factory: RequestFactory = Arc::new(move || {
        Ok(Request::post("/webhooks/generic")
            .header("host", "127.0.0.1")
            .header("content-type", "application/json")
            .body(Full::new(body.clone()))?)
    });
    closed_loop(address, load.connections, load.duration, factory).await
}

/// Requests signed at send time, as a provider would.
fn signed_requests(source: &SourceSettings, body: Vec<u8>) -> RequestFactory {
    let source = source.clone();
    let body = Bytes::from(body);
    Arc::new(move || {
        let now = SystemTime::now().duration_since(UNIX_EPOCH)?.as_secs() as i64;
        let signed = ingest::send::sign(&source, &body, now, &|_| None)?;
        let mut request = Request::post("/webhooks/generic")
            .header("host", "127.0.0.1")
            .header("content-type", "application/json");
        for (name, value) in &signed.headers {
            request = request.header(name, value);
        }
        Ok(request.body(Full::new(body.clone()))?)
    })
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
