//! Issue 21's measure: the Fluximmo enrichment stage against the API
//! stand-in of the tests (`pipeline_tests::fluximmo_api`) answering every
//! call after a set latency. Reference events are written straight to
//! `properties.events` (what dedupe would forward), then the stage starts
//! and the bench times its enriched events on `properties.normalized`:
//! properties per second from the first to the last, and API calls per
//! property. Three runs: every id distinct; every id named twice (two
//! alerts) in different batches, with the cache on, then off.

use std::time::{Duration, Instant};

use anyhow::Context as _;
use common::registry::Registry;
use common::stage_loop::Cancel;
use pipeline_tests::fluximmo_api::{API_KEY, FluximmoApi};
use rdkafka::producer::{FutureProducer, Producer as _};
use schemas::{EventType, PropertyEvent, Provider};
use serde::{Deserialize, Serialize};

use crate::pipeline::{Infra, Pipeline, Service};
use crate::topics;

/// A stage that makes no progress for this long has failed.
const STALL: Duration = Duration::from_secs(60);

/// What to run.
#[derive(Debug, Clone)]
pub struct EnrichLoad {
    /// Infrastructure and binaries.
    pub infra: Infra,
    /// Distinct properties per run.
    pub properties: u64,
    /// The stand-in API's latency per call.
    pub latency: Duration,
    /// Unique per run.
    pub run_id: String,
}

/// One run's figures.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct EnrichRun {
    /// What was run.
    pub name: String,
    /// References written.
    pub references: u64,
    /// Distinct properties they name.
    pub properties: u64,
    /// Enriched events per second, first to last.
    pub per_sec: f64,
    /// API calls made.
    pub calls: u64,
    /// Calls per distinct property.
    pub calls_per_property: f64,
    /// Ids asked for (bulk and by id) per distinct property: what a bill
    /// per property fetched follows.
    pub asked_per_property: f64,
}

/// The three runs.
pub async fn run(load: &EnrichLoad) -> anyhow::Result<Vec<EnrichRun>> {
    let runs = [
        ("distinct ids, cache on", 1, true),
        ("each id named twice, cache on", 2, true),
        ("each id named twice, cache off", 2, false),
    ];
    let mut results = Vec::with_capacity(runs.len());
    for (index, (name, repeats, cache)) in runs.into_iter().enumerate() {
        let run = one(
            load,
            &format!("{}-enrich{index}", load.run_id),
            repeats,
            cache,
        )
        .await?;
        eprintln!(
            "enrich [{name}]: {:.0} properties/s, {:.3} calls and {:.2} ids asked per property",
            run.per_sec, run.calls_per_property, run.asked_per_property
        );
        results.push(EnrichRun {
            name: name.to_string(),
            ..run
        });
    }
    Ok(results)
}

