//! Dedupe's transactional path, exercised against librdkafka's mock cluster.
//!
//! The mock cluster accepts transactions but does not implement their
//! guarantees (aborted records stay visible, transactional offsets are not
//! stored, old producers are not fenced), so this test checks only that the
//! mode is detected and that the calls succeed in order: first sightings
//! forwarded with their changelog records, duplicates dropped. The
//! exactly-once guarantee itself is proven by the crash tests against the
//! real local broker, in the output-first mode.

use std::time::{Duration, Instant};

use common::produce::{OutRecord, send_all};
use common::stage_loop::Cancel;
use dedupe::runner::Deduper;
use dedupe::settings::DedupeSettings;
use dedupe::transactions::Mode;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::mocking::MockCluster;
use rdkafka::producer::FutureProducer;
use rdkafka::{ClientConfig, Message, Offset, TopicPartitionList};

fn read_all(brokers: &str, topic: &str, partition: i32) -> Vec<rdkafka::message::OwnedMessage> {
    let reader: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", "test-reader")
        .set("enable.partition.eof", "true")
        .create()
        .expect("reader");
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(topic, partition, Offset::Beginning)
        .expect("tpl");
    reader.assign(&tpl).expect("assign");
    let mut out = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline {
        match reader.poll(Duration::from_millis(100)) {
            Some(Ok(m)) => out.push(m.detach()),
            Some(Err(rdkafka::error::KafkaError::PartitionEOF(_))) => break,
            _ => {}
        }
    }
    out
}

#[test]
fn with_a_transactional_broker_dedupe_forwards_inside_transactions() {
    let cluster = MockCluster::new(1).expect("mock cluster");
    let brokers = cluster.bootstrap_servers();
    for topic in [
        "properties.normalized",
        "properties.events",
        "dedupe.seen",
        "properties.latest",
    ] {
        cluster.create_topic(topic, 1, 1).expect("create topic");
    }
    let vars = vec![
        ("DEDUPE__KAFKA__BROKERS".to_string(), brokers.clone()),
        ("DEDUPE__TRANSACTIONS".to_string(), "required".to_string()),
    ];
    let settings: DedupeSettings =
        common::config::load_from("DEDUPE", None, &vars).expect("settings");
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let stopping = Cancel::new();
    let deduper = Deduper::connect(&settings, runtime.handle().clone(), stopping.clone())
        .expect("connects to the mock cluster");
    assert_eq!(deduper.mode(), Mode::Transactional);

    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", &brokers)
        .create()
        .expect("producer");
    let input: Vec<OutRecord> = ["k1", "k2", "k1"]
        .iter()
        .map(|key| {
            OutRecord {
                topic: "properties.normalized".into(),
                partition: Some(0),
                key: Some(b"generic:prop".to_vec()),
                payload: Some(key.as_bytes().to_vec()),
                headers: Vec::new(),
            }
            .header("dedupe-key", *key)
        })
        .collect();
    let _ = runtime
        .block_on(send_all(&producer, &input))
        .expect("input stored");

    let worker = std::thread::spawn(move || deduper.run());
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline && read_all(&brokers, "properties.events", 0).len() < 2 {
        std::thread::sleep(Duration::from_millis(200));
    }
    // Give a wrongly forwarded duplicate the time to show up.
    std::thread::sleep(Duration::from_secs(1));
    let events = read_all(&brokers, "properties.events", 0);
    stopping.cancel();
    worker.join().expect("no panic").expect("clean stop");

    let payloads: Vec<&[u8]> = events.iter().filter_map(|m| m.payload()).collect();
    assert_eq!(
        payloads,
        vec![&b"k1"[..], &b"k2"[..]],
        "first sightings only"
    );
    let changelog: Vec<Option<Vec<u8>>> = read_all(&brokers, "dedupe.seen", 0)
        .iter()
        .map(|m| m.key().map(<[u8]>::to_vec))
        .collect();
    assert_eq!(changelog, vec![Some(b"k1".to_vec()), Some(b"k2".to_vec())]);
}
