//! A stalled dedupe instance cannot write after it lost its partitions.
//! Two instances share the partitions while webhooks flow; the first is
//! frozen with SIGSTOP (no heartbeat, no poll, whatever it was doing mid-
//! batch) for longer than the group's session timeout, so the second takes
//! its partitions over and restores them; then SIGCONT lets the first run
//! on from where it stopped. Its batch is past its wall-time budget, so it
//! writes nothing more and gives the partitions up: every webhook that got a
//! 200 lands exactly once in PostgreSQL and on `properties.events`.

use std::time::Duration;

use pipeline_tests::exactly_once::ExactlyOnce;
use pipeline_tests::{Pipeline, Service};

const WEBHOOKS: usize = 300;

fn webhook(i: usize) -> Vec<u8> {
    pipeline_tests::numbered_webhook("stall", i)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_dedupe_frozen_past_its_session_loses_and_doubles_nothing() {
    let mut pipeline = Pipeline::start("dedupe_stalled").await;
    pipeline.spawn_another(Service::Dedupe);
    let senders = pipeline.client().deliver_all_generic(
        (0..WEBHOOKS).map(webhook).collect(),
        2,
        Duration::from_millis(60),
    );
    // Let both instances own partitions and forward for a while.
    pipeline
        .expect_log(
            Service::Dedupe,
            "batch deduplicated",
            Duration::from_secs(60),
        )
        .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    pipeline.send_signal(Service::Dedupe, "STOP");
    // Past the 10 s session timeout: the group gives the frozen instance's
    // partitions to the other one, which restores and forwards them.
    tokio::time::sleep(Duration::from_secs(16)).await;
    pipeline.send_signal(Service::Dedupe, "CONT");
    senders.await.expect("every delivery got its 200");
    ExactlyOnce::of((0..WEBHOOKS).map(|i| format!("generic:evt_stall_{i}")))
        .only()
        .assert(&pipeline, Duration::from_secs(120))
        .await;
}
