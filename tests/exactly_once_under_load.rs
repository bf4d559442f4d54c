//! 5,000 events with 30 % duplicates (re-deliveries of the same event),
//! delivered interleaved and out of order by concurrent senders, while
//! dedupe and sink are each killed (SIGKILL) three times at random moments.
//! Exactly the unique set lands in PostgreSQL, each property holds its
//! newest state whatever the arrival order, and `properties.events` holds
//! each unique event once.

use std::collections::HashMap;
use std::time::Duration;

use pipeline_tests::exactly_once::ExactlyOnce;
use pipeline_tests::{Pipeline, Service, newest_event_per_property};
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};

const UNIQUE: usize = 5_000;
const DUPLICATES: usize = 1_500;
const PROPERTIES: usize = 500;
const SENDERS: usize = 8;

/// Event `i`: property `i % 500`, at second `i` of the day, price `100000 + i`.
fn event(i: usize) -> Vec<u8> {
    format!(
        r#"{{"id":"evt_load_{i}","type":"property.updated","created":"2024-04-01T{:02}:{:02}:{:02}Z",
           "data":{{"property":{{"id":"prop_load_{p}","price":{price},"bedrooms":{b}}}}}}}"#,
        i / 3600,
        (i / 60) % 60,
        i % 60,
        p = i % PROPERTIES,
        price = 100_000 + i,
        b = i % 5,
    )
    .into_bytes()
}

#[tokio::test(flavor = "multi_thread")]
async fn unique_events_land_once_in_order_of_event_time_despite_crashes() {
    let mut pipeline = Pipeline::start("load").await;
    let mut rng = StdRng::seed_from_u64(20261123);
    let mut deliveries: Vec<usize> = (0..UNIQUE).collect();
    deliveries.extend((0..DUPLICATES).map(|_| rng.random_range(0..UNIQUE)));
    deliveries.shuffle(&mut rng);
    let senders = pipeline.client().deliver_all_generic(
        deliveries.into_iter().map(event).collect(),
        SENDERS,
        Duration::ZERO,
    );

    // Three kills each of dedupe and sink, at random moments while events flow.
    let mut victims = [Service::Dedupe, Service::Sink].repeat(3);
    victims.shuffle(&mut rng);
    for victim in victims {
        let pause = rng.random_range(1_500..4_000);
        tokio::time::sleep(Duration::from_millis(pause)).await;
        pipeline.restart(victim).await;
    }
    senders.await.expect("every delivery got its 200");

    // Every delivery got its 200: each event exactly once in PostgreSQL
    // and on properties.events, and nothing else.
    ExactlyOnce::of((0..UNIQUE).map(|i| format!("generic:evt_load_{i}")))
        .only()
        .assert(&pipeline, Duration::from_secs(240))
        .await;

    let newest: HashMap<String, f64> = newest_event_per_property(UNIQUE, PROPERTIES)
        .into_iter()
        .enumerate()
        .map(|(p, i)| (format!("generic:prop_load_{p}"), (100_000 + i) as f64))
        .collect();
    pipeline.assert_property_prices(&newest).await;
}
