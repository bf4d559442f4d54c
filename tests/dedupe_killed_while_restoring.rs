//! Dedupe killed with SIGKILL while it restores a partition's state.
//! Dedupe talks to the broker through the fault proxy. First its frames are
//! held 3 s each way, so a batch fails after the broker may have stored
//! some of its outputs and is abandoned; the restore that follows (reading
//! the changelog and the output's tail through the slowed proxy) is cut
//! short by SIGKILL. Then a new instance is started while the proxy still
//! holds every frame 300 ms, and killed again while it restores its partitions
//! at assignment. The last instance runs unhindered: every webhook that got
//! a 200 lands exactly once on `properties.events` and in PostgreSQL.
//! The second test does the same with clean stops (SIGTERM).

use std::time::{Duration, Instant};

use pipeline_tests::exactly_once::ExactlyOnce;
use pipeline_tests::fault_proxy::FaultProxy;
use pipeline_tests::trickle::Trickle;
use pipeline_tests::{Pipeline, Service};

/// Waits until `needle` is in dedupe's log more than `seen` times.
async fn wait_for_more(pipeline: &Pipeline, needle: &str, seen: usize, timeout: Duration) {
    let deadline = Instant::now() + timeout;
    while pipeline.log(Service::Dedupe).matches(needle).count() <= seen {
        assert!(
            Instant::now() < deadline,
            "no new `{needle}` in dedupe's log:\n{}",
            pipeline.log_tail(Service::Dedupe)
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

const RESTORING: &str = "restoring partition state";

#[tokio::test(flavor = "multi_thread")]
async fn a_dedupe_killed_mid_restore_loses_and_doubles_nothing() {
    let mut pipeline = Pipeline::start_with(
        "dedupe_kill_restore",
        &[Service::Ingest, Service::Normalize, Service::Sink],
        None,
        &[],
    )
    .await;
    let proxy = FaultProxy::start(&pipeline.stack.brokers).await;
    pipeline.spawn_through(Service::Dedupe, &proxy);
    let trickle = Trickle::start(pipeline.client(), "krest", Duration::from_millis(50));
    pipeline
        .expect_log(
            Service::Dedupe,
            "batch deduplicated",
            Duration::from_secs(60),
        )
        .await;

    // A batch abandoned after a partial produce, then killed mid-restore.
    let restores = pipeline.log(Service::Dedupe).matches(RESTORING).count();
    proxy.set_delay(Duration::from_secs(3));
    pipeline
        .expect_log(Service::Dedupe, "batch abandoned", Duration::from_secs(60))
        .await;
    wait_for_more(&pipeline, RESTORING, restores, Duration::from_secs(30)).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    pipeline.kill(Service::Dedupe);

    // A new instance killed while it restores at assignment (each frame
    // held 300 ms: a restore takes several seconds).
    proxy.set_delay(Duration::from_millis(300));
    let restores = pipeline.log(Service::Dedupe).matches(RESTORING).count();
    pipeline.spawn_through(Service::Dedupe, &proxy);
    wait_for_more(&pipeline, RESTORING, restores, Duration::from_secs(60)).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    pipeline.kill(Service::Dedupe);

    proxy.set_delay(Duration::ZERO);
    pipeline.spawn_through(Service::Dedupe, &proxy);
    tokio::time::sleep(Duration::from_secs(3)).await;
    let sent = trickle.stop().await;
    ExactlyOnce::of((0..sent).map(|i| format!("generic:evt_krest_{i}")))
        .only()
        .assert(&pipeline, Duration::from_secs(90))
        .await;
}

/// A clean stop (SIGTERM) while batches wait on slowed produces and while
/// the restore after an abandoned batch runs: dedupe stops with
/// unacknowledged records and whatever its consumer holds; the next
/// instance restores and forwards each webhook once.
#[tokio::test(flavor = "multi_thread")]
async fn a_dedupe_stopped_mid_batch_loses_and_doubles_nothing() {
    let mut pipeline = Pipeline::start_with(
        "dedupe_term_batch",
        &[Service::Ingest, Service::Normalize, Service::Sink],
        None,
        &[],
    )
    .await;
    let proxy = FaultProxy::start(&pipeline.stack.brokers).await;
    pipeline.spawn_through(Service::Dedupe, &proxy);
    let trickle = Trickle::start(pipeline.client(), "krest", Duration::from_millis(50));
    pipeline
        .expect_log(
            Service::Dedupe,
            "batch deduplicated",
            Duration::from_secs(60),
        )
        .await;
    proxy.set_delay(Duration::from_secs(2));
    tokio::time::sleep(Duration::from_secs(3)).await;
    pipeline.send_sigterm(Service::Dedupe);
    let _ = pipeline
        .wait_exit_status(Service::Dedupe, Duration::from_secs(30))
        .await;

    // The next instance starts unhindered, then its produces time out.
    proxy.set_delay(Duration::ZERO);
    let log = pipeline.log(Service::Dedupe);
    let (batches, abandoned) = (
        log.matches("batch deduplicated").count(),
        log.matches("batch abandoned").count(),
    );
    pipeline.spawn_through(Service::Dedupe, &proxy);
    wait_for_more(
        &pipeline,
        "batch deduplicated",
        batches,
        Duration::from_secs(60),
    )
    .await;
    proxy.set_delay(Duration::from_secs(3));
    wait_for_more(
        &pipeline,
        "batch abandoned",
        abandoned,
        Duration::from_secs(60),
    )
    .await;
    tokio::time::sleep(Duration::from_millis(700)).await;
    pipeline.send_sigterm(Service::Dedupe);
    let _ = pipeline
        .wait_exit_status(Service::Dedupe, Duration::from_secs(30))
        .await;

    proxy.set_delay(Duration::ZERO);
    pipeline.spawn_through(Service::Dedupe, &proxy);
    tokio::time::sleep(Duration::from_secs(3)).await;
    let sent = trickle.stop().await;
    ExactlyOnce::of((0..sent).map(|i| format!("generic:evt_krest_{i}")))
        .only()
        .assert(&pipeline, Duration::from_secs(90))
        .await;
}
