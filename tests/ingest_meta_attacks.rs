//! Attacks on the one `ingest-meta` header of a raw record (form-encoded
//! metadata, `contract::ingest_meta`):
//!
//! - a provider's event id full of form syntax (`&`, `=`, `+`, `%`) cannot
//!   add or replace a field, keeps its exact text in the key, the metadata
//!   and PostgreSQL, and a head at the limit, escaped three times over,
//!   still fits the record beside a body at the limit (a 200, never a 503);
//! - a subscriber reading the header as the README says (Python
//!   `parse_qsl(value, keep_blank_values=True)`) gets every field, the
//!   empty `verify-key` of an unverified source included;
//! - a raw record carrying both layouts, disagreeing, is read from its
//!   `ingest-meta` header by normalize and by the trace it continues;
//! - an empty or fieldless `ingest-meta` is a dead letter naming the
//!   missing field, and the stage goes on;
//! - a one-header dead letter is recovered by `normalize replay`.

use std::process::{Command, Stdio};
use std::time::Duration;

use common::produce::OutRecord;
use ingest::verify::standard_webhooks::{decode_secret, sign};
use pipeline_tests::{Pipeline, STANDARD_SECRET, fixture, header, key, raw_field, unix_now};
use rdkafka::Message;

const EVENT_ROWS: &str = "SELECT count(*) FROM property_events";

fn signed(id: &str, body: &[u8]) -> Vec<(&'static str, String)> {
    let secret = decode_secret(STANDARD_SECRET.as_bytes()).expect("a whsec_ secret");
    let ts = unix_now().to_string();
    vec![
        ("webhook-id", id.to_string()),
        ("webhook-signature", sign(secret.expose(), id, &ts, body)),
        ("webhook-timestamp", ts),
    ]
}

/// The generic fixture without its `id`, so the event id is `webhook-id`.
fn body_without_id() -> Vec<u8> {
    let mut body: serde_json::Value =
        serde_json::from_slice(&fixture("generic/property.created.json")).expect("JSON fixture");
    let _ = body.as_object_mut().expect("an object").remove("id");
    serde_json::to_vec(&body).expect("JSON")
}

