//! Stream.estate deliveries carry no credential; they are accepted only
//! from the provider's documented addresses. Behind a trusted proxy the
//! sender is read from `X-Forwarded-For`; from any other peer that header is
//! ignored, so spoofing it gets a 403 and nothing is stored.

use pipeline_tests::{Pipeline, STREAM_ESTATE_ADDRESSES, assert_error, assert_record, fixture};

#[tokio::test(flavor = "multi_thread")]
async fn stream_estate_delivery_from_its_address_via_a_trusted_proxy_is_stored() {
    let pipeline = Pipeline::start_ingest("stream_estate_ok").await;
    let body = fixture("stream-estate/ad.update.price.json");
    let r = pipeline
        .post(
            "stream-estate",
            &[("x-forwarded-for", STREAM_ESTATE_ADDRESSES[1].to_string())],
            &body,
        )
        .await
        .expect("answers");
    assert_eq!(r.status(), 200);
    let record = pipeline.only_raw_record(&body).await;
    assert_record(
        &record,
        None,
        &[
            ("source", Some("stream-estate")),
            ("provider", Some("stream-estate")),
            ("verify-scheme", Some("source-address")),
            ("verify-key", Some(STREAM_ESTATE_ADDRESSES[1])),
            ("event-id", None),
        ],
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn stream_estate_from_other_addresses_or_spoofed_forwarded_for_is_403() {
    let pipeline = Pipeline::start_ingest("stream_estate_bad").await;
    let body = fixture("stream-estate/ad.update.price.json");
    let cases = [
        (
            "spoofed X-Forwarded-For from an untrusted peer",
            "stream-estate-direct",
            vec![("x-forwarded-for", STREAM_ESTATE_ADDRESSES[0].to_string())],
        ),
        ("direct peer not listed", "stream-estate-direct", vec![]),
        (
            "the proxy forwarded another address",
            "stream-estate",
            vec![("x-forwarded-for", "203.0.113.9".to_string())],
        ),
        (
            "an address prepended before the one the proxy saw",
            "stream-estate",
            vec![(
                "x-forwarded-for",
                format!("{}, 203.0.113.9", STREAM_ESTATE_ADDRESSES[0]),
            )],
        ),
        ("the proxy forwarded nothing", "stream-estate", vec![]),
    ];
    for (what, source, headers) in cases {
        let r = pipeline
            .post(source, &headers, &body)
            .await
            .expect("answers");
        let e = assert_error(r, 403, "forbidden").await;
        assert_eq!(e["reason"], "address_not_allowed", "{what}: {e}");
    }
    pipeline.assert_raw_empty();
}
