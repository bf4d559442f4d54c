//! Load shedding at the front door: which webhook requests ingest takes on
//! right now, and which it refuses at once instead of queueing them.
//!
//! A request is admitted only while fewer than `max_in_flight` requests are
//! being handled in all and fewer than the source's own cap are being
//! handled for its source. A source's rate limit is a token bucket that
//! only authenticated requests draw from ([`Admission::take_token`], called
//! once the request is verified), so strangers cannot spend a provider's
//! rate; their requests are bounded by the caps instead. By default each source's cap is its even share of
//! `max_in_flight`, so the caps add up to the global one: a stranger who
//! holds every slot of one source, or of all sources but one, still leaves
//! the last one its whole share. Otherwise it is refused before anything is read: a 503
//! with `Retry-After` for a cap, a 429 with `Retry-After` for the rate.
//! Nothing waits for a slot, so a flood costs each refused request almost
//! nothing and never delays the admitted ones.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::settings::{IngestSettings, RateLimitSettings};

/// A token bucket: refills at `rate` tokens per second up to `burst`.
#[derive(Debug, Clone)]
pub struct TokenBucket {
    rate: f64,
    burst: f64,
    tokens: f64,
    last: Instant,
}

impl TokenBucket {
    /// A full bucket at `now`. A rate that is not positive admits nothing;
    /// a burst under 1 is taken as 1.
    pub fn new(settings: RateLimitSettings, now: Instant) -> Self {
        let burst = f64::from(settings.burst.max(1));
        Self {
            rate: if settings.per_second.is_finite() {
                settings.per_second.max(0.0)
            } else {
                0.0
            },
            burst,
            tokens: burst,
            last: now,
        }
    }

    /// Takes a token at `now`, or says how long until one is available.
    pub fn take(&mut self, now: Instant) -> Result<(), Duration> {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.tokens = (self.tokens + elapsed * self.rate).min(self.burst);
        self.last = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            return Ok(());
        }
        if self.rate <= 0.0 {
            return Err(Duration::from_secs(60));
        }
        Err(Duration::from_secs_f64((1.0 - self.tokens) / self.rate))
    }
}

/// Why a request was not admitted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// A cap on requests in flight is reached (503).
    Overloaded,
    /// The source's rate limit is exceeded (429); a token will be
    /// available after this long.
    RateLimited(Duration),
}

/// Held while a request is handled; its slots are free again once dropped.
#[derive(Debug)]
pub struct Admitted {
    _global: OwnedSemaphorePermit,
    _source: OwnedSemaphorePermit,
}

#[derive(Debug)]
struct SourceGate {
    in_flight: Arc<Semaphore>,
    bucket: Option<Mutex<TokenBucket>>,
}

/// The caps and rate limits of every source.
#[derive(Debug)]
pub struct Admission {
    global: Arc<Semaphore>,
    sources: HashMap<String, SourceGate>,
}

impl Admission {
    /// The gates configured in `settings`, with full buckets at `now`.
    pub fn new(settings: &IngestSettings, now: Instant) -> Self {
        let share = default_share(settings);
        let sources = settings
            .sources
            .iter()
            .map(|source| {
                let cap = source.max_in_flight.unwrap_or(share);
                let gate = SourceGate {
                    in_flight: Arc::new(Semaphore::new(cap)),
                    bucket: source
                        .rate_limit
                        .map(|limit| Mutex::new(TokenBucket::new(limit, now))),
                };
                (source.name.clone(), gate)
            })
            .collect();
        Self {
            global: Arc::new(Semaphore::new(settings.max_in_flight)),
            sources,
        }
    }

    /// Admits a request of `source` within the in-flight caps, or refuses
    /// it at once. An unknown source is never admitted (it is answered 404
    /// before this).
    pub fn admit(&self, source: &str) -> Result<Admitted, Refusal> {
        let gate = self.sources.get(source).ok_or(Refusal::Overloaded)?;
        let source_permit = Arc::clone(&gate.in_flight)
            .try_acquire_owned()
            .map_err(|_| Refusal::Overloaded)?;
        let global_permit = Arc::clone(&self.global)
            .try_acquire_owned()
            .map_err(|_| Refusal::Overloaded)?;
        Ok(Admitted {
            _global: global_permit,
            _source: source_permit,
        })
    }

