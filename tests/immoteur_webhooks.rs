//! Immoteur deliveries: a bearer token plus the `X-Immoteur-*` headers. A
//! valid delivery lands on `webhooks.raw` byte for byte, keyed by the event
//! id, with the delivery id in a header; every kind of bad credential is a
//! 401 and stores nothing.

use pipeline_tests::{
    IMMOTEUR_TOKEN, Pipeline, assert_error, assert_record, fixture, raw_field, unix_now,
};

const EVENT_ID: &str = "3f2c5e1a-8b7d-4c6e-9a1f-0d2e3c4b5a69";
const DELIVERY_ID: &str = "c1d2e3f4-a5b6-4c7d-8e9f-0a1b2c3d4e5f";
const SERVICE_ID: &str = "7e6d5c4b-3a29-4817-a6b5-c4d3e2f1a0b9";

/// Request headers, as the harness sends them.
type Headers = Vec<(&'static str, String)>;

fn delivery(token: &str, timestamp: i64) -> Vec<(&'static str, String)> {
    vec![
        ("authorization", format!("Bearer {token}")),
        ("user-agent", "Immoteur-Webhook/1.0".into()),
        ("x-immoteur-service-id", SERVICE_ID.into()),
        ("x-immoteur-event-id", EVENT_ID.into()),
        ("x-immoteur-delivery-id", DELIVERY_ID.into()),
        ("x-immoteur-timestamp", timestamp.to_string()),
    ]
}

fn without(headers: &[(&'static str, String)], name: &str) -> Vec<(&'static str, String)> {
    headers
        .iter()
        .filter(|(k, _)| *k != name)
        .cloned()
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn immoteur_delivery_is_stored_keyed_by_its_event_id() {
    let pipeline = Pipeline::start_ingest("immoteur_ok").await;
    let body = fixture("immoteur/property-notification.json");
    let r = pipeline
        .post("immoteur", &delivery(IMMOTEUR_TOKEN, unix_now()), &body)
        .await
        .expect("answers");
    assert_eq!(r.status(), 200);
    let answer: serde_json::Value = r.json().await.expect("JSON");
    assert_eq!(answer["status"], "accepted");

    let record = pipeline.only_raw_record(&body).await;
    assert_record(
        &record,
        Some(&format!("immoteur:{EVENT_ID}")),
        &[
            ("source", Some("immoteur")),
            ("provider", Some("immoteur")),
            ("verify-scheme", Some("bearer")),
            ("verify-key", Some("current")),
            ("event-id", Some(EVENT_ID)),
            ("delivery-id", Some(DELIVERY_ID)),
            ("request-id", answer["id"].as_str()),
        ],
    );
    assert!(raw_field(&record, "verify-skew-ms").is_some());
}

#[tokio::test(flavor = "multi_thread")]
async fn immoteur_bad_credentials_are_401_and_never_stored() {
    let pipeline = Pipeline::start_ingest("immoteur_bad").await;
    let body = fixture("immoteur/property-notification.json");
    let now = unix_now();
    let cases: Vec<(&str, Headers, Vec<u8>, &str)> = vec![
        (
            "wrong token",
            delivery("not-the-token", now),
            body.clone(),
            "bad_token",
        ),
        (
            "token retired by a rotation",
            delivery("test-immoteur-token-retired", now),
            body.clone(),
            "bad_token",
        ),
        (
            "stale timestamp",
            delivery(IMMOTEUR_TOKEN, now - 301),
            body.clone(),
            "stale_timestamp",
        ),
        (
            "no Authorization",
            without(&delivery(IMMOTEUR_TOKEN, now), "authorization"),
            body.clone(),
            "missing_header",
        ),
        (
            "no event id",
            without(&delivery(IMMOTEUR_TOKEN, now), "x-immoteur-event-id"),
            body.clone(),
            "missing_header",
        ),
        (
            "no timestamp",
            without(&delivery(IMMOTEUR_TOKEN, now), "x-immoteur-timestamp"),
            body.clone(),
            "missing_header",
        ),
        (
            "delivery id not a UUID",
            {
                let mut h = without(&delivery(IMMOTEUR_TOKEN, now), "x-immoteur-delivery-id");
                h.push(("x-immoteur-delivery-id", "attempt-2".into()));
                h
            },
            body.clone(),
            "malformed_header",
        ),
    ];
    for (what, headers, body, reason) in cases {
        let r = pipeline
            .post("immoteur", &headers, &body)
            .await
            .expect("answers");
        let e = assert_error(r, 401, "unauthorized").await;
        assert_eq!(e["reason"], reason, "{what}: {e}");
    }
    pipeline.assert_raw_empty();
}
