//! A state larger than any of its events (breaker-s16). Normalize refuses
//! an event over the size limit, so every event on `properties.events`
//! fits a record; but a state is the merge of several events, and two
//! events that each fit (one with a long description, one with many
//! pictures) merge into a state that does not. The state writer must not
//! stop on it: the other properties of its partition must still get their
//! states on `properties.latest`. It stops instead ("the state of ... is
//! N bytes, over the ..."), and once restarted it reads the same events
//! again and stops again, so the whole partition of `properties.latest`
//! stands still.

use std::time::{Duration, Instant};

use pipeline_tests::latest_states::latest_records;
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
#[ignore = "breaker-s16: two events that each fit a record merge into a state that does not; the state writer stops on it, and after every restart again, so its partition of properties.latest stands still"]
async fn a_state_larger_than_its_events_does_not_stop_the_partition() {
    let pipeline = Pipeline::start_with(
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

    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let latest = latest_records(&pipeline).await;
        if latest.iter().any(|r| r.key == "generic:small") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no state of generic:small on properties.latest ({} records); the state writer:\n{}",
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
