//! Where the end-to-end latency goes: each row's time from arrival to
//! commit, split at the timestamps its records carry on the way (each set
//! by the producer that wrote it):
//!
//! - arrival → `webhooks.raw`: ingest's verification and hand-over to the
//!   producer;
//! - `webhooks.raw` → `properties.normalized`: the broker's acknowledgement
//!   to ingest, the fetch by normalize, its batch and parse;
//! - `properties.normalized` → `properties.events`: the same for dedupe;
//! - `properties.events` → commit: the sink's fetch, batch and write;
//! - `properties.events` → `properties.latest`: the state writer's fetch,
//!   merge and write. It runs beside the sink, not before it, so it is
//!   reported on its own, with arrival → `properties.latest` (what a
//!   subscriber of the state waits), and is not part of arrival → commit.
//!
//! The split is pure ([`split`]); [`read_times`] reads the topics.

use std::collections::HashMap;
use std::time::Duration;

use rdkafka::Message as _;
use serde::{Deserialize, Serialize};

use crate::latency::LatencySummary;
use crate::topic_scan::scan;

/// The four hops' latencies, and the state's hop beside the sink's.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct HopLatencies {
    /// Arrival at ingest → the raw record's timestamp.
    pub arrival_to_raw: LatencySummary,
    /// Raw record → normalized record.
    pub raw_to_normalized: LatencySummary,
    /// Normalized record → events record.
    pub normalized_to_events: LatencySummary,
    /// Events record → the row's commit.
    pub events_to_commit: LatencySummary,
    /// Rows whose records were not all found (not in the summaries).
    pub unmatched: usize,
    /// Events record → the state record it produced on `properties.latest`.
    #[serde(default)]
    pub events_to_latest: LatencySummary,
    /// Arrival at ingest → the state record on `properties.latest`.
    #[serde(default)]
    pub arrival_to_latest: LatencySummary,
    /// Rows whose event has no state record (compacted away, or an event
    /// that changed nothing); not in the two state summaries.
    #[serde(default)]
    pub latest_unmatched: usize,
}

