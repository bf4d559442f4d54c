//! A raw record normalize cannot turn into events because of their size or
//! number goes to `webhooks.dlq` with a precise reason, and normalize moves
//! on: the records behind it land. Size is permanent, so it is never
//! retried (a retried batch used to wedge every normalize instance).

use std::time::Duration;

use common::produce::OutRecord;
use pipeline_tests::{FLUXIMMO_TOKEN, Pipeline, Service, header, unix_now};
use rdkafka::Message;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;

/// A generic `property.created` record for `webhooks.raw` partition 0, as
/// ingest would write it.
fn generic(pipeline: &Pipeline, id: &str, description: &str) -> OutRecord {
    let body = serde_json::json!({
        "id": format!("evt_{id}"),
        "type": "property.created",
        "created": "2024-05-01T12:00:00Z",
        "data": {"property": {"id": format!("p_{id}"), "price": 100_000, "description": description}}
    });
    OutRecord {
        topic: pipeline.topics.raw(),
        partition: Some(0),
        key: Some(format!("generic:evt_{id}").into_bytes()),
        payload: Some(serde_json::to_vec(&body).expect("serializes")),
        headers: Vec::new(),
    }
    .header("source", "generic")
    .header("provider", "generic")
    .header("content-type", "application/json")
    .header("received-at", (unix_now() * 1000).to_string())
}

