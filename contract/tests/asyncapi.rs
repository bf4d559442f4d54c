//! Holds `contract/asyncapi.json`, the subscribers' contract, to what the
//! code and the topic catalogue say, without a broker:
//!
//! - every topic of `config/topics.toml` is a channel of the same address,
//!   partition count and topic configuration (`cleanup.policy`,
//!   `retention.ms`, ...), and no channel names a topic that is not there;
//! - every header constant of `contract::headers` is named on at least one
//!   channel's messages, and every header the document names is one of them;
//! - operations point at channels that exist, and Avro messages name a
//!   `<topic>-value` subject of a catalogued topic and the `.avsc` file
//!   their payload refers to.
//!
//! Each check collects everything it finds wrong, so a failure lists what
//! is missing and where it goes.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use serde_json::Value;

/// The contract crate's directory.
fn crate_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
}

/// The AsyncAPI document.
fn document() -> Value {
    let path = crate_dir().join("asyncapi.json");
    serde_json::from_str(&read(&path))
        .unwrap_or_else(|e| panic!("{} is not JSON: {e}", path.display()))
}

/// One topic of the catalogue: partitions and configs.
#[derive(Debug)]
struct Topic {
    partitions: i64,
    config: BTreeMap<String, String>,
}

/// `config/topics.toml`, by topic name.
fn catalogue() -> BTreeMap<String, Topic> {
    let path = crate_dir().join("../config/topics.toml");
    let parsed: toml::Value = toml::from_str(&read(&path))
        .unwrap_or_else(|e| panic!("{} does not parse: {e}", path.display()));
    let topics = parsed
        .get("topics")
        .and_then(toml::Value::as_array)
        .unwrap_or_else(|| panic!("{} has no [[topics]]", path.display()));
    topics
        .iter()
        .map(|topic| {
            let name = topic
                .get("name")
                .and_then(toml::Value::as_str)
                .unwrap_or_else(|| panic!("a topic of {} has no name", path.display()));
            let partitions = topic
                .get("partitions")
                .and_then(toml::Value::as_integer)
                .unwrap_or_else(|| panic!("topic {name} has no partitions"));
            let config = topic
                .get("config")
                .and_then(toml::Value::as_table)
                .map(|table| {
                    table
                        .iter()
                        .map(|(k, v)| (k.clone(), v.as_str().map_or(v.to_string(), str::to_string)))
                        .collect()
                })
                .unwrap_or_default();
            (name.to_string(), Topic { partitions, config })
        })
        .collect()
}

/// The constants of `contract/src/headers.rs`: name → header name. Read
/// from the source, so a constant added there is seen here without a list
/// kept by hand.
fn header_constants() -> BTreeMap<String, String> {
    let path = crate_dir().join("src/headers.rs");
    let mut constants = BTreeMap::new();
    for (number, line) in read(&path).lines().enumerate() {
        let Some(rest) = line.trim().strip_prefix("pub const ") else {
            continue;
        };
        let parsed = rest.split_once(": &str = \"").and_then(|(name, value)| {
            value
                .strip_suffix("\";")
                .map(|value| (name.to_string(), value.to_string()))
        });
        let Some((name, value)) = parsed else {
            panic!(
                "{}:{}: not a `pub const NAME: &str = \"...\";` this test can read: {line}",
                path.display(),
                number + 1
            );
        };
        let _ = constants.insert(name, value);
    }
    constants
}

/// `value`, or what its local `$ref` (`#/...`) points at, followed until
/// it is not a reference. Non-local references (the `.avsc` files) are
/// left as they are.
fn resolve<'a>(document: &'a Value, value: &'a Value) -> &'a Value {
    let mut current = value;
    for _ in 0..16 {
        match current.get("$ref").and_then(Value::as_str) {
            Some(pointer) if pointer.starts_with("#/") => {
                current = document
                    .pointer(&pointer[1..])
                    .unwrap_or_else(|| panic!("$ref {pointer} points at nothing"));
            }
            _ => return current,
        }
    }
    panic!("$ref chain too long from {value}")
}

