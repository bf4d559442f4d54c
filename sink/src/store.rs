//! Stores: the [`Sink`] trait and its PostgreSQL implementation.
//!
//! A store writes one batch and the consumed offsets atomically, and tells
//! the offsets it holds, so the consumer resumes exactly after the last
//! batch it committed. PostgreSQL does both in one transaction: the
//! batch's properties' stored states (locked) and its events, sent
//! together; the states merged with the batch's events by [`crate::fold`]
//! while PostgreSQL inserts the events; then the rows of the properties
//! whose state changed, then the offsets.

use std::collections::{HashMap, HashSet};

use tokio_postgres::{Client, NoTls, Row, Statement};

use crate::fold;
use crate::rows::{self, EventToWrite};
use crate::statements::{
    EventColumns, INSERT_EVENTS, PropertyColumns, SELECT_STATES, WRITE_PROPERTIES,
};
use crate::stored::{StoredColumns, StoredRow};

/// Why a batch was not written.
#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    /// The store refused some row's data (PostgreSQL SQLSTATE classes 22 and
    /// 23): retrying the same batch cannot succeed; find the rows and
    /// dead-letter them.
    #[error("the store rejected the batch's data: {0}")]
    Rejected(String),
    /// The store cannot be reached or failed otherwise: retry later.
    #[error("{0}")]
    Unavailable(String),
}

/// What a written batch did to its properties.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Landed {
    /// Properties whose state the batch changed: their rows were written.
    pub properties_written: usize,
    /// Properties the batch's events left as they were: not written.
    pub properties_unchanged: usize,
}

/// A destination for unique events.
#[allow(async_fn_in_trait)]
pub trait Sink {
    /// Writes `events` (each event's row, and the merged state of each of
    /// their properties that changed) and records `next_offsets` (partition
    /// → next offset to read) for `group`/`topic`, all or nothing.
    async fn write_batch(
        &mut self,
        group: &str,
        topic: &str,
        events: &[EventToWrite],
        next_offsets: &HashMap<i32, i64>,
    ) -> Result<Landed, WriteError>;

    /// The events of `events` the store refuses, with the reason, found
    /// without writing anything.
    async fn find_rejected(
        &mut self,
        events: &[EventToWrite],
    ) -> anyhow::Result<Vec<(usize, String)>>;

    /// The next offset to read per partition, as last committed by `write_batch`.
    async fn stored_offsets(
        &mut self,
        group: &str,
        topic: &str,
    ) -> anyhow::Result<HashMap<i32, i64>>;

    /// Which of the dedupe keys `keys` already have their event row (a
    /// replay counts what it re-drives that was already stored).
    async fn stored_keys(&mut self, keys: &[&str]) -> anyhow::Result<HashSet<String>>;
}

/// The PostgreSQL sink.
pub struct PostgresSink {
    url: String,
    client: Option<Client>,
    prepared: Option<Prepared>,
}

/// The batch statements, prepared once per connection, so PostgreSQL parses
/// and plans them once instead of on every batch.
struct Prepared {
    events: Statement,
    states: Statement,
    properties: Statement,
    offsets: Statement,
}

impl Prepared {
    async fn on(client: &Client) -> Result<Self, tokio_postgres::Error> {
        Ok(Self {
            events: client.prepare(INSERT_EVENTS).await?,
            states: client.prepare(SELECT_STATES).await?,
            properties: client.prepare(WRITE_PROPERTIES).await?,
            offsets: client.prepare(UPSERT_OFFSETS).await?,
        })
    }
}

/// Why a batch's statements failed.
#[derive(Debug)]
enum BatchError {
    /// PostgreSQL answered an error.
    Db(tokio_postgres::Error),
    /// Another writer created a property row this batch was to insert,
    /// after the batch read: the batch is written again, merging into it.
    Raced { expected: usize, written: i64 },
    /// A state that does not encode as JSON.
    Encode(serde_json::Error),
}

impl From<tokio_postgres::Error> for BatchError {
    fn from(e: tokio_postgres::Error) -> Self {
        Self::Db(e)
    }
}

impl BatchError {
    /// The store's refusal of the data itself (see [`is_data_error`]).
    fn data_error(&self) -> Option<String> {
        match self {
            Self::Db(e) if is_data_error(e) => Some(describe(e)),
            _ => None,
        }
    }

    fn describe(&self) -> String {
        match self {
            Self::Db(e) => describe(e),
            Self::Raced { expected, written } => format!(
                "{written} of {expected} property rows written: another writer created                  some of them meanwhile; writing the batch again"
            ),
            Self::Encode(e) => format!("a property state does not encode: {e}"),
        }
    }
}

const UPSERT_OFFSETS: &str = "
INSERT INTO sink_offsets (consumer_group, topic, partition, next_offset)
SELECT $1, $2, partition, next_offset FROM UNNEST($3::int4[], $4::int8[]) AS t(partition, next_offset)
ON CONFLICT (consumer_group, topic, partition) DO UPDATE
SET next_offset = EXCLUDED.next_offset, updated_at = clock_timestamp()
WHERE sink_offsets.next_offset < EXCLUDED.next_offset";

