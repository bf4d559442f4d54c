//! Events that are not about a property go to `webhooks.dlq` unchanged, with
//! headers naming the stage, the reason and the origin, and produce no row.

use std::time::Duration;

use pipeline_tests::{Pipeline, fixture, header, raw_field};
use rdkafka::Message;

#[tokio::test(flavor = "multi_thread")]
async fn an_appointment_is_dead_lettered_with_its_reason() {
    let pipeline = Pipeline::start("dlq").await;
    let body = fixture("generic/appointment.scheduled.json");
    pipeline.deliver_generic(&body).await;

    let mut dead = Vec::new();
    for _ in 0..300 {
        dead = pipeline.read_topic(&pipeline.topics.dlq());
        if !dead.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(dead.len(), 1, "{}", pipeline.all_logs());
    let record = &dead[0];
    assert_eq!(record.payload(), Some(body.as_slice()), "value unchanged");
    assert_eq!(header(record, "error.stage").as_deref(), Some("normalize"));
    assert_eq!(
        header(record, "error.kind").as_deref(),
        Some("unsupported_event_type")
    );
    assert!(
        header(record, "error.message").is_some_and(|m| m.contains("appointment.scheduled")),
        "the reason names the event type"
    );
    assert_eq!(header(record, "topic"), Some(pipeline.topics.raw()));
    assert_eq!(header(record, "offset").as_deref(), Some("0"));
    assert_eq!(
        raw_field(record, "source").as_deref(),
        Some("generic"),
        "original metadata kept"
    );

    // A property event sent after it proves the stage kept running...
    pipeline
        .deliver_generic(&fixture("generic/property.created.json"))
        .await;
    let events = pipeline
        .wait_for_count(
            "SELECT count(*) FROM property_events",
            1,
            Duration::from_secs(30),
        )
        .await;
    assert_eq!(events, 1, "{}", pipeline.all_logs());
    // ...and the appointment produced no row.
    assert_eq!(
        pipeline
            .count("SELECT count(*) FROM property_events WHERE event_id = 'evt_789012'")
            .await,
        0
    );
    assert!(pipeline.read_topic(&pipeline.topics.normalized()).len() == 1);
}