    /// Takes a token from `source`'s rate limit at `now` for a verified
    /// request, or refuses it (a source without a rate limit always has
    /// one).
    pub fn take_token(&self, source: &str, now: Instant) -> Result<(), Refusal> {
        let Some(bucket) = self.sources.get(source).and_then(|g| g.bucket.as_ref()) else {
            return Ok(());
        };
        // A poisoned lock only means another request panicked while it held
        // the bucket; its state is still a valid bucket.
        let mut bucket = bucket
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        bucket.take(now).map_err(Refusal::RateLimited)
    }
}

/// Refuses caps of zero (nothing would ever be admitted) and rate limits
/// that are not a positive, finite rate with a burst of at least one.
pub fn check_settings(settings: &IngestSettings) -> anyhow::Result<()> {
    anyhow::ensure!(
        settings.max_in_flight > 0 && settings.max_in_flight_per_source != Some(0),
        "`max_in_flight` and `max_in_flight_per_source` must be at least 1"
    );
    for source in &settings.sources {
        anyhow::ensure!(
            source.max_in_flight != Some(0),
            "source `{}`: `max_in_flight` must be at least 1",
            source.name
        );
        if let Some(limit) = source.rate_limit {
            anyhow::ensure!(
                limit.per_second.is_finite() && limit.per_second > 0.0 && limit.burst >= 1,
                "source `{}`: `rate_limit` needs `per_second` > 0 and `burst` >= 1",
                source.name
            );
        }
    }
    Ok(())
}

/// The cap of a source that sets none of its own: `max_in_flight_per_source`
/// when set, else an even share of `max_in_flight` (at least one).
pub fn default_share(settings: &IngestSettings) -> usize {
    settings.max_in_flight_per_source.unwrap_or_else(|| {
        let sources = settings.sources.len().max(1);
        (settings.max_in_flight / sources).max(1)
    })
}

/// Whether the sources' caps add up to more than `max_in_flight`: then an
/// attack on some sources can take slots the others were counting on.
pub fn caps_overcommit(settings: &IngestSettings) -> bool {
    let share = default_share(settings);
    let total: usize = settings
        .sources
        .iter()
        .map(|s| s.max_in_flight.unwrap_or(share))
        .sum();
    total > settings.max_in_flight
}

