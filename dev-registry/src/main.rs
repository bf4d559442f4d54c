//! `dev-registry` binary: loads settings, makes sure the schemas topic
//! exists, replays it into memory, then serves the REST API until SIGTERM or
//! Ctrl-C.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use dev_registry::api::{Registry, router};
use dev_registry::kafka_log::{self, KafkaLog};
use dev_registry::settings::{ENV_PREFIX, RegistrySettings};
use dev_registry::store::Store;

/// How long reading the schemas topic at start may take.
const RESTORE_TIMEOUT: Duration = Duration::from_secs(60);

/// A small Confluent-compatible schema registry, FOR DEVELOPMENT AND TESTS
/// ONLY (Avro, BACKWARD compatibility, single instance, no auth, no deletes).
///
/// Schemas live in a compacted Kafka topic (`_schemas` by default, created
/// if missing) and are replayed at start, so the process is stateless.
/// Settings come from the TOML file given with --config, then from
/// environment variables `REGISTRY__<SECTION>__<KEY>` (e.g.
/// `REGISTRY__LISTEN=127.0.0.1:8081`, `REGISTRY__KAFKA__BROKERS=kafka:9092`,
/// `REGISTRY__SCHEMAS_TOPIC=_schemas`).
#[derive(Debug, Parser)]
#[command(version, about, long_about)]
struct Args {
    /// TOML settings file (keys: listen, schemas_topic, [kafka]).
    #[arg(long, env = "REGISTRY_CONFIG")]
    config: Option<PathBuf>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let _telemetry = common::telemetry::init("dev-registry");
    let settings: RegistrySettings = common::config::load(ENV_PREFIX, args.config.as_deref())?;
    let topic = settings.schemas_topic.clone();
    let addr: SocketAddr = settings
        .listen
        .parse()
        .with_context(|| format!("listen address `{}` is not host:port", settings.listen))?;

    kafka_log::ensure_topic(&settings.kafka, &topic).await?;
    let kafka = settings.kafka.clone();
    let replay_topic = topic.clone();
    let records = tokio::task::spawn_blocking(move || {
        kafka_log::read_all(&kafka, &replay_topic, RESTORE_TIMEOUT)
    })
    .await??;
    let mut store = Store::new();
    let report = store.restore(records);
    for reason in &report.rejected {
        tracing::warn!(topic = %topic, %reason, "ignored a stored schema record");
    }
    tracing::info!(
        topic = %topic,
        schemas = store.schema_count(),
        versions = store.version_count(),
        superseded = report.superseded,
        rejected = report.rejected.len(),
        "restored schemas"
    );

    let log = KafkaLog::new(&settings.kafka, topic.clone())?;
    let registry = Arc::new(Registry::new(store, log));
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot listen on {addr}"))?;
    tracing::info!(%addr, brokers = %settings.kafka.brokers, topic = %topic, "dev-registry listening (development only)");
    axum::serve(listener, router(registry))
        .with_graceful_shutdown(common::shutdown::signal())
        .await?;
    tracing::info!("dev-registry stopped");
    Ok(())
}
