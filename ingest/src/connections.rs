//! The public listener's connection cap, and which connection gives way.
//!
//! At most `max_connections` connections are open. When a new one arrives
//! at the cap, a connection that is not in the middle of a request is
//! closed to make room: first the one idle the longest among those that
//! have not yet sent a whole request (a slow-headers attacker, or a socket
//! held open and silent), then the idle keep-alive connection used the
//! longest ago. Holding sockets open therefore gains an attacker nothing
//! over a provider that actually sends, and a provider's kept-alive
//! connection, in use every few seconds, is among the last to go. Only when every connection is
//! handling a request is the new one refused (with a 503); those are bounded
//! by the in-flight caps and the body read deadline.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use tokio::sync::Notify;

/// How long a connection may stay silent before its head is complete and
/// still be kept at the cap.
pub const SILENT_GRACE: std::time::Duration = std::time::Duration::from_millis(250);

/// How long a keep-alive connection must have been idle to be closed at
/// the cap.
pub const IDLE_GRACE: std::time::Duration = std::time::Duration::from_secs(2);

#[derive(Debug)]
struct Entry {
    activity: Arc<Activity>,
    close: Arc<Notify>,
}

/// What a connection is doing, updated by its task and read by the table.
#[derive(Debug)]
pub struct Activity {
    epoch: Instant,
    /// Set while the connection is handling a request.
    busy: AtomicBool,
    /// Set once the connection has sent a whole request head.
    served: AtomicBool,
    /// When it last started or finished a request (or opened), ms since
    /// the table's epoch.
    last_ms: AtomicU64,
}

impl Activity {
    fn ms_at(&self, at: Instant) -> u64 {
        u64::try_from(at.saturating_duration_since(self.epoch).as_millis()).unwrap_or(u64::MAX)
    }

    /// A request has arrived on the connection, at `now`.
    pub fn request_started(&self, now: Instant) {
        self.busy.store(true, Ordering::Release);
        self.served.store(true, Ordering::Release);
        self.last_ms.store(self.ms_at(now), Ordering::Release);
    }

    /// Its answer is ready, at `now`.
    pub fn request_finished(&self, now: Instant) {
        self.last_ms.store(self.ms_at(now), Ordering::Release);
        self.busy.store(false, Ordering::Release);
    }

    /// The eviction order at `now`: never-served before served, then least
    /// recently active; `None` while busy or within its grace.
    fn eviction_key(&self, now: Instant) -> Option<(bool, u64)> {
        if self.busy.load(Ordering::Acquire) {
            return None;
        }
        let served = self.served.load(Ordering::Acquire);
        let last = self.last_ms.load(Ordering::Acquire);
        let grace = if served { IDLE_GRACE } else { SILENT_GRACE };
        let grace_ms = u64::try_from(grace.as_millis()).unwrap_or(u64::MAX);
        (self.ms_at(now).saturating_sub(last) >= grace_ms).then_some((served, last))
    }
}

#[derive(Debug, Default)]
struct Inner {
    next_id: u64,
    open: HashMap<u64, Entry>,
}

/// The open connections of the public listener.
#[derive(Debug)]
pub struct ConnectionTable {
    cap: usize,
    epoch: Instant,
    inner: Mutex<Inner>,
}

/// One admitted connection: its place in the table until dropped.
#[derive(Debug)]
pub struct ConnectionSlot {
    id: u64,
    table: Arc<ConnectionTable>,
    /// What the connection is doing.
    pub activity: Arc<Activity>,
    /// Notified when the table closes this connection to make room.
    pub close: Arc<Notify>,
}

impl Drop for ConnectionSlot {
    fn drop(&mut self) {
        let _ = self.table.lock().open.remove(&self.id);
    }
}

/// Every connection is handling a request: the new one is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Full;

