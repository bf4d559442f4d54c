//! A dedupe instance frozen for less than the group's session timeout.
//! Two instances share the partitions while webhooks flow; the first is
//! frozen with SIGSTOP for 5 s and, later, for 7.5 s: shorter than the
//! 10 s session timeout, so the group keeps its partitions where they are,
//! but whatever batch it was in is then past (or close to) its 8 s budget,
//! and its queued produces past their 5 s delivery timeout when it wakes.
//! The frozen batch must either complete or be abandoned and restored, never
//! resent whole: every webhook that got a 200 lands exactly once on
//! `properties.events` and in PostgreSQL.
//!
//! In the second test the frozen instance talks to the broker through the
//! fault proxy, which holds each frame 1 s: its batches spend most of
//! their time waiting for produces, so a freeze lands mid-batch, with
//! records queued or in flight, nearly always.

use std::time::Duration;

use pipeline_tests::exactly_once::ExactlyOnce;
use pipeline_tests::fault_proxy::FaultProxy;
use pipeline_tests::{Pipeline, Service};

const WEBHOOKS: usize = 300;

async fn frozen_within_the_session(name: &str, tag: &'static str, slowed: Option<Duration>) {
    let mut pipeline = Pipeline::start_with(
        name,
        &[Service::Ingest, Service::Normalize, Service::Sink],
        None,
        &[],
    )
    .await;
    let proxy = FaultProxy::start(&pipeline.stack.brokers).await;
    match slowed {
        Some(_) => pipeline.spawn_through(Service::Dedupe, &proxy),
        None => pipeline.spawn(Service::Dedupe),
    }
    pipeline.spawn_another(Service::Dedupe);
    let senders = pipeline.client().deliver_all_generic(
        (0..WEBHOOKS)
            .map(|i| pipeline_tests::numbered_webhook(tag, i))
            .collect(),
        3,
        Duration::from_millis(40),
    );
    pipeline
        .expect_log(
            Service::Dedupe,
            "batch deduplicated",
            Duration::from_secs(60),
        )
        .await;
    if let Some(delay) = slowed {
        proxy.set_delay(delay);
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    for stall in [Duration::from_millis(5_000), Duration::from_millis(7_500)] {
        let revoked_before = pipeline
            .log(Service::Dedupe)
            .matches("partitions revoked")
            .count();
        pipeline.send_signal(Service::Dedupe, "STOP");
        tokio::time::sleep(stall).await;
        pipeline.send_signal(Service::Dedupe, "CONT");
        tokio::time::sleep(Duration::from_secs(3)).await;
        let revoked = pipeline
            .log(Service::Dedupe)
            .matches("partitions revoked")
            .count();
        // Informational: within the session the group need not move anything.
        eprintln!(
            "after a stall of {stall:?}: {} revocations",
            revoked - revoked_before
        );
    }
    proxy.set_delay(Duration::ZERO);
    senders.await.expect("every delivery got its 200");
    ExactlyOnce::of((0..WEBHOOKS).map(|i| format!("generic:evt_{tag}_{i}")))
        .only()
        .assert(&pipeline, Duration::from_secs(90))
        .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_dedupe_frozen_within_its_session_loses_and_doubles_nothing() {
    frozen_within_the_session("dedupe_short_stall", "shortstall", None).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_slowed_dedupe_frozen_mid_batch_loses_and_doubles_nothing() {
    frozen_within_the_session(
        "dedupe_short_stall_slow",
        "shortslow",
        Some(Duration::from_secs(1)),
    )
    .await;
}
