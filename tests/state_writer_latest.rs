//! The state writer end to end: events for a few properties, delivered out
//! of order, with a partial sale after a creation and a re-notification
//! that changes nothing, flow through the whole pipeline, and the last
//! record of each property on `properties.latest` decodes (with the writer
//! schema the registry gives for its id, as any consumer would, Python's
//! stock `AvroDeserializer` included) to the merge of its events: the sold
//! property keeps its price and address. Each record names the input that
//! produced it, and nothing is written twice.

use std::time::Duration;

use pipeline_tests::latest_states::assert_latest_is_the_merge;
use pipeline_tests::{Pipeline, Service};

/// A generic webhook: event `id` of `kind` at `created` (10:MM), about
/// property `prop` with the given `property` JSON members.
fn webhook(id: &str, kind: &str, minute: u32, prop: &str, property: &str) -> Vec<u8> {
    let comma = if property.is_empty() { "" } else { "," };
    format!(
        r#"{{"id":"{id}","type":"property.{kind}","created":"2024-03-01T10:{minute:02}:00Z",
           "data":{{"property":{{"id":"{prop}"{comma}{property}}}}}}}"#
    )
    .into_bytes()
}

#[tokio::test(flavor = "multi_thread")]
async fn the_last_state_of_each_property_is_the_merge_of_its_events() {
    let pipeline = Pipeline::start("state_latest").await;
    let deliveries = [
        // p1: created, then sold with nothing but the sale.
        webhook(
            "evt_p1_created",
            "created",
            0,
            "p1",
            r#""price":500000,"bedrooms":3,"address":"1 Rue Haute, Lyon""#,
        ),
        webhook("evt_p1_sold", "sold", 30, "p1", ""),
        // p2: the price change arrives before the creation it follows.
        webhook("evt_p2_updated", "updated", 20, "p2", r#""price":420000"#),
        webhook(
            "evt_p2_created",
            "created",
            5,
            "p2",
            r#""price":400000,"bedrooms":2,"address":"2 Rue Basse, Paris""#,
        ),
        // p3: created, then the same data at the same time under another
        // event id (a provider's re-notification): it changes nothing. At
        // equal times the smaller dedupe key wins, and `..._renotified`
        // sorts after `..._created`.
        webhook("evt_p3_created", "created", 10, "p3", r#""price":300000"#),
        webhook(
            "evt_p3_renotified",
            "created",
            10,
            "p3",
            r#""price":300000"#,
        ),
    ];
    // Raw records without a key spread over partitions, so each delivery
    // waits for its event on properties.events: the order above is the
    // order the state writer reads.
    for (n, body) in deliveries.iter().enumerate() {
        pipeline.deliver_generic(body).await;
        let events = pipeline
            .wait_for_records(&pipeline.topics.events(), n + 1, Duration::from_secs(30))
            .await;
        assert_eq!(events.len(), n + 1, "{}", pipeline.all_logs());
    }

    let latest =
        assert_latest_is_the_merge(&pipeline, deliveries.len(), Duration::from_secs(60)).await;
    let state = |key: &str| {
        &latest
            .get(key)
            .unwrap_or_else(|| panic!("no state for {key}: {latest:?}"))
            .state
    };
    let p1 = state("generic:p1");
    assert_eq!(p1.property.status.as_deref(), Some("sold"));
    assert_eq!(
        p1.property.price,
        Some(500_000.0),
        "the sale keeps the price"
    );
    assert_eq!(p1.property.bedrooms, Some(3));
    assert_eq!(
        p1.property.location.address.as_deref(),
        Some("1 Rue Haute, Lyon"),
        "the sale keeps the address"
    );
    assert_eq!(
        p1.last_event.as_ref().map(|e| e.dedupe_key.as_str()),
        Some("generic:evt_p1_sold")
    );
    let p2 = state("generic:p2");
    assert_eq!(p2.property.price, Some(420_000.0), "the newer price wins");
    assert_eq!(p2.property.bedrooms, Some(2));
    assert_eq!(
        p2.property.location.address.as_deref(),
        Some("2 Rue Basse, Paris")
    );
    assert_eq!(p2.contributing_events, 2);
    assert_eq!(state("generic:p3").property.price, Some(300_000.0));

    // One record per change: p1 and p2 two each, p3 one (its
    // re-notification changed nothing and is counted as unchanged).
    let records = pipeline_tests::latest_states::latest_records(&pipeline).await;
    let count = |key: &str| records.iter().filter(|r| r.key == key).count();
    assert_eq!(
        (
            count("generic:p1"),
            count("generic:p2"),
            count("generic:p3")
        ),
        (2, 2, 1),
        "{records:#?}"
    );
    for record in &records {
        assert_eq!(
            record.headers,
            ["traceparent", "dedupe-key", "source-offset"],
            "{record:?}"
        );
    }
    let metrics = reqwest::get(pipeline.metrics_url(Service::StateWriter))
        .await
        .expect("/metrics answers")
        .text()
        .await
        .expect("text");
    for sample in [
        "state_writer_records_in_total 6",
        "state_writer_records_out_total 5",
        "state_writer_unchanged_total 1",
        "state_writer_undecodable_total 0",
    ] {
        assert!(metrics.contains(sample), "{sample} in:\n{metrics}");
    }

    // The schema is the registry's latest under the topic's subject.
    let registered = pipeline
        .registered_value_schema(&pipeline.topics.latest())
        .await;
    assert!(
        records
            .iter()
            .all(|r| Some(u64::from(r.schema_id)) == registered["id"].as_u64()),
        "{registered}"
    );

    // And Python's stock client reads the states too.
    let decoded = pipeline.decoded_by_python(
        &pipeline.topics.latest(),
        records.len(),
        &["--last-per-key"],
    );
    let p1 = decoded
        .iter()
        .find(|v| v["property_key"] == "generic:p1")
        .unwrap_or_else(|| panic!("p1 decoded by Python: {decoded:?}"));
    assert_eq!(p1["property"]["status"], "sold");
    assert_eq!(p1["property"]["price"], 500_000.0);
    assert_eq!(p1["property"]["location"]["address"], "1 Rue Haute, Lyon");
    assert_eq!(p1["fields"]["status"]["dedupe_key"], "generic:evt_p1_sold");
    assert_eq!(decoded.len(), 3, "one state per property: {decoded:?}");
}
