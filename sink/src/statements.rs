//! The sink's batch statements: one `INSERT ... SELECT FROM UNNEST(arrays)`
//! per table per batch, so a batch of any size is a fixed number of round
//! trips. This module builds the column arrays from a batch (pure); the
//! store runs the statements.

use crate::rows::{self, EventToWrite};

/// A batch's events, one row per dedupe key. A key already stored is
/// overwritten only by an event from a newer normalizer version (a
/// correction replayed after a parser fix); otherwise it is left alone.
pub const INSERT_EVENTS: &str = "
INSERT INTO property_events (
    dedupe_key, event_id, property_key, source, event_type, occurred_at, received_at,
    alert_id, change_field, change_old_value, change_new_value, change_percent,
    raw_topic, raw_partition, raw_offset, normalizer_version,
    kafka_topic, kafka_partition, kafka_offset, event)
SELECT dedupe_key, event_id, property_key, source, event_type,
    to_timestamp(occurred_s), to_timestamp(received_s),
    alert_id, change_field, change_old, change_new, change_percent,
    raw_topic, raw_partition, raw_offset, normalizer_version,
    kafka_topic, kafka_partition, kafka_offset, event::jsonb
FROM UNNEST($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::float8[],
    $7::float8[], $8::text[], $9::text[], $10::text[], $11::text[], $12::float8[],
    $13::text[], $14::int4[], $15::int8[], $16::text[], $17::text[], $18::int4[],
    $19::int8[], $20::text[])
  AS t(dedupe_key, event_id, property_key, source, event_type, occurred_s, received_s,
    alert_id, change_field, change_old, change_new, change_percent, raw_topic,
    raw_partition, raw_offset, normalizer_version, kafka_topic, kafka_partition,
    kafka_offset, event)
ON CONFLICT (dedupe_key) DO UPDATE SET
    event_id = EXCLUDED.event_id, property_key = EXCLUDED.property_key,
    source = EXCLUDED.source, event_type = EXCLUDED.event_type,
    occurred_at = EXCLUDED.occurred_at, received_at = EXCLUDED.received_at,
    alert_id = EXCLUDED.alert_id, change_field = EXCLUDED.change_field,
    change_old_value = EXCLUDED.change_old_value, change_new_value = EXCLUDED.change_new_value,
    change_percent = EXCLUDED.change_percent, raw_topic = EXCLUDED.raw_topic,
    raw_partition = EXCLUDED.raw_partition, raw_offset = EXCLUDED.raw_offset,
    normalizer_version = EXCLUDED.normalizer_version, kafka_topic = EXCLUDED.kafka_topic,
    kafka_partition = EXCLUDED.kafka_partition, kafka_offset = EXCLUDED.kafka_offset,
    event = EXCLUDED.event, committed_at = clock_timestamp()
WHERE normalizer_version_key(EXCLUDED.normalizer_version)
    > normalizer_version_key(property_events.normalizer_version)";

/// The newest snapshot of each property in the batch, upserted; a stored
/// row from a newer event (time, then offset) is kept, and so is a row
/// from the same event (dedupe key) by a newer normalizer version.
pub const UPSERT_PROPERTIES: &str = "
INSERT INTO properties (
    property_key, source, provider, provider_property_id, transaction_type, property_type,
    title, price, currency, price_per_m2, surface_m2, rooms, bedrooms, bathrooms,
    address, city, postcode, department, country, latitude, longitude, status,
    first_seen_at, last_seen_at, last_event_type, last_event_at, last_event_partition,
    last_event_offset, snapshot, last_dedupe_key, last_normalizer_version)
SELECT property_key, source, provider, provider_property_id, transaction_type, property_type,
    title, price, currency, price_per_m2, surface_m2, rooms, bedrooms, bathrooms,
    address, city, postcode, department, country, latitude, longitude, status,
    to_timestamp(first_seen_s), to_timestamp(last_seen_s), last_event_type,
    to_timestamp(last_event_s), last_event_partition, last_event_offset, snapshot::jsonb,
    last_dedupe_key, last_normalizer_version
FROM UNNEST($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[],
    $7::text[], $8::float8[], $9::text[], $10::float8[], $11::float8[], $12::int4[],
    $13::int4[], $14::int4[], $15::text[], $16::text[], $17::text[], $18::text[],
    $19::text[], $20::float8[], $21::float8[], $22::text[], $23::float8[], $24::float8[],
    $25::text[], $26::float8[], $27::int4[], $28::int8[], $29::text[], $30::text[],
    $31::text[])
  AS t(property_key, source, provider, provider_property_id, transaction_type, property_type,
    title, price, currency, price_per_m2, surface_m2, rooms, bedrooms, bathrooms,
    address, city, postcode, department, country, latitude, longitude, status,
    first_seen_s, last_seen_s, last_event_type, last_event_s, last_event_partition,
    last_event_offset, snapshot, last_dedupe_key, last_normalizer_version)
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
    last_dedupe_key = EXCLUDED.last_dedupe_key,
    last_normalizer_version = EXCLUDED.last_normalizer_version,
    updated_at = clock_timestamp()
