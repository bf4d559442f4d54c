//! Kafka client settings shared by every stage.
//!
//! One place decides the settings the delivery guarantees depend on: producers
//! are idempotent with `acks=all` and a long `message.timeout.ms` (callers bound
//! their own waits instead), consumers never auto-commit and fetch with a short
//! `fetch.wait.max.ms` so each hop adds little latency. The largest record a
//! producer may send is explicit (`message_max_bytes`), so a stage can check
//! its outputs against it before sending. Anything else can be set per
//! service under `[kafka.properties]` in its config file.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::time::Duration;

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Headers, Message};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};
use serde::Deserialize;

use crate::property_values::check_property_value;

/// What a group consumer's fetch asks for before it is answered
/// (`fetch.min.bytes`, see [`KafkaSettings::consumer`]); overridable under
/// `[kafka.properties]`.
pub const CONSUMER_FETCH_MIN_BYTES: &str = "16384";

/// Connection settings for the Kafka cluster.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KafkaSettings {
    /// Bootstrap servers, comma separated.
    #[serde(default = "default_brokers")]
    pub brokers: String,
    /// Largest record a producer may send, in bytes as librdkafka counts
    /// them (key + value + headers + framing, see
    /// `common::produce::OutRecord::wire_size`), applied to producers as
    /// `message.max.bytes`. Stages check their outputs against it before
    /// sending. At least [`MIN_MESSAGE_MAX_BYTES`].
    #[serde(
        default = "default_message_max_bytes",
        deserialize_with = "message_max_bytes_in_range"
    )]
    pub message_max_bytes: usize,
    /// Extra librdkafka properties applied last (e.g. `security.protocol`).
    /// The settings the delivery guarantees rest on cannot be set here
    /// ([`PROTECTED_PROPERTIES`]): a config that tries is refused at load.
    #[serde(default, deserialize_with = "unprotected_properties")]
    pub properties: BTreeMap<String, String>,
}

/// The smallest `message_max_bytes` accepted: room for a dead letter's
/// error and origin headers even when its payload is dropped.
pub const MIN_MESSAGE_MAX_BYTES: usize = 4096;

/// 2 MiB, the `max.message.bytes` of every topic in config/topics.toml: a
/// 1 MiB body with its headers fits, and so does what each stage makes of
/// it.
fn default_message_max_bytes() -> usize {
    2 * 1024 * 1024
}

fn message_max_bytes_in_range<'de, D: serde::Deserializer<'de>>(d: D) -> Result<usize, D::Error> {
    let value = usize::deserialize(d)?;
    // librdkafka's own upper bound for `message.max.bytes`.
    if !(MIN_MESSAGE_MAX_BYTES..=1_000_000_000).contains(&value) {
        return Err(serde::de::Error::custom(format!(
            "`message_max_bytes` is {value}; it must be from {MIN_MESSAGE_MAX_BYTES} to 1000000000"
        )));
    }
    Ok(value)
}

/// Refuses `message.max.bytes` in `[kafka.properties]`: the size limit is
/// `message_max_bytes`, which the stages also check their outputs against,
/// so it must not be overridden behind their back.
pub fn refuse_size_limit_override(properties: &BTreeMap<String, String>) -> Result<(), String> {
    if properties.contains_key("message.max.bytes") {
        return Err(
            "`[kafka.properties]` sets `message.max.bytes`: set `message_max_bytes` \
                    in `[kafka]` instead (e.g. NORMALIZE__KAFKA__MESSAGE_MAX_BYTES), the limit \
                    the stages check their outputs against"
                .to_string(),
        );
    }
    Ok(())
}

