//! A state larger than any of its events (breaker-s16). Normalize refuses
//! an event over the size limit, so every event on `properties.events`
//! fits a record; but a state is the merge of several events, and two
//! events that each fit (one with a long description, one with many
//! pictures) merge into a state that does not. The state writer once
//! stopped on it, and after every restart again, so the whole partition of
//! `properties.latest` stood still. Now it withholds the state's largest
//! values (listed in `withheld_fields`) until the record fits, keeps
//! going, and a restart writes nothing twice and withholds the same.

use std::time::{Duration, Instant};

use pipeline_tests::latest_states::{LatestRecord, latest_records};
use pipeline_tests::{Pipeline, Service};
use schemas::{EventType, PropertyEvent};

/// The state writer's record limit in this test (normalize would refuse
/// an event over the same limit).
const LIMIT: &str = "20000";

fn event(property: &str, id: &str, occurred_at: i64) -> PropertyEvent {
    let mut e = schemas::sample::price_change();
    e.event_id = id.into();
    e.dedupe_key = format!("generic:{id}");
    e.provider_property_id = property.into();
    e.property_key = format!("generic:{property}");
    e.event_type = EventType::Updated;
    e.provider_event_type = None;
    e.change = None;
    e.occurred_at = occurred_at;
    e.received_at = occurred_at + 1_000;
    e
}

#[tokio::test(flavor = "multi_thread")]
async fn a_state_larger_than_its_events_does_not_stop_the_partition() {
    let mut pipeline = Pipeline::start_with(
        "s16_size",
        &[Service::StateWriter],
        None,
        &[("STATE_WRITER__KAFKA__MESSAGE_MAX_BYTES", LIMIT)],
    )
    .await;
    let id = pipeline.register_event_schema().await;
    let t = 1_709_251_200_000;
    let mut described = event("big", "described", t);
    if let Some(p) = described.property.as_mut() {
        p.description = Some("a".repeat(11_000));
    }
    let mut pictured = event("big", "pictured", t + 1_000);
    if let Some(p) = pictured.property.as_mut() {
        p.description = None;
        p.pictures = Some(
            (0..400)
                .map(|i| format!("https://img.example/{i:05}.jpg"))
                .collect(),
        );
    }
    let other = event("small", "other", t + 2_000);
    for e in [&described, &pictured] {
        let size = schemas::encode_datum(e).expect("encodes").len();
        assert!(size < 15_000, "each event fits the limit: {size} bytes");
    }
    pipeline
        .produce(&[
            pipeline.forwarded_event(id, &described),
            pipeline.forwarded_event(id, &pictured),
            pipeline.forwarded_event(id, &other),
        ])
        .await;

    let _ = wait_for_key(&pipeline, "generic:small", 1).await;
    let latest = wait_for_key(&pipeline, "generic:big", 2).await;
    let big: Vec<_> = latest.iter().filter(|r| r.key == "generic:big").collect();
    assert_eq!(big.len(), 2, "one state per event of generic:big");
    assert!(big[0].state.withheld_fields.is_empty(), "the first fits");
    assert_eq!(
        big[0].state.property.description.as_deref().map(str::len),
        Some(11_000)
    );
    let merged = &big[1].state;
    assert_eq!(merged.withheld_fields, ["pictures"], "the larger value");
    assert_eq!(merged.property.pictures, None);
    assert!(merged.fields.contains_key("pictures"), "still known");
    assert_eq!(
        merged.property.description.as_deref().map(str::len),
        Some(11_000)
    );

    // Restarted, it writes nothing again; a newer, smaller picture list
    // brings the field back.
    pipeline.restart(Service::StateWriter).await;
    let mut fewer = event("big", "fewer", t + 3_000);
    if let Some(p) = fewer.property.as_mut() {
        p.description = None;
        p.pictures = Some(vec!["https://img.example/only.jpg".into()]);
    }
    pipeline
        .produce(&[pipeline.forwarded_event(id, &fewer)])
        .await;
    let latest = wait_for_key(&pipeline, "generic:big", 3).await;
    let big: Vec<_> = latest.iter().filter(|r| r.key == "generic:big").collect();
    assert_eq!(
        big.len(),
        3,
        "nothing written twice: {:?}",
        big.iter().map(|r| r.source_offset).collect::<Vec<_>>()
    );
    let last = &big[2].state;
    assert!(last.withheld_fields.is_empty());
    assert_eq!(last.property.pictures.as_ref().map(Vec::len), Some(1));
    assert_eq!(
        last.property.description.as_deref().map(str::len),
        Some(11_000)
    );
}

/// The records of `properties.latest` once `key` has `count` states,
/// read again a little later so that a record written twice would show;
/// failing with the state writer's errors after a minute.
async fn wait_for_key(pipeline: &Pipeline, key: &str, count: usize) -> Vec<LatestRecord> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let latest = latest_records(pipeline).await;
        if latest.iter().filter(|r| r.key == key).count() >= count {
            tokio::time::sleep(Duration::from_secs(2)).await;
            return latest_records(pipeline).await;
        }
        assert!(
            Instant::now() < deadline,
            "no {count} states of {key} on properties.latest ({} records); the state writer:\n{}",
            latest.len(),
            pipeline
                .log(Service::StateWriter)
                .lines()
                .filter(|l| l.contains("over the") || l.contains("Error"))
                .collect::<Vec<_>>()
                .join("\n")
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}
