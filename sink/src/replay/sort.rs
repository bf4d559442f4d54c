//! Which of the DLQ's records `sink replay` re-drives, and as what: the
//! sink's own dead letters (of the asked `error.kind`), each as the event
//! read at its origin position on `properties.events`; the rest is counted
//! and left alone. Pure.

use common::headers;
use common::kafka::header_str;
use rdkafka::Message;

use crate::rows::Position;
use crate::writer::STAGE;

/// What one DLQ record is to the replay.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Sorted {
    /// A dead letter of another stage.
    OtherStage,
    /// A sink dead letter of another kind than asked.
    OtherKind,
    /// Cannot be replayed from the DLQ (why).
    Unusable(&'static str),
    /// Replay it as the event read at this position.
    Replay(Position),
}

/// Sorts one DLQ record, keeping only dead letters of `kind` when given.
pub(super) fn sort<M: Message>(message: &M, kind: Option<&str>) -> Sorted {
    if header_str(message, headers::ERROR_STAGE) != Some(STAGE) {
        return Sorted::OtherStage;
    }
    if kind.is_some_and(|k| header_str(message, headers::ERROR_KIND) != Some(k)) {
        return Sorted::OtherKind;
    }
    if header_str(message, headers::ERROR_PAYLOAD_TRUNCATED).is_some() {
        return Sorted::Unusable("its value was cut to fit the DLQ");
    }
    let origin = || {
        Some(Position {
            topic: header_str(message, headers::ORIGIN_TOPIC)?.to_string(),
            partition: header_str(message, headers::ORIGIN_PARTITION)?
                .parse()
                .ok()?,
            offset: header_str(message, headers::ORIGIN_OFFSET)?.parse().ok()?,
        })
    };
    origin().map_or(Sorted::Unusable("it has no origin headers"), Sorted::Replay)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rdkafka::message::OwnedMessage;

    fn letter(headers: &[(&str, &str)]) -> OwnedMessage {
        common::kafka::detached_with_headers("dlq", headers)
    }

    const ORIGIN: [(&str, &str); 3] = [
        ("topic", "properties.events"),
        ("partition", "2"),
        ("offset", "41"),
    ];

    #[test]
    fn only_the_sinks_dead_letters_of_the_asked_kind_are_replayed_at_their_origin() {
        let with = |extra: &[(&'static str, &'static str)]| {
            let mut all = ORIGIN.to_vec();
            all.extend_from_slice(extra);
            letter(&all)
        };
        let sink = with(&[("error.stage", "sink"), ("error.kind", "rejected")]);
        let expected = Position {
            topic: "properties.events".into(),
            partition: 2,
            offset: 41,
        };
        assert_eq!(sort(&sink, None), Sorted::Replay(expected.clone()));
        assert_eq!(sort(&sink, Some("rejected")), Sorted::Replay(expected));
        assert_eq!(sort(&sink, Some("decode")), Sorted::OtherKind);
        assert_eq!(
            sort(&with(&[("error.stage", "normalize")]), None),
            Sorted::OtherStage
        );
        let cut = with(&[
            ("error.stage", "sink"),
            ("error.payload-truncated", "3000000"),
        ]);
        assert!(matches!(sort(&cut, None), Sorted::Unusable(_)));
        let lost = letter(&[("error.stage", "sink")]);
        assert!(matches!(sort(&lost, None), Sorted::Unusable(_)));
    }
}
