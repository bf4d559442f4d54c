//! Partitions added to `properties.normalized` while dedupe runs: dedupe
//! re-reads the co-partitioned topics' counts, stops consuming, and says
//! what changed and the documented procedure, in one log line and on
//! `/health` (503). Nothing it forwarded is duplicated.

use std::time::Duration;

use pipeline_tests::exactly_once::ExactlyOnce;
use pipeline_tests::{Pipeline, Service};
use rdkafka::ClientConfig;
use rdkafka::admin::{AdminClient, AdminOptions, NewPartitions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;

const WEBHOOKS: usize = 40;

fn webhook(i: usize) -> Vec<u8> {
    pipeline_tests::numbered_webhook("repart", i)
}

#[tokio::test(flavor = "multi_thread")]
async fn dedupe_stops_with_the_procedure_when_partitions_are_added() {
    let pipeline = Pipeline::start("repartition").await;
    pipeline
        .client()
        .deliver_all_generic((0..WEBHOOKS).map(webhook).collect(), 2, Duration::ZERO)
        .await
        .expect("every delivery got its 200");
    ExactlyOnce::of((0..WEBHOOKS).map(|i| format!("generic:evt_repart_{i}")))
        .only()
        .assert(&pipeline, Duration::from_secs(60))
        .await;

    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", &pipeline.stack.brokers)
        .create()
        .expect("admin client");
    let normalized = pipeline.topics.normalized();
    let options = AdminOptions::new().operation_timeout(Some(Duration::from_secs(10)));
    // The local broker has no CreatePartitions (Apache Kafka has): there,
    // the topic is dropped and made again with one more partition, which
    // dedupe sees the same way, a count that changed under it.
    match admin
        .create_partitions(&[NewPartitions::new(&normalized, 4)], &options)
        .await
    {
        Ok(results) => {
            for result in results {
                let _ = result
                    .unwrap_or_else(|(topic, e)| panic!("cannot add partitions to {topic}: {e}"));
            }
        }
        Err(e) => {
            eprintln!("no CreatePartitions ({e}); recreating {normalized} with 4 partitions");
            for result in admin
                .delete_topics(&[&normalized], &options)
                .await
                .expect("the broker deletes topics")
            {
                let _ = result.unwrap_or_else(|(topic, e)| panic!("cannot delete {topic}: {e}"));
            }
            let topic = NewTopic::new(&normalized, 4, TopicReplication::Fixed(1));
            for result in admin
                .create_topics(&[topic], &options)
                .await
                .expect("the broker creates topics")
            {
                let _ = result.unwrap_or_else(|(topic, e)| panic!("cannot create {topic}: {e}"));
            }
        }
    }

    pipeline
        .expect_log(
            Service::Dedupe,
            "partition count changed while running",
            Duration::from_secs(40),
        )
        .await;
    let health = reqwest::get(pipeline.health_url(Service::Dedupe))
        .await
        .expect("dedupe's /health answers");
    assert_eq!(health.status(), 503);
    let text = health.text().await.expect("a reason");
    assert!(
        text.contains(&format!("{normalized} from 3 to 4"))
            && text.contains("Changing partition counts"),
        "{text}"
    );
    ExactlyOnce::of((0..WEBHOOKS).map(|i| format!("generic:evt_repart_{i}")))
        .only()
        .assert(&pipeline, Duration::from_secs(10))
        .await;
}
