//! The client-side rate limit: a token bucket of `burst` tokens refilled
//! at `rate` tokens per second, one token per API call.
//!
//! Driven by the caller's clock: [`TokenBucket::try_take`] takes the
//! current [`Instant`] and either spends a token or says how long to wait;
//! it never sleeps. It is computed as GCRA (the "virtual scheduling" form
//! of a token bucket: one theoretical arrival time instead of a fractional
//! token count), so it is exact in integer nanoseconds and a caller that
//! waits the returned duration is admitted.

use std::fmt;
use std::time::{Duration, Instant};

/// Why a rate limit cannot be built from its configuration.
#[derive(Debug, Clone, PartialEq)]
pub enum RateLimitError {
    /// The rate is not a finite number above zero, or one token's interval
    /// is longer than [`MAX_INTERVAL`] or shorter than a nanosecond.
    InvalidRate(f64),
    /// The burst is zero: no call could ever be made.
    ZeroBurst,
}

impl fmt::Display for RateLimitError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::InvalidRate(rate) => write!(
                f,
                "rate limit: {rate} calls per second is not a usable rate (at least one call a year, at most 10^9 a second)"
            ),
            Self::ZeroBurst => write!(f, "rate limit: the burst must be at least one call"),
        }
    }
}

impl std::error::Error for RateLimitError {}

/// The longest interval between two tokens: a year (a longer one is a
/// configuration mistake, and an `Instant` could overflow).
pub const MAX_INTERVAL: Duration = Duration::from_secs(365 * 24 * 3600);

/// A token bucket: at most `burst` calls at once, `rate` per second in the
/// long run.
#[derive(Debug, Clone)]
pub struct TokenBucket {
    /// The time one token takes to refill: 1 / rate.
    interval: Duration,
    /// How far ahead of `now` the theoretical arrival time may be and
    /// still admit a call: `interval * (burst - 1)`.
    tolerance: Duration,
    /// The theoretical arrival time of the next call: when the bucket
    /// would be full again minus the burst's tolerance.
    next: Instant,
}

impl TokenBucket {
    /// A bucket refilled at `rate_per_second` tokens per second holding at
    /// most `burst` tokens, full at `now`.
    pub fn new(rate_per_second: f64, burst: u32, now: Instant) -> Result<Self, RateLimitError> {
        if !rate_per_second.is_finite() || rate_per_second <= 0.0 {
            return Err(RateLimitError::InvalidRate(rate_per_second));
        }
        let interval = Duration::try_from_secs_f64(1.0 / rate_per_second)
            .map_err(|_| RateLimitError::InvalidRate(rate_per_second))?;
        Self::with_interval(interval, burst, now).map_err(|error| match error {
            RateLimitError::ZeroBurst => error,
            RateLimitError::InvalidRate(_) => RateLimitError::InvalidRate(rate_per_second),
        })
    }

    /// A bucket refilled by one token every `interval` holding at most
    /// `burst` tokens, full at `now`.
    pub fn with_interval(
        interval: Duration,
        burst: u32,
        now: Instant,
    ) -> Result<Self, RateLimitError> {
        if burst == 0 {
            return Err(RateLimitError::ZeroBurst);
        }
        if interval.is_zero() || interval > MAX_INTERVAL {
            return Err(RateLimitError::InvalidRate(1.0 / interval.as_secs_f64()));
        }
        let tolerance = interval
            .checked_mul(burst - 1)
            .ok_or(RateLimitError::InvalidRate(1.0 / interval.as_secs_f64()))?;
        Ok(Self {
            interval,
            tolerance,
            next: now,
        })
    }

    /// The time one token takes to refill.
    pub fn interval(&self) -> Duration {
        self.interval
    }

