//! A row PostgreSQL refuses (here a text with a NUL character: valid JSON,
//! valid Avro, not a valid PostgreSQL text) goes to the DLQ with the reason
//! instead of blocking its partition; the events around it land.

use std::time::Duration;

use pipeline_tests::{Pipeline, header};
use rdkafka::Message;

fn event(id: &str, address: &str) -> Vec<u8> {
    format!(
        r#"{{"id":"{id}","type":"property.created","created":"2024-05-01T12:00:00Z",
           "data":{{"property":{{"id":"prop_{id}","price":1000,"address":"{address}"}}}}}}"#
    )
    .into_bytes()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_row_postgres_refuses_is_dead_lettered_and_the_rest_lands() {
    let pipeline = Pipeline::start("rejected_rows").await;
    pipeline
        .deliver_generic(&event("before", "1 Good Street"))
        .await;
    pipeline
        .deliver_generic(&event("poison", "2 Bad\\u0000Street"))
        .await;
    pipeline
        .deliver_generic(&event("after", "3 Good Street"))
        .await;

    let landed = pipeline
        .wait_for_count(
            "SELECT count(*) FROM property_events WHERE event_id IN ('before', 'after')",
            2,
            Duration::from_secs(60),
        )
        .await;
    assert_eq!(landed, 2, "{}", pipeline.all_logs());
    let dead = pipeline
        .wait_for_records(&pipeline.topics.dlq(), 1, Duration::from_secs(30))
        .await;
    assert_eq!(dead.len(), 1, "{}", pipeline.all_logs());
    assert_eq!(header(&dead[0], "error.stage").as_deref(), Some("sink"));
    assert_eq!(header(&dead[0], "error.kind").as_deref(), Some("rejected"));
    assert!(
        header(&dead[0], "error.message").is_some_and(|m| m.contains("22")),
        "the reason carries PostgreSQL's SQLSTATE: {:?}",
        header(&dead[0], "error.message")
    );
    assert_eq!(
        header(&dead[0], "dedupe-key").as_deref(),
        Some("generic:poison")
    );
    assert_eq!(header(&dead[0], "topic"), Some(pipeline.topics.events()));
    assert!(
        dead[0].payload().is_some_and(|p| p.first() == Some(&0)),
        "the Avro value, unchanged"
    );
    assert_eq!(
        pipeline
            .count("SELECT count(*) FROM property_events WHERE event_id = 'poison'")
            .await,
        0
    );
}
