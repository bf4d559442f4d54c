//! Ingest holds on the open internet: under each attack a stranger can
//! mount without any credential, a provider sending correctly signed
//! webhooks to another source keeps getting 200 inside its 5 s budget,
//! `/healthz` keeps answering, and nothing the attacker sent reaches
//! `webhooks.raw`.
//!
//! The attacks run one at a time (a lock), so that each measures ingest
//! under its own attack and not under the others'.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use pipeline_tests::legit_probe::LegitProbe;
use pipeline_tests::{IMMOTEUR_TOKEN, Pipeline, raw_field, unix_now};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::Mutex;

/// How long each attack runs.
const ATTACK: Duration = Duration::from_secs(5);

/// Legit webhooks the probe must at least have sent during an attack (one
/// every 50 ms when answered at once).
const MIN_LEGIT: usize = 10;

static ONE_ATTACK_AT_A_TIME: Mutex<()> = Mutex::const_new(());

fn address(pipeline: &Pipeline) -> String {
    pipeline
        .ingest_url
        .trim_start_matches("http://")
        .to_string()
}

/// Asserts `webhooks.raw` holds exactly the probe's accepted webhooks.
fn assert_raw_holds_only_legit(pipeline: &Pipeline, accepted: usize) {
    let raw = pipeline.read_topic(&pipeline.topics.raw());
    let foreign: Vec<_> = raw
        .iter()
        .filter_map(|m| raw_field(m, "source"))
        .filter(|s| s != "generic")
        .collect();
    assert!(
        foreign.is_empty(),
        "attacker records on webhooks.raw: {foreign:?}"
    );
    assert_eq!(
        raw.len(),
        accepted,
        "every accepted legit webhook is stored"
    );
}