impl HopLatencies {
    /// The hops in pipeline order, each with its name.
    pub fn named(&self) -> [(&'static str, LatencySummary); 4] {
        [
            ("arrival → webhooks.raw", self.arrival_to_raw),
            (
                "webhooks.raw → properties.normalized",
                self.raw_to_normalized,
            ),
            (
                "properties.normalized → properties.events",
                self.normalized_to_events,
            ),
            ("properties.events → commit", self.events_to_commit),
        ]
    }

    /// The state's hop (beside the sink's), then arrival → state.
    pub fn state_named(&self) -> [(&'static str, LatencySummary); 2] {
        [
            (
                "properties.events → properties.latest (state writer)",
                self.events_to_latest,
            ),
            ("arrival → properties.latest", self.arrival_to_latest),
        ]
    }
}

/// One row's times and where its records are, as the sink stored them.
#[derive(Debug, Clone, PartialEq)]
pub struct RowTimes {
    /// `dedupe_key` (the normalized record's `dedupe-key` header).
    pub dedupe_key: String,
    /// `received_at`, Unix ms.
    pub received_ms: f64,
    /// `raw_partition`, `raw_offset`.
    pub raw: (i32, i64),
    /// `kafka_partition`, `kafka_offset` (on `properties.events`).
    pub events: (i32, i64),
    /// Commit time, Unix ms.
    pub commit_ms: f64,
}

/// Record timestamps (Unix ms) of the three topics.
#[derive(Debug, Default)]
pub struct TopicTimes {
    /// `webhooks.raw`, by position.
    pub raw: HashMap<(i32, i64), i64>,
    /// `properties.normalized`, by dedupe key: the first record (a
    /// re-delivery is normalized again and then dropped by dedupe).
    pub normalized: HashMap<String, i64>,
    /// `properties.events`, by position.
    pub events: HashMap<(i32, i64), i64>,
    /// `properties.latest`, by the position on `properties.events` of the
    /// event each state record came from (its `source-offset` header; the
    /// topics are co-partitioned).
    pub latest: HashMap<(i32, i64), i64>,
}

/// Splits each row's latency into its hops.
pub fn split(rows: &[RowTimes], times: &TopicTimes) -> HopLatencies {
    let gap = |from: f64, to: f64| Duration::from_secs_f64((to - from).max(0.0) / 1000.0);
    let mut hops: [Vec<Duration>; 4] = Default::default();
    let mut state: [Vec<Duration>; 2] = Default::default();
    let mut unmatched = 0;
    let mut latest_unmatched = 0;
    for row in rows {
        match (times.events.get(&row.events), times.latest.get(&row.events)) {
            (Some(&events), Some(&latest)) => {
                state[0].push(gap(events as f64, latest as f64));
                state[1].push(gap(row.received_ms, latest as f64));
            }
            _ => latest_unmatched += 1,
        }
        let found = (
            times.raw.get(&row.raw),
            times.normalized.get(&row.dedupe_key),
            times.events.get(&row.events),
        );
        let (Some(&raw), Some(&normalized), Some(&events)) = found else {
            unmatched += 1;
            continue;
        };
        let (raw, normalized, events) = (raw as f64, normalized as f64, events as f64);
        hops[0].push(gap(row.received_ms, raw));
        hops[1].push(gap(raw, normalized));
        hops[2].push(gap(normalized, events));
        hops[3].push(gap(events, row.commit_ms));
    }
    let [a, b, c, d] = hops;
    let [e, f] = state;
    HopLatencies {
        arrival_to_raw: LatencySummary::of(a),
        raw_to_normalized: LatencySummary::of(b),
        normalized_to_events: LatencySummary::of(c),
        events_to_commit: LatencySummary::of(d),
        unmatched,
        events_to_latest: LatencySummary::of(e),
        arrival_to_latest: LatencySummary::of(f),
        latest_unmatched,
    }
}

/// The topics [`read_times`] reads.
#[derive(Debug, Clone)]
pub struct HopTopics {
    /// `webhooks.raw`.
    pub raw: String,
    /// `properties.normalized`.
    pub normalized: String,
    /// `properties.events`.
    pub events: String,
    /// `properties.latest`.
    pub latest: String,
}

/// Reads the record timestamps of the four topics.
pub fn read_times(brokers: &str, topics: &HopTopics) -> anyhow::Result<TopicTimes> {
    let mut by_key: HashMap<String, i64> = HashMap::new();
    scan(brokers, &topics.normalized, |m| {
        let key = common::kafka::header_str(m, common::headers::DEDUPE_KEY);
        if let (Some(key), Some(at)) = (key, m.timestamp().to_millis()) {
            let first = by_key.entry(key.to_string()).or_insert(at);
            *first = (*first).min(at);
        }
    })?;
    let mut latest = HashMap::new();
    scan(brokers, &topics.latest, |m| {
        let source = common::kafka::header_str(m, common::headers::SOURCE_OFFSET)
            .and_then(|v| v.parse::<i64>().ok());
        if let (Some(source), Some(at)) = (source, m.timestamp().to_millis()) {
            let _ = latest.insert((m.partition(), source), at);
        }
    })?;
    Ok(TopicTimes {
        raw: times_by_position(brokers, &topics.raw)?,
        normalized: by_key,
        events: times_by_position(brokers, &topics.events)?,
        latest,
    })
}

/// The timestamp of every record of `topic`, by partition and offset.
fn times_by_position(brokers: &str, topic: &str) -> anyhow::Result<HashMap<(i32, i64), i64>> {
    let mut times = HashMap::new();
    scan(brokers, topic, |m| {
        if let Some(at) = m.timestamp().to_millis() {
            let _ = times.insert((m.partition(), m.offset()), at);
        }
    })?;
    Ok(times)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(key: &str, raw: (i32, i64), events: (i32, i64)) -> RowTimes {
        RowTimes {
            dedupe_key: key.into(),
            received_ms: 1_000.0,
            raw,
            events,
            commit_ms: 1_400.0,
        }
    }

    /// Row "k"'s records at `raw`, `normalized` and `events` ms.
    fn times_of_k(raw: i64, normalized: i64, events: i64) -> TopicTimes {
        let mut times = TopicTimes::default();
        let _ = times.raw.insert((0, 7), raw);
        let _ = times.normalized.insert("k".into(), normalized);
        let _ = times.events.insert((2, 3), events);
        times
    }

    #[test]
    fn each_hop_is_the_gap_between_its_timestamps() {
        let times = times_of_k(1_010, 1_110, 1_310);
        let hops = split(&[row("k", (0, 7), (2, 3))], &times);
        assert_eq!(hops.arrival_to_raw.p50_ms, 10.0);
        assert_eq!(hops.raw_to_normalized.p50_ms, 100.0);
        assert_eq!(hops.normalized_to_events.p50_ms, 200.0);
        assert_eq!(hops.events_to_commit.p50_ms, 90.0);
        assert_eq!(hops.unmatched, 0);
    }

    #[test]
    fn the_state_hop_starts_at_the_event_it_came_from() {
        let mut times = times_of_k(1_010, 1_110, 1_310);
        let _ = times.latest.insert((2, 3), 1_360);
        let hops = split(&[row("k", (0, 7), (2, 3))], &times);
        assert_eq!(hops.events_to_latest.p50_ms, 50.0);
        assert_eq!(hops.arrival_to_latest.p50_ms, 360.0);
        assert_eq!(hops.latest_unmatched, 0);
    }

    #[test]
    fn a_row_without_a_state_record_keeps_its_other_hops() {
        let times = times_of_k(1_010, 1_110, 1_310);
        let hops = split(&[row("k", (0, 7), (2, 3))], &times);
        assert_eq!(hops.latest_unmatched, 1);
        assert_eq!(hops.unmatched, 0);
        assert_eq!(hops.events_to_commit.count, 1);
        assert_eq!(hops.events_to_latest.count, 0);
    }

    #[test]
    fn a_row_with_a_missing_record_is_counted_not_guessed() {
        let mut times = TopicTimes::default();
        let _ = times.raw.insert((0, 7), 1_010);
        let hops = split(&[row("k", (0, 7), (2, 3))], &times);
        assert_eq!(hops.unmatched, 1);
        assert_eq!(hops.raw_to_normalized.count, 0);
    }

    #[test]
    fn clock_steps_backwards_count_as_zero() {
        let times = times_of_k(990, 1_110, 1_310);
        let hops = split(&[row("k", (0, 7), (2, 3))], &times);
        assert_eq!(hops.arrival_to_raw.max_ms, 0.0);
    }
}
