//! The write-behind protocol driven against a fake store and a fake DLQ:
//! what is committed, and what never is, when a batch is in flight during a
//! revocation, a commit fails, the stage stops, or the registry fails while
//! it stops.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use common::stage_loop::Cancel;

use super::*;
use crate::fake::{FAST, FakeDeadLetters, FakeStore, committer, event_at, original_of};
use crate::writer::Committer;
use schemas::writer_schemas::WriterSchemas;

const WAIT: Duration = Duration::from_millis(50);

fn protocol() -> WriteBehind {
    let settings = BatchSettings {
        max_records: 100,
        max_wait_ms: 50,
    };
    WriteBehind::new(settings, FAST)
}

fn take(protocol: &mut WriteBehind, records: &[(i32, i64)]) {
    for &(partition, offset) in records {
        assert!(protocol.admit(partition, offset), "{partition}/{offset}");
        let event = event_at(partition, offset);
        let original = original_of(&event);
        protocol.take(event, original, tracing::Span::none(), Instant::now());
    }
}

fn commit(committer: &mut Committer<FakeStore, FakeDeadLetters>, mut batch: Batch) -> Written {
    match committer.commit(&mut batch) {
        Ok(commit) => Written::Committed(commit.offsets),
        Err(_) => Written::Interrupted,
    }
}

/// Drives `next` until it is done, committing each batch handed over.
fn drive(
    protocol: &mut WriteBehind,
    committer: &mut Committer<FakeStore, FakeDeadLetters>,
    mut next: impl FnMut(&mut WriteBehind) -> Step,
) {
    let mut in_flight: Option<Batch> = None;
    loop {
        match next(protocol) {
            Step::Write(batch) => {
                assert!(in_flight.is_none(), "at most one batch in flight");
                in_flight = Some(batch);
            }
            Step::Collect => {
                let batch = in_flight.take().expect("a batch in flight");
                let _ = protocol.written(commit(committer, batch));
            }
            Step::Done | Step::Poll => return,
        }
    }
}

#[test]
fn one_batch_in_flight_and_the_next_waits_for_its_outcome() {
    let mut wb = protocol();
    let now = Instant::now();
    assert!(matches!(wb.step(now, true), Step::Poll), "nothing pending");
    take(&mut wb, &[(0, 0), (0, 1)]);
    assert_eq!(wb.poll_wait(now), Duration::ZERO, "writer free: no wait");
    assert!(matches!(wb.step(now, false), Step::Poll), "more is waiting");
    let Step::Write(first) = wb.step(now, true) else {
        panic!("the writer is free and nothing more waits: hand over");
    };
    assert_eq!(first.next_offsets, HashMap::from([(0, 2)]));
    take(&mut wb, &[(0, 2)]);
    assert!(wb.poll_wait(now) <= Duration::from_millis(2));
    assert!(
        matches!(wb.step(now, true), Step::Poll),
        "busy writer: fill"
    );
    assert!(
        matches!(wb.step(now + 2 * WAIT, true), Step::Collect),
        "due while one is in flight: its outcome first"
    );
    let committed = wb.written(Written::Committed(first.next_offsets.clone()));
    assert_eq!(committed, Some(HashMap::from([(0, 2)])));
    let Step::Write(second) = wb.step(now + 2 * WAIT, true) else {
        panic!("then the next batch");
    };
    assert_eq!(second.next_offsets, HashMap::from([(0, 3)]));
}

#[test]
fn revocation_while_a_batch_is_in_flight_commits_it_then_the_revoked_records() {
    let mut wb = protocol();
    let mut store = committer(FakeStore::default(), &Cancel::new());
    take(&mut wb, &[(0, 0), (0, 1)]);
    let Step::Write(first) = wb.step(Instant::now(), true) else {
        panic!("handed over");
    };
    take(&mut wb, &[(0, 2), (1, 0)]);
    // The rebalance: partition 0 is revoked while `first` is in flight.
    assert!(matches!(wb.revoke_step(&[0]), Step::Collect));
    let _ = wb.written(commit(&mut store, first));
    drive(&mut wb, &mut store, |wb| wb.revoke_step(&[0]));
    wb.release(&[0]);
    assert_eq!(
        store.store.offsets,
        HashMap::from([(0, 3)]),
        "all of 0, none of 1"
    );
    assert_eq!(store.store.rows.len(), 3);
    drive(&mut wb, &mut store, WriteBehind::stop_step);
    assert_eq!(store.store.offsets, HashMap::from([(0, 3), (1, 1)]));
}

#[test]
fn a_revoked_batch_that_fails_is_left_for_the_next_owner() {
    let cancel = Cancel::new();
    let mut wb = protocol();
    let failing = FakeStore::down();
    let mut store = committer(failing, &cancel);
    take(&mut wb, &[(0, 0)]);
    let Step::Write(first) = wb.step(Instant::now(), true) else {
        panic!("handed over");
    };
    take(&mut wb, &[(0, 1)]);
    cancel.cancel();
    let _ = wb.written(commit(&mut store, first));
    assert!(matches!(wb.revoke_step(&[0]), Step::Done), "nothing later");
    assert!(
        store.store.offsets.is_empty(),
        "re-read from the stored offsets"
    );
}