/// The header names a headers schema declares (its `properties`, also
/// through `$ref` and `allOf`).
fn header_properties(document: &Value, headers: &Value, out: &mut Vec<String>) {
    let headers = resolve(document, headers);
    if let Some(properties) = headers.get("properties").and_then(Value::as_object) {
        out.extend(properties.keys().cloned());
    }
    for part in headers
        .get("allOf")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        header_properties(document, part, out);
    }
}

/// The channels: id → channel object.
fn channels(document: &Value) -> &serde_json::Map<String, Value> {
    document
        .get("channels")
        .and_then(Value::as_object)
        .expect("the document has channels")
}

/// A channel's messages, resolved: (message id, message).
fn messages<'a>(document: &'a Value, channel: &'a Value) -> Vec<(&'a str, &'a Value)> {
    channel
        .get("messages")
        .and_then(Value::as_object)
        .map(|messages| {
            messages
                .iter()
                .map(|(id, message)| (id.as_str(), resolve(document, message)))
                .collect()
        })
        .unwrap_or_default()
}

/// Every header the document names: header name → the channels (by
/// address) whose messages carry it.
fn documented_headers(document: &Value) -> BTreeMap<String, BTreeSet<String>> {
    let mut found: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (id, channel) in channels(document) {
        let address = channel.get("address").and_then(Value::as_str).unwrap_or(id);
        for (_, message) in messages(document, channel) {
            let Some(headers) = message.get("headers") else {
                continue;
            };
            let mut properties = Vec::new();
            header_properties(document, headers, &mut properties);
            for name in properties {
                let _ = found.entry(name).or_default().insert(address.to_string());
            }
        }
    }
    found
}

/// Fails with every problem found, one a line.
fn assert_none(what: &str, problems: &[String]) {
    assert!(
        problems.is_empty(),
        "contract/asyncapi.json {what}:\n  - {}",
        problems.join("\n  - ")
    );
}

#[test]
fn the_document_is_asyncapi_3() {
    let document = document();
    let version = document.get("asyncapi").and_then(Value::as_str);
    assert!(
        version.is_some_and(|v| v.starts_with("3.")),
        "`asyncapi` must be a 3.x version, found {version:?}"
    );
    for field in ["info", "channels", "operations", "components"] {
        assert!(document.get(field).is_some(), "no `{field}`");
    }
}

#[test]
fn every_catalogued_topic_is_a_channel_with_its_policy_and_no_other() {
    let document = document();
    let catalogue = catalogue();
    let mut problems = Vec::new();
    let mut by_address: BTreeMap<String, Vec<&str>> = BTreeMap::new();
    for (id, channel) in channels(&document) {
        match channel.get("address").and_then(Value::as_str) {
            Some(address) => by_address.entry(address.to_string()).or_default().push(id),
            None => problems.push(format!("channel `{id}` has no `address`")),
        }
    }
    for (address, ids) in &by_address {
        if !catalogue.contains_key(address) {
            problems.push(format!(
                "channel(s) {ids:?} for topic `{address}`, which config/topics.toml does not define"
            ));
        }
        if ids.len() > 1 {
            problems.push(format!("topic `{address}` has several channels: {ids:?}"));
        }
    }
    for (name, topic) in &catalogue {
        let Some(ids) = by_address.get(name) else {
            problems.push(format!(
                "no channel for topic `{name}` of config/topics.toml: add one with \"address\": \"{name}\""
            ));
            continue;
        };
        let id = ids[0];
        let kafka = &channels(&document)[id]["bindings"]["kafka"];
        if kafka.is_null() {
            problems.push(format!("channel `{id}` (`{name}`) has no `bindings.kafka`"));
            continue;
        }
        if kafka["topic"].as_str() != Some(name.as_str()) {
            problems.push(format!(
                "channel `{id}`: bindings.kafka.topic is {}, not \"{name}\"",
                kafka["topic"]
            ));
        }
        if kafka["partitions"].as_i64() != Some(topic.partitions) {
            problems.push(format!(
                "channel `{id}` (`{name}`): bindings.kafka.partitions is {}, config/topics.toml says {}",
                kafka["partitions"], topic.partitions
            ));
        }
        let documented: BTreeMap<String, String> = kafka["topicConfiguration"]
            .as_object()
            .map(|configs| {
                configs
                    .iter()
                    .map(|(key, value)| (key.clone(), config_text(value)))
                    .collect()
            })
            .unwrap_or_default();
        for (key, value) in &topic.config {
            match documented.get(key) {
                Some(found) if found == value => {}
                Some(found) => problems.push(format!(
                    "channel `{id}` (`{name}`): topicConfiguration `{key}` is {found}, config/topics.toml says {value}"
                )),
                None => problems.push(format!(
                    "channel `{id}` (`{name}`): topicConfiguration lacks `{key}` = {value} (config/topics.toml)"
                )),
            }
        }
        for key in documented
            .keys()
            .filter(|key| !topic.config.contains_key(*key))
        {
            problems.push(format!(
                "channel `{id}` (`{name}`): topicConfiguration `{key}` is not in config/topics.toml"
            ));
        }
    }
    assert_none("and config/topics.toml disagree", &problems);
}

