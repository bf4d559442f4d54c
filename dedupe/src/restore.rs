//! Rebuilds one input partition's dedupe state before it is processed.
//!
//! Two reads, both to the high watermark observed at the start:
//! 1. the same partition of the changelog `dedupe.seen`: every key with its
//!    first sighting (tombstones remove keys), and the highest output offset
//!    the changelog knows;
//! 2. the same partition of `properties.events`, from just past that offset:
//!    events that reached the output before a crash but whose changelog
//!    record was never written. Their keys are remembered too (a key
//!    already known keeps its first sighting: the tail may hold a
//!    correction), and returned so the caller writes the missing changelog
//!    records.
//!
//! Both reads also give the partition's `forwarded_through`: the highest
//! input offset (`source_offset`) whose event is on the output, so inputs
//! redelivered after a crash or a partial failure are never forwarded again.
//!
//! Each read ([`common::stage_loop::read_to_end`]) has no fixed deadline:
//! it fails only when it makes no progress, however large the changelog,
//! and it reports its progress through the caller's callback every few
//! seconds. The loop runs it outside the rebalance callback, on a thread of
//! its own ([`crate::restoring`]).

use anyhow::Context;
use common::headers;
use common::kafka::{KafkaSettings, header_str};
use common::stage_loop::{Progress, read_to_end};
use rdkafka::consumer::BaseConsumer;
use rdkafka::{Message, Offset};

use crate::changelog::SeenRecord;
use crate::state::PartitionState;

/// An output record with no changelog record yet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recovered {
    /// Dedupe key.
    pub key: String,
    /// Its record in the output partition.
    pub output_offset: i64,
    /// The input offset it came from, when the header says.
    pub source_offset: i64,
    /// Output record time, Unix ms.
    pub seen_ms: i64,
}

/// Result of restoring one partition.
#[derive(Debug, Default)]
pub struct Restored {
    /// The state.
    pub state: PartitionState,
    /// Output records whose changelog records are missing.
    pub recovered: Vec<Recovered>,
    /// Changelog records read.
    pub changelog_records: u64,
}

/// Restores `partition` from `seen_topic` and `events_topic`, calling
/// `progress` every few seconds while it reads.
pub fn restore_partition(
    kafka: &KafkaSettings,
    seen_topic: &str,
    events_topic: &str,
    partition: i32,
    progress: &dyn Fn(&str, Progress),
) -> anyhow::Result<Restored> {
    let reader: BaseConsumer = kafka
        .reader()
        .create()
        .context("cannot create a restore reader")?;
    let mut restored = Restored::default();
    read_to_end(
        &reader,
        seen_topic,
        partition,
        Offset::Beginning,
        progress,
        |message| {
            let Some(key) = message.key().and_then(|k| std::str::from_utf8(k).ok()) else {
                return Ok(());
            };
            restored.changelog_records += 1;
            match message.payload() {
                None => restored.state.forget(key),
                Some(bytes) => match SeenRecord::decode(bytes) {
                    Ok(record) => {
                        restored.state.remember(key, record.first_seen_ms);
                        restored.state.covered_output(record.output_offset);
                        restored.state.covered_input(record.source_offset);
                    }
                    Err(e) => {
                        tracing::warn!(key, error = %e, "unreadable changelog record skipped")
                    }
                },
            }
            Ok(())
        },
    )?;
    let start = restored
        .state
        .last_output_offset
        .map_or(Offset::Beginning, |o| Offset::Offset(o + 1));
    read_to_end(
        &reader,
        events_topic,
        partition,
        start,
        progress,
        |message| {
            let Some(key) = header_str(message, headers::DEDUPE_KEY) else {
                return Ok(());
            };
            let seen_ms = message.timestamp().to_millis().unwrap_or(0);
            let source_offset = header_str(message, headers::SOURCE_OFFSET)
                .and_then(|v| v.parse().ok())
                .unwrap_or(-1);
            restored.state.covered_input(source_offset);
            if restored.state.contains(key) {
                return Ok(());
            }
            restored.state.remember(key, seen_ms);
            restored.recovered.push(Recovered {
                key: key.to_string(),
                output_offset: message.offset(),
                source_offset,
                seen_ms,
            });
            Ok(())
        },
    )?;
    Ok(restored)
}
