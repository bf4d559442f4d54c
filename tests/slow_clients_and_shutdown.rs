//! A slow client cannot hold a connection forever, and a SIGTERM lets the
//! requests already in flight finish (and be stored) before ingest exits.

use std::time::{Duration, Instant};

use pipeline_tests::{GENERIC_SECRET, Pipeline, READ_TIMEOUT_MS, Service, unix_now};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

async fn connect(pipeline: &Pipeline) -> TcpStream {
    TcpStream::connect(pipeline.ingest_url.trim_start_matches("http://"))
        .await
        .expect("connect to ingest")
}

#[tokio::test(flavor = "multi_thread")]
async fn a_client_that_never_finishes_its_headers_is_disconnected_at_the_deadline() {
    let pipeline = Pipeline::start_ingest("slow_headers").await;
    // Ingest's deadline starts when it accepts the connection, which can be
    // a moment before `connect` returns here: start the clock before it.
    let started = Instant::now();
    let mut stream = connect(&pipeline).await;
    stream
        .write_all(b"POST /webhooks/generic HTTP/1.1\r\nhost: ingest\r\n")
        .await
        .expect("send part of the headers");
    let mut answer = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut answer)).await;
    let elapsed = started.elapsed();
    assert!(
        read.is_ok(),
        "the connection is closed by ingest, not left open"
    );
    assert!(
        elapsed >= Duration::from_millis(READ_TIMEOUT_MS)
            && elapsed < Duration::from_millis(READ_TIMEOUT_MS + 2000),
        "closed at the header deadline, took {elapsed:?}"
    );
    pipeline.assert_raw_empty();
}

#[tokio::test(flavor = "multi_thread")]
async fn sigterm_lets_an_in_flight_request_finish_and_be_stored() {
    let mut pipeline = Pipeline::start_ingest("drain").await;
    let body = br#"{"id":"evt_drain","type":"property.updated","data":{}}"#;
    let ts = unix_now().to_string();
    let sig = ingest::verify::hmac_timestamp::sign(GENERIC_SECRET.as_bytes(), &ts, body);
    let head = format!(
        "POST /webhooks/generic HTTP/1.1\r\nhost: ingest\r\ncontent-type: application/json\r\n\
         x-webhook-timestamp: {ts}\r\nx-webhook-signature: {sig}\r\n\
         content-length: {}\r\nconnection: close\r\n\r\n",
        body.len()
    );
    let mut stream = connect(&pipeline).await;
    stream
        .write_all(head.as_bytes())
        .await
        .expect("send headers");
    stream
        .write_all(&body[..10])
        .await
        .expect("send the start of the body");
    tokio::time::sleep(Duration::from_millis(200)).await;

    pipeline.send_sigterm(Service::Ingest);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        TcpStream::connect(pipeline.ingest_url.trim_start_matches("http://"))
            .await
            .is_err(),
        "after SIGTERM ingest accepts no new connection"
    );
    // The request is still in flight: finish it after the signal.
    stream
        .write_all(&body[10..])
        .await
        .expect("send the rest of the body");
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut answer)).await;
    let text = String::from_utf8_lossy(&answer);
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    let exited_cleanly = pipeline
        .wait_exit(Service::Ingest, Duration::from_secs(15))
        .await;
    assert!(exited_cleanly, "ingest exits 0 after draining");
    let records = pipeline.read_topic(&pipeline.topics.raw());
    assert_eq!(records.len(), 1, "the drained request was stored");
}

#[tokio::test(flavor = "multi_thread")]
async fn sigterm_closes_what_is_left_at_the_drain_deadline_and_exits() {
    // A body read deadline far longer than the drain deadline: the slow
    // bodies would outlive the drain if nothing closed them.
    let mut pipeline = Pipeline::start_with(
        "drain_deadline",
        &[Service::Ingest],
        None,
        &[
            ("INGEST__DRAIN_TIMEOUT_MS", "1000"),
            ("INGEST__BODY_READ_TIMEOUT_MS", "30000"),
        ],
    )
    .await;
    let mut slow = Vec::new();
    for _ in 0..20 {
        let mut stream = connect(&pipeline).await;
        let head = format!(
            "POST /webhooks/generic HTTP/1.1\r\nhost: ingest\r\ncontent-type: application/json\r\n\
             x-webhook-timestamp: {}\r\nx-webhook-signature: {}\r\ncontent-length: 1000\r\n\r\n{{",
            unix_now(),
            "ab".repeat(32)
        );
        stream
            .write_all(head.as_bytes())
            .await
            .expect("send a head");
        slow.push(stream);
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let started = Instant::now();
    pipeline.send_sigterm(Service::Ingest);
    assert!(
        pipeline
            .wait_exit(Service::Ingest, Duration::from_secs(15))
            .await,
        "ingest exited"
    );
    let took = started.elapsed();
    assert!(
        took < Duration::from_secs(6),
        "exited {took:?} after SIGTERM with a 1 s drain deadline (flush bound included)"
    );
    pipeline.assert_raw_empty();
}