/// A PostgreSQL error with the server's code and message ("db error" alone
/// says nothing to an operator).
pub fn describe(e: &tokio_postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => format!("{} {}: {}", db.severity(), db.code().code(), db.message()),
        None => e.to_string(),
    }
}

impl PostgresSink {
    /// A sink that connects lazily (and again after a lost connection).
    pub fn new(url: &str) -> Self {
        Self {
            url: url.to_string(),
            client: None,
            prepared: None,
        }
    }

    /// The client and its prepared batch statements, connecting and
    /// preparing if needed (after the migrations, which the statements
    /// depend on, ran through [`Self::client`]).
    async fn prepared(&mut self) -> anyhow::Result<(&mut Client, &Prepared)> {
        if self.client.as_ref().is_none_or(Client::is_closed) {
            self.prepared = None;
        }
        let _ = self.client().await?;
        if self.prepared.is_none()
            && let Some(client) = self.client.as_ref()
        {
            let prepared = Prepared::on(client).await.map_err(|e| {
                anyhow::anyhow!("cannot prepare the batch statements: {}", describe(&e))
            })?;
            self.prepared = Some(prepared);
        }
        match (self.client.as_mut(), self.prepared.as_ref()) {
            (Some(client), Some(prepared)) => Ok((client, prepared)),
            _ => Err(anyhow::anyhow!("no PostgreSQL connection")),
        }
    }

    /// Connects if needed and returns the client.
    pub async fn client(&mut self) -> anyhow::Result<&mut Client> {
        if self.client.as_ref().is_none_or(Client::is_closed) {
            let (client, connection) = tokio_postgres::connect(&self.url, NoTls)
                .await
                .map_err(|e| anyhow::anyhow!("cannot connect to PostgreSQL: {}", describe(&e)))?;
            let _task = tokio::spawn(async move {
                if let Err(e) = connection.await {
                    tracing::warn!(error = %e, "PostgreSQL connection closed");
                }
            });
            self.client = Some(client);
        }
        self.client
            .as_mut()
            .ok_or_else(|| anyhow::anyhow!("no PostgreSQL connection"))
    }
}

impl Sink for PostgresSink {
    async fn write_batch(
        &mut self,
        group: &str,
        topic: &str,
        events: &[EventToWrite],
        next_offsets: &HashMap<i32, i64>,
    ) -> Result<Landed, WriteError> {
        let (client, prepared) = self
            .prepared()
            .await
            .map_err(|e| WriteError::Unavailable(e.to_string()))?;
        write_in_transaction(client, prepared, group, topic, events, next_offsets)
            .await
            .map_err(|e| match e.data_error() {
                Some(reason) => WriteError::Rejected(reason),
                None => WriteError::Unavailable(format!("batch not written: {}", e.describe())),
            })
    }

    async fn find_rejected(
        &mut self,
        events: &[EventToWrite],
    ) -> anyhow::Result<Vec<(usize, String)>> {
        let (client, prepared) = self.prepared().await?;
        let mut tx = client
            .transaction()
            .await
            .map_err(|e| anyhow::anyhow!("cannot start a transaction: {}", describe(&e)))?;
        let mut rejected = Vec::new();
        for (index, item) in events.iter().enumerate() {
            let one = std::slice::from_ref(item);
            let savepoint = tx
                .savepoint("one_event")
                .await
                .map_err(|e| anyhow::anyhow!("cannot set a savepoint: {}", describe(&e)))?;
            match write_events(&savepoint, prepared, one).await {
                Ok(_) => savepoint.commit().await?,
                Err(e) => match e.data_error() {
                    Some(reason) => {
                        rejected.push((index, reason));
                        savepoint.rollback().await?;
                    }
                    None => anyhow::bail!("cannot test the batch's rows: {}", e.describe()),
                },
            }
        }
        // Nothing of this pass is kept: it only finds the rows.
        tx.rollback().await?;
        Ok(rejected)
    }

    async fn stored_offsets(
        &mut self,
        group: &str,
        topic: &str,
    ) -> anyhow::Result<HashMap<i32, i64>> {
        let client = self.client().await?;
        let rows = client
            .query(
                "SELECT partition, next_offset FROM sink_offsets WHERE consumer_group = $1 AND topic = $2",
                &[&group, &topic],
            )
            .await
            .map_err(|e| anyhow::anyhow!("cannot read stored offsets: {}", describe(&e)))?;
        Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
    }

    async fn stored_keys(&mut self, keys: &[&str]) -> anyhow::Result<HashSet<String>> {
        let client = self.client().await?;
        let rows = client
            .query(
                "SELECT dedupe_key FROM property_events WHERE dedupe_key = ANY($1)",
                &[&keys],
            )
            .await
            .map_err(|e| anyhow::anyhow!("cannot look up stored events: {}", describe(&e)))?;
        Ok(rows.iter().map(|r| r.get(0)).collect())
    }
}

/// Whether PostgreSQL refused the data itself (SQLSTATE class 22, data
/// exception, or 23, integrity constraint violation, or 54000, a value
/// beyond a limit such as an index row too large for a 10 KB property
/// key), as opposed to being unavailable: the former fails again on every
/// retry.
fn is_data_error(e: &tokio_postgres::Error) -> bool {
    e.as_db_error().is_some_and(|db| {
        let code = db.code().code();
        matches!(&code[..2], "22" | "23") || code == "54000"
    })
}

