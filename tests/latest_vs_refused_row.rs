//! PostgreSQL's state against `properties.latest` when an event carries a
//! text PostgreSQL cannot store (breaker20). The property is created with
//! a good address, then an update carries an address with a NUL character
//! (valid JSON and Avro, refused by PostgreSQL's `text` and `jsonb`).
//! Before normalize removed NUL characters, the sink dead-lettered the
//! update while the state writer took it, and PostgreSQL and
//! `properties.latest` disagreed about the property. Now both hold the
//! update's address without the NUL, and nothing is dead-lettered.

use std::time::Duration;

use pipeline_tests::Pipeline;
use pipeline_tests::latest_states::latest_records;

fn event(id: &str, minute: u32, address: &str) -> Vec<u8> {
    format!(
        r#"{{"id":"{id}","type":"property.updated","created":"2024-05-01T12:{minute:02}:00Z",
           "data":{{"property":{{"id":"refused","price":1000,"address":"{address}"}}}}}}"#
    )
    .into_bytes()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_nul_in_a_text_leaves_postgres_and_latest_in_agreement() {
    let pipeline = Pipeline::start("latest_vs_refused").await;
    pipeline
        .deliver_generic(&event("good", 0, "1 Good Street"))
        .await;
    pipeline
        .deliver_generic(&event("poison", 1, "2 Bad\\u0000Street"))
        .await;
    let landed = pipeline
        .wait_for_count(
            "SELECT count(*) FROM property_events WHERE property_key = 'generic:refused'",
            2,
            Duration::from_secs(60),
        )
        .await;
    assert_eq!(landed, 2, "{}", pipeline.all_logs());
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let address_on_latest = || async {
        latest_records(&pipeline)
            .await
            .iter()
            .rev()
            .find(|r| r.key == "generic:refused")
            .and_then(|r| r.state.property.location.address.clone())
    };
    let mut latest = address_on_latest().await;
    while latest.as_deref() != Some("2 BadStreet") && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(500)).await;
        latest = address_on_latest().await;
    }
    assert_eq!(latest.as_deref(), Some("2 BadStreet"), "properties.latest");
    let db = pipeline.db().await;
    let row = db
        .query_one(
            "SELECT state::text FROM properties WHERE property_key = 'generic:refused'",
            &[],
        )
        .await
        .expect("the row");
    let stored: schemas::PropertyState =
        serde_json::from_str(row.get::<_, &str>(0)).expect("a state");
    assert_eq!(
        stored.property.location.address.as_deref(),
        Some("2 BadStreet"),
        "PostgreSQL's address"
    );
    let dead = pipeline.read_topic(&pipeline.topics.dlq());
    assert!(dead.is_empty(), "nothing is dead-lettered");
}
