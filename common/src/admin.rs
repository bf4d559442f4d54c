//! The consumer stages' small HTTP endpoint: `GET /metrics` (Prometheus
//! text) and `GET /health` (200 while the loop makes progress or has
//! nothing to read; 503 with the reason when it is stalled with lag or
//! stopped on a problem, see [`crate::stage_loop::Liveness`]; for container
//! healthchecks), on the stage's `metrics_listen` address. It also samples
//! the consumer group's lag per input partition every few seconds, on its
//! own Kafka client, so the stage's loop never waits for it.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use axum::Router;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use rdkafka::consumer::{BaseConsumer, Consumer as _};
use rdkafka::{Offset, TopicPartitionList};

use crate::kafka::KafkaSettings;
use crate::stage_metrics::StageMetrics;

/// How often the lag is sampled.
const LAG_INTERVAL: Duration = Duration::from_secs(5);
/// Bound on each Kafka request of the sampler.
const LAG_TIMEOUT: Duration = Duration::from_secs(5);

/// Binds `listen` and serves the endpoint on the current runtime until the
/// process exits. Fails at start when the address cannot be bound.
pub async fn serve(listen: &str, metrics: Arc<StageMetrics>) -> anyhow::Result<SocketAddr> {
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| format!("cannot listen on {listen} for /metrics"))?;
    let address = listener.local_addr()?;
    let router = Router::new()
        .route("/health", {
            let metrics = Arc::clone(&metrics);
            get(move || {
                let health = metrics.liveness.health();
                async move {
                    let status = if health.is_healthy() {
                        StatusCode::OK
                    } else {
                        StatusCode::SERVICE_UNAVAILABLE
                    };
                    (status, format!("{}\n", health.describe()))
                }
            })
        })
        .route(
            "/metrics",
            get(move || {
                let metrics = Arc::clone(&metrics);
                async move {
                    (
                        [(
                            header::CONTENT_TYPE,
                            "application/openmetrics-text; version=1.0.0; charset=utf-8",
                        )],
                        metrics.encode(),
                    )
                        .into_response()
                }
            }),
        );
    drop(tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, router).await {
            tracing::error!(error = %e, "the /metrics endpoint stopped");
        }
    }));
    tracing::info!(%address, "serving /metrics and /health");
    Ok(address)
}

/// What a consumer stage's binary starts once its loop is wired: the
/// endpoint ([`serve`]) on `runtime`, and the lag sampler ([`sample_lag`])
/// of `group` on `topic`.
pub fn start(
    runtime: &tokio::runtime::Runtime,
    listen: &str,
    metrics: &Arc<StageMetrics>,
    kafka: &KafkaSettings,
    group: &str,
    topic: &str,
) -> anyhow::Result<()> {
    let _ = runtime.block_on(serve(listen, Arc::clone(metrics)))?;
    sample_lag(kafka, group, topic, Arc::clone(metrics))
}

/// Samples `group`'s lag on every partition of `topic` into `metrics` every
/// few seconds, on a thread of its own, for the life of the process.
pub fn sample_lag(
    kafka: &KafkaSettings,
    group: &str,
    topic: &str,
    metrics: Arc<StageMetrics>,
) -> anyhow::Result<()> {
    let client: BaseConsumer = kafka
        .consumer(group)
        .create()
        .context("cannot create the lag sampler's client")?;
    let topic = topic.to_string();
    let _thread = std::thread::Builder::new()
        .name("lag-sampler".into())
        .spawn(move || {
            let mut lags = std::collections::BTreeMap::new();
            loop {
                if let Err(e) = sample_once(&client, &topic, &metrics, &mut lags) {
                    tracing::debug!(error = %e, "lag sample failed");
                }
                std::thread::sleep(LAG_INTERVAL);
            }
        })
        .context("cannot start the lag sampler")?;
    Ok(())
}

/// One sample. `lags` keeps each partition's last sampled lag: the total
/// `/health` judges by is set from it even when a request of this sample
/// failed (a slow or unreachable broker), so it never lags behind the
/// per-partition gauges.
fn sample_once(
    client: &BaseConsumer,
    topic: &str,
    metrics: &StageMetrics,
    lags: &mut std::collections::BTreeMap<i32, i64>,
) -> anyhow::Result<()> {
    let metadata = client.fetch_metadata(Some(topic), LAG_TIMEOUT)?;
    let mut query = TopicPartitionList::new();
    for t in metadata.topics() {
        for p in t.partitions() {
            let _ = query.add_partition(topic, p.id());
        }
    }
    let committed = client.committed_offsets(query, LAG_TIMEOUT)?;
    let mut failed = None;
    for element in committed.elements() {
        let (low, high) = match client.fetch_watermarks(topic, element.partition(), LAG_TIMEOUT) {
            Ok(watermarks) => watermarks,
            Err(e) => {
                failed = Some(e);
                continue;
            }
        };
        let position = match element.offset() {
            Offset::Offset(offset) => offset,
            _ => low,
        };
        let lag = (high - position).max(0);
        let _ = lags.insert(element.partition(), lag);
        metrics.set_lag(topic, element.partition(), lag);
    }
    metrics.liveness.set_lag(
        lags.values()
            .fold(0i64, |sum, lag| sum.saturating_add(*lag)),
    );
    match failed {
        Some(e) => Err(e.into()),
        None => Ok(()),
    }
}
