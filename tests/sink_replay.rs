//! `sink replay` re-drives the sink's dead letters into rows once their
//! cause is fixed: here a row PostgreSQL refused for a constraint, which
//! the operator then drops. A dry run writes nothing; the replay lands the
//! row at its original position; a second replay adds nothing (the row is
//! already stored); normalize's dead letters are left alone, and no offset
//! of the live group moves.

use std::time::Duration;

use pipeline_tests::{Pipeline, Service, fixture, header};
use rdkafka::Message;

fn event(id: &str) -> Vec<u8> {
    format!(
        r#"{{"id":"{id}","type":"property.created","created":"2024-07-01T12:00:00Z",
           "data":{{"property":{{"id":"prop_{id}","price":1000}}}}}}"#
    )
    .into_bytes()
}

fn replay(pipeline: &Pipeline, args: &[&str]) -> String {
    let mut command = pipeline.command(Service::Sink);
    let output = command
        .arg("replay")
        .args(args)
        .output()
        .expect("run sink replay");
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
}

const BLOCKED: &str = "SELECT count(*) FROM property_events WHERE event_id = 'blocked'";

#[tokio::test(flavor = "multi_thread")]
async fn sink_replay_re_drives_a_dead_letter_into_its_row_once() {
    let pipeline = Pipeline::start("sink_replay").await;
    pipeline.deliver_generic(&event("before")).await;
    let rows = "SELECT count(*) FROM property_events";
    assert_eq!(
        pipeline
            .wait_for_count(rows, 1, Duration::from_secs(60))
            .await,
        1
    );
    let db = pipeline.db().await;
    db.batch_execute(
        "ALTER TABLE property_events ADD CONSTRAINT replay_test CHECK (event_id <> 'blocked')",
    )
    .await
    .expect("add the constraint");
    pipeline.deliver_generic(&event("blocked")).await;
    pipeline.deliver_generic(&event("after")).await;
    pipeline
        .deliver_generic(&fixture("generic/appointment.scheduled.json"))
        .await;
    assert_eq!(
        pipeline
            .wait_for_count(rows, 2, Duration::from_secs(60))
            .await,
        2
    );
    let dead = pipeline
        .wait_for_records(&pipeline.topics.dlq(), 2, Duration::from_secs(30))
        .await;
    let sink_letter = dead
        .iter()
        .find(|m| header(m, "error.stage").as_deref() == Some("sink"))
        .unwrap_or_else(|| panic!("a sink dead letter: {}", pipeline.all_logs()));
    assert_eq!(
        header(sink_letter, "error.kind").as_deref(),
        Some("rejected")
    );
    let origin: i64 = header(sink_letter, "offset")
        .and_then(|o| o.parse().ok())
        .expect("origin offset");
    let live_offsets = pipeline
        .count("SELECT coalesce(sum(next_offset), 0)::int8 FROM sink_offsets")
        .await;

    let still = replay(&pipeline, &["--id", "t-dry", "--dry-run"]);
    assert!(
        still.contains(
            "landed 0 (0 already stored), 1 still failing, 1 dead letters from other stages"
        ),
        "{still}"
    );
    db.batch_execute("ALTER TABLE property_events DROP CONSTRAINT replay_test")
        .await
        .expect("drop the constraint");
    let dry = replay(
        &pipeline,
        &["--id", "t-dry", "--dry-run", "--kind", "rejected"],
    );
    assert!(
        dry.contains("landed 1 (0 already stored), 0 still failing"),
        "{dry}"
    );
    assert!(dry.contains("dry run: nothing written"), "{dry}");
    assert_eq!(pipeline.count(BLOCKED).await, 0, "a dry run writes nothing");

    let done = replay(&pipeline, &["--id", "fix-1"]);
    assert!(
        done.contains("read 2 dead letters, landed 1 (0 already stored), 0 still failing"),
        "{done}"
    );
    assert_eq!(pipeline.count(BLOCKED).await, 1);
    let row = db
        .query_one(
            "SELECT kafka_offset FROM property_events WHERE event_id = 'blocked'",
            &[],
        )
        .await
        .expect("the replayed row");
    assert_eq!(row.get::<_, i64>(0), origin, "at its original position");

    let again = replay(&pipeline, &["--id", "fix-2"]);
    assert!(again.contains("landed 0 (1 already stored)"), "{again}");
    assert_eq!(pipeline.count(rows).await, 3, "no row doubled");
    assert_eq!(
        pipeline
            .count("SELECT coalesce(sum(next_offset), 0)::int8 FROM sink_offsets")
            .await,
        live_offsets,
        "the live group's offsets did not move"
    );
    assert_eq!(
        pipeline.read_topic(&pipeline.topics.dlq()).len(),
        2,
        "nothing dead-lettered again"
    );
    assert!(sink_letter.payload().is_some());
}
