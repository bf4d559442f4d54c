//! Dedupe decision throughput on one core, against a plain `HashSet`.
//!
//! A stream of 100,000 keys shaped like real dedupe keys, 30 % of them
//! re-deliveries of earlier ones, goes through `decide` and, for first
//! sightings, `remember`, on a state that already holds 1M keys (a busy
//! partition within its TTL). The baseline in the same run is
//! `HashSet<String>::insert` of the same keys into a set of the same size:
//! the obvious implementation, which spends more memory per key (see the
//! `memory_per_key` example). Target: at least 200k keys/s.
//!
//! `cargo bench -p dedupe --bench decide`

// criterion_group! and criterion_main! generate undocumented functions.
#![allow(missing_docs)]

use std::collections::HashSet;
use std::hint::black_box;

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use dedupe::state::{Decision, PartitionState};

const PRELOADED: usize = 1_000_000;
const STREAM: usize = 100_000;
const TTL_MS: i64 = 7 * 24 * 3600 * 1000;
const T0: i64 = 1_700_000_000_000;

/// The i-th key: half UUID-style provider ids, half short generic ids.
fn key(i: usize) -> String {
    if i.is_multiple_of(2) {
        format!("immoteur:{:08x}-4b2c-4d5e-9f10-{:012x}", i, i * 7)
    } else {
        format!("generic:evt_{i:09}")
    }
}

/// Keys after the preloaded ones; every tenth-ish is a re-delivery (30 %).
fn stream() -> Vec<String> {
    (0..STREAM)
        .map(|i| {
            if i % 10 < 3 && i > 0 {
                key(PRELOADED + i / 2)
            } else {
                key(PRELOADED + i)
            }
        })
        .collect()
}

fn decide(c: &mut Criterion) {
    let keys = stream();
    let mut preloaded = PartitionState::default();
    let mut baseline = HashSet::with_capacity(PRELOADED + STREAM);
    for i in 0..PRELOADED {
        preloaded.remember(&key(i), T0);
        let _ = baseline.insert(key(i));
    }
    let mut group = c.benchmark_group("dedupe");
    let _ = group.throughput(Throughput::Elements(STREAM as u64));
    let _ = group.sample_size(10);
    let _ = group.bench_function("baseline-hashset-insert", |b| {
        b.iter_batched_ref(
            || baseline.clone(),
            |set| {
                for k in &keys {
                    let _ = black_box(set.insert(k.clone()));
                }
            },
            BatchSize::PerIteration,
        )
    });
    let _ = group.bench_function("decide-and-remember", |b| {
        b.iter_batched_ref(
            || preloaded.clone(),
            |state| {
                for (i, k) in keys.iter().enumerate() {
                    let now = T0 + i as i64;
                    if state.decide(k, now, TTL_MS) == Decision::Forward {
                        state.remember(k, now);
                    }
                }
            },
            BatchSize::PerIteration,
        )
    });
    group.finish();
}

criterion_group!(benches, decide);
criterion_main!(benches);
