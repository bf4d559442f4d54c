//! [`Cancel`]: the stop signal of a stage, set once (by SIGTERM, Ctrl-C, a
//! fatal error or a test) and seen by every loop, blocking or async. Its
//! waits return early when it is set, so no retry or backoff outlives a stop.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::time::{Duration, Instant};

use tokio::sync::Notify;

#[derive(Debug, Default)]
struct Inner {
    cancelled: AtomicBool,
    /// Wakes blocking sleepers.
    lock: Mutex<()>,
    condvar: Condvar,
    /// Wakes async sleepers.
    notify: Notify,
}

/// A cloneable stop signal; all clones see the same state.
#[derive(Debug, Clone, Default)]
pub struct Cancel {
    inner: Arc<Inner>,
}

impl Cancel {
    /// A signal not yet set.
    pub fn new() -> Self {
        Self::default()
    }

    /// A signal set when the process receives SIGTERM or SIGINT; the
    /// listener runs on `runtime`.
    pub fn on_shutdown_signal(runtime: &tokio::runtime::Handle) -> Self {
        let cancel = Self::new();
        let on_signal = cancel.clone();
        drop(runtime.spawn(async move {
            crate::shutdown::signal().await;
            on_signal.cancel();
        }));
        cancel
    }

    /// Sets the signal and wakes every sleeper. Idempotent.
    pub fn cancel(&self) {
        self.inner.cancelled.store(true, Ordering::SeqCst);
        let _guard = self
            .inner
            .lock
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        self.inner.condvar.notify_all();
        self.inner.notify.notify_waiters();
    }

    /// Whether the signal is set.
    pub fn is_cancelled(&self) -> bool {
        self.inner.cancelled.load(Ordering::SeqCst)
    }

    /// Blocks the thread for `duration` or until the signal is set.
    /// Returns `true` when the signal is set.
    pub fn sleep_blocking(&self, duration: Duration) -> bool {
        let deadline = Instant::now() + duration;
        let mut guard = self
            .inner
            .lock
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        while !self.is_cancelled() {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            guard = self
                .inner
                .condvar
                .wait_timeout(guard, left)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
        self.is_cancelled()
    }

    /// Waits for `duration` or until the signal is set. Returns `true` when
    /// the signal is set.
    pub async fn sleep(&self, duration: Duration) -> bool {
        tokio::select! {
            () = self.cancelled() => true,
            () = tokio::time::sleep(duration) => self.is_cancelled(),
        }
    }

    /// Resolves once the signal is set.
    pub async fn cancelled(&self) {
        loop {
            let notified = self.inner.notify.notified();
            tokio::pin!(notified);
            // Registered before the check, so a `cancel` in between is seen.
            let _ = notified.as_mut().enable();
            if self.is_cancelled() {
                return;
            }
            notified.await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_blocking_sleep_ends_at_once_when_cancelled() {
        let cancel = Cancel::new();
        assert!(!cancel.sleep_blocking(Duration::from_millis(10)));
        let other = cancel.clone();
        let started = Instant::now();
        let thread = std::thread::spawn(move || other.sleep_blocking(Duration::from_secs(30)));
        std::thread::sleep(Duration::from_millis(50));
        cancel.cancel();
        assert!(thread.join().expect("the sleeper returns"));
        assert!(started.elapsed() < Duration::from_secs(5));
        assert!(cancel.sleep_blocking(Duration::from_secs(30)), "stays set");
    }

    #[tokio::test]
    async fn an_async_sleep_ends_at_once_when_cancelled() {
        let cancel = Cancel::new();
        assert!(!cancel.sleep(Duration::from_millis(10)).await);
        let other = cancel.clone();
        let sleeper = tokio::spawn(async move { other.sleep(Duration::from_secs(30)).await });
        tokio::time::sleep(Duration::from_millis(20)).await;
        cancel.cancel();
        let woke = tokio::time::timeout(Duration::from_secs(5), sleeper)
            .await
            .expect("wakes before the timeout")
            .expect("the task runs");
        assert!(woke);
        cancel.cancelled().await;
    }
}
