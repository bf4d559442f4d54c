//! [`RetryPolicy`]: the one way a stage retries an operation (a produce, a
//! registry call, a database write, a restore). The delay doubles from
//! `initial` up to `max`, each drawn at random from its upper half (so
//! instances that failed together do not retry together); the caller says
//! per error whether it is worth retrying ([`Verdict`]); a stop, the attempt
//! budget or a fatal error ends the retries with the last error
//! ([`GaveUp`]).

use std::fmt::Display;
use std::future::Future;
use std::time::Duration;

use rand::Rng;

use super::Cancel;

/// Backoff and budget of a retried operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// First delay.
    pub initial: Duration,
    /// Longest delay.
    pub max: Duration,
    /// Attempts before giving up (`None`: until stopped).
    pub max_attempts: Option<u32>,
}

/// What the caller makes of one failure.
#[derive(Debug)]
pub enum Verdict<E> {
    /// Transient: try again after the backoff.
    Retry(E),
    /// Retrying cannot help: give up now.
    Fatal(E),
}

/// Why an operation was given up, with its last error.
#[derive(Debug, PartialEq, Eq)]
pub enum GaveUp<E> {
    /// The stage is stopping.
    Stopped(E),
    /// The attempt budget is spent.
    Exhausted {
        /// Attempts made.
        attempts: u32,
        /// The last error.
        error: E,
    },
    /// The error was fatal.
    Fatal(E),
}

impl<E> GaveUp<E> {
    /// The last error.
    pub fn into_error(self) -> E {
        match self {
            Self::Stopped(error) | Self::Fatal(error) | Self::Exhausted { error, .. } => error,
        }
    }

    /// Whether the retries ended because the stage is stopping.
    pub fn is_stopped(&self) -> bool {
        matches!(self, Self::Stopped(_))
    }
}

impl<E: Display> Display for GaveUp<E> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Stopped(e) => write!(f, "stopped while retrying: {e}"),
            Self::Exhausted { attempts, error } => {
                write!(f, "gave up after {attempts} attempts: {error}")
            }
            Self::Fatal(e) => write!(f, "{e}"),
        }
    }
}

impl<E: std::fmt::Debug + Display> std::error::Error for GaveUp<E> {}

impl RetryPolicy {
    /// 100 ms doubling to 10 s, until stopped: for what must eventually
    /// succeed (the broker, the database) and is safe to repeat.
    pub const UNTIL_STOPPED: Self = Self {
        initial: Duration::from_millis(100),
        max: Duration::from_secs(10),
        max_attempts: None,
    };

    /// This policy with an attempt budget.
    pub const fn attempts(self, max_attempts: u32) -> Self {
        Self {
            max_attempts: Some(max_attempts),
            ..self
        }
    }

    /// The capped delay before attempt `attempt + 1` (after `attempt`
    /// failures, counting from 1), before jitter.
    pub fn ceiling(&self, attempt: u32) -> Duration {
        let doublings = attempt.saturating_sub(1).min(30);
        self.initial
            .saturating_mul(1u32 << doublings)
            .min(self.max)
            .max(self.initial.min(self.max))
    }

    /// The delay after `attempt` failures: uniform in the upper half of
    /// [`Self::ceiling`].
    pub fn delay(&self, attempt: u32) -> Duration {
        let ceiling = self.ceiling(attempt);
        let half = ceiling / 2;
        let nanos = u64::try_from((ceiling - half).as_nanos()).unwrap_or(u64::MAX);
        half + Duration::from_nanos(rand::rng().random_range(0..=nanos))
    }

    fn after_failure<E: Display>(
        &self,
        what: &str,
        attempt: u32,
        verdict: Verdict<E>,
    ) -> Result<(E, Duration), GaveUp<E>> {
        let error = match verdict {
            Verdict::Fatal(error) => return Err(GaveUp::Fatal(error)),
            Verdict::Retry(error) => error,
        };
        if self.max_attempts.is_some_and(|max| attempt >= max) {
            return Err(GaveUp::Exhausted {
                attempts: attempt,
                error,
            });
        }
        let delay = self.delay(attempt);
        tracing::warn!(%error, attempt, retry_in_ms = delay.as_millis() as u64, "{what} failed; retrying");
        Ok((error, delay))
    }

