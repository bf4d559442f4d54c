//! The broker ceiling: an rdkafka producer alone, with the stages' producer
//! settings (`acks=all`, idempotent, 2 ms of linger, so the senders'
//! records share requests as ingest's lanes make them share), sending the
//! same payload to the same broker from as many concurrent senders as the
//! HTTP load has connections, each waiting for its acknowledgement before
//! the next send.
//! Ingest cannot beat this; the ratio says what the HTTP layer costs.
//!
//! Two variants: the payload alone (the ceiling), and the record
//! ingest actually writes, with its metadata (one `ingest-meta` header by
//! default). Some brokers pay per
//! header (nisshi stores each one as a row), so the second says how much of
//! the gap is the record's shape rather than the HTTP path.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use common::kafka::KafkaSettings;
use ingest::record::{Arrival, headers, kafka_headers};
use ingest::settings::RawMetadata;
use ingest::verify::Verdict;
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord, Producer as _};

use crate::http_load::LoadResult;
use crate::latency::LatencySummary;

/// The headers ingest writes for a signed generic request, in `layout`
/// (the values are representative; sizes match).
pub fn ingest_record_headers(layout: RawMetadata) -> OwnedHeaders {
    let verdict = Verdict {
        skew_ms: Some(-12),
        ..Verdict::new("hmac-sha256", "bench")
    };
    let arrival = Arrival {
        source: "generic",
        provider: common::ProviderKind::Generic,
        content_type: "application/json",
        received_at_ms: 1_700_000_000_000,
        request_id: "3f1c2d3e-4b5a-4c6d-8e9f-0a1b2c3d4e5f",
        verdict: &verdict,
        traceparent: "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
    };
    kafka_headers(headers(&arrival), layout)
        .iter()
        .fold(OwnedHeaders::new(), |h, (key, value)| {
            h.insert(Header {
                key,
                value: Some(value.as_bytes()),
            })
        })
}

/// Produces `payload` (with `record_headers`, if any) to `topic` from
/// `senders` concurrent senders for `duration`; "ok" counts acknowledged
/// records. Records have no key, like ingest's for a generic source.
pub async fn measure(
    brokers: &str,
    topic: &str,
    payload: &[u8],
    record_headers: Option<OwnedHeaders>,
    senders: usize,
    duration: Duration,
) -> anyhow::Result<LoadResult> {
    let settings = KafkaSettings {
        brokers: brokers.to_string(),
        ..KafkaSettings::default()
    };
    let producer: FutureProducer = settings
        .producer()
        .create()
        .context("cannot create the ceiling's producer")?;
    // Untimed warm-up: connect, fetch metadata, get a producer id.
    let _ = producer
        .send(
            FutureRecord::to(topic)
                .payload(payload)
                .key("ceiling-warm-up"),
            Duration::from_secs(30),
        )
        .await
        .map_err(|(error, _)| error)
        .with_context(|| format!("the broker did not accept a record on {topic}"))?;
    let payload: Arc<[u8]> = Arc::from(payload);
    let started = Instant::now();
    let deadline = started + duration;
    let mut tasks = Vec::with_capacity(senders);
    for _ in 0..senders {
        let producer = producer.clone();
        let record_headers = record_headers.clone();
        let payload = Arc::clone(&payload);
        let topic = topic.to_string();
        tasks.push(tokio::spawn(async move {
            let mut ok = 0u64;
            let mut errors = 0u64;
            let mut latencies = Vec::with_capacity(65_536);
            while Instant::now() < deadline {
                let sent = Instant::now();
                let mut record = FutureRecord::<str, [u8]>::to(&topic).payload(&payload[..]);
                if let Some(h) = &record_headers {
                    record = record.headers(h.clone());
                }
                match producer.send(record, Duration::from_secs(10)).await {
                    Ok(_) => {
                        ok += 1;
                        latencies.push(sent.elapsed());
                    }
                    Err(_) => errors += 1,
                }
            }
            (ok, errors, latencies)
        }));
    }
    let mut result = LoadResult {
        warm_up_ok: 1,
        ..LoadResult::default()
    };
    let mut latencies = Vec::new();
    for task in tasks {
        let (ok, errors, samples) = task.await.context("a ceiling sender panicked")?;
        result.ok += ok;
        result.errors += errors;
        latencies.extend(samples);
    }
    let elapsed = started.elapsed().as_secs_f64();
    result.requests_per_sec = result.ok as f64 / elapsed.max(f64::EPSILON);
    result.latency = LatencySummary::of(latencies);
    let flushed = tokio::task::spawn_blocking(move || producer.flush(Duration::from_secs(10)))
        .await
        .context("the flush task panicked")?;
    flushed.context("the ceiling's producer did not flush")?;
    Ok(result)
}
