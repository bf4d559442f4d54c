//! [`Delivery`]: the outputs of one batch on their way to the broker, as a
//! value with no IO. The runner sends [`Delivery::records`], reports how
//! each fared ([`Sent`]), and [`Delivery::settle`] decides the next round
//! with [`sizing::plan`]: acknowledged records are done and never sent
//! again, transient failures are sent again, and a record refused for its
//! size is replaced (an event by its raw record's `too_large` dead letter,
//! a dead letter by a minimal one) or, for a minimal dead letter, given up
//! with an error log. The batch's offsets may be committed once
//! [`Delivery::is_done`].

use common::dead_letter::fit_dead_letter;
use common::produce::OutRecord;

use crate::outcome::Rejection;
use crate::sizing::{self, Form, Sent};

/// What one pending output is: its raw record (index in the batch), its
/// form, and for an event its position among the raw record's events.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Tag {
    raw: usize,
    form: Form,
    index: usize,
    count: usize,
}

/// The raw records' outputs of one batch, until all are stored.
#[derive(Debug, Default)]
pub(crate) struct Delivery {
    tags: Vec<Tag>,
    records: Vec<OutRecord>,
    events: u64,
    dead_letters: u64,
}

/// What a raw record of the batch yields, ready to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Outputs {
    /// Its events (possibly none).
    Events(Vec<OutRecord>),
    /// Its dead letter.
    DeadLetter(OutRecord),
}

impl Delivery {
    /// The outputs of the batch's raw records, in offset order.
    pub(crate) fn new(outputs: Vec<Outputs>) -> Self {
        let mut delivery = Self::default();
        for (raw, outputs) in outputs.into_iter().enumerate() {
            match outputs {
                Outputs::Events(records) => {
                    let count = records.len();
                    for (index, record) in records.into_iter().enumerate() {
                        delivery.push(raw, Form::Event, index, count, record);
                    }
                }
                Outputs::DeadLetter(record) => {
                    delivery.push(raw, Form::DeadLetter, 0, 1, record);
                }
            }
        }
        delivery
    }

    fn push(&mut self, raw: usize, form: Form, index: usize, count: usize, record: OutRecord) {
        self.tags.push(Tag {
            raw,
            form,
            index,
            count,
        });
        self.records.push(record);
    }

    /// What is still to send, in order.
    pub(crate) fn records(&self) -> &[OutRecord] {
        &self.records
    }

    /// Whether every output is stored (or given up).
    pub(crate) fn is_done(&self) -> bool {
        self.records.is_empty()
    }

    /// Events and dead letters stored so far.
    pub(crate) fn stored(&self) -> (u64, u64) {
        (self.events, self.dead_letters)
    }

