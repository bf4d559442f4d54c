//! A row PostgreSQL refuses goes to the DLQ with the reason instead of
//! blocking its partition; the events around it land. Normalize removes
//! what PostgreSQL cannot store from what it parses (a NUL character:
//! `normalize/src/text_sanity.rs`), so the refused event here comes from
//! another producer writing `properties.events` directly: valid Avro with
//! a NUL in its address, or in its property key, not a valid PostgreSQL
//! text. (A NUL in the property key fails the sink's first statement, the
//! locked read of the batch's states, before the events' insert sent
//! behind it: the read's own error, SQLSTATE 22021, must be the one the
//! sink classifies, never the insert's "transaction aborted" (breaker22).)

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

/// An event PostgreSQL refuses (a NUL in `property_key` or `address`),
/// framed with the schema id of `like`, a record the pipeline wrote to
/// `properties.events`.
fn poison(pipeline: &Pipeline, like: &[u8], property_key: &str, address: &str) -> OutRecord {
    let (schema_id, _) = schemas::wire::split(like).expect("a wire-format value");
    let mut e = schemas::sample::price_change();
    e.event_id = "poison".into();
    e.dedupe_key = "generic:poison".into();
    e.provider_property_id = "prop_poison".into();
    e.property_key = property_key.into();
    e.change = None;
    if let Some(p) = e.property.as_mut() {
        p.location.address = Some(address.into());
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
    refused_event_is_dead_lettered("rejected_rows", "generic:prop_poison", "2 Bad\0Street").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_nul_in_the_property_key_is_dead_lettered_and_the_rest_lands() {
    refused_event_is_dead_lettered("rejected_key", "generic:prop_\0poison", "2 Good Street").await;
}

/// The poison between two good events: the good ones land, the poison is
/// dead-lettered once with PostgreSQL's SQLSTATE, and no row holds it.
async fn refused_event_is_dead_lettered(name: &str, property_key: &str, address: &str) {
    let pipeline = Pipeline::start(name).await;
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
    pipeline
        .produce(&[poison(&pipeline, &like, property_key, address)])
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