/// Runs `attack` on `workers` tasks for [`ATTACK`] while the probe sends,
/// then checks the probe and the raw topic. Returns how many attack
/// attempts ran to their end.
async fn under_attack<F, Fut>(pipeline: &Pipeline, workers: usize, attack: F) -> usize
where
    F: Fn(String, usize) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let probe = LegitProbe::start(pipeline).await;
    let made = Arc::new(AtomicUsize::new(0));
    let attack = Arc::new(attack);
    let deadline = Instant::now() + ATTACK;
    let tasks: Vec<_> = (0..workers)
        .map(|worker| {
            let (attack, made, target) =
                (Arc::clone(&attack), Arc::clone(&made), address(pipeline));
            tokio::spawn(async move {
                while Instant::now() < deadline {
                    let finished = tokio::time::timeout(
                        deadline.saturating_duration_since(Instant::now()),
                        attack(target.clone(), worker),
                    )
                    .await;
                    // Only the attempts that ran to their end count; the
                    // last one may be cut short by the deadline.
                    if finished.is_ok() {
                        let _ = made.fetch_add(1, Ordering::Relaxed);
                    }
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.expect("attack worker");
    }
    let report = probe.finish().await;
    report.assert_served(MIN_LEGIT);
    assert_raw_holds_only_legit(pipeline, report.accepted());
    made.load(Ordering::Relaxed)
}

/// Sends `head` (and `body`, if any) on a new connection and returns what
/// came back before the server closed it or `wait` passed.
async fn exchange(target: &str, head: &[u8], body: &[u8], wait: Duration) -> Vec<u8> {
    let Ok(mut stream) = TcpStream::connect(target).await else {
        return Vec::new();
    };
    if stream.write_all(head).await.is_err() {
        return Vec::new();
    }
    let _ = stream.write_all(body).await;
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(wait, stream.read_to_end(&mut answer)).await;
    answer
}

fn status_of(answer: &[u8]) -> Option<u16> {
    let text = std::str::from_utf8(answer.get(..12)?).ok()?;
    text.strip_prefix("HTTP/1.1 ")?.parse().ok()
}

fn one_mib_json() -> Vec<u8> {
    let mut body = br#"{"pad":""#.to_vec();
    body.resize(1024 * 1024 - 2, b'x');
    body.extend_from_slice(br#""}"#);
    body
}

#[tokio::test(flavor = "multi_thread")]
async fn a_flood_of_signature_entries_costs_nothing_and_stores_nothing() {
    let _one = ONE_ATTACK_AT_A_TIME.lock().await;
    let pipeline = Pipeline::start_ingest("attack_signatures").await;
    let body = Arc::new(one_mib_json());
    let statuses = Arc::new(std::sync::Mutex::new(Vec::new()));
    let seen = Arc::clone(&statuses);
    let made = under_attack(&pipeline, 4, move |target, worker| {
        let (body, seen) = (Arc::clone(&body), Arc::clone(&seen));
        async move {
            // Half the workers send the 20,000-entry list of the original
            // attack, half the most entries a request may hold, each of the
            // right length, so every one is decoded and compared.
            let signature = if worker % 2 == 0 {
                vec!["v1,AAAA"; 20_000].join(" ")
            } else {
                vec!["v1,eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHg="; 16].join(" ")
            };
            let head = format!(
                "POST /webhooks/standard HTTP/1.1\r\nhost: ingest\r\ncontent-type: application/json\r\n\
                 webhook-id: msg_attack_{worker}\r\nwebhook-timestamp: {}\r\nwebhook-signature: {signature}\r\n\
                 content-length: {}\r\n\r\n",
                unix_now(),
                body.len()
            );
            let answer = exchange(&target, head.as_bytes(), &body, Duration::from_secs(10)).await;
            if let Ok(mut seen) = seen.lock() {
                seen.push(status_of(&answer));
            }
        }
    })
    .await;
    let statuses = statuses.lock().expect("statuses").clone();
    assert!(made >= 4, "the attack ran ({made} requests)");
    assert!(
        statuses.iter().flatten().all(|s| *s == 431 || *s == 401),
        "the flood is refused: 431 for a head over the limit, 401 for bad signatures: {statuses:?}"
    );
    assert!(
        statuses.contains(&Some(401)),
        "the 16-entry requests were verified and refused: {statuses:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn slow_headers_from_many_connections_do_not_hold_ingest() {
    let _one = ONE_ATTACK_AT_A_TIME.lock().await;
    let pipeline = Pipeline::start_ingest("attack_slow_headers").await;
    let _ = under_attack(&pipeline, 200, |target, _| async move {
        let Ok(mut stream) = TcpStream::connect(&target).await else {
            tokio::time::sleep(Duration::from_millis(100)).await;
            return;
        };
        let _ = stream
            .write_all(b"POST /webhooks/standard HTTP/1.1\r\nhost: i")
            .await;
        // One byte every 300 ms, never finishing the head.
        while stream.write_all(b"x").await.is_ok() {
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn slow_bodies_on_every_other_source_leave_the_last_its_share() {
    let _one = ONE_ATTACK_AT_A_TIME.lock().await;
    let pipeline = Pipeline::start_ingest("attack_slow_bodies").await;
    // Heads that pass every check made before the body (fresh timestamps,
    // well-formed signatures), then bodies trickled in, on two sources at
    // once, from more connections than the global in-flight cap. The probe
    // sends to a third source.
    let _ = under_attack(&pipeline, 600, |target, worker| async move {
        let Ok(mut stream) = TcpStream::connect(&target).await else {
            tokio::time::sleep(Duration::from_millis(100)).await;
            return;
        };
        let now = unix_now();
        let head = if worker % 2 == 0 {
            format!(
                "POST /webhooks/standard HTTP/1.1\r\nhost: ingest\r\ncontent-type: application/json\r\n\
                 webhook-id: msg_slow_{worker}\r\nwebhook-timestamp: {now}\r\n\
                 webhook-signature: v1,eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHg=\r\n\
                 content-length: 1000000\r\n\r\n{{"
            )
        } else {
            format!(
                "POST /webhooks/generic-traced HTTP/1.1\r\nhost: ingest\r\ncontent-type: application/json\r\n\
                 x-webhook-timestamp: {now}\r\nx-webhook-signature: {}\r\n\
                 content-length: 1000000\r\n\r\n{{",
                "ab".repeat(32)
            )
        };
        let _ = stream.write_all(head.as_bytes()).await;
        while stream.write_all(b" ").await.is_ok() {
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn oversized_bodies_are_413_even_while_their_source_is_at_its_cap() {
    let _one = ONE_ATTACK_AT_A_TIME.lock().await;
    let pipeline = Pipeline::start_ingest("attack_oversize_at_cap").await;
    let address = address(&pipeline);
    // Hold `generic-capped`'s only slot with a body that never comes.
    let mut holder = TcpStream::connect(&address).await.expect("connect");
    let ts = unix_now().to_string();
    let head = format!(
        "POST /webhooks/generic-capped HTTP/1.1\r\nhost: ingest\r\ncontent-type: application/json\r\n\
         x-webhook-timestamp: {ts}\r\nx-webhook-signature: {}\r\ncontent-length: 10\r\n\r\n{{",
        "ab".repeat(32)
    );
    holder
        .write_all(head.as_bytes())
        .await
        .expect("hold the slot");
    tokio::time::sleep(Duration::from_millis(300)).await;
    let over = format!(
        "POST /webhooks/generic-capped HTTP/1.1\r\nhost: ingest\r\ncontent-type: application/json\r\n\
         content-length: {}\r\n\r\n",
        2 * 1024 * 1024
    );
    let answer = exchange(&address, over.as_bytes(), b"", Duration::from_secs(5)).await;
    assert_eq!(
        status_of(&answer),
        Some(413),
        "{}",
        String::from_utf8_lossy(&answer)
    );
    let under = "POST /webhooks/generic-capped HTTP/1.1\r\nhost: ingest\r\n\
                 content-type: application/json\r\ncontent-length: 2\r\n\r\n{}";
    let answer = exchange(&address, under.as_bytes(), b"", Duration::from_secs(5)).await;
    assert_eq!(status_of(&answer), Some(503), "the slot is still held");
    drop(holder);
    pipeline.assert_raw_empty();
}

#[tokio::test(flavor = "multi_thread")]
async fn connection_churn_does_not_close_a_providers_kept_alive_connection() {
    let _one = ONE_ATTACK_AT_A_TIME.lock().await;
    let pipeline = Pipeline::start_with(
        "attack_churn",
        &[pipeline_tests::Service::Ingest],
        None,
        &[("INGEST__MAX_CONNECTIONS", "64")],
    )
    .await;
    // Strangers that each send one request (a 404), read the answer, then
    // hold the connection idle, while new ones keep arriving. The probe's
    // kept-alive connection is used every 50 ms, so it is never the one
    // idle the longest.
    let _ = under_attack(&pipeline, 100, |target, _| async move {
        let Ok(mut stream) = TcpStream::connect(&target).await else {
            tokio::time::sleep(Duration::from_millis(100)).await;
            return;
        };
        let _ = stream
            .write_all(b"GET / HTTP/1.1\r\nhost: ingest\r\n\r\n")
            .await;
        let mut buffer = [0u8; 4096];
        while stream.read(&mut buffer).await.is_ok_and(|n| n > 0) {}
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn more_connections_than_the_cap_evict_the_idle_ones() {
    let _one = ONE_ATTACK_AT_A_TIME.lock().await;
    let pipeline = Pipeline::start_with(
        "attack_connections",
        &[pipeline_tests::Service::Ingest],
        None,
        &[("INGEST__MAX_CONNECTIONS", "32")],
    )
    .await;
    let closed_by_ingest = Arc::new(AtomicUsize::new(0));
    let closed = Arc::clone(&closed_by_ingest);
    let _ = under_attack(&pipeline, 200, move |target, _| {
        let closed = Arc::clone(&closed);
        async move {
            let Ok(mut stream) = TcpStream::connect(&target).await else {
                tokio::time::sleep(Duration::from_millis(100)).await;
                return;
            };
            // Hold the connection without sending; count it when ingest
            // closes it (to make room, or at the header deadline).
            let mut byte = [0u8; 1];
            if stream.read(&mut byte).await.is_ok() {
                let _ = closed.fetch_add(1, Ordering::Relaxed);
            }
        }
    })
    .await;
    assert!(
        closed_by_ingest.load(Ordering::Relaxed) > 0,
        "ingest closed idle connections to make room"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn header_only_check_failures_are_refused_before_the_body() {
    let _one = ONE_ATTACK_AT_A_TIME.lock().await;
    let pipeline = Pipeline::start_ingest("attack_header_checks").await;
    let refused_without_body = Arc::new(AtomicUsize::new(0));
    let counted = Arc::clone(&refused_without_body);
    let made = under_attack(&pipeline, 8, move |target, worker| {
        let counted = Arc::clone(&counted);
        async move {
            let head = match worker % 3 {
                0 => "POST /webhooks/immoteur HTTP/1.1\r\nhost: ingest\r\ncontent-type: application/json\r\n\
                      authorization: Bearer not-the-token\r\ncontent-length: 1048576\r\n\r\n"
                    .to_string(),
                1 => "POST /webhooks/fluximmo?token=not-the-token HTTP/1.1\r\nhost: ingest\r\n\
                      content-type: application/json\r\ncontent-length: 1048576\r\n\r\n"
                    .to_string(),
                // The right token but no Immoteur headers: still refused
                // before the body.
                _ => format!(
                    "POST /webhooks/immoteur HTTP/1.1\r\nhost: ingest\r\ncontent-type: application/json\r\n\
                     authorization: Bearer {IMMOTEUR_TOKEN}\r\ncontent-length: 1048576\r\n\r\n"
                ),
            };
            // The body is never sent: an answer proves it was not awaited.
            let answer = exchange(&target, head.as_bytes(), b"", Duration::from_secs(5)).await;
            if status_of(&answer) == Some(401) {
                let _ = counted.fetch_add(1, Ordering::Relaxed);
            }
        }
    })
    .await;
    let refused = refused_without_body.load(Ordering::Relaxed);
    assert!(
        refused > 0 && refused == made,
        "{refused} of {made} header-only failures were answered 401 without their body"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_senders_traceparent_never_becomes_the_trace_root_of_an_untrusted_source() {
    let _one = ONE_ATTACK_AT_A_TIME.lock().await;
    let pipeline = Pipeline::start_ingest("attack_traceparent").await;
    let foreign_trace = "4bf92f3577b34da6a3ce929d0e0e4736";
    let foreign = format!("00-{foreign_trace}-00f067aa0ba902b7-01");
    let hostile = [
        foreign.clone(),
        "x".repeat(8000),
        format!("ff-{foreign_trace}-00f067aa0ba902b7-01"),
        "00-00000000000000000000000000000000-0000000000000000-01".to_string(),
        format!("00-{foreign_trace}-00f067aa0ba902b7-01-extra"),
        "00-4BF92F3577B34DA6A3CE929D0E0E4736-00F067AA0BA902B7-01".to_string(),
        "\u{7f}garbage".to_string(),
    ];
    let client = pipeline.client();
    for (n, traceparent) in hostile.iter().enumerate() {
        let body =
            format!(r#"{{"id":"evt_trace_{n}","type":"property.created","data":{{"id":"p{n}"}}}}"#);
        let ts = unix_now().to_string();
        let sig = ingest::verify::hmac_timestamp::sign(
            pipeline_tests::GENERIC_SECRET.as_bytes(),
            &ts,
            body.as_bytes(),
        );
        let mut headers = vec![("x-webhook-timestamp", ts), ("x-webhook-signature", sig)];
        if reqwest::header::HeaderValue::from_str(traceparent).is_ok() {
            headers.push(("traceparent", traceparent.clone()));
        }
        let r = client
            .post("generic", &headers, body.as_bytes())
            .await
            .expect("answers");
        assert_eq!(r.status(), 200, "traceparent {traceparent:?}");
    }
    let raw = pipeline.read_topic(&pipeline.topics.raw());
    assert_eq!(raw.len(), hostile.len());
    for record in &raw {
        let ours = raw_field(record, "traceparent").expect("a traceparent");
        assert!(common::traceparent::is_valid(&ours), "{ours}");
        assert!(
            !ours.contains(foreign_trace),
            "an untrusted sender's trace was adopted: {ours}"
        );
    }

    // A source trusted for tracing continues the sender's trace.
    let body = br#"{"id":"evt_trusted","type":"property.created","data":{"id":"p"}}"#;
    let ts = unix_now().to_string();
    let sig =
        ingest::verify::hmac_timestamp::sign(pipeline_tests::GENERIC_SECRET.as_bytes(), &ts, body);
    let r = client
        .post(
            "generic-traced",
            &[
                ("x-webhook-timestamp", ts),
                ("x-webhook-signature", sig),
                ("traceparent", foreign.clone()),
            ],
            body,
        )
        .await
        .expect("answers");
    assert_eq!(r.status(), 200);
    let raw = pipeline.read_topic(&pipeline.topics.raw());
    let trusted = raw
        .iter()
        .find(|m| raw_field(m, "source").as_deref() == Some("generic-traced"))
        .expect("the trusted source's record");
    let continued = raw_field(trusted, "traceparent").expect("a traceparent");
    assert!(continued.contains(foreign_trace), "{continued}");
}

/// A JSON body of exactly `len` bytes.
fn json_of_len(len: usize) -> Vec<u8> {
    let mut body = br#"{"id":"evt_size","pad":""#.to_vec();
    body.resize(len - 2, b'x');
    body.extend_from_slice(br#""}"#);
    body
}

#[tokio::test(flavor = "multi_thread")]
async fn bodies_at_every_size_boundary_get_200_or_413_never_503() {
    let _one = ONE_ATTACK_AT_A_TIME.lock().await;
    let pipeline = Pipeline::start_ingest("attack_sizes").await;
    let probe = LegitProbe::start(&pipeline).await;
    let limit = 1024 * 1024;
    let client = pipeline.client();
    let mut stored = 0;
    for len in [
        999_500,
        1_000_000,
        1_040_000,
        limit - 1,
        limit,
        limit + 1,
        limit + 100_000,
    ] {
        let status = client
            .post_generic(&json_of_len(len))
            .await
            .expect("answers")
            .status()
            .as_u16();
        let expected = if len <= limit { 200 } else { 413 };
        assert_eq!(status, expected, "a {len}-byte body");
        stored += usize::from(status == 200);
    }
    // Let the probe go on long enough to say something.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let report = probe.finish().await;
    report.assert_served(MIN_LEGIT);
    let raw = pipeline.read_topic(&pipeline.topics.raw());
    assert_eq!(raw.len(), report.accepted() + stored);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_fluximmo_body_listing_more_ids_than_the_cap_is_one_record_and_others_are_served() {
    let _one = ONE_ATTACK_AT_A_TIME.lock().await;
    let pipeline = Pipeline::start_ingest("attack_fluximmo_ids").await;
    let probe = LegitProbe::start(&pipeline).await;
    // 100,000 ids in under 1 MiB: ingest stores the bytes as they are (its
    // token is right); normalize refuses to expand them past its cap
    // (tests/oversized_outputs.rs checks that dead letter).
    let ids: Vec<String> = (0..100_000).map(|n| format!("\"{n}\"")).collect();
    let body = format!(
        r#"{{"data":{{"created":[{{"alert_id":"a","properties":[{}]}}]}}}}"#,
        ids.join(",")
    );
    assert!(body.len() < 1024 * 1024);
    let r = pipeline
        .client()
        .post_to(
            "fluximmo",
            &format!("token={}", pipeline_tests::FLUXIMMO_TOKEN),
            &[],
            body.as_bytes(),
        )
        .await
        .expect("answers");
    assert_eq!(r.status(), 200);
    tokio::time::sleep(Duration::from_secs(1)).await;
    let report = probe.finish().await;
    report.assert_served(MIN_LEGIT);
    let raw = pipeline.read_topic(&pipeline.topics.raw());
    let fluximmo = raw
        .iter()
        .filter(|m| raw_field(m, "source").as_deref() == Some("fluximmo"))
        .count();
    assert_eq!(fluximmo, 1, "the body is one record, stored once");
    assert_eq!(raw.len(), report.accepted() + 1);
}
