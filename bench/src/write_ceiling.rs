//! The broker's write ceiling for a consumer stage: the records the stage
//! wrote, read back (untimed) and produced again, unchanged, to the same
//! topics under a second prefix, the way the stage writes them: a batch of
//! outputs at a time with the stages' producer settings, each batch waiting
//! for its acknowledgements, and for dedupe the changelog records after the
//! outputs. No parsing, no state, no consuming: what the broker alone
//! allows for that stage. A stage near this figure is limited by the
//! broker's cost per record (on nisshi, mostly per header).

use std::time::Instant;

use anyhow::Context as _;
use common::kafka::KafkaSettings;
use common::produce::{OutRecord, send_all};
use rdkafka::Message as _;

use crate::catch_up::Rate;
use crate::topic_scan::scan;

/// Records per batch, as the stages' default `[batch] max_records`.
const BATCH: usize = 500;

/// [`read_all`] off the async runtime.
pub async fn read_all_blocking(
    brokers: &str,
    topic: &str,
    to_topic: &str,
) -> anyhow::Result<Vec<OutRecord>> {
    let (brokers, topic, to_topic) = (brokers.to_string(), topic.to_string(), to_topic.to_string());
    tokio::task::spawn_blocking(move || read_all(&brokers, &topic, &to_topic))
        .await
        .context("the reader panicked")?
}

/// Every record of `topic`, owned, re-addressed to `to_topic` on the same
/// partition.
pub fn read_all(brokers: &str, topic: &str, to_topic: &str) -> anyhow::Result<Vec<OutRecord>> {
    let mut records = Vec::new();
    scan(brokers, topic, |message| {
        records.push(
            OutRecord {
                topic: to_topic.to_string(),
                partition: Some(message.partition()),
                key: message.key().map(<[u8]>::to_vec),
                payload: message.payload().map(<[u8]>::to_vec),
                headers: Vec::new(),
            }
            .with_headers_of(message, &[]),
        );
    })?;
    Ok(records)
}

/// Writes `streams`, the writes a stage made for `inputs` input records,
/// batch by batch: for every batch of [`BATCH`] inputs, each stream's share
/// of records in turn (a stage's outputs, then its changelog), waiting for
/// their acknowledgements. The rate is inputs per second.
pub async fn measure(
    brokers: &str,
    inputs: usize,
    streams: &[Vec<OutRecord>],
) -> anyhow::Result<Rate> {
    let producer = KafkaSettings {
        brokers: brokers.to_string(),
        ..KafkaSettings::default()
    }
    .producer()
    .create()
    .context("cannot create the ceiling's producer")?;
    let batches = inputs.div_ceil(BATCH).max(1);
    let started = Instant::now();
    for batch in 0..batches {
        for stream in streams {
            let share = |b: usize| b * stream.len() / batches;
            let records = &stream[share(batch)..share(batch + 1)];
            if !records.is_empty() {
                let _ = send_all(&producer, records)
                    .await
                    .context("the ceiling's producer failed")?;
            }
        }
    }
    Ok(Rate::new(inputs as u64, started.elapsed().as_secs_f64()))
}
