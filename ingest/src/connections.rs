//! The public listener's connection cap, and which connection gives way.
//!
//! At most `max_connections` connections are open. When a new one arrives
//! at the cap, a connection that is not in the middle of a request is
//! closed to make room: first the oldest that has not yet sent a whole
//! request (a slow-headers attacker, or a socket held open and silent),
//! then the oldest idle keep-alive one. Holding sockets open therefore gains
//! an attacker nothing over a provider that actually sends, and a provider's
//! kept-alive connection is the last to go. Only when every connection is
//! handling a request is the new one refused (with a 503); those are bounded
//! by the in-flight caps and the body read deadline.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use tokio::sync::Notify;

#[derive(Debug)]
struct Entry {
    opened: Instant,
    busy: Arc<AtomicBool>,
    served: Arc<AtomicBool>,
    close: Arc<Notify>,
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
    inner: Mutex<Inner>,
}

/// One admitted connection: its place in the table until dropped.
#[derive(Debug)]
pub struct ConnectionSlot {
    id: u64,
    table: Arc<ConnectionTable>,
    /// Set while the connection is handling a request.
    pub busy: Arc<AtomicBool>,
    /// Set once the connection has sent a whole request head.
    pub served: Arc<AtomicBool>,
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

    /// Admits a connection opened at `now`, closing the oldest connection
    /// not handling a request if the table is full.
    pub fn admit(self: &Arc<Self>, now: Instant) -> Result<ConnectionSlot, Full> {
        let mut inner = self.lock();
        if inner.open.len() >= self.cap {
            let victim = inner
                .open
                .iter()
                .filter(|(_, e)| !e.busy.load(Ordering::Acquire))
                .min_by_key(|(id, e)| (e.served.load(Ordering::Acquire), e.opened, **id))
                .map(|(id, _)| *id)
                .ok_or(Full)?;
            if let Some(entry) = inner.open.remove(&victim) {
                entry.close.notify_one();
            }
        }
        let id = inner.next_id;
        inner.next_id += 1;
        let busy = Arc::new(AtomicBool::new(false));
        let served = Arc::new(AtomicBool::new(false));
        let close = Arc::new(Notify::new());
        let _ = inner.open.insert(
            id,
            Entry {
                opened: now,
                busy: Arc::clone(&busy),
                served: Arc::clone(&served),
                close: Arc::clone(&close),
            },
        );
        Ok(ConnectionSlot {
            id,
            table: Arc::clone(self),
            busy,
            served,
            close,
        })
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[tokio::test]
    async fn the_oldest_idle_connection_gives_way_at_the_cap() {
        let table = ConnectionTable::new(2);
        let t0 = Instant::now();
        let first = table.admit(t0).expect("room");
        let second = table.admit(t0 + Duration::from_millis(1)).expect("room");
        let third = table
            .admit(t0 + Duration::from_millis(2))
            .expect("the oldest idle one gives way");
        assert_eq!(table.len(), 2);
        // The first was told to close, and its notification waits for it.
        tokio::time::timeout(Duration::from_secs(1), first.close.notified())
            .await
            .expect("first is closed");
        drop(first);
        assert_eq!(table.len(), 2, "its slot was already taken over");
        second.busy.store(true, Ordering::Release);
        third.busy.store(true, Ordering::Release);
        assert_eq!(
            table.admit(t0 + Duration::from_millis(3)).map(|_| ()),
            Err(Full),
            "every connection is in a request"
        );
        third.busy.store(false, Ordering::Release);
        let _fourth = table
            .admit(t0 + Duration::from_millis(4))
            .expect("third is idle again");
        drop(second);
        assert_eq!(table.len(), 1);
    }

    #[tokio::test]
    async fn a_connection_that_never_sent_a_request_goes_before_a_kept_alive_one() {
        let table = ConnectionTable::new(2);
        let t0 = Instant::now();
        let provider = table.admit(t0).expect("room");
        provider.served.store(true, Ordering::Release);
        let silent = table.admit(t0 + Duration::from_millis(1)).expect("room");
        let _newcomer = table
            .admit(t0 + Duration::from_millis(2))
            .expect("the silent one gives way");
        tokio::time::timeout(Duration::from_secs(1), silent.close.notified())
            .await
            .expect("the silent connection is closed, not the older kept-alive one");
        assert_eq!(table.len(), 2);
        drop(silent);
        drop(provider);
    }
}
