//! [`restore_pending`]: restoring pending partitions outside the rebalance
//! callback, for an output-first stage whose state per input partition is
//! rebuilt from topics (dedupe, the state writer).
//!
//! A partition is pending when it was just assigned or when a batch on it
//! was abandoned; it stays paused until its state is back. The loop calls
//! [`restore_pending`] before each batch: it pauses every assigned
//! partition, restores the pending ones on a thread of their own (the
//! stage's `restore`, whose reads fail only when they stop making progress,
//! [`super::read_to_end`]), and keeps polling meanwhile, so the consumer
//! stays in its group (`max.poll.interval.ms`) and rebalance callbacks run.
//! Progress is logged and counts as the loop's progress on `/health`.
//! Each restored partition is handed to the stage's `prepare` (dedupe
//! writes the changelog records its restore found missing), moved to
//! where it resumes (its committed offset, or past the last input the
//! restore found already done, whichever is further) and resumed. A
//! restore that was overtaken by a revocation or a reset is dropped; a
//! failed one is retried at the next call.

use std::collections::HashMap;
use std::sync::mpsc;
use std::time::Duration;

use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext};
use rdkafka::{Message, Offset};

use super::{Cancel, Liveness, Partitions, Progress};
use crate::kafka::partition_list;

/// The loop's side of a restore: its consumer, its partitions and how it
/// reports.
pub struct Restoring<'a, C: ConsumerContext, S> {
    /// The stage's group consumer.
    pub consumer: &'a BaseConsumer<C>,
    /// Its partitions.
    pub partitions: &'a Partitions<S>,
    /// The input topic.
    pub input_topic: &'a str,
    /// The stop signal.
    pub cancel: &'a Cancel,
    /// Where progress is reported.
    pub liveness: &'a Liveness,
}

/// A restored partition, ready to resume.
#[derive(Debug)]
pub struct Restored<S> {
    /// Its state.
    pub state: S,
    /// The highest input offset the restore found already done, if any:
    /// reading resumes past it when that is beyond the committed offset.
    pub done_through: Option<i64>,
}

/// What the restore thread reports.
enum Report<R> {
    Progress(i32, String, Progress),
    Done(i32, anyhow::Result<R>),
}

/// Restores every pending partition still assigned here with `restore`
/// (on a thread of its own), hands each result to `prepare` (`None`: try
/// again at the next call), then resumes every assigned partition that has
/// its state.
pub fn restore_pending<C, S, R>(
    restoring: &Restoring<'_, C, S>,
    thread_name: &str,
    mut restore: impl FnMut(i32, &dyn Fn(&str, Progress)) -> anyhow::Result<R> + Send + 'static,
    mut prepare: impl FnMut(i32, R) -> Option<Restored<S>>,
) -> anyhow::Result<()>
where
    C: ConsumerContext,
    R: Send + 'static,
{
    let Restoring {
        consumer,
        partitions,
        input_topic,
        cancel,
        liveness,
    } = *restoring;
    if partitions.pending().is_empty() {
        return Ok(());
    }
    let assigned = assigned(consumer, input_topic)?;
    let pending: Vec<i32> = {
        let mut pending = partitions.pending();
        pending.retain(|p| assigned.contains(p));
        pending.iter().copied().collect()
    };
    if pending.is_empty() {
        return Ok(());
    }
    consumer.pause(&partition_list(input_topic, &assigned))?;
    tracing::info!(?pending, "restoring partition state");
    let (tx, rx) = mpsc::channel();
    let tickets: Vec<_> = pending.iter().map(|&p| (p, partitions.ticket(p))).collect();
    let to_restore = pending.clone();
    let _thread = std::thread::Builder::new()
        .name(thread_name.into())
        .spawn(move || {
            for partition in to_restore {
                let progress_tx = tx.clone();
                let report = move |topic: &str, progress: Progress| {
                    let _ =
                        progress_tx.send(Report::Progress(partition, topic.to_string(), progress));
                };
                let result = restore(partition, &report);
                if tx.send(Report::Done(partition, result)).is_err() {
                    return;
                }
            }
        })?;
    let mut left = pending.len();
    // Progress is records read: a read that is stuck still reports every
    // few seconds, and a failed restore is no progress either.
    let mut last_read: HashMap<(i32, String), u64> = HashMap::new();
    while left > 0 && !cancel.is_cancelled() {
        if let Some(Ok(message)) = consumer.poll(Duration::from_millis(100)) {
            // Fetched before the pause: read it again later, or, if the
            // consumer cannot move back, restore that partition too (which
            // moves it back to where it resumes).
            let partition = message.partition();
            if let Err(e) = consumer.seek(
                message.topic(),
                partition,
                Offset::Offset(message.offset()),
                Duration::from_secs(5),
            ) {
                tracing::warn!(partition, error = %e, "cannot move back; restoring the partition");
                partitions.reset([partition]);
            }
        }
        while let Ok(report) = rx.try_recv() {
            match report {
                Report::Progress(partition, topic, Progress { read, total }) => {
                    tracing::info!(partition, topic, read, total, "restoring");
                    let before = last_read.insert((partition, topic), read);
                    if before.is_none_or(|before| read > before) {
                        liveness.progressed();
                    }
                }
                Report::Done(partition, Err(e)) => {
                    left -= 1;
                    tracing::warn!(partition, error = %e, "restore failed; retrying");
                }
                Report::Done(partition, Ok(result)) => {
                    left -= 1;
                    liveness.progressed();
                    let current = tickets
                        .iter()
                        .find(|(p, _)| *p == partition)
                        .is_some_and(|&(_, ticket)| partitions.is_current(partition, ticket));
                    if !current {
                        tracing::info!(
                            partition,
                            "restore result dropped: the partition was revoked or reset while it ran"
                        );
                        continue;
                    }
                    if let Some(restored) = prepare(partition, result) {
                        resume_at(restoring, partition, restored);
                    }
                }
            }
        }
    }
    let ready: Vec<i32> = {
        let states = partitions.states();
        assigned
            .iter()
            .copied()
            .filter(|p| states.contains_key(p))
            .collect()
    };
    consumer.resume(&partition_list(input_topic, &ready))?;
    if !partitions.pending().is_empty() {
        let _ = cancel.sleep_blocking(Duration::from_secs(1));
    }
    Ok(())
}

