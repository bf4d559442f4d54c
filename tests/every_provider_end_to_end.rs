//! Every provider, end to end through the real front door: each fixture
//! sent over HTTP with that provider's credentials (token in the query,
//! source address behind a trusted proxy, bearer plus Immoteur headers,
//! Standard Webhooks signature) lands in PostgreSQL with the right dedupe
//! key, and a provider's retry of the same event lands once.

use std::time::Duration;

use ingest::verify::standard_webhooks::{decode_secret, sign};
use pipeline_tests::{
    FLUXIMMO_TOKEN, IMMOTEUR_TOKEN, Pipeline, STANDARD_SECRET, STREAM_ESTATE_ADDRESSES, fixture,
    header, unix_now,
};
use rdkafka::Message;
use rdkafka::message::Headers;

const IMMOTEUR_EVENT: &str = "0b7c6a1e-5d4f-4e3a-9b2c-1d0e9f8a7b6c";
const SERVICE_ID: &str = "7e6d5c4b-3a29-4817-a6b5-c4d3e2f1a0b9";

fn immoteur_headers(delivery: &str) -> Vec<(&'static str, String)> {
    vec![
        ("authorization", format!("Bearer {IMMOTEUR_TOKEN}")),
        ("x-immoteur-service-id", SERVICE_ID.into()),
        ("x-immoteur-event-id", IMMOTEUR_EVENT.into()),
        ("x-immoteur-delivery-id", delivery.into()),
        ("x-immoteur-timestamp", unix_now().to_string()),
    ]
}

async fn accepted(response: reqwest::Result<reqwest::Response>, what: &str) {
    let response = response.unwrap_or_else(|e| panic!("{what}: no answer: {e}"));
    let status = response.status();
    let body = response.text().await.unwrap_or_default();
    assert_eq!(status, 200, "{what}: {body}");
}

#[tokio::test(flavor = "multi_thread")]
async fn each_providers_fixture_lands_once_through_http() {
    let pipeline = Pipeline::start("every_provider").await;
    let client = pipeline.client();

    let fluximmo = fixture("fluximmo/webhook-properties.json");
    accepted(
        client
            .post_to(
                "fluximmo",
                &format!("token={FLUXIMMO_TOKEN}"),
                &[],
                &fluximmo,
            )
            .await,
        "fluximmo",
    )
    .await;

    let stream_estate = fixture("stream-estate/ad.update.price.json");
    accepted(
        client
            .post(
                "stream-estate",
                &[("x-forwarded-for", STREAM_ESTATE_ADDRESSES[0].to_string())],
                &stream_estate,
            )
            .await,
        "stream-estate",
    )
    .await;

    // Immoteur delivers the same event twice: a new delivery id, the same event id.
    let immoteur = fixture("immoteur/property-notification.json");
    for delivery in [
        "a1b2c3d4-e5f6-4a7b-8c9d-0e1f2a3b4c5d",
        "f0e1d2c3-b4a5-4968-8776-655443322110",
    ] {
        accepted(
            client
                .post("immoteur", &immoteur_headers(delivery), &immoteur)
                .await,
            "immoteur",
        )
        .await;
    }

    let standard = fixture("generic/property.created.json");
    let key = decode_secret(STANDARD_SECRET.as_bytes()).expect("whsec_ secret");
    let ts = unix_now().to_string();
    let signature = sign(key.expose(), "msg_e2e_1", &ts, &standard);
    accepted(
        client
            .post(
                "standard",
                &[
                    ("webhook-id", "msg_e2e_1".to_string()),
                    ("webhook-timestamp", ts),
                    ("webhook-signature", signature),
                ],
                &standard,
            )
            .await,
        "standard-webhooks",
    )
    .await;

    // Fluximmo's two referenced properties, one Stream.estate event, one
    // Immoteur event (its retry dropped), one Standard Webhooks event.
    let landed = pipeline
        .wait_for_count(
            "SELECT count(*) FROM property_events",
            5,
            Duration::from_secs(60),
        )
        .await;
    assert_eq!(landed, 5, "{}", pipeline.all_logs());
    tokio::time::sleep(Duration::from_secs(2)).await;
    let db = pipeline.db().await;
    let rows = db
        .query(
            "SELECT source, count(*) FROM property_events GROUP BY source ORDER BY source",
            &[],
        )
        .await
        .expect("counts by source");
    let by_source: Vec<(String, i64)> = rows.iter().map(|r| (r.get(0), r.get(1))).collect();
    assert_eq!(
        by_source,
        vec![
            ("fluximmo".to_string(), 2),
            ("immoteur".to_string(), 1),
            ("standard".to_string(), 1),
            ("stream-estate".to_string(), 1),
        ]
    );
    let immoteur_key: String = db
        .query_one(
            "SELECT dedupe_key FROM property_events WHERE source = 'immoteur'",
            &[],
        )
        .await
        .expect("the immoteur event")
        .get(0);
    assert_eq!(immoteur_key, format!("immoteur:{IMMOTEUR_EVENT}"));
    assert!(
        pipeline.read_topic(&pipeline.topics.dlq()).is_empty(),
        "nothing dead-lettered"
    );

    // Each changelog record points at its own event on `properties.events`
    // (the offset dedupe's restore starts from), and the outputs carry only
    // the headers their readers use.
    let seen = pipeline
        .wait_for_records(&pipeline.topics.seen(), 5, Duration::from_secs(30))
        .await;
    assert_eq!(seen.len(), 5, "{}", pipeline.all_logs());
    let events = pipeline.read_topic(&pipeline.topics.events());
    for record in &seen {
        let key = String::from_utf8_lossy(record.key().expect("a changelog key")).to_string();
        let value: serde_json::Value =
            serde_json::from_slice(record.payload().expect("a changelog value"))
                .expect("JSON changelog value");
        let event = events
            .iter()
            .find(|e| {
                e.partition() == record.partition()
                    && Some(e.offset()) == value["output_offset"].as_i64()
            })
            .unwrap_or_else(|| panic!("no event at the changelog's offset for {key}: {value}"));
        assert_eq!(header(event, "dedupe-key").as_deref(), Some(key.as_str()));
    }
    for event in &events {
        assert_eq!(
            header_names(event),
            ["traceparent", "dedupe-key", "event-type", "source-offset"]
        );
    }
    for latest in pipeline.read_topic(&pipeline.topics.latest()) {
        assert_eq!(
            header_names(&latest),
            ["traceparent", "dedupe-key", "source-offset"]
        );
    }
}

/// The names of `record`'s headers, in order.
fn header_names(record: &rdkafka::message::OwnedMessage) -> Vec<&str> {
    record
        .headers()
        .map(|h| h.iter().map(|h| h.key).collect())
        .unwrap_or_default()
}
