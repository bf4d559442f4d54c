//! Requests that fail verification or are malformed get a precise status
//! and JSON error, and nothing reaches `webhooks.raw`.

use std::time::{Duration, Instant};

use pipeline_tests::{GENERIC_SECRET, Pipeline, READ_TIMEOUT_MS, assert_error, fixture, unix_now};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

#[tokio::test(flavor = "multi_thread")]
async fn bad_signatures_are_401_and_never_reach_kafka() {
    let pipeline = Pipeline::start_ingest("rejected").await;
    let body = fixture("generic/property.created.json");
    let now = unix_now().to_string();
    let sign =
        |secret: &str, ts: &str| ingest::verify::hmac_timestamp::sign(secret.as_bytes(), ts, &body);

    let wrong_secret = pipeline
        .post(
            "generic",
            &[
                ("x-webhook-timestamp", now.clone()),
                ("x-webhook-signature", sign("not-the-secret", &now)),
            ],
            &body,
        )
        .await
        .expect("answers");
    let e = assert_error(wrong_secret, 401, "unauthorized").await;
    assert_eq!(e["reason"], "bad_signature");

    let stale_ts = (unix_now() - 301).to_string();
    let stale = pipeline
        .post(
            "generic",
            &[
                ("x-webhook-timestamp", stale_ts.clone()),
                ("x-webhook-signature", sign(GENERIC_SECRET, &stale_ts)),
            ],
            &body,
        )
        .await
        .expect("answers");
    let e = assert_error(stale, 401, "unauthorized").await;
    assert_eq!(e["reason"], "stale_timestamp");

    let missing = pipeline
        .post("generic", &[("x-webhook-timestamp", now.clone())], &body)
        .await
        .expect("answers");
    let e = assert_error(missing, 401, "unauthorized").await;
    assert_eq!(e["reason"], "missing_header");

    let retired = pipeline
        .post(
            "generic",
            &[
                ("x-webhook-timestamp", now.clone()),
                (
                    "x-webhook-signature",
                    sign("test-generic-secret-retired", &now),
                ),
            ],
            &body,
        )
        .await
        .expect("answers");
    let e = assert_error(retired, 401, "unauthorized").await;
    assert_eq!(
        e["reason"], "bad_signature",
        "a secret removed by a rotation"
    );

    let mut tampered = body.clone();
    let last = tampered.len() - 2;
    tampered[last] = b' ';
    let tampered_response = pipeline
        .post(
            "generic",
            &[
                ("x-webhook-timestamp", now.clone()),
                ("x-webhook-signature", sign(GENERIC_SECRET, &now)),
            ],
            &tampered,
        )
        .await
        .expect("answers");
    let _ = assert_error(tampered_response, 401, "unauthorized").await;

    assert!(
        pipeline.read_topic(&pipeline.topics.raw()).is_empty(),
        "rejected requests must not reach webhooks.raw"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn malformed_requests_get_precise_statuses() {
    let pipeline = Pipeline::start_ingest("malformed").await;
    let now = unix_now().to_string();
    let not_json = b"not json at all";
    let sig = ingest::verify::hmac_timestamp::sign(GENERIC_SECRET.as_bytes(), &now, not_json);
    let r = pipeline
        .post(
            "generic",
            &[
                ("x-webhook-timestamp", now.clone()),
                ("x-webhook-signature", sig),
            ],
            not_json,
        )
        .await
        .expect("answers");
    let _ = assert_error(r, 400, "invalid_json").await;

    let r = pipeline.post_generic(b"{}").await.expect("answers");
    assert_eq!(
        r.status(),
        200,
        "a signed JSON body is accepted even if normalize will refuse it"
    );

    let r = pipeline.post("nowhere", &[], b"{}").await.expect("answers");
    let _ = assert_error(r, 404, "unknown_source").await;

    let r = reqwest::Client::new()
        .post(format!("{}/webhooks/generic", pipeline.ingest_url))
        .header("content-type", "text/plain")
        .body("{}")
        .send()
        .await
        .expect("answers");
    let _ = assert_error(r, 415, "unsupported_media_type").await;

    let r = reqwest::get(format!("{}/webhooks/generic", pipeline.ingest_url))
        .await
        .expect("answers");
    let _ = assert_error(r, 405, "method_not_allowed").await;

    let big = vec![b' '; 1024 * 1024 + 1];
    let r = pipeline.post_generic(&big).await.expect("answers");
    let _ = assert_error(r, 413, "payload_too_large").await;

    assert_eq!(
        pipeline.read_topic(&pipeline.topics.raw()).len(),
        1,
        "only the one valid request reached webhooks.raw"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_client_that_stalls_its_body_gets_408_at_the_read_deadline() {
    let pipeline = Pipeline::start_ingest("slow_body").await;
    let address = pipeline
        .ingest_url
        .trim_start_matches("http://")
        .to_string();
    let mut stream = tokio::net::TcpStream::connect(&address)
        .await
        .expect("connect");
    let started = Instant::now();
    // Headers that pass the checks made before the body (a fresh timestamp,
    // a well-formed signature), so the body is read, and stalls.
    let ts = unix_now().to_string();
    let signature = ingest::verify::hmac_timestamp::sign(GENERIC_SECRET.as_bytes(), &ts, b"{}");
    let head = format!(
        "POST /webhooks/generic HTTP/1.1\r\nhost: ingest\r\ncontent-type: application/json\r\n\
         x-webhook-timestamp: {ts}\r\nx-webhook-signature: {signature}\r\n\
         content-length: 100\r\n\r\n{{\"id\":"
    );
    stream
        .write_all(head.as_bytes())
        .await
        .expect("send a partial request");
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut answer)).await;
    let elapsed = started.elapsed();
    let text = String::from_utf8_lossy(&answer);
    assert!(text.starts_with("HTTP/1.1 408"), "{text}");
    assert!(text.contains("request_timeout"), "{text}");
    assert!(
        elapsed >= Duration::from_millis(READ_TIMEOUT_MS)
            && elapsed < Duration::from_millis(READ_TIMEOUT_MS + 2000),
        "answered at the deadline, took {elapsed:?}"
    );
    pipeline.assert_raw_empty();
}