/// librdkafka properties `[kafka.properties]` may not set, with the reason:
/// the delivery guarantees of every stage depend on them.
pub const PROTECTED_PROPERTIES: [(&str, &str); 8] = [
    (
        "acks",
        "producers wait for every in-sync replica (acks=all)",
    ),
    (
        "request.required.acks",
        "producers wait for every in-sync replica (acks=all)",
    ),
    (
        "enable.idempotence",
        "producers are idempotent, so a retry never writes a record twice",
    ),
    (
        "enable.auto.commit",
        "offsets are committed only after the outputs are acknowledged",
    ),
    (
        "auto.commit.enable",
        "offsets are committed only after the outputs are acknowledged",
    ),
    (
        "enable.auto.offset.store",
        "offsets are committed only after the outputs are acknowledged",
    ),
    (
        "auto.offset.reset",
        "a partition without a committed offset is read from its beginning (earliest): \
         `latest` would skip records already acknowledged upstream",
    ),
    (
        "isolation.level",
        "consumers and restores read only committed records (read_committed): a restore \
         that read an aborted output would take its input as forwarded and drop it",
    ),
];

/// The reason `key` may not be overridden, if it is protected.
pub fn protected_property(key: &str) -> Option<&'static str> {
    let key = key.trim().to_ascii_lowercase();
    // librdkafka also takes topic properties with a `topic.` prefix.
    let key = key.strip_prefix("topic.").unwrap_or(&key);
    PROTECTED_PROPERTIES
        .iter()
        .find(|(name, _)| *name == key)
        .map(|(_, why)| *why)
}

fn unprotected_properties<'de, D>(deserializer: D) -> Result<BTreeMap<String, String>, D::Error>
where
    D: serde::Deserializer<'de>,
{
    // Environment overrides arrive as TOML scalars (`..._LINGER.MS=100` is
    // the integer 100): librdkafka takes every value as text, so numbers
    // and booleans are taken as their text too.
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Scalar {
        Text(String),
        Integer(i64),
        Float(f64),
        Boolean(bool),
    }
    let properties: BTreeMap<String, String> =
        BTreeMap::<String, Scalar>::deserialize(deserializer)?
            .into_iter()
            .map(|(key, value)| {
                let value = match value {
                    Scalar::Text(text) => text,
                    Scalar::Integer(n) => n.to_string(),
                    Scalar::Float(x) => x.to_string(),
                    Scalar::Boolean(b) => b.to_string(),
                };
                (key, value)
            })
            .collect();
    for key in properties.keys() {
        if let Some(why) = protected_property(key) {
            return Err(serde::de::Error::custom(format!(
                "`[kafka.properties]` cannot set `{key}`: {why}"
            )));
        }
    }
    refuse_size_limit_override(&properties).map_err(serde::de::Error::custom)?;
    for (key, value) in &properties {
        check_property_value(key, value).map_err(serde::de::Error::custom)?;
    }
    Ok(properties)
}

fn default_brokers() -> String {
    "127.0.0.1:9092".to_string()
}

impl Default for KafkaSettings {
    fn default() -> Self {
        Self {
            brokers: default_brokers(),
            message_max_bytes: default_message_max_bytes(),
            properties: BTreeMap::new(),
        }
    }
}

impl KafkaSettings {
    /// Settings common to every client.
    pub fn client(&self) -> ClientConfig {
        let mut config = ClientConfig::new();
        let _ = config
            .set("bootstrap.servers", &self.brokers)
            .set("socket.keepalive.enable", "true");
        config
    }

    /// Producer settings: idempotent, `acks=all`, long delivery timeout,
    /// records up to `message_max_bytes`, 2 ms of linger.
    pub fn producer(&self) -> ClientConfig {
        self.producer_lingering("2")
    }

    /// [`KafkaSettings::producer`] with `linger_ms` of linger (a decimal
    /// number of milliseconds); `[kafka.properties]` still wins. Ingest
    /// groups records itself and sends them at once (`linger.ms` 0): on
    /// the local broker a lone record's round trip took 3.6 ms at 2 ms of
    /// linger and 1.3 ms without (BENCHMARKS.md).
    pub fn producer_lingering(&self, linger_ms: &str) -> ClientConfig {
        let mut config = self.client();
        let _ = config
            .set("message.max.bytes", self.message_max_bytes.to_string())
            .set("enable.idempotence", "true")
            .set("acks", "all")
            .set("message.timeout.ms", "300000")
            .set("linger.ms", linger_ms)
            .set("compression.type", "none");
        self.apply_overrides(&mut config);
        config
    }

