//! A stalled dedupe owner whose outputs wait in the producer's queue.
//!
//! `[kafka.properties] linger.ms` is a throughput setting operators tune
//! (`DEDUPE__KAFKA__PROPERTIES__LINGER.MS`); here 1 s, so a batch's outputs
//! sit in librdkafka's queue for a second before they are sent. Two
//! instances share the partitions while webhooks flow; the first is frozen
//! with SIGSTOP past the session timeout (the group gives its partitions to
//! the second, which restores and forwards them), then let run on. Outputs
//! it had queued before the freeze are past their delivery timeout when it
//! wakes: they must fail, not be sent after the other instance forwarded
//! the same inputs.

use std::time::Duration;

use pipeline_tests::exactly_once::ExactlyOnce;
use pipeline_tests::{Pipeline, Service};

const WEBHOOKS: usize = 300;

#[tokio::test(flavor = "multi_thread")]
async fn a_frozen_dedupe_with_queued_outputs_doubles_nothing() {
    let mut pipeline = Pipeline::start_with(
        "dedupe_stall_linger",
        &[Service::Ingest, Service::Normalize, Service::Sink],
        None,
        &[("DEDUPE__KAFKA__PROPERTIES__LINGER.MS", "1000")],
    )
    .await;
    pipeline.spawn(Service::Dedupe);
    pipeline.spawn_another(Service::Dedupe);
    let senders = pipeline.client().deliver_all_generic(
        (0..WEBHOOKS)
            .map(|i| pipeline_tests::numbered_webhook("linger", i))
            .collect(),
        2,
        Duration::from_millis(60),
    );
    pipeline
        .expect_log(
            Service::Dedupe,
            "batch deduplicated",
            Duration::from_secs(60),
        )
        .await;
    tokio::time::sleep(Duration::from_millis(2_500)).await;
    pipeline.send_signal(Service::Dedupe, "STOP");
    tokio::time::sleep(Duration::from_secs(16)).await;
    pipeline.send_signal(Service::Dedupe, "CONT");
    senders.await.expect("every delivery got its 200");
    ExactlyOnce::of((0..WEBHOOKS).map(|i| format!("generic:evt_linger_{i}")))
        .only()
        .assert(&pipeline, Duration::from_secs(90))
        .await;
}
