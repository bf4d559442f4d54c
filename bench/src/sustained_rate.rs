//! Issue 22: the highest rate the whole pipeline sustains, on one broker.
//! Each step runs the end-to-end measurement ([`crate::end_to_end`]) at
//! one rate on a fresh pipeline; a step holds when every request got a
//! 200, the load went out at (nearly) the rate asked for, every unique
//! event reached PostgreSQL, and the last row was committed within
//! [`MAX_DRAIN`] of the load stopping (the backlog returned to zero). The
//! rates follow the open-loop search's doubling and bisection
//! ([`crate::open_loop_search`]).

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::end_to_end::{self, EndToEndLoad, EndToEndResult};
use crate::open_loop_search::Bounds;

/// How soon after the load stops the backlog must be gone.
pub const MAX_DRAIN: Duration = Duration::from_secs(5);

/// Share of the asked rate the load must reach: below it, ingest's answers
/// held the open-loop generator back and the pipeline never saw the rate.
const MIN_ACHIEVED: f64 = 0.95;

/// How the search runs.
#[derive(Debug, Clone)]
pub struct SustainSettings {
    /// First rate, webhooks/s.
    pub start_rate: f64,
    /// Load per step.
    pub step: Duration,
    /// Bisection steps once a rate held and one did not.
    pub bisect_steps: u32,
    /// Most steps in all.
    pub max_steps: u32,
}

/// One rate tried.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SustainStep {
    /// Rate asked for, webhooks/s.
    pub rate: f64,
    /// Rate the load reached (200s over the load's wall time).
    pub achieved_rate: f64,
    /// Requests not answered 200.
    pub errors: u64,
    /// Load end → last row committed, ms.
    pub drain_ms: f64,
    /// Arrival → commit p99, ms.
    pub commit_p99_ms: f64,
    /// Whether it held, and if not, why.
    pub verdict: Verdict,
}

/// A step's outcome.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "outcome", content = "why")]
pub enum Verdict {
    /// Every condition met.
    Held,
    /// The first condition missed.
    Missed(String),
}

/// A search on one broker.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SustainedRun {
    /// The broker's label.
    pub broker: String,
    /// Seconds of load per step.
    pub step_secs: f64,
    /// Every step, in order.
    pub steps: Vec<SustainStep>,
    /// The highest rate that held, if any did.
    pub highest: Option<f64>,
}

/// Whether `result` (a run at `result.target_rate`) held. Pure.
pub fn verdict(result: &EndToEndResult) -> Verdict {
    let achieved = result.http.requests_per_sec;
    if result.http.errors > 0 {
        return Verdict::Missed(format!("{} requests not answered 200", result.http.errors));
    }
    if achieved < result.target_rate * MIN_ACHIEVED {
        return Verdict::Missed(format!(
            "the load reached {achieved:.0}/s of {:.0}/s (ingest's answers held it back)",
            result.target_rate
        ));
    }
    if result.rows_found != result.rows_expected {
        return Verdict::Missed(format!(
            "{} rows of {} expected",
            result.rows_found, result.rows_expected
        ));
    }
    let limit_ms = MAX_DRAIN.as_secs_f64() * 1000.0;
    if result.backlog_drain_ms > limit_ms {
        return Verdict::Missed(format!(
            "backlog drained {:.1} s after the load (limit {:.0} s)",
            result.backlog_drain_ms / 1000.0,
            MAX_DRAIN.as_secs_f64()
        ));
    }
    Verdict::Held
}

/// Searches on the broker of `template` (its rate and duration are
/// replaced per step, its run id suffixed with the step's number).
pub async fn run(
    template: &EndToEndLoad,
    settings: &SustainSettings,
) -> anyhow::Result<SustainedRun> {
    let mut bounds = Bounds::default();
    let mut steps = Vec::new();
    let mut rate = Some(settings.start_rate.max(1.0));
    while let Some(r) = rate {
        if steps.len() as u32 >= settings.max_steps {
            break;
        }
        eprintln!(
            "sustained rate on {}: trying {r:.0} webhooks/s",
            template.broker
        );
        let load = EndToEndLoad {
            rate: r,
            duration: settings.step,
            run_id: format!("{}-s{}", template.run_id, steps.len()),
            split_hops: false,
            ..template.clone()
        };
        let result = end_to_end::run(&load).await?;
        let verdict = verdict(&result);
        eprintln!(
            "sustained rate on {}: {r:.0}/s {verdict:?}",
            template.broker
        );
        rate = bounds.next(r, verdict == Verdict::Held, settings.bisect_steps);
        steps.push(SustainStep {
            rate: r,
            achieved_rate: result.http.requests_per_sec,
            errors: result.http.errors,
            drain_ms: result.backlog_drain_ms,
            commit_p99_ms: result.arrival_to_commit.p99_ms,
            verdict,
        });
    }
    let highest = steps
        .iter()
        .filter(|s| s.verdict == Verdict::Held)
        .map(|s| s.rate)
        .reduce(f64::max);
    Ok(SustainedRun {
        broker: template.broker.clone(),
        step_secs: settings.step.as_secs_f64(),
        steps,
        highest,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http_load::LoadResult;
    use crate::latency::LatencySummary;

    fn result(
        rate: f64,
        achieved: f64,
        errors: u64,
        rows: (u64, u64),
        drain_ms: f64,
    ) -> EndToEndResult {
        EndToEndResult {
            broker: "sqlite://".into(),
            target_rate: rate,
            duration_secs: 10.0,
            http: LoadResult {
                ok: 100,
                warm_up_ok: 0,
                errors,
                requests_per_sec: achieved,
                latency: LatencySummary::default(),
            },
            duplicates_accepted: 0,
            rows_expected: rows.0,
            rows_found: rows.1,
            arrival_to_commit: LatencySummary::default(),
            backlog_drain_ms: drain_ms,
            commit_time_source: String::new(),
            hops: None,
            cpu: Vec::new(),
        }
    }

    #[test]
    fn a_step_holds_only_when_every_condition_is_met() {
        assert_eq!(
            verdict(&result(1000.0, 990.0, 0, (9, 9), 4_900.0)),
            Verdict::Held
        );
        let missed = |r: &EndToEndResult| matches!(verdict(r), Verdict::Missed(_));
        assert!(missed(&result(1000.0, 990.0, 1, (9, 9), 0.0)), "an error");
        assert!(
            missed(&result(1000.0, 900.0, 0, (9, 9), 0.0)),
            "the load fell behind"
        );
        assert!(
            missed(&result(1000.0, 990.0, 0, (9, 8), 0.0)),
            "a row missing"
        );
        assert!(
            missed(&result(1000.0, 990.0, 0, (9, 9), 5_100.0)),
            "a slow drain"
        );
    }

    #[test]
    fn a_missed_step_says_why() {
        let Verdict::Missed(why) = verdict(&result(2000.0, 1990.0, 0, (9, 9), 7_250.0)) else {
            panic!("held");
        };
        assert!(why.contains("7.2 s") || why.contains("7.3 s"), "{why}");
    }
}
