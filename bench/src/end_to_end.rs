//! Issue 10, measurement 2: end to end. Signed generic webhooks at a fixed
//! rate (open loop) through ingest, normalize, dedupe and the sink into
//! PostgreSQL (the state writer runs beside the sink, as in production);
//! 5 % of them re-deliveries of a recent event.
//!
//! Latency is from the request's arrival at ingest (`received_at`, set by
//! ingest) to the commit of its row, read from PostgreSQL's own commit
//! timestamps (`track_commit_timestamp`, which the local stack turns on;
//! without it, the row's `committed_at`, taken at insert, a few ms before
//! the commit). The backlog drains when the last row is committed; the run
//! checks that the rows are exactly the accepted requests minus duplicates,
//! and splits each row's latency at its records' timestamps ([`hops`]).
//! Each process's CPU over the load (and per 1,000 accepted webhooks) is
//! read from its process tree. The bench runs it on each broker.

use std::collections::HashSet;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context as _, bail};
use serde::{Deserialize, Serialize};

use crate::cpu::{self, ProcessCpu};
use crate::hops::{self, HopLatencies, HopTopics, RowTimes};
use crate::http_load::{LoadResult, open_loop};
use crate::ingest_result::SQLITE;
use crate::latency::LatencySummary;
use crate::pipeline::{Infra, Pipeline, Service};
use crate::requests;

/// Every `DUPLICATE_EVERY`th request re-sends the event of 5 requests before.
const DUPLICATE_EVERY: u64 = 20;
/// Properties the events are spread over.
const PROPERTIES: u64 = 5_000;
/// Warm-up events (not measured): they wait until every stage is assigned.
const WARM_UP: u64 = 20;

/// How hard and how long.
#[derive(Debug, Clone)]
pub struct EndToEndLoad {
    /// Infrastructure and binaries.
    pub infra: Infra,
    /// Webhooks per second.
    pub rate: f64,
    /// How long the load lasts.
    pub duration: Duration,
    /// Keep-alive connections the load is spread over.
    pub connections: usize,
    /// Unique per run and broker.
    pub run_id: String,
    /// The broker's label (`sqlite://`, `memory://`).
    pub broker: String,
    /// Whether the state writer runs (it shares the broker with the path
    /// measured).
    pub with_state_writer: bool,
    /// Whether to split the latency at each topic (reads every topic
    /// again after the load; the sustained-rate search skips it).
    pub split_hops: bool,
}

/// What the run measured.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EndToEndResult {
    /// The broker's label (absent in older results: `sqlite://`).
    #[serde(default = "sqlite")]
    pub broker: String,
    /// Target rate, webhooks/s.
    pub target_rate: f64,
    /// Load duration, s.
    pub duration_secs: f64,
    /// HTTP side: accepted requests, errors and response latency.
    pub http: LoadResult,
    /// Accepted requests that re-sent an already accepted event.
    pub duplicates_accepted: u64,
    /// Rows expected: accepted requests minus duplicates.
    pub rows_expected: u64,
    /// Rows found in `property_events`.
    pub rows_found: u64,
    /// Arrival at ingest → commit of the row.
    pub arrival_to_commit: LatencySummary,
    /// Load end → commit of the last row, ms (0 if it was already there).
    pub backlog_drain_ms: f64,
    /// Where commit times came from.
    pub commit_time_source: String,
    /// Arrival → commit split at each topic (absent in older results).
    #[serde(default)]
    pub hops: Option<HopLatencies>,
    /// CPU each process spent from the load's start until the last row
    /// was committed (absent in older results).
    #[serde(default)]
    pub cpu: Vec<ProcessCpu>,
}

fn sqlite() -> String {
    SQLITE.to_string()
}

fn event_of(n: u64) -> u64 {
    if n % DUPLICATE_EVERY == DUPLICATE_EVERY - 1 && n >= 5 {
        n - 5
    } else {
        n
    }
}