    /// Spends one token at `now` (`Ok`), or says how long to wait before a
    /// token is there (`Err`, nothing spent). A `now` earlier than a
    /// previous one is treated as no time having passed.
    pub fn try_take(&mut self, now: Instant) -> Result<(), Duration> {
        let next = self.next.max(now);
        let ahead = next.saturating_duration_since(now);
        if ahead > self.tolerance {
            return Err(ahead - self.tolerance);
        }
        self.next = next + self.interval;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use proptest::prelude::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn a_full_bucket_admits_its_burst_then_asks_to_wait_one_interval() {
        let t0 = Instant::now();
        let mut bucket = TokenBucket::new(10.0, 3, t0).unwrap();
        for _ in 0..3 {
            assert_eq!(bucket.try_take(t0), Ok(()));
        }
        assert_eq!(bucket.try_take(t0), Err(ms(100)));
        assert_eq!(bucket.try_take(t0 + ms(40)), Err(ms(60)));
        assert_eq!(bucket.try_take(t0 + ms(100)), Ok(()));
        assert_eq!(bucket.try_take(t0 + ms(100)), Err(ms(100)));
    }

    #[test]
    fn an_idle_bucket_refills_up_to_its_burst_and_no_more() {
        let t0 = Instant::now();
        let mut bucket = TokenBucket::new(2.0, 2, t0).unwrap();
        let later = t0 + Duration::from_secs(3600);
        assert_eq!(bucket.try_take(later), Ok(()));
        assert_eq!(bucket.try_take(later), Ok(()));
        assert_eq!(bucket.try_take(later), Err(ms(500)));
    }

    #[test]
    fn a_rate_below_one_per_second_works() {
        let t0 = Instant::now();
        let mut bucket = TokenBucket::new(0.5, 1, t0).unwrap();
        assert_eq!(bucket.try_take(t0), Ok(()));
        assert_eq!(bucket.try_take(t0 + ms(500)), Err(ms(1500)));
    }

    #[test]
    fn a_clock_going_backwards_is_no_time_passing() {
        let t0 = Instant::now();
        let t1 = t0 + ms(1000);
        let mut bucket = TokenBucket::new(1.0, 1, t1).unwrap();
        assert_eq!(bucket.try_take(t1), Ok(()));
        assert_eq!(bucket.try_take(t0), Err(ms(2000)));
    }

    #[test]
    fn unusable_configurations_are_refused() {
        let t0 = Instant::now();
        for rate in [0.0, -1.0, f64::NAN, f64::INFINITY, 1e-300, 1e-9, 1e12] {
            assert!(
                matches!(
                    TokenBucket::new(rate, 1, t0),
                    Err(RateLimitError::InvalidRate(_))
                ),
                "{rate}"
            );
        }
        assert!(TokenBucket::with_interval(Duration::MAX, 1, t0).is_err());
        assert!(TokenBucket::with_interval(MAX_INTERVAL, u32::MAX, t0).is_ok());
        assert_eq!(
            TokenBucket::new(1.0, 0, t0).unwrap_err(),
            RateLimitError::ZeroBurst
        );
    }

    proptest! {
        /// Whatever the calls' timing, the calls admitted within any window
        /// of length `w` are at most `burst + w / interval`; and a caller
        /// that waits what it is told is admitted.
        #[test]
        fn never_exceeds_its_rate_over_a_window(
            interval_ms in 1u64..200,
            burst in 1u32..6,
            steps in proptest::collection::vec(0u64..150, 1..120),
        ) {
            let t0 = Instant::now();
            let mut bucket = TokenBucket::with_interval(ms(interval_ms), burst, t0).unwrap();
            let mut now = t0;
            let mut admitted = Vec::new();
            for step in steps {
                now += ms(step);
                match bucket.try_take(now) {
                    Ok(()) => admitted.push(now),
                    Err(wait) => {
                        prop_assert!(wait > Duration::ZERO);
                        let mut probe = bucket.clone();
                        prop_assert_eq!(probe.try_take(now + wait), Ok(()));
                    }
                }
            }
            for (i, first) in admitted.iter().enumerate() {
                for (j, last) in admitted.iter().enumerate().skip(i) {
                    let window = last.duration_since(*first);
                    let allowed = u128::from(burst)
                        + window.as_nanos() / ms(interval_ms).as_nanos();
                    prop_assert!((j - i + 1) as u128 <= allowed);
                }
            }
        }
    }
}
