//! Standard Webhooks deliveries: `v1` signatures over
//! `webhook-id.webhook-timestamp.body`. Signed with either active secret
//! (rotation) they land byte for byte keyed by `webhook-id`; any bad
//! signature, stale timestamp, missing header or tampered byte is a 401.

use ingest::verify::standard_webhooks::{decode_secret, sign};
use pipeline_tests::{
    Pipeline, STANDARD_PREVIOUS_SECRET, STANDARD_SECRET, assert_error, assert_record, fixture,
    raw_field, unix_now,
};

fn signed(secret: &str, id: &str, ts: i64, body: &[u8]) -> Vec<(&'static str, String)> {
    let key = decode_secret(secret.as_bytes()).expect("a whsec_ secret");
    let ts = ts.to_string();
    vec![
        ("webhook-id", id.to_string()),
        ("webhook-signature", sign(key.expose(), id, &ts, body)),
        ("webhook-timestamp", ts),
    ]
}

#[tokio::test(flavor = "multi_thread")]
async fn standard_webhooks_with_either_active_secret_are_stored_keyed_by_webhook_id() {
    let pipeline = Pipeline::start_ingest("standard_ok").await;
    let body = fixture("generic/property.created.json");
    let r = pipeline
        .post(
            "standard",
            &signed(STANDARD_PREVIOUS_SECRET, "msg_2", unix_now(), &body),
            &body,
        )
        .await
        .expect("answers");
    assert_eq!(r.status(), 200, "the previous secret is still active");
    let record = pipeline.only_raw_record(&body).await;
    assert_record(
        &record,
        Some("standard:msg_2"),
        &[
            ("source", Some("standard")),
            ("provider", Some("standard-webhooks")),
            ("verify-scheme", Some("standard-webhooks")),
            ("verify-key", Some("previous")),
            ("event-id", Some("msg_2")),
        ],
    );

    let r = pipeline
        .post(
            "standard",
            &signed(STANDARD_SECRET, "msg_3", unix_now(), &body),
            &body,
        )
        .await
        .expect("answers");
    assert_eq!(r.status(), 200);
    let records = pipeline
        .wait_for_records(
            &pipeline.topics.raw(),
            2,
            std::time::Duration::from_secs(10),
        )
        .await;
    assert!(
        records
            .iter()
            .any(|r| raw_field(r, "verify-key").as_deref() == Some("current")),
        "the current secret is reported by its label"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn standard_webhooks_bad_signatures_are_401_and_never_stored() {
    let pipeline = Pipeline::start_ingest("standard_bad").await;
    let body = fixture("generic/property.created.json");
    let now = unix_now();
    let retired = "whsec_dGVzdC1zdGFuZGFyZC13ZWJob29rcy1nb25l";
    let mut tampered = body.clone();
    let last = tampered.len() - 2;
    tampered[last] = b' ';
    let cases = vec![
        (
            "wrong secret",
            signed("whsec_bm90LXRoZS1rZXk=", "msg_1", now, &body),
            body.clone(),
            "bad_signature",
        ),
        (
            "secret removed by a rotation",
            signed(retired, "msg_1", now, &body),
            body.clone(),
            "bad_signature",
        ),
        (
            "stale timestamp",
            signed(STANDARD_SECRET, "msg_1", now - 301, &body),
            body.clone(),
            "stale_timestamp",
        ),
        (
            "no signature",
            signed(STANDARD_SECRET, "msg_1", now, &body)
                .into_iter()
                .filter(|(k, _)| *k != "webhook-signature")
                .collect(),
            body.clone(),
            "missing_header",
        ),
        (
            "body changed by one byte",
            signed(STANDARD_SECRET, "msg_1", now, &body),
            tampered,
            "bad_signature",
        ),
    ];
    for (what, headers, body, reason) in cases {
        let r = pipeline
            .post("standard", &headers, &body)
            .await
            .expect("answers");
        let e = assert_error(r, 401, "unauthorized").await;
        assert_eq!(e["reason"], reason, "{what}: {e}");
    }
    pipeline.assert_raw_empty();
}