/// Runs the measurement.
pub async fn run(load: &EndToEndLoad) -> anyhow::Result<EndToEndResult> {
    let mut pipeline = Pipeline::create(&load.infra, &format!("{}-e2e", load.run_id)).await?;
    // The whole pipeline, the state writer too unless asked otherwise: it
    // shares the broker with the path measured.
    for service in [
        Service::Sink,
        Service::StateWriter,
        Service::Dedupe,
        Service::Normalize,
        Service::Ingest,
    ] {
        if service == Service::StateWriter && !load.with_state_writer {
            continue;
        }
        pipeline.start(service).await?;
    }
    let (db, connection) = tokio_postgres::connect(&pipeline.database_url(), tokio_postgres::NoTls)
        .await
        .context("cannot connect to the bench database")?;
    drop(tokio::spawn(connection));
    let source = requests::generic_source()?;

    eprintln!("end to end: warming up (waiting for {WARM_UP} rows)");
    let warm_up = requests::signed(&source, |n| {
        requests::property_created(&format!("warm-{n}"), &format!("prop-{n}"), 100_000)
    });
    let warm = open_loop(
        pipeline.ingest_address,
        50.0,
        Duration::from_secs_f64(WARM_UP as f64 / 50.0),
        4,
        warm_up,
    )
    .await?;
    let warm_accepted = warm.accepted.iter().filter(|a| **a).count() as i64;
    let _ = wait_for_rows(
        &db,
        &mut pipeline,
        "warm-%",
        warm_accepted,
        Duration::from_secs(120),
    )
    .await?;

    eprintln!(
        "end to end: {} webhooks/s for {} s",
        load.rate,
        load.duration.as_secs_f64()
    );
    let factory = requests::signed(&source, |n| {
        let event = event_of(n);
        requests::property_created_later(
            &format!("evt-{event}"),
            &format!("prop-{}", event % PROPERTIES),
            500_000 + event,
            event,
        )
    });
    let cpu_roots = pipeline.cpu_roots();
    let cpu_before = cpu::snapshot(&cpu_roots);
    let load_start = Instant::now();
    let result = open_loop(
        pipeline.ingest_address,
        load.rate,
        load.duration,
        load.connections,
        factory,
    )
    .await?;
    let load_end_ms = unix_ms();
    let mut events = HashSet::new();
    let mut duplicates_accepted = 0;
    for (n, accepted) in result.accepted.iter().enumerate() {
        if *accepted && !events.insert(event_of(n as u64)) {
            duplicates_accepted += 1;
        }
    }
    let rows_expected = events.len() as i64;
    eprintln!("end to end: load done; waiting for {rows_expected} rows");
    let _ = wait_for_rows(
        &db,
        &mut pipeline,
        "evt-%",
        rows_expected,
        Duration::from_secs(120),
    )
    .await?;
    let cpu = cpu::spent(
        &cpu_before,
        &cpu::snapshot(&cpu_roots),
        load_start.elapsed().as_secs_f64(),
    );
    // A duplicate that slipped through would land after the last unique
    // row: give it a moment, then count again.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let rows_found: i64 = db
        .query_one(
            "SELECT count(*) FROM property_events WHERE event_id LIKE 'evt-%'",
            &[],
        )
        .await?
        .get(0);

    let track: String = db
        .query_one("SHOW track_commit_timestamp", &[])
        .await?
        .get(0);
    let (commit_expr, commit_time_source) = if track == "on" {
        (
            "pg_xact_commit_timestamp(xmin)",
            "PostgreSQL commit timestamps",
        )
    } else {
        ("committed_at", "the committed_at column (insert time)")
    };
    let rows = db
        .query(
            &format!(
                "SELECT (EXTRACT(EPOCH FROM ({commit_expr} - received_at)) * 1000)::float8, \
                        (EXTRACT(EPOCH FROM {commit_expr}) * 1000)::float8, \
                        (EXTRACT(EPOCH FROM received_at) * 1000)::float8, \
                        dedupe_key, raw_partition, raw_offset, kafka_partition, kafka_offset \
                 FROM property_events WHERE event_id LIKE 'evt-%'"
            ),
            &[],
        )
        .await
        .context("cannot read the commit times")?;
    let mut latencies = Vec::with_capacity(rows.len());
    let mut row_times = Vec::with_capacity(rows.len());
    let mut last_commit_ms = 0.0_f64;
    for row in &rows {
        let latency: f64 = row.try_get(0)?;
        let committed: f64 = row.try_get(1)?;
        latencies.push(Duration::from_secs_f64(latency.max(0.0) / 1000.0));
        last_commit_ms = last_commit_ms.max(committed);
        row_times.push(RowTimes {
            dedupe_key: row.try_get(3)?,
            received_ms: row.try_get(2)?,
            raw: (row.try_get(4)?, row.try_get(5)?),
            events: (row.try_get(6)?, row.try_get(7)?),
            commit_ms: committed,
        });
    }
    let hops = if load.split_hops {
        eprintln!("end to end: splitting the latency at each topic's record timestamps");
        let brokers = load.infra.brokers.clone();
        let topics = HopTopics {
            raw: pipeline.topics.raw(),
            normalized: pipeline.topics.normalized(),
            events: pipeline.topics.events(),
            latest: pipeline.topics.latest(),
        };
        let times = tokio::task::spawn_blocking(move || hops::read_times(&brokers, &topics))
            .await
            .context("the topic reader panicked")??;
        Some(hops::split(&row_times, &times))
    } else {
        None
    };
    Ok(EndToEndResult {
        broker: load.broker.clone(),
        target_rate: load.rate,
        duration_secs: load.duration.as_secs_f64(),
        http: result.load,
        duplicates_accepted,
        rows_expected: rows_expected as u64,
        rows_found: rows_found as u64,
        arrival_to_commit: LatencySummary::of(latencies),
        backlog_drain_ms: (last_commit_ms - load_end_ms as f64).max(0.0),
        commit_time_source: commit_time_source.to_string(),
        hops,
        cpu,
    })
}

fn unix_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// Polls until `expected` rows whose event id matches `pattern` are in
/// `property_events`; fails if a service dies or the count stops moving.
async fn wait_for_rows(
    db: &tokio_postgres::Client,
    pipeline: &mut Pipeline,
    pattern: &str,
    expected: i64,
    stall_timeout: Duration,
) -> anyhow::Result<i64> {
    let mut last = -1;
    let mut last_change = Instant::now();
    loop {
        pipeline.check_alive()?;
        let found: i64 = db
            .query_one(
                "SELECT count(*) FROM property_events WHERE event_id LIKE $1",
                &[&pattern],
            )
            .await
            .context("cannot count the rows")?
            .get(0);
        if found >= expected {
            return Ok(found);
        }
        if found != last {
            last = found;
            last_change = Instant::now();
        } else if last_change.elapsed() > stall_timeout {
            bail!("only {found} of {expected} rows after {stall_timeout:?} without progress");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_request_in_twenty_repeats_a_recent_event() {
        let events: Vec<u64> = (0..40).map(event_of).collect();
        assert_eq!(events[19], 14);
        assert_eq!(events[39], 34);
        let unique: HashSet<_> = events.iter().collect();
        assert_eq!(unique.len(), 38);
    }
}
