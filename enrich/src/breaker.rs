//! The circuit breaker: stops calling an API that keeps failing and
//! resumes by probing.
//!
//! - **Closed**: calls go through. It opens after `consecutive_failures`
//!   failures in a row, or when at least `min_calls` of the last `window`
//!   calls are recorded and their failure ratio reaches `failure_ratio`
//!   (a window counted in calls, not time).
//! - **Open**: no call goes through until the cool-down has passed.
//! - **Half-open**: the first call after the cool-down is the one probe;
//!   no other call goes through while it is out. Its success closes the
//!   breaker (and resets the cool-down); its failure opens it again with
//!   the cool-down doubled, up to `max_cool_down`.
//!
//! Every call [`Breaker::try_acquire`] admits carries a [`Permit`], which
//! the caller hands back with the call's result ([`Breaker::record`]): a
//! result from before the breaker last changed state (a call admitted
//! while closed that ends after it opened) is ignored, so only the probe
//! decides a half-open breaker. A probe whose result is never recorded
//! keeps the breaker half-open: record every permit.
//! What counts as a failure is [`crate::outcome::Outcome::is_api_failure`].

use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// The thresholds and cool-downs of a breaker.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BreakerConfig {
    /// Failures in a row that open a closed breaker (0: never on this
    /// rule).
    pub consecutive_failures: u32,
    /// The calls the failure ratio looks at (the last ones).
    pub window: usize,
    /// The fewest calls in the window before the ratio is looked at (above
    /// `window`: never on this rule).
    pub min_calls: usize,
    /// The failure ratio (0 to 1) of the window that opens the breaker;
    /// above 1: never on this rule.
    pub failure_ratio: f64,
    /// The first cool-down of an open breaker.
    pub cool_down: Duration,
    /// The longest cool-down, however often probes fail. Both cool-downs
    /// are clamped to [`MAX_COOL_DOWN`], and the first to this one.
    pub max_cool_down: Duration,
}

/// The longest cool-down a breaker takes, whatever its configuration (an
/// `Instant` plus a longer one could overflow).
pub const MAX_COOL_DOWN: Duration = Duration::from_secs(24 * 3600);

/// The state of a breaker, for the breaker-state metric.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BreakerState {
    /// Calls go through.
    Closed,
    /// No call goes through.
    Open,
    /// One probe may go, or is out.
    HalfOpen,
}

impl BreakerState {
    /// The gauge value: 0 closed, 1 half-open, 2 open.
    pub fn gauge(self) -> i64 {
        match self {
            Self::Closed => 0,
            Self::HalfOpen => 1,
            Self::Open => 2,
        }
    }
}

/// The right to make one call, handed back with its result.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[must_use = "record the call's result with Breaker::record"]
pub struct Permit {
    generation: u64,
    probe: bool,
}

impl Permit {
    /// Whether this call is the half-open breaker's probe.
    pub fn is_probe(&self) -> bool {
        self.probe
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Closed,
    Open { until: Instant },
    HalfOpen { probe_out: bool },
}

/// A circuit breaker, driven by the caller's clock.
#[derive(Debug, Clone)]
pub struct Breaker {
    config: BreakerConfig,
    phase: Phase,
    /// Bumped at every change of phase: permits of an older one are stale.
    generation: u64,
    /// The cool-down of the current or last opening: the base one after
    /// a close, doubled (capped) at each failed probe.
    cool_down: Duration,
    consecutive: u32,
    /// The last calls' results, `true` for a failure.
    recent: VecDeque<bool>,
}

impl Breaker {
    /// A closed breaker.
    pub fn new(mut config: BreakerConfig) -> Self {
        config.max_cool_down = config.max_cool_down.min(MAX_COOL_DOWN);
        config.cool_down = config.cool_down.min(config.max_cool_down);
        Self {
            config,
            phase: Phase::Closed,
            generation: 0,
            cool_down: config.cool_down,
            consecutive: 0,
            recent: VecDeque::with_capacity(config.window),
        }
    }

    /// The state at `now` (an open breaker whose cool-down has passed is
    /// reported half-open: its next call is a probe).
    pub fn state(&self, now: Instant) -> BreakerState {
        match self.phase {
            Phase::Closed => BreakerState::Closed,
            Phase::Open { until } if now >= until => BreakerState::HalfOpen,
            Phase::Open { .. } => BreakerState::Open,
            Phase::HalfOpen { .. } => BreakerState::HalfOpen,
        }
    }