#[tokio::test(flavor = "multi_thread")]
async fn an_event_over_the_size_limit_is_dead_lettered_and_the_records_behind_it_land() {
    let pipeline = Pipeline::start_with_env(
        "oversized",
        &[("NORMALIZE__KAFKA__MESSAGE_MAX_BYTES", "20000")],
    )
    .await;
    let big = generic(&pipeline, "big", &"x".repeat(50_000));
    let body_len = big.payload.as_ref().map_or(0, Vec::len);
    let mut records = vec![big];
    records.extend((1..=3).map(|i| generic(&pipeline, &format!("n{i}"), "a flat")));
    pipeline.produce(&records).await;

    let rows = pipeline
        .wait_for_count(
            "SELECT count(*) FROM property_events",
            3,
            Duration::from_secs(60),
        )
        .await;
    assert_eq!(
        rows,
        3,
        "the records behind it land\n{}",
        pipeline.all_logs()
    );
    assert_eq!(
        pipeline
            .count("SELECT count(*) FROM property_events WHERE event_id = 'evt_big'")
            .await,
        0
    );

    let dead = pipeline
        .wait_for_records(&pipeline.topics.dlq(), 1, Duration::from_secs(10))
        .await;
    assert_eq!(dead.len(), 1, "{}", pipeline.all_logs());
    let record = &dead[0];
    assert_eq!(header(record, "error.kind").as_deref(), Some("too_large"));
    let message = header(record, "error.message").unwrap_or_default();
    for part in [
        "event 1 of 1 (dedupe key `generic:evt_big`)",
        &pipeline.topics.normalized(),
        "would be ",
        "19811-byte budget",
        "message_max_bytes 20000",
    ] {
        assert!(message.contains(part), "`{part}` in: {message}");
    }
    assert_eq!(header(record, "offset").as_deref(), Some("0"));
    assert_eq!(header(record, "partition").as_deref(), Some("0"));
    // The raw record itself (50 KB) does not fit the DLQ either: its value
    // is cut to fit, and says so.
    assert_eq!(
        header(record, "error.payload-truncated"),
        Some(body_len.to_string())
    );
    let kept = record.payload().unwrap_or_default();
    assert!(
        kept.len() < 20_000 && !kept.is_empty(),
        "{} bytes",
        kept.len()
    );
    assert!(
        records[0]
            .payload
            .as_deref()
            .is_some_and(|body| body.starts_with(kept)),
        "the value kept is the body's first bytes"
    );
    assert_eq!(
        pipeline.read_topic(&pipeline.topics.normalized()).len(),
        3,
        "each normal event produced once"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_fluximmo_body_listing_more_ids_than_the_cap_is_dead_lettered() {
    let pipeline = Pipeline::start("too_many_ids").await;
    let client = pipeline.client();
    let query = format!("token={FLUXIMMO_TOKEN}");
    // 10,001 ids: one more than the default max_events_per_record.
    let ids: Vec<String> = (0..10_001).map(|i| format!("\"id{i}\"")).collect();
    let huge = format!(
        r#"{{"data":{{"created":[{{"properties":[{}],"alert_id":"a"}}],"updated":[]}}}}"#,
        ids.join(",")
    );
    let small =
        br#"{"data":{"created":[{"properties":["ok1","ok2"],"alert_id":"b"}],"updated":[]}}"#;
    for body in [huge.as_bytes(), small.as_slice()] {
        let response = client
            .post_to("fluximmo", &query, &[], body)
            .await
            .expect("answers");
        assert_eq!(response.status(), 200);
    }

    let rows = pipeline
        .wait_for_count(
            "SELECT count(*) FROM property_events",
            2,
            Duration::from_secs(60),
        )
        .await;
    assert_eq!(rows, 2, "the other record lands\n{}", pipeline.all_logs());
    let dead = pipeline
        .wait_for_records(&pipeline.topics.dlq(), 1, Duration::from_secs(10))
        .await;
    assert_eq!(dead.len(), 1, "{}", pipeline.all_logs());
    let record = &dead[0];
    assert_eq!(
        header(record, "error.kind").as_deref(),
        Some("too_many_events")
    );
    assert_eq!(
        header(record, "error.message").as_deref(),
        Some("the record yields 10001 events, more than max_events_per_record (10000)")
    );
    assert_eq!(
        record.payload(),
        Some(huge.as_bytes()),
        "the body unchanged"
    );
    assert_eq!(header(record, "error.payload-truncated"), None);
    assert_eq!(pipeline.read_topic(&pipeline.topics.normalized()).len(), 2);
}

/// Replaces `topic` by one of the same partition count whose
/// `max.message.bytes` is `limit` (the broker refuses larger batches).
async fn recreate_with_limit(brokers: &str, topic: &str, partitions: i32, limit: &str) {
    let admin: AdminClient<DefaultClientContext> = common::kafka::KafkaSettings {
        brokers: brokers.to_string(),
        ..common::kafka::KafkaSettings::default()
    }
    .client()
    .create()
    .expect("admin client");
    let options = AdminOptions::new().operation_timeout(Some(Duration::from_secs(10)));
    for result in admin
        .delete_topics(&[topic], &options)
        .await
        .expect("delete answered")
    {
        let _ = result.expect("topic deleted");
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let new = NewTopic::new(topic, partitions, TopicReplication::Fixed(1))
        .set("max.message.bytes", limit);
    for result in admin
        .create_topics(&[new], &options)
        .await
        .expect("create answered")
    {
        let _ = result.expect("topic created");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_record_the_broker_refuses_for_its_size_is_dead_lettered_and_the_batch_lands() {
    // Normalize's own limit is the default (1 MiB), but the topic's is
    // 20 kB: the broker refuses the event, and with it the whole batch it
    // was sent in.
    let mut pipeline = Pipeline::start_with("broker_refuses", &[Service::Ingest], None, &[]).await;
    recreate_with_limit(
        &pipeline.stack.brokers.clone(),
        &pipeline.topics.normalized(),
        3,
        "20000",
    )
    .await;
    for service in [Service::Normalize, Service::Dedupe, Service::Sink] {
        pipeline.spawn(service);
    }
    let big = generic(&pipeline, "big", &"x".repeat(30_000));
    let mut records = vec![big.clone()];
    records.extend((1..=3).map(|i| generic(&pipeline, &format!("n{i}"), "a flat")));
    pipeline.produce(&records).await;

    let rows = pipeline
        .wait_for_count(
            "SELECT count(*) FROM property_events",
            3,
            Duration::from_secs(60),
        )
        .await;
    assert_eq!(
        rows,
        3,
        "the records of the batch land\n{}",
        pipeline.all_logs()
    );
    let dead = pipeline
        .wait_for_records(&pipeline.topics.dlq(), 1, Duration::from_secs(10))
        .await;
    assert_eq!(dead.len(), 1, "{}", pipeline.all_logs());
    let record = &dead[0];
    assert_eq!(header(record, "error.kind").as_deref(), Some("too_large"));
    let message = header(record, "error.message").unwrap_or_default();
    for part in [
        "event 1 of 1 (dedupe key `generic:evt_big`)",
        "was refused, sent alone",
        "Message size too large",
    ] {
        assert!(message.contains(part), "`{part}` in: {message}");
    }
    assert_eq!(
        record.payload(),
        big.payload.as_deref(),
        "the DLQ takes it whole"
    );
    assert_eq!(
        pipeline.read_topic(&pipeline.topics.normalized()).len(),
        3,
        "each event of the batch stored once"
    );
}