async fn one(
    load: &EnrichLoad,
    name: &str,
    repeats: u64,
    cache: bool,
) -> anyhow::Result<EnrichRun> {
    let api = FluximmoApi::start(&[]).await;
    api.know_all_with_latency(load.latency);
    let mut pipeline = Pipeline::create(&load.infra, name).await?;
    let references = write_references(load, &pipeline, name, repeats).await?;
    let extra = [
        ("FLUXIMMO_API_KEY", API_KEY.to_string()),
        ("ENRICH__API__BASE_URL", api.base_url()),
        ("ENRICH__API__RATE_PER_SECOND", "10000".to_string()),
        ("ENRICH__API__BURST", "100".to_string()),
        // Batches small enough that the repeats of an id fall in another
        // batch than its first reference (a batch asks each id once anyway).
        ("ENRICH__BATCH__MAX_RECORDS", "100".to_string()),
        (
            "ENRICH__API__CACHE_TTL_SECS",
            if cache { "600" } else { "0" }.to_string(),
        ),
    ]
    .map(|(k, v)| (k.to_string(), v));
    pipeline.start_with_env(Service::Enrich, &extra).await?;
    let output = pipeline.topics.normalized();
    let (mut first, mut last_change) = (None, Instant::now());
    let mut seen = 0;
    let last = loop {
        pipeline.check_alive()?;
        let count = count(&load.infra.brokers, &output).await?;
        let now = Instant::now();
        if count > seen {
            seen = count;
            last_change = now;
            let _ = first.get_or_insert(now);
        }
        if u64::try_from(count).unwrap_or(0) >= references {
            break now;
        }
        anyhow::ensure!(
            now.duration_since(last_change) < STALL,
            "enrichment stalled at {count} of {references} events"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let secs = last
        .duration_since(first.unwrap_or(last))
        .as_secs_f64()
        .max(1e-3);
    let calls = api.calls();
    let asked = api.ids_asked().len();
    Ok(EnrichRun {
        name: String::new(),
        references,
        properties: load.properties,
        per_sec: references.saturating_sub(1) as f64 / secs,
        calls,
        calls_per_property: calls as f64 / load.properties.max(1) as f64,
        asked_per_property: asked as f64 / load.properties.max(1) as f64,
    })
}

async fn count(brokers: &str, topic: &str) -> anyhow::Result<i64> {
    let (brokers, topic) = (brokers.to_string(), topic.to_string());
    tokio::task::spawn_blocking(move || topics::count_records(&brokers, &topic)).await?
}

/// Writes `properties × repeats` reference events to `properties.events`,
/// the repeats of an id after every first reference; returns how many.
async fn write_references(
    load: &EnrichLoad,
    pipeline: &Pipeline,
    name: &str,
    repeats: u64,
) -> anyhow::Result<u64> {
    let registry = Registry::new(&load.infra.registry_url)?;
    let schema_id = registry
        .register(
            &pipeline.topics.normalized(),
            schemas::PROPERTY_EVENT_AVSC,
            "bench",
            &Cancel::new(),
        )
        .await?;
    let producer: FutureProducer = common::kafka::KafkaSettings {
        brokers: load.infra.brokers.clone(),
        ..common::kafka::KafkaSettings::default()
    }
    .producer()
    .create()
    .context("cannot create the bench producer")?;
    let topic = pipeline.topics.events();
    let now_ms = i64::try_from(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)?
            .as_millis(),
    )?;
    let mut records = Vec::new();
    for round in 0..repeats {
        for i in 0..load.properties {
            let event = reference(&format!("{name}-{i}"), round, now_ms);
            let value = schemas::wire::frame(schema_id, &schemas::codec::encode_datum(&event)?);
            records.push(
                common::produce::OutRecord {
                    topic: topic.clone(),
                    partition: None,
                    key: Some(event.property_key.clone().into_bytes()),
                    payload: Some(value),
                    headers: Vec::new(),
                }
                .header(common::headers::DEDUPE_KEY, event.dedupe_key.as_str())
                .header(common::headers::EVENT_TYPE, "reference_only"),
            );
        }
    }
    for chunk in records.chunks(1_000) {
        let _ = common::produce::send_all(&producer, chunk).await?;
    }
    producer.flush(Duration::from_secs(10))?;
    Ok(records.len() as u64)
}

/// The reference event of property `id` from alert `round`.
fn reference(id: &str, round: u64, received_at: i64) -> PropertyEvent {
    let mut event = schemas::sample::price_change();
    event.provider = Provider::Fluximmo;
    event.source = "fluximmo".into();
    event.event_type = EventType::ReferenceOnly;
    event.provider_event_type = Some("created".into());
    event.property = None;
    event.change = None;
    event.provider_property_id = id.to_string();
    event.property_key = format!("fluximmo:{id}");
    event.event_id = format!("bench.{round}.{id}");
    event.dedupe_key = format!("fluximmo:bench.{round}.{id}");
    event.alert_id = Some(format!("alert-{round}"));
    event.occurred_at = received_at;
    event.received_at = received_at;
    event
}