    /// Consumer settings for `group`: manual commits, and an empty fetch
    /// held for up to 100 ms. Apache Kafka answers a held fetch as soon as
    /// records arrive. nisshi re-reads storage after half the remaining
    /// wait, then half again, so a record landing during a held fetch waits
    /// up to half the wait (`bench/probes/fetch_wait.py`, one record every
    /// 50 ms: p50 138 ms per hop at 500 ms, 33 ms at 100 ms, 11 ms at
    /// 50 ms). Shorter waits cost nisshi CPU in empty fetches: three idle
    /// consumers took 10 % of a core at 500 ms, 26 % at 100 ms and 84 % at
    /// 10 ms. At 1,000 webhooks/s end to end, 100 ms gave a p50 of 0.63 s
    /// against 0.97–1.05 s at 500 ms.
    ///
    /// A fetch also asks for [`CONSUMER_FETCH_MIN_BYTES`] before it is
    /// answered. nisshi answers a fetch the moment it holds any record, so
    /// under load each consumer fetched again and again a few records at a
    /// time, and every fetch is a round of SQL per partition on the durable
    /// broker: the broker's queue made every produce acknowledgement, so
    /// every stage's batch, slower. Asking for 16 KiB lets a fetch gather
    /// up to half the wait of records instead (BENCHMARKS.md, "Consumers
    /// gather their fetches": arrival→commit p99 at 1,000/s on `sqlite://`
    /// from 434–573 ms to 297–364 ms, interleaved runs). When traffic is
    /// light a fetch is answered at the end of the wait instead of at its
    /// next read of storage, so a hop can take up to 100 ms; on Apache
    /// Kafka, up to the time 16 KiB take to arrive.
    pub fn consumer(&self, group: &str) -> ClientConfig {
        let mut config = self.client();
        let _ = config
            .set("group.id", group)
            .set("enable.auto.commit", "false")
            .set("enable.auto.offset.store", "false")
            .set("auto.offset.reset", "earliest")
            .set("session.timeout.ms", "10000")
            .set("fetch.wait.max.ms", "100")
            .set("fetch.min.bytes", CONSUMER_FETCH_MIN_BYTES)
            .set("enable.partition.eof", "false");
        self.apply_overrides(&mut config);
        config
    }

    /// Settings for a group-less reader (state restoration, tests).
    pub fn reader(&self) -> ClientConfig {
        let mut config = self.client();
        let _ = config
            .set("group.id", "unused-assign-only")
            .set("enable.auto.commit", "false")
            .set("enable.auto.offset.store", "false")
            .set("fetch.wait.max.ms", "10")
            .set("enable.partition.eof", "true");
        self.apply_overrides(&mut config);
        config
    }

    fn apply_overrides(&self, config: &mut ClientConfig) {
        for (key, value) in &self.properties {
            let _ = config.set(key, value);
        }
    }
}

/// The offset to commit once `message` is fully processed: its partition at
/// the next offset.
pub fn offset_after<M: Message>(message: &M) -> rdkafka::error::KafkaResult<TopicPartitionList> {
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(
        message.topic(),
        message.partition(),
        Offset::Offset(message.offset() + 1),
    )?;
    Ok(tpl)
}

/// The offsets to commit once every record of `messages` is fully
/// processed: for each partition, the one after the highest offset seen.
pub fn offsets_after_all<'a, M: Message + 'a>(
    messages: impl IntoIterator<Item = &'a M>,
) -> rdkafka::error::KafkaResult<TopicPartitionList> {
    let mut next: BTreeMap<(&str, i32), i64> = BTreeMap::new();
    for message in messages {
        let slot = next
            .entry((message.topic(), message.partition()))
            .or_insert(0);
        *slot = (*slot).max(message.offset() + 1);
    }
    let mut tpl = TopicPartitionList::new();
    for ((topic, partition), offset) in next {
        tpl.add_partition_offset(topic, partition, Offset::Offset(offset))?;
    }
    Ok(tpl)
}

