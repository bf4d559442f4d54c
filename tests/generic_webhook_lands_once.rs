//! A correctly signed generic `property.created` is accepted, lands in
//! PostgreSQL as exactly one property and one event with the right values,
//! stays one event when delivered again, and its Avro value on
//! `properties.normalized` decodes with the schema fetched from the registry
//! by the id in its wire-format prefix.

use std::time::Duration;

use pipeline_tests::{Pipeline, fixture, header_names, raw_field};
use rdkafka::Message;

const EVENTS: &str = "SELECT count(*) FROM property_events";
const PROPERTIES: &str = "SELECT count(*) FROM properties";

#[tokio::test(flavor = "multi_thread")]
async fn fixture_lands_once_with_the_right_values_even_when_redelivered() {
    let pipeline = Pipeline::start("lands_once").await;
    let body = fixture("generic/property.created.json");

    let response = pipeline.post_generic(&body).await.expect("ingest answers");
    assert_eq!(response.status(), 200);
    let answer: serde_json::Value = response.json().await.expect("JSON body");
    assert_eq!(answer["status"], "accepted");
    assert!(
        answer["id"].as_str().is_some_and(|id| !id.is_empty()),
        "{answer}"
    );

    let events = pipeline
        .wait_for_count(EVENTS, 1, Duration::from_secs(30))
        .await;
    assert_eq!(events, 1, "event row\n{}", pipeline.all_logs());
    assert_eq!(pipeline.count(PROPERTIES).await, 1);

    let db = pipeline.db().await;
    let row = db
        .query_one(
            "SELECT property_key, price, bedrooms, bathrooms, surface_m2, address, event_type
             FROM properties JOIN property_events USING (property_key)",
            &[],
        )
        .await
        .expect("joined row");
    assert_eq!(row.get::<_, String>(0), "generic:prop_123456");
    assert_eq!(row.get::<_, Option<f64>>(1), Some(750_000.0));
    assert_eq!(row.get::<_, Option<i32>>(2), Some(2));
    assert_eq!(row.get::<_, Option<i32>>(3), Some(2));
    assert_eq!(row.get::<_, Option<f64>>(4), Some(111.48));
    assert_eq!(
        row.get::<_, Option<String>>(5).as_deref(),
        Some("123 Main St, New York, NY 10001")
    );
    assert_eq!(row.get::<_, String>(6), "created");

    // The raw record is the body byte for byte, with the contract's
    // metadata in its one `ingest-meta` header.
    let raw = pipeline.read_topic(&pipeline.topics.raw());
    assert_eq!(raw.len(), 1);
    assert_eq!(raw[0].payload(), Some(body.as_slice()));
    assert_eq!(header_names(&raw[0]), ["ingest-meta"]);
    let field = |name| raw_field(&raw[0], name);
    assert_eq!(field("source").as_deref(), Some("generic"));
    assert_eq!(field("provider").as_deref(), Some("generic"));
    assert_eq!(field("content-type").as_deref(), Some("application/json"));
    assert_eq!(field("verify-scheme").as_deref(), Some("hmac-sha256"));
    assert_eq!(field("verify-key").as_deref(), Some("test"));
    assert!(field("received-at").is_some_and(|v| v.parse::<i64>().is_ok()));
    assert!(field("traceparent").is_some_and(|v| common::traceparent::is_valid(&v)));
    assert_eq!(
        field("request-id"),
        answer["id"].as_str().map(str::to_string)
    );

    // Three more deliveries of the same event, freshly signed.
    for _ in 0..3 {
        let r = pipeline.post_generic(&body).await.expect("ingest answers");
        assert_eq!(r.status(), 200);
    }
    // Wait until dedupe has seen all four, then check nothing new landed.
    let mut normalized = 0;
    for _ in 0..300 {
        normalized = pipeline.read_topic(&pipeline.topics.normalized()).len();
        if normalized == 4 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        normalized,
        4,
        "all deliveries normalized\n{}",
        pipeline.all_logs()
    );
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(pipeline.read_topic(&pipeline.topics.events()).len(), 1);
    assert_eq!(pipeline.count(EVENTS).await, 1);
    assert_eq!(pipeline.count(PROPERTIES).await, 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn normalized_values_decode_with_the_registry_schema_by_id() {
    let pipeline = Pipeline::start("wire_format").await;
    let body = fixture("generic/property.created.json");
    pipeline.deliver_generic(&body).await;
    let mut records = Vec::new();
    for _ in 0..300 {
        records = pipeline.read_topic(&pipeline.topics.normalized());
        if !records.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(records.len(), 1, "{}", pipeline.all_logs());
    let value = records[0].payload().expect("a value");
    let (id, datum) = schemas::wire::split(value).expect("Confluent wire format");
    assert_eq!(
        records[0].key(),
        Some(&b"generic:prop_123456"[..]),
        "keyed by property key"
    );

    let reply = pipeline.registry_get(&format!("/schemas/ids/{id}")).await;
    let schema_text = reply["schema"].as_str().expect("schema text");
    let writer = apache_avro::Schema::parse_str(schema_text).expect("a valid Avro schema");
    // Decode with the registry's schema alone, as any other consumer would.
    let mut reader = datum;
    let decoded = apache_avro::reader::datum::GenericDatumReader::builder(&writer)
        .build()
        .and_then(|r| r.read_value(&mut reader))
        .expect("decodes with the registry's schema");
    let event: schemas::PropertyEvent = apache_avro::from_value(&decoded).expect("a PropertyEvent");
    assert_eq!(event.dedupe_key, "generic:evt_123456");
    assert_eq!(event.property_key, "generic:prop_123456");
    assert_eq!(event.property.and_then(|p| p.price), Some(750_000.0));
    assert!(reader.is_empty(), "no trailing bytes");

    let latest = pipeline
        .registered_value_schema(&pipeline.topics.normalized())
        .await;
    assert_eq!(latest["id"].as_u64(), Some(u64::from(id)), "{latest}");

    // And with a stock client we did not write: Python's confluent-kafka
    // AvroDeserializer, which asks the registry for the schema by id.
    let decoded = pipeline
        .decoded_by_python(&pipeline.topics.normalized(), 1, &[])
        .remove(0);
    assert_eq!(decoded["dedupe_key"], "generic:evt_123456");
    assert_eq!(decoded["event_type"], "created");
    assert_eq!(decoded["property"]["price"], 750_000.0);
    assert_eq!(
        decoded["property"]["location"]["address"],
        "123 Main St, New York, NY 10001"
    );
}

/// `raw_metadata = "headers"` writes a header per field instead of the one
/// `ingest-meta` header, and the pipeline reads it the same.
#[tokio::test(flavor = "multi_thread")]
async fn a_header_per_field_when_configured_lands_the_same() {
    let pipeline =
        Pipeline::start_with_env("header_per_field", &[("INGEST__RAW_METADATA", "headers")]).await;
    let body = fixture("generic/property.created.json");
    let response = pipeline.post_generic(&body).await.expect("ingest answers");
    assert_eq!(response.status(), 200);
    let events = pipeline
        .wait_for_count(EVENTS, 1, Duration::from_secs(30))
        .await;
    assert_eq!(events, 1, "event row\n{}", pipeline.all_logs());
    let key: String = pipeline
        .db()
        .await
        .query_one("SELECT property_key FROM properties", &[])
        .await
        .expect("row")
        .get(0);
    assert_eq!(key, "generic:prop_123456");

    let raw = pipeline.read_topic(&pipeline.topics.raw());
    assert_eq!(raw.len(), 1);
    let names = header_names(&raw[0]);
    for name in [
        "source",
        "provider",
        "content-type",
        "received-at",
        "request-id",
        "verify-scheme",
        "verify-key",
        "traceparent",
    ] {
        assert!(names.iter().any(|n| n == name), "{name} in {names:?}");
    }
    assert!(!names.iter().any(|n| n == "ingest-meta"), "{names:?}");
    assert_eq!(raw_field(&raw[0], "source").as_deref(), Some("generic"));
}
