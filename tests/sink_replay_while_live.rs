//! `sink replay` run while the live sink consumes. Rows PostgreSQL refused
//! (a constraint, then dropped) are re-driven by two replays run at once,
//! while new webhooks flow through the live sink, half of them about the
//! very properties whose rows are being replayed. Nothing may be doubled
//! or lost: every webhook that got a 200 has one row and one record on
//! `properties.events`; the live sink's stored offsets reach the end of
//! `properties.events` and no replay moves them; nothing is dead-lettered
//! again; each property holds the state of its newest event (the live one,
//! an hour later than the replayed one), whichever was written first.
//! The second test also kills the live sink (SIGKILL) while the replays run.

use std::collections::HashMap;
use std::time::Duration;

use pipeline_tests::exactly_once::ExactlyOnce;
use pipeline_tests::{Pipeline, Service, header};

/// Refused while the constraint stands.
const BLOCKED: usize = 40;
/// Accepted throughout.
const PASSING: usize = 40;
/// Sent while the replays run.
const LIVE: usize = 80;

/// A later event (by its time, an hour after the blocked one's) about the
/// property of blocked webhook `i`.
fn later_about_blocked(i: usize) -> Vec<u8> {
    format!(
        r#"{{"id":"evt_live_{i}","type":"property.created","created":"2024-05-01T11:00:00Z",
           "data":{{"property":{{"id":"prop_blk_{i}","price":{price}}}}}}}"#,
        price = 900_000 + i,
    )
    .into_bytes()
}

fn live(i: usize) -> Vec<u8> {
    if i.is_multiple_of(2) {
        later_about_blocked(i / 2)
    } else {
        pipeline_tests::numbered_webhook("fresh", i)
    }
}

fn live_key(i: usize) -> String {
    if i.is_multiple_of(2) {
        format!("generic:evt_live_{}", i / 2)
    } else {
        format!("generic:evt_fresh_{i}")
    }
}

fn run_replay(pipeline: &Pipeline, id: &str) -> std::process::Child {
    pipeline
        .command(Service::Sink)
        .args(["replay", "--id", id])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run sink replay")
}

fn finished(child: std::process::Child) -> String {
    let output = child.wait_with_output().expect("sink replay ran");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(output.status.success(), "sink replay failed: {text}");
    text
}

#[tokio::test(flavor = "multi_thread")]
async fn replaying_dead_letters_under_a_live_sink_doubles_and_loses_nothing() {
    replay_under_a_live_sink("sink_replay_live", false).await;
}

/// The same, with the live sink killed (SIGKILL) and restarted while the
/// replays run: its batch in flight is redone from PostgreSQL's offsets.
#[tokio::test(flavor = "multi_thread")]
async fn replaying_while_the_live_sink_crashes_doubles_and_loses_nothing() {
    replay_under_a_live_sink("sink_replay_crash", true).await;
}

