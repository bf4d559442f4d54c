//! Normalize behind the fault proxy (`pipeline_tests::fault_proxy`), while
//! webhooks flow: every one of its Kafka connections goes through the proxy
//! (nothing lands while the proxy holds its traffic), it survives a 5 s
//! black hole, a produce stored by the broker whose acknowledgement never
//! came back (the connection cut mid-batch), and every connection cut at
//! once; every webhook that got a 200 lands exactly once in PostgreSQL and
//! on `properties.events`.

use std::time::Duration;

use pipeline_tests::exactly_once::ExactlyOnce;
use pipeline_tests::fault_proxy::{CutPoint, FaultProxy, frames};
use pipeline_tests::{Pipeline, Service};

const WEBHOOKS: usize = 400;
/// Two senders pausing 100 ms: about 20 webhooks/s, so traffic lasts
/// through every fault below.
const SENDERS: usize = 2;
const PAUSE: Duration = Duration::from_millis(100);

fn webhook(i: usize) -> Vec<u8> {
    pipeline_tests::numbered_webhook("fault", i)
}

async fn rows(pipeline: &Pipeline) -> i64 {
    pipeline.count("SELECT count(*) FROM property_events").await
}

/// Waits (60 s at most) until at least `n` rows landed; whether they did.
async fn rows_reach(pipeline: &Pipeline, n: i64) -> bool {
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while std::time::Instant::now() < deadline {
        if rows(pipeline).await >= n {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    false
}

#[tokio::test(flavor = "multi_thread")]
async fn normalize_survives_a_black_hole_and_cut_connections_exactly_once() {
    let mut pipeline = Pipeline::start_with(
        "normalize_faults",
        &[Service::Ingest, Service::Dedupe, Service::Sink],
        None,
        &[],
    )
    .await;
    let proxy = FaultProxy::start(&pipeline.stack.brokers).await;
    pipeline.spawn_through(Service::Normalize, &proxy);

    // Paced senders: webhooks keep arriving through every fault.
    let senders = pipeline.client().deliver_all_generic(
        (0..WEBHOOKS).rev().map(webhook).collect(),
        SENDERS,
        PAUSE,
    );

    // Normalize's traffic really goes through the proxy: rows land, then
    // none while the proxy holds everything, then they land again.
    assert!(
        rows_reach(&pipeline, 20).await,
        "events land through the proxy:\n{}",
        pipeline.all_logs()
    );
    proxy.black_hole(Duration::from_secs(5));
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let held = rows(&pipeline).await;
    tokio::time::sleep(Duration::from_millis(3000)).await;
    assert_eq!(
        rows(&pipeline).await,
        held,
        "nothing lands while normalize's connections are held"
    );
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(
        rows_reach(&pipeline, held + 20).await,
        "normalize recovers after the black hole:\n{}",
        pipeline.log_tail(Service::Normalize)
    );

    // A produce the broker stored, whose acknowledgement never comes back.
    proxy.cut_next(frames::PRODUCE, CutPoint::BeforeResponse);
    assert!(
        proxy.wait_for_cuts(1, Duration::from_secs(30)).await,
        "a produce request was cut mid-batch"
    );
    tokio::time::sleep(Duration::from_secs(1)).await;
    // Then every connection at once (consumer, group coordinator, producer).
    assert!(proxy.cut_all() > 0, "normalize holds connections to cut");
    let after_cuts = rows(&pipeline).await;
    assert!(
        after_cuts < i64::try_from(WEBHOOKS).unwrap_or(i64::MAX),
        "webhooks were still arriving when the connections were cut"
    );

    senders.await.expect("every delivery got its 200");
    ExactlyOnce::of((0..WEBHOOKS).map(|i| format!("generic:evt_fault_{i}")))
        .only()
        .assert(&pipeline, Duration::from_secs(120))
        .await;
    assert!(
        proxy.requests(frames::PRODUCE) > 0 && proxy.requests(frames::FETCH) > 0,
        "normalize produced and fetched through the proxy"
    );
    assert!(
        proxy.connections() > 2,
        "normalize reconnected through the proxy after the cuts"
    );
}
