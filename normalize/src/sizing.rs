//! Normalize's size decisions: which outputs are too large to send, and what
//! to do when a delivery round refuses some records.
//!
//! A raw record whose event would exceed the size limit is dead-lettered
//! (`error.kind = too_large`) instead of being sent and refused forever.
//! The check is made before sending ([`first_oversized`]) against the
//! producer's `message_max_bytes`, counted the way librdkafka counts it,
//! minus the batch header and what dedupe adds when it forwards the event
//! ([`event_budget`]). If the broker still refuses a record for its size
//! (a topic whose `max.message.bytes` is below the producer's limit), the
//! record is retried alone, since a broker refuses whole batches, and
//! refused alone it is permanent: [`plan`] turns it into the raw record's
//! dead letter, a dead letter into a minimal one, and gives up only on a
//! minimal one (logged as an error). Anything else is transient: only the
//! records that failed are sent again, so nothing is lost and nothing
//! already acknowledged is sent twice.

use std::collections::HashSet;

use common::produce::{FORWARDING_ALLOWANCE, OutRecord, record_budget};

/// The largest [`OutRecord::wire_size`] of an event: the record budget
/// minus [`FORWARDING_ALLOWANCE`], so dedupe's copy fits too.
pub(crate) fn event_budget(message_max_bytes: usize) -> usize {
    record_budget(message_max_bytes).saturating_sub(FORWARDING_ALLOWANCE)
}

/// The first of one raw record's events over `budget`: its index and size.
pub(crate) fn first_oversized(records: &[OutRecord], budget: usize) -> Option<(usize, usize)> {
    records
        .iter()
        .map(OutRecord::wire_size)
        .enumerate()
        .find(|(_, size)| *size > budget)
}

/// Names an event for an `error.message`: its position among its raw
/// record's `count` events and its dedupe key.
pub(crate) fn describe(index: usize, count: usize, record: &OutRecord) -> String {
    let key = record
        .headers
        .iter()
        .find(|(k, _)| k == common::headers::DEDUPE_KEY)
        .map(|(_, v)| String::from_utf8_lossy(v).into_owned())
        .unwrap_or_default();
    format!("event {} of {count} (dedupe key `{key}`)", index + 1)
}

/// The `error.message` of an event found too large before sending.
pub(crate) fn too_large_reason(
    event: &str,
    topic: &str,
    size: usize,
    message_max_bytes: usize,
) -> String {
    format!(
        "{event} for {topic} would be {size} bytes (key + value + headers + framing, as \
         librdkafka counts them), over the {}-byte budget: message_max_bytes {message_max_bytes} \
         minus {} for the batch header and {FORWARDING_ALLOWANCE} for the headers dedupe adds",
        event_budget(message_max_bytes),
        common::produce::BATCH_OVERHEAD,
    )
}

/// What a pending output is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Form {
    /// One of the raw record's events.
    Event,
    /// The raw record's dead letter (fitted to the budget).
    DeadLetter,
    /// Its dead letter cut to the error and origin headers.
    Minimal,
}

/// How one output fared in a delivery round.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Sent {
    /// Acknowledged.
    Stored,
    /// Failed for a reason that may pass (retried).
    Transient,
    /// Refused for its size, sent alone (permanent); the error.
    TooLarge(String),
}

/// What to send next after a round, by index into the round's outputs.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Plan {
    /// Send again as they are.
    pub(crate) retry: Vec<usize>,
    /// Replace by their raw record's dead letter (one per raw record: the
    /// first refused event; the raw record's other pending events go).
    pub(crate) dead_letter: Vec<usize>,
    /// Replace by a minimal dead letter.
    pub(crate) minimal: Vec<usize>,
    /// Minimal dead letters refused for their size: nothing smaller exists.
    pub(crate) give_up: Vec<usize>,
}

/// Decides the next round from `outputs` (raw record index, form) and their
/// `results`, in the same order.
pub(crate) fn plan(outputs: &[(usize, Form)], results: &[Sent]) -> Plan {
    let mut plan = Plan::default();
    let mut dead: HashSet<usize> = HashSet::new();
    for (i, ((raw, form), result)) in outputs.iter().zip(results).enumerate() {
        if let Sent::TooLarge(_) = result {
            match form {
                Form::Event => {
                    if dead.insert(*raw) {
                        plan.dead_letter.push(i);
                    }
                }
                Form::DeadLetter => plan.minimal.push(i),
                Form::Minimal => plan.give_up.push(i),
            }
        }
    }
    for (i, ((raw, form), result)) in outputs.iter().zip(results).enumerate() {
        if *result == Sent::Transient && !(*form == Form::Event && dead.contains(raw)) {
            plan.retry.push(i);
        }
    }
    plan
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(value_len: usize, key: &str) -> OutRecord {
        OutRecord {
            topic: "properties.normalized".into(),
            key: Some(b"generic:p".to_vec()),
            payload: Some(vec![0; value_len]),
            ..OutRecord::default()
        }
        .header(common::headers::DEDUPE_KEY, key)
    }

    #[test]
    fn the_event_budget_leaves_room_for_the_batch_and_dedupe() {
        assert_eq!(event_budget(20_000), 20_000 - 61 - 128);
        assert_eq!(event_budget(100), 0);
    }

    #[test]
    fn the_first_event_over_the_budget_is_found_with_its_size() {
        let records = [event(10, "a"), event(30_000, "b"), event(40_000, "c")];
        let budget = event_budget(20_000);
        let (index, size) = first_oversized(&records, budget).expect("one is too large");
        assert_eq!((index, size), (1, records[1].wire_size()));
        assert_eq!(first_oversized(&records[..1], budget), None);
        assert_eq!(
            describe(index, records.len(), &records[index]),
            "event 2 of 3 (dedupe key `b`)"
        );
        let reason = too_large_reason("event 2 of 3", "t.normalized", size, 20_000);
        assert!(
            reason.contains(&format!("would be {size} bytes")),
            "{reason}"
        );
        assert!(reason.contains("19811-byte budget"), "{reason}");
        assert!(reason.contains("message_max_bytes 20000"), "{reason}");
        assert!(reason.contains("t.normalized"), "{reason}");
    }

    #[test]
    fn a_refused_event_dead_letters_its_raw_record_once_and_drops_its_siblings() {
        let too_large = || Sent::TooLarge("MessageSizeTooLarge".into());
        let outputs = [
            (0, Form::Event),
            (1, Form::Event),
            (1, Form::Event),
            (1, Form::Event),
            (2, Form::DeadLetter),
            (3, Form::Event),
        ];
        let results = [
            Sent::Stored,
            too_large(),
            Sent::Transient,
            too_large(),
            Sent::Stored,
            Sent::Transient,
        ];
        assert_eq!(
            plan(&outputs, &results),
            Plan {
                retry: vec![5],
                dead_letter: vec![1],
                minimal: vec![],
                give_up: vec![],
            }
        );
    }

    #[test]
    fn refused_dead_letters_shrink_then_give_up() {
        let too_large = || Sent::TooLarge("x".into());
        let outputs = [
            (0, Form::DeadLetter),
            (1, Form::Minimal),
            (2, Form::DeadLetter),
        ];
        let got = plan(&outputs, &[too_large(), too_large(), Sent::Transient]);
        assert_eq!(
            got,
            Plan {
                retry: vec![2],
                dead_letter: vec![],
                minimal: vec![0],
                give_up: vec![1],
            }
        );
        let stored = plan(&outputs, &[Sent::Stored, Sent::Stored, Sent::Stored]);
        assert_eq!(stored, Plan::default(), "nothing left to send");
    }
}
