//! A pipeline under test: fresh topics (own prefix), a fresh database and
//! the chosen services started from the release binaries, with the same
//! settings a user's local stack has. Dropping it stops the services; the
//! topics and the database stay for inspection.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context as _;
use common::isolated_pipeline::IsolatedPipeline;
use common::topics::TopicNames;

use crate::process::{Running, free_port};
use crate::{procfs, topics};

/// The bench source's HMAC secret (the Python peer checks the same).
pub const SECRET: &str = "bench-generic-secret";
/// The label of [`SECRET`] (the `verify-key` header).
pub const SECRET_LABEL: &str = "bench";
/// The source's timestamp tolerance, seconds.
pub const TOLERANCE_SECS: u64 = 300;

/// The generic source the bench posts to: HMAC-SHA256 with [`SECRET`].
pub fn source_toml() -> String {
    format!(
        r#"
[[sources]]
name = "generic"
provider = "generic"
  [[sources.checks]]
  kind = "hmac-sha256"
  tolerance_secs = {TOLERANCE_SECS}
  secrets = [{{ label = "{SECRET_LABEL}", value = "{SECRET}" }}]
"#
    )
}

/// The shared infrastructure and where to put things.
#[derive(Debug, Clone)]
pub struct Infra {
    /// Kafka bootstrap servers.
    pub brokers: String,
    /// Schema registry base URL.
    pub registry_url: String,
    /// PostgreSQL port on 127.0.0.1 (users `postgres` and `estate`).
    pub pg_port: u16,
    /// Directory with the pipeline's binaries.
    pub bin_dir: PathBuf,
    /// Logs and configs go here.
    pub out_dir: PathBuf,
}

impl Infra {
    /// The same infrastructure with another Kafka bootstrap (the registry
    /// and PostgreSQL stay shared).
    pub fn on_brokers(&self, brokers: &str) -> Self {
        Self {
            brokers: brokers.to_string(),
            ..self.clone()
        }
    }
}

pub use common::isolated_pipeline::Service;

/// A running pipeline.
#[derive(Debug)]
pub struct Pipeline {
    /// Its topics.
    pub topics: TopicNames,
    /// Its database name.
    pub database: String,
    /// Ingest's address, when ingest runs.
    pub ingest_address: SocketAddr,
    infra: Infra,
    name: String,
    running: Vec<(Service, Running)>,
}

impl Pipeline {
    /// Creates topics under `bench.<name>.` and a database `bench_<name>`.
    pub async fn create(infra: &Infra, name: &str) -> anyhow::Result<Self> {
        let topics = topics::create(&infra.bin_dir, &infra.brokers, &format!("bench.{name}."))?;
        let database = format!("bench_{}", name.replace(['-', '.'], "_"));
        let (admin, connection) = tokio_postgres::connect(
            &format!(
                "host=127.0.0.1 port={} user=postgres dbname=postgres",
                infra.pg_port
            ),
            tokio_postgres::NoTls,
        )
        .await
        .with_context(|| {
            format!(
                "cannot connect to PostgreSQL on port {} as postgres",
                infra.pg_port
            )
        })?;
        let connection = tokio::spawn(connection);
        admin
            .batch_execute(&format!("CREATE DATABASE {database} OWNER estate"))
            .await
            .with_context(|| format!("cannot create database {database}"))?;
        drop(admin);
        let _ = connection.await;
        Ok(Self {
            topics,
            database,
            ingest_address: ([127, 0, 0, 1], free_port()?).into(),
            infra: infra.clone(),
            name: name.to_string(),
            running: Vec::new(),
        })
    }

    /// Connection string of the pipeline's database, as `estate`.
    pub fn database_url(&self) -> String {
        format!(
            "host=127.0.0.1 port={} user=estate dbname={}",
            self.infra.pg_port, self.database
        )
    }

    /// Starts `service` (ingest: waits until it is ready).
    pub async fn start(&mut self, service: Service) -> anyhow::Result<()> {
        self.start_with_env(service, &[]).await
    }

    /// [`Self::start`] with `extra` added to the service's environment.
    pub async fn start_with_env(
        &mut self,
        service: Service,
        extra: &[(String, String)],
    ) -> anyhow::Result<()> {
        let ingest_config = self
            .infra
            .out_dir
            .join(format!("{}-ingest.toml", self.name));
        if service == Service::Ingest {
            std::fs::write(&ingest_config, source_toml())
                .with_context(|| format!("cannot write {}", ingest_config.display()))?;
        }
        let pipeline = IsolatedPipeline {
            brokers: self.infra.brokers.clone(),
            topic_prefix: self.topics.prefix.clone(),
            registry_url: self.infra.registry_url.clone(),
            database_url: self.database_url(),
            ingest_listen: self.ingest_address.to_string(),
            ingest_config: ingest_config.display().to_string(),
        };
        // Its own /metrics port, so it never collides with a running stack.
        let metrics_listen = format!("127.0.0.1:{}", free_port()?);
        let mut env = pipeline.env(service, Some(&metrics_listen));
        // Quiet by default; the bench's own RUST_LOG (e.g. `info`, for the
        // per-batch lines) reaches the services' logs.
        env.push((
            "RUST_LOG".to_string(),
            std::env::var("RUST_LOG").unwrap_or_else(|_| "warn".to_string()),
        ));
        env.extend(extra.iter().cloned());
        let mut running = Running::start(
            &format!("{}-{}", self.name, service.name()),
            &self.infra.bin_dir.join(service.name()),
            &[],
            &env,
            &self.infra.out_dir,
        )?;
        if service == Service::Ingest {
            running
                .wait_healthy(
                    &format!("http://{metrics_listen}/readyz"),
                    Duration::from_secs(30),
                )
                .await?;
        }
        self.running.push((service, running));
        Ok(())
    }

    /// The running instance of `service`.
    pub fn process(&self, service: Service) -> Option<&Running> {
        self.running
            .iter()
            .find(|(s, _)| *s == service)
            .map(|(_, r)| r)
    }

    /// The process trees a measurement's CPU is read from, by name: the
    /// broker, PostgreSQL and the registry (found by the ports they listen
    /// on, so another stack's on this machine is not counted), each
    /// service started, and this program.
    pub fn cpu_roots(&self) -> Vec<(String, u32)> {
        let port_of = |address: &str| -> Option<u16> {
            let host_port = address.split(',').next()?.trim();
            let host_port = host_port.strip_prefix("http://").unwrap_or(host_port);
            host_port
                .split('/')
                .next()?
                .rsplit_once(':')?
                .1
                .parse()
                .ok()
        };
        let infrastructure = [
            ("nisshi", port_of(&self.infra.brokers)),
            ("postgres", Some(self.infra.pg_port)),
            ("dev-registry", port_of(&self.infra.registry_url)),
        ];
        infrastructure
            .into_iter()
            .filter_map(|(name, port)| Some((name.to_string(), procfs::listening_pid(port?)?)))
            .chain(
                self.running
                    .iter()
                    .map(|(service, running)| (service.name().to_string(), running.pid())),
            )
            .chain(std::iter::once((
                "estate-bench".to_string(),
                std::process::id(),
            )))
            .collect()
    }

    /// Fails with the log's tail if any started service has exited.
    pub fn check_alive(&mut self) -> anyhow::Result<()> {
        for (service, running) in &mut self.running {
            if let Some(status) = running.exited()? {
                anyhow::bail!(
                    "{} exited ({status}):\n{}",
                    service.name(),
                    running.log_tail()
                );
            }
        }
        Ok(())
    }
}
