//! Issue 10, measurement 3: each consumer stage catching up on a backlog
//! (100k records waiting, one instance), stage after stage, records/s from
//! its first output to its last. Baselines in the same run:
//!
//! - normalize against a bare consumer that reads the same records with
//!   the same consumer settings and parses each with `serde_json`;
//! - the sink against PostgreSQL `COPY` of the same rows (taken from the
//!   sink's own tables afterwards) into the same tables in a fresh
//!   database, in one transaction.
//!
//! Dedupe has no baseline the issue asks for. Two ceilings say what the
//! broker alone allows each stage: a bare consumer of its input topic (no
//! parse, no output; dedupe and the sink), and the stage's own writes
//! produced again unchanged, batch by batch ([`crate::write_ceiling`];
//! normalize and dedupe).

use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use axum::body::Bytes;
use common::kafka::KafkaSettings;
use futures::{SinkExt as _, TryStreamExt as _};
use ingest::record::{Arrival, headers, kafka_headers};
use ingest::settings::RawMetadata;
use ingest::verify::Verdict;
use rdkafka::Message as _;
use rdkafka::consumer::{BaseConsumer, Consumer as _};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord, Producer as _};
use serde::{Deserialize, Serialize};

use crate::pipeline::{Infra, Pipeline, Service};
use crate::write_ceiling::{self, read_all_blocking};
use crate::{requests, topics};

/// Properties the backlog's events are spread over.
const PROPERTIES: u64 = 5_000;
/// A stage that makes no progress for this long has failed.
const STALL: Duration = Duration::from_secs(60);

/// How big a backlog.
#[derive(Debug, Clone)]
pub struct CatchUpLoad {
    /// Infrastructure and binaries.
    pub infra: Infra,
    /// Records waiting on `webhooks.raw`.
    pub records: u64,
    /// Unique per run.
    pub run_id: String,
}

/// One stage's (or baseline's) catch-up.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize)]
pub struct Rate {
    /// Records processed in the timed window.
    pub records: u64,
    /// Length of the window, s.
    pub secs: f64,
    /// Records per second.
    pub per_sec: f64,
}

impl Rate {
    /// `records` in `secs`.
    pub fn new(records: u64, secs: f64) -> Self {
        Self {
            records,
            secs,
            per_sec: records as f64 / secs.max(f64::EPSILON),
        }
    }
}

/// What the run measured.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CatchUpResult {
    /// Backlog size.
    pub records: u64,
    /// Bare consume + `serde_json` parse.
    pub normalize_baseline: Rate,
    /// The broker taking normalize's writes again, alone.
    #[serde(default)]
    pub normalize_write_ceiling: Rate,
    /// Normalize.
    pub normalize: Rate,
    /// A bare consumer of dedupe's input topic.
    #[serde(default)]
    pub dedupe_consume_ceiling: Rate,
    /// The broker taking dedupe's writes (outputs, then changelog) again, alone.
    #[serde(default)]
    pub dedupe_write_ceiling: Rate,
    /// Dedupe.
    pub dedupe: Rate,
    /// A bare consumer of the sink's input topic.
    #[serde(default)]
    pub sink_consume_ceiling: Rate,
    /// The sink.
    pub sink: Rate,
    /// PostgreSQL `COPY` of the same rows.
    pub sink_baseline: Rate,
    /// normalize ÷ its baseline.
    pub normalize_ratio: f64,
    /// sink ÷ its baseline.
    pub sink_ratio: f64,
}

