//! A registry that answers 404 for the schema id the events carry (a
//! lagging replica: here a registry of the test's own reading an empty
//! schemas topic) is not the events' fault: the sink holds the partition,
//! dead-letters nothing, and `/health` turns 503 once it has made no
//! progress for `stall_after_secs` with lag. When the registry catches up
//! (started again on the real schemas topic), the rows land.

use std::time::{Duration, Instant};

use pipeline_tests::own_registry::OwnRegistry;
use pipeline_tests::{Pipeline, Service, Stack};

fn event(i: usize) -> Vec<u8> {
    format!(
        r#"{{"id":"evt_lag_{i}","type":"property.created","created":"2024-06-02T10:00:0{i}Z",
           "data":{{"property":{{"id":"prop_lag_{i}","price":{}}}}}}}"#,
        2000 + i
    )
    .into_bytes()
}

const EVENTS: &str = "SELECT count(*) FROM property_events";

async fn health_status(pipeline: &Pipeline) -> Option<u16> {
    let response = reqwest::get(pipeline.health_url(Service::Sink))
        .await
        .ok()?;
    Some(response.status().as_u16())
}

async fn wait_for_health(pipeline: &Pipeline, status: u16, timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if health_status(pipeline).await == Some(status) {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    false
}

#[tokio::test(flavor = "multi_thread")]
async fn a_registry_answering_404_holds_the_rows_until_it_catches_up() {
    let stack = Stack::from_env();
    let empty = format!("_schemas.lagging.{}", uuid::Uuid::new_v4().simple());
    let mut registry = OwnRegistry::start(&stack, &empty);
    let url = registry.url.clone();
    let pipeline = Pipeline::start_with_env(
        "registry_404",
        &[
            ("SINK__SCHEMA_REGISTRY_URL", &url),
            ("SINK__STALL_AFTER_SECS", "2"),
        ],
    )
    .await;
    for i in 0..2 {
        pipeline.deliver_generic(&event(i)).await;
    }
    pipeline
        .expect_log(
            Service::Sink,
            "writer schema unavailable",
            Duration::from_secs(60),
        )
        .await;
    assert!(
        pipeline.log(Service::Sink).contains("404"),
        "{}",
        pipeline.log_tail(Service::Sink)
    );
    assert!(
        wait_for_health(&pipeline, 503, Duration::from_secs(30)).await,
        "held with lag: /health says so"
    );
    assert_eq!(pipeline.count(EVENTS).await, 0);

    registry.start_reading("_schemas");
    assert_eq!(
        pipeline
            .wait_for_count(EVENTS, 2, Duration::from_secs(60))
            .await,
        2,
        "{}",
        pipeline.all_logs()
    );
    assert!(
        pipeline.dead_letters_of("sink").is_empty(),
        "no dead letter"
    );
    assert!(pipeline.log(Service::Sink).contains("partition resumed"));
    assert!(
        wait_for_health(&pipeline, 200, Duration::from_secs(30)).await,
        "healthy again once the rows landed"
    );
}
