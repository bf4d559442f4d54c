//! The subscribers' contract (`contract/asyncapi.json`) against the records
//! the running pipeline actually writes: a webhook, its duplicate and one
//! that is dead-lettered go through every stage, then every record on every
//! topic is held to its channel's message. Each carries the headers the
//! document marks required, and none it does not name (a dead letter may
//! copy the failed record's, as its message says; a raw record's
//! `ingest-meta` fields are the raw message's documented properties), in
//! both raw layouts (`raw_metadata = "headers"` too) and for events
//! re-driven by `normalize replay`. A header a stage adds or drops without
//! the document saying so fails here, where `contract/tests/asyncapi.rs`
//! only compares names in code.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use common::ingest_meta::IngestMeta;
use pipeline_tests::{Pipeline, fixture, header};
use rdkafka::Message as _;
use rdkafka::message::{Headers as _, OwnedMessage};
use serde_json::Value;

/// What a channel's message allows in its headers.
#[derive(Debug, Default)]
struct HeaderRules {
    required: BTreeSet<String>,
    documented: BTreeSet<String>,
    /// `additionalProperties` is a schema: any other header may appear.
    open: bool,
}

fn document() -> Value {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../contract/asyncapi.json");
    let text = std::fs::read_to_string(path).expect("contract/asyncapi.json");
    serde_json::from_str(&text).expect("asyncapi.json is JSON")
}

/// Follows a local `$ref` (`#/components/...`) if `value` is one.
fn resolve<'a>(document: &'a Value, value: &'a Value) -> &'a Value {
    match value.get("$ref").and_then(Value::as_str) {
        Some(pointer) => document
            .pointer(pointer.trim_start_matches('#'))
            .unwrap_or_else(|| panic!("dangling $ref {pointer}")),
        None => value,
    }
}

fn strings(value: Option<&Value>) -> BTreeSet<String> {
    value
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default()
}

/// Per topic address, per message name, its header rules and whether it
/// is a tombstone (a message whose payload is documented as null).
fn rules_by_address(document: &Value) -> BTreeMap<String, Vec<(String, bool, HeaderRules)>> {
    let channels = document["channels"].as_object().expect("channels");
    let mut out = BTreeMap::new();
    for channel in channels.values() {
        let address = channel["address"].as_str().expect("address").to_string();
        let mut messages = Vec::new();
        for (name, message) in channel["messages"].as_object().expect("messages") {
            let message = resolve(document, message);
            let headers = message
                .get("headers")
                .map(|h| resolve(document, h))
                .cloned()
                .unwrap_or(Value::Null);
            let payload = message
                .get("payload")
                .map(|p| resolve(document, p))
                .cloned()
                .unwrap_or(Value::Null);
            let tombstone = payload.get("type").and_then(Value::as_str) == Some("null");
            let rules = HeaderRules {
                required: strings(headers.get("required")),
                documented: headers
                    .get("properties")
                    .and_then(Value::as_object)
                    .map(|p| p.keys().cloned().collect())
                    .unwrap_or_default(),
                open: headers
                    .get("additionalProperties")
                    .is_some_and(|a| a.is_object() || a == &Value::Bool(true)),
            };
            messages.push((name.clone(), tombstone, rules));
        }
        let _ = out.insert(address, messages);
    }
    out
}

fn header_names(message: &OwnedMessage) -> Vec<(String, Vec<u8>)> {
    message
        .headers()
        .map(|headers| {
            headers
                .iter()
                .map(|h| (h.key.to_string(), h.value.unwrap_or_default().to_vec()))
                .collect()
        })
        .unwrap_or_default()
}

/// What is wrong with `record` (at `where_`) against its channel's messages.
fn problems_of(
    where_: &str,
    record: &OwnedMessage,
    messages: &[(String, bool, HeaderRules)],
) -> Vec<String> {
    let is_tombstone = record.payload().is_none();
    let Some((name, _, rules)) = messages
        .iter()
        .find(|(_, tombstone, _)| *tombstone == is_tombstone)
        .or_else(|| messages.first())
    else {
        return vec![format!("{where_}: the channel documents no message")];
    };
    let headers = header_names(record);
    let mut problems = Vec::new();
    let mut seen = BTreeSet::new();
    for (key, value) in &headers {
        if !seen.insert(key.clone()) {
            problems.push(format!("{where_} ({name}): header {key} appears twice"));
        }
        if !rules.open && !rules.documented.contains(key) {
            problems.push(format!(
                "{where_} ({name}): header {key} is not in the contract (documented: {:?})",
                rules.documented
            ));
        }
        // On the raw channel its fields are the message's properties; a
        // dead letter's copy is one of the failed record's headers.
        if key == common::headers::INGEST_META && rules.documented.contains(key) {
            for (field, _) in IngestMeta::parse(value).fields() {
                if !rules.documented.contains(field) {
                    problems.push(format!(
                        "{where_} ({name}): ingest-meta field {field} is not in the contract"
                    ));
                }
            }
        }
    }
    for key in &rules.required {
        if !seen.contains(key) {
            problems.push(format!(
                "{where_} ({name}): required header {key} is missing (has {seen:?})"
            ));
        }
    }
    problems
}

