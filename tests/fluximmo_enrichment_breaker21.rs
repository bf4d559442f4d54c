//! Attacks on the Fluximmo enrichment stage (breaker 21): hostile ids that
//! reach the by-id path, a by-id path slower than the consumer's poll
//! interval. Real broker, registry and PostgreSQL; the API is the stand-in
//! of `tests/src/fluximmo_api.rs`.

use std::collections::HashMap;
use std::time::Duration;

use pipeline_tests::fluximmo_api::{API_KEY, FluximmoApi};
use pipeline_tests::{FLUXIMMO_TOKEN, Pipeline, Service, header};

async fn start(name: &str, api: &FluximmoApi, extra: &[(&str, &str)]) -> Pipeline {
    let base_url = api.base_url();
    let mut services = Service::ALL.to_vec();
    services.push(Service::Enrich);
    let mut env = vec![
        ("FLUXIMMO_API_KEY", API_KEY),
        ("ENRICH__API__BASE_URL", base_url.as_str()),
        ("ENRICH__API__TIMEOUT_MS", "1000"),
        ("ENRICH__API__BACKOFF_BASE_MS", "50"),
        ("ENRICH__API__BACKOFF_CAP_MS", "2000"),
        ("ENRICH__API__RATE_PER_SECOND", "100"),
    ];
    env.extend_from_slice(extra);
    Pipeline::start_with(name, &services, None, &env).await
}

async fn deliver(pipeline: &Pipeline, ids: &[&str]) {
    let body =
        serde_json::json!({"data": {"created": [{"properties": ids, "alert_id": "alert-21"}]}})
            .to_string();
    let response = pipeline
        .client()
        .post_to(
            "fluximmo",
            &format!("token={FLUXIMMO_TOKEN}"),
            &[],
            body.as_bytes(),
        )
        .await
        .expect("ingest answers");
    assert_eq!(response.status(), 200);
}

