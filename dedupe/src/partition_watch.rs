//! Noticing, while running, that a co-partitioned topic's partition count
//! changed. Dedupe's state for a key lives on the key's partition of
//! `properties.normalized`, `properties.events` and `dedupe.seen`: adding
//! partitions to any of them moves keys to partitions whose state never saw
//! them (duplicates for up to the TTL) or makes a restore read the wrong
//! changelog. So the loop re-reads the counts every
//! [`CHECK_EVERY`] and, on a change, stops consuming and says what changed
//! and what to do (README, "Changing partition counts"), in one log line and
//! on `/health`.

use std::time::Duration;

/// How often the counts are re-read.
pub const CHECK_EVERY: Duration = Duration::from_secs(15);

/// The problem to report when `now` differs from `at_start` (same topics,
/// same order), or `None`.
pub fn changed(topics: &[String], at_start: &[usize], now: &[usize]) -> Option<String> {
    let changes: Vec<String> = topics
        .iter()
        .zip(at_start.iter().zip(now))
        .filter(|(_, (before, after))| before != after)
        .map(|(topic, (before, after))| format!("{topic} from {before} to {after}"))
        .collect();
    (!changes.is_empty()).then(|| {
        format!(
            "partition count changed while running ({}); dedupe stopped consuming so no key's \
             state is split. To re-partition: stop ingest, let every group's lag reach 0, stop \
             the stages, give {} the same partition count (config/topics.toml, then \
             create-topics), and restart (README, \"Changing partition counts\")",
            changes.join(", "),
            topics.join(", ")
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_change_names_the_topic_the_counts_and_the_procedure() {
        let topics = vec!["n".to_string(), "e".to_string(), "s".to_string()];
        assert_eq!(changed(&topics, &[4, 4, 4], &[4, 4, 4]), None);
        let problem = changed(&topics, &[4, 4, 4], &[8, 4, 4]).expect("a change");
        assert!(
            problem.starts_with("partition count changed while running (n from 4 to 8)"),
            "{problem}"
        );
        assert!(problem.contains("Changing partition counts"), "{problem}");
    }
}
