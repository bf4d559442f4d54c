//! [`poll_batch`]: reading one batch from a group consumer under the
//! [`super::BatchWindow`] rule, with the two instants an output-first
//! stage fences by: when the batch's first record was read, and when the
//! last poll returned (the last proof that this member is in its group).

use std::time::Instant;

use rdkafka::consumer::{BaseConsumer, ConsumerContext};
use rdkafka::message::BorrowedMessage;

use super::BatchWindow;
use crate::kafka::BatchSettings;

/// One batch read by [`poll_batch`].
pub struct Polled<'a> {
    /// The records, in the order read (empty when nothing came).
    pub records: Vec<BorrowedMessage<'a>>,
    /// When the first record was read (the end of the poll when none was).
    pub started: Instant,
    /// When the last poll returned.
    pub polled_at: Instant,
}

/// Polls one batch: up to `settings.max_records`, waiting at most
/// `settings.max_wait` after the first record. Consumer errors are logged
/// and skipped.
pub fn poll_batch<'a, C: ConsumerContext>(
    consumer: &'a BaseConsumer<C>,
    settings: &BatchSettings,
) -> Polled<'a> {
    let mut window = BatchWindow::new(settings);
    let mut records = Vec::new();
    let mut polled_at = Instant::now();
    while let Some(wait) = window.next_wait(Instant::now()) {
        let polled = consumer.poll(wait);
        polled_at = Instant::now();
        match polled {
            Some(Ok(message)) => {
                records.push(message);
                window.push(polled_at);
            }
            Some(Err(e)) => tracing::warn!(error = %e, "consumer error"),
            None => break,
        }
    }
    Polled {
        records,
        started: window.started(polled_at),
        polled_at,
    }
}
