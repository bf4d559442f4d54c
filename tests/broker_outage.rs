//! Broker outage: while Kafka cannot acknowledge, ingest answers 503 with
//! `Retry-After` within its bound (3 s) instead of hanging past the
//! providers' 5 s budget or answering 200 for a record it did not store;
//! when the broker is back, 200s resume, and every request that got a 200
//! is on `webhooks.raw`.
//!
//! The test runs its own broker (the shared one must stay up for others)
//! and kills it with SIGKILL.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use pipeline_tests::{OwnBroker, Pipeline, Service};
use rdkafka::Message;

fn body(n: usize) -> Vec<u8> {
    format!(r#"{{"id":"evt_outage_{n}","type":"property.updated","data":{{}}}}"#).into_bytes()
}

#[tokio::test(flavor = "multi_thread")]
async fn broker_loss_answers_503_within_the_bound_and_loses_no_accepted_request() {
    let mut broker = OwnBroker::start("outage");
    let pipeline = Pipeline::start_with(
        "outage",
        &[Service::Ingest],
        Some(broker.brokers.clone()),
        &[],
    )
    .await;
    let client = pipeline.client();
    let mut accepted = BTreeSet::new();

    for n in 0..3 {
        let r = client.post_generic(&body(n)).await.expect("answers");
        assert_eq!(r.status(), 200, "broker up");
        let _ = accepted.insert(n);
    }

    broker.kill();
    let mut outage = Vec::new();
    for n in 3..6 {
        let client = client.clone();
        outage.push(tokio::spawn(async move {
            let started = Instant::now();
            let r = client.post_generic(&body(n)).await.expect("answers");
            (
                n,
                r.status().as_u16(),
                r.headers().get("retry-after").cloned(),
                started.elapsed(),
            )
        }));
    }
    for task in outage {
        let (n, status, retry_after, elapsed) = task.await.expect("request task");
        eprintln!("outage request {n}: {status} after {elapsed:?}");
        assert_eq!(status, 503, "no 200 while the broker is down");
        assert!(retry_after.is_some(), "a 503 says when to retry");
        assert!(
            elapsed < Duration::from_millis(4000),
            "answered within the 3 s bound (plus slack), took {elapsed:?}"
        );
    }

    broker.restart();
    for n in 6..9 {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let r = client.post_generic(&body(n)).await.expect("answers");
            if r.status() == 200 {
                let _ = accepted.insert(n);
                break;
            }
            assert_eq!(r.status(), 503, "only 503 while the producer reconnects");
            assert!(
                Instant::now() < deadline,
                "no 200 within 60 s of the broker's return"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    let stored: BTreeSet<usize> = pipeline
        .wait_for_records(
            &pipeline.topics.raw(),
            accepted.len(),
            Duration::from_secs(20),
        )
        .await
        .iter()
        .filter_map(|m| m.payload())
        .filter_map(|p| (0..9).find(|n| body(*n) == p))
        .collect();
    eprintln!("accepted {} requests; stored {:?}", accepted.len(), stored);
    assert!(
        accepted.is_subset(&stored),
        "every 200 is on webhooks.raw: accepted {accepted:?}, stored {stored:?}"
    );
}
