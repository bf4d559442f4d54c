//! `ingest` binary: loads settings, connects the producer, serves HTTP, and
//! on SIGTERM stops accepting, finishes in-flight requests and flushes.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use ingest::handover::Handover;
use ingest::serve::{ServeSettings, serve};
use ingest::server::{AppState, router};
use ingest::settings::IngestSettings;
use rdkafka::producer::{FutureProducer, Producer};

/// Receives real-estate webhooks, verifies them, and publishes the raw bytes
/// to Kafka (`webhooks.raw`). Answers 200 only after Kafka acknowledged.
///
/// Settings come from the TOML file given with --config, then from
/// environment variables `INGEST__<SECTION>__<KEY>` (e.g.
/// `INGEST__KAFKA__BROKERS=kafka:9092`, `INGEST__LISTEN=0.0.0.0:8080`).
#[derive(Debug, Parser)]
#[command(version, about, long_about)]
struct Args {
    /// TOML settings file (see config/ingest.toml for every option).
    #[arg(long, env = "INGEST_CONFIG")]
    config: Option<PathBuf>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let _telemetry = common::telemetry::init("ingest");
    let settings: IngestSettings = common::config::load("INGEST", args.config.as_deref())?;
    let open_files = ingest::file_limit::ensure(settings.max_connections)?;
    tracing::debug!(open_files, "open-file limit");
    let raw_topic = settings.topics.raw();
    let kafka = settings.kafka.clone();
    let topic_check = raw_topic.clone();
    let partitions = tokio::task::spawn_blocking(move || {
        common::kafka::check_topics(&kafka, &[&topic_check], Duration::from_secs(10))
    })
    .await??
    .first()
    .copied()
    .unwrap_or(1);
    // The lanes group what arrives during a round trip (`handover`), so
    // the producer has nothing to wait for.
    let producer_config = settings.kafka.producer_lingering("0");
    check_record_size(&settings, &raw_topic).await?;
    let producer: FutureProducer = producer_config
        .create()
        .context("cannot create the Kafka producer")?;
    let env = |name: &str| std::env::var(name).ok();
    let (handover, lanes) = Handover::start(&producer, &raw_topic, partitions);
    let state = Arc::new(AppState::new(&settings, producer.clone(), handover, &env)?);
    ingest::readiness::spawn_checker(
        producer.clone(),
        raw_topic.clone(),
        Duration::from_millis(settings.readiness_interval_ms.max(100)),
        state.readiness.clone(),
    );
    let names: Vec<&str> = state.sources.keys().map(String::as_str).collect();
    let addr = parse_address("listen", &settings.listen)?;
    let admin_addr = parse_address("admin_listen", &settings.admin_listen)?;
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot listen on {addr}"))?;
    let admin_listener = tokio::net::TcpListener::bind(admin_addr)
        .await
        .with_context(|| format!("cannot listen on {admin_addr} (admin_listen)"))?;
    // The operator endpoints hold the state too: they stop with the public
    // listener, so that the state, and with it the lanes' queues, can go.
    let operator = ingest::operator::router(Arc::clone(&state));
    let (stop_operator, operator_stopped) = tokio::sync::oneshot::channel::<()>();
    let operator_task = tokio::spawn(async move {
        let stopped = async {
            let _ = operator_stopped.await;
        };
        if let Err(e) = axum::serve(admin_listener, operator)
            .with_graceful_shutdown(stopped)
            .await
        {
            tracing::error!(error = %e, "the operator endpoints stopped");
        }
    });
    tracing::info!(%addr, %admin_addr, topic = %raw_topic, sources = ?names, "ingest listening");
    let serve_settings = ServeSettings {
        header_read_timeout: Duration::from_millis(settings.header_read_timeout_ms),
        drain_timeout: Duration::from_millis(settings.drain_timeout_ms),
        max_header_bytes: settings.max_header_bytes,
        max_connections: settings.max_connections,
        retry_after_secs: settings.retry_after_secs,
    };
    serve(
        listener,
        router(state),
        serve_settings,
        common::shutdown::signal(),
    )
    .await;
    let _ = stop_operator.send(());
    let mut operator_task = operator_task;
    if tokio::time::timeout(Duration::from_secs(2), &mut operator_task)
        .await
        .is_err()
    {
        // A probe's connection held open; the state must go regardless.
        operator_task.abort();
    }
    // The router and its state are gone once every connection ended, and
    // with them the lanes' queues: each lane hands over what was queued,
    // then ends. A connection that outlived the drain bound still holds the
    // state; the flush below then covers what reached the producer.
    let lanes_done =
        tokio::time::timeout(Duration::from_secs(10), futures::future::join_all(lanes));
    if lanes_done.await.is_err() {
        tracing::warn!("records were still queued for the producer after 10 s");
    }
    tracing::info!("flushing the producer");
    let flushed =
        tokio::task::spawn_blocking(move || producer.flush(Duration::from_secs(10))).await?;
    if let Err(e) = flushed {
        tracing::error!(error = %e, "producer flush did not complete");
    }
    Ok(())
}

/// Parses a `host:port` setting, naming the setting when it does not parse.
fn parse_address(name: &str, text: &str) -> anyhow::Result<SocketAddr> {
    text.parse()
        .with_context(|| format!("`{name}` = `{text}` is not host:port"))
}

/// Refuses to start when a body ingest would accept could be refused by
/// the producer or the raw topic for its size (see `ingest::size_limit`).
async fn check_record_size(settings: &IngestSettings, raw_topic: &str) -> anyhow::Result<()> {
    use ingest::size_limit::{self, KAFKA_DEFAULT_MAX_MESSAGE_BYTES, RecordLimits};
    let parse = |what: &str, value: &str| {
        value
            .parse::<usize>()
            .with_context(|| format!("{what} `{value}` is not a number of bytes"))
    };
    let topic_limit = match common::kafka::topic_config(
        &settings.kafka,
        raw_topic,
        "max.message.bytes",
        Duration::from_secs(10),
    )
    .await?
    {
        Some(value) => parse("the topic's max.message.bytes", &value)?,
        None => KAFKA_DEFAULT_MAX_MESSAGE_BYTES,
    };
    size_limit::check(
        settings.body_limit_bytes,
        settings.max_header_bytes,
        RecordLimits {
            // Applied to the producer as `message.max.bytes`.
            producer: settings.kafka.message_max_bytes,
            topic: topic_limit,
        },
        raw_topic,
    )
    .map_err(anyhow::Error::msg)
}