/// A topic configuration value as topics.toml writes it: a list
/// (`cleanup.policy`) joined with commas, a number in decimal.
fn config_text(value: &Value) -> String {
    match value {
        Value::String(text) => text.clone(),
        Value::Array(items) => items.iter().map(config_text).collect::<Vec<_>>().join(","),
        other => other.to_string(),
    }
}

#[test]
fn every_header_constant_is_documented_and_every_documented_header_exists() {
    let document = document();
    let constants = header_constants();
    assert!(
        constants.get("TRACEPARENT").map(String::as_str) == Some(contract::headers::TRACEPARENT),
        "the reading of src/headers.rs is wrong: {constants:?}"
    );
    let documented = documented_headers(&document);
    let mut problems: Vec<String> = constants
        .iter()
        .filter(|(_, header)| !documented.contains_key(*header))
        .map(|(constant, header)| {
            format!(
                "header `{header}` (contract::headers::{constant}) is on no channel: add it to the `headers` of the messages of the topics it is written on"
            )
        })
        .collect();
    let known: BTreeSet<&String> = constants.values().collect();
    problems.extend(
        documented
            .iter()
            .filter(|(header, _)| !known.contains(header))
            .map(|(header, channels)| {
                format!(
                    "header `{header}` (on {channels:?}) is no constant of contract/src/headers.rs"
                )
            }),
    );
    assert_none("and contract::headers disagree", &problems);
}

#[test]
fn operations_and_schemas_point_at_what_exists() {
    let document = document();
    let catalogue = catalogue();
    let mut problems = Vec::new();
    let operations = document["operations"]
        .as_object()
        .cloned()
        .unwrap_or_default();
    for (id, operation) in &operations {
        let target = operation["channel"]["$ref"].as_str().unwrap_or_default();
        let exists = target
            .strip_prefix('#')
            .and_then(|pointer| document.pointer(pointer))
            .is_some_and(|channel| channel.get("address").is_some());
        if !exists {
            problems.push(format!(
                "operation `{id}`: channel {target:?} is no channel"
            ));
        }
        if !matches!(operation["action"].as_str(), Some("send" | "receive")) {
            problems.push(format!("operation `{id}`: action must be send or receive"));
        }
    }
    for (id, channel) in channels(&document) {
        for (message_id, message) in messages(&document, channel) {
            if let Some(subject) = message.get("x-schema-subject").and_then(Value::as_str) {
                let topic = subject.strip_suffix("-value").unwrap_or_default();
                if !catalogue.contains_key(topic) {
                    problems.push(format!(
                        "channel `{id}`, message `{message_id}`: subject `{subject}` is not `<topic>-value` of a topic of config/topics.toml"
                    ));
                }
            }
            if let Some(file) = message.get("x-schema-file").and_then(Value::as_str) {
                let reference = message["payload"]["schema"]["$ref"].as_str();
                if reference != Some(format!("../{file}").as_str()) {
                    problems.push(format!(
                        "channel `{id}`, message `{message_id}`: payload.schema.$ref is {reference:?}, x-schema-file says {file}"
                    ));
                }
                if !file.starts_with("schemas/avro/") || !file.ends_with(".avsc") {
                    problems.push(format!(
                        "channel `{id}`, message `{message_id}`: x-schema-file {file} is not a schemas/avro/*.avsc"
                    ));
                }
            }
        }
    }
    assert_none("points at what is not there", &problems);
}
