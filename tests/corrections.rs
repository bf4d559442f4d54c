//! Corrections (DESIGN.md, "Normalize"): after a parser fix, `normalize
//! replay` re-drives a raw offset range or a time range through the current
//! parsers. The replayed event reaches PostgreSQL although its dedupe key
//! was seen (dedupe forwards it as a correction), the stored row is
//! overwritten only by a newer normalizer version, the live normalize
//! group's committed offsets do not move, and an ordinary redelivery of the
//! same webhook is still dropped as a duplicate.
//!
//! A test cannot build a second release of the parser, so the replays run
//! "as" another version with `NORMALIZE__NORMALIZER_VERSION`, the setting
//! meant for rehearsing a correction.

use std::time::Duration;

use pipeline_tests::{Pipeline, Service, fixture, header, unix_now};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::{Message, Offset, TopicPartitionList};

const VERSION: &str = "SELECT normalizer_version FROM property_events";

/// Runs `normalize replay` with `args` as normalizer version `version`.
fn replay(pipeline: &Pipeline, version: &str, args: &[&str]) -> String {
    let output = pipeline
        .command(Service::Normalize)
        .arg("replay")
        .args(args)
        .env("NORMALIZE__NORMALIZER_VERSION", version)
        .output()
        .expect("run normalize replay");
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
}

/// The live normalize group's committed offset on the raw partition.
fn live_offset(pipeline: &Pipeline, partition: i32) -> Offset {
    let group = format!("{}normalize", pipeline.topics.prefix);
    let consumer: BaseConsumer = common::kafka::KafkaSettings {
        brokers: pipeline.stack.brokers.clone(),
        ..common::kafka::KafkaSettings::default()
    }
    .consumer(&group)
    .create()
    .expect("consumer");
    let mut tpl = TopicPartitionList::new();
    let _ = tpl.add_partition(&pipeline.topics.raw(), partition);
    let committed = consumer
        .committed_offsets(tpl, Duration::from_secs(10))
        .expect("committed offsets");
    committed.elements()[0].offset()
}

async fn stored_version(pipeline: &Pipeline) -> String {
    pipeline
        .db()
        .await
        .query_one(VERSION, &[])
        .await
        .expect("one event row")
        .get(0)
}

async fn wait_for_version(pipeline: &Pipeline, expected: &str) -> String {
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let version = stored_version(pipeline).await;
        if version == expected || std::time::Instant::now() >= deadline {
            return version;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_replay_as_a_newer_normalizer_corrects_the_row_and_redeliveries_stay_duplicates() {
    let pipeline = Pipeline::start("corrections").await;
    let before_send = unix_now() - 1;
    let body = fixture("generic/property.created.json");
    pipeline.deliver_generic(&body).await;
    let raw = pipeline.only_raw_record(&body).await;
    let events = "SELECT count(*) FROM property_events";
    assert_eq!(
        pipeline
            .wait_for_count(events, 1, Duration::from_secs(30))
            .await,
        1,
        "{}",
        pipeline.all_logs()
    );
    let live_version = stored_version(&pipeline).await;
    let live = live_offset(&pipeline, raw.partition());
    assert_eq!(
        live,
        Offset::Offset(raw.offset() + 1),
        "live group caught up"
    );

    // A raw offset range, replayed as a newer release: the row is corrected.
    let (partition, offset) = (raw.partition().to_string(), raw.offset());
    let stdout = replay(
        &pipeline,
        "99.0.0",
        &[
            "--id",
            "fix-1",
            "--partition",
            &partition,
            "--from-offset",
            &offset.to_string(),
            "--to-offset",
            &(offset + 1).to_string(),
        ],
    );
    assert!(
        stdout.contains("read 1 records, recovered 1 (1 events)"),
        "{stdout}"
    );
    assert_eq!(
        wait_for_version(&pipeline, "99.0.0").await,
        "99.0.0",
        "{}",
        pipeline.all_logs()
    );
    assert_eq!(pipeline.count(events).await, 1, "corrected, not added");
    let forwarded = pipeline
        .wait_for_records(&pipeline.topics.events(), 2, Duration::from_secs(10))
        .await;
    assert_eq!(forwarded.len(), 2, "the correction was forwarded by dedupe");
    assert_eq!(header(&forwarded[1], "replay-id").as_deref(), Some("fix-1"));
    assert!(
        pipeline
            .log_tail(Service::Dedupe)
            .contains("correction forwarded"),
        "{}",
        pipeline.log_tail(Service::Dedupe)
    );

    // A time range replayed as an older release: forwarded, but the row
    // from the newer release stays.
    let since = time::OffsetDateTime::from_unix_timestamp(before_send)
        .expect("time")
        .format(&time::format_description::well_known::Rfc3339)
        .expect("RFC 3339");
    let stdout = replay(&pipeline, "0.0.1", &["--id", "old-1", "--since", &since]);
    assert!(
        stdout.contains("read 1 records, recovered 1 (1 events)"),
        "{stdout}"
    );
    let forwarded = pipeline
        .wait_for_records(&pipeline.topics.events(), 3, Duration::from_secs(10))
        .await;
    assert_eq!(forwarded.len(), 3);
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        stored_version(&pipeline).await,
        "99.0.0",
        "an older version never overwrites"
    );
    let property_version: String = pipeline
        .db()
        .await
        .query_one("SELECT last_normalizer_version FROM properties", &[])
        .await
        .expect("one property row")
        .get(0);
    assert_eq!(property_version, "99.0.0", "nor the property's snapshot");

    // Replays never move the live group; an ordinary redelivery is still a duplicate.
    assert_eq!(live_offset(&pipeline, raw.partition()), live);
    pipeline.deliver_generic(&body).await;
    let normalized = pipeline
        .wait_for_records(&pipeline.topics.normalized(), 4, Duration::from_secs(10))
        .await;
    assert_eq!(normalized.len(), 4, "original, two replays, the redelivery");
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(
        pipeline.read_topic(&pipeline.topics.events()).len(),
        3,
        "the redelivery was dropped"
    );
    assert_eq!(pipeline.count(events).await, 1);
    assert_eq!(stored_version(&pipeline).await, "99.0.0");
    assert_ne!(live_version, "99.0.0");
}
