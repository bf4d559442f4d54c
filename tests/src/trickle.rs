//! Webhooks that keep coming while a test injects faults: two senders
//! deliver numbered generic webhooks (`crate::numbered_webhook`), each until
//! its 200, pausing between deliveries, until stopped. The exactly-once
//! tests then check every number sent.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use crate::IngestClient;

/// Two senders of numbered webhooks.
pub struct Trickle {
    stop: Arc<AtomicBool>,
    next: Arc<AtomicUsize>,
    senders: Vec<tokio::task::JoinHandle<()>>,
}

impl Trickle {
    /// Starts sending webhooks tagged `tag` through `client`, each sender
    /// pausing `pause` after each 200.
    pub fn start(client: IngestClient, tag: &'static str, pause: Duration) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let next = Arc::new(AtomicUsize::new(0));
        let senders = (0..2)
            .map(|_| {
                let (client, stop, next) = (client.clone(), Arc::clone(&stop), Arc::clone(&next));
                tokio::spawn(async move {
                    while !stop.load(Ordering::SeqCst) {
                        let i = next.fetch_add(1, Ordering::SeqCst);
                        client
                            .deliver_generic(&crate::numbered_webhook(tag, i))
                            .await;
                        tokio::time::sleep(pause).await;
                    }
                })
            })
            .collect();
        Self {
            stop,
            next,
            senders,
        }
    }

    /// Stops sending, waits for the deliveries in flight, and returns how
    /// many webhooks were sent (numbered `0..n`).
    pub async fn stop(self) -> usize {
        self.stop.store(true, Ordering::SeqCst);
        for sender in self.senders {
            sender.await.expect("every delivery got its 200");
        }
        self.next.load(Ordering::SeqCst)
    }
}
