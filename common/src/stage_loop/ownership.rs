//! [`check_ownership`]: the IO half of [`super::Fence`]. Before a write it
//! asks the fence; when the fence wants a recheck, it commits offsets this
//! member already owns, synchronously: the group coordinator refuses a
//! commit from a member it replaced, which is the proof a stalled instance
//! needs before it writes again.

use std::time::Instant;

use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext};

use super::fence::{Abandon, BeforeWrite, Fence};
use crate::kafka::offsets_list;

/// Whether the batch must be abandoned before its next write: `None` to
/// write. `positions` are offsets of `topic` this member owns and has not
/// passed (each owned partition's first offset in the batch): committing
/// them moves nothing, and a commit for a partition owned elsewhere would
/// move its offset back, so the caller leaves those out ([`first_offsets`]).
pub fn check_ownership<C: ConsumerContext>(
    fence: &mut Fence,
    consumer: &BaseConsumer<C>,
    topic: &str,
    positions: &[(i32, i64)],
) -> anyhow::Result<Option<Abandon>> {
    // A fatal consumer error (librdkafka raises one when another member
    // took this one's static identity, `FENCED_INSTANCE_ID`) does not stop
    // the fetcher: polls still return records, the assignment is not
    // reported lost, and only the commits fail. The member is out of its
    // group, so nothing more may be written: the stage ends.
    if let Some((code, reason)) = consumer.client().fatal_error() {
        anyhow::bail!("the consumer failed fatally ({code:?}): {reason}");
    }
    match fence.before_write(Instant::now(), consumer.assignment_lost()) {
        BeforeWrite::Proceed => Ok(None),
        BeforeWrite::Abandon(reason) => Ok(Some(reason)),
        BeforeWrite::Recheck => {
            let tpl = offsets_list(topic, positions)?;
            match consumer.commit(&tpl, CommitMode::Sync) {
                Ok(()) => {
                    fence.confirmed(Instant::now());
                    Ok(None)
                }
                Err(e) => {
                    tracing::warn!(error = %e, "the group coordinator refused this member");
                    Ok(Some(Abandon::Lost))
                }
            }
        }
    }
}

/// The first offset of each partition in `records` (`(partition, offset)`
/// in batch order) among the partitions `owned`, in the order first seen.
pub fn first_offsets(
    records: impl IntoIterator<Item = (i32, i64)>,
    owned: &[i32],
) -> Vec<(i32, i64)> {
    let mut first: Vec<(i32, i64)> = Vec::new();
    for (partition, offset) in records {
        if owned.contains(&partition) && !first.iter().any(|(p, _)| *p == partition) {
            first.push((partition, offset));
        }
    }
    first
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_owned_partitions_at_their_first_offset() {
        let records = [(0, 10), (1, 5), (0, 11), (2, 7), (1, 6)];
        assert_eq!(first_offsets(records, &[0, 1]), [(0, 10), (1, 5)]);
        assert!(first_offsets(records, &[]).is_empty());
    }
}
