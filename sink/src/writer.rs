//! [`Committer`]: the writer's decisions for one batch, over any [`Sink`]
//! and any [`DeadLetterSink`] (the runner's are PostgreSQL and Kafka; the
//! tests' are fakes):
//!
//! - the batch and its offsets are written in one store transaction,
//!   retried with [`RetryPolicy`] while the store is unavailable, and given
//!   up only on stop ([`Interrupted`]: nothing committed, the records are
//!   read again);
//! - when the store refuses rows for their content, exactly those rows are
//!   found, dead-lettered, and the batch commits past them only once Kafka
//!   acknowledged their dead letters ([`send_dead_letters`]); a replay,
//!   which must not dead-letter again, reports them instead.

use std::collections::{HashMap, HashSet};

use common::dead_letter::dead_letter_within;
use common::produce::{OutRecord, send_all};
use common::stage_loop::{Cancel, GaveUp, RetryPolicy, Verdict};
use rdkafka::producer::FutureProducer;
use tokio::runtime::Handle;

use crate::batch::Batch;
use crate::store::{Landed, Sink, WriteError};

/// The stage name on the sink's dead letters (`error.stage`).
pub const STAGE: &str = "sink";

/// Where dead letters go.
#[allow(async_fn_in_trait)]
pub trait DeadLetterSink {
    /// Sends `records` and waits until every one is acknowledged.
    async fn send(&self, records: &[OutRecord]) -> Result<(), String>;
}

impl DeadLetterSink for FutureProducer {
    async fn send(&self, records: &[OutRecord]) -> Result<(), String> {
        send_all(self, records)
            .await
            .map(drop)
            .map_err(|e| e.to_string())
    }
}

/// Sends `records` to `sink`, retried by `policy` until Kafka acknowledges
/// every one. False if the stage stopped first: then the records' offsets
/// must not be committed (they are read again, and dead-lettered again).
pub fn send_dead_letters<D: DeadLetterSink>(
    runtime: &Handle,
    cancel: &Cancel,
    policy: &RetryPolicy,
    sink: &D,
    records: &[OutRecord],
) -> bool {
    policy
        .run_blocking(cancel, "writing to the DLQ", |_| {
            runtime.block_on(sink.send(records)).map_err(Verdict::Retry)
        })
        .is_ok()
}

/// Where the rows a store refuses go.
#[derive(Debug)]
pub struct DeadLetters<D> {
    /// The sender.
    pub sink: D,
    /// The DLQ topic.
    pub topic: String,
    /// The largest record the producer may send
    /// ([`common::produce::record_budget`]).
    pub budget: usize,
}

/// The batch was not committed: the stage is stopping.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Interrupted;

/// What a committed batch did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Commit {
    /// Partition → the next offset now stored.
    pub offsets: HashMap<i32, i64>,
    /// The rows the store refused (dedupe key, reason), left out of it.
    pub rejected: Vec<(String, String)>,
    /// What the batch did to its properties.
    pub landed: Landed,
}

/// Commits batches to a store.
pub struct Committer<S, D> {
    /// The store.
    pub store: S,
    /// Where refused rows are dead-lettered (`None`: only reported).
    pub dead_letters: Option<DeadLetters<D>>,
    /// Runs the store's and the producer's async calls.
    pub runtime: Handle,
    /// The stage's stop signal.
    pub cancel: Cancel,
    /// How store and DLQ calls are retried.
    pub policy: RetryPolicy,
    /// The consumer group whose offsets the store keeps.
    pub group: String,
    /// The input topic.
    pub topic: String,
}

impl<S: Sink, D: DeadLetterSink> Committer<S, D> {
    /// Writes `batch` and its offsets, all or nothing, retrying until it is
    /// committed or the stage stops. Rows the store refuses are removed
    /// from `batch` (dead-lettered first, when configured).
    pub fn commit(&mut self, batch: &mut Batch) -> Result<Commit, Interrupted> {
        let mut commit = Commit::default();
        if batch.is_empty() {
            return Ok(commit);
        }
        let mut unexplained = 0;
        loop {
            let (store, runtime) = (&mut self.store, &self.runtime);
            let (group, topic) = (&self.group, &self.topic);
            let written =
                self.policy
                    .run_blocking(&self.cancel, "database write", |_| {
                        match runtime.block_on(store.write_batch(
                            group,
                            topic,
                            &batch.events,
                            &batch.next_offsets,
                        )) {
                            Ok(landed) => Ok(landed),
                            Err(WriteError::Rejected(reason)) => Err(Verdict::Fatal(reason)),
                            Err(e @ WriteError::Unavailable(_)) => {
                                Err(Verdict::Retry(e.to_string()))
                            }
                        }
                    });
            let reason = match written {
                Ok(landed) => {
                    commit.offsets.clone_from(&batch.next_offsets);
                    commit.landed = landed;
                    return Ok(commit);
                }
                Err(GaveUp::Fatal(reason)) => reason,
                Err(_) => return Err(Interrupted),
            };
            tracing::warn!(%reason, "PostgreSQL rejected a row; finding it");
            let rejected = self.find_rejected(batch)?;
            if rejected.is_empty() {
                // Not reproducible row by row: retry the batch as it is.
                unexplained += 1;
                if self.cancel.sleep_blocking(self.policy.delay(unexplained)) {
                    return Err(Interrupted);
                }
                continue;
            }
            self.dispose(batch, &rejected)?;
            let indices: HashSet<usize> = rejected.iter().map(|(i, _)| *i).collect();
            commit
                .rejected
                .extend(rejected.into_iter().filter_map(|(i, reason)| {
                    Some((batch.events.get(i)?.event.dedupe_key.clone(), reason))
                }));
            batch.remove_rows(&indices);
        }
    }

