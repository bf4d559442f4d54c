//! A produce that lands after dedupe gave it up, and after the restore
//! that followed had read the output's tail.
//!
//! Dedupe talks to the broker through the fault proxy, with a delivery
//! timeout of 1.5 s (`[fencing] produce_timeout_ms`; the proxy delays both
//! ways, and a one-way delay past the default 5 s would also time out the
//! group session). Every frame is held 3 s: librdkafka reports the batch's
//! produce timed out, the batch is abandoned, and the partition is restored
//! from the changelog and the output's tail. The delay is lifted just
//! before librdkafka gives the produce up, so the restore's new connections
//! are fast, while the produce already held on the old connection still takes
//! its full 3 s to reach the broker (as a request stuck on a congested
//! path would while a new connection takes another). The restore does not
//! find the outputs, the inputs are forwarded again, and then the held
//! produce lands: those events are on `properties.events` twice.
//!
//! This is the gap README's "Delivery guarantees" states: a single request
//! whose trip to the broker takes longer than `produce_timeout_ms` can land
//! after the restore. Only broker transactions (`transactions = "required"`)
//! close it; the local broker has none. The sink still writes each row once
//! (its primary key is the dedupe key), so the test checks the topic.

use std::time::{Duration, Instant};

use pipeline_tests::exactly_once::ExactlyOnce;
use pipeline_tests::fault_proxy::{FaultProxy, frames};
use pipeline_tests::{Pipeline, Service};

const BEFORE: usize = 20;
const DURING: usize = 20;

#[tokio::test(flavor = "multi_thread")]
#[ignore = "still broken (documented gap): a produce held past the delivery timeout lands after the restore read the output's tail, so its events are forwarded twice"]
async fn a_produce_landing_after_the_restore_is_not_forwarded_twice() {
    let mut pipeline = Pipeline::start_with(
        "dedupe_late_produce",
        &[Service::Ingest, Service::Normalize, Service::Sink],
        None,
        &[("DEDUPE__FENCING__PRODUCE_TIMEOUT_MS", "1500")],
    )
    .await;
    let proxy = FaultProxy::start(&pipeline.stack.brokers).await;
    pipeline.spawn_through(Service::Dedupe, &proxy);
    let client = pipeline.client();
    for i in 0..BEFORE {
        client
            .deliver_generic(&pipeline_tests::numbered_webhook("late", i))
            .await;
    }
    pipeline
        .expect_log(
            Service::Dedupe,
            "batch deduplicated",
            Duration::from_secs(60),
        )
        .await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let produces = proxy.requests(frames::PRODUCE);
    proxy.set_delay(Duration::from_secs(3));
    let senders = client.deliver_all_generic(
        (BEFORE..BEFORE + DURING)
            .map(|i| pipeline_tests::numbered_webhook("late", i))
            .collect(),
        4,
        Duration::ZERO,
    );
    // The first produce of the slowed batch is held 3 s; the delay is
    // lifted before librdkafka gives it up (1.5 s), so the restore after the
    // abandonment runs on fast new connections.
    let deadline = Instant::now() + Duration::from_secs(40);
    while proxy.requests(frames::PRODUCE) == produces {
        assert!(
            Instant::now() < deadline,
            "no produce:\n{}",
            pipeline.log_tail(Service::Dedupe)
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    tokio::time::sleep(Duration::from_millis(800)).await;
    proxy.set_delay(Duration::ZERO);
    senders.await.expect("every delivery got its 200");
    tokio::time::sleep(Duration::from_secs(8)).await;
    ExactlyOnce::of((0..BEFORE + DURING).map(|i| format!("generic:evt_late_{i}")))
        .only()
        .assert(&pipeline, Duration::from_secs(60))
        .await;
}