    /// Takes the `results` of sending [`Self::records`] (same order) and
    /// prepares the next round; `dead_letter` builds the dead letter of the
    /// raw record at an index of the batch. Returns how many records failed
    /// for a transient reason (0: nothing to wait for before the next round).
    pub(crate) fn settle(
        &mut self,
        results: &[Sent],
        mut dead_letter: impl FnMut(usize, &Rejection) -> OutRecord,
    ) -> usize {
        for (tag, result) in self.tags.iter().zip(results) {
            if *result == Sent::Stored {
                match tag.form {
                    Form::Event => self.events += 1,
                    Form::DeadLetter | Form::Minimal => self.dead_letters += 1,
                }
            }
        }
        let forms: Vec<(usize, Form)> = self.tags.iter().map(|t| (t.raw, t.form)).collect();
        let plan = sizing::plan(&forms, results);
        let mut next = Self {
            events: self.events,
            dead_letters: self.dead_letters,
            ..Self::default()
        };
        for &i in &plan.dead_letter {
            let (tag, record) = (self.tags[i], &self.records[i]);
            let error = match &results[i] {
                Sent::TooLarge(error) => error.as_str(),
                _ => "",
            };
            let rejection = Rejection {
                kind: "too_large",
                reason: format!(
                    "{} for {} is {} bytes and was refused, sent alone: {error}",
                    sizing::describe(tag.index, tag.count, record),
                    record.topic,
                    record.wire_size()
                ),
            };
            next.push(
                tag.raw,
                Form::DeadLetter,
                0,
                1,
                dead_letter(tag.raw, &rejection),
            );
        }
        for &i in &plan.minimal {
            let record = std::mem::take(&mut self.records[i]);
            tracing::warn!(
                raw = self.tags[i].raw,
                size = record.wire_size(),
                "the dead letter was refused for its size; sending it without its value, key and original headers"
            );
            next.push(
                self.tags[i].raw,
                Form::Minimal,
                0,
                1,
                fit_dead_letter(record, 0),
            );
        }
        for &i in &plan.give_up {
            tracing::error!(
                raw = self.tags[i].raw,
                topic = %self.records[i].topic,
                size = self.records[i].wire_size(),
                "even a minimal dead letter was refused for its size; the raw record stays only on its topic"
            );
        }
        for &i in &plan.retry {
            let tag = self.tags[i];
            next.push(
                tag.raw,
                tag.form,
                tag.index,
                tag.count,
                std::mem::take(&mut self.records[i]),
            );
        }
        *self = next;
        plan.retry.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use common::headers;

    fn record(topic: &str, key: &str) -> OutRecord {
        OutRecord {
            topic: topic.into(),
            payload: Some(vec![0; 100]),
            ..OutRecord::default()
        }
        .header(headers::DEDUPE_KEY, key)
    }

    fn letter(raw: usize, rejection: &Rejection) -> OutRecord {
        record("dlq", &format!("raw-{raw}"))
            .header(headers::ERROR_KIND, rejection.kind)
            .header(headers::ERROR_MESSAGE, rejection.reason.as_str())
    }

    fn header<'a>(record: &'a OutRecord, name: &str) -> &'a str {
        record
            .headers
            .iter()
            .find(|(k, _)| k == name)
            .map_or("", |(_, v)| std::str::from_utf8(v).unwrap_or_default())
    }

    #[test]
    fn acknowledged_records_are_never_sent_again() {
        let mut delivery = Delivery::new(vec![
            Outputs::Events(vec![record("n", "a"), record("n", "b")]),
            Outputs::DeadLetter(record("dlq", "c")),
            Outputs::Events(vec![]),
            Outputs::Events(vec![record("n", "d")]),
        ]);
        assert_eq!(delivery.records().len(), 4);
        let failed = delivery.settle(
            &[Sent::Stored, Sent::Transient, Sent::Stored, Sent::Transient],
            letter,
        );
        assert_eq!(failed, 2);
        let keys: Vec<&str> = delivery
            .records()
            .iter()
            .map(|r| header(r, headers::DEDUPE_KEY))
            .collect();
        assert_eq!(keys, ["b", "d"], "only the failed ones, in order");
        assert_eq!(delivery.stored(), (1, 1));
        assert!(!delivery.is_done());
        assert_eq!(delivery.settle(&[Sent::Stored, Sent::Stored], letter), 0);
        assert!(delivery.is_done());
        assert_eq!(delivery.stored(), (3, 1));
    }

    #[test]
    fn an_event_refused_for_its_size_becomes_its_records_dead_letter() {
        let mut delivery = Delivery::new(vec![
            Outputs::Events(vec![record("n", "a"), record("n", "b"), record("n", "c")]),
            Outputs::Events(vec![record("n", "d")]),
        ]);
        let failed = delivery.settle(
            &[
                Sent::Stored,
                Sent::TooLarge("MessageSizeTooLarge".into()),
                Sent::Transient,
                Sent::Transient,
            ],
            letter,
        );
        assert_eq!(failed, 1, "the sibling of the refused event goes");
        let records = delivery.records();
        assert_eq!(records.len(), 2);
        assert_eq!(header(&records[0], headers::ERROR_KIND), "too_large");
        let reason = header(&records[0], headers::ERROR_MESSAGE);
        assert!(
            reason.starts_with("event 2 of 3 (dedupe key `b`) for n is ")
                && reason.ends_with("sent alone: MessageSizeTooLarge"),
            "{reason}"
        );
        assert_eq!(header(&records[1], headers::DEDUPE_KEY), "d");
        assert_eq!(delivery.stored(), (1, 0));
    }

    #[test]
    fn a_refused_dead_letter_shrinks_then_is_given_up() {
        let mut delivery = Delivery::new(vec![Outputs::DeadLetter(
            record("dlq", "a").header(headers::ERROR_STAGE, "normalize"),
        )]);
        assert_eq!(delivery.settle(&[Sent::TooLarge("x".into())], letter), 0);
        let minimal = &delivery.records()[0];
        assert_eq!(minimal.payload.as_deref(), Some(&[][..]), "value cut");
        assert_eq!(header(minimal, headers::ERROR_STAGE), "normalize");
        assert_eq!(delivery.settle(&[Sent::TooLarge("x".into())], letter), 0);
        assert!(delivery.is_done(), "nothing smaller exists");
        assert_eq!(delivery.stored(), (0, 0));
    }
}