/// Runs the measurement.
pub async fn run(load: &CatchUpLoad) -> anyhow::Result<CatchUpResult> {
    let mut pipeline = Pipeline::create(&load.infra, &format!("{}-catchup", load.run_id)).await?;
    let brokers = load.infra.brokers.clone();
    let n = load.records;
    eprintln!("catch-up: writing {n} raw records");
    fill_raw(&brokers, &pipeline.topics.raw(), n).await?;

    eprintln!("catch-up: baseline, bare consume + serde_json");
    let normalize_baseline =
        bare_consume_off_runtime(&brokers, &pipeline.topics.raw(), n, true).await?;

    eprintln!("catch-up: normalize");
    pipeline.start(Service::Normalize).await?;
    let normalized = pipeline.topics.normalized();
    let normalize = time_stage(&mut pipeline, n, |_| {
        let count = topics::count_records(&brokers, &normalized);
        async move { count }
    })
    .await?;

    eprintln!("catch-up: ceiling, the broker taking normalize's writes again");
    let ceiling = topics::create(
        &load.infra.bin_dir,
        &brokers,
        &format!("bench.{}-ceiling.", load.run_id),
    )?;
    let normalized_again = read_all_blocking(
        &brokers,
        &pipeline.topics.normalized(),
        &ceiling.normalized(),
    )
    .await?;
    let normalize_write_ceiling =
        write_ceiling::measure(&brokers, n as usize, &[normalized_again]).await?;
    eprintln!("catch-up: ceiling, bare consume of dedupe's input");
    let dedupe_consume_ceiling =
        bare_consume_off_runtime(&brokers, &pipeline.topics.normalized(), n, false).await?;
    eprintln!("catch-up: dedupe");
    pipeline.start(Service::Dedupe).await?;
    let events = pipeline.topics.events();
    let dedupe = time_stage(&mut pipeline, n, |_| {
        let count = topics::count_records(&brokers, &events);
        async move { count }
    })
    .await?;

    eprintln!("catch-up: ceiling, the broker taking dedupe's writes again");
    // One round trip for the outputs (events and snapshots), one for the
    // changelog, per batch: as dedupe writes them.
    let mut snapshots = read_all_blocking(&brokers, &pipeline.topics.latest(), &ceiling.latest())
        .await?
        .into_iter();
    let mut outputs = Vec::new();
    for event in read_all_blocking(&brokers, &events, &ceiling.events()).await? {
        outputs.push(event);
        outputs.extend(snapshots.next());
    }
    outputs.extend(snapshots);
    let streams = [
        outputs,
        read_all_blocking(&brokers, &pipeline.topics.seen(), &ceiling.seen()).await?,
    ];
    let dedupe_write_ceiling = write_ceiling::measure(&brokers, n as usize, &streams).await?;
    drop(streams);
    eprintln!("catch-up: ceiling, bare consume of the sink's input");
    let sink_consume_ceiling = bare_consume_off_runtime(&brokers, &events, n, false).await?;
    eprintln!("catch-up: sink");
    let (db, connection) = tokio_postgres::connect(&pipeline.database_url(), tokio_postgres::NoTls)
        .await
        .context("cannot connect to the bench database")?;
    drop(tokio::spawn(connection));
    pipeline.start(Service::Sink).await?;
    // Progress is the sum of the offsets the sink stored: they commit with
    // the rows, in one transaction, and each record here is one row.
    // Reading a tiny table every 50 ms keeps the probe off the database's
    // back; a `count(*)` of the growing events table cost a fifth of a core.
    let sink = time_stage(&mut pipeline, n, |_| async {
        let taken: i64 = db
            .query_one(
                "SELECT coalesce(sum(next_offset), 0)::int8 FROM sink_offsets",
                &[],
            )
            .await
            .map(|row| row.get(0))
            .unwrap_or(0);
        Ok(taken)
    })
    .await?;
    drop(pipeline);
    let rows: i64 = db
        .query_one("SELECT count(*) FROM property_events", &[])
        .await?
        .get(0);
    if rows as u64 != n {
        bail!("the sink took {n} records but property_events holds {rows} rows");
    }

    eprintln!("catch-up: baseline, PostgreSQL COPY of the same rows");
    let sink_baseline =
        copy_baseline(&load.infra, &db, &format!("bench_{}_copy", load.run_id)).await?;
    Ok(CatchUpResult {
        records: n,
        normalize_ratio: normalize.per_sec / normalize_baseline.per_sec.max(f64::EPSILON),
        sink_ratio: sink.per_sec / sink_baseline.per_sec.max(f64::EPSILON),
        normalize_baseline,
        normalize_write_ceiling,
        normalize,
        dedupe_consume_ceiling,
        dedupe_write_ceiling,
        dedupe,
        sink_consume_ceiling,
        sink,
        sink_baseline,
    })
}

