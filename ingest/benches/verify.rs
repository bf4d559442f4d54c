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

criterion_group!(benches, verify);
criterion_main!(benches);
