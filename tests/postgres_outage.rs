//! PostgreSQL unreachable for 20 s mid-run: the sink pauses, retries with
//! backoff, resumes, and the final tables are the same as without the
//! outage: nothing lost, nothing doubled.

use std::time::Duration;

use pipeline_tests::Pipeline;

fn event(i: usize) -> Vec<u8> {
    format!(
        r#"{{"id":"evt_pg_{i}","type":"property.created","created":"2024-03-01T09:00:{:02}Z",
           "data":{{"property":{{"id":"prop_pg_{i}","price":{}}}}}}}"#,
        i % 60,
        5000 + i
    )
    .into_bytes()
}

const EVENTS: &str = "SELECT count(*) FROM property_events";

#[tokio::test(flavor = "multi_thread")]
async fn a_database_outage_delays_rows_but_loses_none() {
    let pipeline = Pipeline::start("pg_outage").await;
    for i in 0..20 {
        pipeline.deliver_generic(&event(i)).await;
    }
    assert_eq!(
        pipeline
            .wait_for_count(EVENTS, 20, Duration::from_secs(30))
            .await,
        20,
        "{}",
        pipeline.all_logs()
    );

    pipeline.set_database_reachable(false).await;
    let outage = tokio::time::Instant::now();
    for i in 20..50 {
        pipeline.deliver_generic(&event(i)).await;
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    tokio::time::sleep_until(outage + Duration::from_secs(20)).await;
    pipeline.set_database_reachable(true).await;

    let landed = pipeline
        .wait_for_count(EVENTS, 50, Duration::from_secs(60))
        .await;
    assert_eq!(landed, 50, "{}", pipeline.all_logs());
    assert_eq!(pipeline.count("SELECT count(*) FROM properties").await, 50);
    assert_eq!(
        pipeline
            .count("SELECT count(DISTINCT kafka_offset::text || '/' || kafka_partition) FROM property_events")
            .await,
        50,
        "each event written once"
    );
}