/// Moves `partition` to where it resumes and installs its state; on a
/// failure it stays pending and is restored again.
fn resume_at<C: ConsumerContext, S>(
    restoring: &Restoring<'_, C, S>,
    partition: i32,
    restored: Restored<S>,
) {
    let Restoring {
        consumer,
        partitions,
        input_topic,
        ..
    } = *restoring;
    let committed = consumer.committed_offsets(
        partition_list(input_topic, &[partition]),
        Duration::from_secs(10),
    );
    let committed = match committed.map(|tpl| tpl.elements().first().map(|e| e.offset())) {
        Ok(Some(Offset::Offset(o))) => Some(o),
        Ok(_) => None,
        Err(e) => {
            tracing::warn!(partition, error = %e, "cannot read the committed offset; retrying the restore");
            return;
        }
    };
    let offset = match resume_offset(committed, restored.done_through) {
        Some(offset) => Offset::Offset(offset),
        None => Offset::Beginning,
    };
    if let Err(e) = consumer.seek(input_topic, partition, offset, Duration::from_secs(10)) {
        tracing::warn!(partition, error = %e, "cannot move to where the partition resumes; retrying the restore");
        return;
    }
    tracing::info!(partition, resumes_at = ?offset, "partition state restored");
    partitions.install(partition, restored.state);
}

/// Where a restored partition resumes: its committed offset, or past the
/// last input already done when that is further; `None`: the beginning.
pub fn resume_offset(committed: Option<i64>, done_through: Option<i64>) -> Option<i64> {
    match (committed, done_through.map(|o| o + 1)) {
        (Some(c), Some(d)) => Some(c.max(d)),
        (c, d) => c.or(d),
    }
}

/// The partitions of `topic` assigned to `consumer` now.
pub fn assigned<C: ConsumerContext>(
    consumer: &BaseConsumer<C>,
    topic: &str,
) -> anyhow::Result<Vec<i32>> {
    Ok(consumer
        .assignment()?
        .elements()
        .iter()
        .filter(|e| e.topic() == topic)
        .map(|e| e.partition())
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_partition_resumes_past_what_is_done_or_at_its_commit() {
        assert_eq!(resume_offset(None, None), None);
        assert_eq!(resume_offset(Some(10), None), Some(10));
        assert_eq!(resume_offset(None, Some(4)), Some(5));
        assert_eq!(resume_offset(Some(10), Some(4)), Some(10));
        assert_eq!(resume_offset(Some(10), Some(14)), Some(15));
    }
}