impl ConnectionTable {
    /// A table of at most `cap` connections (at least one).
    pub fn new(cap: usize) -> Arc<Self> {
        Arc::new(Self {
            cap: cap.max(1),
            epoch: Instant::now(),
            inner: Mutex::new(Inner::default()),
        })
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // The table holds plain data; a panic elsewhere leaves it valid.
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// How many connections are open.
    pub fn len(&self) -> usize {
        self.lock().open.len()
    }

    /// Whether no connection is open.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Closes every open connection (at the end of the drain).
    pub fn close_all(&self) {
        for entry in self.lock().open.values() {
            entry.close.notify_one();
        }
    }

    /// Admits a connection opened at `now`, closing the oldest connection
    /// not handling a request if the table is full.
    pub fn admit(self: &Arc<Self>, now: Instant) -> Result<ConnectionSlot, Full> {
        let mut inner = self.lock();
        if inner.open.len() >= self.cap {
            let victim = inner
                .open
                .iter()
                .filter_map(|(id, e)| e.activity.eviction_key(now).map(|key| (key, *id)))
                .min()
                .map(|(_, id)| id)
                .ok_or(Full)?;
            if let Some(entry) = inner.open.remove(&victim) {
                entry.close.notify_one();
            }
        }
        let id = inner.next_id;
        inner.next_id += 1;
        let activity = Arc::new(Activity {
            epoch: self.epoch,
            busy: AtomicBool::new(false),
            served: AtomicBool::new(false),
            last_ms: AtomicU64::new(0),
        });
        activity
            .last_ms
            .store(activity.ms_at(now), Ordering::Release);
        let close = Arc::new(Notify::new());
        let _ = inner.open.insert(
            id,
            Entry {
                activity: Arc::clone(&activity),
                close: Arc::clone(&close),
            },
        );
        Ok(ConnectionSlot {
            id,
            table: Arc::clone(self),
            activity,
            close,
        })
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[tokio::test]
    async fn the_longest_silent_connection_gives_way_at_the_cap() {
        let table = ConnectionTable::new(2);
        let t0 = Instant::now();
        let first = table.admit(t0).expect("room");
        let second = table.admit(t0 + ms(1)).expect("room");
        assert_eq!(
            table.admit(t0 + ms(100)).map(|_| ()),
            Err(Full),
            "both are within their grace"
        );
        let third = table
            .admit(t0 + ms(300))
            .expect("the longest silent one gives way");
        assert_eq!(table.len(), 2);
        tokio::time::timeout(Duration::from_secs(1), first.close.notified())
            .await
            .expect("first is closed");
        drop(first);
        assert_eq!(table.len(), 2, "its slot was already taken over");
        second.activity.request_started(t0 + ms(301));
        third.activity.request_started(t0 + ms(301));
        assert_eq!(
            table.admit(t0 + ms(10_000)).map(|_| ()),
            Err(Full),
            "every connection is in a request"
        );
        third.activity.request_finished(t0 + ms(302));
        assert_eq!(
            table.admit(t0 + ms(1_000)).map(|_| ()),
            Err(Full),
            "third was active a moment ago"
        );
        let _fourth = table
            .admit(t0 + ms(3_000))
            .expect("third has been idle long enough");
        drop(second);
        assert_eq!(table.len(), 1);
    }

    #[tokio::test]
    async fn a_connection_that_never_sent_a_request_goes_before_a_kept_alive_one() {
        let table = ConnectionTable::new(2);
        let t0 = Instant::now();
        let provider = table.admit(t0).expect("room");
        provider.activity.request_started(t0);
        provider.activity.request_finished(t0);
        let silent = table.admit(t0 + ms(1)).expect("room");
        let _newcomer = table
            .admit(t0 + ms(5_000))
            .expect("the silent one gives way");
        tokio::time::timeout(Duration::from_secs(1), silent.close.notified())
            .await
            .expect("the silent connection is closed, not the older kept-alive one");
        assert_eq!(table.len(), 2);
    }

    #[tokio::test]
    async fn among_idle_connections_the_least_recently_used_goes_first() {
        let table = ConnectionTable::new(2);
        let t0 = Instant::now();
        // The provider's connection is the oldest, but it was used last.
        let provider = table.admit(t0).expect("room");
        let stranger = table.admit(t0 + ms(1)).expect("room");
        stranger.activity.request_started(t0 + ms(2));
        stranger.activity.request_finished(t0 + ms(3));
        provider.activity.request_started(t0 + ms(1_000));
        provider.activity.request_finished(t0 + ms(1_001));
        assert_eq!(
            table.admit(t0 + ms(1_500)).map(|_| ()),
            Err(Full),
            "the provider is within its grace, the stranger too"
        );
        let _newcomer = table.admit(t0 + ms(2_600)).expect("room is made");
        tokio::time::timeout(Duration::from_secs(1), stranger.close.notified())
            .await
            .expect("the stranger, idle longest, is closed");
    }
}
