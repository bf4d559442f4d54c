//! [`BatchWindow`]: the batching rule every stage applies to its input, as a
//! value with no IO: a batch closes at `max_records`, or `max_wait` after
//! its first record, whichever comes first; before the first record a poll
//! waits at most `idle_poll`, so the loop sees a stop or a sweep in time.

use std::time::{Duration, Instant};

use crate::kafka::BatchSettings;

/// Longest poll while the batch is empty.
const IDLE_POLL: Duration = Duration::from_millis(100);

/// The state of one batch being read.
#[derive(Debug, Clone)]
pub struct BatchWindow {
    max_records: usize,
    max_wait: Duration,
    records: usize,
    first_at: Option<Instant>,
}

impl BatchWindow {
    /// An empty batch under `settings`.
    pub fn new(settings: &BatchSettings) -> Self {
        Self {
            max_records: settings.max_records(),
            max_wait: settings.max_wait(),
            records: 0,
            first_at: None,
        }
    }

    /// Counts one more record taken at `now`.
    pub fn push(&mut self, now: Instant) {
        self.records += 1;
        let _ = self.first_at.get_or_insert(now);
    }

    /// How long the next poll may wait at `now`, or `None` when the batch
    /// is complete.
    pub fn next_wait(&self, now: Instant) -> Option<Duration> {
        if self.records >= self.max_records {
            return None;
        }
        match self.first_at {
            None => Some(IDLE_POLL),
            Some(first) => {
                let left = (first + self.max_wait).saturating_duration_since(now);
                (!left.is_zero()).then_some(left)
            }
        }
    }

    /// When the first record was taken (`now` for an empty batch).
    pub fn started(&self, now: Instant) -> Instant {
        self.first_at.unwrap_or(now)
    }

    /// Records taken.
    pub fn len(&self) -> usize {
        self.records
    }

    /// Whether no record was taken.
    pub fn is_empty(&self) -> bool {
        self.records == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(max_records: usize, max_wait_ms: u64) -> BatchSettings {
        BatchSettings {
            max_records,
            max_wait_ms,
        }
    }

    #[test]
    fn an_empty_batch_polls_for_the_idle_interval() {
        let window = BatchWindow::new(&settings(10, 5));
        let now = Instant::now();
        assert_eq!(window.next_wait(now), Some(IDLE_POLL));
        assert!(window.is_empty());
        assert_eq!(window.started(now), now);
    }

    #[test]
    fn the_batch_closes_at_its_size_or_its_wait() {
        let start = Instant::now();
        let mut window = BatchWindow::new(&settings(2, 5));
        window.push(start);
        assert_eq!(window.next_wait(start), Some(Duration::from_millis(5)));
        assert_eq!(
            window.next_wait(start + Duration::from_millis(3)),
            Some(Duration::from_millis(2))
        );
        assert_eq!(window.next_wait(start + Duration::from_millis(5)), None);
        window.push(start + Duration::from_millis(1));
        assert_eq!(window.next_wait(start), None, "full");
        assert_eq!((window.len(), window.started(start)), (2, start));
    }

    #[test]
    fn a_zero_size_still_takes_one_record() {
        let mut window = BatchWindow::new(&settings(0, 5));
        let now = Instant::now();
        assert!(window.next_wait(now).is_some());
        window.push(now);
        assert_eq!(window.next_wait(now), None);
    }
}
