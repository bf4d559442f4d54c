//! Signature verification per request, against the bare cryptography.
//!
//! For each shipped source whose checks can be signed (every one but the
//! address allowlist), this signs the generic fixture (345 B) and the
//! Stream.estate fixture (6.9 KB) the way `ingest-send` does, then measures
//! `SourceVerifier::verify` on the request. The baseline in the same run is
//! one HMAC-SHA256 over the same bytes with no header parsing, no constant
//! time comparison and no secret rotation: what any verifier must pay at
//! least. The ratio is the overhead of our checks on top of the maths.
//!
//! A second group, `verify-entries`, shows that the sender does not choose
//! the cost: a Standard Webhooks request with 1, 10 and 16 (the cap)
//! signature entries, and the 20,000-entry flood (refused unhashed), over
//! bodies of 345 B, 64 KiB and 1 MiB, against one bare HMAC of the same
//! body.
//!
//! `cargo bench -p ingest --bench verify`

// criterion_group! and criterion_main! generate undocumented functions.
#![allow(missing_docs)]

use std::hint::black_box;

use axum::http::{HeaderMap, HeaderName, HeaderValue};
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use hmac::{Hmac, KeyInit, Mac};
use ingest::send::sign;
use ingest::settings::SourceSettings;
use ingest::verify::{RequestView, SourceVerifier};
use sha2::Sha256;

const GENERIC: &[u8] = include_bytes!("../../tests/fixtures/generic/property.created.json");
const STREAM_ESTATE: &[u8] =
    include_bytes!("../../tests/fixtures/stream-estate/ad.update.price.json");
const NOW_SECS: i64 = 1_700_000_000;

/// The sources of the shipped configuration.
fn shipped_sources() -> Vec<SourceSettings> {
    #[derive(serde::Deserialize)]
    struct File {
        sources: Vec<SourceSettings>,
    }
    let text = include_str!("../../config/ingest.toml");
    match toml::from_str::<File>(text) {
        Ok(file) => file.sources,
        Err(error) => panic!("config/ingest.toml does not parse: {error}"),
    }
}

/// Headers and query that make `body` pass `source`'s checks.
fn signed_request(source: &SourceSettings, body: &[u8]) -> (HeaderMap, Vec<(String, String)>) {
    let signed = match sign(source, body, NOW_SECS, &|_| None) {
        Ok(signed) => signed,
        Err(error) => panic!("cannot sign for {}: {error}", source.name),
    };
    let mut headers = HeaderMap::new();
    for (name, value) in &signed.headers {
        let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_str(value),
        ) else {
            panic!("signing produced an invalid header {name}");
        };
        let _ = headers.append(name, value);
    }
    (headers, signed.query)
}

fn verify(c: &mut Criterion) {
    let mut group = c.benchmark_group("verify");
    for (label, body) in [
        ("generic-345B", GENERIC),
        ("stream-estate-6.9KB", STREAM_ESTATE),
    ] {
        let _ = group.throughput(Throughput::Bytes(body.len() as u64));
        let _ = group.bench_with_input(
            BenchmarkId::new("baseline-hmac-sha256", label),
            body,
            |b, body| {
                b.iter(|| {
                    let mut mac = match Hmac::<Sha256>::new_from_slice(b"dev-generic-secret") {
                        Ok(mac) => mac,
                        Err(error) => panic!("hmac key: {error}"),
                    };
                    mac.update(b"1700000000");
                    mac.update(black_box(body));
                    black_box(mac.finalize().into_bytes())
                })
            },
        );
        for source in shipped_sources() {
            let Ok(verifier) = SourceVerifier::build(&source, &|_| None) else {
                continue;
            };
            if source
                .checks
                .iter()
                .any(|check| matches!(check, ingest::settings::CheckSettings::SourceAddress { .. }))
            {
                continue;
            }
            let (headers, query) = signed_request(&source, body);
            let request = RequestView {
                headers: &headers,
                body,
                now_ms: NOW_SECS * 1000,
                peer: None,
                query: &query,
            };
            if let Err(failure) = verifier.verify(&request) {
                panic!("{} refuses its own signed request: {failure}", source.name);
            }
            let _ =
                group.bench_with_input(BenchmarkId::new(&source.name, label), &request, |b, r| {
                    b.iter(|| black_box(verifier.verify(black_box(r))))
                });
        }
    }
    group.finish();
}

/// A Standard Webhooks source with one secret, and a request whose
/// `webhook-signature` holds `entries` entries, the valid one last.
fn entries_request(entries: usize, body: &[u8]) -> (SourceVerifier, HeaderMap) {
    let secret = "whsec_ZGV2LXN0YW5kYXJkLXdlYmhvb2tzLWtleQ==";
    let source: SourceSettings = match toml::from_str(&format!(
        "name = \"standard\"\nprovider = \"standard-webhooks\"\n\
         checks = [{{ kind = \"standard-webhooks\", secrets = [{{ label = \"k\", value = \"{secret}\" }}] }}]\n"
    )) {
        Ok(source) => source,
        Err(error) => panic!("bench source: {error}"),
    };
    let verifier = match SourceVerifier::build(&source, &|_| None) {
        Ok(verifier) => verifier,
        Err(error) => panic!("bench source: {error}"),
    };
    let Some(key) = ingest::verify::standard_webhooks::decode_secret(secret.as_bytes()) else {
        panic!("bench secret");
    };
    let ts = NOW_SECS.to_string();
    let valid = ingest::verify::standard_webhooks::sign(key.expose(), "msg_bench", &ts, body);
    let filler = "v1,eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHg=";
    let mut list = vec![filler; entries.saturating_sub(1)];
    list.push(&valid);
    let mut headers = HeaderMap::new();
    for (name, value) in [
        ("webhook-id", "msg_bench".to_string()),
        ("webhook-timestamp", ts),
        ("webhook-signature", list.join(" ")),
    ] {
        let Ok(value) = HeaderValue::from_str(&value) else {
            panic!("header {name}");
        };
        let _ = headers.insert(name, value);
    }
    (verifier, headers)
}

fn verify_entries(c: &mut Criterion) {
    let mut group = c.benchmark_group("verify-entries");
    let _ = group.sample_size(20);
    for size in [345usize, 64 * 1024, 1024 * 1024] {
        let body = vec![b'x'; size];
        let label = format!("{size}B");
        let _ = group.throughput(Throughput::Bytes(size as u64));
        let _ = group.bench_with_input(
            BenchmarkId::new("baseline-hmac-sha256", &label),
            &body,
            |b, body| {
                b.iter(|| {
                    let mut mac = match Hmac::<Sha256>::new_from_slice(b"dev-standard-webhooks-key")
                    {
                        Ok(mac) => mac,
                        Err(error) => panic!("hmac key: {error}"),
                    };
                    mac.update(black_box(body));
                    black_box(mac.finalize().into_bytes())
                })
            },
        );
        for entries in [1usize, 10, 16, 20_000] {
            let (verifier, headers) = entries_request(entries, &body);
            let request = RequestView {
                headers: &headers,
                body: &body,
                now_ms: NOW_SECS * 1000,
                peer: None,
                query: &[],
            };
            let outcome = verifier.verify(&request);
            assert_eq!(
                outcome.is_ok(),
                entries <= 16,
                "{entries} entries: {outcome:?}"
            );
            let _ = group.bench_with_input(
                BenchmarkId::new(format!("{entries}-entries"), &label),
                &request,
                |b, r| b.iter(|| black_box(verifier.verify(black_box(r)))),
            );
        }
    }
    group.finish();
}

criterion_group!(benches, verify, verify_entries);
criterion_main!(benches);
