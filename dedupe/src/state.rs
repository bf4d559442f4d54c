//! The dedupe decision for one input partition: has this key been seen
//! within the TTL? Pure and in memory; durability is the changelog's job.

use std::collections::HashMap;

/// Whether to forward an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// First sighting within the TTL: forward it.
    Forward,
    /// Seen before: drop it.
    Duplicate,
}

/// Seen keys of one input partition.
#[derive(Debug, Default, Clone)]
pub struct PartitionState {
    /// `Box<str>` rather than `String`: no spare capacity word, 8 bytes less
    /// per slot of the table (memory per key is measured by the
    /// `memory_per_key` example).
    first_seen_ms: HashMap<Box<str>, i64>,
    /// Highest output offset known to have a changelog record.
    pub last_output_offset: Option<i64>,
}

impl PartitionState {
    /// Decides for `key` at `now_ms` with a TTL of `ttl_ms`.
    pub fn decide(&self, key: &str, now_ms: i64, ttl_ms: i64) -> Decision {
        match self.first_seen_ms.get(key) {
            Some(&seen) if now_ms.saturating_sub(seen) < ttl_ms => Decision::Duplicate,
            _ => Decision::Forward,
        }
    }

    /// Records `key` as seen at `first_seen_ms`.
    pub fn remember(&mut self, key: &str, first_seen_ms: i64) {
        let _previous = self.first_seen_ms.insert(Box::from(key), first_seen_ms);
    }

    /// Forgets `key` (a changelog tombstone).
    pub fn forget(&mut self, key: &str) {
        let _previous = self.first_seen_ms.remove(key);
    }

    /// Notes that the changelog covers the output up to `offset`.
    pub fn covered_output(&mut self, offset: i64) {
        self.last_output_offset = Some(self.last_output_offset.map_or(offset, |o| o.max(offset)));
    }

    /// Forgets every key first seen `ttl_ms` or more before `now_ms` and
    /// returns them (the caller writes their tombstones).
    pub fn expire(&mut self, now_ms: i64, ttl_ms: i64) -> Vec<String> {
        let mut expired = Vec::new();
        self.first_seen_ms.retain(|key, seen| {
            let keep = now_ms.saturating_sub(*seen) < ttl_ms;
            if !keep {
                expired.push(key.to_string());
            }
            keep
        });
        expired
    }

    /// Number of remembered keys.
    pub fn len(&self) -> usize {
        self.first_seen_ms.len()
    }

    /// Whether no key is remembered.
    pub fn is_empty(&self) -> bool {
        self.first_seen_ms.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TTL: i64 = 1000;

    #[test]
    fn first_sighting_forwards_and_a_second_is_a_duplicate() {
        let mut s = PartitionState::default();
        assert_eq!(s.decide("k", 0, TTL), Decision::Forward);
        s.remember("k", 0);
        assert_eq!(s.decide("k", 10, TTL), Decision::Duplicate);
        assert_eq!(s.decide("other", 10, TTL), Decision::Forward);
    }

    #[test]
    fn keys_older_than_the_ttl_are_forwarded_again() {
        let mut s = PartitionState::default();
        s.remember("k", 0);
        assert_eq!(s.decide("k", TTL - 1, TTL), Decision::Duplicate);
        assert_eq!(s.decide("k", TTL, TTL), Decision::Forward);
    }

    #[test]
    fn expiry_removes_exactly_the_keys_past_the_ttl() {
        let mut s = PartitionState::default();
        s.remember("old", 0);
        s.remember("edge", 1);
        s.remember("new", 500);
        let mut expired = s.expire(TTL + 1, TTL);
        expired.sort();
        assert_eq!(expired, vec!["edge".to_string(), "old".to_string()]);
        assert_eq!(s.len(), 1);
        assert_eq!(s.decide("new", TTL + 1, TTL), Decision::Duplicate);
        assert_eq!(s.decide("old", TTL + 1, TTL), Decision::Forward);
        assert!(s.expire(TTL + 1, TTL).is_empty(), "nothing expires twice");
    }

    #[test]
    fn tombstones_forget_and_output_coverage_only_grows() {
        let mut s = PartitionState::default();
        s.remember("k", 0);
        s.forget("k");
        assert!(s.is_empty());
        s.covered_output(5);
        s.covered_output(3);
        assert_eq!(s.last_output_offset, Some(5));
    }
}