/// Waits until each topic holds at least its count of records, then holds
/// every record on them to the contract; panics listing every breach.
async fn assert_records_match_the_contract(pipeline: &Pipeline, at_least: [usize; 6]) {
    let topics = &pipeline.topics;
    let expected = [
        ("webhooks.raw", topics.raw(), at_least[0]),
        ("webhooks.dlq", topics.dlq(), at_least[1]),
        ("properties.normalized", topics.normalized(), at_least[2]),
        ("dedupe.seen", topics.seen(), at_least[3]),
        ("properties.events", topics.events(), at_least[4]),
        ("properties.latest", topics.latest(), at_least[5]),
    ];
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let short: Vec<String> = expected
            .iter()
            .filter_map(|(address, topic, at_least)| {
                let n = pipeline.read_topic(topic).len();
                (n < *at_least).then(|| format!("{address}: {n} of {at_least}"))
            })
            .collect();
        if short.is_empty() {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "records missing: {short:?}\n{}",
            pipeline.all_logs()
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }

    let document = document();
    let rules = rules_by_address(&document);
    let mut problems = Vec::new();
    for (address, topic, _) in expected {
        let Some(messages) = rules.get(address) else {
            problems.push(format!("{address}: no channel in the contract"));
            continue;
        };
        for record in pipeline.read_topic(&topic) {
            let where_ = format!("{address}/{}@{}", record.partition(), record.offset());
            problems.extend(problems_of(&where_, &record, messages));
        }
    }
    assert!(
        problems.is_empty(),
        "records that break contract/asyncapi.json:\n{}",
        problems.join("\n")
    );
}

async fn wait_for_rows(pipeline: &Pipeline, rows: i64) {
    let landed = pipeline
        .wait_for_count(
            "SELECT count(*) FROM property_events",
            rows,
            Duration::from_secs(60),
        )
        .await;
    assert_eq!(landed, rows, "{}", pipeline.all_logs());
}

#[tokio::test(flavor = "multi_thread")]
async fn every_record_on_every_topic_has_the_headers_its_channel_documents() {
    let pipeline = Pipeline::start("records_contract").await;
    pipeline.deliver_event_duplicate_and_dead_letter().await;
    wait_for_rows(&pipeline, 1).await;
    // The three raw records, the dead letter, the two normalized copies,
    // the seen key, the forwarded event and the property's state.
    assert_records_match_the_contract(&pipeline, [3, 1, 2, 1, 1, 1]).await;
}

/// The other layouts the contract documents: the raw record's metadata as
/// a header per field (`raw_metadata = "headers"`), and events re-driven
/// from the dead letters by `normalize replay` (with `replay-id`).
#[tokio::test(flavor = "multi_thread")]
async fn header_per_field_and_replayed_records_keep_to_the_contract_too() {
    let pipeline = Pipeline::start_with_env(
        "records_contract_layouts",
        &[("INGEST__RAW_METADATA", "headers")],
    )
    .await;
    pipeline.deliver_event_duplicate_and_dead_letter().await;
    wait_for_rows(&pipeline, 1).await;
    // A dead letter a parser fix now reads, as an older normalize left it.
    let topics = &pipeline.topics;
    pipeline
        .produce(&[pipeline.dead_letter(
            "stream-estate",
            "normalize",
            fixture("stream-estate/ad.update.price.json"),
        )])
        .await;
    let output = pipeline.normalize_replay("contract-1", &[]);
    assert!(
        output.status.success(),
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    wait_for_rows(&pipeline, 2).await;
    let replayed = pipeline
        .read_topic(&topics.events())
        .iter()
        .filter(|m| header(m, "replay-id").as_deref() == Some("contract-1"))
        .count();
    assert_eq!(replayed, 1, "the replayed event carries its replay-id");
    assert_records_match_the_contract(&pipeline, [3, 2, 3, 2, 2, 2]).await;
}
