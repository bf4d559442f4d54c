//! The writer thread: runs [`Committer::commit`] for each batch the
//! consumer hands over, one at a time, and answers each with a
//! [`Written`]; and [`drive`], which carries out the [`Step`]s the
//! protocol ([`WriteBehind`]) asks for against it. A writer thread that is
//! gone answers [`Written::Interrupted`], so the protocol stops before any
//! later batch can move past the lost one.

use std::collections::HashMap;
use std::sync::mpsc::{Receiver, SyncSender, TryRecvError, sync_channel};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Instant;

use anyhow::Context;
use rdkafka::producer::FutureProducer;

use crate::batch::Batch;
use crate::metrics::SinkMetrics;
use crate::store::PostgresSink;
use crate::write_behind::{Step, WriteBehind, Written};
use crate::writer::{Commit, Committer};

/// Locks `m`, whatever a panicking holder left.
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The consumer's end of the writer thread.
pub(crate) struct WriterHandle {
    jobs: SyncSender<Batch>,
    results: Mutex<Receiver<Written>>,
}

impl WriterHandle {
    /// Starts the writer thread around `committer`.
    pub(crate) fn spawn(
        mut committer: Committer<PostgresSink, FutureProducer>,
        metrics: Arc<SinkMetrics>,
    ) -> anyhow::Result<Self> {
        let (jobs, pending) = sync_channel::<Batch>(1);
        let (done, results) = sync_channel(1);
        let _thread = std::thread::Builder::new()
            .name("sink-writer".into())
            .spawn(move || {
                for mut batch in pending {
                    let started = Instant::now();
                    let outcome = match committer.commit(&mut batch) {
                        Ok(commit) => {
                            record(&metrics, &batch, started, &commit);
                            Written::Committed(commit.offsets)
                        }
                        Err(_) => {
                            tracing::warn!(
                                "stopping with an uncommitted batch; it will be read again"
                            );
                            Written::Interrupted
                        }
                    };
                    // The batch's spans close here, after its commit.
                    drop(batch);
                    if done.send(outcome).is_err() {
                        break;
                    }
                }
            })
            .context("cannot start the sink's writer thread")?;
        Ok(Self {
            jobs,
            results: Mutex::new(results),
        })
    }

    /// The outcome of the batch in flight, if the writer is done with it.
    pub(crate) fn try_collect(&self) -> Option<Written> {
        match lock(&self.results).try_recv() {
            Ok(outcome) => Some(outcome),
            Err(TryRecvError::Empty) => None,
            Err(TryRecvError::Disconnected) => Some(gone()),
        }
    }

    fn collect(&self) -> Written {
        lock(&self.results).recv().unwrap_or_else(|_| gone())
    }
}

fn gone() -> Written {
    tracing::error!("the sink's writer thread is gone");
    Written::Interrupted
}

fn record(metrics: &SinkMetrics, batch: &Batch, started: Instant, commit: &Commit) {
    metrics.commit_seconds.observe_duration(started.elapsed());
    let stage = &metrics.stage;
    stage.batch(batch.spans.len(), batch.started.unwrap_or(started));
    stage.records_out.inc_by(batch.events.len() as u64);
    stage.dead_letters.inc_by(commit.rejected.len() as u64);
    let landed = commit.landed;
    metrics
        .properties_unchanged
        .inc_by(landed.properties_unchanged as u64);
    tracing::info!(
        events = batch.events.len(),
        rejected = commit.rejected.len(),
        properties = landed.properties_written,
        unchanged = landed.properties_unchanged,
        commit_ms = started.elapsed().as_millis(),
        "batch committed"
    );
}

/// Carries out `next`'s steps until it says [`Step::Poll`] or
/// [`Step::Done`]: hands batches to the writer and collects outcomes (a
/// collected outcome may be one `try_collect` found). Returns the offsets
/// committed on the way.
pub(crate) fn drive(
    core: &Mutex<WriteBehind>,
    writer: &WriterHandle,
    mut next: impl FnMut(&mut WriteBehind) -> Step,
) -> HashMap<i32, i64> {
    let mut committed = HashMap::new();
    loop {
        let step = next(&mut lock(core));
        let outcome = match step {
            Step::Poll | Step::Done => return committed,
            Step::Collect => writer.collect(),
            Step::Write(batch) => match writer.jobs.send(batch) {
                Ok(()) => continue,
                Err(_) => gone(),
            },
        };
        if let Some(offsets) = lock(core).written(outcome) {
            committed.extend(offsets);
        }
    }
}
