//! 5,000 events with 30 % duplicates (re-deliveries of the same event),
//! delivered interleaved and out of order by concurrent senders, while
//! dedupe and sink are each killed (SIGKILL) three times at random moments.
//! Exactly the unique set lands in PostgreSQL, each property holds its
//! newest state whatever the arrival order, and `properties.events` holds
//! each unique event once.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use pipeline_tests::{Pipeline, Service, newest_event_per_property};
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use tokio::sync::Mutex;

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
    let queue = Arc::new(Mutex::new(deliveries));

    let senders: Vec<_> = (0..SENDERS)
        .map(|_| {
            let client = pipeline.client();
            let queue = Arc::clone(&queue);
            tokio::spawn(async move {
                loop {
                    let Some(i) = queue.lock().await.pop() else {
                        return;
                    };
                    client.deliver_generic(&event(i)).await;
                }
            })
        })
        .collect();

    // Three kills each of dedupe and sink, at random moments while events flow.
    let mut victims = [Service::Dedupe, Service::Sink].repeat(3);
    victims.shuffle(&mut rng);
    for victim in victims {
        let pause = rng.random_range(1_500..4_000);
        tokio::time::sleep(Duration::from_millis(pause)).await;
        pipeline.restart(victim).await;
    }
    for sender in senders {
        sender.await.expect("sender finished");
    }

    let expected = i64::try_from(UNIQUE).expect("small");
    let landed = pipeline
        .wait_for_count(
            "SELECT count(*) FROM property_events",
            expected,
            Duration::from_secs(240),
        )
        .await;
    assert_eq!(landed, expected, "{}", pipeline.all_logs());
    pipeline.assert_each_event_forwarded_once(UNIQUE);

    let newest: HashMap<String, f64> = newest_event_per_property(UNIQUE, PROPERTIES)
        .into_iter()
        .enumerate()
        .map(|(p, i)| (format!("generic:prop_load_{p}"), (100_000 + i) as f64))
        .collect();
    pipeline.assert_property_prices(&newest).await;
}
