//! [`Liveness`]: what a stage's loop reports so that `/health` tells the
//! truth. The loop marks progress after every batch (and while it waits
//! idle with nothing to read); the lag sampler reports the group's lag. A
//! loop that has made no progress for `stall_after` while it has lag is
//! wedged; a loop that stopped on a problem an operator must fix (a
//! partition count that changed) says what and how to fix it. Either way
//! `/health` answers 503 with the reason, so a supervisor can restart or
//! page.

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

/// What `/health` answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Health {
    /// Making progress, or idle with nothing to do.
    Healthy,
    /// No progress for `idle` while the group has `lag` records to read.
    Stalled {
        /// Time since the last progress.
        idle: Duration,
        /// The group's total lag when last sampled.
        lag: i64,
    },
    /// Stopped on a problem an operator must fix.
    Problem(String),
}

impl Health {
    /// Whether `/health` answers 200.
    pub fn is_healthy(&self) -> bool {
        *self == Self::Healthy
    }

    /// The one line `/health` answers.
    pub fn describe(&self) -> String {
        match self {
            Self::Healthy => "ok".into(),
            Self::Stalled { idle, lag } => format!(
                "stalled: no progress for {} s with {lag} records of lag",
                idle.as_secs()
            ),
            Self::Problem(problem) => problem.clone(),
        }
    }
}

/// Progress, lag and problems of one stage's loop.
#[derive(Debug)]
pub struct Liveness {
    epoch: Instant,
    /// Milliseconds since `epoch` of the last progress.
    last_progress_ms: AtomicI64,
    /// The group's total lag, or -1 before the first sample.
    lag: AtomicI64,
    /// Milliseconds without progress (while lagging) that count as stalled.
    stall_after_ms: AtomicU64,
    problem: Mutex<Option<String>>,
}

impl Liveness {
    /// A loop that counts as wedged after `stall_after` without progress
    /// while it has lag.
    pub fn new(stall_after: Duration) -> Self {
        Self {
            epoch: Instant::now(),
            last_progress_ms: AtomicI64::new(0),
            lag: AtomicI64::new(-1),
            stall_after_ms: AtomicU64::new(millis(stall_after)),
            problem: Mutex::new(None),
        }
    }

    /// Changes how long a lagging loop may make no progress.
    pub fn set_stall_after(&self, stall_after: Duration) {
        self.stall_after_ms
            .store(millis(stall_after), Ordering::Relaxed);
    }

    fn millis_at(&self, at: Instant) -> i64 {
        i64::try_from(at.saturating_duration_since(self.epoch).as_millis()).unwrap_or(i64::MAX)
    }

    /// The loop made progress (a batch done, or a poll that found nothing).
    pub fn progressed(&self) {
        self.progressed_at(Instant::now());
    }

    /// The loop polled and found nothing. That is progress only when the
    /// group has nothing to read (lag 0, or not sampled yet): with lag, an
    /// empty poll means the loop cannot fetch (a broker out of reach,
    /// partitions paused for good), and counting it would keep `/health`
    /// at 200 however long the loop is wedged.
    pub fn idle(&self) {
        self.idle_at(Instant::now());
    }

    /// [`Self::idle`] at a given time (tests).
    pub fn idle_at(&self, at: Instant) {
        if self.lag.load(Ordering::Relaxed) <= 0 {
            self.progressed_at(at);
        }
    }

    /// [`Self::progressed`] at a given time (tests).
    pub fn progressed_at(&self, at: Instant) {
        let _ = self
            .last_progress_ms
            .fetch_max(self.millis_at(at), Ordering::Relaxed);
    }

    /// The lag sampler's latest total over the stage's input partitions.
    pub fn set_lag(&self, lag: i64) {
        self.lag.store(lag, Ordering::Relaxed);
    }

    /// The loop stopped on `problem`, which an operator must fix; it stays
    /// until the process restarts.
    pub fn set_problem(&self, problem: impl Into<String>) {
        *self.problem.lock().unwrap_or_else(PoisonError::into_inner) = Some(problem.into());
    }

    /// The verdict now.
    pub fn health(&self) -> Health {
        self.health_at(Instant::now())
    }

    /// The verdict at `now`.
    pub fn health_at(&self, now: Instant) -> Health {
        if let Some(problem) = self
            .problem
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
        {
            return Health::Problem(problem);
        }
        let idle_ms = self
            .millis_at(now)
            .saturating_sub(self.last_progress_ms.load(Ordering::Relaxed));
        let idle = Duration::from_millis(u64::try_from(idle_ms).unwrap_or(0));
        let lag = self.lag.load(Ordering::Relaxed);
        if millis(idle) > self.stall_after_ms.load(Ordering::Relaxed) && lag > 0 {
            return Health::Stalled { idle, lag };
        }
        Health::Healthy
    }
}

fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn idle_without_lag_is_healthy_and_idle_with_lag_is_stalled() {
        let liveness = Liveness::new(Duration::from_secs(60));
        let start = Instant::now();
        liveness.progressed_at(start);
        let later = start + Duration::from_secs(61);
        assert_eq!(liveness.health_at(later), Health::Healthy, "no lag sampled");
        liveness.set_lag(0);
        assert_eq!(
            liveness.health_at(later),
            Health::Healthy,
            "nothing to read"
        );
        liveness.set_lag(12);
        assert_eq!(
            liveness.health_at(start + Duration::from_secs(30)),
            Health::Healthy,
            "within the allowance"
        );
        let stalled = liveness.health_at(later);
        assert!(
            matches!(stalled, Health::Stalled { lag: 12, .. }),
            "{stalled:?}"
        );
        assert!(
            stalled
                .describe()
                .starts_with("stalled: no progress for 61 s with 12 records")
        );
        liveness.progressed_at(later);
        assert_eq!(liveness.health_at(later), Health::Healthy);
    }

    #[test]
    fn empty_polls_are_progress_only_without_lag() {
        let liveness = Liveness::new(Duration::from_secs(5));
        let start = Instant::now();
        liveness.progressed_at(start);
        liveness.set_lag(0);
        liveness.idle_at(start + Duration::from_secs(10));
        assert_eq!(
            liveness.health_at(start + Duration::from_secs(12)),
            Health::Healthy,
            "idle with nothing to read"
        );
        // The broker is out of reach with 40 records to read: every poll
        // comes back empty, and none of them is progress.
        liveness.set_lag(40);
        for s in 11..30 {
            liveness.idle_at(start + Duration::from_secs(s));
        }
        let wedged = liveness.health_at(start + Duration::from_secs(30));
        assert!(
            matches!(wedged, Health::Stalled { lag: 40, .. }),
            "{wedged:?}"
        );
    }

    #[test]
    fn a_problem_is_reported_until_restart() {
        let liveness = Liveness::new(Duration::from_secs(60));
        liveness.progressed();
        liveness.set_problem("partitions of t changed from 4 to 8");
        assert_eq!(
            liveness.health(),
            Health::Problem("partitions of t changed from 4 to 8".into())
        );
        liveness.progressed();
        assert!(!liveness.health().is_healthy());
    }
}
