//! Dedupe's `/health` tells a wedged loop from an idle one. Idle with
//! nothing to read it answers 200, however long it idles. Cut off from the
//! broker (its connections black-holed by the fault proxy) while the group
//! has lag, every poll comes back empty and every restore fails: that is no
//! progress, and once `stall_after_secs` passes `/health` answers 503. When
//! the broker is reachable again everything lands exactly once and
//! `/health` is back to 200.

use std::time::{Duration, Instant};

use pipeline_tests::exactly_once::ExactlyOnce;
use pipeline_tests::fault_proxy::FaultProxy;
use pipeline_tests::{Pipeline, Service};

const WEBHOOKS: usize = 200;

fn webhook(i: usize) -> Vec<u8> {
    pipeline_tests::numbered_webhook("wedged", i)
}

async fn health_status(pipeline: &Pipeline) -> Option<u16> {
    let response = reqwest::get(pipeline.health_url(Service::Dedupe))
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

/// The total lag dedupe's `/metrics` reports, if it reports one.
async fn sampled_lag(pipeline: &Pipeline) -> Option<i64> {
    let text = reqwest::get(pipeline.metrics_url(Service::Dedupe))
        .await
        .ok()?
        .text()
        .await
        .ok()?;
    let lags: Vec<i64> = text
        .lines()
        .filter(|line| !line.starts_with('#') && line.contains("consumer_lag"))
        .filter_map(|line| line.rsplit(' ').next()?.parse().ok())
        .collect();
    (!lags.is_empty()).then(|| lags.iter().sum())
}

#[tokio::test(flavor = "multi_thread")]
async fn dedupe_cut_off_from_the_broker_with_lag_turns_unhealthy() {
    let mut pipeline = Pipeline::start_with(
        "dedupe_wedged",
        &[Service::Ingest, Service::Normalize, Service::Sink],
        None,
        &[("DEDUPE__STALL_AFTER_SECS", "5")],
    )
    .await;
    let proxy = FaultProxy::start(&pipeline.stack.brokers).await;
    pipeline.spawn_through(Service::Dedupe, &proxy);
    for i in 0..5 {
        pipeline.deliver_generic(&webhook(i)).await;
    }
    assert_eq!(
        pipeline
            .wait_for_count(
                "SELECT count(*) FROM property_events",
                5,
                Duration::from_secs(90)
            )
            .await,
        5
    );
    // Idle, nothing to read, for more than twice the allowance: healthy.
    tokio::time::sleep(Duration::from_secs(12)).await;
    assert_eq!(health_status(&pipeline).await, Some(200), "idle is healthy");

    // Slow dedupe down so lag builds up and its sampler sees it.
    proxy.set_delay(Duration::from_millis(400));
    let senders = pipeline.client().deliver_all_generic(
        (5..WEBHOOKS).map(webhook).collect(),
        4,
        Duration::ZERO,
    );
    let deadline = Instant::now() + Duration::from_secs(90);
    while sampled_lag(&pipeline).await.unwrap_or(0) <= 0 {
        assert!(Instant::now() < deadline, "dedupe never reported lag");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // Then cut it off: nothing it polls comes back, nothing it restores
    // can be read.
    proxy.black_hole(Duration::from_secs(180));
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut seen = Vec::new();
    loop {
        let status = health_status(&pipeline).await;
        if status == Some(503) {
            break;
        }
        seen.push((status, sampled_lag(&pipeline).await));
        assert!(
            Instant::now() < deadline,
            "dedupe cut off from the broker with lag for over 5 s still answers 200 on /health \
             (status, lag reported each second: {seen:?}):\n{}",
            pipeline.log_tail(Service::Dedupe)
        );
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    proxy.restore();
    senders.await.expect("every delivery got its 200");
    ExactlyOnce::of((0..WEBHOOKS).map(|i| format!("generic:evt_wedged_{i}")))
        .only()
        .assert(&pipeline, Duration::from_secs(180))
        .await;
    assert!(
        wait_for_health(&pipeline, 200, Duration::from_secs(60)).await,
        "healthy again once caught up"
    );
}
