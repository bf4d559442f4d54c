//! When to try a failed call again: capped exponential backoff with full
//! jitter, honouring the server's `Retry-After`, within a retry budget.
//!
//! The n-th retry (n from 0) waits a uniformly random delay in
//! `[0, min(cap, base · 2ⁿ))` ("full jitter"), raised to the server's
//! `Retry-After` when it asks for more; a delay is never less than
//! `Retry-After` and never more than the cap, so a `Retry-After` beyond
//! the cap gives up rather than break either rule. The random source is
//! a `u64` the caller draws (deterministic in tests); nothing sleeps here.
//!
//! `Retry-After` is read as seconds or as an HTTP date
//! ([`parse_retry_after`], the date by the `httpdate` crate).
//!
//! A [`RetryBudget`] is the state of one property's (or one chunk's)
//! retries: it gives up after `max_attempts` calls, or when the next wait
//! would end past `max_elapsed` since the first call.

use std::time::{Duration, Instant, SystemTime};

/// The backoff of one kind of call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BackoffPolicy {
    /// The ceiling of the first retry's delay.
    pub base: Duration,
    /// No delay is longer.
    pub cap: Duration,
    /// The most calls (the first and its retries) for one request; 1 means
    /// no retry.
    pub max_attempts: u32,
    /// The most time from the first call to the start of the last retry.
    pub max_elapsed: Duration,
}

/// Why a budget stops retrying: the dead letter's reason.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GiveUp {
    /// `max_attempts` calls were made.
    Attempts(u32),
    /// The next wait would end past `max_elapsed`.
    Elapsed(Duration),
    /// The server asked to wait longer than the cap.
    RetryAfterBeyondCap(Duration),
}

impl BackoffPolicy {
    /// The delay before retry number `retry` (0 for the first retry),
    /// `random` a uniformly distributed `u64`: `Err` when the server's
    /// `retry_after` is beyond the cap.
    pub fn delay(
        &self,
        retry: u32,
        retry_after: Option<Duration>,
        random: u64,
    ) -> Result<Duration, GiveUp> {
        let floor = retry_after.unwrap_or(Duration::ZERO);
        if floor > self.cap {
            return Err(GiveUp::RetryAfterBeyondCap(floor));
        }
        let ceiling = 1u32
            .checked_shl(retry)
            .and_then(|factor| self.base.checked_mul(factor))
            .map_or(self.cap, |ceiling| ceiling.min(self.cap));
        Ok(jitter(ceiling, random).max(floor))
    }
}

/// A uniformly distributed delay in `[0, ceiling)` (`0` for a zero
/// ceiling) from a uniformly distributed `u64`.
/// A ceiling beyond `u64::MAX` nanoseconds (584 years) is clamped there,
/// so the product fits a `u128` and the result a `u64`.
fn jitter(ceiling: Duration, random: u64) -> Duration {
    let ceiling = u64::try_from(ceiling.as_nanos()).unwrap_or(u64::MAX);
    let nanos = (u128::from(ceiling) * u128::from(random)) >> 64;
    Duration::from_nanos(u64::try_from(nanos).unwrap_or(u64::MAX))
}

/// The delay a `Retry-After` header asks for at `now`: its seconds, or the
/// time until its HTTP date (zero for a date past). `None` for a value
/// that is neither, which the caller treats as no header.
pub fn parse_retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let value = value.trim();
    if !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit()) {
        // All digits but too many for a u64: longer than any cap.
        return Some(Duration::from_secs(value.parse().unwrap_or(u64::MAX)));
    }
    let at = httpdate::parse_http_date(value).ok()?;
    Some(at.duration_since(now).unwrap_or(Duration::ZERO))
}

/// The retries of one request: counts its calls and the time since the
/// first.
#[derive(Debug, Clone)]
pub struct RetryBudget {
    policy: BackoffPolicy,
    started: Instant,
    calls: u32,
}

impl RetryBudget {
    /// The budget of a request whose first call is made at `started`.
    pub fn new(policy: BackoffPolicy, started: Instant) -> Self {
        Self {
            policy,
            started,
            calls: 1,
        }
    }

    /// The calls made so far (the first included): the "calls per
    /// property" metric's count.
    pub fn calls(&self) -> u32 {
        self.calls
    }

