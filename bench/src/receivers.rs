//! The receivers the ingest scenario measures on one broker, started once
//! and kept running through its measurements: ingest (its own topics and
//! database), each Python peer variant (its own topics), and the bare HTTP
//! server. Dropping it stops them all.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context as _;

use crate::pipeline::{Infra, Pipeline, Service};
use crate::process::Running;
use crate::receiver_load::Receiver;
use crate::{bare_http, peer, topics};
use peer::{Peer, PeerHeaders, PeerSettings};

/// How to run the Python peers.
#[derive(Debug, Clone)]
pub struct PeerPlan {
    /// The venv's python.
    pub python: PathBuf,
    /// uvicorn workers per peer.
    pub workers: usize,
}

/// One running peer and the receiver it is.
#[derive(Debug)]
pub struct RunningPeer {
    /// Its headers.
    pub headers: PeerHeaders,
    /// Its workers.
    pub workers: usize,
    /// Where it listens, its tree and its topic.
    pub receiver: Receiver,
    process: Peer,
}

impl RunningPeer {
    /// Creates the peer's topics and starts it.
    async fn start(
        infra: &Infra,
        name: &str,
        plan: &PeerPlan,
        headers: PeerHeaders,
    ) -> anyhow::Result<Self> {
        let peer_name = format!("{name}-peer-{}", headers.name());
        let prefix = format!("bench.{peer_name}.");
        let topic = topics::create(&infra.bin_dir, &infra.brokers, &prefix)?.raw();
        eprintln!("starting {} ({} workers)", headers.label(), plan.workers);
        let process = Peer::start(&PeerSettings {
            python: plan.python.clone(),
            workers: plan.workers,
            brokers: infra.brokers.clone(),
            topic: topic.clone(),
            headers,
            out_dir: infra.out_dir.clone(),
            name: peer_name,
        })
        .await?;
        Ok(Self {
            headers,
            workers: plan.workers,
            receiver: Receiver {
                address: process.address,
                pid: process.pid(),
                brokers: infra.brokers.clone(),
                topic,
            },
            process,
        })
    }
}

/// Everything that answers webhooks on one broker.
#[derive(Debug)]
pub struct Receivers {
    /// Ingest.
    pub ingest: Receiver,
    /// The peers, one header first (none when skipped).
    pub peers: Vec<RunningPeer>,
    /// The bare HTTP server's address.
    pub bare_http: SocketAddr,
    pipeline: Pipeline,
    _bare_server: Running,
}

impl Receivers {
    /// Starts ingest, the peers (when `peers` is given) and the bare HTTP
    /// server; `name` (unique per run and broker) names their topics.
    pub async fn start(
        infra: &Infra,
        self_exe: &std::path::Path,
        name: &str,
        peers: Option<&PeerPlan>,
    ) -> anyhow::Result<Self> {
        let mut pipeline = Pipeline::create(infra, &format!("{name}-ingest")).await?;
        pipeline.start(Service::Ingest).await?;
        let ingest = Receiver {
            address: pipeline.ingest_address,
            pid: pipeline
                .process(Service::Ingest)
                .map(Running::pid)
                .context("ingest did not start")?,
            brokers: infra.brokers.clone(),
            topic: pipeline.topics.raw(),
        };
        let mut running = Vec::new();
        if let Some(plan) = peers {
            for headers in PeerHeaders::ALL {
                running.push(RunningPeer::start(infra, name, plan, headers).await?);
            }
        }
        let (bare_server, bare_http) = bare_http::start(self_exe, &infra.out_dir).await?;
        Ok(Self {
            ingest,
            peers: running,
            bare_http,
            pipeline,
            _bare_server: bare_server,
        })
    }

    /// The peer writing `headers`, if it runs.
    pub fn peer(&self, headers: PeerHeaders) -> Option<&RunningPeer> {
        self.peers.iter().find(|p| p.headers == headers)
    }

    /// Fails with a log's tail if ingest or a peer has exited.
    pub fn check_alive(&mut self) -> anyhow::Result<()> {
        self.pipeline.check_alive()?;
        for peer in &mut self.peers {
            peer.process.check_alive()?;
        }
        Ok(())
    }
}