async fn wait_for_dead_letters(pipeline: &Pipeline, expected: usize) -> Vec<(String, String)> {
    for _ in 0..300 {
        let dead = pipeline.dead_letters_of("enrich");
        if dead.len() >= expected {
            return dead
                .iter()
                .map(|m| {
                    (
                        header(m, "error.kind").unwrap_or_default(),
                        header(m, "error.message").unwrap_or_default(),
                    )
                })
                .collect();
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!(
        "fewer than {expected} enrich dead letters\n{}",
        pipeline.all_logs()
    );
}

/// Ids a webhook may carry that are no plain path segment: each keeps its
/// reference row, the two the API knows become whole rows by id, the rest a
/// precise dead letter, and no request reaches another endpoint of the API.
/// The key is in no service's log.
#[tokio::test(flavor = "multi_thread")]
async fn hostile_ids_stay_on_the_by_id_path_and_end_precisely() {
    // As long as normalize takes (a longer one dead-letters the whole
    // webhook at normalize, `invalid_field`: normalize's unit tests).
    let long = "L".repeat(normalize::providers::MAX_PROPERTY_ID_BYTES);
    let known = ["a/b", "é🏠"];
    let unknown = ["..", "x?y#z", "%2e%2e", long.as_str()];
    let api = FluximmoApi::start(&known).await;
    for id in known.iter().chain(unknown.iter()) {
        api.leave_out_of_bulk(id);
    }
    let pipeline = start(
        "flx_b21_ids",
        &api,
        &[("RUST_LOG", "debug,rdkafka=info,librdkafka=info")],
    )
    .await;
    let all: Vec<&str> = known.iter().chain(unknown.iter()).copied().collect();
    deliver(&pipeline, &all).await;
    let whole = pipeline
        .wait_for_count(
            "SELECT count(*) FROM properties WHERE price IS NOT NULL",
            2,
            Duration::from_secs(40),
        )
        .await;
    assert_eq!(whole, 2, "{}", pipeline.all_logs());
    let dead = wait_for_dead_letters(&pipeline, unknown.len()).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        pipeline.dead_letters_of("enrich").len(),
        unknown.len(),
        "one dead letter per unknown id: {dead:?}"
    );
    for (kind, message) in &dead {
        assert!(
            kind == "not_found" || kind == "client_error",
            "{kind}: {message:.200}"
        );
    }
    assert_eq!(
        pipeline.count("SELECT count(*) FROM properties").await,
        6,
        "one row per property, the reference-only ones kept"
    );
    assert!(
        api.foreign_requests().is_empty(),
        "requests left the documented calls: {:?}",
        api.foreign_requests()
    );
    pipeline.assert_each_event_forwarded_once(8);
    assert!(
        !pipeline.all_logs().contains(API_KEY),
        "the API key is in a log"
    );
}

/// Found by the issue 21 breaker: the ids a bulk answer leaves out were
/// asked one by one, one after the other, while the consumer was not
/// polled. Past `max.poll.interval.ms` librdkafka took the consumer out of
/// its group, the batch's commit failed, and the batch was read and fetched
/// again, for ever (each of 8 ids asked 6 times in 35 s, with the cache
/// off). In production: a bulk path that 404s (renamed, as it was in 2026)
/// sends a 50-id chunk by id; at a 10 s timeout that is up to 500 s, past
/// the 300 s default. Now the by-id calls run `max_concurrent_calls` at a
/// time, and a batch's fetches end within `[api] batch_budget_ms` (checked
/// at start to stay below the poll interval): what is not answered by then
/// is a `timeout` dead letter, for a replay. Here 8 slow ids, 4 at a time,
/// take two rounds of 2 s, past a 3.9 s budget: the first round lands
/// whole, the rest is dead-lettered, and nothing is fetched twice by id.
#[tokio::test(flavor = "multi_thread")]
async fn a_by_id_pass_longer_than_the_poll_interval_is_not_fetched_again_and_again() {
    let ids: Vec<String> = (0..8).map(|i| format!("flx-slow-{i}")).collect();
    let known: Vec<&str> = ids.iter().map(String::as_str).collect();
    let api = FluximmoApi::start(&known).await;
    for id in &known {
        api.leave_out_of_bulk(id);
    }
    api.slow_by_id(Duration::from_millis(2_000));
    let pipeline = start(
        "flx_b21_poll",
        &api,
        &[
            ("ENRICH__API__TIMEOUT_MS", "3000"),
            ("ENRICH__API__CACHE_TTL_SECS", "0"),
            ("ENRICH__API__BATCH_BUDGET_MS", "3900"),
            ("ENRICH__KAFKA__PROPERTIES__MAX.POLL.INTERVAL.MS", "7000"),
            ("ENRICH__KAFKA__PROPERTIES__SESSION.TIMEOUT.MS", "6000"),
        ],
    )
    .await;
    deliver(&pipeline, &known).await;
    let mut ended = (0, 0);
    for _ in 0..400 {
        ended = (
            pipeline
                .count("SELECT count(*) FROM properties WHERE price IS NOT NULL")
                .await,
            i64::try_from(pipeline.dead_letters_of("enrich").len()).unwrap_or(0),
        );
        if ended.0 + ended.1 >= 8 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (whole, timed_out) = ended;
    assert_eq!(whole + timed_out, 8, "{}", pipeline.all_logs());
    assert!(whole >= 4, "the first round lands whole: {whole}");
    // Long enough for a second pass to have run, were there one.
    tokio::time::sleep(Duration::from_secs(10)).await;
    let mut asked: HashMap<String, usize> = HashMap::new();
    for id in api.ids_asked() {
        *asked.entry(id).or_default() += 1;
    }
    // Once in bulk, at most once by id.
    let refetched: Vec<(&String, &usize)> = asked.iter().filter(|(_, n)| **n > 2).collect();
    assert!(
        refetched.is_empty(),
        "ids fetched again and again: {refetched:?}\n{}",
        pipeline.log_tail(Service::Enrich)
    );
    for letter in pipeline.dead_letters_of("enrich") {
        assert_eq!(header(&letter, "error.kind").as_deref(), Some("timeout"));
    }
    let enriched = usize::try_from(whole).unwrap_or(0);
    pipeline.assert_each_event_forwarded_once(8 + enriched);
    assert_eq!(pipeline.count("SELECT count(*) FROM properties").await, 8);
}

/// An outage longer than the retry budget opens the breaker: the first
/// alert's references become `server_error` dead letters, one each. The
/// API recovers: the live stage enriches the next alert while `enrich
/// replay` re-drives the dead letters, and dedupe is killed in the middle.
/// One row per property, all whole, every event on `properties.events`
/// exactly once, no dead letter written twice.
#[tokio::test(flavor = "multi_thread")]
async fn an_outage_then_recovery_with_a_replay_beside_the_live_stage_and_dedupe_killed() {
    let first: Vec<String> = (0..4).map(|i| format!("flx-out-a{i}")).collect();
    let second: Vec<String> = (0..4).map(|i| format!("flx-out-b{i}")).collect();
    let first: Vec<&str> = first.iter().map(String::as_str).collect();
    let second: Vec<&str> = second.iter().map(String::as_str).collect();
    let all: Vec<&str> = first.iter().chain(second.iter()).copied().collect();
    let api = FluximmoApi::start(&all).await;
    api.fail_next(&[pipeline_tests::fluximmo_api::Fault::ServerError; 200]);
    let mut pipeline = start(
        "flx_b21_outage",
        &api,
        &[
            ("ENRICH__API__BREAKER_FAILURES", "2"),
            ("ENRICH__API__BREAKER_COOL_DOWN_MS", "1500"),
            ("ENRICH__API__MAX_ATTEMPTS", "3"),
            ("ENRICH__API__MAX_ELAPSED_MS", "3000"),
        ],
    )
    .await;
    deliver(&pipeline, &first).await;
    let dead = wait_for_dead_letters(&pipeline, first.len()).await;
    assert!(
        dead.iter().all(|(kind, _)| kind == "server_error"),
        "{dead:?}"
    );
    api.clear_faults();

    let replay = pipeline
        .command(Service::Enrich)
        .arg("replay")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("start enrich replay");
    let replay = tokio::task::spawn_blocking(move || replay.wait_with_output());
    deliver(&pipeline, &second).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    pipeline.kill(Service::Dedupe);
    pipeline.spawn(Service::Dedupe);

    let output = replay.await.expect("joined").expect("replay ran");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(stdout.contains("enriched 4, 0 still failing"), "{stdout}");
    let whole = pipeline
        .wait_for_count(
            "SELECT count(*) FROM properties WHERE price IS NOT NULL",
            8,
            Duration::from_secs(40),
        )
        .await;
    assert_eq!(whole, 8, "{}", pipeline.all_logs());
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(pipeline.count("SELECT count(*) FROM properties").await, 8);
    pipeline.assert_each_event_forwarded_once(16);
    assert_eq!(pipeline.dead_letters_of("enrich").len(), 4);
    assert!(
        !pipeline.all_logs().contains(API_KEY),
        "the API key is in a log"
    );
}

/// A 10 KB id that does not compress (PostgreSQL's btree takes at most
/// ~2.7 KB per index entry): the property it names ends precisely (a row,
/// or a dead letter), and the properties after it still land.
///
/// Found by the issue 21 breaker: the sink's batch failed with `ERROR
/// 54000: index row requires 10032 bytes, maximum size is 8191` (the
/// property key in the index), was classed as a transient database failure
/// and retried forever, so no property after it on its partition was ever
/// written (a compressible id of the same length fits, which is why
/// `hostile_ids_...` holds). The sink now takes SQLSTATE 54000 as the
/// record's own fault: the rejected row is dead-lettered. Since session 18
/// normalize refuses a property id over `MAX_PROPERTY_ID_BYTES` (512) before
/// it reaches the sink: the webhook is normalize's dead letter
/// (`invalid_field`).
#[tokio::test(flavor = "multi_thread")]
async fn an_incompressible_10_kb_id_does_not_stop_the_properties_after_it() {
    let hostile: String = (0..5_000)
        .map(|_| format!("{:02x}", rand::random::<u8>()))
        .collect();
    let api = FluximmoApi::start(&["flx-after", hostile.as_str()]).await;
    let pipeline = start("flx_b21_long", &api, &[]).await;
    deliver(&pipeline, &[hostile.as_str()]).await;
    deliver(&pipeline, &["flx-after"]).await;
    let landed = pipeline
        .wait_for_count(
            "SELECT count(*) FROM properties WHERE provider_property_id = 'flx-after' \
             AND price IS NOT NULL",
            1,
            Duration::from_secs(40),
        )
        .await;
    assert_eq!(landed, 1, "{}", pipeline.log_tail(Service::Sink));
    // The long id's own partition may still be on its way: wait for its end.
    let mut ended = (0, Vec::new());
    for _ in 0..300 {
        ended = (
            pipeline.count("SELECT count(*) FROM properties").await,
            pipeline.dead_letters_of("normalize"),
        );
        if ended.0 == 2 || !ended.1.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (rows, normalize_dead) = ended;
    assert_eq!(rows, 1, "{}", pipeline.log_tail(Service::Normalize));
    let kinds: Vec<String> = normalize_dead
        .iter()
        .map(|m| header(m, "error.kind").unwrap_or_default())
        .collect();
    assert_eq!(
        kinds,
        ["invalid_field"],
        "the long id is refused at normalize\n{}",
        pipeline.log_tail(Service::Normalize)
    );
}
