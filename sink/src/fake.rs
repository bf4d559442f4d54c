//! Test doubles for the sink's core (compiled for unit tests only): a
//! store that keeps rows and offsets in memory with the same rules as the
//! PostgreSQL one (rows unique on the dedupe key, each property's row its
//! merged state by the same fold and row mapping, written only when it
//! changed and read back from its JSON, offsets only move forward, all or
//! nothing per batch), a DLQ that records what it acknowledged, and small
//! builders of events and batches. No broker, no PostgreSQL.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Mutex, OnceLock, PoisonError};
use std::time::{Duration, Instant};

use common::produce::OutRecord;
use common::stage_loop::RetryPolicy;
use rdkafka::Timestamp;
use rdkafka::message::OwnedMessage;

use crate::batch::Batch;
use crate::fold::fold;
use crate::rows::{EventToWrite, Position, PropertyRow, property_row};
use crate::store::{Landed, Sink, WriteError};
use crate::stored::{StoredColumns, StoredRow};
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
    /// Property key → its `properties` row.
    pub(crate) properties: BTreeMap<String, PropertyRow>,
    /// Property rows written, over all batches.
    pub(crate) property_writes: usize,
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
    ) -> Result<Landed, WriteError> {
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
        let stored: HashMap<String, StoredRow> = self
            .properties
            .iter()
            .map(|(key, row)| (key.clone(), StoredRow::of(&stored_columns(row))))
            .collect();
        let folded = fold(events, &stored);
        let written: Vec<PropertyRow> = folded
            .changed
            .iter()
            .map(property_row)
            .collect::<Result<_, _>>()
            .map_err(|e| WriteError::Unavailable(e.to_string()))?;
        for e in events {
            let position = (e.position.partition, e.position.offset);
            let _ = self
                .rows
                .entry(e.event.dedupe_key.clone())
                .or_insert(position);
        }
        let landed = Landed {
            properties_written: written.len(),
            properties_unchanged: folded.unchanged,
        };
        self.property_writes += written.len();
        for mut row in written {
            row.existed = true;
            let _ = self.properties.insert(row.property_key.clone(), row);
        }
        for (&partition, &next) in next_offsets {
            let stored = self.offsets.entry(partition).or_insert(next);
            *stored = (*stored).max(next);
        }
        self.commits += 1;
        Ok(landed)
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

/// What PostgreSQL's `SELECT_STATES` reads of a stored row.
pub(crate) fn stored_columns(row: &PropertyRow) -> StoredColumns {
    StoredColumns {
        property_key: row.property_key.clone(),
        state: Some(row.state.clone()),
        snapshot: None,
        source: row.source.clone(),
        provider: row.provider.to_string(),
        provider_property_id: row.provider_property_id.clone(),
        last_event_type: row.last_event_type.map(str::to_string),
        last_event_at: row.last_event_at,
        last_event_partition: row.last_event_partition,
        last_event_offset: row.last_event_offset,
        last_dedupe_key: row.last_dedupe_key.clone(),
        last_normalizer_version: row.last_normalizer_version.clone(),
        last_event_id: None,
        last_received_at: None,
        first_seen_at: None,
        last_seen_at: None,
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
