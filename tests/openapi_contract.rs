//! The running ingest keeps the contract it serves: `GET /openapi.json`
//! is fetched from a live ingest, and every documented path, method and
//! status today's server can be made to answer is provoked; each answer's
//! status must be documented for that operation, its body must be JSON
//! that validates against the documented schema, and the headers the
//! document requires (`Allow`, `Retry-After`) must be there.
//!
//! Statuses the document lists but this test cannot provoke (yet) are
//! printed, and must be among [`NOT_PROVOKED_YET`], so a newly documented
//! status is either tested or consciously listed there.

use std::collections::BTreeSet;
use std::time::Duration;

use pipeline_tests::{GENERIC_SECRET, IMMOTEUR_TOKEN, Pipeline, assert_error, fixture, unix_now};
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Documented answers this test does not provoke, each with why.
const NOT_PROVOKED_YET: [(&str, &str, &str, &str); 1] = [(
    "/readyz",
    "get",
    "503",
    "needs Kafka unreachable; tests/broker_outage.rs covers readiness",
)];

/// One HTTP answer, from reqwest or from a raw socket.
struct Answer {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Answer {
    async fn from(response: reqwest::Response) -> Self {
        let status = response.status().as_u16();
        let headers = response
            .headers()
            .iter()
            .map(|(k, v)| {
                (
                    k.as_str().to_string(),
                    String::from_utf8_lossy(v.as_bytes()).into_owned(),
                )
            })
            .collect();
        let body = response.bytes().await.expect("a body").to_vec();
        Self {
            status,
            headers,
            body,
        }
    }

    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "{} answered a body that is not JSON ({e}): {}",
                self.status,
                String::from_utf8_lossy(&self.body)
            )
        })
    }
}

/// Sends `request` as is on a new connection (`then_close_write`: and
/// half-closes it), and reads one answer (10 s at most).
async fn raw(ingest_url: &str, request: &[u8], then_close_write: bool) -> Answer {
    let mut stream = tokio::net::TcpStream::connect(ingest_url.trim_start_matches("http://"))
        .await
        .expect("connect");
    stream.write_all(request).await.expect("send the request");
    if then_close_write {
        stream.shutdown().await.expect("half-close");
    }
    let mut bytes = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(10), async {
        let mut chunk = [0u8; 4096];
        loop {
            if let Some(answer) = parse_answer(&bytes) {
                return Some(answer);
            }
            match stream.read(&mut chunk).await {
                Ok(0) | Err(_) => return parse_answer(&bytes),
                Ok(n) => bytes.extend_from_slice(&chunk[..n]),
            }
        }
    })
    .await;
    match read {
        Ok(Some(answer)) => answer,
        _ => panic!(
            "no complete answer within 10 s: {:?}",
            String::from_utf8_lossy(&bytes)
        ),
    }
}

/// A complete HTTP/1.1 answer with a `content-length` body, or `None`.
fn parse_answer(bytes: &[u8]) -> Option<Answer> {
    let end = bytes.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = String::from_utf8_lossy(&bytes[..end]);
    let mut lines = head.split("\r\n");
    let status = lines.next()?.split(' ').nth(1)?.parse().ok()?;
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    let length: usize = headers
        .iter()
        .find(|(k, _)| k == "content-length")
        .and_then(|(_, v)| v.parse().ok())?;
    let body = bytes.get(end + 4..end + 4 + length)?.to_vec();
    Some(Answer {
        status,
        headers,
        body,
    })
}

/// The served document and what has been checked against it.
struct Contract {
    doc: Value,
    checked: BTreeSet<(String, String, String)>,
}

impl Contract {
    /// Where the document describes `status` for `method` on `path`: the
    /// operation's own response, or, for the answers any path can give
    /// (`404 not_found`, `405`), the shared component.
    fn response(&self, path: &str, method: &str, status: u16) -> &Value {
        let node = match (path, status) {
            (_, 405) => &self.doc["components"]["responses"]["MethodNotAllowed"],
            ("(undocumented)", 404) => &self.doc["components"]["responses"]["NotFound"],
            _ => &self.doc["paths"][path][method]["responses"][status.to_string()],
        };
        assert!(
            !node.is_null(),
            "{} {path} answered {status}, which the document does not list",
            method.to_uppercase()
        );
        ingest::openapi::resolve(&self.doc, node).unwrap_or_else(|e| panic!("{e}"))
    }

