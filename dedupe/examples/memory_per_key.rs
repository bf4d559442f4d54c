//! Measures the memory dedupe spends per remembered key.
//!
//! Fills one partition's state with `--keys` dedupe keys shaped like real
//! ones (`<source>:<provider event id>`), and reports the growth of the
//! process's resident set divided by the key count. RSS includes the
//! allocator's overhead, which is what an operator pays for.
//!
//! `cargo run --release -p dedupe --example memory_per_key -- 1000000`

use dedupe::state::PartitionState;

fn rss_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

fn main() {
    let keys: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(1_000_000);
    let Some(before) = rss_bytes() else {
        eprintln!("cannot read /proc/self/status");
        std::process::exit(1);
    };
    let mut state = PartitionState::default();
    for i in 0..keys {
        // e.g. "immoteur:6f1c…" (UUID event ids) or "generic:evt_123456".
        let key = if i % 2 == 0 {
            format!("immoteur:{:08x}-4b2c-4d5e-9f10-{:012x}", i, i * 7)
        } else {
            format!("generic:evt_{i:09}")
        };
        state.remember(&key, 1_700_000_000_000 + i as i64);
    }
    let after = rss_bytes().unwrap_or(before);
    let per_key = (after.saturating_sub(before)) as f64 / keys as f64;
    println!(
        "{keys} keys (average key length {:.1} bytes): {:.1} MiB, {per_key:.1} bytes per key",
        (45.0 + 20.0) / 2.0,
        after.saturating_sub(before) as f64 / (1024.0 * 1024.0)
    );
    assert_eq!(state.len(), keys);
}
