//! Stores: the [`Sink`] trait and its PostgreSQL implementation.
//!
//! A store writes one batch and the consumed offsets atomically, and tells
//! the offsets it holds, so the consumer resumes exactly after the last
//! batch it committed. PostgreSQL does both in one transaction.

use std::collections::HashMap;

use tokio_postgres::{Client, NoTls};

use crate::rows::{self, EventToWrite};

/// A destination for unique events.
#[allow(async_fn_in_trait)]
pub trait Sink {
    /// Writes `events` and records `next_offsets` (partition → next offset to
    /// read) for `group`/`topic`, all or nothing.
    async fn write_batch(
        &mut self,
        group: &str,
        topic: &str,
        events: &[EventToWrite],
        next_offsets: &HashMap<i32, i64>,
    ) -> anyhow::Result<()>;

    /// The next offset to read per partition, as last committed by `write_batch`.
    async fn stored_offsets(
        &mut self,
        group: &str,
        topic: &str,
    ) -> anyhow::Result<HashMap<i32, i64>>;
}

/// The PostgreSQL sink.
pub struct PostgresSink {
    url: String,
    client: Option<Client>,
}

const INSERT_EVENT: &str = "
INSERT INTO property_events (
    dedupe_key, event_id, property_key, source, event_type, occurred_at, received_at,
    alert_id, change_field, change_old_value, change_new_value, change_percent,
    raw_topic, raw_partition, raw_offset, normalizer_version,
    kafka_topic, kafka_partition, kafka_offset, event)
VALUES ($1, $2, $3, $4, $5, to_timestamp($6), to_timestamp($7),
    $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20::text::jsonb)
ON CONFLICT (dedupe_key) DO NOTHING";

const UPSERT_PROPERTY: &str = "
INSERT INTO properties (
    property_key, source, provider, provider_property_id, transaction_type, property_type,
    title, price, currency, price_per_m2, surface_m2, rooms, bedrooms, bathrooms,
    address, city, postcode, department, country, latitude, longitude, status,
    first_seen_at, last_seen_at, last_event_type, last_event_at, last_event_partition,
    last_event_offset, snapshot)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18,
    $19, $20, $21, $22, to_timestamp($23), to_timestamp($24), $25, to_timestamp($26), $27, $28,
    $29::text::jsonb)
ON CONFLICT (property_key) DO UPDATE SET
    transaction_type = EXCLUDED.transaction_type, property_type = EXCLUDED.property_type,
    title = EXCLUDED.title, price = EXCLUDED.price, currency = EXCLUDED.currency,
    price_per_m2 = EXCLUDED.price_per_m2, surface_m2 = EXCLUDED.surface_m2,
    rooms = EXCLUDED.rooms, bedrooms = EXCLUDED.bedrooms, bathrooms = EXCLUDED.bathrooms,
    address = EXCLUDED.address, city = EXCLUDED.city, postcode = EXCLUDED.postcode,
    department = EXCLUDED.department, country = EXCLUDED.country,
    latitude = EXCLUDED.latitude, longitude = EXCLUDED.longitude, status = EXCLUDED.status,
    first_seen_at = LEAST(properties.first_seen_at, EXCLUDED.first_seen_at),
    last_seen_at = GREATEST(properties.last_seen_at, EXCLUDED.last_seen_at),
    last_event_type = EXCLUDED.last_event_type, last_event_at = EXCLUDED.last_event_at,
    last_event_partition = EXCLUDED.last_event_partition,
    last_event_offset = EXCLUDED.last_event_offset, snapshot = EXCLUDED.snapshot,
    updated_at = clock_timestamp()
WHERE (properties.last_event_at, properties.last_event_offset)
   <= (EXCLUDED.last_event_at, EXCLUDED.last_event_offset)";

const UPSERT_OFFSET: &str = "
INSERT INTO sink_offsets (consumer_group, topic, partition, next_offset)
VALUES ($1, $2, $3, $4)
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
    ) -> anyhow::Result<()> {
        let client = self.client().await?;
        write_in_transaction(client, group, topic, events, next_offsets)
            .await
            .map_err(|e| anyhow::anyhow!("batch not written: {}", describe(&e)))
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
}

/// One batch and its offsets, in one transaction.
async fn write_in_transaction(
    client: &mut Client,
    group: &str,
    topic: &str,
    events: &[EventToWrite],
    next_offsets: &HashMap<i32, i64>,
) -> Result<(), tokio_postgres::Error> {
    let tx = client.transaction().await?;
    let insert_event = tx.prepare(INSERT_EVENT).await?;
    let upsert_property = tx.prepare(UPSERT_PROPERTY).await?;
    for item in events {
        let e = &item.event;
        let change = e.change.as_ref();
        let _ = tx
            .execute(
                &insert_event,
                &[
                    &e.dedupe_key,
                    &e.event_id,
                    &e.property_key,
                    &e.source,
                    &e.event_type.as_str(),
                    &rows::seconds(e.occurred_at),
                    &rows::seconds(e.received_at),
                    &e.alert_id,
                    &change.map(|c| c.field.as_str()),
                    &change.and_then(|c| c.old_value.as_deref()),
                    &change.and_then(|c| c.new_value.as_deref()),
                    &change.and_then(|c| c.percent),
                    &e.lineage.raw_topic,
                    &e.lineage.raw_partition,
                    &e.lineage.raw_offset,
                    &e.lineage.normalizer_version,
                    &item.position.topic,
                    &item.position.partition,
                    &item.position.offset,
                    &rows::event_json(e),
                ],
            )
            .await?;
        let (Some(p), Some(snapshot)) = (e.property.as_ref(), rows::snapshot_json(e)) else {
            continue;
        };
        let (transaction_type, property_type) = rows::transaction_and_property_type(e);
        let l = &p.location;
        let _ = tx
            .execute(
                &upsert_property,
                &[
                    &e.property_key,
                    &e.source,
                    &rows::provider_name(e.provider),
                    &e.provider_property_id,
                    &transaction_type,
                    &property_type,
                    &p.title,
                    &p.price,
                    &p.currency,
                    &p.price_per_m2,
                    &p.surface_m2,
                    &p.rooms,
                    &p.bedrooms,
                    &p.bathrooms,
                    &l.address,
                    &l.city,
                    &l.postcode,
                    &l.department,
                    &l.country,
                    &l.latitude,
                    &l.longitude,
                    &p.status,
                    &rows::seconds(p.first_seen_at.unwrap_or(e.occurred_at)),
                    &rows::seconds(p.last_seen_at.unwrap_or(e.occurred_at)),
                    &e.event_type.as_str(),
                    &rows::seconds(e.occurred_at),
                    &item.position.partition,
                    &item.position.offset,
                    &snapshot,
                ],
            )
            .await?;
    }
    let upsert_offset = tx.prepare(UPSERT_OFFSET).await?;
    for (partition, next) in next_offsets {
        let _ = tx
            .execute(&upsert_offset, &[&group, &topic, partition, next])
            .await?;
    }
    tx.commit().await
}
