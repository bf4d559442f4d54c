//! Raw records from Fluximmo, Stream.estate and Immoteur, put on
//! `webhooks.raw` as ingest would (headers `source`, `provider`,
//! `received-at`, `event-id`), become events in PostgreSQL: one row per
//! referenced or described property event, one `properties` row per
//! property (a property Fluximmo only references has a row with no last
//! event), nothing dead-lettered. An empty Fluximmo delivery yields no
//! event and no dead letter. The sink's typed columns (INSEE code, energy
//! classes, advert count, provider event type) are filled. The normalized records decode with
//! `apache-avro` alone, from the schema fetched by id over the registry's
//! HTTP API (no shared Rust types).

use std::time::Duration;

use apache_avro::types::Value;
use common::produce::OutRecord;
use pipeline_tests::{Pipeline, Stack, fixture, unix_now};
use rdkafka::Message;

fn raw(pipeline: &Pipeline, provider: &str, body: Vec<u8>, event_id: Option<&str>) -> OutRecord {
    let record = OutRecord {
        topic: pipeline.topics.raw(),
        partition: Some(0),
        key: None,
        payload: Some(body),
        headers: Vec::new(),
    }
    .header("source", provider)
    .header("provider", provider)
    .header("content-type", "application/json")
    .header("received-at", (unix_now() * 1000).to_string());
    match event_id {
        Some(id) => record.header("event-id", id),
        None => record,
    }
}

/// Decodes a Confluent wire-format value with the writer schema fetched by id.
async fn decode(http: &reqwest::Client, stack: &Stack, value: &[u8]) -> Vec<(String, Value)> {
    assert_eq!(value.first(), Some(&0), "magic byte");
    let id = u32::from_be_bytes(value[1..5].try_into().expect("4-byte schema id"));
    let response: serde_json::Value = http
        .get(format!("{}/schemas/ids/{id}", stack.registry_url))
        .send()
        .await
        .expect("registry answers")
        .json()
        .await
        .expect("registry JSON");
    let schema = apache_avro::Schema::parse_str(response["schema"].as_str().expect("schema text"))
        .expect("the registered schema parses");
    let mut datum = &value[5..];
    match apache_avro::reader::datum::GenericDatumReader::builder(&schema)
        .build()
        .and_then(|r| r.read_value(&mut datum))
        .expect("the datum decodes")
    {
        Value::Record(fields) => fields,
        other => panic!("not a record: {other:?}"),
    }
}

fn text(fields: &[(String, Value)], name: &str) -> Option<String> {
    fields
        .iter()
        .find(|(n, _)| n == name)
        .and_then(|(_, v)| match v {
            Value::String(s) => Some(s.clone()),
            Value::Union(_, inner) => match inner.as_ref() {
                Value::String(s) => Some(s.clone()),
                _ => None,
            },
            _ => None,
        })
}

#[tokio::test(flavor = "multi_thread")]
async fn fluximmo_stream_estate_and_immoteur_records_land_as_events() {
    let pipeline = Pipeline::start("providers").await;
    let records = [
        raw(
            &pipeline,
            "fluximmo",
            br#"{"data":{"created":[],"updated":[]}}"#.to_vec(),
            None,
        ),
        raw(
            &pipeline,
            "fluximmo",
            fixture("fluximmo/webhook-properties.json"),
            None,
        ),
        raw(
            &pipeline,
            "stream-estate",
            fixture("stream-estate/ad.update.price.json"),
            None,
        ),
        raw(
            &pipeline,
            "immoteur",
            fixture("immoteur/property-notification.json"),
            Some("0b6d3f1e-7d0c-4f53-9a55-6f0e0c6a1b2c"),
        ),
    ];
    pipeline.produce(&records).await;

    let events = pipeline
        .wait_for_count(
            "SELECT count(*) FROM property_events",
            4,
            Duration::from_secs(60),
        )
        .await;
    assert_eq!(events, 4, "{}", pipeline.all_logs());
    let properties = pipeline
        .wait_for_count(
            "SELECT count(*) FROM properties",
            4,
            Duration::from_secs(10),
        )
        .await;
    assert_eq!(properties, 4, "one row per property");
    assert_eq!(
        pipeline
            .count(
                "SELECT count(*) FROM properties WHERE property_key LIKE 'fluximmo:%' \
                 AND last_event_type IS NULL AND snapshot->>'price' IS NULL"
            )
            .await,
        2,
        "the referenced properties are known by their id alone"
    );
    assert_eq!(
        pipeline
            .count(
                "SELECT count(*) FROM property_events WHERE event_type = 'reference_only' \
                 AND alert_id = 'alert-0001' AND property_key LIKE 'fluximmo:%'"
            )
            .await,
        2
    );
    assert_eq!(
        pipeline
            .count(
                "SELECT count(*) FROM property_events WHERE event_type = 'price_changed' \
                 AND change_field = 'price' AND change_percent = -2.81 \
                 AND provider_event_type = 'ad.update.price'"
            )
            .await,
        1
    );
    assert_eq!(
        pipeline
            .count(
                "SELECT count(*) FROM properties WHERE property_key = \
                 'immoteur:11111111-2222-3333-4444-555555555555' AND department = '75' \
                 AND insee_code = '75056' AND dpe_class = 'c' AND ges_class = 'a' \
                 AND advert_count = 1"
            )
            .await,
        1
    );
    assert_eq!(
        pipeline
            .count(
                "SELECT count(*) FROM property_events WHERE dedupe_key = \
                 'immoteur:0b6d3f1e-7d0c-4f53-9a55-6f0e0c6a1b2c'"
            )
            .await,
        1,
        "the event-id header is the Immoteur dedupe key"
    );
    assert!(
        pipeline.read_topic(&pipeline.topics.dlq()).is_empty(),
        "nothing dead-lettered"
    );

    let http = reqwest::Client::new();
    let mut kinds = Vec::new();
    for record in pipeline.read_topic(&pipeline.topics.normalized()) {
        let fields = decode(&http, &pipeline.stack, record.payload().expect("value")).await;
        kinds.push(text(&fields, "provider_event_type").expect("provider_event_type"));
    }
    kinds.sort();
    assert_eq!(
        kinds,
        [
            "ad.update.price",
            "created",
            "created",
            "property-notification"
        ]
    );
}
