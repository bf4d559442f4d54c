//! The comparison receiver: `bench/peer/receiver.py` (FastAPI on uvicorn,
//! confluent-kafka, the same HMAC check, an acknowledged write before each
//! 200), run as a team would deploy it on this machine: one uvicorn worker
//! per core. This module finds its Python, starts it (master and workers),
//! waits until every worker reached the broker, gives the master's pid (its
//! tree holds the workers) for CPU and memory, and stops all of them.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use serde::{Deserialize, Serialize};

use crate::pipeline::{SECRET, SECRET_LABEL, TOLERANCE_SECS};
use crate::process::{Running, free_port};
use crate::procfs;

/// The receiver's source, compiled in so the bench runs the version it was
/// built with.
const RECEIVER_PY: &str = include_str!("../peer/receiver.py");
/// The script that installs its packages into a cached venv and prints the
/// venv's python (also what `scripts/bench.sh` runs).
const INSTALL_SH: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/peer/install.sh");

/// Which headers the peer writes on each record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum PeerHeaders {
    /// One `provider` header: what a team would start with.
    One,
    /// What ingest writes: its metadata (nine fields for the bench's
    /// generic source) form-encoded in the one `ingest-meta` header.
    Ingest,
}

impl PeerHeaders {
    /// Both variants, in report order.
    pub const ALL: [PeerHeaders; 2] = [PeerHeaders::One, PeerHeaders::Ingest];

    /// Its short name: the receiver's `PEER_HEADERS` value.
    pub fn name(self) -> &'static str {
        match self {
            Self::One => "one",
            Self::Ingest => "ingest",
        }
    }

    /// The report's name for a peer writing these headers.
    pub fn label(self) -> &'static str {
        match self {
            Self::One => "Python peer, 1 header",
            Self::Ingest => "Python peer, ingest's header",
        }
    }
}

/// The Python to run the peer with: `given`, else the one the install
/// script of this source tree sets up (when the tree is still there), else
/// none (the peer is skipped).
pub fn python(given: Option<&Path>) -> anyhow::Result<Option<PathBuf>> {
    if let Some(python) = given {
        return Ok(Some(python.to_path_buf()));
    }
    if !Path::new(INSTALL_SH).exists() {
        return Ok(None);
    }
    let output = Command::new("bash")
        .arg(INSTALL_SH)
        .stderr(std::process::Stdio::inherit())
        .output()
        .with_context(|| format!("cannot run {INSTALL_SH}"))?;
    if !output.status.success() {
        bail!(
            "{INSTALL_SH} failed ({}): see its message above",
            output.status
        );
    }
    let path = String::from_utf8_lossy(&output.stdout).trim().to_string();
    anyhow::ensure!(!path.is_empty(), "{INSTALL_SH} printed no python path");
    Ok(Some(PathBuf::from(path)))
}

/// How to run one peer.
#[derive(Debug, Clone)]
pub struct PeerSettings {
    /// The venv's python (with the packages of `bench/peer/requirements.txt`).
    pub python: PathBuf,
    /// uvicorn workers.
    pub workers: usize,
    /// Kafka bootstrap servers.
    pub brokers: String,
    /// The topic it writes.
    pub topic: String,
    /// Which headers it writes.
    pub headers: PeerHeaders,
    /// Where its log, its source and its ready files go.
    pub out_dir: PathBuf,
    /// Names its log (`<name>.log`) and folders.
    pub name: String,
}

/// A running peer: the uvicorn master and its workers.
#[derive(Debug)]
pub struct Peer {
    /// Where it listens.
    pub address: SocketAddr,
    master: Running,
}