WHERE (properties.last_event_at, properties.last_event_offset)
   <= (EXCLUDED.last_event_at, EXCLUDED.last_event_offset)
  AND NOT COALESCE(properties.last_dedupe_key = EXCLUDED.last_dedupe_key
      AND normalizer_version_key(EXCLUDED.last_normalizer_version)
        < normalizer_version_key(properties.last_normalizer_version), false)";

/// The `property_events` columns of a batch, one array per column.
#[derive(Debug, Default)]
pub struct EventColumns {
    /// `dedupe_key`.
    pub dedupe_key: Vec<String>,
    /// `event_id`.
    pub event_id: Vec<String>,
    /// `property_key`.
    pub property_key: Vec<String>,
    /// `source`.
    pub source: Vec<String>,
    /// `event_type`.
    pub event_type: Vec<&'static str>,
    /// `occurred_at`, seconds.
    pub occurred_s: Vec<f64>,
    /// `received_at`, seconds.
    pub received_s: Vec<f64>,
    /// `alert_id`.
    pub alert_id: Vec<Option<String>>,
    /// `change_field`.
    pub change_field: Vec<Option<String>>,
    /// `change_old_value`.
    pub change_old: Vec<Option<String>>,
    /// `change_new_value`.
    pub change_new: Vec<Option<String>>,
    /// `change_percent`.
    pub change_percent: Vec<Option<f64>>,
    /// `raw_topic`.
    pub raw_topic: Vec<String>,
    /// `raw_partition`.
    pub raw_partition: Vec<i32>,
    /// `raw_offset`.
    pub raw_offset: Vec<i64>,
    /// `normalizer_version`.
    pub normalizer_version: Vec<String>,
    /// `kafka_topic`.
    pub kafka_topic: Vec<String>,
    /// `kafka_partition`.
    pub kafka_partition: Vec<i32>,
    /// `kafka_offset`.
    pub kafka_offset: Vec<i64>,
    /// `event` (JSON text).
    pub event: Vec<String>,
}

impl EventColumns {
    /// The columns of `events`, one row per dedupe key (the newest
    /// normalizer version, then the latest read, wins within a batch: one
    /// statement cannot update a row twice).
    pub fn of(events: &[EventToWrite]) -> Self {
        let mut c = Self::default();
        for item in rows::one_per_dedupe_key(events) {
            let e = &item.event;
            let change = e.change.as_ref();
            c.dedupe_key.push(e.dedupe_key.clone());
            c.event_id.push(e.event_id.clone());
            c.property_key.push(e.property_key.clone());
            c.source.push(e.source.clone());
            c.event_type.push(e.event_type.as_str());
            c.occurred_s.push(rows::seconds(e.occurred_at));
            c.received_s.push(rows::seconds(e.received_at));
            c.alert_id.push(e.alert_id.clone());
            c.change_field.push(change.map(|c| c.field.clone()));
            c.change_old.push(change.and_then(|c| c.old_value.clone()));
            c.change_new.push(change.and_then(|c| c.new_value.clone()));
            c.change_percent.push(change.and_then(|c| c.percent));
            c.raw_topic.push(e.lineage.raw_topic.clone());
            c.raw_partition.push(e.lineage.raw_partition);
            c.raw_offset.push(e.lineage.raw_offset);
            c.normalizer_version
                .push(e.lineage.normalizer_version.clone());
            c.kafka_topic.push(item.position.topic.clone());
            c.kafka_partition.push(item.position.partition);
            c.kafka_offset.push(item.position.offset);
            c.event.push(rows::event_json(e));
        }
        c
    }

    /// The statement parameters, in `INSERT_EVENTS` order.
    pub fn params(&self) -> [&(dyn tokio_postgres::types::ToSql + Sync); 20] {
        [
            &self.dedupe_key,
            &self.event_id,
            &self.property_key,
            &self.source,
            &self.event_type,
            &self.occurred_s,
            &self.received_s,
            &self.alert_id,
            &self.change_field,
            &self.change_old,
            &self.change_new,
            &self.change_percent,
            &self.raw_topic,
            &self.raw_partition,
            &self.raw_offset,
            &self.normalizer_version,
            &self.kafka_topic,
            &self.kafka_partition,
            &self.kafka_offset,
            &self.event,
        ]
    }
}

