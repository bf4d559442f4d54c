//! Hostile values on `properties.events` (breaker20): on every partition,
//! a value that is not the wire format, an empty value, a tombstone, and a
//! wire-format value under the events' own schema id whose datum is
//! truncated. The state writer must skip each (counted as undecodable) and
//! neither wedge nor skip the valid events around them: the last state of
//! each property is still the merge of its events.

use std::time::Duration;

use common::produce::OutRecord;
use pipeline_tests::Pipeline;
use pipeline_tests::latest_states::latest_records;
use rdkafka::Message;

fn webhook(id: &str, minute: u32, prop: &str, property: &str) -> Vec<u8> {
    format!(
        r#"{{"id":"{id}","type":"property.updated","created":"2024-03-01T10:{minute:02}:00Z",
           "data":{{"property":{{"id":"{prop}",{property}}}}}}}"#
    )
    .into_bytes()
}

#[tokio::test(flavor = "multi_thread")]
async fn hostile_event_values_are_skipped_and_valid_events_still_land() {
    let pipeline = Pipeline::start("sw_hostile").await;
    pipeline
        .deliver_generic(&webhook("h1", 0, "h1", r#""price":100,"bedrooms":2"#))
        .await;
    let first = pipeline
        .wait_for_records(&pipeline.topics.events(), 1, Duration::from_secs(30))
        .await;
    assert_eq!(first.len(), 1, "{}", pipeline.all_logs());
    let good = first[0].payload().expect("a value").to_vec();
    let truncated = good[..good.len().min(9)].to_vec();
    let mut hostile = Vec::new();
    for partition in 0..3 {
        for payload in [
            Some(b"not avro at all".to_vec()),
            Some(Vec::new()),
            None,
            Some(truncated.clone()),
        ] {
            hostile.push(OutRecord {
                topic: pipeline.topics.events(),
                partition: Some(partition),
                key: Some(b"generic:h1".to_vec()),
                payload,
                headers: Vec::new(),
            });
        }
    }
    pipeline.produce(&hostile).await;
    pipeline
        .deliver_generic(&webhook("h1b", 5, "h1", r#""price":150"#))
        .await;
    pipeline
        .deliver_generic(&webhook("h2", 6, "h2", r#""price":200"#))
        .await;

    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    let done = |records: &[pipeline_tests::latest_states::LatestRecord]| {
        let last = |key: &str| records.iter().rev().find(|r| r.key == key);
        last("generic:h1").is_some_and(|r| {
            r.state.property.price == Some(150.0) && r.state.property.bedrooms == Some(2)
        }) && last("generic:h2").is_some_and(|r| r.state.property.price == Some(200.0))
    };
    let mut records = latest_records(&pipeline).await;
    while !done(&records) && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(500)).await;
        records = latest_records(&pipeline).await;
    }
    assert!(done(&records), "{records:#?}\n{}", pipeline.all_logs());
    assert_eq!(records.len(), 3, "one record per change: {records:#?}");
    let metrics = reqwest::get(pipeline.metrics_url(pipeline_tests::Service::StateWriter))
        .await
        .expect("/metrics answers")
        .text()
        .await
        .expect("text");
    assert!(
        metrics.contains("state_writer_undecodable_total 12"),
        "{metrics}"
    );
}
