//! Each provider parser against `serde_json::from_slice` of the same bytes.
//!
//! The baseline, measured in the same run, is parsing the fixture into a
//! `serde_json::Value`: the least any JSON consumer pays. The parser also
//! maps every field into a `PropertyEvent`, so the target is to stay within
//! 3× the baseline (issue "Prove it fast", item 4).
//!
//! `cargo bench -p normalize --bench parsers`

// criterion_group! and criterion_main! generate undocumented functions.
#![allow(missing_docs)]

use std::hint::black_box;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use normalize::providers::{Limits, RawContext, parse};

/// (provider header, fixture name, body, provider event id header)
const FIXTURES: &[(&str, &str, &[u8], Option<&str>)] = &[
    (
        "generic",
        "property.created",
        include_bytes!("../../tests/fixtures/generic/property.created.json"),
        None,
    ),
    (
        "fluximmo",
        "webhook-properties",
        include_bytes!("../../tests/fixtures/fluximmo/webhook-properties.json"),
        None,
    ),
    (
        "stream-estate",
        "ad.update.price",
        include_bytes!("../../tests/fixtures/stream-estate/ad.update.price.json"),
        None,
    ),
    (
        "immoteur",
        "property-notification",
        include_bytes!("../../tests/fixtures/immoteur/property-notification.json"),
        Some("6f1c2d3e-4b5a-4c6d-8e9f-0a1b2c3d4e5f"),
    ),
];

fn parsers(c: &mut Criterion) {
    let mut group = c.benchmark_group("parse");
    for &(provider, name, body, event_id) in FIXTURES {
        let context = RawContext {
            source: provider,
            provider: provider
                .parse()
                .unwrap_or_else(|e| panic!("bench fixture: {e}")),
            event_id,
            received_at_ms: 1_700_000_000_000,
            topic: "webhooks.raw",
            partition: 0,
            offset: 42,
            limits: Limits::default(),
        };
        match parse(&context, body) {
            Ok(events) if !events.is_empty() => {}
            Ok(_) => panic!("{provider}/{name} yields no event"),
            Err(error) => panic!("{provider}/{name} does not parse: {error}"),
        }
        let label = format!("{provider}/{name} ({} B)", body.len());
        let _ = group.throughput(Throughput::Bytes(body.len() as u64));
        let _ = group.bench_with_input(
            BenchmarkId::new("baseline-serde_json-value", &label),
            body,
            |b, body| {
                b.iter(|| black_box(serde_json::from_slice::<serde_json::Value>(black_box(body))))
            },
        );
        let _ = group.bench_with_input(BenchmarkId::new("parser", &label), body, |b, body| {
            b.iter(|| black_box(parse(black_box(&context), black_box(body))))
        });
    }
    group.finish();
}

criterion_group!(benches, parsers);
criterion_main!(benches);