    /// After a failed call, at `now`: how long to wait before the next
    /// call (and the budget counts it as made), or why not to retry.
    pub fn next_delay(
        &mut self,
        now: Instant,
        retry_after: Option<Duration>,
        random: u64,
    ) -> Result<Duration, GiveUp> {
        if self.calls >= self.policy.max_attempts {
            return Err(GiveUp::Attempts(self.calls));
        }
        let delay = self.policy.delay(self.calls - 1, retry_after, random)?;
        let resumes = now
            .saturating_duration_since(self.started)
            .saturating_add(delay);
        if resumes > self.policy.max_elapsed {
            return Err(GiveUp::Elapsed(resumes));
        }
        self.calls += 1;
        Ok(delay)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use proptest::prelude::*;

    fn secs(n: u64) -> Duration {
        Duration::from_secs(n)
    }

    const POLICY: BackoffPolicy = BackoffPolicy {
        base: Duration::from_millis(100),
        cap: Duration::from_secs(10),
        max_attempts: 5,
        max_elapsed: Duration::from_secs(30),
    };

    #[test]
    fn full_jitter_spans_zero_to_the_doubling_ceiling() {
        assert_eq!(POLICY.delay(0, None, 0), Ok(Duration::ZERO));
        assert_eq!(
            POLICY.delay(0, None, u64::MAX / 2 + 1),
            Ok(Duration::from_millis(50))
        );
        let near_max = POLICY.delay(3, None, u64::MAX).unwrap();
        assert!(near_max < Duration::from_millis(800));
        assert!(near_max > Duration::from_millis(799));
    }

    #[test]
    fn the_ceiling_stops_at_the_cap_even_for_huge_retry_counts() {
        for retry in [7, 31, 32, 64, u32::MAX] {
            let delay = POLICY.delay(retry, None, u64::MAX).unwrap();
            assert!(delay < POLICY.cap && delay > secs(9), "{retry}: {delay:?}");
        }
    }

    #[test]
    fn a_cap_of_duration_max_does_not_overflow() {
        let policy = BackoffPolicy {
            cap: Duration::MAX,
            max_elapsed: Duration::MAX,
            ..POLICY
        };
        let delay = policy.delay(200, Some(Duration::MAX), u64::MAX);
        assert_eq!(delay, Ok(Duration::MAX));
        let mut budget = RetryBudget::new(policy, Instant::now());
        assert!(budget.next_delay(Instant::now(), None, u64::MAX).is_ok());
    }

    #[test]
    fn retry_after_is_a_floor_and_beyond_the_cap_gives_up() {
        assert_eq!(POLICY.delay(0, Some(secs(3)), 0), Ok(secs(3)));
        assert_eq!(POLICY.delay(0, Some(POLICY.cap), u64::MAX), Ok(POLICY.cap));
        assert_eq!(
            POLICY.delay(0, Some(secs(11)), 0),
            Err(GiveUp::RetryAfterBeyondCap(secs(11)))
        );
    }

    #[test]
    fn retry_after_reads_seconds_and_http_dates() {
        let now = SystemTime::UNIX_EPOCH + secs(784_111_777); // Sun, 06 Nov 1994 08:49:37 GMT
        assert_eq!(parse_retry_after("120", now), Some(secs(120)));
        assert_eq!(parse_retry_after(" 0 ", now), Some(Duration::ZERO));
        assert_eq!(
            parse_retry_after("99999999999999999999999", now),
            Some(secs(u64::MAX))
        );
        assert_eq!(
            parse_retry_after("Sun, 06 Nov 1994 08:50:07 GMT", now),
            Some(secs(30))
        );
        assert_eq!(
            parse_retry_after("Sun, 06 Nov 1994 08:00:00 GMT", now),
            Some(Duration::ZERO)
        );
        for junk in ["", "-5", "1.5", "soon", "Sun, 06 Nov 1994"] {
            assert_eq!(parse_retry_after(junk, now), None, "{junk:?}");
        }
    }

    #[test]
    fn the_budget_gives_up_after_its_attempts() {
        let t0 = Instant::now();
        let mut budget = RetryBudget::new(POLICY, t0);
        for _ in 1..POLICY.max_attempts {
            assert!(budget.next_delay(t0, None, 0).is_ok());
        }
        assert_eq!(budget.calls(), POLICY.max_attempts);
        assert_eq!(
            budget.next_delay(t0, None, 0),
            Err(GiveUp::Attempts(POLICY.max_attempts))
        );
    }

    #[test]
    fn the_budget_gives_up_when_the_wait_would_end_past_its_time() {
        let t0 = Instant::now();
        let mut budget = RetryBudget::new(POLICY, t0);
        assert_eq!(
            budget.next_delay(t0 + secs(25), Some(secs(4)), 0),
            Ok(secs(4))
        );
        assert_eq!(
            budget.next_delay(t0 + secs(29), Some(secs(2)), 0),
            Err(GiveUp::Elapsed(secs(31)))
        );
        assert_eq!(budget.calls(), 2);
    }

    proptest! {
        /// Every delay is within `[retry_after, cap]` and below the
        /// doubling ceiling unless `Retry-After` raised it; otherwise the
        /// policy gives up because `Retry-After` is beyond the cap.
        #[test]
        fn delays_are_within_retry_after_and_the_cap(
            base_ms in 0u64..5_000,
            cap_ms in 0u64..60_000,
            retry in any::<u32>(),
            retry_after_ms in proptest::option::of(0u64..120_000),
            random in any::<u64>(),
        ) {
            let policy = BackoffPolicy {
                base: Duration::from_millis(base_ms),
                cap: Duration::from_millis(cap_ms),
                max_attempts: 10,
                max_elapsed: secs(60),
            };
            let retry_after = retry_after_ms.map(Duration::from_millis);
            let floor = retry_after.unwrap_or(Duration::ZERO);
            match policy.delay(retry, retry_after, random) {
                Ok(delay) => {
                    prop_assert!(delay >= floor);
                    prop_assert!(delay <= policy.cap);
                }
                Err(give_up) => {
                    prop_assert!(floor > policy.cap);
                    prop_assert_eq!(give_up, GiveUp::RetryAfterBeyondCap(floor));
                }
            }
        }
    }
}
