//! Dedupe's recovery without broker transactions, made deterministic: the
//! state a crash leaves when dedupe's output record was acknowledged but its
//! changelog record was never written. On restart, dedupe must find the key
//! in the output partition's tail, write the missing changelog record, and
//! drop the re-delivered input record instead of forwarding it twice.

use std::time::Duration;

use common::produce::OutRecord;
use pipeline_tests::{Pipeline, Service, fixture, header};
use rdkafka::Message;

#[tokio::test(flavor = "multi_thread")]
async fn an_event_already_on_the_output_is_not_forwarded_again() {
    let mut pipeline = Pipeline::start("output_first").await;
    pipeline.kill(Service::Dedupe);

    // The event reaches properties.normalized while dedupe is down.
    pipeline
        .deliver_generic(&fixture("generic/property.created.json"))
        .await;
    let normalized = pipeline
        .wait_for_records(&pipeline.topics.normalized(), 1, Duration::from_secs(30))
        .await;
    assert_eq!(normalized.len(), 1, "{}", pipeline.all_logs());
    let input = &normalized[0];

    // What dedupe had done before "crashing": output written and acknowledged,
    // changelog record and input offset commit not.
    let mut output = OutRecord {
        topic: pipeline.topics.events(),
        partition: Some(input.partition()),
        key: input.key().map(<[u8]>::to_vec),
        payload: input.payload().map(<[u8]>::to_vec),
        headers: Vec::new(),
    };
    for name in ["traceparent", "dedupe-key", "event-type"] {
        if let Some(value) = header(input, name) {
            output = output.header(name, value);
        }
    }
    output = output.header("source-offset", input.offset().to_string());
    pipeline.produce(&[output]).await;
    assert!(pipeline.read_topic(&pipeline.topics.seen()).is_empty());

    pipeline.spawn(Service::Dedupe);

    // The restore writes the missing changelog record...
    let seen = pipeline
        .wait_for_records(&pipeline.topics.seen(), 1, Duration::from_secs(60))
        .await;
    assert_eq!(seen.len(), 1, "{}", pipeline.all_logs());
    assert_eq!(seen[0].key(), Some(&b"generic:evt_123456"[..]));
    assert_eq!(
        seen[0].partition(),
        input.partition(),
        "co-partitioned changelog"
    );
    let record: serde_json::Value =
        serde_json::from_slice(seen[0].payload().expect("a value")).expect("JSON changelog value");
    assert_eq!(record["output_offset"], 0);

    // ...and the re-delivered input is dropped. A later event of the same
    // property (same partition, processed after it) proves dedupe got past it.
    let later = String::from_utf8(fixture("generic/property.created.json"))
        .expect("UTF-8 fixture")
        .replace("evt_123456", "evt_123457");
    pipeline.deliver_generic(later.as_bytes()).await;
    let events = pipeline
        .wait_for_records(&pipeline.topics.events(), 2, Duration::from_secs(60))
        .await;
    let keys: Vec<Option<String>> = events.iter().map(|m| header(m, "dedupe-key")).collect();
    assert_eq!(
        keys,
        vec![
            Some("generic:evt_123456".to_string()),
            Some("generic:evt_123457".to_string())
        ],
        "each event forwarded once\n{}",
        pipeline.all_logs()
    );
    let rows = pipeline
        .wait_for_count(
            "SELECT count(*) FROM property_events",
            2,
            Duration::from_secs(30),
        )
        .await;
    assert_eq!(rows, 2);
}
