//! `[kafka.properties] auto.offset.reset` must not make a stage skip what is
//! already on its input. The sink positions a partition at the offset
//! PostgreSQL stored for it; a partition with none (the sink's first start,
//! a database recreated) starts at the group's Kafka commit, and without one
//! at `auto.offset.reset`, which every stage sets to `earliest`. Overridden
//! to `latest` (`SINK__KAFKA__PROPERTIES__AUTO.OFFSET.RESET=latest`, say
//! copied from another service's settings), the events dedupe forwarded
//! before the sink's first start were skipped: webhooks that got their 200
//! never had a row. The override is now refused at load, like the other
//! settings the guarantees rest on, and the sink does not start with it.

use std::time::Duration;

use pipeline_tests::exactly_once::ExactlyOnce;
use pipeline_tests::{Pipeline, Service};

const WEBHOOKS: usize = 20;

#[tokio::test(flavor = "multi_thread")]
async fn a_sink_told_to_start_at_the_latest_offsets_refuses_to_start() {
    let mut pipeline = Pipeline::start_with(
        "sink_offset_reset",
        &[Service::Ingest, Service::Normalize, Service::Dedupe],
        None,
        &[("SINK__KAFKA__PROPERTIES__AUTO.OFFSET.RESET", "latest")],
    )
    .await;
    for i in 0..WEBHOOKS {
        pipeline
            .deliver_generic(&pipeline_tests::numbered_webhook("reset", i))
            .await;
    }
    let _ = pipeline
        .wait_for_records(&pipeline.topics.events(), WEBHOOKS, Duration::from_secs(60))
        .await;
    pipeline.spawn(Service::Sink);
    let status = pipeline
        .wait_exit_status(Service::Sink, Duration::from_secs(20))
        .await;
    let log = pipeline.log(Service::Sink);
    assert!(
        status.is_some_and(|s| !s.success()),
        "the sink ran with auto.offset.reset = latest:\n{log}"
    );
    assert!(log.contains("auto.offset.reset"), "{log}");

    // Without the override the sink writes every event already there.
    let mut sink = pipeline
        .command(Service::Sink)
        .env_remove("SINK__KAFKA__PROPERTIES__AUTO.OFFSET.RESET")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("start the sink");
    ExactlyOnce::of((0..WEBHOOKS).map(|i| format!("generic:evt_reset_{i}")))
        .only()
        .assert(&pipeline, Duration::from_secs(60))
        .await;
    let _ = sink.kill();
    let _ = sink.wait();
}
