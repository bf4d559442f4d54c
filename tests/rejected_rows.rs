//! A row PostgreSQL refuses goes to the DLQ with the reason instead of
//! blocking its partition; the events around it land. Normalize removes
//! what PostgreSQL cannot store from what it parses (a NUL character:
//! `normalize/src/text_sanity.rs`), so the refused event here comes from
//! another producer writing `properties.events` directly: valid Avro with
//! a NUL in its address, not a valid PostgreSQL text.

use std::time::Duration;

use common::produce::OutRecord;
use pipeline_tests::{Pipeline, header};
use rdkafka::Message;

fn event(id: &str, address: &str) -> Vec<u8> {
    format!(
        r#"{{"id":"{id}","type":"property.created","created":"2024-05-01T12:00:00Z",
           "data":{{"property":{{"id":"prop_{id}","price":1000,"address":"{address}"}}}}}}"#
    )
    .into_bytes()
}

/// An event PostgreSQL refuses (a NUL in its address), framed with the
/// schema id of `like`, a record the pipeline wrote to `properties.events`.
fn poison(pipeline: &Pipeline, like: &[u8]) -> OutRecord {
    let (schema_id, _) = schemas::wire::split(like).expect("a wire-format value");
    let mut e = schemas::sample::price_change();
    e.event_id = "poison".into();
    e.dedupe_key = "generic:poison".into();
    e.provider_property_id = "prop_poison".into();
    e.property_key = "generic:prop_poison".into();
    e.change = None;
    if let Some(p) = e.property.as_mut() {
        p.location.address = Some("2 Bad\0Street".into());
    }
    let datum = schemas::encode_datum(&e).expect("the event encodes");
    OutRecord {
        topic: pipeline.topics.events(),
        partition: Some(0),
        key: Some(e.property_key.clone().into_bytes()),
        payload: Some(schemas::wire::frame(schema_id, &datum)),
        headers: vec![("dedupe-key".into(), e.dedupe_key.clone().into_bytes())],
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_row_postgres_refuses_is_dead_lettered_and_the_rest_lands() {
    let pipeline = Pipeline::start("rejected_rows").await;
    pipeline
        .deliver_generic(&event("before", "1 Good Street"))
        .await;
    let first = pipeline
        .wait_for_records(&pipeline.topics.events(), 1, Duration::from_secs(30))
        .await;
    let like = first
        .first()
        .and_then(|m| m.payload())
        .unwrap_or_else(|| panic!("the first event is on its topic\n{}", pipeline.all_logs()))
        .to_vec();
    pipeline.produce(&[poison(&pipeline, &like)]).await;
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
