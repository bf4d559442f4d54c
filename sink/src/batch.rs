//! [`Batch`]: what the sink has read and not yet committed, as a value:
//! the decoded events with the consumed record of each (a row PostgreSQL
//! refuses is dead-lettered from it), the next offset of every partition
//! the batch covers, and one span per record read. Pure: no IO.

use std::collections::{HashMap, HashSet};
use std::time::Instant;

use rdkafka::message::OwnedMessage;

use crate::rows::EventToWrite;

/// Records read but not yet committed to the store.
#[derive(Debug, Default)]
pub struct Batch {
    /// The decoded events, in the order read.
    pub events: Vec<EventToWrite>,
    /// The consumed record of each event (same index), for dead letters.
    pub originals: Vec<OwnedMessage>,
    /// Partition → the next offset to read once this batch is committed.
    pub next_offsets: HashMap<i32, i64>,
    /// When the first record was read.
    pub started: Option<Instant>,
    /// One span per record read (partition, span), continuing its webhook's
    /// trace; they close when the batch is dropped, after its commit.
    pub spans: Vec<(i32, tracing::Span)>,
}

impl Batch {
    /// Adds a decoded event read at `now`.
    pub fn push(
        &mut self,
        event: EventToWrite,
        original: OwnedMessage,
        span: tracing::Span,
        now: Instant,
    ) {
        let (partition, offset) = (event.position.partition, event.position.offset);
        self.advance(partition, offset, span, now);
        self.events.push(event);
        self.originals.push(original);
    }

    /// Counts a record that needs no row (its dead letter is acknowledged):
    /// committing the batch moves past it.
    pub fn advance(&mut self, partition: i32, offset: i64, span: tracing::Span, now: Instant) {
        let _ = self.started.get_or_insert(now);
        let _ = self.next_offsets.insert(partition, offset + 1);
        self.spans.push((partition, span));
    }

    /// Whether the batch covers no record.
    pub fn is_empty(&self) -> bool {
        self.next_offsets.is_empty() && self.events.is_empty()
    }

    /// Moves the records of `partitions` out into a batch of their own.
    pub fn take_partitions(&mut self, partitions: &[i32]) -> Batch {
        let mine = |p: i32| partitions.contains(&p);
        let mut taken = Batch {
            started: self.started,
            ..Batch::default()
        };
        let events = std::mem::take(&mut self.events);
        let originals = std::mem::take(&mut self.originals);
        for (event, original) in events.into_iter().zip(originals) {
            let target = if mine(event.position.partition) {
                &mut taken
            } else {
                &mut *self
            };
            target.events.push(event);
            target.originals.push(original);
        }
        let (moved, kept): (Vec<_>, Vec<_>) = std::mem::take(&mut self.spans)
            .into_iter()
            .partition(|(p, _)| mine(*p));
        (taken.spans, self.spans) = (moved, kept);
        taken.next_offsets = self
            .next_offsets
            .iter()
            .filter(|(p, _)| mine(**p))
            .map(|(p, o)| (*p, *o))
            .collect();
        self.next_offsets.retain(|p, _| !mine(*p));
        if self.next_offsets.is_empty() {
            self.started = None;
        }
        taken
    }

    /// Removes the rows at `indices` (dead-lettered); the offsets still
    /// cover them, so committing the batch moves past them.
    pub fn remove_rows(&mut self, indices: &HashSet<usize>) {
        let events = std::mem::take(&mut self.events);
        let originals = std::mem::take(&mut self.originals);
        (self.events, self.originals) = events
            .into_iter()
            .zip(originals)
            .enumerate()
            .filter(|(index, _)| !indices.contains(index))
            .map(|(_, pair)| pair)
            .unzip();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fake::batch_of as batch;

    #[test]
    fn a_partition_moves_out_with_its_rows_offsets_and_spans() {
        let mut all = batch(&[(0, 1), (1, 7), (0, 2), (1, 8)]);
        let zero = all.take_partitions(&[0]);
        let offsets = |b: &Batch| {
            b.events
                .iter()
                .map(|e| e.position.offset)
                .collect::<Vec<_>>()
        };
        assert_eq!(offsets(&zero), [1, 2]);
        assert_eq!(zero.next_offsets, HashMap::from([(0, 3)]));
        assert_eq!((zero.originals.len(), zero.spans.len()), (2, 2));
        assert_eq!(offsets(&all), [7, 8]);
        assert_eq!(all.next_offsets, HashMap::from([(1, 9)]));
        let one = all.take_partitions(&[1]);
        assert!(all.is_empty() && all.started.is_none());
        assert_eq!(one.events.len(), 2);
    }

    #[test]
    fn removed_rows_stay_covered_by_the_offsets() {
        let mut all = batch(&[(0, 1), (0, 2), (0, 3)]);
        all.remove_rows(&HashSet::from([1]));
        let offsets: Vec<i64> = all.originals.iter().map(rdkafka::Message::offset).collect();
        assert_eq!(offsets, [1, 3]);
        assert_eq!(all.events.len(), 2);
        assert_eq!(all.next_offsets, HashMap::from([(0, 4)]));
    }
}
