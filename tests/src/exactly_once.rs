//! The exactly-once checker the delivery tests share: given the dedupe
//! keys of the webhooks that got a 200 (or of the raw records a test
//! produced), it asserts that each lands exactly once in PostgreSQL's
//! `property_events` and exactly once on `properties.events` (records
//! counted against distinct `dedupe-key` headers), and that no key at all
//! lands twice. A webhook answered 503 may still have landed (README,
//! "Delivery guarantees"), so keys outside the set are allowed once unless
//! the check is [`ExactlyOnce::only`]. A failure lists the missing, doubled
//! and unexpected keys of each store. When the pipeline runs the state
//! writer, `properties.latest` is checked too: each property's last state
//! is the merge of its events and none is written twice
//! ([`crate::latest_states`]).
//!
//! ```text
//! let keys = (0..100).map(|i| format!("generic:evt_{i}"));
//! ExactlyOnce::of(keys).assert(&pipeline, Duration::from_secs(60)).await;
//! ```

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use crate::{Pipeline, header};

/// Keys listed in a failure message, at most, per list.
const LISTED: usize = 20;
/// How long the stores must stay as they are once every key is there, so
/// that a late duplicate is seen.
const SETTLE: Duration = Duration::from_secs(2);

/// What must have landed exactly once.
#[derive(Debug, Clone)]
pub struct ExactlyOnce {
    required: BTreeSet<String>,
    others_allowed: bool,
}

/// How many times each dedupe key is in each store.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Landed {
    /// `property_events` rows per dedupe key.
    pub rows: BTreeMap<String, usize>,
    /// `properties.events` records per `dedupe-key` header.
    pub events: BTreeMap<String, usize>,
}

impl ExactlyOnce {
    /// Each of `keys` (dedupe keys, e.g. `generic:<envelope id>`) exactly
    /// once; any other key at most once.
    pub fn of(keys: impl IntoIterator<Item = impl Into<String>>) -> Self {
        Self {
            required: keys.into_iter().map(Into::into).collect(),
            others_allowed: true,
        }
    }

    /// No key but the required ones may land (every delivery got a 200).
    pub fn only(mut self) -> Self {
        self.others_allowed = false;
        self
    }

