//! The sink's batch statements, each over whole arrays (`UNNEST`, `ANY`),
//! so a batch of any size is a fixed number of round trips: its events
//! ([`INSERT_EVENTS`]), the stored states of its properties, locked
//! ([`SELECT_STATES`]), and the rows of the properties whose merged state
//! changed ([`WRITE_PROPERTIES`]); the store adds the offsets. This module
//! builds the column arrays (pure); the store runs the statements.

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

/// The stored rows of a batch's properties (`$1`: their keys), locked
/// until the batch commits and locked in key order, so two writers of the
/// same properties (two sinks during a rebalance) wait for each other
/// instead of deadlocking; a writer that waited reads the other's committed
/// row. For a row from before migration `0007` (`state IS NULL`), its last
/// event's `property_events` row gives what the row lacks (by key, or by
/// position for rows from before migration `0004`, which had no key), and
/// its `snapshot` and seen times are read; a row with a state holds its
/// snapshot there, and
/// turning a `jsonb` of about 1 KB back into text was 40 % of this read
/// (7 of 16 ms for 500 rows, BENCHMARKS.md "The sink's read").
pub const SELECT_STATES: &str = "
SELECT p.property_key, p.state::text,
    CASE WHEN p.state IS NULL THEN p.snapshot::text END, p.source, p.provider,
    p.provider_property_id, p.last_event_type,
    round(extract(epoch FROM p.last_event_at) * 1000)::int8,
    p.last_event_partition, p.last_event_offset,
    COALESCE(p.last_dedupe_key, e.dedupe_key),
    COALESCE(p.last_normalizer_version, e.normalizer_version),
    e.event_id, round(extract(epoch FROM e.received_at) * 1000)::int8,
    CASE WHEN p.state IS NULL THEN round(extract(epoch FROM p.first_seen_at) * 1000)::int8 END,
    CASE WHEN p.state IS NULL THEN round(extract(epoch FROM p.last_seen_at) * 1000)::int8 END
FROM properties p
LEFT JOIN LATERAL (
    SELECT e.dedupe_key, e.event_id, e.normalizer_version, e.received_at
    FROM property_events e
    WHERE p.state IS NULL AND e.property_key = p.property_key
      AND (e.dedupe_key = p.last_dedupe_key
           OR (p.last_dedupe_key IS NULL AND e.kafka_partition = p.last_event_partition
               AND e.kafka_offset = p.last_event_offset))
    LIMIT 1) e ON true
WHERE p.property_key = ANY($1::text[])
ORDER BY p.property_key
FOR UPDATE OF p";

