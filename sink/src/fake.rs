//! Test doubles for the sink's core (compiled for unit tests only): a
//! store that keeps rows and offsets in memory with the same rules as the
//! PostgreSQL one (rows unique on the dedupe key, offsets only move
//! forward, all or nothing per batch), a DLQ that records what it
//! acknowledged, and small builders of events and batches. No broker, no
//! PostgreSQL.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Mutex, OnceLock, PoisonError};
use std::time::{Duration, Instant};

use common::produce::OutRecord;
use common::stage_loop::RetryPolicy;
use rdkafka::Timestamp;
use rdkafka::message::OwnedMessage;

use crate::batch::Batch;
use crate::rows::{EventToWrite, Position};
use crate::store::{Sink, WriteError};
use common::stage_loop::Cancel;

use crate::writer::{Committer, DeadLetterSink, DeadLetters};

/// A retry policy fast enough for tests.
pub(crate) const FAST: RetryPolicy = RetryPolicy {
    initial: Duration::from_millis(1),
    max: Duration::from_millis(4),
    max_attempts: None,
};

/// A runtime for the committer's async calls.
pub(crate) fn runtime() -> &'static tokio::runtime::Runtime {
    static RUNTIME: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RUNTIME.get_or_init(|| {
        #[allow(clippy::expect_used)]
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("a test runtime")
    })
}

/// The event read at `partition`/`offset`, with dedupe key `k<p>-<o>`.
pub(crate) fn event_at(partition: i32, offset: i64) -> EventToWrite {
    let mut event = schemas::sample::price_change();
    event.dedupe_key = format!("k{partition}-{offset}");
    EventToWrite {
        event,
        position: Position {
            topic: "events".into(),
            partition,
            offset,
        },
    }
}

/// The consumed record an event came from.
pub(crate) fn original_of(event: &EventToWrite) -> OwnedMessage {
    OwnedMessage::new(
        Some(vec![0, 0, 0, 0, 1]),
        Some(event.event.property_key.clone().into_bytes()),
        event.position.topic.clone(),
        Timestamp::NotAvailable,
        event.position.partition,
        event.position.offset,
        None,
    )
}

/// A batch of the events at these positions.
pub(crate) fn batch_of(records: &[(i32, i64)]) -> Batch {
    let mut batch = Batch::default();
    for &(partition, offset) in records {
        let event = event_at(partition, offset);
        let original = original_of(&event);
        batch.push(event, original, tracing::Span::none(), Instant::now());
    }
    batch
}

/// An in-memory store with PostgreSQL's rules.
#[derive(Debug, Default)]
pub(crate) struct FakeStore {
    /// Dedupe key → (partition, offset) of the row.
    pub(crate) rows: BTreeMap<String, (i32, i64)>,
    /// Partition → next offset.
    pub(crate) offsets: HashMap<i32, i64>,
    /// Every call fails as unavailable while set.
    pub(crate) down: bool,
    /// The next this many writes fail as unavailable.
    pub(crate) unavailable: u32,
    /// Dedupe keys whose rows the store refuses for their content.
    pub(crate) refused: HashSet<String>,
    /// Batches committed.
    pub(crate) commits: u32,
}

impl FakeStore {
    /// A store that cannot be reached.
    pub(crate) fn down() -> Self {
        Self {
            down: true,
            ..Self::default()
        }
    }

    /// A store whose next `n` writes fail.
    pub(crate) fn unavailable_for(n: u32) -> Self {
        Self {
            unavailable: n,
            ..Self::default()
        }
    }
}

impl Sink for FakeStore {
    async fn write_batch(
        &mut self,
        _group: &str,
        _topic: &str,
        events: &[EventToWrite],
        next_offsets: &HashMap<i32, i64>,
    ) -> Result<(), WriteError> {
        if self.down || self.unavailable > 0 {
            self.unavailable = self.unavailable.saturating_sub(1);
            return Err(WriteError::Unavailable("connection refused".into()));
        }
        if events
            .iter()
            .any(|e| self.refused.contains(&e.event.dedupe_key))
        {
            return Err(WriteError::Rejected("ERROR 23514: check violation".into()));
        }
        for e in events {
            let position = (e.position.partition, e.position.offset);
            let _ = self
                .rows
                .entry(e.event.dedupe_key.clone())
                .or_insert(position);
        }
        for (&partition, &next) in next_offsets {
            let stored = self.offsets.entry(partition).or_insert(next);
            *stored = (*stored).max(next);
        }
        self.commits += 1;
        Ok(())
    }

    async fn find_rejected(
        &mut self,
        events: &[EventToWrite],
    ) -> anyhow::Result<Vec<(usize, String)>> {
        anyhow::ensure!(!self.down, "connection refused");
        Ok(events
            .iter()
            .enumerate()
            .filter(|(_, e)| self.refused.contains(&e.event.dedupe_key))
            .map(|(i, _)| (i, "ERROR 23514: check violation".to_string()))
            .collect())
    }

    async fn stored_offsets(
        &mut self,
        _group: &str,
        _topic: &str,
    ) -> anyhow::Result<HashMap<i32, i64>> {
        anyhow::ensure!(!self.down, "connection refused");
        Ok(self.offsets.clone())
    }

    async fn stored_keys(&mut self, keys: &[&str]) -> anyhow::Result<HashSet<String>> {
        anyhow::ensure!(!self.down, "connection refused");
        Ok(keys
            .iter()
            .filter(|k| self.rows.contains_key(**k))
            .map(|k| (*k).to_string())
            .collect())
    }
}

/// A DLQ that records what it acknowledged.
#[derive(Debug, Default)]
pub(crate) struct FakeDeadLetters {
    sent: Mutex<Vec<OutRecord>>,
    /// Every send fails while set.
    pub(crate) down: bool,
}

impl FakeDeadLetters {
    /// The dead letters acknowledged so far.
    pub(crate) fn sent(&self) -> Vec<OutRecord> {
        self.sent
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

impl DeadLetterSink for FakeDeadLetters {
    async fn send(&self, records: &[OutRecord]) -> Result<(), String> {
        if self.down {
            return Err("all brokers down".into());
        }
        self.sent
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .extend_from_slice(records);
        Ok(())
    }
}

/// A committer over `store` and a fake DLQ, retrying fast, stopped by `cancel`.
pub(crate) fn committer(
    store: FakeStore,
    cancel: &Cancel,
) -> Committer<FakeStore, FakeDeadLetters> {
    Committer {
        store,
        dead_letters: Some(DeadLetters {
            sink: FakeDeadLetters::default(),
            topic: "dlq".into(),
            budget: 1 << 20,
        }),
        runtime: runtime().handle().clone(),
        cancel: cancel.clone(),
        policy: FAST,
        group: "sink".into(),
        topic: "events".into(),
    }
}
