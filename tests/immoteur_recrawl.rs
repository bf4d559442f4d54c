//! Immoteur notifies again on every re-crawl of a property (about every
//! 24 h) even when nothing changed; `meta.lastSeenAt` after
//! `meta.lastModifiedAt` says so. Such a notification is a fact (it lands in
//! `property_events`) but changes no state: no new `properties.latest`
//! record, and the `properties` row still comes from the first event.

use std::time::Duration;

use pipeline_tests::{IMMOTEUR_TOKEN, Pipeline, fixture, unix_now};
use rdkafka::Message;

/// The event ids (Immoteur's are UUIDs) of the real change and the re-crawl.
const CHANGE: &str = "0b1c2d3e-4f50-4a6b-8c7d-9e0f1a2b3c4d";
const RECRAWL: &str = "5a6b7c8d-9e0f-4a1b-8c2d-3e4f5a6b7c8d";

fn delivery(event_id: &str) -> Vec<(&'static str, String)> {
    vec![
        ("authorization", format!("Bearer {IMMOTEUR_TOKEN}")),
        ("user-agent", "Immoteur-Webhook/1.0".into()),
        (
            "x-immoteur-service-id",
            "7e6d5c4b-3a29-4817-a6b5-c4d3e2f1a0b9".into(),
        ),
        ("x-immoteur-event-id", event_id.into()),
        ("x-immoteur-delivery-id", event_id.replace("4c", "4d")),
        ("x-immoteur-timestamp", unix_now().to_string()),
    ]
}

#[tokio::test(flavor = "multi_thread")]
async fn a_re_crawl_notification_changes_no_state() {
    let pipeline = Pipeline::start("immoteur_recrawl").await;
    let mut original: serde_json::Value =
        serde_json::from_slice(&fixture("immoteur/property-notification.json")).expect("JSON");
    original["meta"]["lastModifiedAt"] = "2025-06-20T11:00:00Z".into();
    original["meta"]["lastSeenAt"] = "2025-06-20T11:00:00Z".into();
    let mut recrawl = original.clone();
    recrawl["meta"]["lastSeenAt"] = "2025-06-21T11:02:00Z".into();

    for (event_id, body) in [(CHANGE, &original), (RECRAWL, &recrawl)] {
        let body = serde_json::to_vec(body).expect("JSON");
        let answer = pipeline
            .post("immoteur", &delivery(event_id), &body)
            .await
            .expect("answers");
        let status = answer.status();
        let text = answer.text().await.unwrap_or_default();
        assert_eq!(status, 200, "{event_id}: {text}");
    }
    let events = "SELECT count(*) FROM property_events";
    assert_eq!(
        pipeline
            .wait_for_count(events, 2, Duration::from_secs(60))
            .await,
        2,
        "{}",
        pipeline.all_logs()
    );
    // Give the state writer time to write a second state if it were to.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let latest = pipeline.read_topic(&pipeline.topics.latest());
    assert_eq!(latest.len(), 1, "one state record, for the real change");
    assert_eq!(
        pipeline_tests::header(&latest[0], "dedupe-key").as_deref(),
        Some(format!("immoteur:{CHANGE}").as_str())
    );
    let row = pipeline
        .db()
        .await
        .query_one(
            "SELECT state->'last_event'->>'dedupe_key', (state->>'contributing_events')::int FROM properties",
            &[],
        )
        .await
        .expect("one property");
    assert_eq!(
        row.get::<_, Option<String>>(0).as_deref(),
        Some(format!("immoteur:{CHANGE}").as_str())
    );
    assert_eq!(row.get::<_, Option<i32>>(1), Some(1));
    assert!(latest[0].payload().is_some());
}
