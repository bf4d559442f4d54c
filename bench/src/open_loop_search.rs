//! The highest fixed rate a receiver sustains (open loop): each step sends
//! one rate for a while; a step holds when every request got a 200 and the
//! p99, timed from each request's due time, is within the limit. The rate
//! doubles while steps hold (halves while none has), then a few bisection
//! steps narrow the gap between the best rate that held and the lowest
//! that did not. The answer is the best step that held, with its p99.

use std::net::SocketAddr;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::http_load::{RequestFactory, open_loop_until_late};

/// How the search runs.
#[derive(Debug, Clone)]
pub struct SearchSettings {
    /// How long each rate is sent.
    pub step: Duration,
    /// The p99 a step may have, ms.
    pub p99_limit_ms: f64,
    /// Bisection steps once a rate held and one did not.
    pub bisect_steps: u32,
    /// Keep-alive connections the load is spread over.
    pub connections: usize,
    /// Most steps in all (doubling, halving and bisection).
    pub max_steps: u32,
    /// A step gives up once a request is this late (it cannot hold).
    pub give_up_late: Duration,
}

/// One step of a search.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Step {
    /// Rate asked for, requests/s.
    pub rate: f64,
    /// Requests answered 200.
    pub ok: u64,
    /// Requests not answered 200 (or not sent after giving up).
    pub errors: u64,
    /// p99 from the due time, ms.
    pub p99_ms: f64,
    /// p50 from the due time, ms.
    pub p50_ms: f64,
    /// Whether it held.
    pub held: bool,
}

/// A search's steps and its answer.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct SearchResult {
    /// Every step, in order.
    pub steps: Vec<Step>,
    /// The highest rate that held, if any did.
    pub sustained: Option<Step>,
}

/// Where a search stands: the highest rate that held and the lowest that
/// did not. Pure, so the order of rates is testable.
#[derive(Debug, Clone, Default)]
pub(crate) struct Bounds {
    held: Option<f64>,
    failed: Option<f64>,
    bisected: u32,
}

/// Slowest rate tried, requests/s.
const MIN_RATE: f64 = 10.0;

impl Bounds {
    /// The next rate after `step`, or none when the search is over.
    pub(crate) fn next(&mut self, rate: f64, held: bool, bisect_steps: u32) -> Option<f64> {
        if held {
            self.held = Some(self.held.map_or(rate, |h| h.max(rate)));
        } else {
            self.failed = Some(self.failed.map_or(rate, |f| f.min(rate)));
        }
        match (self.held, self.failed) {
            (Some(h), None) => Some(h * 2.0),
            (None, Some(f)) => (f / 2.0 >= MIN_RATE).then_some((f / 2.0).round()),
            (Some(h), Some(f)) => {
                if self.bisected >= bisect_steps || f - h < h * 0.05 {
                    return None;
                }
                self.bisected += 1;
                Some(((h + f) / 2.0).round())
            }
            (None, None) => None,
        }
    }
}

/// Searches from `start_rate` against `address`, with requests from
/// `request` (which must sign at send time).
pub async fn run(
    address: SocketAddr,
    start_rate: f64,
    settings: &SearchSettings,
    request: RequestFactory,
) -> anyhow::Result<SearchResult> {
    let mut result = SearchResult::default();
    let mut bounds = Bounds::default();
    let mut rate = Some(start_rate.max(MIN_RATE).round());
    while let Some(now) = rate {
        if result.steps.len() as u32 >= settings.max_steps {
            break;
        }
        let outcome = open_loop_until_late(
            address,
            now,
            settings.step,
            settings.connections,
            request.clone(),
            Some(settings.give_up_late),
        )
        .await?;
        let load = &outcome.load;
        let held =
            !outcome.gave_up && load.errors == 0 && load.latency.p99_ms <= settings.p99_limit_ms;
        eprintln!(
            "  {now:.0}/s: {} ok, {} errors, p99 {:.1} ms{}",
            load.ok,
            load.errors,
            load.latency.p99_ms,
            if held { " (held)" } else { "" }
        );
        let step = Step {
            rate: now,
            ok: load.ok,
            errors: load.errors,
            p99_ms: load.latency.p99_ms,
            p50_ms: load.latency.p50_ms,
            held,
        };
        if held && result.sustained.as_ref().is_none_or(|s| s.rate < now) {
            result.sustained = Some(step.clone());
        }
        result.steps.push(step);
        rate = bounds.next(now, held, settings.bisect_steps);
        // Let the receiver drain what a failed step left before the next.
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    Ok(result)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The rates a search tries against a receiver that holds up to `limit`.
    fn rates(start: f64, limit: f64, bisect: u32) -> Vec<f64> {
        let mut bounds = Bounds::default();
        let mut tried = Vec::new();
        let mut rate = Some(start);
        while let Some(now) = rate {
            tried.push(now);
            rate = bounds.next(now, now <= limit, bisect);
            assert!(tried.len() < 50, "the search must end");
        }
        tried
    }

    #[test]
    fn doubles_until_a_rate_fails_then_bisects() {
        assert_eq!(
            rates(500.0, 3_000.0, 3),
            [500.0, 1_000.0, 2_000.0, 4_000.0, 3_000.0, 3_500.0, 3_250.0]
        );
    }

    #[test]
    fn halves_while_nothing_holds() {
        assert_eq!(
            rates(1_000.0, 300.0, 2),
            [1_000.0, 500.0, 250.0, 375.0, 313.0]
        );
        assert_eq!(rates(40.0, 0.0, 2), [40.0, 20.0, 10.0]);
    }

    #[test]
    fn stops_when_the_gap_is_small() {
        assert_eq!(
            rates(1_000.0, 1_999.0, 10),
            [1_000.0, 2_000.0, 1_500.0, 1_750.0, 1_875.0, 1_938.0]
        );
    }
}