/// The events of `events` and their properties' merged states, in `tx`:
/// the stored rows of their properties, locked in key order, and the
/// events' rows, sent together (PostgreSQL runs them one after the other,
/// and the fold runs here while it inserts the events); then the rows of
/// the properties whose state changed. The states are locked before the
/// events are inserted. Two writers of an existing property's events (two
/// sinks during a rebalance) meet on its row's lock first; for a property
/// with no row yet they meet on the event's row, and the second one's
/// insert of the property finds the first one's row: the batch is written
/// again, merging into it ([`BatchError::Raced`]).
async fn write_events(
    tx: &tokio_postgres::Transaction<'_>,
    prepared: &Prepared,
    events: &[EventToWrite],
) -> Result<Landed, BatchError> {
    if events.is_empty() {
        return Ok(Landed::default());
    }
    let started = std::time::Instant::now();
    let columns = EventColumns::of(events);
    let keys = fold::property_keys(events);
    let read_and_fold = async {
        let mut stored = HashMap::with_capacity(keys.len());
        for row in tx.query(&prepared.states, &[&keys]).await? {
            let columns = stored_columns(&row)?;
            let _ = stored.insert(columns.property_key.clone(), StoredRow::of(&columns));
        }
        let read_ms = started.elapsed().as_secs_f64() * 1e3;
        let folded = fold::fold(events, &stored);
        let rows = folded
            .changed
            .iter()
            .map(rows::property_row)
            .collect::<Result<Vec<_>, _>>()
            .map_err(BatchError::Encode)?;
        Ok::<_, BatchError>((folded, rows, read_ms))
    };
    let insert_events = async {
        tx.execute(&prepared.events, &columns.params())
            .await
            .map_err(BatchError::from)
    };
    // Biased: always polled in this order, so the read is sent first and
    // the insert right behind it, and since PostgreSQL answers in order, a
    // failed read's own error (a data error keeps its SQLSTATE, see
    // `BatchError::data_error`) is the one returned, never the insert's
    // "current transaction is aborted" that follows it.
    let ((folded, rows, read_ms), _) = tokio::try_join!(biased; read_and_fold, insert_events)?;
    for (property_key, why) in &folded.unreadable {
        tracing::error!(%property_key, %why, "stored property row left as it is");
    }
    // The read, the fold and the events' insert, which overlap.
    let read_and_insert_ms = started.elapsed().as_secs_f64() * 1e3;
    let properties = PropertyColumns::of(&rows);
    if properties.len > 0 {
        let counts = tx
            .query_one(&prepared.properties, &properties.params())
            .await?;
        let written = counts.try_get::<_, i64>(0)? + counts.try_get::<_, i64>(1)?;
        if usize::try_from(written).ok() != Some(properties.len) {
            return Err(BatchError::Raced {
                expected: properties.len,
                written,
            });
        }
    }
    tracing::debug!(
        events = events.len(),
        properties = properties.len,
        unchanged = folded.unchanged,
        read_ms,
        read_and_insert_ms,
        properties_ms = started.elapsed().as_secs_f64() * 1e3 - read_and_insert_ms,
        "batch statements"
    );
    Ok(Landed {
        properties_written: properties.len,
        properties_unchanged: folded.unchanged,
    })
}

/// One row of [`SELECT_STATES`].
fn stored_columns(row: &Row) -> Result<StoredColumns, tokio_postgres::Error> {
    Ok(StoredColumns {
        property_key: row.try_get(0)?,
        state: row.try_get(1)?,
        snapshot: row.try_get(2)?,
        source: row.try_get(3)?,
        provider: row.try_get(4)?,
        provider_property_id: row.try_get(5)?,
        last_event_type: row.try_get(6)?,
        last_event_at: row.try_get(7)?,
        last_event_partition: row.try_get(8)?,
        last_event_offset: row.try_get(9)?,
        last_dedupe_key: row.try_get(10)?,
        last_normalizer_version: row.try_get(11)?,
        last_event_id: row.try_get(12)?,
        last_received_at: row.try_get(13)?,
        first_seen_at: row.try_get(14)?,
        last_seen_at: row.try_get(15)?,
    })
}

/// One batch and its offsets, in one transaction: four statements
/// whatever the batch size (events, stored states, changed properties,
/// offsets).
async fn write_in_transaction(
    client: &mut Client,
    prepared: &Prepared,
    group: &str,
    topic: &str,
    events: &[EventToWrite],
    next_offsets: &HashMap<i32, i64>,
) -> Result<Landed, BatchError> {
    let tx = client.transaction().await?;
    let landed = write_events(&tx, prepared, events).await?;
    let (partitions, offsets): (Vec<i32>, Vec<i64>) = next_offsets.iter().unzip();
    let _ = tx
        .execute(&prepared.offsets, &[&group, &topic, &partitions, &offsets])
        .await?;
    tx.commit().await?;
    Ok(landed)
}