/// The rows of the properties whose state the batch changed: rows read
/// (and locked) by [`SELECT_STATES`] are updated, the others inserted. An
/// insert that finds a row (another writer created it since the batch
/// read) is not applied: the statement answers how many rows it updated
/// and inserted, and the store writes the batch again when that falls
/// short, so a state is never replaced by one merged without it.
/// Every column is the state's, `first_seen_at` and `last_seen_at` too: they
/// used to keep the earliest and the latest ever stored, which made them
/// depend on the order and the batching of the events (and let one
/// sender's far-future `last_seen_at` pin the column for ever); a row from
/// before migration `0007` carries its seen times into its state instead
/// ([`crate::stored::legacy_state`]).
pub const WRITE_PROPERTIES: &str = "
WITH t AS (
    SELECT * FROM UNNEST($1::text[], $2::text[], $3::text[], $4::text[], $5::text[],
        $6::text[], $7::text[], $8::float8[], $9::text[], $10::float8[], $11::float8[],
        $12::int4[], $13::int4[], $14::int4[], $15::text[], $16::text[], $17::text[],
        $18::text[], $19::text[], $20::float8[], $21::float8[], $22::text[], $23::float8[],
        $24::float8[], $25::text[], $26::float8[], $27::int4[], $28::int8[], $29::text[],
        $30::text[], $31::text[], $32::text[], $33::float8[], $34::float8[], $35::text[],
        $36::text[], $37::int4[], $38::text[], $39::bool[])
      AS t(property_key, source, provider, provider_property_id, transaction_type,
        property_type, title, price, currency, price_per_m2, surface_m2, rooms, bedrooms,
        bathrooms, address, city, postcode, department, country, latitude, longitude,
        status, first_seen_s, last_seen_s, last_event_type, last_event_s,
        last_event_partition, last_event_offset, snapshot, last_dedupe_key,
        last_normalizer_version, state, sold_price, sold_at_s, provider_property_type,
        provider_transaction_type, contributing_events, last_changed_fields, existed)
), updated AS (
    UPDATE properties p SET
        source = t.source, provider = t.provider, provider_property_id = t.provider_property_id,
        transaction_type = t.transaction_type, property_type = t.property_type,
        title = t.title, price = t.price, currency = t.currency,
        price_per_m2 = t.price_per_m2, surface_m2 = t.surface_m2, rooms = t.rooms,
        bedrooms = t.bedrooms, bathrooms = t.bathrooms, address = t.address, city = t.city,
        postcode = t.postcode, department = t.department, country = t.country,
        latitude = t.latitude, longitude = t.longitude, status = t.status,
        first_seen_at = to_timestamp(t.first_seen_s),
        last_seen_at = to_timestamp(t.last_seen_s),
        last_event_type = t.last_event_type, last_event_at = to_timestamp(t.last_event_s),
        last_event_partition = t.last_event_partition,
        last_event_offset = t.last_event_offset, snapshot = t.snapshot::jsonb,
        last_dedupe_key = t.last_dedupe_key,
        last_normalizer_version = t.last_normalizer_version, state = t.state::jsonb,
        sold_price = t.sold_price, sold_at = to_timestamp(t.sold_at_s),
        provider_property_type = t.provider_property_type,
        provider_transaction_type = t.provider_transaction_type,
        contributing_events = t.contributing_events,
        last_changed_fields =
            ARRAY(SELECT jsonb_array_elements_text(t.last_changed_fields::jsonb)),
        updated_at = clock_timestamp()
    FROM t
    WHERE t.existed AND p.property_key = t.property_key
    RETURNING 1
), inserted AS (
    INSERT INTO properties (
        property_key, source, provider, provider_property_id, transaction_type,
        property_type, title, price, currency, price_per_m2, surface_m2, rooms, bedrooms,
        bathrooms, address, city, postcode, department, country, latitude, longitude,
        status, first_seen_at, last_seen_at, last_event_type, last_event_at,
        last_event_partition, last_event_offset, snapshot, last_dedupe_key,
        last_normalizer_version, state, sold_price, sold_at, provider_property_type,
        provider_transaction_type, contributing_events, last_changed_fields)
    SELECT property_key, source, provider, provider_property_id, transaction_type,
        property_type, title, price, currency, price_per_m2, surface_m2, rooms, bedrooms,
        bathrooms, address, city, postcode, department, country, latitude, longitude,
        status, to_timestamp(first_seen_s), to_timestamp(last_seen_s), last_event_type,
        to_timestamp(last_event_s), last_event_partition, last_event_offset,
        snapshot::jsonb, last_dedupe_key, last_normalizer_version, state::jsonb,
        sold_price, to_timestamp(sold_at_s), provider_property_type,
        provider_transaction_type, contributing_events,
        ARRAY(SELECT jsonb_array_elements_text(last_changed_fields::jsonb))
    FROM t
    WHERE NOT t.existed
    ORDER BY property_key
    ON CONFLICT (property_key) DO NOTHING
    RETURNING 1
)
SELECT (SELECT count(*) FROM updated), (SELECT count(*) FROM inserted)";

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

/// The `properties` columns of the rows a batch writes, one array per
/// column, in [`WRITE_PROPERTIES`] order.
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
    first_seen_s: Vec<Option<f64>>,
    last_seen_s: Vec<Option<f64>>,
    last_event_type: Vec<Option<&'static str>>,
    last_event_s: Vec<Option<f64>>,
    last_event_partition: Vec<Option<i32>>,
    last_event_offset: Vec<Option<i64>>,
    snapshot: Vec<String>,
    last_dedupe_key: Vec<Option<String>>,
    last_normalizer_version: Vec<Option<String>>,
    state: Vec<String>,
    sold_price: Vec<Option<f64>>,
    sold_at_s: Vec<Option<f64>>,
    provider_property_type: Vec<Option<String>>,
    provider_transaction_type: Vec<Option<String>>,
    contributing_events: Vec<i32>,
    last_changed_fields: Vec<String>,
    existed: Vec<bool>,
}

