//! The schema registry is down while the sink stops: the records whose
//! writer schema it could not fetch are held, not dead-lettered, and their
//! offsets are not stored, so after a restart (the registry back) every
//! row lands. Before the fix the stop turned the registry error into a
//! dead letter and committed its offset: a valid event lost.

use std::time::Duration;

use pipeline_tests::own_registry::OwnRegistry;
use pipeline_tests::{Pipeline, Service, Stack};

fn event(i: usize) -> Vec<u8> {
    format!(
        r#"{{"id":"evt_regstop_{i}","type":"property.created","created":"2024-06-01T10:00:0{i}Z",
           "data":{{"property":{{"id":"prop_regstop_{i}","price":{}}}}}}}"#,
        1000 + i
    )
    .into_bytes()
}

const EVENTS: &str = "SELECT count(*) FROM property_events";

#[tokio::test(flavor = "multi_thread")]
async fn a_registry_outage_while_the_sink_stops_dead_letters_nothing_and_loses_no_row() {
    let stack = Stack::from_env();
    let mut registry = OwnRegistry::start(&stack, "_schemas");
    let url = registry.url.clone();
    let mut pipeline =
        Pipeline::start_with_env("registry_stop", &[("SINK__SCHEMA_REGISTRY_URL", &url)]).await;
    // The sink has fetched no writer schema yet; its registry goes away.
    registry.stop();
    for i in 0..3 {
        pipeline.deliver_generic(&event(i)).await;
    }
    pipeline
        .expect_log(
            Service::Sink,
            "writer schema unavailable",
            Duration::from_secs(60),
        )
        .await;

    pipeline.send_sigterm(Service::Sink);
    assert!(
        pipeline
            .wait_exit(Service::Sink, Duration::from_secs(30))
            .await,
        "a clean stop: {}",
        pipeline.log_tail(Service::Sink)
    );
    assert_eq!(pipeline.dead_letters_of("sink").len(), 0, "no dead letter");
    assert_eq!(pipeline.count(EVENTS).await, 0);
    assert_eq!(
        pipeline
            .count("SELECT count(*) FROM sink_offsets WHERE next_offset > 0")
            .await,
        0,
        "no offset stored past the held records"
    );

    registry.start_reading("_schemas");
    pipeline.spawn(Service::Sink);
    assert_eq!(
        pipeline
            .wait_for_count(EVENTS, 3, Duration::from_secs(60))
            .await,
        3,
        "{}",
        pipeline.all_logs()
    );
    assert_eq!(pipeline.dead_letters_of("sink").len(), 0);
}
