//! A property's state is the same whatever order its events arrive in
//! (README, "Property state"). One generated history (several hundred
//! generic webhooks for a few dozen properties: full creations, partial
//! updates, partial sales, provider retries, a sender clock in year 9999)
//! goes through two isolated pipelines in two different shuffled orders,
//! then both replay it as a newer normalizer (a correction of every
//! event). Then, in each pipeline, the last `properties.latest` record of
//! every property equals its `properties` row's state in PostgreSQL; and
//! the two pipelines hold the same states. The only thing allowed to
//! differ is the time of the future-dated event, which each pipeline
//! replaces by its own arrival time.

use std::collections::BTreeMap;
use std::time::Duration;

use pipeline_tests::history::History;
use pipeline_tests::{Pipeline, Service, unix_now};
use rdkafka::Message;
use schemas::PropertyState;

/// The normalizer version the correction replays as.
const CORRECTED: &str = "99.0.0";

/// Sends every webhook, one at a time, in the order given.
async fn deliver_in_order(pipeline: &Pipeline, webhooks: &[pipeline_tests::history::Webhook]) {
    for webhook in webhooks {
        pipeline.deliver_generic(&webhook.body).await;
    }
}

/// `normalize replay --since`: every raw record again, as `CORRECTED`.
fn replay_everything(pipeline: &Pipeline, since: i64) {
    let since = time::OffsetDateTime::from_unix_timestamp(since)
        .expect("time")
        .format(&time::format_description::well_known::Rfc3339)
        .expect("RFC 3339");
    let output = pipeline
        .command(Service::Normalize)
        .args(["replay", "--id", "state-fix", "--since", &since])
        .env("NORMALIZE__NORMALIZER_VERSION", CORRECTED)
        .output()
        .expect("run normalize replay");
    assert!(
        output.status.success(),
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// Each property's state as PostgreSQL holds it.
async fn states_in_postgres(pipeline: &Pipeline) -> BTreeMap<String, PropertyState> {
    let rows = pipeline
        .db()
        .await
        .query("SELECT property_key, state::text FROM properties", &[])
        .await
        .expect("read properties");
    rows.iter()
        .map(|row| {
            let key: String = row.get(0);
            let state: String = row.get(1);
            let state = serde_json::from_str(&state)
                .unwrap_or_else(|e| panic!("the state of {key} is a PropertyState: {e}"));
            (key, state)
        })
        .collect()
}

/// Each property's last record on `properties.latest`, decoded.
fn states_on_latest(pipeline: &Pipeline) -> BTreeMap<String, PropertyState> {
    let mut states = BTreeMap::new();
    for record in pipeline.read_topic(&pipeline.topics.latest()) {
        let key = String::from_utf8_lossy(record.key().expect("a keyed record")).into_owned();
        let value = record.payload().expect("a state, not a tombstone");
        let (_, datum) = schemas::wire::split(value).expect("Confluent wire format");
        let state = schemas::decode_state(schemas::state_schema(), datum)
            .unwrap_or_else(|e| panic!("the record of {key} decodes: {e}"));
        let _ = states.insert(key, state);
    }
    states
}

/// `state` with the future-dated event's time (each pipeline's own
/// arrival time) blanked.
fn without_arrival_time(mut state: PropertyState, future_dated: &str) -> PropertyState {
    for version in state.fields.values_mut() {
        if version.dedupe_key == future_dated {
            version.occurred_at = 0;
        }
    }
    for contributor in state
        .contributors
        .iter_mut()
        .chain(state.last_event.as_mut())
    {
        if contributor.dedupe_key == future_dated {
            contributor.occurred_at = 0;
        }
    }
    state
}

/// Waits until every event has its row in the corrected version and both
/// stores have stopped changing.
async fn wait_until_corrected(pipeline: &Pipeline, events: usize, properties: usize) {
    let corrected =
        format!("SELECT count(*) FROM property_events WHERE normalizer_version = '{CORRECTED}'");
    let events = i64::try_from(events).expect("count");
    assert_eq!(
        pipeline
            .wait_for_count(&corrected, events, Duration::from_secs(180))
            .await,
        events,
        "{}",
        pipeline.all_logs()
    );
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    let mut last = (
        states_in_postgres(pipeline).await,
        states_on_latest(pipeline),
    );
    loop {
        tokio::time::sleep(Duration::from_secs(2)).await;
        let now = (
            states_in_postgres(pipeline).await,
            states_on_latest(pipeline),
        );
        if now == last && now.0.len() == properties && now.0 == now.1 {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the states did not settle: {} rows and {} latest records of {properties}",
            now.0.len(),
            now.1.len()
        );
        last = now;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn two_orders_give_the_same_state_in_postgres_and_on_latest() {
    let history = History::generate("anyorder", 30, 20);
    let events = history.dedupe_keys().len();
    let properties = history.property_keys().len();
    let since = unix_now() - 1;
    let (a, b) = tokio::join!(
        Pipeline::start("state_order_a"),
        Pipeline::start("state_order_b")
    );
    let (order_a, order_b) = (history.shuffled(1), history.shuffled(2));
    tokio::join!(
        deliver_in_order(&a, &order_a),
        deliver_in_order(&b, &order_b)
    );
    replay_everything(&a, since);
    replay_everything(&b, since);
    wait_until_corrected(&a, events, properties).await;
    wait_until_corrected(&b, events, properties).await;

    let (in_a, in_b) = (states_in_postgres(&a).await, states_in_postgres(&b).await);
    assert_eq!(
        in_a,
        states_on_latest(&a),
        "pipeline A: PostgreSQL = latest"
    );
    assert_eq!(
        in_b,
        states_on_latest(&b),
        "pipeline B: PostgreSQL = latest"
    );
    for (key, state) in &in_a {
        let other = in_b.get(key).unwrap_or_else(|| panic!("{key} only in A"));
        assert_eq!(
            without_arrival_time(state.clone(), &history.future_dated),
            without_arrival_time(other.clone(), &history.future_dated),
            "{key} differs between the two orders"
        );
    }

    // A sale carries only its price and date: what was known stays.
    let sold: Vec<&PropertyState> = in_a
        .values()
        .filter(|s| s.property.status.as_deref() == Some("sold"))
        .collect();
    assert!(!sold.is_empty(), "the history sells some properties");
    for state in sold {
        let p = &state.property;
        assert!(p.price.is_some(), "{}: price kept", state.property_key);
        assert!(
            p.location.address.is_some(),
            "{}: address kept",
            state.property_key
        );
        assert!(p.rooms.is_some(), "{}: rooms kept", state.property_key);
        assert!(
            p.sold_price.is_some() && p.sold_at.is_some(),
            "{}: the sale",
            state.property_key
        );
    }

    // The sender clock in year 9999 did not pin anything in the future.
    let now_ms = unix_now() * 1000 + 60_000;
    for state in in_a.values() {
        for version in state.fields.values() {
            assert!(
                version.occurred_at <= now_ms,
                "{}: {version:?}",
                state.property_key
            );
        }
    }
}
