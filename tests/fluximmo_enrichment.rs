//! Fluximmo properties arrive whole: the enrichment stage fetches each
//! property a Fluximmo webhook names from the API (the stand-in of
//! `tests/src/fluximmo_api.rs`) and the pipeline stores it like any other
//! provider's event, while the reference-only event stays. Real broker,
//! registry and PostgreSQL.

use std::time::Duration;

use pipeline_tests::fluximmo_api::{API_KEY, Fault, FluximmoApi};
use pipeline_tests::{FLUXIMMO_TOKEN, Pipeline, Service, fixture, header};

/// The two ids of `fluximmo/webhook-properties.json`.
const FIXTURE_IDS: [&str; 2] = [
    "7364690d-2487-46d1-832d-c5ae1cf6e861",
    "3fcf2348-756d-40e2-9bcd-3c4fd02f51d8",
];

/// Rows that hold what the API gave: a price, a surface, a city, a DPE.
const WHOLE_ROWS: &str = "SELECT count(*) FROM properties WHERE price IS NOT NULL \
     AND surface_m2 IS NOT NULL AND city IS NOT NULL AND dpe_class IS NOT NULL";

async fn start(name: &str, api: &FluximmoApi, key: &str) -> Pipeline {
    let base_url = api.base_url();
    let mut services = Service::ALL.to_vec();
    services.push(Service::Enrich);
    Pipeline::start_with(
        name,
        &services,
        None,
        &[
            ("FLUXIMMO_API_KEY", key),
            ("ENRICH__API__BASE_URL", &base_url),
            ("ENRICH__API__TIMEOUT_MS", "1000"),
            ("ENRICH__API__BACKOFF_BASE_MS", "50"),
            ("ENRICH__API__BACKOFF_CAP_MS", "2000"),
            ("ENRICH__API__RATE_PER_SECOND", "100"),
        ],
    )
    .await
}

async fn deliver(pipeline: &Pipeline, body: &[u8]) {
    let response = pipeline
        .client()
        .post_to("fluximmo", &format!("token={FLUXIMMO_TOKEN}"), &[], body)
        .await
        .expect("ingest answers");
    assert_eq!(response.status(), 200);
}