    /// Checks `answer` to `method path` (`path` as documented, e.g.
    /// `/webhooks/{source}`, or `(undocumented)`) against the document;
    /// returns its JSON body.
    fn check(&mut self, what: &str, path: &str, method: &str, answer: &Answer) -> Value {
        let response = self.response(path, method, answer.status).clone();
        let content_type = answer.header("content-type").unwrap_or("");
        let essence = content_type.split(';').next().unwrap_or("").trim();
        let content = response["content"]
            .as_object()
            .unwrap_or_else(|| panic!("{what}: the {} response has content", answer.status));
        let documented = content.get(essence).unwrap_or_else(|| {
            panic!(
                "{what}: content type `{content_type}` is not documented for {}: {:?}",
                answer.status,
                content.keys().collect::<Vec<_>>()
            )
        });
        let body = if essence == "application/json" {
            let body = answer.json();
            if let Err(e) = ingest::openapi::validate(&self.doc, &documented["schema"], &body) {
                panic!("{what}: {body} does not fit the documented schema: {e}");
            }
            body
        } else {
            Value::String(String::from_utf8_lossy(&answer.body).into_owned())
        };
        for (name, header) in response["headers"].as_object().into_iter().flatten() {
            let header = ingest::openapi::resolve(&self.doc, header).expect("header resolves");
            if header["required"] == true {
                let value = answer
                    .header(name)
                    .unwrap_or_else(|| panic!("{what}: the documented `{name}` header is missing"));
                if let Err(e) =
                    ingest::openapi::validate(&self.doc, &header["schema"], &header_value(value))
                {
                    panic!("{what}: `{name}: {value}`: {e}");
                }
            }
        }
        if answer.status == 405 {
            self.check_allow(what, path, answer);
        }
        let _ = self.checked.insert((
            path.to_string(),
            method.to_string(),
            answer.status.to_string(),
        ));
        body
    }

    /// `Allow` names exactly the methods the document lists for `path`
    /// (`HEAD`, which GET implies, aside).
    fn check_allow(&self, what: &str, path: &str, answer: &Answer) {
        let allowed: BTreeSet<String> = answer
            .header("allow")
            .unwrap_or("")
            .split(',')
            .map(|m| m.trim().to_ascii_lowercase())
            .filter(|m| !m.is_empty() && m != "head")
            .collect();
        let documented: BTreeSet<String> = self.doc["paths"][path]
            .as_object()
            .unwrap_or_else(|| panic!("{path} is documented"))
            .keys()
            .filter(|k| {
                !matches!(
                    k.as_str(),
                    "parameters" | "servers" | "summary" | "description"
                )
            })
            .cloned()
            .collect();
        assert_eq!(allowed, documented, "{what}: `Allow` vs the document");
    }

    /// Every documented (path, method, status), with `/webhooks/{source}`
    /// style paths.
    fn documented(&self) -> BTreeSet<(String, String, String)> {
        let mut all = BTreeSet::new();
        for (path, item) in self.doc["paths"].as_object().expect("paths") {
            for (method, operation) in item.as_object().expect("path item") {
                for status in operation["responses"]
                    .as_object()
                    .into_iter()
                    .flatten()
                    .map(|r| r.0)
                {
                    let _ = all.insert((path.clone(), method.clone(), status.clone()));
                }
            }
        }
        all
    }
}

/// A header's text as the JSON value its schema describes (integers are
/// sent as digits).
fn header_value(text: &str) -> Value {
    text.parse::<i64>()
        .map_or_else(|_| Value::String(text.to_string()), Value::from)
}

