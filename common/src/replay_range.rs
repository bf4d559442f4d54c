//! Which records a replay reads, per partition, as `[start, end)` offset
//! ranges checked against what each partition still holds: every record,
//! an offset range of one partition, or a range of record timestamps. An
//! open range ends where the partition ended when the replay started, so a
//! replay reads by assignment up to known ends and always finishes.
//! [`RangeArgs`] are the command-line flags that name a [`Selection`].

use std::collections::HashMap;
use std::time::Duration;

use anyhow::{Context, bail};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::{Offset, TopicPartitionList};

/// Bound on every metadata request.
const METADATA_TIMEOUT: Duration = Duration::from_secs(10);

/// What part of a topic a replay reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Selection {
    /// Every record every partition holds.
    Everything,
    /// Offsets `from` up to `to` (exclusive; `None`: the end) of one partition.
    Offsets {
        /// The partition.
        partition: i32,
        /// First offset.
        from: i64,
        /// End offset, exclusive.
        to: Option<i64>,
    },
    /// Records of every partition with a timestamp from `since_ms` up to
    /// `until_ms` (exclusive; `None`: the end), Unix ms.
    Times {
        /// Start, inclusive.
        since_ms: i64,
        /// End, exclusive.
        until_ms: Option<i64>,
    },
}

/// The flags of a replay command that name what it reads (none: everything).
#[derive(Debug, Clone, Default, clap::Args)]
pub struct RangeArgs {
    /// Offset range: the partition of the topic replayed.
    #[arg(long, requires = "from_offset", conflicts_with = "since")]
    pub partition: Option<i32>,
    /// Offset range: first offset (inclusive).
    #[arg(long, requires = "partition")]
    pub from_offset: Option<i64>,
    /// Offset range: end offset (exclusive; default: the end).
    #[arg(long, requires = "from_offset")]
    pub to_offset: Option<i64>,
    /// Time range: start, RFC 3339 (e.g. 2026-11-23T08:00:00Z), of the
    /// records' timestamps.
    #[arg(long, value_parser = unix_ms)]
    pub since: Option<i64>,
    /// Time range: end, RFC 3339, exclusive (default: the end).
    #[arg(long, requires = "since", value_parser = unix_ms)]
    pub until: Option<i64>,
}

impl RangeArgs {
    /// The selection the flags name.
    pub fn selection(&self) -> anyhow::Result<Selection> {
        Ok(match (self.partition, self.from_offset, self.since) {
            (Some(partition), Some(from), None) => Selection::Offsets {
                partition,
                from,
                to: self.to_offset,
            },
            (None, None, Some(since_ms)) => {
                if let Some(until_ms) = self.until {
                    anyhow::ensure!(until_ms > since_ms, "--until must be after --since");
                }
                Selection::Times {
                    since_ms,
                    until_ms: self.until,
                }
            }
            _ => Selection::Everything,
        })
    }
}

/// Parses an RFC 3339 time into Unix ms.
pub fn unix_ms(text: &str) -> Result<i64, String> {
    let time = time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339)
        .map_err(|e| format!("not an RFC 3339 time (e.g. 2026-11-23T08:00:00Z): {e}"))?;
    i64::try_from(time.unix_timestamp_nanos() / 1_000_000).map_err(|e| e.to_string())
}

/// One partition's offsets to read: `[start, end)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Range {
    /// The partition.
    pub partition: i32,
    /// First offset.
    pub start: i64,
    /// End offset, exclusive.
    pub end: i64,
}

impl Range {
    /// Records in the range.
    pub fn len(&self) -> u64 {
        u64::try_from(self.end - self.start).unwrap_or(0)
    }

    /// Whether it holds no record.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Where a replay reading its [`Range`]s stands: whether a record read is
/// inside its partition's range, and whether every range is read.
#[derive(Debug, Clone)]
pub struct RangeCursor {
    end: HashMap<i32, i64>,
    next: HashMap<i32, i64>,
}

impl RangeCursor {
    /// At the start of every range of `ranges`.
    pub fn new(ranges: &[Range]) -> Self {
        Self {
            end: ranges.iter().map(|r| (r.partition, r.end)).collect(),
            next: ranges.iter().map(|r| (r.partition, r.start)).collect(),
        }
    }

    /// Whether every range is read.
    pub fn done(&self) -> bool {
        self.next
            .iter()
            .all(|(p, n)| *n >= self.end.get(p).copied().unwrap_or(0))
    }