    /// The rows of `batch` the store refuses, retried while it is unavailable.
    fn find_rejected(&mut self, batch: &Batch) -> Result<Vec<(usize, String)>, Interrupted> {
        let (store, runtime) = (&mut self.store, &self.runtime);
        self.policy
            .run_blocking(&self.cancel, "testing the batch's rows", |_| {
                runtime
                    .block_on(store.find_rejected(&batch.events))
                    .map_err(|e| Verdict::Retry(format!("{e:#}")))
            })
            .map_err(|_| Interrupted)
    }

    /// Dead-letters the refused rows and waits for Kafka's acknowledgement
    /// (or only logs them, for a replay).
    fn dispose(&self, batch: &Batch, rejected: &[(usize, String)]) -> Result<(), Interrupted> {
        let Some(dead_letters) = &self.dead_letters else {
            return Ok(());
        };
        let records: Vec<OutRecord> = rejected
            .iter()
            .filter_map(|(index, reason)| {
                let original = batch.originals.get(*index)?;
                tracing::error!(
                    partition = rdkafka::Message::partition(original),
                    offset = rdkafka::Message::offset(original),
                    %reason,
                    "event rejected by PostgreSQL; dead-lettered"
                );
                Some(dead_letter_within(
                    original,
                    &dead_letters.topic,
                    STAGE,
                    "rejected",
                    reason,
                    dead_letters.budget,
                ))
            })
            .collect();
        let sent = send_dead_letters(
            &self.runtime,
            &self.cancel,
            &self.policy,
            &dead_letters.sink,
            &records,
        );
        if sent { Ok(()) } else { Err(Interrupted) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fake::{FakeStore, batch_of, committer};

    #[test]
    fn an_unavailable_store_is_retried_until_the_batch_commits() {
        let mut committer = committer(FakeStore::unavailable_for(3), &Cancel::new());
        let mut batch = batch_of(&[(0, 0), (0, 1)]);
        let commit = committer.commit(&mut batch).expect("committed");
        assert_eq!(commit.offsets, HashMap::from([(0, 2)]));
        assert_eq!(committer.store.offsets, HashMap::from([(0, 2)]));
        assert_eq!(committer.store.rows.len(), 2);
    }

    #[test]
    fn a_batch_written_again_leaves_its_properties_unchanged() {
        let mut committer = committer(FakeStore::default(), &Cancel::new());
        let mut batch = batch_of(&[(0, 0), (0, 1)]);
        let first = committer.commit(&mut batch).expect("committed");
        let counts = |c: &Commit| (c.landed.properties_written, c.landed.properties_unchanged);
        assert_eq!(counts(&first), (1, 0));
        // The same records read again (a crash before the Kafka commit, a replay).
        let mut again = batch_of(&[(0, 0), (0, 1)]);
        let second = committer.commit(&mut again).expect("committed");
        assert_eq!(counts(&second), (0, 1));
        assert_eq!(committer.store.property_writes, 1);
        assert_eq!(committer.store.rows.len(), 2, "each event stored once");
    }

    #[test]
    fn a_failed_commit_on_stop_stores_nothing() {
        let cancel = Cancel::new();
        let mut committer = committer(FakeStore::down(), &cancel);
        cancel.cancel();
        let mut batch = batch_of(&[(0, 0)]);
        assert_eq!(committer.commit(&mut batch), Err(Interrupted));
        assert!(committer.store.offsets.is_empty() && committer.store.rows.is_empty());
    }

    #[test]
    fn refused_rows_are_dead_lettered_before_the_batch_moves_past_them() {
        let mut store = FakeStore::default();
        let _ = store.refused.insert("k0-1".into());
        let mut committer = committer(store, &Cancel::new());
        let mut batch = batch_of(&[(0, 0), (0, 1), (0, 2)]);
        let commit = committer.commit(&mut batch).expect("committed");
        assert_eq!(commit.rejected.len(), 1);
        assert_eq!(commit.rejected[0].0, "k0-1");
        let sent = committer.dead_letters.as_ref().expect("dlq").sink.sent();
        assert_eq!(sent.len(), 1, "one dead letter, acknowledged");
        assert_eq!(committer.store.offsets, HashMap::from([(0, 3)]));
        let keys: Vec<&String> = committer.store.rows.keys().collect();
        assert_eq!(keys, ["k0-0", "k0-2"]);
    }

    #[test]
    fn an_unacknowledged_dead_letter_keeps_its_offset_uncommitted() {
        let cancel = Cancel::new();
        let mut store = FakeStore::default();
        let _ = store.refused.insert("k0-1".into());
        let mut committer = committer(store, &cancel);
        if let Some(dlq) = committer.dead_letters.as_mut() {
            dlq.sink.down = true;
        }
        let stopper = cancel.clone();
        let thread = std::thread::spawn(move || {
            std::thread::sleep(std::time::Duration::from_millis(50));
            stopper.cancel();
        });
        let mut batch = batch_of(&[(0, 0), (0, 1)]);
        assert_eq!(committer.commit(&mut batch), Err(Interrupted));
        thread.join().expect("the stopper ends");
        assert!(committer.store.offsets.is_empty(), "nothing committed");
        assert!(committer.store.rows.is_empty());
    }

    #[test]
    fn without_a_dlq_refused_rows_are_only_reported() {
        let mut store = FakeStore::default();
        let _ = store.refused.insert("k1-5".into());
        let mut committer = committer(store, &Cancel::new());
        committer.dead_letters = None;
        let mut batch = batch_of(&[(1, 5), (1, 6)]);
        let commit = committer.commit(&mut batch).expect("committed");
        assert_eq!(commit.rejected.len(), 1);
        assert_eq!(committer.store.rows.len(), 1);
    }
}
