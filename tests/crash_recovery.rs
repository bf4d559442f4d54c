//! Every service killed (SIGKILL) and restarted while events flow: no event
//! is lost and none is duplicated, neither on `properties.events` nor in
//! PostgreSQL, an older event never overwrites a newer property state, and
//! `properties.latest` ends at the merge of each property's events with no
//! state written twice.

use std::collections::HashMap;
use std::time::Duration;

use pipeline_tests::latest_states::assert_latest_is_the_merge;
use pipeline_tests::{Pipeline, Service, newest_event_per_property};

const EVENTS: usize = 60;
const PROPERTIES: usize = 20;

/// Event `i`: property `i % 20`, one second after event `i - 1`, price `1000 + i`.
fn event(i: usize) -> Vec<u8> {
    let second = i % 60;
    let minute = i / 60;
    format!(
        r#"{{"id":"evt_crash_{i}","type":"property.updated","created":"2024-01-01T10:{minute:02}:{second:02}Z",
           "data":{{"property":{{"id":"prop_{p}","price":{price},"bedrooms":3,"bathrooms":1,
           "squareFeet":1000,"address":"{i} Crash Lane"}}}}}}"#,
        p = i % PROPERTIES,
        price = 1000 + i,
    )
    .into_bytes()
}

#[tokio::test(flavor = "multi_thread")]
async fn killing_each_service_mid_stream_loses_and_duplicates_nothing() {
    let mut pipeline = Pipeline::start("crash").await;
    let client = pipeline.client();
    let sender = tokio::spawn(async move {
        for i in 0..EVENTS {
            client.deliver_generic(&event(i)).await;
            // A provider retry of the previous event now and then.
            if i % 7 == 6 {
                client.deliver_generic(&event(i - 1)).await;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    });
    for service in Service::ALL {
        tokio::time::sleep(Duration::from_millis(1500)).await;
        pipeline.restart(service).await;
    }
    sender.await.expect("all events delivered");

    let expected = i64::try_from(EVENTS).expect("small");
    let landed = pipeline
        .wait_for_count(
            "SELECT count(*) FROM property_events",
            expected,
            Duration::from_secs(90),
        )
        .await;
    assert_eq!(
        landed,
        expected,
        "events in PostgreSQL\n{}",
        pipeline.all_logs()
    );
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(
        pipeline.count("SELECT count(*) FROM property_events").await,
        expected,
        "nothing more arrives later"
    );

    // No duplicate forwarded by dedupe, whatever was re-delivered or re-processed.
    pipeline.assert_each_event_forwarded_once(EVENTS);

    // Each property holds the state of its newest event.
    let newest: HashMap<String, f64> = newest_event_per_property(EVENTS, PROPERTIES)
        .into_iter()
        .enumerate()
        .map(|(p, i)| (format!("generic:prop_{p}"), (1000 + i) as f64))
        .collect();
    pipeline.assert_property_prices(&newest).await;
    let latest = assert_latest_is_the_merge(&pipeline, EVENTS, Duration::from_secs(60)).await;
    for (key, price) in &newest {
        assert_eq!(latest[key].state.property.price, Some(*price), "{key}");
    }
}
