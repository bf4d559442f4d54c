//! PostgreSQL's `properties` holds each property's merged state
//! (DESIGN.md, "Property state"): a partial event fills in only what it
//! carries, so a sale after the creation keeps the price, the address and
//! the rooms and adds the sale; an event that changes nothing is still
//! stored as an event but does not rewrite its property; the same events
//! written again change nothing; and a row written before migration 0007
//! keeps what it knew once the sink upgrades the database. A property row
//! another writer creates while a batch merges without it (two sinks
//! during a rebalance) is merged into, never overwritten.
//!
//! Most events here are Avro `PropertyEvent`s produced straight to
//! `properties.events`, so what the sink does is tested apart from what a
//! parser extracts. The webhook test goes through the whole pipeline; the
//! sale data it can check depends on normalize's generic parser (reading
//! `soldPrice` and `soldAt`), so it checks that the row has whatever the
//! stored sale event carries.

use std::collections::HashMap;
use std::time::Duration;

use common::produce::OutRecord;
use pipeline_tests::{Pipeline, Service};
use schemas::{EventType, PropertyEvent, PropertySnapshot};
use sink::fold;
use sink::rows::{self, EventToWrite, Position};
use sink::store::{PostgresSink, Sink, WriteError};

/// 2023-06-15T10:30:00Z, the creation; the update and the sale follow.
const CREATED_AT: i64 = 1_686_825_000_000;
const UPDATED_AT: i64 = CREATED_AT + 86_400_000;
const SOLD_AT: i64 = CREATED_AT + 2 * 86_400_000;

/// An event about `generic:<property>` with the sample's full snapshot.
fn event(property: &str, id: &str, event_type: EventType, occurred_at: i64) -> PropertyEvent {
    let mut e = schemas::sample::price_change();
    e.event_id = id.into();
    e.dedupe_key = format!("generic:{id}");
    e.provider_property_id = property.into();
    e.property_key = format!("generic:{property}");
    e.event_type = event_type;
    e.provider_event_type = None;
    e.change = None;
    e.occurred_at = occurred_at;
    e.received_at = occurred_at + 1_000;
    if let Some(p) = e.property.as_mut() {
        p.rooms = Some(4);
        p.location.city = Some("Paris".into());
    }
    e
}

/// A generic `property.sold` as the normalizer reads one that carries only
/// `id`, `soldPrice` and `soldAt`: the sale, nothing else known.
fn sale(property: &str, id: &str) -> PropertyEvent {
    let mut e = event(property, id, EventType::Sold, SOLD_AT);
    let mut p = PropertySnapshot::empty();
    p.sold_price = Some(700_000.0);
    p.sold_at = Some(SOLD_AT - 3_600_000);
    e.property = Some(p);
    e
}

/// The property's row, as the user queries it.
struct Row {
    price: Option<f64>,
    address: Option<String>,
    city: Option<String>,
    bedrooms: Option<i32>,
    rooms: Option<i32>,
    status: Option<String>,
    sold_price: Option<f64>,
    sold_at_ms: Option<i64>,
    last_event_type: Option<String>,
    contributing_events: Option<i32>,
    last_changed_fields: Option<Vec<String>>,
    state_status: Option<String>,
    updated_at: String,
}

async fn row(pipeline: &Pipeline, property_key: &str) -> Row {
    let r = pipeline
        .db()
        .await
        .query_one(
            "SELECT price, address, city, bedrooms, rooms, status, sold_price,
                 round(extract(epoch FROM sold_at) * 1000)::int8, last_event_type,
                 contributing_events, last_changed_fields, state->'property'->>'status',
                 updated_at::text
             FROM properties WHERE property_key = $1",
            &[&property_key],
        )
        .await
        .expect("the property's row");
    Row {
        price: r.get(0),
        address: r.get(1),
        city: r.get(2),
        bedrooms: r.get(3),
        rooms: r.get(4),
        status: r.get(5),
        sold_price: r.get(6),
        sold_at_ms: r.get(7),
        last_event_type: r.get(8),
        contributing_events: r.get(9),
        last_changed_fields: r.get(10),
        state_status: r.get(11),
        updated_at: r.get(12),
    }
}

