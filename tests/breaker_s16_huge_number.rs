//! One sender's number, end to end (breaker-s16): a generic webhook whose
//! price is the largest double (`1.7976931348623157e308`, a finite JSON
//! number every parser accepts), then a later update of the same property
//! that changes only its title. PostgreSQL spells the stored state's price
//! with all its 309 digits; `serde_json`'s default float parser refused to
//! read that back ("number out of range"), so the sink left the row as it
//! was for ever (the update, and every later event, stored in
//! `property_events` but never in `properties`) while `properties.latest`
//! moved on. Now PostgreSQL's state is the last state on
//! `properties.latest`, price and title.

use std::time::Duration;

use pipeline_tests::Pipeline;
use pipeline_tests::latest_states::latest_records;

fn webhook(id: &str, kind: &str, minute: u32, property: &str) -> Vec<u8> {
    format!(
        r#"{{"id":"{id}","type":"property.{kind}","created":"2024-05-01T12:{minute:02}:00Z",
           "data":{{"property":{{"id":"huge",{property}}}}}}}"#
    )
    .into_bytes()
}

#[tokio::test(flavor = "multi_thread")]
async fn the_largest_double_does_not_freeze_the_row() {
    let pipeline = Pipeline::start("s16_huge").await;
    pipeline
        .deliver_generic(&webhook(
            "evt_huge_created",
            "created",
            0,
            r#""price":1.7976931348623157e308,"title":"first""#,
        ))
        .await;
    // The update must come in a later sink batch, which reads the row back.
    let created = pipeline
        .wait_for_count(
            "SELECT count(*) FROM properties WHERE property_key = 'generic:huge'",
            1,
            Duration::from_secs(60),
        )
        .await;
    assert_eq!(created, 1, "{}", pipeline.all_logs());
    pipeline
        .deliver_generic(&webhook(
            "evt_huge_updated",
            "updated",
            1,
            r#""title":"second""#,
        ))
        .await;
    let landed = pipeline
        .wait_for_count(
            "SELECT count(*) FROM property_events WHERE property_key = 'generic:huge'",
            2,
            Duration::from_secs(60),
        )
        .await;
    assert_eq!(landed, 2, "{}", pipeline.all_logs());
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let latest = loop {
        let last = latest_records(&pipeline)
            .await
            .into_iter()
            .rev()
            .find(|r| r.key == "generic:huge")
            .map(|r| r.state);
        let done = last
            .as_ref()
            .is_some_and(|s| s.property.title.as_deref() == Some("second"));
        if done || tokio::time::Instant::now() >= deadline {
            break last.expect("a state on properties.latest");
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    assert_eq!(latest.property.price, Some(f64::MAX), "properties.latest");
    assert_eq!(latest.property.title.as_deref(), Some("second"));
    // The sink commits the update's batch once its row is decided; give the
    // row a moment after the event landed.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    let (title, price) = loop {
        let row = pipeline
            .db()
            .await
            .query_one(
                "SELECT state->'property'->>'title', price
                 FROM properties WHERE property_key = 'generic:huge'",
                &[],
            )
            .await
            .expect("the row");
        let (title, price): (Option<String>, Option<f64>) = (row.get(0), row.get(1));
        if title.as_deref() == Some("second") || tokio::time::Instant::now() >= deadline {
            break (title, price);
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    assert_eq!(
        (title.as_deref(), price),
        (Some("second"), Some(f64::MAX)),
        "PostgreSQL's row took the update:\n{}",
        pipeline
            .all_logs()
            .lines()
            .filter(|l| l.contains("left as it is"))
            .collect::<Vec<_>>()
            .join("\n")
    );
    let text: String = pipeline
        .db()
        .await
        .query_one(
            "SELECT state::text FROM properties WHERE property_key = 'generic:huge'",
            &[],
        )
        .await
        .expect("the row")
        .get(0);
    let stored: schemas::PropertyState = serde_json::from_str(&text).expect("a state");
    assert_eq!(stored, latest, "PostgreSQL's state is properties.latest's");
}