impl Peer {
    /// Starts the peer and waits until each worker's producer reached the
    /// broker and `GET /healthz` answers.
    pub async fn start(settings: &PeerSettings) -> anyhow::Result<Self> {
        let app_dir = settings.out_dir.join(&settings.name);
        let ready_dir = app_dir.join("ready");
        std::fs::create_dir_all(&ready_dir)
            .with_context(|| format!("cannot create {}", ready_dir.display()))?;
        for stale in std::fs::read_dir(&ready_dir)?.flatten() {
            let _ = std::fs::remove_file(stale.path());
        }
        let source = app_dir.join("receiver.py");
        std::fs::write(&source, RECEIVER_PY)
            .with_context(|| format!("cannot write {}", source.display()))?;
        let address: SocketAddr = ([127, 0, 0, 1], free_port()?).into();
        let (port, workers) = (address.port().to_string(), settings.workers.to_string());
        let app_dir_text = app_dir.display().to_string();
        let args = [
            "-m",
            "uvicorn",
            "receiver:app",
            "--app-dir",
            &app_dir_text,
            "--host",
            "127.0.0.1",
            "--port",
            &port,
            "--workers",
            &workers,
            "--loop",
            "uvloop",
            "--http",
            "httptools",
            "--no-access-log",
            "--log-level",
            "warning",
        ];
        let env = [
            ("PEER_BROKERS", settings.brokers.clone()),
            ("PEER_TOPIC", settings.topic.clone()),
            ("PEER_SECRET", SECRET.to_string()),
            ("PEER_SECRET_LABEL", SECRET_LABEL.to_string()),
            ("PEER_TOLERANCE_SECS", TOLERANCE_SECS.to_string()),
            ("PEER_HEADERS", settings.headers.name().to_string()),
            ("PEER_READY_DIR", ready_dir.display().to_string()),
        ]
        .map(|(k, v)| (k.to_string(), v));
        let master = Running::start(
            &settings.name,
            &settings.python,
            &args,
            &env,
            &settings.out_dir,
        )?;
        let mut peer = Self { address, master };
        peer.wait_ready(&ready_dir, settings.workers, Duration::from_secs(60))
            .await?;
        peer.master
            .wait_healthy(
                &format!("http://{address}/healthz"),
                Duration::from_secs(10),
            )
            .await?;
        Ok(peer)
    }

    async fn wait_ready(
        &mut self,
        ready_dir: &Path,
        workers: usize,
        timeout: Duration,
    ) -> anyhow::Result<()> {
        let started = Instant::now();
        loop {
            self.check_alive()?;
            let ready = std::fs::read_dir(ready_dir).map_or(0, |d| d.flatten().count());
            if ready >= workers {
                return Ok(());
            }
            if started.elapsed() > timeout {
                bail!(
                    "only {ready} of the peer's {workers} workers were ready after {timeout:?}:\n{}",
                    self.master.log_tail()
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The uvicorn master's pid: its tree holds every worker.
    pub fn pid(&self) -> u32 {
        self.master.pid()
    }

    /// Fails with the log's tail if the master has exited.
    pub fn check_alive(&mut self) -> anyhow::Result<()> {
        if let Some(status) = self.master.exited()? {
            bail!("the peer exited ({status}):\n{}", self.master.log_tail());
        }
        Ok(())
    }
}

impl Drop for Peer {
    /// SIGTERM to the master (uvicorn stops its workers), then SIGKILL to
    /// whatever of the tree is left after 5 s; the master itself is killed
    /// and reaped by [`Running`]'s drop.
    fn drop(&mut self) {
        let tree = procfs::tree(self.pid());
        signal("TERM", &[self.pid()]);
        let started = Instant::now();
        while started.elapsed() < Duration::from_secs(5) && matches!(self.master.exited(), Ok(None))
        {
            std::thread::sleep(Duration::from_millis(50));
        }
        let left: Vec<u32> = tree
            .into_iter()
            .filter(|pid| procfs::stat_of(*pid).is_some())
            .collect();
        signal("KILL", &left);
    }
}

/// Sends `signal` to `pids` with the system's `kill` (this crate forbids
/// the unsafe code a direct call needs).
fn signal(signal: &str, pids: &[u32]) {
    if pids.is_empty() {
        return;
    }
    let _ = Command::new("kill")
        .arg(format!("-{signal}"))
        .args(pids.iter().map(u32::to_string))
        .stderr(std::process::Stdio::null())
        .status();
}