/// A request a check refuses: the expected reason, the source, the query
/// string and the headers.
type RefusalCase<'a> = (&'a str, &'a str, &'a str, Vec<(&'a str, String)>);

/// The generic source's headers: `ts` and `signature`, as given.
fn signed(ts: &str, signature: &str) -> Vec<(&'static str, String)> {
    vec![
        ("x-webhook-timestamp", ts.to_string()),
        ("x-webhook-signature", signature.to_string()),
    ]
}

#[tokio::test(flavor = "multi_thread")]
async fn the_running_ingest_answers_as_its_served_document_says() {
    let pipeline = Pipeline::start_ingest("openapi_contract").await;
    let url = pipeline.ingest_url.clone();
    let http = reqwest::Client::new();

    // The document itself: served as JSON, and exactly the shipped file.
    let served = Answer::from(
        http.get(format!("{url}/openapi.json"))
            .send()
            .await
            .expect("answers"),
    )
    .await;
    assert_eq!(served.status, 200);
    let doc = served.json();
    assert_eq!(
        doc,
        ingest::openapi::parsed().expect("the shipped document parses"),
        "ingest serves ingest/openapi.json"
    );
    assert_eq!(doc["openapi"], "3.1.0");
    let mut contract = Contract {
        doc,
        checked: BTreeSet::new(),
    };
    let _ = contract.check("the document", "/openapi.json", "get", &served);

    let hook = "/webhooks/{source}";
    let body = fixture("generic/property.created.json");
    let now = unix_now().to_string();
    let sign = |secret: &str, ts: &str, body: &[u8]| {
        ingest::verify::hmac_timestamp::sign(secret.as_bytes(), ts, body)
    };

    // 200: a signed JSON body, stored.
    let answer = Answer::from(pipeline.post_generic(&body).await.expect("answers")).await;
    let accepted = contract.check("a signed webhook", hook, "post", &answer);
    assert_eq!(answer.status, 200, "{accepted}");
    let _ = pipeline.only_raw_record(&body).await;

    // 400 invalid_json: signed, but not JSON.
    let not_json = b"not json at all";
    let answer = Answer::from(
        pipeline
            .post(
                "generic",
                &signed(&now, &sign(GENERIC_SECRET, &now, not_json)),
                not_json,
            )
            .await
            .expect("answers"),
    )
    .await;
    assert_eq!(answer.status, 400);
    assert_eq!(
        contract.check("not JSON", hook, "post", &answer)["error"],
        "invalid_json"
    );

    // 400 body_read_error: the client ends its side before the declared
    // length arrived (after headers that pass the checks made before the
    // body, so the body is read).
    let head = format!(
        "POST /webhooks/generic HTTP/1.1\r\nhost: ingest\r\ncontent-type: application/json\r\n\
         x-webhook-timestamp: {}\r\nx-webhook-signature: {}\r\n\
         content-length: 100\r\n\r\n{{\"id\":",
        unix_now(),
        "ab".repeat(32)
    );
    let answer = raw(&url, head.as_bytes(), true).await;
    assert_eq!(
        answer.status,
        400,
        "{}",
        String::from_utf8_lossy(&answer.body)
    );
    assert_eq!(
        contract.check("a truncated body", hook, "post", &answer)["error"],
        "body_read_error"
    );

    // 401, one answer per reason the sources of the test config can give.
    let stale = (unix_now() - 301).to_string();
    let cases: Vec<RefusalCase<'_>> = vec![
        (
            "missing_header",
            "generic",
            "",
            vec![("x-webhook-timestamp", now.clone())],
        ),
        (
            "malformed_timestamp",
            "generic",
            "",
            signed("yesterday", &sign(GENERIC_SECRET, "yesterday", &body)),
        ),
        (
            "stale_timestamp",
            "generic",
            "",
            signed(&stale, &sign(GENERIC_SECRET, &stale, &body)),
        ),
        (
            "malformed_signature",
            "generic",
            "",
            signed(&now, "not-hex"),
        ),
        (
            "bad_signature",
            "generic",
            "",
            signed(&now, &sign("not-the-secret", &now, &body)),
        ),
        ("missing_token", "fluximmo", "", vec![]),
        ("bad_token", "fluximmo", "token=not-the-token", vec![]),
        (
            "bad_token",
            "immoteur",
            "",
            vec![("authorization", "Bearer not-the-token".into())],
        ),
        (
            "malformed_header",
            "immoteur",
            "",
            vec![
                ("authorization", format!("Bearer {IMMOTEUR_TOKEN}")),
                ("x-immoteur-event-id", "not-a-uuid".into()),
                ("x-immoteur-delivery-id", uuid::Uuid::new_v4().to_string()),
                ("x-immoteur-service-id", uuid::Uuid::new_v4().to_string()),
                ("x-immoteur-timestamp", now.clone()),
            ],
        ),
        (
            "malformed_header",
            "stream-estate",
            "",
            vec![("x-forwarded-for", "not-an-address".into())],
        ),
        (
            "missing_header",
            "standard",
            "",
            vec![("webhook-id", "msg_1".into())],
        ),
    ];
    for (reason, source, query, headers) in cases {
        let response = pipeline
            .client()
            .post_to(source, query, &headers, &body)
            .await
            .expect("answers");
        let answer = Answer::from(response).await;
        let what = format!("{source}: {reason}");
        assert_eq!(answer.status, 401, "{what}");
        let e = contract.check(&what, hook, "post", &answer);
        assert_eq!(e["reason"], reason, "{what}: {e}");
    }

    // 403: an address outside the allowlist (no trusted proxy).
    let answer = Answer::from(
        pipeline
            .post("stream-estate-direct", &[], b"{}")
            .await
            .expect("answers"),
    )
    .await;
    assert_eq!(answer.status, 403);
    assert_eq!(
        contract.check("address", hook, "post", &answer)["reason"],
        "address_not_allowed"
    );

    // 404 unknown_source, and not_found on a path the document does not list.
    let answer = Answer::from(pipeline.post("nowhere", &[], b"{}").await.expect("answers")).await;
    assert_eq!(answer.status, 404);
    assert_eq!(
        contract.check("unknown source", hook, "post", &answer)["error"],
        "unknown_source"
    );
    for path in ["/nothing-here", "/webhooks/", "/webhooks/generic/extra"] {
        let answer = Answer::from(
            http.post(format!("{url}{path}"))
                .header("content-type", "application/json")
                .body("{}")
                .send()
                .await
                .expect("answers"),
        )
        .await;
        assert_eq!(answer.status, 404, "{path}");
        assert_eq!(
            contract.check(path, "(undocumented)", "post", &answer)["error"],
            "not_found",
            "{path}"
        );
    }

    // 405, with `Allow` naming the documented methods of the path.
    for (method, path, documented) in [
        (reqwest::Method::GET, "/webhooks/generic", hook),
        (reqwest::Method::PUT, "/webhooks/generic", hook),
        (reqwest::Method::DELETE, "/webhooks/nowhere", hook),
        (reqwest::Method::POST, "/openapi.json", "/openapi.json"),
    ] {
        let answer = Answer::from(
            http.request(method.clone(), format!("{url}{path}"))
                .send()
                .await
                .expect("answers"),
        )
        .await;
        let what = format!("{method} {path}");
        assert_eq!(answer.status, 405, "{what}");
        let _ = contract.check(&what, documented, &method.as_str().to_lowercase(), &answer);
    }

    // 408: the body does not arrive within the read deadline (after
    // headers that pass the checks made before the body).
    let head = format!(
        "POST /webhooks/generic HTTP/1.1\r\nhost: ingest\r\ncontent-type: application/json\r\n\
         x-webhook-timestamp: {}\r\nx-webhook-signature: {}\r\n\
         content-length: 100\r\n\r\n{{\"id\":",
        unix_now(),
        "ab".repeat(32)
    );
    let answer = raw(&url, head.as_bytes(), false).await;
    assert_eq!(answer.status, 408);
    let _ = contract.check("a stalled body", hook, "post", &answer);

    // 413: over the limit, read and refused; and declared over it, refused
    // before any byte of the body.
    let big = vec![b' '; 1024 * 1024 + 1];
    let answer = Answer::from(pipeline.post_generic(&big).await.expect("answers")).await;
    assert_eq!(answer.status, 413);
    let _ = contract.check("a big body", hook, "post", &answer);
    let answer = raw(
        &url,
        b"POST /webhooks/generic HTTP/1.1\r\nhost: ingest\r\ncontent-type: application/json\r\n\
          content-length: 2000000\r\nconnection: close\r\n\r\n",
        false,
    )
    .await;
    assert_eq!(answer.status, 413);
    let _ = contract.check("a declared big body", hook, "post", &answer);

    // 415: not JSON by its content type (and a JSON-suffixed type is accepted
    // as far as the signature check).
    for (content_type, status) in [
        ("text/plain", 415),
        ("application/x-www-form-urlencoded", 415),
        ("application/cloudevents+json", 401),
        ("application/json; charset=utf-8", 401),
    ] {
        let answer = Answer::from(
            http.post(format!("{url}/webhooks/generic"))
                .header("content-type", content_type)
                .body("{}")
                .send()
                .await
                .expect("answers"),
        )
        .await;
        assert_eq!(answer.status, status, "{content_type}");
        let _ = contract.check(content_type, hook, "post", &answer);
    }
    let answer = Answer::from(
        http.post(format!("{url}/webhooks/generic"))
            .body("{}")
            .send()
            .await
            .expect("answers"),
    )
    .await;
    assert_eq!(answer.status, 415, "no content type");
    let _ = contract.check("no content type", hook, "post", &answer);

    // The rate limit (429) and the per-source in-flight cap (503
    // `overloaded`), each on a source of the test config that sets one.
    // Only verified requests spend the rate: an unsigned one is a 401 and
    // leaves the one token; the first signed one takes it, the next is 429.
    let signed = |body: &'static [u8]| {
        let ts = unix_now().to_string();
        let sig = ingest::verify::hmac_timestamp::sign(GENERIC_SECRET.as_bytes(), &ts, body);
        http.post(format!("{url}/webhooks/generic-limited"))
            .header("content-type", "application/json")
            .header("x-webhook-timestamp", ts)
            .header("x-webhook-signature", sig)
            .body(body)
    };
    let unsigned = http
        .post(format!("{url}/webhooks/generic-limited"))
        .header("content-type", "application/json")
        .body("{}")
        .send()
        .await
        .expect("answers");
    assert_eq!(unsigned.status(), 401);
    let first = signed(br#"{"id":"evt_rate_1"}"#)
        .send()
        .await
        .expect("answers");
    assert_eq!(first.status(), 200, "the one token is still there");
    let answer = Answer::from(
        signed(br#"{"id":"evt_rate_2"}"#)
            .send()
            .await
            .expect("answers"),
    )
    .await;
    assert_eq!(answer.status, 429, "the token is spent");
    let _ = contract.check("over the rate limit", hook, "post", &answer);
    let address = url.trim_start_matches("http://").to_string();
    let mut holder = tokio::net::TcpStream::connect(&address)
        .await
        .expect("connect");
    let ts = unix_now().to_string();
    let signature = ingest::verify::hmac_timestamp::sign(GENERIC_SECRET.as_bytes(), &ts, b"{}");
    holder
        .write_all(
            format!(
                "POST /webhooks/generic-capped HTTP/1.1\r\nhost: ingest\r\ncontent-type: application/json\r\n\
                 x-webhook-timestamp: {ts}\r\nx-webhook-signature: {signature}\r\ncontent-length: 10\r\n\r\n{{"
            )
            .as_bytes(),
        )
        .await
        .expect("hold the source's only slot with a body not yet sent");
    tokio::time::sleep(Duration::from_millis(300)).await;
    let answer = Answer::from(
        http.post(format!("{url}/webhooks/generic-capped"))
            .header("content-type", "application/json")
            .body("{}")
            .send()
            .await
            .expect("answers"),
    )
    .await;
    assert_eq!(answer.status, 503, "the source's one slot is taken");
    let _ = contract.check("over the in-flight cap", hook, "post", &answer);
    drop(holder);

    // The operator endpoints: on admin_listen, and not on the public one.
    for path in ["/healthz", "/readyz", "/metrics"] {
        let public = http
            .get(format!("{url}{path}"))
            .send()
            .await
            .expect("answers");
        assert_eq!(public.status(), 404, "{path} is not on the public listener");
        let admin = match path {
            "/healthz" => pipeline.health_url(pipeline_tests::Service::Ingest),
            "/readyz" => pipeline.ready_url(),
            _ => pipeline.metrics_url(pipeline_tests::Service::Ingest),
        };
        let answer = Answer::from(http.get(admin).send().await.expect("answers")).await;
        assert_eq!(answer.status, 200, "{path}");
        let _ = contract.check(path, path, "get", &answer);
    }

    // No refused request reached Kafka: only the two accepted records.
    assert_eq!(
        pipeline.read_topic(&pipeline.topics.raw()).len(),
        2,
        "only the accepted requests reached webhooks.raw"
    );

    // What the document lists that nothing above provoked.
    let unprovoked: Vec<_> = contract
        .documented()
        .difference(&contract.checked)
        .cloned()
        .collect();
    eprintln!("documented but not provoked by this test:");
    for (path, method, status) in &unprovoked {
        let why = NOT_PROVOKED_YET
            .iter()
            .find(|(p, m, s, _)| {
                p.split('|').any(|p| p == path) && m == method && s == status
            })
            .map(|(_, _, _, why)| *why)
            .unwrap_or_else(|| {
                panic!(
                    "{} {path} {status} is documented but neither provoked nor listed in NOT_PROVOKED_YET",
                    method.to_uppercase()
                )
            });
        eprintln!("  {} {path} {status}: {why}", method.to_uppercase());
    }
}

/// Found by this test: a source segment that is not UTF-8 once
/// percent-decoded was refused by axum's `Path` extractor with a
/// `text/plain` 400 ("Invalid URL: Invalid UTF-8 in `source`"), not the
/// documented JSON error; it is now a JSON 404 `unknown_source`.
#[tokio::test(flavor = "multi_thread")]
async fn a_source_segment_that_is_not_utf8_gets_a_json_error() {
    let pipeline = Pipeline::start_ingest("openapi_not_utf8").await;
    let response = reqwest::Client::new()
        .post(format!("{}/webhooks/%FF", pipeline.ingest_url))
        .header("content-type", "application/json")
        .body("{}")
        .send()
        .await
        .expect("answers");
    assert_eq!(
        response
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok()),
        Some("application/json"),
        "every error is JSON"
    );
    let _ = assert_error(response, 404, "unknown_source").await;
    pipeline.assert_raw_empty();
}
