//! The dedupe decision for one input partition: has this key been seen
//! within the TTL? Pure and in memory; durability is the changelog's job.
//!
//! Memory matters here (one entry per event seen in the TTL), so keys are
//! not one allocation each: their bytes live in one arena, and the hash
//! table holds 16-byte slots (arena offset, length, first sighting).
//! Forgotten keys leave garbage in the arena, reclaimed when it reaches half
//! of it. The `memory_per_key` example measures the result. The arena holds
//! at most 4 GiB of key bytes per partition (about 130 million keys); past
//! that a key is not remembered (logged), so a later duplicate of it would
//! be forwarded: nothing is lost.

use std::hash::{BuildHasher, RandomState};

use hashbrown::HashTable;

/// Whether to forward an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// First sighting within the TTL: forward it.
    Forward,
    /// Seen before: drop it.
    Duplicate,
}

/// One remembered key: where its bytes are, and when it was first seen.
#[derive(Debug, Clone, Copy)]
struct Slot {
    offset: u32,
    len: u32,
    first_seen_ms: i64,
}

/// Seen keys of one input partition.
#[derive(Debug, Clone, Default)]
pub struct PartitionState {
    slots: HashTable<Slot>,
    arena: Vec<u8>,
    garbage: usize,
    hasher: RandomState,
    /// Highest output offset known to have a changelog record.
    pub last_output_offset: Option<i64>,
    /// Highest input offset known to have its event on the output partition
    /// (from the changelog's and the output's `source-offset`s). Outputs are
    /// written in input order, so every input at or below it is done: a
    /// redelivery of one is never forwarded again, corrections included.
    pub forwarded_through: Option<i64>,
}

fn bytes_of<'a>(arena: &'a [u8], slot: &Slot) -> &'a [u8] {
    let start = slot.offset as usize;
    let end = start.saturating_add(slot.len as usize);
    arena.get(start..end).unwrap_or_default()
}

impl PartitionState {
    fn find(&self, key: &str) -> Option<&Slot> {
        let hash = self.hasher.hash_one(key.as_bytes());
        self.slots
            .find(hash, |slot| bytes_of(&self.arena, slot) == key.as_bytes())
    }

    /// Whether `key` is remembered (whatever its age).
    pub fn contains(&self, key: &str) -> bool {
        self.find(key).is_some()
    }

    /// Decides for `key` at `now_ms` with a TTL of `ttl_ms`.
    pub fn decide(&self, key: &str, now_ms: i64, ttl_ms: i64) -> Decision {
        match self.find(key) {
            Some(slot) if now_ms.saturating_sub(slot.first_seen_ms) < ttl_ms => Decision::Duplicate,
            _ => Decision::Forward,
        }
    }

    /// Records `key` as seen at `first_seen_ms`.
    pub fn remember(&mut self, key: &str, first_seen_ms: i64) {
        let hash = self.hasher.hash_one(key.as_bytes());
        let Self {
            slots,
            arena,
            hasher,
            ..
        } = self;
        if let Some(slot) = slots.find_mut(hash, |slot| bytes_of(arena, slot) == key.as_bytes()) {
            slot.first_seen_ms = first_seen_ms;
            return;
        }
        let (Ok(offset), Ok(len)) = (u32::try_from(arena.len()), u32::try_from(key.len())) else {
            tracing::error!(
                key,
                "dedupe key arena full for this partition; key not remembered"
            );
            return;
        };
        if offset.checked_add(len).is_none() {
            tracing::error!(
                key,
                "dedupe key arena full for this partition; key not remembered"
            );
            return;
        }
        let slot = Slot {
            offset,
            len,
            first_seen_ms,
        };
        arena.extend_from_slice(key.as_bytes());
        let _ = slots.insert_unique(hash, slot, |s| hasher.hash_one(bytes_of(arena, s)));
    }

    /// Forgets `key` (a changelog tombstone).
    pub fn forget(&mut self, key: &str) {
        let hash = self.hasher.hash_one(key.as_bytes());
        let arena = &self.arena;
        if let Ok(entry) = self
            .slots
            .find_entry(hash, |slot| bytes_of(arena, slot) == key.as_bytes())
        {
            let (slot, _) = entry.remove();
            self.garbage += slot.len as usize;
        }
        self.compact_if_wasteful();
    }

    /// Forgets every key first seen `ttl_ms` or more before `now_ms` and
    /// returns them (the caller writes their tombstones).
    pub fn expire(&mut self, now_ms: i64, ttl_ms: i64) -> Vec<String> {
        let mut expired = Vec::new();
        let mut freed = 0;
        let arena = &self.arena;
        self.slots.retain(|slot| {
            let keep = now_ms.saturating_sub(slot.first_seen_ms) < ttl_ms;
            if !keep {
                expired.push(String::from_utf8_lossy(bytes_of(arena, slot)).into_owned());
                freed += slot.len as usize;
            }
            keep
        });
        self.garbage += freed;
        self.compact_if_wasteful();
        expired
    }

    /// Rewrites the arena without forgotten keys once they are half of it.
    fn compact_if_wasteful(&mut self) {
        if self.garbage == 0 || self.garbage * 2 < self.arena.len() {
            return;
        }
        let mut arena = Vec::with_capacity(self.arena.len() - self.garbage);
        for slot in self.slots.iter_mut() {
            let bytes = bytes_of(&self.arena, slot);
            // The compacted arena is smaller than the current one, whose
            // offsets all fit a u32.
            slot.offset = u32::try_from(arena.len()).unwrap_or(u32::MAX);
            arena.extend_from_slice(bytes);
        }
        self.arena = arena;
        self.garbage = 0;
    }

    /// Notes that input `source_offset` has its output (ignored when
    /// negative: an output whose header did not say).
    pub fn covered_input(&mut self, source_offset: i64) {
        if source_offset >= 0 {
            self.forwarded_through = Some(
                self.forwarded_through
                    .map_or(source_offset, |o| o.max(source_offset)),
            );
        }
    }

    /// Whether the input at `offset` already has its output.
    pub fn already_forwarded(&self, offset: i64) -> bool {
        self.forwarded_through
            .is_some_and(|through| offset <= through)
    }

    /// Notes that the changelog covers the output up to `offset`.
    pub fn covered_output(&mut self, offset: i64) {
        self.last_output_offset = Some(self.last_output_offset.map_or(offset, |o| o.max(offset)));
    }

    /// Number of remembered keys.
    pub fn len(&self) -> usize {
        self.slots.len()
    }

    /// Whether no key is remembered.
    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
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
    fn compaction_keeps_every_remaining_key_findable() {
        let mut s = PartitionState::default();
        for i in 0..1000 {
            s.remember(&format!("source:event-{i}"), i);
        }
        // Forget most of them, one by one and by expiry: compaction runs.
        for i in (0..1000).filter(|i| i % 3 == 0) {
            s.forget(&format!("source:event-{i}"));
        }
        let expired = s.expire(600, 100); // first seen before 500 → expired
        assert!(!expired.is_empty());
        assert!(
            s.arena.len() < 1000 * "source:event-999".len(),
            "the arena was compacted"
        );
        for i in 0..1000i64 {
            let key = format!("source:event-{i}");
            let expected = if i % 3 == 0 || i <= 500 {
                Decision::Forward
            } else {
                Decision::Duplicate
            };
            assert_eq!(s.decide(&key, 600, 100_000), expected, "{key}");
        }
        // Remembering a known key again only updates its time.
        let before = s.len();
        s.remember("source:event-998", 7);
        assert_eq!(s.len(), before);
        assert_eq!(s.decide("source:event-998", 1000, 100), Decision::Forward);
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
