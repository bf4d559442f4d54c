//! The ids of one delivery as bulk requests: [`plan`] de-duplicates the
//! `flxId`s a delivery names (the same property is fetched once per
//! delivery, whatever its events say) and splits them into chunks of the
//! configured size, one `POST …/_many` each; [`missing`] says which ids of
//! a chunk its answer did not return, to fetch one by one with
//! `GET …/{flxId}` (and, if still absent, dead-letter).

use std::collections::HashSet;
use std::num::NonZeroUsize;

/// The distinct ids in first-seen order, in chunks of at most `size`.
pub fn plan<'a, I>(ids: I, size: NonZeroUsize) -> Vec<Vec<&'a str>>
where
    I: IntoIterator<Item = &'a str>,
{
    let mut seen = HashSet::new();
    let distinct: Vec<&str> = ids.into_iter().filter(|id| seen.insert(*id)).collect();
    distinct.chunks(size.get()).map(<[&str]>::to_vec).collect()
}

/// The ids of `requested` that `returned` (the ids of a bulk answer) does
/// not hold, in `requested`'s order; ids returned but not requested are
/// ignored.
pub fn missing<'a, 'b, R>(requested: &[&'a str], returned: R) -> Vec<&'a str>
where
    R: IntoIterator<Item = &'b str>,
{
    let returned: HashSet<&str> = returned.into_iter().collect();
    requested
        .iter()
        .copied()
        .filter(|id| !returned.contains(id))
        .collect()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use proptest::prelude::*;

    fn size(n: usize) -> NonZeroUsize {
        NonZeroUsize::new(n).unwrap()
    }

    #[test]
    fn duplicates_are_fetched_once_and_chunks_keep_first_seen_order() {
        let ids = ["b", "a", "b", "c", "a", "d", "e"];
        assert_eq!(
            plan(ids, size(2)),
            vec![vec!["b", "a"], vec!["c", "d"], vec!["e"]]
        );
        assert_eq!(plan(ids, size(100)), vec![vec!["b", "a", "c", "d", "e"]]);
        assert!(plan([], size(3)).is_empty());
    }

    #[test]
    fn missing_ids_are_those_the_bulk_answer_left_out() {
        let requested = ["a", "b", "c", "d"];
        assert_eq!(missing(&requested, ["c", "a", "zz"]), vec!["b", "d"]);
        assert!(missing(&requested, requested).is_empty());
        assert_eq!(missing(&requested, []), requested.to_vec());
    }

    proptest! {
        /// Every id of the delivery is in exactly one chunk, no chunk is
        /// empty or larger than the size, and ids plus missing ids of a
        /// partial answer give the chunk back.
        #[test]
        fn every_id_once_in_bounded_chunks(
            ids in proptest::collection::vec("[a-e]{1,2}", 0..60),
            chunk in 1usize..8,
            keep in any::<u64>(),
        ) {
            let chunks = plan(ids.iter().map(String::as_str), size(chunk));
            let flat: Vec<&str> = chunks.iter().flatten().copied().collect();
            let distinct: HashSet<&str> = ids.iter().map(String::as_str).collect();
            prop_assert_eq!(flat.len(), distinct.len());
            prop_assert_eq!(flat.iter().copied().collect::<HashSet<_>>(), distinct);
            for (i, c) in chunks.iter().enumerate() {
                prop_assert!(!c.is_empty() && c.len() <= chunk);
                let returned: Vec<&str> = c
                    .iter()
                    .enumerate()
                    .filter(|(j, _)| keep >> ((i + j) % 64) & 1 == 1)
                    .map(|(_, id)| *id)
                    .collect();
                let absent = missing(c, returned.iter().copied());
                prop_assert_eq!(absent.len() + returned.len(), c.len());
                prop_assert!(absent.iter().all(|id| !returned.contains(id)));
            }
        }
    }
}
