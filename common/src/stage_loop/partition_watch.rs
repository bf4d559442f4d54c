//! Noticing, while running, that a co-partitioned topic's partition count
//! changed. A co-partitioned stage keeps a key's state on the key's
//! partition of its input and of the topics it restores from (dedupe:
//! `properties.normalized`, `properties.events` and `dedupe.seen`; the
//! state writer: `properties.events` and `properties.latest`): adding
//! partitions to any of them moves keys to partitions whose state never
//! saw them, or makes a restore read the wrong partition. So a thread of
//! its own ([`spawn`], one long-lived client, so the loop never waits for
//! metadata) re-reads the counts every [`CHECK_EVERY`]; on a change the
//! loop stops consuming and says what changed and what to do (README,
//! "Changing partition counts"), in one log line and on `/health`.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use anyhow::Context as _;
use rdkafka::consumer::{BaseConsumer, Consumer};

use crate::kafka::KafkaSettings;

/// What the watching thread found: the problem, once counts changed.
#[derive(Debug, Clone, Default)]
pub struct Watch {
    problem: Arc<Mutex<Option<String>>>,
}

impl Watch {
    /// The problem to report, once the counts changed.
    pub fn problem(&self) -> Option<String> {
        self.problem
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

/// Starts the thread that re-reads `topics`' partition counts every
/// [`CHECK_EVERY`] and compares them with `at_start`, for the stage named
/// `stage`. A failed read is skipped (the next one is tried).
pub fn spawn(
    kafka: &KafkaSettings,
    stage: &'static str,
    topics: Vec<String>,
    at_start: Vec<usize>,
) -> anyhow::Result<Watch> {
    let client: BaseConsumer = kafka
        .reader()
        .set("allow.auto.create.topics", "false")
        .create()
        .context("cannot create the partition watch's client")?;
    let watch = Watch::default();
    let found = Arc::clone(&watch.problem);
    let _thread = std::thread::Builder::new()
        .name("partition-watch".into())
        .spawn(move || {
            loop {
                std::thread::sleep(CHECK_EVERY);
                let mut now = Vec::with_capacity(topics.len());
                for topic in &topics {
                    match client.fetch_metadata(Some(topic), Duration::from_secs(10)) {
                        Ok(metadata) => now.push(
                            metadata
                                .topics()
                                .first()
                                .map_or(0, |t| t.partitions().len()),
                        ),
                        Err(e) => {
                            tracing::debug!(topic, error = %e, "cannot re-read the partition count");
                            break;
                        }
                    }
                }
                if now.len() != topics.len() || now.contains(&0) {
                    continue;
                }
                if let Some(problem) = changed(stage, &topics, &at_start, &now) {
                    *found.lock().unwrap_or_else(PoisonError::into_inner) = Some(problem);
                    return;
                }
            }
        })
        .context("cannot start the partition watch")?;
    Ok(watch)
}

/// How often the counts are re-read.
pub const CHECK_EVERY: Duration = Duration::from_secs(15);

/// The problem `stage` reports when `now` differs from `at_start` (same
/// topics, same order), or `None`.
pub fn changed(
    stage: &str,
    topics: &[String],
    at_start: &[usize],
    now: &[usize],
) -> Option<String> {
    let changes: Vec<String> = topics
        .iter()
        .zip(at_start.iter().zip(now))
        .filter(|(_, (before, after))| before != after)
        .map(|(topic, (before, after))| format!("{topic} from {before} to {after}"))
        .collect();
    (!changes.is_empty()).then(|| {
        format!(
            "partition count changed while running ({}); {stage} stopped consuming so no key's \
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
        assert_eq!(changed("dedupe", &topics, &[4, 4, 4], &[4, 4, 4]), None);
        let problem = changed("dedupe", &topics, &[4, 4, 4], &[8, 4, 4]).expect("a change");
        assert!(
            problem.starts_with("partition count changed while running (n from 4 to 8)"),
            "{problem}"
        );
        assert!(problem.contains("Changing partition counts"), "{problem}");
        assert!(problem.contains("dedupe stopped consuming"), "{problem}");
    }
}
