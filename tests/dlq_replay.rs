//! After a parser fix, `normalize replay` re-drives the dead letters on
//! `webhooks.dlq` through the current parsers: records that now parse land
//! as events (with a `replay-id` header and the raw record's lineage),
//! records that still fail stay on the DLQ without being copied again, and
//! dead letters of other stages are left alone.

use std::time::Duration;

use pipeline_tests::{Pipeline, fixture, header};

#[tokio::test(flavor = "multi_thread")]
async fn replay_recovers_what_the_fixed_parser_reads_and_leaves_the_rest() {
    let pipeline = Pipeline::start("replay").await;
    // What the walking skeleton, which knew only the generic provider, left behind.
    pipeline
        .produce(&[
            pipeline.dead_letter(
                "stream-estate",
                "normalize",
                fixture("stream-estate/ad.update.price.json"),
            ),
            pipeline.dead_letter(
                "generic",
                "normalize",
                fixture("generic/appointment.scheduled.json"),
            ),
            pipeline.dead_letter("generic", "sink", fixture("generic/property.created.json")),
        ])
        .await;

    let output = pipeline.normalize_replay("fix-42", &[]);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        stdout.contains(
            "read 3 records, recovered 1 (1 events), 1 still failing, 1 dead letters from other stages"
        ),
        "{stdout}"
    );

    let rows = pipeline
        .wait_for_count(
            "SELECT count(*) FROM property_events WHERE event_type = 'price_changed' AND raw_offset = 41",
            1,
            Duration::from_secs(30),
        )
        .await;
    assert_eq!(rows, 1, "{}", pipeline.all_logs());
    let normalized = pipeline.read_topic(&pipeline.topics.normalized());
    assert_eq!(normalized.len(), 1);
    assert_eq!(
        header(&normalized[0], "replay-id").as_deref(),
        Some("fix-42")
    );
    assert_eq!(
        pipeline.read_topic(&pipeline.topics.dlq()).len(),
        3,
        "nothing dead-lettered again"
    );
}