/// Waits until the sink stored `next` as partition 0's next offset.
async fn wait_for_offset(pipeline: &Pipeline, next: i64) {
    let stored = pipeline
        .wait_for_count(
            "SELECT COALESCE(max(next_offset), 0) FROM sink_offsets WHERE partition = 0",
            next,
            Duration::from_secs(60),
        )
        .await;
    assert_eq!(stored, next, "{}", pipeline.all_logs());
}

/// The sink's `sink_properties_unchanged_total`.
async fn unchanged_total(pipeline: &Pipeline) -> f64 {
    let text = reqwest::get(pipeline.metrics_url(Service::Sink))
        .await
        .expect("the sink serves /metrics")
        .text()
        .await
        .expect("metrics text");
    text.lines()
        .find_map(|l| l.strip_prefix("sink_properties_unchanged_total "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no sink_properties_unchanged_total in:\n{text}"))
}

#[tokio::test(flavor = "multi_thread")]
async fn a_sale_after_the_creation_keeps_what_was_known_and_replays_change_nothing() {
    let pipeline = Pipeline::start_with("merged_state", &[Service::Sink], None, &[]).await;
    let id = pipeline.register_event_schema().await;
    let created = event("prop_m", "evt_m_created", EventType::Created, CREATED_AT);
    let mut updated = event("prop_m", "evt_m_updated", EventType::Updated, UPDATED_AT);
    if let Some(p) = updated.property.as_mut() {
        p.price = Some(720_000.0);
    }
    let sold = sale("prop_m", "evt_m_sold");
    let batch: Vec<OutRecord> = [&created, &updated, &sold]
        .iter()
        .map(|e| pipeline.forwarded_event(id, e))
        .collect();
    pipeline.produce(&batch).await;
    wait_for_offset(&pipeline, 3).await;

    let r = row(&pipeline, "generic:prop_m").await;
    assert_eq!(r.price, Some(720_000.0), "the update's price, kept");
    assert_eq!(r.address.as_deref(), Some("123 Main St"));
    assert_eq!(r.city.as_deref(), Some("Paris"));
    assert_eq!((r.bedrooms, r.rooms), (Some(2), Some(4)));
    assert_eq!(r.status.as_deref(), Some("sold"));
    assert_eq!(r.sold_price, Some(700_000.0));
    assert_eq!(r.sold_at_ms, Some(SOLD_AT - 3_600_000));
    assert_eq!(r.last_event_type.as_deref(), Some("sold"));
    assert_eq!(
        r.contributing_events,
        Some(2),
        "the creation's values are all overwritten"
    );
    assert_eq!(
        r.last_changed_fields,
        Some(vec![
            "status".to_string(),
            "sold_price".to_string(),
            "sold_at".to_string()
        ])
    );
    assert_eq!(r.state_status.as_deref(), Some("sold"));

    // The same three events again (a `sink replay`, a redelivery past a
    // crash), and a re-notification of the update the provider marks
    // unchanged (an Immoteur re-crawl): received later, same data. Each new
    // fact is stored; the property does not move.
    let unchanged_before = unchanged_total(&pipeline).await;
    let mut renotified = updated.clone();
    renotified.event_id = "evt_m_renotified".into();
    renotified.dedupe_key = "generic:evt_m_renotified".into();
    renotified.received_at += 3_600_000;
    renotified.unchanged = Some(true);
    let mut again = batch.clone();
    again.push(pipeline.forwarded_event(id, &renotified));
    pipeline.produce(&again).await;
    wait_for_offset(&pipeline, 7).await;
    assert_eq!(
        pipeline
            .count("SELECT count(*) FROM property_events WHERE property_key = 'generic:prop_m'")
            .await,
        4,
        "each event once, the no-op re-notification too"
    );
    let after = row(&pipeline, "generic:prop_m").await;
    assert_eq!(
        after.updated_at, r.updated_at,
        "the property row was not rewritten"
    );
    assert_eq!(after.price, Some(720_000.0));
    assert_eq!(after.contributing_events, Some(2));
    assert!(
        unchanged_total(&pipeline).await > unchanged_before,
        "counted as unchanged"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_property_known_only_by_reference_has_a_row_without_a_last_event() {
    let pipeline = Pipeline::start_with("merged_reference", &[Service::Sink], None, &[]).await;
    let id = pipeline.register_event_schema().await;
    let mut reference = event("prop_r", "evt_r", EventType::ReferenceOnly, CREATED_AT);
    reference.property = None;
    let created = event("prop_r", "evt_r_created", EventType::Created, UPDATED_AT);
    pipeline
        .produce(&[pipeline.forwarded_event(id, &reference)])
        .await;
    wait_for_offset(&pipeline, 1).await;
    let r = row(&pipeline, "generic:prop_r").await;
    assert_eq!((r.price, r.status, r.last_event_type), (None, None, None));
    assert_eq!(r.contributing_events, Some(0));

    pipeline
        .produce(&[pipeline.forwarded_event(id, &created)])
        .await;
    wait_for_offset(&pipeline, 2).await;
    let r = row(&pipeline, "generic:prop_r").await;
    assert_eq!(r.price, Some(750_000.0));
    assert_eq!(r.last_event_type.as_deref(), Some("created"));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_row_from_before_the_merge_keeps_what_it_knew_after_the_upgrade() {
    // The database as the sink left it before migration 0007, with one row
    // an older sink wrote from a creation.
    let mut pipeline = Pipeline::start_with("merged_upgrade", &[Service::Ingest], None, &[]).await;
    let db = pipeline.db().await;
    db.batch_execute(
        "CREATE TABLE schema_migrations (
             version integer PRIMARY KEY,
             name text NOT NULL,
             applied_at timestamptz NOT NULL DEFAULT now())",
    )
    .await
    .expect("the migrations table");
    for (version, name, sql) in sink::migrate::MIGRATIONS.iter().filter(|m| m.0 <= 6) {
        db.batch_execute(sql).await.expect("an old migration");
        let _ = db
            .execute(
                "INSERT INTO schema_migrations (version, name) VALUES ($1, $2)",
                &[version, name],
            )
            .await
            .expect("recorded");
    }
    let created = event("prop_u", "evt_u_created", EventType::Created, CREATED_AT);
    // The snapshot as an older sink stored it: without the fields added since.
    let mut snapshot = serde_json::to_value(&created.property).expect("a snapshot");
    for newer in [
        "sold_price",
        "sold_at",
        "provider_property_type",
        "provider_transaction_type",
    ] {
        let _ = snapshot.as_object_mut().and_then(|o| o.remove(newer));
    }
    let _ = db
        .execute(
            "INSERT INTO property_events (dedupe_key, event_id, property_key, source, event_type,
             occurred_at, received_at, raw_topic, raw_partition, raw_offset, normalizer_version,
             kafka_topic, kafka_partition, kafka_offset, event)
         VALUES ('generic:evt_u_created', 'evt_u_created', 'generic:prop_u', 'generic', 'created',
             to_timestamp($1::float8 / 1000), to_timestamp($1::float8 / 1000 + 1),
             'webhooks.raw', 0, 0, '0.1.0', $2, 0, 0, '{}'::jsonb)",
            &[&(CREATED_AT as f64), &pipeline.topics.events()],
        )
        .await
        .expect("the old event row");
    let _ = db
        .execute(
            "INSERT INTO properties (property_key, source, provider, provider_property_id,
             transaction_type, property_type, price, bedrooms, rooms, address, city, status,
             first_seen_at, last_seen_at, last_event_type, last_event_at, last_event_partition,
             last_event_offset, snapshot, last_dedupe_key, last_normalizer_version)
         VALUES ('generic:prop_u', 'generic', 'generic', 'prop_u', 'unknown', 'unknown',
             750000, 2, 4, '123 Main St', 'Paris', NULL, to_timestamp($1::float8 / 1000),
             to_timestamp($1::float8 / 1000), 'created', to_timestamp($1::float8 / 1000), 0, 0,
             $2::text::jsonb, 'generic:evt_u_created', '0.1.0')",
            &[&(CREATED_AT as f64), &snapshot.to_string()],
        )
        .await
        .expect("the old property row");

    // The sink upgrades the database at start, then merges a sale into it.
    pipeline.spawn(Service::Sink);
    let id = pipeline.register_event_schema().await;
    pipeline
        .produce(&[pipeline.forwarded_event(id, &sale("prop_u", "evt_u_sold"))])
        .await;
    wait_for_offset(&pipeline, 1).await;
    assert_eq!(
        pipeline
            .count("SELECT max(version)::int8 FROM schema_migrations")
            .await,
        sink::migrate::MIGRATIONS.len() as i64
    );
    let r = row(&pipeline, "generic:prop_u").await;
    assert_eq!(r.price, Some(750_000.0), "kept from the old row");
    assert_eq!(r.address.as_deref(), Some("123 Main St"));
    assert_eq!((r.bedrooms, r.rooms), (Some(2), Some(4)));
    assert_eq!(r.status.as_deref(), Some("sold"));
    assert_eq!(r.sold_price, Some(700_000.0));
    assert_eq!(r.last_event_type.as_deref(), Some("sold"));
    assert_eq!(
        r.contributing_events,
        Some(2),
        "the old row's event and the sale"
    );
    assert_eq!(r.state_status.as_deref(), Some("sold"));
    let creator: String = pipeline
        .db()
        .await
        .query_one(
            "SELECT state->'fields'->'price'->>'dedupe_key' FROM properties",
            &[],
        )
        .await
        .expect("the state")
        .get(0);
    assert_eq!(
        creator, "generic:evt_u_created",
        "the old row's event set the price"
    );
    pipeline.kill(Service::Sink);
}

#[tokio::test(flavor = "multi_thread")]
async fn generic_webhooks_created_updated_then_sold_keep_the_known_data() {
    let pipeline = Pipeline::start("merged_webhooks").await;
    pipeline
        .deliver_generic(&pipeline_tests::fixture("generic/property.created.json"))
        .await;
    pipeline
        .deliver_generic(
            br#"{"id":"evt_123457","type":"property.updated","created":"2023-06-16T10:30:00Z",
                "data":{"property":{"id":"prop_123456","price":720000}}}"#,
        )
        .await;
    pipeline
        .deliver_generic(
            br#"{"id":"evt_123458","type":"property.sold","created":"2023-06-17T10:30:00Z",
                "data":{"property":{"id":"prop_123456","soldPrice":700000,
                "soldAt":"2023-06-17T09:00:00Z"}}}"#,
        )
        .await;
    let events = pipeline
        .wait_for_count(
            "SELECT count(*) FROM property_events",
            3,
            Duration::from_secs(60),
        )
        .await;
    assert_eq!(events, 3, "{}", pipeline.all_logs());
    let sold = pipeline
        .wait_for_count(
            "SELECT count(*) FROM properties WHERE status = 'sold'",
            1,
            Duration::from_secs(30),
        )
        .await;
    assert_eq!(sold, 1, "{}", pipeline.all_logs());
    let r = row(&pipeline, "generic:prop_123456").await;
    assert_eq!(r.price, Some(720_000.0));
    assert_eq!(
        r.address.as_deref(),
        Some("123 Main St, New York, NY 10001")
    );
    assert_eq!(r.bedrooms, Some(2));
    assert_eq!(r.last_event_type.as_deref(), Some("sold"));
    // What the sale carries depends on the generic parser (`soldPrice`,
    // `soldAt`); the row has exactly that.
    assert_eq!(
        pipeline
            .count(
                "SELECT count(*) FROM properties p JOIN property_events e
                     ON e.property_key = p.property_key AND e.event_type = 'sold'
                 WHERE p.sold_price IS NOT DISTINCT FROM (e.event->'property'->>'sold_price')::float8
                   AND round(extract(epoch FROM p.sold_at) * 1000)::int8
                       IS NOT DISTINCT FROM (e.event->'property'->>'sold_at')::int8"
            )
            .await,
        1
    );
}