/// `Retry-After` seconds for a wait: rounded up, at least 1.
pub fn retry_after_secs(wait: Duration) -> u64 {
    let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
    secs.max(1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::settings::{ProviderKind, SourceSettings};

    fn settings(global: usize, per_source: usize) -> IngestSettings {
        let mut settings: IngestSettings = toml::from_str("").expect("defaults");
        settings.max_in_flight = global;
        settings.max_in_flight_per_source = Some(per_source);
        let mut limited = SourceSettings::named("limited", ProviderKind::Generic);
        limited.rate_limit = Some(RateLimitSettings {
            per_second: 2.0,
            burst: 2,
        });
        let mut own_cap = SourceSettings::named("own-cap", ProviderKind::Generic);
        own_cap.max_in_flight = Some(1);
        settings.sources = vec![
            SourceSettings::named("a", ProviderKind::Generic),
            SourceSettings::named("b", ProviderKind::Generic),
            limited,
            own_cap,
        ];
        settings
    }

    #[test]
    fn a_source_at_its_cap_leaves_room_for_the_others() {
        let now = Instant::now();
        let admission = Admission::new(&settings(3, 2), now);
        let held: Vec<_> = (0..2)
            .map(|_| admission.admit("a").expect("under the cap"))
            .collect();
        assert_eq!(admission.admit("a").map(|_| ()), Err(Refusal::Overloaded));
        let b = admission.admit("b").expect("another source still gets in");
        assert_eq!(
            admission.admit("b").map(|_| ()),
            Err(Refusal::Overloaded),
            "the global cap (3) is reached"
        );
        drop(held);
        drop(b);
        assert!(admission.admit("a").is_ok(), "slots come back");
        assert!(admission.admit("unknown").is_err());
    }

    #[test]
    fn by_default_each_source_has_its_share_and_the_caps_add_up() {
        let now = Instant::now();
        let mut settings = settings(8, 1);
        settings.max_in_flight_per_source = None;
        settings.sources.truncate(2);
        assert_eq!(default_share(&settings), 4);
        assert!(!caps_overcommit(&settings));
        let admission = Admission::new(&settings, now);
        let held: Vec<_> = (0..4)
            .map(|_| admission.admit("a").expect("a's share"))
            .collect();
        assert!(admission.admit("a").is_err(), "a's share is spent");
        let b: Vec<_> = (0..4)
            .map(|_| admission.admit("b").expect("b keeps its whole share"))
            .collect();
        drop((held, b));
        settings.max_in_flight_per_source = Some(6);
        assert!(caps_overcommit(&settings), "2 x 6 > 8");
    }

    #[test]
    fn a_source_may_set_its_own_cap() {
        let now = Instant::now();
        let admission = Admission::new(&settings(10, 5), now);
        let _held = admission.admit("own-cap").expect("first");
        assert_eq!(
            admission.admit("own-cap").map(|_| ()),
            Err(Refusal::Overloaded)
        );
    }

    #[test]
    fn the_rate_limit_refuses_with_the_time_to_the_next_token() {
        let now = Instant::now();
        let admission = Admission::new(&settings(10, 10), now);
        assert!(admission.take_token("limited", now).is_ok());
        assert!(admission.take_token("limited", now).is_ok());
        assert_eq!(
            admission.take_token("limited", now),
            Err(Refusal::RateLimited(Duration::from_millis(500)))
        );
        assert!(admission.admit("limited").is_ok(), "the caps are apart");
        let later = now + Duration::from_millis(500);
        assert!(admission.take_token("limited", later).is_ok(), "refilled");
        assert!(
            admission.take_token("a", now).is_ok(),
            "other sources unlimited"
        );
    }

    #[test]
    fn buckets_refill_to_their_burst_only() {
        let now = Instant::now();
        let limit = RateLimitSettings {
            per_second: 10.0,
            burst: 3,
        };
        let mut bucket = TokenBucket::new(limit, now);
        let later = now + Duration::from_secs(3600);
        for _ in 0..3 {
            assert!(bucket.take(later).is_ok());
        }
        assert!(bucket.take(later).is_err());
        let mut never = TokenBucket::new(
            RateLimitSettings {
                per_second: f64::NAN,
                burst: 0,
            },
            now,
        );
        assert!(never.take(now).is_ok(), "a burst of at least one");
        assert!(never.take(later).is_err(), "a NaN rate refills nothing");
    }

    #[test]
    fn zero_caps_and_rates_that_admit_nothing_are_start_errors() {
        assert!(check_settings(&settings(10, 5)).is_ok());
        let mut zero = settings(0, 5);
        assert!(check_settings(&zero).is_err(), "max_in_flight = 0");
        zero = settings(10, 0);
        assert!(
            check_settings(&zero).is_err(),
            "max_in_flight_per_source = 0"
        );
        let mut own = settings(10, 5);
        own.sources[0].max_in_flight = Some(0);
        let refused = check_settings(&own).expect_err("a source's cap of 0");
        assert!(refused.to_string().contains("source `a`"), "{refused}");
        for (per_second, burst) in [
            (0.0, 1),
            (-1.0, 1),
            (f64::INFINITY, 1),
            (f64::NAN, 1),
            (1.0, 0),
        ] {
            let mut limited = settings(10, 5);
            limited.sources[0].rate_limit = Some(RateLimitSettings { per_second, burst });
            assert!(
                check_settings(&limited).is_err(),
                "rate_limit {per_second}/s burst {burst}"
            );
        }
    }

    #[test]
    fn retry_after_rounds_up_to_whole_seconds() {
        assert_eq!(retry_after_secs(Duration::ZERO), 1);
        assert_eq!(retry_after_secs(Duration::from_millis(500)), 1);
        assert_eq!(retry_after_secs(Duration::from_millis(1001)), 2);
        assert_eq!(retry_after_secs(Duration::from_secs(7)), 7);
    }
}