/// The `properties` columns of a batch's newest snapshots, one array per column.
#[derive(Debug, Default)]
pub struct PropertyColumns {
    /// Number of rows.
    pub len: usize,
    property_key: Vec<String>,
    source: Vec<String>,
    provider: Vec<&'static str>,
    provider_property_id: Vec<String>,
    transaction_type: Vec<String>,
    property_type: Vec<String>,
    title: Vec<Option<String>>,
    price: Vec<Option<f64>>,
    currency: Vec<Option<String>>,
    price_per_m2: Vec<Option<f64>>,
    surface_m2: Vec<Option<f64>>,
    rooms: Vec<Option<i32>>,
    bedrooms: Vec<Option<i32>>,
    bathrooms: Vec<Option<i32>>,
    address: Vec<Option<String>>,
    city: Vec<Option<String>>,
    postcode: Vec<Option<String>>,
    department: Vec<Option<String>>,
    country: Vec<Option<String>>,
    latitude: Vec<Option<f64>>,
    longitude: Vec<Option<f64>>,
    status: Vec<Option<String>>,
    first_seen_s: Vec<f64>,
    last_seen_s: Vec<f64>,
    last_event_type: Vec<&'static str>,
    last_event_s: Vec<f64>,
    last_event_partition: Vec<i32>,
    last_event_offset: Vec<i64>,
    snapshot: Vec<String>,
    last_dedupe_key: Vec<String>,
    last_normalizer_version: Vec<String>,
}

impl PropertyColumns {
    /// The columns of the newest snapshot per property in `events`.
    pub fn of(events: &[EventToWrite]) -> Self {
        let mut c = Self::default();
        for item in rows::newest_snapshot_per_property(events) {
            let e = &item.event;
            let (Some(p), Some(snapshot)) = (e.property.as_ref(), rows::snapshot_json(e)) else {
                continue;
            };
            let (transaction_type, property_type) = rows::transaction_and_property_type(e);
            let l = &p.location;
            c.len += 1;
            c.property_key.push(e.property_key.clone());
            c.source.push(e.source.clone());
            c.provider.push(rows::provider_name(e.provider));
            c.provider_property_id.push(e.provider_property_id.clone());
            c.transaction_type.push(transaction_type);
            c.property_type.push(property_type);
            c.title.push(p.title.clone());
            c.price.push(p.price);
            c.currency.push(p.currency.clone());
            c.price_per_m2.push(p.price_per_m2);
            c.surface_m2.push(p.surface_m2);
            c.rooms.push(p.rooms);
            c.bedrooms.push(p.bedrooms);
            c.bathrooms.push(p.bathrooms);
            c.address.push(l.address.clone());
            c.city.push(l.city.clone());
            c.postcode.push(l.postcode.clone());
            c.department.push(l.department.clone());
            c.country.push(l.country.clone());
            c.latitude.push(l.latitude);
            c.longitude.push(l.longitude);
            c.status.push(p.status.clone());
            c.first_seen_s
                .push(rows::seconds(p.first_seen_at.unwrap_or(e.occurred_at)));
            c.last_seen_s
                .push(rows::seconds(p.last_seen_at.unwrap_or(e.occurred_at)));
            c.last_event_type.push(e.event_type.as_str());
            c.last_event_s.push(rows::seconds(e.occurred_at));
            c.last_event_partition.push(item.position.partition);
            c.last_event_offset.push(item.position.offset);
            c.last_dedupe_key.push(e.dedupe_key.clone());
            c.last_normalizer_version
                .push(e.lineage.normalizer_version.clone());
            c.snapshot.push(snapshot);
        }
        c
    }

    /// The statement parameters, in `UPSERT_PROPERTIES` order.
    pub fn params(&self) -> [&(dyn tokio_postgres::types::ToSql + Sync); 31] {
        [
            &self.property_key,
            &self.source,
            &self.provider,
            &self.provider_property_id,
            &self.transaction_type,
            &self.property_type,
            &self.title,
            &self.price,
            &self.currency,
            &self.price_per_m2,
            &self.surface_m2,
            &self.rooms,
            &self.bedrooms,
            &self.bathrooms,
            &self.address,
            &self.city,
            &self.postcode,
            &self.department,
            &self.country,
            &self.latitude,
            &self.longitude,
            &self.status,
            &self.first_seen_s,
            &self.last_seen_s,
            &self.last_event_type,
            &self.last_event_s,
            &self.last_event_partition,
            &self.last_event_offset,
            &self.snapshot,
            &self.last_dedupe_key,
            &self.last_normalizer_version,
        ]
    }
}