/// Writes `n` generic webhooks with ingest's metadata (its default layout,
/// the one `ingest-meta` header), as ingest would.
async fn fill_raw(brokers: &str, topic: &str, n: u64) -> anyhow::Result<()> {
    let producer: FutureProducer = KafkaSettings {
        brokers: brokers.to_string(),
        ..KafkaSettings::default()
    }
    .producer()
    .set("linger.ms", "20")
    .create()
    .context("cannot create the backlog producer")?;
    let verdict = Verdict::new("hmac-sha256", "bench");
    let received_at_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_millis() as i64;
    let mut pending = Vec::with_capacity(10_000);
    for i in 0..n {
        let body: Bytes = requests::property_created(
            &format!("evt-{i}"),
            &format!("prop-{}", i % PROPERTIES),
            500_000 + i,
        );
        let request_id = format!("bench-{i}");
        let traceparent = common::traceparent::new_root();
        let arrival = Arrival {
            source: "generic",
            provider: common::ProviderKind::Generic,
            content_type: "application/json",
            received_at_ms,
            request_id: &request_id,
            verdict: &verdict,
            traceparent: &traceparent,
        };
        let record_headers = kafka_headers(headers(&arrival), RawMetadata::default())
            .iter()
            .fold(OwnedHeaders::new(), |h, (k, v)| {
                h.insert(Header {
                    key: k,
                    value: Some(v.as_bytes()),
                })
            });
        let record = FutureRecord::<str, [u8]>::to(topic)
            .payload(&body[..])
            .headers(record_headers);
        match producer.send_result(record) {
            Ok(delivery) => pending.push(delivery),
            Err((e, _)) => bail!("cannot queue record {i}: {e}"),
        }
        if pending.len() == 10_000 || i + 1 == n {
            for delivery in pending.drain(..) {
                let _ = delivery
                    .await
                    .context("the producer dropped a record")?
                    .map_err(|(e, _)| e)
                    .context("the broker refused a record")?;
            }
            eprintln!("  {} / {n}", i + 1);
        }
    }
    let _ = producer.flush(Duration::from_secs(30));
    Ok(())
}

/// [`bare_consume`], off the async runtime.
async fn bare_consume_off_runtime(
    brokers: &str,
    topic: &str,
    n: u64,
    parse_json: bool,
) -> anyhow::Result<Rate> {
    let (brokers, topic) = (brokers.to_string(), topic.to_string());
    tokio::task::spawn_blocking(move || bare_consume(&brokers, &topic, n, parse_json))
        .await
        .context("the bare consumer panicked")?
}

/// A consumer with the stages' settings reading `n` records of `topic` in a
/// group of its own; with `parse_json`, `serde_json` parses each (the
/// normalize baseline).
fn bare_consume(brokers: &str, topic: &str, n: u64, parse_json: bool) -> anyhow::Result<Rate> {
    let consumer: BaseConsumer = KafkaSettings {
        brokers: brokers.to_string(),
        ..KafkaSettings::default()
    }
    .consumer(&format!("{topic}.baseline"))
    .create()
    .context("cannot create the baseline consumer")?;
    consumer.subscribe(&[topic])?;
    let mut seen = 0u64;
    let mut first: Option<Instant> = None;
    let mut last_progress = Instant::now();
    while seen < n {
        match consumer.poll(Duration::from_millis(100)) {
            Some(Ok(message)) => {
                let _ = first.get_or_insert_with(Instant::now);
                if parse_json
                    && serde_json::from_slice::<serde_json::Value>(
                        message.payload().unwrap_or_default(),
                    )
                    .is_err()
                {
                    bail!("record {} of the backlog is not JSON", message.offset());
                }
                seen += 1;
                last_progress = Instant::now();
            }
            Some(Err(e)) => bail!("the baseline consumer failed: {e}"),
            None if last_progress.elapsed() > STALL => {
                bail!("the baseline consumer read only {seen} of {n} records")
            }
            None => {}
        }
    }
    let secs = first.map_or(0.0, |t| t.elapsed().as_secs_f64());
    Ok(Rate::new(n.saturating_sub(1), secs))
}