async fn replay_under_a_live_sink(name: &str, crash: bool) {
    let mut pipeline = Pipeline::start_with(
        name,
        &[
            Service::Ingest,
            Service::Normalize,
            Service::Dedupe,
            Service::Sink,
        ],
        None,
        &[],
    )
    .await;
    let db = pipeline.db().await;
    pipeline
        .deliver_generic(&pipeline_tests::numbered_webhook("pass", 1_000))
        .await;
    let rows = "SELECT count(*) FROM property_events";
    assert_eq!(
        pipeline
            .wait_for_count(rows, 1, Duration::from_secs(60))
            .await,
        1
    );
    db.batch_execute(
        "ALTER TABLE property_events ADD CONSTRAINT replay_live CHECK (event_id NOT LIKE 'evt_blk_%')",
    )
    .await
    .expect("add the constraint");
    let mut first: Vec<Vec<u8>> = Vec::new();
    for i in 0..BLOCKED.max(PASSING) {
        if i < BLOCKED {
            first.push(pipeline_tests::numbered_webhook("blk", i));
        }
        if i < PASSING {
            first.push(pipeline_tests::numbered_webhook("pass", i));
        }
    }
    first.reverse();
    pipeline
        .client()
        .deliver_all_generic(first, 4, Duration::ZERO)
        .await
        .expect("every delivery got its 200");
    let expected_rows = 1 + PASSING as i64;
    assert_eq!(
        pipeline
            .wait_for_count(rows, expected_rows, Duration::from_secs(60))
            .await,
        expected_rows
    );
    let dead = pipeline
        .wait_for_records(&pipeline.topics.dlq(), BLOCKED, Duration::from_secs(60))
        .await;
    assert_eq!(dead.len(), BLOCKED, "each blocked row dead-lettered once");
    assert!(
        dead.iter()
            .all(|m| header(m, "error.stage").as_deref() == Some("sink"))
    );
    db.batch_execute("ALTER TABLE property_events DROP CONSTRAINT replay_live")
        .await
        .expect("drop the constraint");

    // The live flow and two replays at once.
    let senders = pipeline.client().deliver_all_generic(
        (0..LIVE).rev().map(live).collect(),
        4,
        Duration::from_millis(20),
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    let one = run_replay(&pipeline, "live-1");
    let two = run_replay(&pipeline, "live-2");
    if crash {
        tokio::time::sleep(Duration::from_millis(150)).await;
        pipeline.restart(Service::Sink).await;
    }
    let (one, two) = (finished(one), finished(two));
    senders.await.expect("every delivery got its 200");

    let keys = (0..BLOCKED)
        .map(|i| format!("generic:evt_blk_{i}"))
        .chain((0..PASSING).map(|i| format!("generic:evt_pass_{i}")))
        .chain(std::iter::once("generic:evt_pass_1000".to_string()))
        .chain((0..LIVE).map(live_key));
    ExactlyOnce::of(keys)
        .only()
        .assert(&pipeline, Duration::from_secs(60))
        .await;
    assert!(one.contains("read 40 dead letters"), "{one}");
    assert!(two.contains("read 40 dead letters"), "{two}");

    // The live sink stored offsets to the end of properties.events.
    let events = pipeline.read_topic(&pipeline.topics.events());
    let mut ends: HashMap<i32, i64> = HashMap::new();
    for record in &events {
        use rdkafka::Message;
        let end = ends.entry(record.partition()).or_default();
        *end = (*end).max(record.offset() + 1);
    }
    let stored = db
        .query(
            "SELECT partition, next_offset FROM sink_offsets WHERE topic = $1",
            &[&pipeline.topics.events()],
        )
        .await
        .expect("sink offsets");
    let stored: HashMap<i32, i64> = stored.iter().map(|r| (r.get(0), r.get(1))).collect();
    assert_eq!(
        stored, ends,
        "the live sink's offsets at the end of the events"
    );
    assert_eq!(
        pipeline.read_topic(&pipeline.topics.dlq()).len(),
        BLOCKED,
        "nothing dead-lettered again"
    );

    // Each blocked property holds its newest (live) event's price.
    let prices = db
        .query(
            "SELECT property_key, price FROM properties WHERE property_key LIKE '%prop_blk_%'",
            &[],
        )
        .await
        .expect("properties");
    assert_eq!(prices.len(), BLOCKED, "one row per blocked property");
    let wrong: Vec<(String, Option<f64>)> = prices
        .iter()
        .map(|r| (r.get::<_, String>(0), r.get::<_, Option<f64>>(1)))
        .filter(|(key, price)| {
            let i: usize = key
                .rsplit('_')
                .next()
                .and_then(|n| n.parse().ok())
                .unwrap_or(usize::MAX);
            *price != Some(900_000.0 + i as f64)
        })
        .collect();
    assert!(
        wrong.is_empty(),
        "properties not at their newest event: {wrong:?}\n{}",
        pipeline.all_logs()
    );
}