/// Waits (up to 30 s) until `service`'s `/metrics` holds `line`.
async fn wait_for_metric(pipeline: &Pipeline, service: Service, line: &str) {
    let url = pipeline.metrics_url(service);
    for _ in 0..300 {
        if let Ok(response) = reqwest::get(&url).await
            && let Ok(text) = response.text().await
            && text.contains(line)
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("{url} never held {line:?}\n{}", pipeline.all_logs());
}

fn webhook(ids: &[&str]) -> Vec<u8> {
    serde_json::json!({"data": {"created": [{"properties": ids, "alert_id": "alert-9"}]}})
        .to_string()
        .into_bytes()
}

#[tokio::test(flavor = "multi_thread")]
async fn the_fixture_webhook_becomes_whole_properties_and_a_redelivery_costs_nothing() {
    let api = FluximmoApi::start(&FIXTURE_IDS).await;
    let pipeline = start("flx_enrich", &api, API_KEY).await;
    let body = fixture("fluximmo/webhook-properties.json");
    deliver(&pipeline, &body).await;
    let whole = pipeline
        .wait_for_count(WHOLE_ROWS, 2, Duration::from_secs(60))
        .await;
    assert_eq!(whole, 2, "{}", pipeline.all_logs());
    let db = pipeline.db().await;
    let row = db
        .query_one(
            "SELECT price, surface_m2, city, dpe_class, provider_property_id FROM properties \
             ORDER BY property_key LIMIT 1",
            &[],
        )
        .await
        .expect("a row");
    assert_eq!(row.get::<_, Option<f64>>(0), Some(449_000.0));
    let extras = db
        .query_one(
            "SELECT snapshot->'location'->>'iris_code', (snapshot->>'renovation_year')::int, \
             (snapshot->>'garden')::boolean, snapshot->>'price_scope' FROM properties LIMIT 1",
            &[],
        )
        .await
        .expect("the snapshot");
    assert_eq!(
        extras.get::<_, Option<String>>(0).as_deref(),
        Some("441430105")
    );
    assert_eq!(extras.get::<_, Option<i32>>(1), Some(2019));
    assert_eq!(extras.get::<_, Option<bool>>(2), Some(true));
    assert_eq!(
        extras.get::<_, Option<String>>(3).as_deref(),
        Some("PRICING_ONE_OFF")
    );
    assert!(row.get::<_, Option<f64>>(1).is_some());
    assert!(row.get::<_, Option<String>>(2).is_some());
    let mut asked = api.ids_asked();
    asked.sort();
    let mut expected: Vec<String> = FIXTURE_IDS.iter().map(ToString::to_string).collect();
    expected.sort();
    assert_eq!(asked, expected, "each property fetched once");
    // One bulk call per batch the references arrived in.
    let calls = api.calls();
    assert!((1..=2).contains(&calls), "{calls} calls");

    // The same webhook again: dedupe drops its references before the stage
    // sees them, so no call and no new row.
    deliver(&pipeline, &body).await;
    wait_for_metric(&pipeline, Service::Dedupe, "dedupe_duplicates_total 2").await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(api.calls(), calls, "a redelivery costs no call");
    assert_eq!(
        pipeline.count("SELECT count(*) FROM property_events").await,
        4,
        "two references and two enriched events, nothing more"
    );
    assert_eq!(pipeline.count("SELECT count(*) FROM properties").await, 2);
}

#[tokio::test(flavor = "multi_thread")]
async fn api_faults_end_as_documented_and_nothing_is_lost() {
    let api = FluximmoApi::start(&["known", "left-out"]).await;
    api.leave_out_of_bulk("left-out");
    // The bulk call is refused three times before it works (a 429 with a
    // Retry-After, one without, a 500), then answers slowly once past the
    // timeout.
    api.fail_next(&[
        Fault::RateLimited(Some(1)),
        Fault::RateLimited(None),
        Fault::ServerError,
        Fault::Slow(Duration::from_secs(2)),
    ]);
    let pipeline = start("flx_faults", &api, API_KEY).await;
    deliver(&pipeline, &webhook(&["known", "unknown", "left-out"])).await;
    let whole = pipeline
        .wait_for_count(
            "SELECT count(*) FROM properties WHERE price IS NOT NULL",
            2,
            Duration::from_secs(60),
        )
        .await;
    assert_eq!(whole, 2, "{}", pipeline.all_logs());
    let dead = pipeline
        .wait_for_records(&pipeline.topics.dlq(), 1, Duration::from_secs(30))
        .await;
    assert_eq!(
        dead.len(),
        1,
        "one dead letter: the id the API does not know"
    );
    assert_eq!(header(&dead[0], "error.stage").as_deref(), Some("enrich"));
    assert_eq!(header(&dead[0], "error.kind").as_deref(), Some("not_found"));
    let message = header(&dead[0], "error.message").unwrap_or_default();
    assert!(message.contains("unknown"), "{message}");
    // The unknown property keeps its reference-only row.
    assert_eq!(
        pipeline
            .count("SELECT count(*) FROM properties WHERE provider_property_id = 'unknown' AND price IS NULL")
            .await,
        1
    );
    assert_eq!(
        pipeline.count("SELECT count(*) FROM properties").await,
        3,
        "nothing lost"
    );
    // 4 faults, the bulk call that worked, then by id: the one left out
    // and the unknown one.
    assert!(api.calls() >= 7, "{} calls", api.calls());
    // Malformed bulk answer: the ids are fetched one by one instead.
    api.fail_next(&[Fault::Malformed]);
    deliver(&pipeline, &webhook(&["known"])).await;
    let enriched = pipeline
        .wait_for_count(
            "SELECT count(*) FROM property_events WHERE dedupe_key LIKE '%:api'",
            3,
            Duration::from_secs(30),
        )
        .await;
    assert_eq!(enriched, 3, "{}", pipeline.all_logs());
    pipeline.assert_each_event_forwarded_once(
        usize::try_from(pipeline.count("SELECT count(*) FROM property_events").await)
            .expect("a count"),
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_refused_key_stops_the_stage_naming_where_the_key_was_read() {
    let api = FluximmoApi::start(&FIXTURE_IDS).await;
    let mut pipeline = start("flx_badkey", &api, "not-the-key").await;
    deliver(&pipeline, &fixture("fluximmo/webhook-properties.json")).await;
    let status = pipeline
        .wait_exit_status(Service::Enrich, Duration::from_secs(60))
        .await;
    assert!(
        status.is_some_and(|s| !s.success()),
        "the stage exits non-zero: {status:?}"
    );
    let log = pipeline.log(Service::Enrich);
    assert!(log.contains("FLUXIMMO_API_KEY"), "{log}");
    assert!(!log.contains("not-the-key"), "the key is never logged");
    // The references still landed.
    assert_eq!(
        pipeline
            .wait_for_count(
                "SELECT count(*) FROM properties",
                2,
                Duration::from_secs(30)
            )
            .await,
        2
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn without_a_key_enrichment_is_off_and_references_flow_as_before() {
    let api = FluximmoApi::start(&FIXTURE_IDS).await;
    let pipeline = start("flx_nokey", &api, "").await;
    pipeline
        .expect_log(
            Service::Enrich,
            "enrichment is off",
            Duration::from_secs(30),
        )
        .await;
    deliver(&pipeline, &fixture("fluximmo/webhook-properties.json")).await;
    assert_eq!(
        pipeline
            .wait_for_count(
                "SELECT count(*) FROM property_events",
                2,
                Duration::from_secs(60)
            )
            .await,
        2
    );
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(api.calls(), 0);
    assert_eq!(pipeline.count(WHOLE_ROWS).await, 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn the_stage_killed_mid_flow_leaves_one_whole_row_per_property() {
    let ids: Vec<String> = (0..120).map(|i| format!("flx-kill-{i}")).collect();
    let known: Vec<&str> = ids.iter().map(String::as_str).collect();
    let api = FluximmoApi::start(&known).await;
    // Slow answers, so that the kill lands while calls are in flight.
    api.fail_next(&[Fault::Slow(Duration::from_millis(800)); 6]);
    let mut pipeline = start("flx_kill", &api, API_KEY).await;
    for chunk in known.chunks(6) {
        deliver(&pipeline, &webhook(chunk)).await;
    }
    pipeline
        .expect_log(Service::Enrich, "batch enriched", Duration::from_secs(60))
        .await;
    pipeline.kill(Service::Enrich);
    pipeline.spawn(Service::Enrich);
    let whole = pipeline
        .wait_for_count(
            "SELECT count(*) FROM properties WHERE price IS NOT NULL",
            120,
            Duration::from_secs(90),
        )
        .await;
    assert_eq!(whole, 120, "{}", pipeline.all_logs());
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(pipeline.count("SELECT count(*) FROM properties").await, 120);
    assert_eq!(
        pipeline.count("SELECT count(*) FROM property_events").await,
        240,
        "one reference and one enriched event per property"
    );
    pipeline.assert_each_event_forwarded_once(240);
}

#[tokio::test(flavor = "multi_thread")]
async fn an_id_named_again_costs_no_call_unless_named_after_the_fetch() {
    let api = FluximmoApi::start(&["shared", "other"]).await;
    let base_url = api.base_url();
    // Enrichment starts after both alerts' webhooks arrived.
    let mut pipeline = Pipeline::start_with(
        "flx_cache",
        &Service::ALL,
        None,
        &[
            ("FLUXIMMO_API_KEY", API_KEY),
            ("ENRICH__API__BASE_URL", &base_url),
            ("ENRICH__BATCH__MAX_RECORDS", "1"),
        ],
    )
    .await;
    let alert = |alert: &str, ids: &[&str]| {
        serde_json::json!({"data": {"created": [{"properties": ids, "alert_id": alert}]}})
            .to_string()
            .into_bytes()
    };
    deliver(&pipeline, &alert("alert-a", &["shared"])).await;
    deliver(&pipeline, &alert("alert-b", &["shared", "other"])).await;
    let references = pipeline
        .wait_for_count(
            "SELECT count(*) FROM property_events",
            3,
            Duration::from_secs(60),
        )
        .await;
    assert_eq!(references, 3);
    pipeline.spawn(Service::Enrich);
    let enriched = pipeline
        .wait_for_count(
            "SELECT count(*) FROM property_events WHERE dedupe_key LIKE '%:api'",
            3,
            Duration::from_secs(60),
        )
        .await;
    assert_eq!(
        enriched,
        3,
        "each reference enriched: {}",
        pipeline.all_logs()
    );
    let shared = |api: &FluximmoApi| api.ids_asked().iter().filter(|id| *id == "shared").count();
    assert_eq!(shared(&api), 1, "the second alert's reference cost no call");
    // A webhook that arrives after the fetch may name a change: fetched again.
    deliver(&pipeline, &alert("alert-c", &["shared"])).await;
    let _ = pipeline
        .wait_for_count(
            "SELECT count(*) FROM property_events WHERE dedupe_key LIKE '%:api'",
            4,
            Duration::from_secs(60),
        )
        .await;
    assert_eq!(shared(&api), 2);
}

#[tokio::test(flavor = "multi_thread")]
async fn enrich_replay_re_drives_a_dead_letter_once_the_api_has_the_property() {
    let api = FluximmoApi::start(&[]).await;
    let pipeline = start("flx_replay", &api, API_KEY).await;
    deliver(&pipeline, &webhook(&["late"])).await;
    let dead = pipeline
        .wait_for_records(&pipeline.topics.dlq(), 1, Duration::from_secs(60))
        .await;
    assert_eq!(dead.len(), 1, "{}", pipeline.all_logs());
    assert_eq!(header(&dead[0], "error.kind").as_deref(), Some("not_found"));
    api.know("late");
    let output = pipeline
        .command(Service::Enrich)
        .arg("replay")
        .output()
        .expect("run enrich replay");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(stdout.contains("enriched 1, 0 still failing"), "{stdout}");
    let whole = pipeline
        .wait_for_count(
            "SELECT count(*) FROM properties WHERE provider_property_id = 'late' AND price IS NOT NULL",
            1,
            Duration::from_secs(60),
        )
        .await;
    assert_eq!(whole, 1, "{}", pipeline.all_logs());
    // A second replay finds the property enriched already: dedupe drops
    // the repeat, no row moves.
    let again = pipeline
        .command(Service::Enrich)
        .arg("replay")
        .output()
        .expect("run enrich replay again");
    assert!(again.status.success());
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(
        pipeline
            .count("SELECT count(*) FROM property_events WHERE dedupe_key LIKE '%:api'")
            .await,
        1
    );
    assert_eq!(
        pipeline.read_topic(&pipeline.topics.dlq()).len(),
        1,
        "a replay writes no dead letter"
    );
}
