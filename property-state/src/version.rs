//! The order in which events win a field: a total order on events that
//! does not depend on when they arrive, so the merge is commutative.
//!
//! A later event time wins; at equal times the smaller dedupe key, then
//! the newer normalizer version: a correction (a replay of the same bytes
//! through a fixed normalizer: the same time and key) wins over the version
//! it corrects. Nothing in the order depends on when or in which order
//! events arrive (a provider's "nothing changed" notification is marked
//! `unchanged` by its parser and takes no part).

use std::cmp::{Ordering, Reverse};

/// An event's rank for one field; greater wins.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rank<'a> {
    /// The event's time.
    pub occurred_at: i64,
    /// Its dedupe key.
    pub dedupe_key: &'a str,
    /// Its normalizer version's key ([`version_key`]).
    pub normalizer_version: Vec<u64>,
    /// The normalizer version as written: the last tie-break, so that two
    /// spellings of one version (`0.1.0`, `0.1.0+build.7`) are still
    /// ordered and the merge stays commutative.
    pub normalizer_text: &'a str,
}

impl Rank<'_> {
    fn key(&self) -> (i64, Reverse<&str>, &[u64], &str) {
        (
            self.occurred_at,
            Reverse(self.dedupe_key),
            &self.normalizer_version,
            self.normalizer_text,
        )
    }
}

impl Ord for Rank<'_> {
    fn cmp(&self, other: &Self) -> Ordering {
        self.key().cmp(&other.key())
    }
}

impl PartialOrd for Rank<'_> {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

/// A normalizer version's sort key, compared as a semantic version:
/// numbers compare as numbers ("0.10.0" is newer than "0.9.3") and a
/// pre-release sorts below its release ("0.2.0-rc.1" < "0.2.0"). The key is
/// the release's numbers, padded to three, then 1 for a release or 0 and
/// the pre-release's numbers; build metadata is ignored. The same key as
/// the sink's SQL `normalizer_version_key` (migration `0006`).
pub fn version_key(version: &str) -> Vec<u64> {
    let core = version.split('+').next().unwrap_or_default();
    let (release, pre) = match core.split_once('-') {
        Some((release, pre)) => (release, Some(pre)),
        None => (core, None),
    };
    let mut key = numbers_in(release);
    if key.len() < 3 {
        key.resize(3, 0);
    }
    match pre {
        None => key.push(1),
        Some(pre) => {
            key.push(0);
            key.extend(numbers_in(pre));
        }
    }
    key
}

/// The runs of digits in `text`, as numbers (a run too long for `u64`
/// counts as its largest value).
fn numbers_in(text: &str) -> Vec<u64> {
    text.split(|c: char| !c.is_ascii_digit())
        .filter(|part| !part.is_empty())
        .map(|part| part.parse().unwrap_or(u64::MAX))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rank<'a>(occurred_at: i64, key: &'a str, version: &'a str) -> Rank<'a> {
        Rank {
            occurred_at,
            dedupe_key: key,
            normalizer_version: version_key(version),
            normalizer_text: version,
        }
    }

    #[test]
    fn later_time_then_smaller_key_then_newer_version() {
        assert!(rank(2, "b", "0.1.0") > rank(1, "a", "0.9.0"));
        assert!(rank(1, "a", "0.1.0") > rank(1, "b", "0.9.0"));
        assert!(rank(1, "a", "0.2.0") > rank(1, "a", "0.1.0"));
        assert_eq!(
            rank(1, "a", "0.1.0").cmp(&rank(1, "a", "0.1.0")),
            Ordering::Equal
        );
    }

    #[test]
    fn versions_compare_by_their_numbers() {
        assert!(version_key("0.10.0") > version_key("0.9.3"));
        assert!(version_key("1.0.0") > version_key("0.99.99"));
        assert_eq!(version_key("0.1.0"), vec![0, 1, 0, 1]);
        assert_eq!(version_key("v0.1"), version_key("0.1.0"));
        assert_eq!(version_key("0.1.0+build.7"), version_key("0.1.0"));
    }

    #[test]
    fn a_pre_release_sorts_below_its_release_and_above_the_one_before() {
        assert!(version_key("0.2.0-rc1") < version_key("0.2.0"));
        assert!(version_key("0.2.0-rc.1") < version_key("0.2.0-rc.2"));
        assert!(version_key("0.2.0-rc.2") < version_key("0.2.0"));
        assert!(version_key("0.1.9") < version_key("0.2.0-alpha"));
        assert!(version_key("0.2.0-rc.10") > version_key("0.2.0-rc.9"));
        assert_eq!(version_key("0.2.0-rc.1"), vec![0, 2, 0, 0, 1]);
    }
}
