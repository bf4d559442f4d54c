//! Hostile answers and hostile ids against the real HTTP client: a raw TCP
//! stand-in (no framework that would "fix" what a hostile server sends)
//! records every request it gets and answers what the test scripts.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::*;
use crate::api_key::{KeyLookup, lookup};

const KEY: &str = "hostile-test-key-5f0c";

/// One request as the stand-in read it.
#[derive(Debug, Clone)]
struct Seen {
    method: String,
    path: String,
    head: String,
}

/// What the stand-in answers a request with.
#[derive(Clone)]
enum Reply {
    /// These bytes, then close.
    Raw(Vec<u8>),
    /// A 200 with a `Content-Length` of this many bytes, streamed as spaces.
    Huge(u64),
    /// These bytes, then nothing for this long, then close.
    Stall(Vec<u8>, Duration),
}

type Script = Arc<dyn Fn(&Seen) -> Reply + Send + Sync>;

struct StandIn {
    address: SocketAddr,
    seen: Arc<Mutex<Vec<Seen>>>,
}

impl StandIn {
    async fn start(script: impl Fn(&Seen) -> Reply + Send + Sync + 'static) -> Self {
        let script: Script = Arc::new(script);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let address = listener.local_addr().expect("address");
        let seen = Arc::new(Mutex::new(Vec::new()));
        let recorded = Arc::clone(&seen);
        drop(tokio::spawn(async move {
            while let Ok((mut socket, _)) = listener.accept().await {
                let script = Arc::clone(&script);
                let recorded = Arc::clone(&recorded);
                drop(tokio::spawn(async move {
                    let Some(request) = read_request(&mut socket).await else {
                        return;
                    };
                    lock(&recorded).push(request.clone());
                    match script(&request) {
                        Reply::Raw(bytes) => {
                            let _ = socket.write_all(&bytes).await;
                        }
                        Reply::Huge(length) => {
                            let head = format!(
                                "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {length}\r\nconnection: close\r\n\r\n"
                            );
                            let _ = socket.write_all(head.as_bytes()).await;
                            let block = vec![b' '; 1 << 20];
                            let mut left = length;
                            while left > 0 {
                                let n = usize::try_from(left.min(1 << 20)).unwrap_or(1 << 20);
                                if socket.write_all(&block[..n]).await.is_err() {
                                    return;
                                }
                                left -= n as u64;
                            }
                        }
                        Reply::Stall(bytes, wait) => {
                            let _ = socket.write_all(&bytes).await;
                            tokio::time::sleep(wait).await;
                        }
                    }
                    let _ = socket.shutdown().await;
                }));
            }
        }));
        Self { address, seen }
    }

    fn base_url(&self) -> String {
        format!("http://{}", self.address)
    }

    fn seen(&self) -> Vec<Seen> {
        lock(&self.seen).clone()
    }
}

async fn read_request(socket: &mut tokio::net::TcpStream) -> Option<Seen> {
    let mut buffer = Vec::new();
    let mut chunk = [0u8; 4096];
    let end = loop {
        let n = socket.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buffer.extend_from_slice(&chunk[..n]);
        if let Some(end) = buffer.windows(4).position(|w| w == b"\r\n\r\n") {
            break end + 4;
        }
    };
    let head = String::from_utf8_lossy(&buffer[..end]).to_string();
    let length: usize = head
        .lines()
        .find_map(|l| {
            let (name, value) = l.split_once(':')?;
            if name.eq_ignore_ascii_case("content-length") {
                value.trim().parse().ok()
            } else {
                None
            }
        })
        .unwrap_or(0);
    while buffer.len() < end + length {
        let n = socket.read(&mut chunk).await.ok()?;
        if n == 0 {
            break;
        }
        buffer.extend_from_slice(&chunk[..n]);
    }
    let mut first = head.lines().next()?.split(' ');
    Some(Seen {
        method: first.next()?.to_string(),
        path: first.next()?.to_string(),
        head,
    })
}

fn json_reply(status: &str, body: &str) -> Reply {
    Reply::Raw(
        format!(
            "HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
            body.len()
        )
        .into_bytes(),
    )
}

fn not_found() -> Reply {
    json_reply(
        "404 Not Found",
        r#"{"error": {"message": "no", "code": 404}}"#,
    )
}

fn dto(id: &str, version: i64, price: f64) -> String {
    serde_json::json!({
        "flxId": id,
        "meta": {"lastUpdatedAt": format!("2026-01-0{version}T00:00:00Z")},
        "price": {"latest": {"value": price}},
    })
    .to_string()
}

