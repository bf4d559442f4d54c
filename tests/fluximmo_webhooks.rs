//! Fluximmo deliveries carry no signature: the endpoint is registered with a
//! secret token in its query string. With the token they land byte for
//! byte (no key: Fluximmo sends no event id); without it, a 401.

use pipeline_tests::{FLUXIMMO_TOKEN, Pipeline, assert_error, assert_record, fixture};

#[tokio::test(flavor = "multi_thread")]
async fn fluximmo_delivery_with_the_url_token_is_stored() {
    let pipeline = Pipeline::start_ingest("fluximmo_ok").await;
    let body = fixture("fluximmo/webhook-properties.json");
    let r = pipeline
        .client()
        .post_to(
            "fluximmo",
            &format!("alert=42&token={FLUXIMMO_TOKEN}"),
            &[],
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
            ("source", Some("fluximmo")),
            ("provider", Some("fluximmo")),
            ("verify-scheme", Some("secret-token")),
            ("verify-key", Some("current")),
            ("event-id", None),
        ],
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn fluximmo_without_the_right_token_is_401_and_never_stored() {
    let pipeline = Pipeline::start_ingest("fluximmo_bad").await;
    let body = fixture("fluximmo/webhook-properties.json");
    let client = pipeline.client();
    let cases = [
        ("wrong token", "token=not-the-token", vec![], "bad_token"),
        (
            "retired token",
            "token=test-fluximmo-token-retired",
            vec![],
            "bad_token",
        ),
        ("no token", "alert=42", vec![], "missing_token"),
        (
            "token in a header instead of the query",
            "",
            vec![("token", FLUXIMMO_TOKEN.to_string())],
            "missing_token",
        ),
    ];
    for (what, query, headers, reason) in cases {
        let r = client
            .post_to("fluximmo", query, &headers, &body)
            .await
            .expect("answers");
        let e = assert_error(r, 401, "unauthorized").await;
        assert_eq!(e["reason"], reason, "{what}: {e}");
    }
    pipeline.assert_raw_empty();
}