    /// May a call be made at `now`? `Err` holds how long until an open
    /// breaker's cool-down ends (zero while a half-open probe is out:
    /// retry after its result).
    pub fn try_acquire(&mut self, now: Instant) -> Result<Permit, Duration> {
        match self.phase {
            Phase::Closed => Ok(self.permit(false)),
            Phase::Open { until } if now < until => Err(until - now),
            Phase::Open { .. } | Phase::HalfOpen { probe_out: false } => {
                self.enter(Phase::HalfOpen { probe_out: true });
                Ok(self.permit(true))
            }
            Phase::HalfOpen { probe_out: true } => Err(Duration::ZERO),
        }
    }

    /// The result of the call `permit` admitted, at `now`: `failed` when
    /// the API failed it.
    pub fn record(&mut self, permit: Permit, failed: bool, now: Instant) {
        if permit.generation != self.generation {
            return;
        }
        match self.phase {
            Phase::Closed => self.record_closed(failed, now),
            Phase::HalfOpen { probe_out: true } if permit.probe => {
                if failed {
                    self.cool_down = self
                        .cool_down
                        .saturating_mul(2)
                        .min(self.config.max_cool_down);
                    self.open(now);
                } else {
                    self.cool_down = self.config.cool_down;
                    self.enter(Phase::Closed);
                }
            }
            Phase::Open { .. } | Phase::HalfOpen { .. } => {}
        }
    }

    fn record_closed(&mut self, failed: bool, now: Instant) {
        self.consecutive = if failed { self.consecutive + 1 } else { 0 };
        if self.config.window > 0 {
            if self.recent.len() == self.config.window {
                let _ = self.recent.pop_front();
            }
            self.recent.push_back(failed);
        }
        let in_a_row = self.config.consecutive_failures > 0
            && self.consecutive >= self.config.consecutive_failures;
        let calls = self.recent.len();
        let failures = self.recent.iter().filter(|f| **f).count();
        let ratio = failures > 0
            && calls >= self.config.min_calls
            && failures as f64 >= self.config.failure_ratio * calls as f64;
        if in_a_row || ratio {
            self.open(now);
        }
    }

    fn open(&mut self, now: Instant) {
        self.enter(Phase::Open {
            until: now + self.cool_down,
        });
    }

    fn enter(&mut self, phase: Phase) {
        self.phase = phase;
        self.generation += 1;
        self.consecutive = 0;
        self.recent.clear();
    }

