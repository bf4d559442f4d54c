//! The local stack's broker still compacts with the storage options it is
//! started with (`compaction=single`, `scripts/stack.sh`): after a sweep, a
//! compacted topic keeps the latest value of each key and nothing older, so
//! `dedupe.seen` and `properties.latest` stay bounded by their keys and
//! the stages' restores read one record per key.
//!
//! nisshi's default compaction runs one scan of the partition per key and
//! kept a core busy on a large broker; `single` is the same sweep in one
//! statement. The test runs its own broker with a 1 s sweep.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use pipeline_tests::{OwnBroker, STACK_STORAGE_OPTIONS, read_topic};
use rdkafka::ClientConfig;
use rdkafka::Message;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::producer::{FutureProducer, FutureRecord};

const TOPIC: &str = "compaction.check";

/// Each key's values as read from the beginning, in offset order.
fn values_by_key(brokers: &str) -> BTreeMap<String, Vec<String>> {
    let mut by_key: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for message in read_topic(brokers, TOPIC) {
        let key = String::from_utf8_lossy(message.key().unwrap_or_default()).into_owned();
        let value = String::from_utf8_lossy(message.payload().unwrap_or_default()).into_owned();
        by_key.entry(key).or_default().push(value);
    }
    by_key
}

#[tokio::test(flavor = "multi_thread")]
async fn the_stack_broker_keeps_the_latest_value_per_key_after_a_sweep() {
    let broker = OwnBroker::start_with_storage(
        "compaction",
        &format!("{STACK_STORAGE_OPTIONS}&maintenance_interval=1s"),
    );
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", &broker.brokers)
        .create()
        .expect("admin client");
    let topic =
        NewTopic::new(TOPIC, 1, TopicReplication::Fixed(1)).set("cleanup.policy", "compact");
    let created = admin
        .create_topics([&topic], &AdminOptions::new())
        .await
        .expect("create the topic");
    assert!(created.iter().all(Result::is_ok), "{created:?}");

    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", &broker.brokers)
        .set("linger.ms", "0")
        .create()
        .expect("producer");
    // Three keys, written over each other; the last value of each wins.
    let writes = [
        ("a", "a1"),
        ("b", "b1"),
        ("a", "a2"),
        ("c", "c1"),
        ("a", "a3"),
        ("b", "b2"),
    ];
    for (key, value) in writes {
        let record = FutureRecord::to(TOPIC).key(key).payload(value);
        let _ = producer
            .send(record, Duration::from_secs(10))
            .await
            .expect("acknowledged");
    }

    let expected: BTreeMap<String, Vec<String>> = [("a", "a3"), ("b", "b2"), ("c", "c1")]
        .into_iter()
        .map(|(k, v)| (k.to_string(), vec![v.to_string()]))
        .collect();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let seen = values_by_key(&broker.brokers);
        if seen == expected {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no sweep compacted the topic within 30 s: {seen:?}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}
