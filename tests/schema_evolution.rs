//! The `PropertyEvent` schema evolves BACKWARD compatibly: the schema
//! registry, which refuses an incompatible version with 409, accepts the
//! current schema on a subject where the first (walking-skeleton) version
//! is registered, so consumers on the new schema read every old record;
//! and the sink does: a record written with v1 lands with the fields v1
//! did not have left empty. A schema the registry refuses is fatal:
//! normalize exits at once, non-zero, saying so.

use std::time::Duration;

use apache_avro::Schema;
use common::produce::OutRecord;
use pipeline_tests::{Pipeline, Stack};
use schemas::{PropertySnapshot, sample};
use serde_json::json;

const CONTENT_TYPE: &str = "application/vnd.schemaregistry.v1+json";

async fn register(
    http: &reqwest::Client,
    stack: &Stack,
    subject: &str,
    schema: &str,
) -> (u16, String) {
    let response = http
        .post(format!(
            "{}/subjects/{subject}/versions",
            stack.registry_url
        ))
        .header("content-type", CONTENT_TYPE)
        .json(&json!({ "schema": schema }))
        .send()
        .await
        .expect("the registry answers");
    let status = response.status().as_u16();
    (status, response.text().await.unwrap_or_default())
}

#[tokio::test(flavor = "multi_thread")]
async fn the_current_schema_registers_over_v1() {
    let stack = Stack::from_env();
    let http = reqwest::Client::new();
    let subject = format!(
        "t.evolution_{}.properties.normalized-value",
        &uuid::Uuid::new_v4().simple().to_string()[..8]
    );
    let (status, body) = register(&http, &stack, &subject, schemas::PROPERTY_EVENT_AVSC_V1).await;
    assert_eq!(status, 200, "v1 registers: {body}");
    let (status, body) = register(&http, &stack, &subject, schemas::PROPERTY_EVENT_AVSC).await;
    assert_eq!(
        status, 200,
        "the current schema is BACKWARD compatible with v1: {body}"
    );

    // The check is live: a required field without a default would break
    // readers of old records, and the registry refuses it.
    let mut breaking: serde_json::Value =
        serde_json::from_str(schemas::PROPERTY_EVENT_AVSC).expect("the schema is JSON");
    if let Some(fields) = breaking["fields"].as_array_mut() {
        fields.push(json!({"name": "must_exist", "type": "string", "doc": "breaks readers"}));
    }
    let (status, body) = register(&http, &stack, &subject, &breaking.to_string()).await;
    assert_eq!(status, 409, "an incompatible schema is refused: {body}");
}

#[tokio::test(flavor = "multi_thread")]
async fn normalize_exits_at_once_when_the_registry_refuses_its_schema() {
    let mut pipeline = Pipeline::start_ingest("evolution_fatal").await;
    let http = reqwest::Client::new();
    // A version the current schema cannot read: every field it requires
    // without a default is missing.
    let other = json!({
        "type": "record",
        "name": "PropertyEvent",
        "namespace": "estate.pipeline",
        "fields": [{"name": "x", "type": "int"}]
    });
    let subject = format!("{}-value", pipeline.topics.normalized());
    let (status, body) = register(&http, &pipeline.stack, &subject, &other.to_string()).await;
    assert_eq!(status, 200, "{body}");

    pipeline.spawn(pipeline_tests::Service::Normalize);
    let started = std::time::Instant::now();
    let status = pipeline
        .wait_exit_status(pipeline_tests::Service::Normalize, Duration::from_secs(30))
        .await;
    let log = pipeline.log(pipeline_tests::Service::Normalize);
    let status = status.unwrap_or_else(|| panic!("normalize kept retrying:\n{log}"));
    assert!(!status.success(), "{status}: {log}");
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "exits at once, not after retries: {:?}\n{log}",
        started.elapsed()
    );
    assert!(
        log.contains("incompatible") && log.contains(&subject) && log.contains("BACKWARD"),
        "the message says what is wrong and where: {log}"
    );
    assert_eq!(
        log.matches("schema registration failed; retrying").count(),
        0,
        "no retry: {log}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_sink_writes_a_record_written_with_v1() {
    let pipeline = Pipeline::start_with(
        "evolution_sink",
        &[pipeline_tests::Service::Sink],
        None,
        &[],
    )
    .await;
    let http = reqwest::Client::new();
    let subject = format!("{}-v1-value", pipeline.topics.events());
    let (status, body) = register(
        &http,
        &pipeline.stack,
        &subject,
        schemas::PROPERTY_EVENT_AVSC_V1,
    )
    .await;
    assert_eq!(status, 200, "v1 registers: {body}");
    let id: u32 = serde_json::from_str::<serde_json::Value>(&body)
        .ok()
        .and_then(|v| v["id"].as_u64())
        .and_then(|id| u32::try_from(id).ok())
        .expect("the registry answers the schema id");

    // An event as v1 knew it: resolving against v1 keeps only v1's fields.
    let v1 = Schema::parse_str(schemas::PROPERTY_EVENT_AVSC_V1).expect("v1 parses");
    let mut event = sample::price_change();
    event.event_id = "v1-event".into();
    event.dedupe_key = "generic:v1-event".into();
    event.provider_event_type = None;
    let mut snapshot = PropertySnapshot::empty();
    snapshot.price = Some(640_000.0);
    event.property = Some(snapshot);
    let datum = schemas::codec::encode_datum_as(&v1, &event).expect("writes a v1 datum");
    pipeline
        .produce(&[OutRecord {
            topic: pipeline.topics.events(),
            partition: None,
            key: Some(event.dedupe_key.clone().into_bytes()),
            payload: Some(schemas::wire::frame(id, &datum)),
            headers: vec![("dedupe-key".into(), event.dedupe_key.clone().into_bytes())],
        }])
        .await;

    let landed = pipeline
        .wait_for_count(
            "SELECT count(*) FROM property_events \
             WHERE event_id = 'v1-event' AND provider_event_type IS NULL",
            1,
            Duration::from_secs(60),
        )
        .await;
    assert_eq!(landed, 1, "{}", pipeline.all_logs());
    let price = pipeline
        .count("SELECT price::int8 FROM properties WHERE property_key = 'generic:prop_1'")
        .await;
    assert_eq!(price, 640_000);
}