impl PropertyColumns {
    /// The columns of `rows` ([`rows::property_row`]), in the order given
    /// (the fold's: by property key).
    pub fn of(rows: &[rows::PropertyRow]) -> Self {
        let mut c = Self::default();
        let seconds = |ms: Option<i64>| ms.map(rows::seconds);
        for r in rows {
            c.len += 1;
            c.property_key.push(r.property_key.clone());
            c.source.push(r.source.clone());
            c.provider.push(r.provider);
            c.provider_property_id.push(r.provider_property_id.clone());
            c.transaction_type.push(r.transaction_type.clone());
            c.property_type.push(r.property_type.clone());
            c.title.push(r.title.clone());
            c.price.push(r.price);
            c.currency.push(r.currency.clone());
            c.price_per_m2.push(r.price_per_m2);
            c.surface_m2.push(r.surface_m2);
            c.rooms.push(r.rooms);
            c.bedrooms.push(r.bedrooms);
            c.bathrooms.push(r.bathrooms);
            c.address.push(r.address.clone());
            c.city.push(r.city.clone());
            c.postcode.push(r.postcode.clone());
            c.department.push(r.department.clone());
            c.country.push(r.country.clone());
            c.latitude.push(r.latitude);
            c.longitude.push(r.longitude);
            c.status.push(r.status.clone());
            c.first_seen_s.push(seconds(r.first_seen_at));
            c.last_seen_s.push(seconds(r.last_seen_at));
            c.last_event_type.push(r.last_event_type);
            c.last_event_s.push(seconds(r.last_event_at));
            c.last_event_partition.push(r.last_event_partition);
            c.last_event_offset.push(r.last_event_offset);
            c.snapshot.push(r.snapshot.clone());
            c.last_dedupe_key.push(r.last_dedupe_key.clone());
            c.last_normalizer_version
                .push(r.last_normalizer_version.clone());
            c.state.push(r.state.clone());
            c.sold_price.push(r.sold_price);
            c.sold_at_s.push(seconds(r.sold_at));
            c.provider_property_type
                .push(r.provider_property_type.clone());
            c.provider_transaction_type
                .push(r.provider_transaction_type.clone());
            c.contributing_events.push(r.contributing_events);
            c.last_changed_fields
                .push(serde_json::Value::from(r.last_changed_fields.clone()).to_string());
            c.existed.push(r.existed);
        }
        c
    }

    /// The statement parameters, in `WRITE_PROPERTIES` order.
    pub fn params(&self) -> [&(dyn tokio_postgres::types::ToSql + Sync); 39] {
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
            &self.state,
            &self.sold_price,
            &self.sold_at_s,
            &self.provider_property_type,
            &self.provider_transaction_type,
            &self.contributing_events,
            &self.last_changed_fields,
            &self.existed,
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The `$n` placeholders of `sql`, in order of first appearance.
    fn placeholders(sql: &str) -> Vec<usize> {
        let mut seen = Vec::new();
        for part in sql.split('$').skip(1) {
            let digits: String = part.chars().take_while(char::is_ascii_digit).collect();
            if let Ok(n) = digits.parse::<usize>()
                && !seen.contains(&n)
            {
                seen.push(n);
            }
        }
        seen
    }

    #[test]
    fn each_statement_takes_as_many_arrays_as_its_columns_give() {
        let none = PropertyColumns::of(&[]);
        assert_eq!(
            placeholders(WRITE_PROPERTIES),
            (1..=none.params().len()).collect::<Vec<_>>()
        );
        let events = EventColumns::of(&[]);
        assert_eq!(
            placeholders(INSERT_EVENTS),
            (1..=events.params().len()).collect::<Vec<_>>()
        );
        assert_eq!(placeholders(SELECT_STATES), [1]);
    }

    #[test]
    fn the_changed_fields_travel_as_a_json_array() {
        let mut e = schemas::sample::price_change();
        e.property = None;
        e.cleared_fields = Some(vec!["price".into(), "location.city".into()]);
        let item = rows::EventToWrite {
            event: e,
            position: rows::Position {
                topic: "t".into(),
                partition: 0,
                offset: 0,
            },
        };
        let folded = crate::fold::fold(&[item], &std::collections::HashMap::new());
        let row = rows::property_row(&folded.changed[0]).expect("a row");
        let c = PropertyColumns::of(&[row]);
        assert_eq!(c.len, 1);
        assert_eq!(c.last_changed_fields, [r#"["price","location.city"]"#]);
        assert_eq!(c.existed, [false]);
    }
}