    /// Runs `op` (given the attempt number, from 1) on this thread until it
    /// succeeds or the retries are given up. A stop is checked before each
    /// attempt and cuts each backoff short.
    pub fn run_blocking<T, E: Display>(
        &self,
        cancel: &Cancel,
        what: &str,
        mut op: impl FnMut(u32) -> Result<T, Verdict<E>>,
    ) -> Result<T, GaveUp<E>> {
        let mut attempt = 1;
        loop {
            match op(attempt) {
                Ok(value) => return Ok(value),
                Err(verdict) => {
                    let (error, delay) = self.after_failure(what, attempt, verdict)?;
                    if cancel.is_cancelled() || cancel.sleep_blocking(delay) {
                        return Err(GaveUp::Stopped(error));
                    }
                }
            }
            attempt += 1;
        }
    }

    /// [`Self::run_blocking`] for async operations.
    pub async fn run<T, E: Display, F, Fut>(
        &self,
        cancel: &Cancel,
        what: &str,
        mut op: F,
    ) -> Result<T, GaveUp<E>>
    where
        F: FnMut(u32) -> Fut,
        Fut: Future<Output = Result<T, Verdict<E>>>,
    {
        let mut attempt = 1;
        loop {
            match op(attempt).await {
                Ok(value) => return Ok(value),
                Err(verdict) => {
                    let (error, delay) = self.after_failure(what, attempt, verdict)?;
                    if cancel.is_cancelled() || cancel.sleep(delay).await {
                        return Err(GaveUp::Stopped(error));
                    }
                }
            }
            attempt += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FAST: RetryPolicy = RetryPolicy {
        initial: Duration::from_millis(1),
        max: Duration::from_millis(4),
        max_attempts: None,
    };

    #[test]
    fn the_delay_doubles_up_to_the_cap_with_jitter_in_the_upper_half() {
        let policy = RetryPolicy::UNTIL_STOPPED;
        assert_eq!(policy.ceiling(1), Duration::from_millis(100));
        assert_eq!(policy.ceiling(2), Duration::from_millis(200));
        assert_eq!(policy.ceiling(8), Duration::from_secs(10));
        assert_eq!(policy.ceiling(u32::MAX), Duration::from_secs(10));
        for attempt in [1, 3, 40] {
            let ceiling = policy.ceiling(attempt);
            for _ in 0..100 {
                let delay = policy.delay(attempt);
                assert!(
                    delay >= ceiling / 2 && delay <= ceiling,
                    "{delay:?} vs {ceiling:?}"
                );
            }
        }
    }

    #[test]
    fn transient_failures_are_retried_until_success() {
        let result: Result<u32, GaveUp<String>> =
            FAST.run_blocking(&Cancel::new(), "test", |attempt| {
                if attempt < 4 {
                    Err(Verdict::Retry(format!("failure {attempt}")))
                } else {
                    Ok(attempt)
                }
            });
        assert_eq!(result, Ok(4));
    }

    #[test]
    fn a_fatal_error_ends_at_once_and_the_budget_ends_the_rest() {
        let mut calls = 0;
        let fatal: Result<(), _> = FAST.run_blocking(&Cancel::new(), "test", |_| {
            calls += 1;
            Err(Verdict::Fatal("incompatible"))
        });
        assert_eq!((fatal, calls), (Err(GaveUp::Fatal("incompatible")), 1));
        let exhausted: Result<(), _> =
            FAST.attempts(3)
                .run_blocking(&Cancel::new(), "test", |_| Err(Verdict::Retry("down")));
        assert_eq!(
            exhausted,
            Err(GaveUp::Exhausted {
                attempts: 3,
                error: "down"
            })
        );
    }

    #[test]
    fn a_stop_ends_the_retries_with_the_last_error() {
        let cancel = Cancel::new();
        let stopper = cancel.clone();
        let result: Result<(), _> =
            RetryPolicy::UNTIL_STOPPED.run_blocking(&cancel, "test", |attempt| {
                if attempt == 2 {
                    stopper.cancel();
                }
                Err(Verdict::Retry(attempt))
            });
        assert_eq!(result, Err(GaveUp::Stopped(2)));
    }

    #[tokio::test]
    async fn the_async_run_behaves_the_same() {
        let cancel = Cancel::new();
        let result: Result<u32, GaveUp<&str>> = FAST
            .run(&cancel, "test", |attempt| async move {
                if attempt < 3 {
                    Err(Verdict::Retry("not yet"))
                } else {
                    Ok(attempt)
                }
            })
            .await;
        assert_eq!(result, Ok(3));
        cancel.cancel();
        let stopped: Result<(), _> = RetryPolicy::UNTIL_STOPPED
            .run(&cancel, "test", |_| async { Err(Verdict::Retry("down")) })
            .await;
        assert_eq!(stopped, Err(GaveUp::Stopped("down")));
    }
}
