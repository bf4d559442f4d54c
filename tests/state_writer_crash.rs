//! The state writer killed (SIGKILL) twice while a few hundred webhooks
//! flow, and started again each time: for every property, its last state
//! on `properties.latest` is the merge of all its events on
//! `properties.events`, each record is the state its `source-offset`
//! input produced, and no two consecutive records of a property are the
//! same state: what landed before a crash was read back, nothing was lost
//! and nothing written twice.

use std::time::Duration;

use pipeline_tests::latest_states::assert_latest_is_the_merge;
use pipeline_tests::{Pipeline, Service};

const WEBHOOKS: usize = 300;
const PROPERTIES: usize = 20;

/// Webhook `i`: about property `i % 20`, at a time that jumps back and
/// forth (so events arrive out of order), a full update, or every fifth a
/// sale that carries nothing else.
fn webhook(i: usize) -> Vec<u8> {
    let (hour, minute) = (10 + (i * 7) % 5, (i * 13) % 60);
    let property = if i % 5 == 4 {
        format!(r#"{{"id":"prop_swc_{}"}}"#, i % PROPERTIES)
    } else {
        format!(
            r#"{{"id":"prop_swc_{}","price":{},"bedrooms":{},"address":"{} Rue du Crash"}}"#,
            i % PROPERTIES,
            100_000 + i,
            1 + i % 4,
            i
        )
    };
    let kind = if i % 5 == 4 { "sold" } else { "updated" };
    format!(
        r#"{{"id":"evt_swc_{i}","type":"property.{kind}","created":"2024-02-01T{hour:02}:{minute:02}:00Z","data":{{"property":{property}}}}}"#
    )
    .into_bytes()
}

/// The lines of the state writer's log (every instance of it) that say
/// `needle`, without terminal colours.
fn lines_with(pipeline: &Pipeline, needle: &str) -> Vec<String> {
    pipeline
        .log(Service::StateWriter)
        .lines()
        .map(|line| {
            let mut plain = String::new();
            let mut escape = false;
            for c in line.chars() {
                match (escape, c) {
                    (false, '\u{1b}') => escape = true,
                    (true, 'm') => escape = false,
                    (false, c) => plain.push(c),
                    (true, _) => {}
                }
            }
            plain
        })
        .filter(|line| line.contains(needle))
        .collect()
}

/// Waits until the state writer's log says `needle` more than `seen` times.
async fn wait_for_more(pipeline: &Pipeline, needle: &str, seen: usize) {
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while lines_with(pipeline, needle).len() <= seen {
        assert!(
            std::time::Instant::now() < deadline,
            "no new `{needle}`:\n{}",
            pipeline.log_tail(Service::StateWriter)
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn killing_the_state_writer_loses_and_writes_twice_nothing() {
    let mut pipeline = Pipeline::start("state_crash").await;
    // About 40 s of traffic: long enough for two kills, each followed by
    // the session timeout (10 s) before the partitions move on.
    let senders = pipeline.client().deliver_all_generic(
        (0..WEBHOOKS).map(webhook).collect(),
        2,
        Duration::from_millis(250),
    );
    for _ in 0..2 {
        // Kill it while it writes: once it has merged a batch more.
        let merged = lines_with(&pipeline, "batch merged").len();
        wait_for_more(&pipeline, "batch merged", merged).await;
        tokio::time::sleep(Duration::from_millis(700)).await;
        let restored = lines_with(&pipeline, "property states read back").len();
        pipeline.restart(Service::StateWriter).await;
        // The new instance reads its partitions back before it goes on.
        wait_for_more(&pipeline, "property states read back", restored).await;
    }
    senders.await.expect("every delivery got its 200");

    let latest = assert_latest_is_the_merge(&pipeline, WEBHOOKS, Duration::from_secs(120)).await;
    assert_eq!(latest.len(), PROPERTIES, "one state per property");
    let restores = lines_with(&pipeline, "property states read back");
    assert!(
        restores
            .iter()
            .any(|line| !line.contains("properties=0 ") && line.contains("mark=")),
        "a restarted instance read back what the killed one wrote: {restores:#?}"
    );
}