#[test]
fn after_a_failed_commit_no_later_batch_moves_past_it() {
    let mut wb = protocol();
    take(&mut wb, &[(0, 0), (0, 1)]);
    let Step::Write(_first) = wb.step(Instant::now(), true) else {
        panic!("handed over");
    };
    take(&mut wb, &[(0, 2)]);
    assert_eq!(wb.written(Written::Interrupted), None);
    assert!(wb.failed());
    assert!(matches!(wb.step(Instant::now() + WAIT, true), Step::Done));
    assert!(
        matches!(wb.stop_step(), Step::Done),
        "the pending batch is dropped"
    );
    assert!(!wb.admit(0, 3), "nothing more is taken");
}

#[test]
fn stop_commits_the_batch_in_flight_then_what_is_pending() {
    let mut wb = protocol();
    let mut store = committer(FakeStore::unavailable_for(2), &Cancel::new());
    take(&mut wb, &[(0, 0), (1, 0)]);
    let Step::Write(first) = wb.step(Instant::now(), true) else {
        panic!("handed over");
    };
    take(&mut wb, &[(0, 1)]);
    assert!(matches!(wb.stop_step(), Step::Collect));
    let _ = wb.written(commit(&mut store, first));
    drive(&mut wb, &mut store, WriteBehind::stop_step);
    assert_eq!(store.store.offsets, HashMap::from([(0, 2), (1, 1)]));
    assert_eq!(store.store.commits, 2);
}

#[test]
fn a_registry_error_while_stopping_holds_the_record_and_dead_letters_nothing() {
    let cancel = Cancel::new();
    let mut wb = protocol();
    let mut store = committer(FakeStore::default(), &cancel);
    let mut schemas = WriterSchemas::<schemas::PropertyEvent>::default();
    take(&mut wb, &[(0, 3), (0, 4)]);
    cancel.cancel(); // the stop arrives; the registry is gone too
    let datum = schemas::encode_datum(&schemas::sample::price_change()).expect("encodes");
    let value = schemas::wire::frame(42, &datum);
    let decoded = schemas.decode(&value, |id| Err(format!("40403 schema {id} not found")));
    let event = event_at(0, 5);
    let next = wb.record(
        event.position.clone(),
        decoded,
        original_of(&event),
        tracing::Span::none(),
        Instant::now(),
    );
    assert!(matches!(next, Next::Held { newly: true, .. }), "{next:?}");
    assert!(!wb.admit(0, 6), "nothing after the held record is taken");
    drive(&mut wb, &mut store, WriteBehind::stop_step);
    assert_eq!(store.store.offsets, HashMap::from([(0, 5)]), "not past it");
    let sent = store.dead_letters.as_ref().expect("dlq").sink.sent();
    assert!(sent.is_empty(), "no dead letter");
}

#[test]
fn a_dead_letter_moves_the_batch_past_its_record_only_once_acknowledged() {
    let mut wb = protocol();
    let mut store = committer(FakeStore::default(), &Cancel::new());
    let now = Instant::now();
    take(&mut wb, &[(0, 0)]);
    assert!(wb.admit(0, 1));
    wb.dead_lettered(0, 1, true, tracing::Span::none(), now);
    assert!(wb.admit(0, 2));
    wb.dead_lettered(0, 2, false, tracing::Span::none(), now);
    assert!(!wb.admit(0, 3), "held at the unacknowledged one");
    assert!(wb.retries_due(now + WAIT).is_empty(), "no retry: stopping");
    drive(&mut wb, &mut store, WriteBehind::stop_step);
    assert_eq!(
        store.store.offsets,
        HashMap::from([(0, 2)]),
        "past 1, not 2"
    );
    assert_eq!(store.store.rows.len(), 1);
}

#[test]
fn a_held_partition_resumes_from_exactly_its_held_record() {
    let mut wb = protocol();
    let now = Instant::now();
    take(&mut wb, &[(2, 9)]);
    assert!(wb.hold(2, 10, Some(7), now));
    assert!(!wb.hold(2, 11, Some(7), now), "already held");
    assert!(wb.any_held());
    assert!(wb.retries_due(now).is_empty(), "after a backoff");
    let later = now + Duration::from_millis(10);
    assert_eq!(wb.retries_due(later), [(2, 7)]);
    assert_eq!(wb.retry_failed(2, later), 2);
    assert_eq!(wb.held_offset(2), Some(10));
    wb.resume_at(2);
    assert!(!wb.admit(2, 12), "fetched before the seek: ignored");
    assert!(wb.admit(2, 10), "the held record, read again");
    assert!(wb.admit(2, 11));
    assert!(!wb.any_held());
}

#[test]
fn revocation_forgets_a_hold() {
    let mut wb = protocol();
    assert!(wb.hold(1, 4, Some(3), Instant::now()));
    assert!(matches!(wb.revoke_step(&[1]), Step::Done));
    wb.release(&[1]);
    assert!(!wb.any_held());
    assert!(wb.admit(1, 0), "a new owner's records");
}