/// `(partition, offset)` pairs of `topic` as a list (offsets to commit, or
/// to seek to).
pub fn offsets_list(
    topic: &str,
    offsets: &[(i32, i64)],
) -> rdkafka::error::KafkaResult<TopicPartitionList> {
    let mut tpl = TopicPartitionList::new();
    for &(partition, offset) in offsets {
        tpl.add_partition_offset(topic, partition, Offset::Offset(offset))?;
    }
    Ok(tpl)
}

/// `partitions` of `topic` as a list, without offsets (to pause, resume or
/// ask the committed offsets of).
pub fn partition_list(topic: &str, partitions: &[i32]) -> TopicPartitionList {
    let mut tpl = TopicPartitionList::new();
    for &partition in partitions {
        let _ = tpl.add_partition(topic, partition);
    }
    tpl
}

/// How a consume-produce stage groups records: it reads up to `max_records`,
/// waiting at most `max_wait_ms` after the first for more, produces all
/// their outputs, waits for every acknowledgement once, then commits.
/// One round trip per batch instead of per record is what lets a stage keep
/// up with a broker whose acknowledgement takes milliseconds.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct BatchSettings {
    /// Most records per batch.
    #[serde(default = "default_batch_max_records")]
    pub max_records: usize,
    /// Longest wait for more records after the first, ms (adds at most
    /// this much latency when traffic is light).
    #[serde(default = "default_batch_max_wait_ms")]
    pub max_wait_ms: u64,
}

fn default_batch_max_records() -> usize {
    500
}
fn default_batch_max_wait_ms() -> u64 {
    5
}

impl Default for BatchSettings {
    fn default() -> Self {
        Self {
            max_records: default_batch_max_records(),
            max_wait_ms: default_batch_max_wait_ms(),
        }
    }
}

impl BatchSettings {
    /// The wait as a duration.
    pub fn max_wait(&self) -> Duration {
        Duration::from_millis(self.max_wait_ms)
    }

    /// At least one record per batch, whatever the configuration says.
    pub fn max_records(&self) -> usize {
        self.max_records.max(1)
    }
}

/// The value of header `name` on `message`, if present and UTF-8.
pub fn header_str<'a, M: Message>(message: &'a M, name: &str) -> Option<&'a str> {
    let headers = message.headers()?;
    headers
        .iter()
        .find(|h| h.key == name)
        .and_then(|h| h.value)
        .and_then(|v| std::str::from_utf8(v).ok())
}

/// Ingest's metadata on a raw record, read once: from its
/// [`crate::headers::INGEST_META`] header when the record has one
/// (`contract::ingest_meta`), else from the headers named as the fields
/// (records of an ingest writing one header per field, and those written
/// before the one header existed). A record with both is read from its
/// `ingest-meta` header alone, by every reader (normalize, its replay, the
/// trace a stage continues: [`raw_field`]), so they never disagree on it.
#[derive(Debug, Clone, Default)]
pub struct RawFields<'a> {
    packed: Option<crate::ingest_meta::IngestMeta<'a>>,
    separate: Vec<(&'a str, &'a str)>,
}

impl<'a> RawFields<'a> {
    /// The metadata of `message`.
    pub fn of<M: Message>(message: &'a M) -> Self {
        let Some(headers) = message.headers() else {
            return Self::default();
        };
        match ingest_meta_value(headers) {
            Some(value) => Self {
                packed: Some(crate::ingest_meta::IngestMeta::parse(value)),
                separate: Vec::new(),
            },
            None => Self {
                packed: None,
                separate: headers
                    .iter()
                    .filter_map(|h| Some((h.key, std::str::from_utf8(h.value?).ok()?)))
                    .collect(),
            },
        }
    }