/// `event` as the sink holds it, read at offset `offset` of partition 0.
fn to_write(pipeline: &Pipeline, event: PropertyEvent, offset: i64) -> EventToWrite {
    EventToWrite {
        event,
        position: Position {
            topic: pipeline.topics.events(),
            partition: 0,
            offset,
        },
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_row_another_writer_creates_meanwhile_is_merged_into_not_overwritten() {
    let pipeline = Pipeline::start_with("merged_race", &[Service::Sink], None, &[]).await;
    // Another sink (the partition's previous owner, committing late) is
    // creating the property's row from the creation, not yet committed.
    let created = to_write(
        &pipeline,
        event("prop_x", "evt_x_created", EventType::Created, CREATED_AT),
        0,
    );
    let theirs = fold::fold(std::slice::from_ref(&created), &HashMap::new());
    let their_row = rows::property_row(&theirs.changed[0]).expect("their row");
    let other = pipeline.db().await;
    other
        .batch_execute("BEGIN")
        .await
        .expect("their transaction");
    let _ = other
        .execute(
            "INSERT INTO properties (property_key, source, provider, provider_property_id,
                 transaction_type, property_type, price, snapshot, state)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8::text::jsonb, $9::text::jsonb)",
            &[
                &their_row.property_key,
                &their_row.source,
                &their_row.provider,
                &their_row.provider_property_id,
                &their_row.transaction_type,
                &their_row.property_type,
                &their_row.price,
                &their_row.snapshot,
                &their_row.state,
            ],
        )
        .await
        .expect("their row, uncommitted");

    // This sink merges the sale without seeing their row; its insert waits
    // for their commit, finds the row, and is not applied.
    let mut sink = PostgresSink::new(&pipeline.stack.pg_url("estate", &pipeline.database));
    let sold = [to_write(&pipeline, sale("prop_x", "evt_x_sold"), 1)];
    let offsets = HashMap::from([(0, 2)]);
    let topic = pipeline.topics.events();
    let (mine, ()) = tokio::join!(sink.write_batch("race", &topic, &sold, &offsets), async {
        tokio::time::sleep(Duration::from_millis(500)).await;
        other.batch_execute("COMMIT").await.expect("their commit");
    });
    match mine {
        Err(WriteError::Unavailable(reason)) => {
            assert!(reason.contains("another writer"), "{reason}");
        }
        other => panic!("the batch must be written again: {other:?}"),
    }
    assert_eq!(
        pipeline
            .count("SELECT count(*) FROM property_events WHERE dedupe_key = 'generic:evt_x_sold'")
            .await,
        0,
        "nothing of the batch was kept"
    );

    // Written again, it merges into their row.
    let landed = sink
        .write_batch("race", &topic, &sold, &offsets)
        .await
        .expect("written");
    assert_eq!(landed.properties_written, 1);
    let r = row(&pipeline, "generic:prop_x").await;
    assert_eq!(r.price, Some(750_000.0), "their creation's price");
    assert_eq!(r.address.as_deref(), Some("123 Main St"));
    assert_eq!(r.status.as_deref(), Some("sold"));
    assert_eq!(r.sold_price, Some(700_000.0));
    assert_eq!(r.contributing_events, Some(2));
}