/// Times a stage from its first output to its `n`th: polls `count` every
/// 50 ms; fails when a service dies or nothing moves for a minute.
async fn time_stage<F, Fut>(pipeline: &mut Pipeline, n: u64, count: F) -> anyhow::Result<Rate>
where
    F: Fn(()) -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<i64>>,
{
    let mut first: Option<(Instant, i64)> = None;
    let mut last = 0;
    let mut last_progress = Instant::now();
    loop {
        pipeline.check_alive()?;
        let now = count(()).await?;
        if now > 0 && first.is_none() {
            first = Some((Instant::now(), now));
        }
        if now as u64 >= n {
            let (started, at_start) = first.unwrap_or((Instant::now(), now));
            return Ok(Rate::new(
                (now - at_start) as u64,
                started.elapsed().as_secs_f64(),
            ));
        }
        if now != last {
            last = now;
            last_progress = Instant::now();
        } else if last_progress.elapsed() > STALL {
            bail!("stalled at {now} of {n} records");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The sink baseline: the sink's rows, copied out, then `COPY`-ed into the
/// same tables of a fresh database in one transaction (the timed part).
async fn copy_baseline(
    infra: &Infra,
    source: &tokio_postgres::Client,
    database: &str,
) -> anyhow::Result<Rate> {
    let tables = ["properties", "property_events"];
    let mut dumps = Vec::new();
    for table in tables {
        let stream = source
            .copy_out(&format!("COPY {table} TO STDOUT (FORMAT binary)"))
            .await
            .with_context(|| format!("cannot copy {table} out"))?;
        let chunks: Vec<Bytes> = stream.try_collect().await?;
        dumps.push((table, chunks));
    }
    let rows: i64 = source
        .query_one("SELECT count(*) FROM property_events", &[])
        .await?
        .get(0);
    let (admin, connection) = tokio_postgres::connect(
        &format!(
            "host=127.0.0.1 port={} user=postgres dbname=postgres",
            infra.pg_port
        ),
        tokio_postgres::NoTls,
    )
    .await?;
    drop(tokio::spawn(connection));
    admin
        .batch_execute(&format!("CREATE DATABASE {database} OWNER estate"))
        .await
        .with_context(|| format!("cannot create {database}"))?;
    let (mut target, connection) = tokio_postgres::connect(
        &format!(
            "host=127.0.0.1 port={} user=estate dbname={database}",
            infra.pg_port
        ),
        tokio_postgres::NoTls,
    )
    .await?;
    drop(tokio::spawn(connection));
    let _ = sink::migrate::apply(&mut target).await?;
    let started = Instant::now();
    let transaction = target.transaction().await?;
    for (table, chunks) in dumps {
        let sink = transaction
            .copy_in::<_, Bytes>(&format!("COPY {table} FROM STDIN (FORMAT binary)"))
            .await
            .with_context(|| format!("cannot copy into {table}"))?;
        futures::pin_mut!(sink);
        let mut chunks =
            futures::stream::iter(chunks.into_iter().map(Ok::<_, tokio_postgres::Error>));
        sink.send_all(&mut chunks).await?;
        let _ = sink.finish().await?;
    }
    transaction.commit().await?;
    Ok(Rate::new(rows as u64, started.elapsed().as_secs_f64()))
}