fn raw_record(pipeline: &Pipeline, body: Vec<u8>) -> OutRecord {
    OutRecord {
        topic: pipeline.topics.raw(),
        partition: Some(0),
        key: None,
        payload: Some(body),
        headers: Vec::new(),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_provider_event_id_cannot_smuggle_a_field_and_keeps_its_exact_text() {
    let pipeline = Pipeline::start("meta_smuggle").await;
    let body = body_without_id();
    let ids = [
        "x&provider=stream-estate&source=other",
        "a+b %2B%zz%=&event-id=y&traceparent=00-x",
    ];
    for id in ids {
        let r = pipeline
            .post("standard", &signed(id, &body), &body)
            .await
            .expect("answers");
        assert_eq!(r.status(), 200, "{id}");
    }
    let raw = pipeline
        .wait_for_records(&pipeline.topics.raw(), 2, Duration::from_secs(10))
        .await;
    assert_eq!(raw.len(), 2);
    for (record, id) in raw.iter().zip(ids) {
        assert_eq!(key(record), Some(format!("standard:{id}")));
        assert_eq!(raw_field(record, "event-id").as_deref(), Some(id));
        assert_eq!(raw_field(record, "source").as_deref(), Some("standard"));
        assert_eq!(
            raw_field(record, "provider").as_deref(),
            Some("standard-webhooks")
        );
        assert!(
            raw_field(record, "traceparent").is_some_and(|t| common::traceparent::is_valid(&t)),
            "{id}"
        );
    }
    let rows = pipeline
        .wait_for_count(EVENT_ROWS, 2, Duration::from_secs(30))
        .await;
    assert_eq!(rows, 2, "{}", pipeline.all_logs());
    let db = pipeline.db().await;
    let mut stored: Vec<(String, String, String)> = db
        .query(
            "SELECT event_id, source, dedupe_key FROM property_events",
            &[],
        )
        .await
        .expect("rows")
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect();
    stored.sort();
    let mut expected: Vec<(String, String, String)> = ids
        .iter()
        .map(|id| {
            (
                (*id).to_string(),
                "standard".to_string(),
                format!("standard:{id}"),
            )
        })
        .collect();
    expected.sort();
    assert_eq!(stored, expected);
}

/// ASCII escapes to at most three times its bytes: a `webhook-id` filling
/// the head limit with `&` beside a body at the body limit still fits the
/// record ingest sized the producer for.
#[tokio::test(flavor = "multi_thread")]
async fn a_head_of_escaped_bytes_at_the_limit_beside_a_body_at_the_limit_is_stored() {
    let pipeline = Pipeline::start_ingest("meta_size").await;
    let id = "&".repeat(15 * 1024);
    let mut body = br#"{"type":"property.created","pad":""#.to_vec();
    body.resize(1024 * 1024 - 2, b'x');
    body.extend_from_slice(br#""}"#);
    let r = pipeline
        .post("standard", &signed(&id, &body), &body)
        .await
        .expect("answers");
    assert_eq!(
        r.status(),
        200,
        "{}",
        pipeline.log_tail(pipeline_tests::Service::Ingest)
    );
    let record = pipeline.only_raw_record(&body).await;
    assert_eq!(raw_field(&record, "event-id").as_deref(), Some(id.as_str()));
    let meta = header(&record, "ingest-meta").expect("the one header");
    assert!(
        meta.len() > 3 * id.len(),
        "every `&` escaped: {}",
        meta.len()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn python_reads_every_field_when_it_keeps_blank_values_as_documented() {
    // An unverified source reports an empty `verify-key` (so does a source
    // whose only check is the Immoteur headers).
    let config = "[[sources]]\nname = \"open\"\nprovider = \"generic\"\nunverified = true\n";
    let pipeline = Pipeline::start_ingest_with_config("meta_python", config).await;
    let body = fixture("generic/property.created.json");
    let r = pipeline.post("open", &[], &body).await.expect("answers");
    assert_eq!(r.status(), 200);
    let record = pipeline.only_raw_record(&body).await;
    let value = header(&record, "ingest-meta").expect("the one header");
    let ours: Vec<(String, String)> = common::ingest_meta::IngestMeta::parse(value.as_bytes())
        .fields()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    assert!(
        ours.contains(&("verify-key".to_string(), String::new())),
        "{ours:?}"
    );

    let python = |keep_blank: &str| -> Vec<(String, String)> {
        let python = std::env::var("ESTATE_TEST_PYTHON").expect("ESTATE_TEST_PYTHON");
        let script = format!(
            "import sys, json, urllib.parse\n\
             print(json.dumps(urllib.parse.parse_qsl(sys.stdin.read(), keep_blank_values={keep_blank}, strict_parsing=True)))"
        );
        let mut child = Command::new(python)
            .args(["-c", &script])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("run python");
        std::io::Write::write_all(&mut child.stdin.take().expect("stdin"), value.as_bytes())
            .expect("write");
        let output = child.wait_with_output().expect("python ends");
        assert!(output.status.success());
        serde_json::from_slice(&output.stdout).expect("pairs")
    };
    assert_eq!(
        python("True"),
        ours,
        "the documented call reads every field"
    );
    assert!(
        !python("False").iter().any(|(k, _)| k == "verify-key"),
        "without keep_blank_values the empty field is lost: why the README says to keep it"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_record_with_both_layouts_is_read_from_ingest_meta_by_normalize_and_its_trace() {
    let pipeline = Pipeline::start("meta_both").await;
    let ingest_trace = "0af7651916cd43dd8448eb211c80319c";
    let other_trace = "11111111111111111111111111111111";
    let meta = common::ingest_meta::encode([
        ("source", "generic"),
        ("provider", "generic"),
        ("content-type", "application/json"),
        ("received-at", &(unix_now() * 1000).to_string()),
        (
            "traceparent",
            &format!("00-{ingest_trace}-b7ad6b7169203331-01"),
        ),
    ]);
    let record = raw_record(&pipeline, fixture("generic/property.created.json"))
        .header("source", "other")
        .header("provider", "stream-estate")
        .header(
            "traceparent",
            format!("00-{other_trace}-2222222222222222-01"),
        )
        .header("ingest-meta", meta);
    pipeline.produce(&[record]).await;

    let rows = pipeline
        .wait_for_count(
            "SELECT count(*) FROM property_events WHERE source = 'generic'",
            1,
            Duration::from_secs(30),
        )
        .await;
    assert_eq!(rows, 1, "{}", pipeline.all_logs());
    let normalized = pipeline.read_topic(&pipeline.topics.normalized());
    assert_eq!(normalized.len(), 1);
    let traceparent = header(&normalized[0], "traceparent").expect("traceparent");
    assert_eq!(
        traceparent.split('-').nth(1),
        Some(ingest_trace),
        "the trace of the ingest-meta field, as normalize's fields: {traceparent}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn an_empty_or_fieldless_ingest_meta_is_a_dead_letter_naming_the_field() {
    let pipeline = Pipeline::start("meta_malformed").await;
    let body = fixture("generic/property.created.json");
    let now = (unix_now() * 1000).to_string();
    let cases = [
        (String::new(), "source"),
        (format!("source=generic&received-at={now}"), "provider"),
        ("%zz&&=&source".to_string(), "provider"),
    ];
    let records: Vec<OutRecord> = cases
        .iter()
        .map(|(meta, _)| raw_record(&pipeline, body.clone()).header("ingest-meta", meta.as_str()))
        .collect();
    pipeline.produce(&records).await;
    // A good record after them still lands: the stage went on.
    let good = common::ingest_meta::encode([
        ("source", "generic"),
        ("provider", "generic"),
        ("received-at", now.as_str()),
    ]);
    pipeline
        .produce(&[raw_record(&pipeline, body.clone()).header("ingest-meta", good)])
        .await;
    let rows = pipeline
        .wait_for_count(EVENT_ROWS, 1, Duration::from_secs(30))
        .await;
    assert_eq!(rows, 1, "{}", pipeline.all_logs());

    let dead = pipeline
        .wait_for_records(&pipeline.topics.dlq(), cases.len(), Duration::from_secs(10))
        .await;
    assert_eq!(dead.len(), cases.len());
    for (meta, missing) in &cases {
        // (The DLQ's partitions do not keep the order; an empty value may
        // come back as a null one.)
        let letter = dead
            .iter()
            .find(|l| header(l, "ingest-meta").unwrap_or_default() == *meta)
            .unwrap_or_else(|| panic!("a dead letter keeping ingest-meta {meta:?}"));
        assert_eq!(header(letter, "error.stage").as_deref(), Some("normalize"));
        assert_eq!(
            header(letter, "error.kind").as_deref(),
            Some("missing_header")
        );
        let message = header(letter, "error.message").expect("error.message");
        assert!(
            message.contains(&format!("`{missing}`")) && message.contains("ingest-meta"),
            "{meta:?}: {message}"
        );
        assert_eq!(letter.payload(), Some(body.as_slice()));
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn replay_recovers_a_one_header_dead_letter() {
    let pipeline = Pipeline::start("meta_replay").await;
    let meta = common::ingest_meta::encode([
        ("source", "stream-estate"),
        ("provider", "stream-estate"),
        ("received-at", &(unix_now() * 1000).to_string()),
    ]);
    let letter = OutRecord {
        topic: pipeline.topics.dlq(),
        partition: Some(0),
        key: None,
        payload: Some(fixture("stream-estate/ad.update.price.json")),
        headers: Vec::new(),
    }
    .header("ingest-meta", meta)
    .header("error.stage", "normalize")
    .header("error.kind", "unknown_provider")
    .header("error.message", "no parser for provider `stream-estate`")
    .header("topic", pipeline.topics.raw())
    .header("partition", "0")
    .header("offset", "41");
    pipeline.produce(&[letter]).await;

    let output = pipeline.normalize_replay("meta-1", &[]);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success() && stdout.contains("read 1 records, recovered 1"),
        "{stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let rows = pipeline
        .wait_for_count(
            "SELECT count(*) FROM property_events WHERE source = 'stream-estate' AND raw_offset = 41",
            1,
            Duration::from_secs(30),
        )
        .await;
    assert_eq!(rows, 1, "{}", pipeline.all_logs());
}