    /// Waits (at most `timeout`) until every required key has its row,
    /// lets the stores settle, and asserts; panics with the keys that are
    /// missing, doubled or unexpected, store by store.
    pub async fn assert(&self, pipeline: &Pipeline, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        loop {
            let rows = rows(pipeline).await;
            let all_there = self.required.iter().all(|k| rows.contains_key(k));
            if all_there || Instant::now() >= deadline {
                break;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        tokio::time::sleep(SETTLE).await;
        let landed = Landed {
            rows: rows(pipeline).await,
            events: events(pipeline),
        };
        if let Err(failure) = self.check(&landed) {
            panic!("{failure}\n{}", pipeline.all_logs());
        }
        if pipeline.runs(crate::Service::StateWriter) {
            let events = landed.events.values().sum();
            let _ =
                crate::latest_states::assert_latest_is_the_merge(pipeline, events, timeout).await;
        }
    }

    /// The verdict on what landed: `Err` with the failure message.
    pub fn check(&self, landed: &Landed) -> Result<(), String> {
        let problems: Vec<String> = [
            ("PostgreSQL property_events", &landed.rows),
            ("properties.events", &landed.events),
        ]
        .into_iter()
        .filter_map(|(store, counts)| self.store_problems(store, counts))
        .collect();
        if problems.is_empty() {
            return Ok(());
        }
        Err(format!(
            "exactly-once violated for {} required keys:\n{}",
            self.required.len(),
            problems.join("\n")
        ))
    }

    fn store_problems(&self, store: &str, counts: &BTreeMap<String, usize>) -> Option<String> {
        let missing: Vec<&String> = self
            .required
            .iter()
            .filter(|k| !counts.contains_key(*k))
            .collect();
        let doubled: Vec<String> = counts
            .iter()
            .filter(|(_, n)| **n > 1)
            .map(|(k, n)| format!("{k} ×{n}"))
            .collect();
        let unexpected: Vec<&String> = counts
            .keys()
            .filter(|k| !self.others_allowed && !self.required.contains(*k))
            .collect();
        if missing.is_empty() && doubled.is_empty() && unexpected.is_empty() {
            return None;
        }
        let total: usize = counts.values().sum();
        Some(format!(
            "  {store}: {total} records for {} distinct keys; missing {}; doubled {}; unexpected {}",
            counts.len(),
            listed(&missing),
            listed(&doubled),
            listed(&unexpected),
        ))
    }
}

fn listed<T: std::fmt::Display>(keys: &[T]) -> String {
    if keys.is_empty() {
        return "0".into();
    }
    let shown: Vec<String> = keys.iter().take(LISTED).map(ToString::to_string).collect();
    let more = keys.len().saturating_sub(LISTED);
    let tail = if more > 0 {
        format!(", … {more} more")
    } else {
        String::new()
    };
    format!("{} [{}{tail}]", keys.len(), shown.join(", "))
}

/// `property_events` rows per dedupe key (none before the sink's
/// migrations ran).
async fn rows(pipeline: &Pipeline) -> BTreeMap<String, usize> {
    let mut counts = BTreeMap::new();
    let Ok(rows) = pipeline
        .db()
        .await
        .query(
            "SELECT dedupe_key, count(*) FROM property_events GROUP BY dedupe_key",
            &[],
        )
        .await
    else {
        return counts;
    };
    for row in rows {
        let n: i64 = row.get(1);
        let _ = counts.insert(row.get(0), usize::try_from(n).unwrap_or(usize::MAX));
    }
    counts
}

/// `properties.events` records per `dedupe-key` header (`<none>` for a
/// record without one, which is a failure of its own).
fn events(pipeline: &Pipeline) -> BTreeMap<String, usize> {
    let mut counts = BTreeMap::new();
    for record in pipeline.read_topic(&pipeline.topics.events()) {
        let key = header(&record, common::headers::DEDUPE_KEY).unwrap_or_else(|| "<none>".into());
        *counts.entry(key).or_default() += 1;
    }
    counts
}

#[cfg(test)]
mod tests {
    use super::*;

    fn counts(pairs: &[(&str, usize)]) -> BTreeMap<String, usize> {
        pairs.iter().map(|(k, n)| (k.to_string(), *n)).collect()
    }

    #[test]
    fn each_required_key_once_in_both_stores_passes() {
        let check = ExactlyOnce::of(["g:a", "g:b"]);
        let landed = Landed {
            rows: counts(&[("g:a", 1), ("g:b", 1), ("g:late-503", 1)]),
            events: counts(&[("g:a", 1), ("g:b", 1), ("g:late-503", 1)]),
        };
        assert_eq!(check.check(&landed), Ok(()));
        let strict = check.only().check(&landed).expect_err("an extra key");
        assert!(strict.contains("unexpected 1 [g:late-503]"), "{strict}");
    }

    #[test]
    fn the_failure_names_missing_and_doubled_keys_per_store() {
        let check = ExactlyOnce::of(["g:a", "g:b", "g:c"]);
        let landed = Landed {
            rows: counts(&[("g:a", 1), ("g:b", 1)]),
            events: counts(&[("g:a", 2), ("g:b", 1), ("g:c", 1), ("g:x", 3)]),
        };
        let failure = check.check(&landed).expect_err("violated");
        assert!(
            failure.contains(
                "PostgreSQL property_events: 2 records for 2 distinct keys; missing 1 [g:c]; doubled 0"
            ),
            "{failure}"
        );
        assert!(
            failure.contains(
                "properties.events: 7 records for 4 distinct keys; missing 0; doubled 2 [g:a ×2, g:x ×3]"
            ),
            "{failure}"
        );
    }

    #[test]
    fn long_lists_are_cut() {
        let keys: Vec<String> = (0..30).map(|i| format!("k{i:02}")).collect();
        let text = listed(&keys);
        assert!(text.starts_with("30 [k00, k01"), "{text}");
        assert!(text.ends_with("k19, … 10 more]"), "{text}");
    }
}