    /// Field `name` (a header name of [`crate::headers`]), if present.
    pub fn get(&self, name: &str) -> Option<&str> {
        match &self.packed {
            Some(meta) => meta.get(name),
            None => self
                .separate
                .iter()
                .find(|(n, _)| *n == name)
                .map(|(_, v)| *v),
        }
    }
}

/// Field `name` of `message`'s metadata, read as [`RawFields::get`] reads
/// it, without collecting the headers of a record that has no
/// `ingest-meta` header (every record after the raw topic).
pub fn raw_field<'a, M: Message>(message: &'a M, name: &str) -> Option<Cow<'a, str>> {
    let headers = message.headers()?;
    match ingest_meta_value(headers) {
        Some(value) => crate::ingest_meta::IngestMeta::parse(value)
            .get(name)
            .map(|v| Cow::Owned(v.to_string())),
        None => headers
            .iter()
            .filter(|h| h.key == name)
            .find_map(|h| std::str::from_utf8(h.value?).ok())
            .map(Cow::Borrowed),
    }
}

/// The value of the `ingest-meta` header among `headers`: the one place
/// [`RawFields::of`] and [`raw_field`] decide which fields win.
fn ingest_meta_value<H: Headers>(headers: &H) -> Option<&[u8]> {
    headers
        .iter()
        .find(|h| h.key == crate::headers::INGEST_META)
        .and_then(|h| h.value)
}

/// A detached record of `topic` with no key or value and `headers` (name,
/// value), at partition 0, offset 0: what the tests of code reading a
/// record's headers hand it.
pub fn detached_with_headers(
    topic: &str,
    headers: &[(&str, &str)],
) -> rdkafka::message::OwnedMessage {
    let headers = headers
        .iter()
        .fold(rdkafka::message::OwnedHeaders::new(), |h, (key, value)| {
            h.insert(rdkafka::message::Header {
                key,
                value: Some(value.as_bytes()),
            })
        });
    rdkafka::message::OwnedMessage::new(
        None,
        None,
        topic.to_string(),
        rdkafka::Timestamp::NotAvailable,
        0,
        0,
        Some(headers),
    )
}

/// [`check_topics`] from async code (on a blocking thread), for the
/// topics named in `topics`.
pub async fn check_topics_exist(
    settings: &KafkaSettings,
    topics: &[String],
    timeout: Duration,
) -> anyhow::Result<Vec<usize>> {
    let (settings, topics) = (settings.clone(), topics.to_vec());
    tokio::task::spawn_blocking(move || {
        let names: Vec<&str> = topics.iter().map(String::as_str).collect();
        check_topics(&settings, &names, timeout)
    })
    .await?
}

/// Checks that every topic in `topics` exists, returning the partition count
/// of each, so a service fails at start with a clear message instead of
/// waiting on a topic that will never appear.
pub fn check_topics(
    settings: &KafkaSettings,
    topics: &[&str],
    timeout: Duration,
) -> anyhow::Result<Vec<usize>> {
    let consumer: BaseConsumer = settings
        .reader()
        .set("allow.auto.create.topics", "false")
        .create()?;
    let metadata = consumer
        .fetch_metadata(None, timeout)
        .map_err(|e| anyhow::anyhow!("cannot reach Kafka at {}: {e}", settings.brokers))?;
    let mut counts = Vec::with_capacity(topics.len());
    for name in topics {
        let found = metadata
            .topics()
            .iter()
            .find(|t| t.name() == *name && !t.partitions().is_empty());
        match found {
            Some(topic) => counts.push(topic.partitions().len()),
            None => anyhow::bail!(
                "topic `{name}` does not exist on {}: run the topic setup (create-topics) first",
                settings.brokers
            ),
        }
    }
    Ok(counts)
}

