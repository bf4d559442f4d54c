//! The fetch cache: the properties fetched lately, by `flxId`, so an id
//! named again (by another alert's webhook, or a redelivery past dedupe's
//! TTL) costs no call. Pure: times are explicit Unix ms.
//!
//! Which answer may stand in for a fetch: one fetched **after the webhook
//! naming the id arrived** (`fetched_at >= received_at`) and not older than
//! the TTL. A webhook says the property changed about when it was sent, so
//! an answer from before it could be stale, and one from after it holds
//! the change; this is what makes the cache safe for `updated` lists too.
//! Entries are kept by `meta.lastUpdatedAt`, the property's version: an
//! answer older than the stored one (two calls racing) never replaces it,
//! and an answer without a `lastUpdatedAt` is not cached at all (it cannot
//! be ordered). At most `max_entries` are kept, the oldest fetched dropped
//! first. A TTL of zero turns the cache off.

use std::collections::{BTreeMap, HashMap};

use normalize::providers::fluximmo_api::FetchedProperty;

#[derive(Debug, Clone)]
struct Entry {
    property: FetchedProperty,
    fetched_at_ms: i64,
}

/// Properties fetched lately, by `flxId`.
#[derive(Debug, Clone)]
pub struct FetchCache {
    ttl_ms: i64,
    max_entries: usize,
    entries: HashMap<String, Entry>,
    /// `(fetched_at_ms, flx_id)` of every entry, oldest first.
    by_age: BTreeMap<(i64, String), ()>,
}

impl FetchCache {
    /// A cache keeping answers for `ttl_ms`, at most `max_entries` of them.
    pub fn new(ttl_ms: i64, max_entries: usize) -> Self {
        Self {
            ttl_ms,
            max_entries,
            entries: HashMap::new(),
            by_age: BTreeMap::new(),
        }
    }

    /// Whether it keeps anything.
    pub fn is_on(&self) -> bool {
        self.ttl_ms > 0 && self.max_entries > 0
    }

    /// The answer for `flx_id` that may stand in for a fetch made for a
    /// webhook received at `received_at_ms`, at `now_ms`.
    pub fn get(&self, flx_id: &str, received_at_ms: i64, now_ms: i64) -> Option<&FetchedProperty> {
        let entry = self.entries.get(flx_id)?;
        let fresh = now_ms.saturating_sub(entry.fetched_at_ms) < self.ttl_ms;
        (fresh && entry.fetched_at_ms >= received_at_ms).then_some(&entry.property)
    }

    /// Keeps `property`, fetched at `fetched_at_ms`, unless the entry held
    /// is of a newer version or it has no version.
    pub fn put(&mut self, property: &FetchedProperty, fetched_at_ms: i64) {
        if !self.is_on() {
            return;
        }
        let Some(version) = property.last_updated_at else {
            return;
        };
        if let Some(held) = self.entries.get(&property.flx_id) {
            if held.property.last_updated_at.is_some_and(|v| v > version) {
                return;
            }
            let _ = self
                .by_age
                .remove(&(held.fetched_at_ms, property.flx_id.clone()));
        }
        let _ = self
            .by_age
            .insert((fetched_at_ms, property.flx_id.clone()), ());
        let _ = self.entries.insert(
            property.flx_id.clone(),
            Entry {
                property: property.clone(),
                fetched_at_ms,
            },
        );
        while self.entries.len() > self.max_entries {
            let Some(((_, oldest), ())) = self.by_age.pop_first() else {
                break;
            };
            let _ = self.entries.remove(&oldest);
        }
    }

    /// Entries held.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether none is held.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn property(id: &str, version: Option<i64>) -> FetchedProperty {
        FetchedProperty {
            flx_id: id.to_string(),
            last_updated_at: version,
            totally_offline: None,
            snapshot: schemas::PropertySnapshot::empty(),
        }
    }

    #[test]
    fn an_answer_stands_in_only_when_fetched_after_the_webhook_and_within_the_ttl() {
        let mut cache = FetchCache::new(60_000, 10);
        cache.put(&property("a", Some(5)), 1_000);
        assert!(
            cache.get("a", 900, 2_000).is_some(),
            "fetched after the webhook"
        );
        assert!(cache.get("a", 1_000, 2_000).is_some());
        assert!(
            cache.get("a", 1_001, 2_000).is_none(),
            "a webhook after the fetch may name a change the answer lacks"
        );
        assert!(cache.get("a", 900, 61_000).is_none(), "past the TTL");
        assert!(cache.get("b", 0, 2_000).is_none());
    }

    #[test]
    fn an_older_version_never_replaces_a_newer_and_unversioned_answers_are_not_kept() {
        let mut cache = FetchCache::new(60_000, 10);
        cache.put(&property("a", Some(9)), 1_000);
        cache.put(&property("a", Some(3)), 2_000);
        let held = cache.get("a", 0, 2_500).expect("held");
        assert_eq!(held.last_updated_at, Some(9));
        cache.put(&property("b", None), 1_000);
        assert!(cache.get("b", 0, 1_500).is_none());
        assert_eq!(cache.len(), 1);
    }

    #[test]
    fn the_oldest_fetched_goes_first_when_full_and_a_zero_ttl_keeps_nothing() {
        let mut cache = FetchCache::new(60_000, 2);
        cache.put(&property("a", Some(1)), 1_000);
        cache.put(&property("b", Some(1)), 2_000);
        cache.put(&property("a", Some(2)), 3_000);
        cache.put(&property("c", Some(1)), 4_000);
        assert!(
            cache.get("b", 0, 4_000).is_none(),
            "b was the oldest fetched"
        );
        assert!(cache.get("a", 0, 4_000).is_some());
        assert!(cache.get("c", 0, 4_000).is_some());
        assert_eq!(cache.len(), 2);
        let mut off = FetchCache::new(0, 100);
        off.put(&property("a", Some(1)), 1_000);
        assert!(off.is_empty() && !off.is_on());
    }
}
