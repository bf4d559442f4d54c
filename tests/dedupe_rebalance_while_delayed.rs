//! A rebalance while the first dedupe instance's requests are slowed: the
//! first instance talks to the broker through the fault proxy, which holds
//! every frame 2 s (a produce round trip of 4 s, inside the 5 s delivery
//! timeout) or 3 s (6 s, past it: batches fail after the broker may have
//! stored some of their outputs); a second instance, talking to the broker
//! directly, then joins the group and takes half the partitions while the
//! first still has produces in flight. The group must not hand a partition
//! to the second instance before the first has given it up (the first can
//! only rejoin from its loop, after its batch is settled), and a produce of
//! the first that lands late must not be forwarded again by the second:
//! every webhook that got a 200 lands exactly once on `properties.events`
//! and in PostgreSQL.

use std::time::Duration;

use pipeline_tests::exactly_once::ExactlyOnce;
use pipeline_tests::fault_proxy::{FaultProxy, frames};
use pipeline_tests::trickle::Trickle;
use pipeline_tests::{Pipeline, Service};

async fn rebalance_while_delayed(name: &str, tag: &'static str, delay: Duration) {
    let mut pipeline = Pipeline::start_with(
        name,
        &[Service::Ingest, Service::Normalize, Service::Sink],
        None,
        &[],
    )
    .await;
    let proxy = FaultProxy::start(&pipeline.stack.brokers).await;
    pipeline.spawn_through(Service::Dedupe, &proxy);
    let trickle = Trickle::start(pipeline.client(), tag, Duration::from_millis(50));
    pipeline
        .expect_log(
            Service::Dedupe,
            "batch deduplicated",
            Duration::from_secs(60),
        )
        .await;
    proxy.set_delay(delay);
    // Let produces be in flight (held by the proxy) when the group moves.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let produces_before = proxy.requests(frames::PRODUCE);
    pipeline.spawn_another(Service::Dedupe);
    tokio::time::sleep(Duration::from_secs(12)).await;
    proxy.set_delay(Duration::ZERO);
    tokio::time::sleep(Duration::from_secs(5)).await;
    let sent = trickle.stop().await;
    assert!(
        proxy.requests(frames::PRODUCE) > produces_before,
        "the first instance produced while slowed"
    );
    assert!(
        pipeline.log(Service::Dedupe).contains("partitions revoked"),
        "the group moved partitions away from the slowed instance:\n{}",
        pipeline.log_tail(Service::Dedupe)
    );
    ExactlyOnce::of((0..sent).map(|i| format!("generic:evt_{tag}_{i}")))
        .only()
        .assert(&pipeline, Duration::from_secs(90))
        .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_rebalance_while_produces_are_slow_doubles_nothing() {
    rebalance_while_delayed("dedupe_rebal_slow", "rbslow", Duration::from_secs(2)).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_rebalance_while_produces_time_out_doubles_nothing() {
    rebalance_while_delayed("dedupe_rebal_tmo", "rbtmo", Duration::from_secs(3)).await;
}