/// The value of config `name` on `topic` as the broker reports it; `None`
/// when the broker reports none (the broker's default applies).
pub async fn topic_config(
    kafka: &KafkaSettings,
    topic: &str,
    name: &str,
    timeout: Duration,
) -> anyhow::Result<Option<String>> {
    use anyhow::Context as _;
    use rdkafka::admin::{AdminClient, AdminOptions, ResourceSpecifier};
    use rdkafka::client::DefaultClientContext;
    let admin: AdminClient<DefaultClientContext> = kafka
        .client()
        .create()
        .context("cannot create a Kafka admin client")?;
    let options = AdminOptions::new().request_timeout(Some(timeout));
    let described = admin
        .describe_configs(&[ResourceSpecifier::Topic(topic)], &options)
        .await
        .with_context(|| format!("cannot read the configuration of topic `{topic}`"))?;
    let resource = described
        .into_iter()
        .next()
        .context("the broker described no topic")?
        .map_err(|code| {
            anyhow::anyhow!("cannot read the configuration of topic `{topic}`: {code}")
        })?;
    Ok(resource.get(name).and_then(|entry| entry.value.clone()))
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_settings_the_guarantees_rest_on_cannot_be_overridden() {
        for key in [
            "acks",
            "enable.idempotence",
            "enable.auto.commit",
            " ACKS ",
            "topic.acks",
            "topic.request.required.acks",
            "isolation.level",
            "auto.offset.reset",
            "topic.auto.offset.reset",
        ] {
            let text = format!("[properties]\n\"{key}\" = \"1\"\n");
            let refused = toml::from_str::<KafkaSettings>(&text)
                .expect_err("a protected property is refused");
            assert!(refused.to_string().contains("cannot set"), "{refused}");
        }
        let allowed: KafkaSettings =
            toml::from_str("[properties]\n\"security.protocol\" = \"ssl\"\n").expect("allowed");
        assert_eq!(
            allowed.producer().get("security.protocol"),
            Some("ssl"),
            "other properties still apply"
        );
        assert_eq!(allowed.producer().get("acks"), Some("all"));
    }

    /// With broker transactions, dedupe's restore reads the output's tail
    /// to learn which inputs are already forwarded. A reader set to
    /// `read_uncommitted` (`[kafka.properties] isolation.level`, applied to
    /// every client of the stage, the restore reader included) would see
    /// the outputs of an aborted transaction, take their inputs as done and
    /// drop them when they are read again: the events would never be
    /// committed on `properties.events`, so never reach PostgreSQL. The
    /// sink's consumer would also write rows of aborted records.
    #[test]
    fn no_client_can_be_made_to_read_uncommitted_records() {
        let text = "[properties]\n\"isolation.level\" = \"read_uncommitted\"\n";
        let refused =
            toml::from_str::<KafkaSettings>(text).expect_err("read_uncommitted is refused");
        assert!(refused.to_string().contains("isolation.level"), "{refused}");
        let defaults: KafkaSettings = toml::from_str("").expect("defaults");
        for config in [defaults.reader(), defaults.consumer("g")] {
            // librdkafka's default, read_committed, is what stays.
            assert_eq!(config.get("isolation.level"), None);
        }
    }

    use super::*;
    use rdkafka::Timestamp;
    use rdkafka::message::OwnedMessage;

    fn message(topic: &str, partition: i32, offset: i64) -> OwnedMessage {
        OwnedMessage::new(
            None,
            None,
            topic.to_string(),
            Timestamp::NotAvailable,
            partition,
            offset,
            None,
        )
    }

    #[test]
    fn a_batch_commits_the_offset_after_its_highest_record_per_partition() {
        let batch = [
            message("t", 0, 5),
            message("t", 1, 9),
            message("t", 0, 7),
            message("u", 0, 1),
        ];
        let tpl = offsets_after_all(&batch).expect("builds");
        let mut got: Vec<(String, i32, Offset)> = tpl
            .elements()
            .iter()
            .map(|e| (e.topic().to_string(), e.partition(), e.offset()))
            .collect();
        got.sort_by(|a, b| (&a.0, a.1).cmp(&(&b.0, b.1)));
        assert_eq!(
            got,
            [
                ("t".to_string(), 0, Offset::Offset(8)),
                ("t".to_string(), 1, Offset::Offset(10)),
                ("u".to_string(), 0, Offset::Offset(2)),
            ]
        );
    }

    #[derive(Debug, Deserialize)]
    struct Wrapper {
        #[serde(default)]
        kafka: KafkaSettings,
    }

    fn load(vars: &[(&str, &str)]) -> Result<KafkaSettings, String> {
        let vars: Vec<(String, String)> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        crate::config::load_from::<Wrapper>("T", None, &vars)
            .map(|w| w.kafka)
            .map_err(|e| e.to_string())
    }

    #[test]
    fn the_size_limit_is_explicit_and_applied_to_producers() {
        let settings = load(&[]).expect("defaults");
        assert_eq!(settings.message_max_bytes, 2 * 1024 * 1024);
        let settings = load(&[("T__KAFKA__MESSAGE_MAX_BYTES", "20000")]).expect("loads");
        assert_eq!(settings.message_max_bytes, 20_000);
        assert_eq!(settings.producer().get("message.max.bytes"), Some("20000"));
        assert_eq!(settings.consumer("g").get("message.max.bytes"), None);
    }

    #[test]
    fn group_consumers_gather_a_fetch_and_an_operator_can_say_otherwise() {
        let settings = load(&[]).expect("defaults");
        assert_eq!(settings.consumer("g").get("fetch.min.bytes"), Some("16384"));
        // A restore reader must see the end of a partition at once.
        assert_eq!(settings.reader().get("fetch.min.bytes"), None);
        let settings =
            load(&[("T__KAFKA__PROPERTIES__FETCH.MIN.BYTES", "1")]).expect("override loads");
        assert_eq!(settings.consumer("g").get("fetch.min.bytes"), Some("1"));
    }

    #[test]
    fn numeric_and_boolean_properties_from_the_environment_are_taken_as_text() {
        // `DEDUPE__KAFKA__PROPERTIES__LINGER.MS=100` used to stop the stage
        // at start: "invalid type: integer `100`, expected a string".
        let settings = load(&[
            ("T__KAFKA__PROPERTIES__LINGER.MS", "100"),
            ("T__KAFKA__PROPERTIES__SOCKET.KEEPALIVE.ENABLE", "true"),
            ("T__KAFKA__PROPERTIES__SECURITY.PROTOCOL", "ssl"),
        ])
        .expect("numbers and booleans are accepted");
        let producer = settings.producer();
        assert_eq!(producer.get("linger.ms"), Some("100"));
        assert_eq!(producer.get("socket.keepalive.enable"), Some("true"));
        assert_eq!(producer.get("security.protocol"), Some("ssl"));
        let refused = load(&[("T__KAFKA__PROPERTIES__ENABLE.IDEMPOTENCE", "false")])
            .expect_err("still protected");
        assert!(refused.contains("enable.idempotence"), "{refused}");
    }

    #[test]
    fn a_size_limit_out_of_range_or_in_the_properties_is_refused() {
        let low = load(&[("T__KAFKA__MESSAGE_MAX_BYTES", "100")]).expect_err("too small");
        assert!(low.contains("message_max_bytes"), "{low}");
        let both =
            toml::from_str::<Wrapper>("[kafka.properties]\n\"message.max.bytes\" = \"5000000\"\n")
                .expect_err("refused")
                .to_string();
        assert!(
            both.contains("message.max.bytes") && both.contains("message_max_bytes"),
            "{both}"
        );
        let mut properties = BTreeMap::new();
        let _ = properties.insert("linger.ms".to_string(), "1".to_string());
        assert_eq!(refuse_size_limit_override(&properties), Ok(()));
    }

    #[test]
    fn batch_settings_default_and_never_zero() {
        let settings = BatchSettings::default();
        assert_eq!((settings.max_records(), settings.max_wait_ms), (500, 5));
        let zero = BatchSettings {
            max_records: 0,
            max_wait_ms: 0,
        };
        assert_eq!(zero.max_records(), 1);
    }
}
