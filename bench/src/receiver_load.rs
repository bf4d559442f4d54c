//! One closed-loop measurement of a webhook receiver (ingest or a Python
//! peer) with what it cost: the CPU its process tree spent (workers
//! included) per 1,000 accepted webhooks, its peak resident memory (summed
//! over the tree), and the records its topic gained, which must be at least
//! the 200s it answered (warm-up requests included).

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::cpu;
use crate::http_load::{LoadResult, RequestFactory, closed_loop};
use crate::process::sample_peak_rss;
use crate::topics;

/// A receiver under test.
#[derive(Debug, Clone)]
pub struct Receiver {
    /// Where it listens.
    pub address: SocketAddr,
    /// The root of its process tree.
    pub pid: u32,
    /// Kafka bootstrap servers it writes to.
    pub brokers: String,
    /// The topic it writes.
    pub topic: String,
}

/// What one measurement of a receiver found.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ReceiverRun {
    /// The load and its latency.
    pub load: LoadResult,
    /// Records its topic gained meanwhile.
    pub records_on_topic: i64,
    /// CPU seconds its process tree spent (warm-up requests included).
    pub cpu_secs: f64,
    /// Its tree's peak resident memory, bytes.
    pub peak_rss_bytes: u64,
}

impl ReceiverRun {
    /// Requests answered 200, warm-up included.
    pub fn accepted(&self) -> u64 {
        self.load.ok + self.load.warm_up_ok
    }

    /// CPU seconds per 1,000 accepted webhooks.
    pub fn cpu_per_thousand(&self) -> f64 {
        per_thousand(self.cpu_secs, self.accepted())
    }
}

/// `cpu_secs` per 1,000 of `accepted` (0 when nothing was accepted).
pub fn per_thousand(cpu_secs: f64, accepted: u64) -> f64 {
    if accepted == 0 {
        0.0
    } else {
        cpu_secs / accepted as f64 * 1000.0
    }
}

/// Runs `connections` closed-loop connections against `receiver` for
/// `duration`, measuring its cost.
pub async fn measure(
    receiver: &Receiver,
    connections: usize,
    duration: Duration,
    request: RequestFactory,
) -> anyhow::Result<ReceiverRun> {
    let before = topics::count_records(&receiver.brokers, &receiver.topic)?;
    let stop = Arc::new(AtomicBool::new(false));
    let sampler = {
        let (stop, pid) = (Arc::clone(&stop), receiver.pid);
        std::thread::spawn(move || sample_peak_rss(pid, &stop))
    };
    let cpu_before = cpu::tree_cpu_secs(receiver.pid);
    let load = closed_loop(receiver.address, connections, duration, request).await;
    let cpu_secs = (cpu::tree_cpu_secs(receiver.pid) - cpu_before).max(0.0);
    stop.store(true, Ordering::Relaxed);
    let peak_rss_bytes = sampler.join().unwrap_or(0);
    let load = load?;
    let after = topics::count_records(&receiver.brokers, &receiver.topic)?;
    Ok(ReceiverRun {
        load,
        records_on_topic: after - before,
        cpu_secs,
        peak_rss_bytes,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cost_is_per_thousand_accepted_warm_up_included() {
        let run = ReceiverRun {
            load: LoadResult {
                ok: 1_900,
                warm_up_ok: 100,
                ..LoadResult::default()
            },
            cpu_secs: 3.0,
            ..ReceiverRun::default()
        };
        assert_eq!(run.accepted(), 2_000);
        assert!((run.cpu_per_thousand() - 1.5).abs() < 1e-9);
        assert_eq!(per_thousand(1.0, 0), 0.0);
    }
}
