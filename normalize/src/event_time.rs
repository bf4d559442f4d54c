//! Time sanity: what an event time later than the event's arrival becomes.
//!
//! A property's state takes each field from the event with the latest
//! event time, so an `occurred_at` in the future (a sender's clock ahead,
//! a time zone written as UTC, a bug) would pin the fields it carries
//! against every real event until that time. An event whose `occurred_at`
//! is later than its `received_at` (ingest's arrival time) plus the allowed
//! skew (`[time] max_future_skew_secs`, default one hour) therefore gets
//! `occurred_at = received_at`, and the sender's time is kept in
//! `occurred_at_claimed`. Within the skew the sender's time stands: clocks
//! differ by seconds, and an event time a little after arrival is still
//! the best order between two events of one sender.
//!
//! It runs once, on every parser's events, in [`crate::outcome::parse`],
//! not in each parser. It reads nothing but the event (`received_at` comes
//! from the raw record's header), so a replay of the same record gives the
//! same event.

use schemas::PropertyEvent;

/// The default allowed skew: one hour.
pub const DEFAULT_MAX_FUTURE_SKEW_SECS: u64 = 3_600;

/// Replaces `event.occurred_at` by its `received_at` when it is later than
/// `received_at + max_skew_ms` (a negative skew counts as 0), keeping the
/// claimed time in `occurred_at_claimed`.
pub fn cap_future_time(event: &mut PropertyEvent, max_skew_ms: i64) {
    if event.occurred_at > event.received_at.saturating_add(max_skew_ms.max(0)) {
        event.occurred_at_claimed = Some(event.occurred_at);
        event.occurred_at = event.received_at;
    }
}

/// [`cap_future_time`] on each of `events`.
pub fn cap_future_times(events: &mut [PropertyEvent], max_skew_ms: i64) {
    for event in events {
        cap_future_time(event, max_skew_ms);
    }
}

/// `secs` as milliseconds, saturating (a setting of `u64::MAX` seconds
/// allows any time).
pub fn skew_ms(secs: u64) -> i64 {
    i64::try_from(secs.saturating_mul(1_000)).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    const RECEIVED: i64 = 1_767_225_600_000;
    const HOUR_MS: i64 = 3_600_000;

    fn event(occurred_at: i64) -> PropertyEvent {
        let mut event = schemas::sample::price_change();
        event.received_at = RECEIVED;
        event.occurred_at = occurred_at;
        event.occurred_at_claimed = None;
        event
    }

    /// `(occurred_at, occurred_at_claimed)` once capped with `skew_ms`.
    fn capped(mut event: PropertyEvent, skew_ms: i64) -> (i64, Option<i64>) {
        cap_future_time(&mut event, skew_ms);
        (event.occurred_at, event.occurred_at_claimed)
    }

    #[test]
    fn a_time_beyond_the_skew_becomes_the_arrival_and_is_kept_as_claimed() {
        let claimed = RECEIVED + HOUR_MS + 1;
        let mut e = event(claimed);
        cap_future_time(&mut e, HOUR_MS);
        assert_eq!(
            (e.occurred_at, e.occurred_at_claimed),
            (RECEIVED, Some(claimed))
        );
        let before = e.clone();
        cap_future_time(&mut e, HOUR_MS);
        assert_eq!(e, before, "capping twice changes nothing");
        let untouched = PropertyEvent {
            occurred_at: claimed,
            occurred_at_claimed: None,
            ..e
        };
        assert_eq!(untouched, event(claimed), "nothing else changes");
    }

    #[test]
    fn times_up_to_the_skew_and_past_times_stand() {
        for occurred_at in [
            RECEIVED + HOUR_MS,
            RECEIVED + 1,
            RECEIVED,
            RECEIVED - 86_400_000,
            0,
        ] {
            assert_eq!(
                capped(event(occurred_at), HOUR_MS),
                (occurred_at, None),
                "{occurred_at}"
            );
        }
    }

    #[test]
    fn a_zero_skew_allows_nothing_after_arrival_and_extremes_do_not_overflow() {
        assert_eq!(
            capped(event(RECEIVED + 1), 0),
            (RECEIVED, Some(RECEIVED + 1))
        );
        assert_eq!(capped(event(i64::MAX), HOUR_MS), (RECEIVED, Some(i64::MAX)));
        let mut late_arrival = event(i64::MAX);
        late_arrival.received_at = i64::MAX - 1;
        assert_eq!(capped(late_arrival, i64::MAX), (i64::MAX, None));
        assert_eq!(
            capped(event(RECEIVED + 1), -5),
            (RECEIVED, Some(RECEIVED + 1)),
            "a negative skew counts as 0"
        );
    }

    #[test]
    fn each_event_of_a_record_is_judged_on_its_own() {
        let mut events = vec![
            event(RECEIVED),
            event(RECEIVED + 2 * HOUR_MS),
            event(RECEIVED + 3 * HOUR_MS),
        ];
        cap_future_times(&mut events, HOUR_MS);
        let times: Vec<(i64, Option<i64>)> = events
            .iter()
            .map(|e| (e.occurred_at, e.occurred_at_claimed))
            .collect();
        assert_eq!(
            times,
            [
                (RECEIVED, None),
                (RECEIVED, Some(RECEIVED + 2 * HOUR_MS)),
                (RECEIVED, Some(RECEIVED + 3 * HOUR_MS)),
            ]
        );
    }

    #[test]
    fn the_skew_setting_is_read_in_seconds() {
        assert_eq!(skew_ms(DEFAULT_MAX_FUTURE_SKEW_SECS), HOUR_MS);
        assert_eq!(skew_ms(0), 0);
        assert_eq!(skew_ms(u64::MAX), i64::MAX);
    }
}