    /// Notes the record at `offset` of `partition` read: `true` when it is
    /// inside its range (to replay), `false` past it (the partition is
    /// done) or on a partition not read.
    pub fn take(&mut self, partition: i32, offset: i64) -> bool {
        let Some(end) = self.end.get(&partition).copied() else {
            return false;
        };
        if offset >= end {
            let _ = self.next.insert(partition, i64::MAX);
            return false;
        }
        let _ = self.next.insert(partition, offset + 1);
        true
    }
}

/// The non-empty ranges of `topic` that `selection` names, asked of the
/// broker through `client`.
pub fn ranges(
    client: &BaseConsumer,
    topic: &str,
    selection: &Selection,
) -> anyhow::Result<Vec<Range>> {
    let metadata = client
        .fetch_metadata(Some(topic), METADATA_TIMEOUT)
        .with_context(|| format!("cannot read the metadata of {topic}"))?;
    let partitions: Vec<i32> = metadata
        .topics()
        .iter()
        .flat_map(|t| t.partitions().iter().map(|p| p.id()))
        .collect();
    let held = |partition: i32| {
        client
            .fetch_watermarks(topic, partition, METADATA_TIMEOUT)
            .with_context(|| format!("cannot read the offsets of {topic}/{partition}"))
    };
    let mut ranges = Vec::with_capacity(partitions.len());
    match *selection {
        Selection::Everything => {
            for partition in partitions {
                let (start, end) = held(partition)?;
                ranges.push(Range {
                    partition,
                    start,
                    end,
                });
            }
        }
        Selection::Offsets {
            partition,
            from,
            to,
        } => {
            if !partitions.contains(&partition) {
                bail!("{topic} has no partition {partition} (it has {partitions:?})");
            }
            let (low, high) = held(partition)?;
            let (start, end) = checked_offsets(from, to, low, high)
                .with_context(|| format!("{topic}/{partition} holds offsets {low}..{high}"))?;
            ranges.push(Range {
                partition,
                start,
                end,
            });
        }
        Selection::Times { since_ms, until_ms } => {
            let starts = offsets_at(client, topic, &partitions, since_ms)?;
            let ends = match until_ms {
                Some(until) => offsets_at(client, topic, &partitions, until)?,
                None => HashMap::new(),
            };
            for partition in partitions {
                let (_, high) = held(partition)?;
                let at = |found: &HashMap<i32, i64>| found.get(&partition).copied().unwrap_or(high);
                ranges.push(Range {
                    partition,
                    start: at(&starts),
                    end: at(&ends),
                });
            }
        }
    }
    ranges.retain(|r| !r.is_empty());
    Ok(ranges)
}

/// `[from, to)` checked against a partition holding `[low, high)`; an
/// open or too long range ends at `high`.
pub fn checked_offsets(
    from: i64,
    to: Option<i64>,
    low: i64,
    high: i64,
) -> anyhow::Result<(i64, i64)> {
    match from {
        f if f < 0 => bail!("offset {f} is negative"),
        f if f < low => {
            bail!("offset {f} is no longer retained (the first retained offset is {low})")
        }
        f if f >= high => bail!("offset {f} has not been written yet (the next offset is {high})"),
        _ => {}
    }
    let end = to.unwrap_or(high);
    if end <= from {
        bail!("the range {from}..{end} is empty (the end is exclusive)");
    }
    Ok((from, end.min(high)))
}

/// Per partition, the first offset at or after `time_ms` (absent when the
/// partition holds nothing that recent).
fn offsets_at(
    client: &BaseConsumer,
    topic: &str,
    partitions: &[i32],
    time_ms: i64,
) -> anyhow::Result<HashMap<i32, i64>> {
    let mut query = TopicPartitionList::new();
    for &partition in partitions {
        query.add_partition_offset(topic, partition, Offset::Offset(time_ms))?;
    }
    let found = client
        .offsets_for_times(query, METADATA_TIMEOUT)
        .with_context(|| format!("cannot look up offsets by time in {topic}"))?;
    Ok(found
        .elements()
        .iter()
        .filter_map(|e| match e.offset() {
            Offset::Offset(offset) => Some((e.partition(), offset)),
            _ => None,
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cursor_is_done_when_every_range_is_read_or_passed() {
        let mut cursor = RangeCursor::new(&[
            Range {
                partition: 0,
                start: 5,
                end: 7,
            },
            Range {
                partition: 1,
                start: 0,
                end: 1,
            },
        ]);
        assert!(!cursor.done());
        assert!(cursor.take(0, 5));
        assert!(cursor.take(1, 0));
        assert!(!cursor.done());
        assert!(!cursor.take(2, 0), "a partition not read");
        assert!(cursor.take(0, 6));
        assert!(cursor.done());
        assert!(!cursor.take(0, 9), "past the end");
    }

    #[test]
    fn an_offset_range_is_checked_against_what_the_partition_holds() {
        assert_eq!(checked_offsets(3, Some(5), 0, 10).ok(), Some((3, 5)));
        assert_eq!(checked_offsets(3, None, 0, 10).ok(), Some((3, 10)));
        assert_eq!(checked_offsets(3, Some(99), 0, 10).ok(), Some((3, 10)));
        let refused = |from, to, low| {
            checked_offsets(from, to, low, 10)
                .err()
                .map(|e| e.to_string())
                .unwrap_or_default()
        };
        assert!(refused(4, Some(4), 0).contains("empty"));
        assert!(refused(-2, None, 0).contains("negative"));
        assert!(refused(1, None, 2).contains("no longer retained"));
        assert!(refused(10, None, 0).contains("not been written"));
    }

    #[test]
    fn the_flags_name_one_selection() {
        let offsets = RangeArgs {
            partition: Some(2),
            from_offset: Some(5),
            ..RangeArgs::default()
        };
        assert_eq!(
            offsets.selection().ok(),
            Some(Selection::Offsets {
                partition: 2,
                from: 5,
                to: None
            })
        );
        let since = unix_ms("2026-11-23T08:00:00Z").ok();
        assert_eq!(since, Some(1_795_420_800_000));
        let backwards = RangeArgs {
            since,
            until: unix_ms("2026-11-23T07:00:00Z").ok(),
            ..RangeArgs::default()
        };
        assert!(backwards.selection().is_err());
        assert_eq!(
            RangeArgs::default().selection().ok(),
            Some(Selection::Everything)
        );
        assert!(unix_ms("yesterday").is_err());
    }

    #[test]
    fn a_range_counts_its_records() {
        let range = Range {
            partition: 0,
            start: 4,
            end: 9,
        };
        assert_eq!((range.len(), range.is_empty()), (5, false));
        assert!(
            Range {
                partition: 0,
                start: 9,
                end: 9
            }
            .is_empty()
        );
    }
}
