//! Dedupe, the state writer and the sink scaled out: two instances of each
//! from the start, a third dedupe and state writer joining mid-stream, then
//! the extra instances leaving (one cleanly, one killed) while events keep
//! flowing. Rebalances must neither lose nor double-forward an event: the
//! final tables equal a single instance's, and `properties.latest` holds
//! each property's merged state, none written twice.

use std::time::Duration;

use pipeline_tests::latest_states::assert_latest_is_the_merge;
use pipeline_tests::{Pipeline, Service};

const EVENTS: usize = 90;

fn event(i: usize) -> Vec<u8> {
    format!(
        r#"{{"id":"evt_scale_{i}","type":"property.created","created":"2024-02-01T08:{:02}:{:02}Z",
           "data":{{"property":{{"id":"prop_scale_{i}","price":{},"bedrooms":1}}}}}}"#,
        i / 60,
        i % 60,
        2000 + i
    )
    .into_bytes()
}

/// Waits until at least `n` events landed in PostgreSQL (60 s at most).
async fn wait_for_progress(pipeline: &Pipeline, n: i64) {
    let landed = pipeline
        .wait_for_count(
            &format!("SELECT least(count(*), {n}) FROM property_events"),
            n,
            Duration::from_secs(60),
        )
        .await;
    assert_eq!(landed, n, "the pipeline stalled\n{}", pipeline.all_logs());
}

#[tokio::test(flavor = "multi_thread")]
async fn rebalancing_dedupe_the_state_writer_and_sink_loses_and_doubles_nothing() {
    let mut pipeline = Pipeline::start("scaled").await;
    pipeline.spawn_another(Service::Dedupe);
    pipeline.spawn_another(Service::StateWriter);
    pipeline.spawn_another(Service::Sink);

    let client = pipeline.client();
    let sender = tokio::spawn(async move {
        for i in 0..EVENTS {
            client.deliver_generic(&event(i)).await;
            if i % 5 == 4 {
                client.deliver_generic(&event(i - 2)).await;
            }
            tokio::time::sleep(Duration::from_millis(150)).await;
        }
    });
    // Each change happens while rows are landing through the current instances.
    wait_for_progress(&pipeline, 10).await; // 2 dedupe, 2 sink
    pipeline.spawn_another(Service::Dedupe); // 2 → 3 dedupe
    pipeline.spawn_another(Service::StateWriter); // 2 → 3 state writers
    wait_for_progress(&pipeline, 30).await;
    pipeline.stop_another(Service::Dedupe, true); // 3 → 2, clean leave
    pipeline.stop_another(Service::StateWriter, true); // 3 → 2, clean leave
    pipeline.stop_another(Service::Sink, false); // 2 → 1 sink, crash
    wait_for_progress(&pipeline, 50).await;
    pipeline.stop_another(Service::Dedupe, false); // 2 → 1, crash
    pipeline.stop_another(Service::StateWriter, false); // 2 → 1, crash
    sender.await.expect("all events delivered");

    let expected = i64::try_from(EVENTS).expect("small");
    let rows = pipeline
        .wait_for_count(
            "SELECT count(*) FROM property_events",
            expected,
            Duration::from_secs(90),
        )
        .await;
    assert_eq!(rows, expected, "{}", pipeline.all_logs());
    assert_eq!(
        pipeline.count("SELECT count(*) FROM properties").await,
        expected
    );
    pipeline.assert_each_event_forwarded_once(EVENTS);
    let latest = assert_latest_is_the_merge(&pipeline, EVENTS, Duration::from_secs(90)).await;
    assert_eq!(latest.len(), EVENTS, "one property per event");
}