    fn permit(&self, probe: bool) -> Permit {
        Permit {
            generation: self.generation,
            probe,
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use proptest::prelude::*;

    const CONFIG: BreakerConfig = BreakerConfig {
        consecutive_failures: 3,
        window: 10,
        min_calls: 5,
        failure_ratio: 0.5,
        cool_down: Duration::from_secs(10),
        max_cool_down: Duration::from_secs(35),
    };

    fn call(breaker: &mut Breaker, failed: bool, now: Instant) {
        let permit = breaker.try_acquire(now).unwrap();
        breaker.record(permit, failed, now);
    }

    /// A clock `s` seconds after a start, and a breaker closed then.
    fn start() -> (impl Fn(u64) -> Instant, Breaker) {
        let t0 = Instant::now();
        (move |s| t0 + Duration::from_secs(s), Breaker::new(CONFIG))
    }

    fn open_at_zero() -> (impl Fn(u64) -> Instant, Breaker) {
        let (at, mut breaker) = start();
        for _ in 0..3 {
            call(&mut breaker, true, at(0));
        }
        (at, breaker)
    }

    #[test]
    fn opens_after_consecutive_failures_and_probes_after_the_cool_down() {
        let (at, mut breaker) = start();
        for failed in [true, false, true, true] {
            call(&mut breaker, failed, at(0));
        }
        assert_eq!(breaker.state(at(0)), BreakerState::Closed);
        call(&mut breaker, true, at(0));
        assert_eq!(breaker.state(at(0)), BreakerState::Open);
        assert_eq!(breaker.try_acquire(at(4)), Err(Duration::from_secs(6)));
        assert_eq!(breaker.state(at(10)), BreakerState::HalfOpen);
        let probe = breaker.try_acquire(at(10)).unwrap();
        assert!(probe.is_probe());
        assert_eq!(breaker.try_acquire(at(11)), Err(Duration::ZERO));
        breaker.record(probe, false, at(11));
        assert_eq!(breaker.state(at(11)), BreakerState::Closed);
        assert!(!breaker.try_acquire(at(11)).unwrap().is_probe());
    }

    #[test]
    fn opens_on_the_failure_ratio_of_its_window() {
        let (at, mut breaker) = start();
        for failed in [true, false, true, false] {
            call(&mut breaker, failed, at(0));
        }
        assert_eq!(breaker.state(at(0)), BreakerState::Closed, "< min_calls");
        call(&mut breaker, true, at(0));
        assert_eq!(breaker.state(at(0)), BreakerState::Open, "3 of 5 failed");
    }

    #[test]
    fn a_failed_probe_reopens_with_a_longer_capped_cool_down() {
        let (at, mut breaker) = open_at_zero();
        let mut now = 0;
        for expected in [10, 20, 35, 35] {
            let wait = Duration::from_secs(expected);
            assert_eq!(breaker.try_acquire(at(now)), Err(wait));
            now += expected;
            call(&mut breaker, true, at(now));
        }
        now += 35;
        call(&mut breaker, false, at(now));
        for _ in 0..3 {
            call(&mut breaker, true, at(now));
        }
        let reset = Err(Duration::from_secs(10));
        assert_eq!(breaker.try_acquire(at(now)), reset, "closing reset it");
    }

    #[test]
    fn results_of_calls_from_before_a_change_of_state_are_ignored() {
        let (at, mut breaker) = start();
        let late = breaker.try_acquire(at(0)).unwrap();
        for _ in 0..3 {
            call(&mut breaker, true, at(0));
        }
        let probe = breaker.try_acquire(at(10)).unwrap();
        breaker.record(late, false, at(10));
        assert_eq!(breaker.try_acquire(at(10)), Err(Duration::ZERO));
        breaker.record(probe, true, at(10));
        assert_eq!(breaker.state(at(10)), BreakerState::Open);
    }

    #[test]
    fn huge_cool_downs_are_clamped_and_a_zero_ratio_needs_a_failure() {
        let (at, _) = start();
        let mut breaker = Breaker::new(BreakerConfig {
            failure_ratio: 0.0,
            cool_down: Duration::MAX,
            max_cool_down: Duration::MAX,
            ..CONFIG
        });
        for _ in 0..CONFIG.window {
            call(&mut breaker, false, at(0));
        }
        assert_eq!(breaker.state(at(0)), BreakerState::Closed);
        call(&mut breaker, true, at(0));
        assert_eq!(breaker.try_acquire(at(0)), Err(MAX_COOL_DOWN));
    }

    #[test]
    fn gauge_values() {
        assert_eq!(BreakerState::Closed.gauge(), 0);
        assert_eq!(BreakerState::HalfOpen.gauge(), 1);
        assert_eq!(BreakerState::Open.gauge(), 2);
    }

    #[derive(Debug, Clone)]
    enum Op {
        Acquire,
        Record { which: usize, failed: bool },
        Wait(u64),
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            3 => Just(Op::Acquire),
            3 => (any::<usize>(), any::<bool>()).prop_map(|(which, failed)| Op::Record { which, failed }),
            1 => (0u64..40).prop_map(Op::Wait),
        ]
    }

    proptest! {
        /// Whatever the calls, results and timing: at most one probe is
        /// ever out, a half-open breaker admits nothing but its probe, and
        /// an open one admits nothing.
        #[test]
        fn never_two_probes_out(ops in proptest::collection::vec(op(), 1..200)) {
            let t0 = Instant::now();
            let mut now = t0;
            let mut breaker = Breaker::new(CONFIG);
            let mut out: Vec<Permit> = Vec::new();
            for op in ops {
                match op {
                    Op::Acquire => {
                        let before = breaker.state(now);
                        if let Ok(permit) = breaker.try_acquire(now) {
                            match before {
                                BreakerState::Closed => prop_assert!(!permit.is_probe()),
                                BreakerState::HalfOpen => prop_assert!(permit.is_probe()),
                                BreakerState::Open => prop_assert!(false, "an open breaker admitted a call"),
                            }
                            out.push(permit);
                        }
                    }
                    Op::Record { which, failed } => {
                        if !out.is_empty() {
                            let permit = out.swap_remove(which % out.len());
                            breaker.record(permit, failed, now);
                        }
                    }
                    Op::Wait(s) => now += Duration::from_secs(s),
                }
                let live_probes = out
                    .iter()
                    .filter(|p| p.is_probe() && p.generation == breaker.generation)
                    .count();
                prop_assert!(live_probes <= 1);
            }
        }
    }
}
