//! Decoding one `PropertyEvent` datum, as the sink does for every record,
//! two ways in the same run:
//!
//! - `resolving`: the generic path ([`schemas::decode_datum`]): build a
//!   reader, read a generic Avro value, resolve it against this build's
//!   schema, then convert it to the Rust type. The sink did this for every
//!   record until [`schemas::DatumDecoder`].
//! - `direct`: [`schemas::DatumDecoder`] for a writer with this build's
//!   schema: the datum deserialized straight into the Rust type.
//!
//! The datum is [`schemas::sample::price_change`], a price change with a
//! full snapshot.
//!
//! `cargo bench -p schemas --bench decode`

// criterion_group! and criterion_main! generate undocumented functions.
#![allow(missing_docs)]

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use schemas::sample::price_change;
use schemas::{DatumDecoder, decode_datum, encode_datum, schema};

fn decode(c: &mut Criterion) {
    let Ok(datum) = encode_datum(&price_change()) else {
        panic!("the bench event does not fit the schema");
    };
    let direct = DatumDecoder::for_writer(schema().clone());
    let mut group = c.benchmark_group("decode");
    let _ = group.throughput(Throughput::Elements(1));
    let _ = group.bench_function("resolving", |b| {
        b.iter(|| decode_datum(schema(), black_box(&datum)))
    });
    let _ = group.bench_function("direct", |b| b.iter(|| direct.decode(black_box(&datum))));
    group.finish();
}

criterion_group!(benches, decode);
criterion_main!(benches);
