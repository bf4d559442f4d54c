//! `send_in_order` against librdkafka's mock cluster (only the call order
//! is tested here: the mock cluster stands in for no broker guarantee): a
//! record refused when queued stops the queueing, so nothing after it is
//! sent, while `send_each` still sends the rest.

use common::produce::{OutRecord, send_each, send_in_order};
use rdkafka::ClientConfig;
use rdkafka::mocking::MockCluster;
use rdkafka::producer::FutureProducer;

fn record(size: usize) -> OutRecord {
    OutRecord {
        topic: "out".into(),
        partition: Some(0),
        key: None,
        payload: Some(vec![b'x'; size]),
        headers: Vec::new(),
    }
}

#[tokio::test]
async fn a_refused_record_stops_what_follows_it() {
    let cluster = MockCluster::new(1).expect("mock cluster");
    cluster.create_topic("out", 1, 1).expect("topic");
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", cluster.bootstrap_servers())
        .set("message.max.bytes", "2000")
        .create()
        .expect("producer");
    let records = [record(10), record(5_000), record(10)];

    let in_order = send_in_order(&producer, &records).await;
    assert!(in_order[0].is_ok(), "{in_order:?}");
    assert!(in_order[1].is_err() && in_order[2].is_err(), "{in_order:?}");

    let each = send_each(&producer, &records).await;
    assert!(
        each[0].is_ok() && each[1].is_err() && each[2].is_ok(),
        "{each:?}"
    );
    // `send_in_order`'s first record, then `send_each`'s two.
    let offsets: Vec<i64> = [&in_order[0], &each[0], &each[2]]
        .iter()
        .filter_map(|r| r.as_ref().ok().map(|s| s.offset))
        .collect();
    assert_eq!(offsets, [0, 1, 2]);
}