fn client(base_url: &str, tune: impl FnOnce(&mut ApiSettings)) -> ApiClient {
    let mut settings = ApiSettings {
        base_url: base_url.to_string(),
        timeout_ms: 500,
        backoff_base_ms: 10,
        backoff_cap_ms: 100,
        max_attempts: 2,
        max_elapsed_ms: 2_000,
        rate_per_second: 1_000.0,
        burst: 1_000,
        ..ApiSettings::default()
    };
    tune(&mut settings);
    let Ok(KeyLookup::Found(key, source)) = lookup(None, "K", |_| Some(KEY.to_string())) else {
        panic!("no key");
    };
    ApiClient::new(
        &settings,
        key,
        source,
        Limits::default(),
        EnrichMetrics::new(),
        Cancel::new(),
    )
    .expect("a client")
}

fn kind_of(fetched: &HashMap<String, Fetched>, id: &str) -> &'static str {
    match fetched.get(id) {
        Some(Fetched::Found(_)) => "found",
        Some(Fetched::Failed { kind, .. }) => kind,
        None => "nothing",
    }
}

/// The by-id path's prefix: every GET must stay one segment below it.
const BY_ID_PREFIX: &str = "/v2/protected/properties/";

#[tokio::test]
async fn a_hostile_id_stays_one_segment_of_the_by_id_path() {
    let api = StandIn::start(|seen| {
        if seen.method == "POST" {
            json_reply("200 OK", r#"{"data": []}"#)
        } else {
            not_found()
        }
    })
    .await;
    let long = "x".repeat(10_000);
    let ids = [
        "..",
        ".",
        "",
        "../../admin",
        "a/b",
        "x?y#z",
        "%2e%2e",
        ".%2E",
        "é🏠",
        "a\\..\\b",
        long.as_str(),
    ];
    let client = client(&api.base_url(), |_| {});
    let wanted: Vec<(&str, i64)> = ids.iter().map(|id| (*id, 0)).collect();
    let fetched = client.fetch_all(&wanted).await.expect("answers");
    for seen in api.seen().iter().filter(|s| s.method == "GET") {
        let rest = seen.path.strip_prefix(BY_ID_PREFIX);
        assert!(
            rest.is_some_and(|rest| !rest.is_empty()
                && !rest.contains('/')
                && !rest.contains('?')
                && !rest.contains('#')),
            "a by-id call left its path: GET {}",
            &seen.path[..seen.path.len().min(200)]
        );
    }
    for id in ids {
        let kind = kind_of(&fetched, id);
        assert!(
            ["not_found", "client_error"].contains(&kind),
            "{id:.40?}: {kind}"
        );
    }
}

/// A 3xx is the API misbehaving, not a place to take the key to.
#[tokio::test]
async fn a_redirect_is_not_followed_and_the_key_never_leaves_the_api() {
    let elsewhere = StandIn::start(|_| json_reply("200 OK", r#"{"data": []}"#)).await;
    let target = format!("{}/collect", elsewhere.base_url());
    let api = StandIn::start(move |_| {
        Reply::Raw(
            format!("HTTP/1.1 307 Temporary Redirect\r\nlocation: {target}\r\ncontent-length: 0\r\nconnection: close\r\n\r\n")
                .into_bytes(),
        )
    })
    .await;
    let client = client(&api.base_url(), |_| {});
    let fetched = client.fetch_all(&[("flx-1", 0)]).await.expect("answers");
    let leaked: Vec<Seen> = elsewhere
        .seen()
        .into_iter()
        .filter(|s| s.head.contains(KEY))
        .collect();
    assert!(
        leaked.is_empty(),
        "the key went to another host: {leaked:?}"
    );
    assert!(elsewhere.seen().is_empty(), "a redirect was followed");
    assert_eq!(kind_of(&fetched, "flx-1"), "client_error");
}

/// A body past the cap is not read whole into memory: a precise failure.
#[tokio::test]
async fn a_huge_answer_is_refused_before_it_is_read_whole() {
    let api = StandIn::start(|_| Reply::Huge(200 << 20)).await;
    let client = client(&api.base_url(), |s| s.timeout_ms = 20_000);
    let fetched = client.fetch_all(&[("flx-1", 0)]).await.expect("answers");
    assert_eq!(kind_of(&fetched, "flx-1"), "too_large");
}

/// Headers, part of a body, then nothing: the call's timeout ends it, and
/// it is retried, then a `timeout` dead letter.
#[tokio::test]
async fn an_answer_stalling_mid_body_times_out() {
    let head = b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 100\r\nconnection: close\r\n\r\n{\"data\": [".to_vec();
    let api = StandIn::start(move |_| Reply::Stall(head.clone(), Duration::from_secs(5))).await;
    let client = client(&api.base_url(), |_| {});
    let started = Instant::now();
    let fetched = client.fetch_all(&[("flx-1", 0)]).await.expect("answers");
    assert_eq!(kind_of(&fetched, "flx-1"), "timeout");
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "{:?}",
        started.elapsed()
    );
}

/// A 200 whose body is an API error, deep nesting, numbers out of range:
/// each a `malformed` dead letter, never a panic.
#[tokio::test]
async fn odd_success_bodies_are_malformed_answers() {
    let deep = format!(
        "{{\"data\": {}{}}}",
        "[".repeat(100_000),
        "]".repeat(100_000)
    );
    let bodies = [
        r#"{"error": {"message": "quota", "code": 402}}"#.to_string(),
        deep,
        r#"{"data": {"flxId": "flx-1", "price": {"latest": {"value": 1e400}}}}"#.to_string(),
        r#"{"data": null}"#.to_string(),
        "[]".to_string(),
    ];
    for body in bodies {
        let reply = json_reply("200 OK", &body);
        let api = StandIn::start(move |_| reply.clone()).await;
        let client = client(&api.base_url(), |_| {});
        let fetched = client.fetch_all(&[("flx-1", 0)]).await.expect("answers");
        assert_eq!(kind_of(&fetched, "flx-1"), "malformed", "{body:.60}");
    }
    // Numbers out of any field's range are unknown, not wrong.
    let body = r#"{"data": {"flxId": "flx-1", "price": {"latest": {"value": "NaN"}}, "rooms": 3000000000, "constructionYear": "-1e30"}}"#;
    let reply = json_reply("200 OK", body);
    let api = StandIn::start(move |seen| {
        if seen.method == "POST" {
            json_reply("200 OK", r#"{"data": []}"#)
        } else {
            reply.clone()
        }
    })
    .await;
    let client = client(&api.base_url(), |_| {});
    let fetched = client.fetch_all(&[("flx-1", 0)]).await.expect("answers");
    let Some(Fetched::Found(property)) = fetched.get("flx-1") else {
        panic!("{fetched:?}");
    };
    assert_eq!(property.snapshot.price, None);
    assert_eq!(property.snapshot.rooms, None);
}

/// A by-id answer for another property is a `mismatch`, and it must not
/// stand in later for the property it names: it was not asked for.
#[tokio::test]
async fn a_by_id_answer_for_another_id_is_a_mismatch_and_is_not_cached() {
    let api = StandIn::start(|seen| {
        if seen.method == "POST" {
            json_reply("200 OK", r#"{"data": []}"#)
        } else {
            json_reply(
                "200 OK",
                &format!(r#"{{"data": {}}}"#, dto("flx-other", 1, 1.0)),
            )
        }
    })
    .await;
    let client = client(&api.base_url(), |_| {});
    let fetched = client.fetch_all(&[("flx-1", 0)]).await.expect("answers");
    assert_eq!(kind_of(&fetched, "flx-1"), "mismatch");
    let calls = api.seen().len();
    let again = client
        .fetch_all(&[("flx-other", 0)])
        .await
        .expect("answers");
    assert!(
        api.seen().len() > calls,
        "flx-other was answered from an answer for flx-1: {again:?}"
    );
}

/// A bulk answer with foreign ids and an id twice (two versions): foreign
/// ids are dropped, the newer version is the one used.
#[tokio::test]
async fn a_bulk_answer_with_foreign_and_repeated_ids() {
    let body = format!(
        r#"{{"data": [{}, {}, {}]}}"#,
        dto("flx-1", 2, 200.0),
        dto("flx-foreign", 1, 9.0),
        dto("flx-1", 1, 100.0),
    );
    let api = StandIn::start(move |seen| {
        if seen.method == "POST" {
            json_reply("200 OK", &body)
        } else {
            not_found()
        }
    })
    .await;
    let client = client(&api.base_url(), |_| {});
    let fetched = client
        .fetch_all(&[("flx-1", 0), ("flx-2", 0)])
        .await
        .expect("answers");
    assert!(!fetched.contains_key("flx-foreign"));
    assert_eq!(kind_of(&fetched, "flx-2"), "not_found");
    let Some(Fetched::Found(property)) = fetched.get("flx-1") else {
        panic!("{fetched:?}");
    };
    assert_eq!(
        property.last_updated_at,
        Some(1_767_312_000_000),
        "the newer version"
    );
    assert_eq!(property.snapshot.price, Some(200.0));
}

/// `Retry-After` far beyond the cap, as seconds or a date, or junk: the
/// call gives up at once (or retries on its own backoff), never sleeps for
/// what the server asked.
#[tokio::test]
async fn huge_retry_after_values_give_up_promptly() {
    for value in [
        "99999999999999999999999",
        "18446744073709551615",
        "Fri, 31 Dec 9999 23:59:59 GMT",
        "-5",
        "1e9",
    ] {
        let reply = Reply::Raw(
            format!("HTTP/1.1 429 Too Many Requests\r\nretry-after: {value}\r\ncontent-length: 0\r\nconnection: close\r\n\r\n")
                .into_bytes(),
        );
        let api = StandIn::start(move |_| reply.clone()).await;
        let client = client(&api.base_url(), |_| {});
        let started = Instant::now();
        let fetched = client.fetch_all(&[("flx-1", 0)]).await.expect("answers");
        assert_eq!(kind_of(&fetched, "flx-1"), "rate_limited", "{value}");
        assert!(
            started.elapsed() < Duration::from_secs(3),
            "{value}: {:?}",
            started.elapsed()
        );
    }
}
