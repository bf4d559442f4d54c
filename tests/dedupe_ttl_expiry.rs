//! Keys are remembered for the TTL only: past it they are forgotten, their
//! tombstones land on `dedupe.seen` (so the compacted changelog stays
//! bounded), and a restarted dedupe accepts the same key again. Within the
//! TTL a repeat is still dropped.

use std::time::Duration;

use pipeline_tests::{Pipeline, Service, fixture, header};
use rdkafka::Message;

const TTL_SECS: u64 = 3;

#[tokio::test(flavor = "multi_thread")]
async fn keys_past_the_ttl_are_tombstoned_and_accepted_again() {
    let ttl = TTL_SECS.to_string();
    let mut pipeline = Pipeline::start_with_env(
        "ttl",
        &[
            ("DEDUPE__TTL_SECS", &ttl),
            ("DEDUPE__EXPIRY_INTERVAL_SECS", "1"),
        ],
    )
    .await;
    let body = fixture("generic/property.created.json");
    pipeline.deliver_generic(&body).await;
    let first = pipeline
        .wait_for_records(&pipeline.topics.events(), 1, Duration::from_secs(30))
        .await;
    assert_eq!(first.len(), 1, "{}", pipeline.all_logs());

    // Past the TTL, the sweep writes the key's tombstone.
    let mut tombstones = 0;
    for _ in 0..200 {
        tombstones = pipeline
            .read_topic(&pipeline.topics.seen())
            .iter()
            .filter(|m| m.key() == Some(&b"generic:evt_123456"[..]) && m.payload().is_none())
            .count();
        if tombstones > 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        tombstones,
        1,
        "one tombstone on dedupe.seen\n{}",
        pipeline.all_logs()
    );

    // A restarted dedupe restores the tombstoned state: the key is accepted again.
    pipeline.restart(Service::Dedupe).await;
    pipeline.deliver_generic(&body).await;
    let again = pipeline
        .wait_for_records(&pipeline.topics.events(), 2, Duration::from_secs(60))
        .await;
    let keys: Vec<Option<String>> = again.iter().map(|m| header(m, "dedupe-key")).collect();
    assert_eq!(
        keys,
        vec![Some("generic:evt_123456".to_string()); 2],
        "forwarded again after the TTL\n{}",
        pipeline.all_logs()
    );

    // Within the TTL a repeat is still a duplicate.
    pipeline.deliver_generic(&body).await;
    let normalized = pipeline
        .wait_for_records(&pipeline.topics.normalized(), 3, Duration::from_secs(30))
        .await;
    assert_eq!(normalized.len(), 3);
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(pipeline.read_topic(&pipeline.topics.events()).len(), 2);
}
