//! Ingest's readiness, checked in the background: Kafka reachable and
//! `webhooks.raw` present. `/readyz` answers from the last check, so a
//! flood of probes costs no Kafka round trip and cannot slow the producer.

use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};
use std::time::Duration;

use rdkafka::producer::{FutureProducer, Producer};

/// What the last check found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Readiness {
    /// No check has finished yet.
    Starting,
    /// Kafka answered and the topic has partitions.
    Ready,
    /// Kafka answered without the topic.
    TopicMissing,
    /// Kafka did not answer within the check's bound.
    KafkaUnreachable,
}

impl Readiness {
    /// The reason reported by `/readyz` when not ready.
    pub fn reason(self) -> Option<&'static str> {
        match self {
            Self::Ready => None,
            Self::Starting => Some("starting"),
            Self::TopicMissing => Some("topic missing"),
            Self::KafkaUnreachable => Some("Kafka unreachable"),
        }
    }

    fn to_u8(self) -> u8 {
        match self {
            Self::Starting => 0,
            Self::Ready => 1,
            Self::TopicMissing => 2,
            Self::KafkaUnreachable => 3,
        }
    }

    fn from_u8(value: u8) -> Self {
        match value {
            1 => Self::Ready,
            2 => Self::TopicMissing,
            3 => Self::KafkaUnreachable,
            _ => Self::Starting,
        }
    }
}

/// The last readiness, shared between the checker and `/readyz`.
#[derive(Debug, Clone, Default)]
pub struct ReadinessCell(Arc<AtomicU8>);

impl ReadinessCell {
    /// The last check's result.
    pub fn get(&self) -> Readiness {
        Readiness::from_u8(self.0.load(Ordering::Relaxed))
    }

    /// Records a check's result.
    pub fn set(&self, readiness: Readiness) {
        self.0.store(readiness.to_u8(), Ordering::Relaxed);
    }
}

/// Checks readiness now and then every `interval`, on a blocking thread,
/// for the life of the process.
pub fn spawn_checker(
    producer: FutureProducer,
    topic: String,
    interval: Duration,
    cell: ReadinessCell,
) {
    drop(tokio::spawn(async move {
        loop {
            let producer = producer.clone();
            let topic_name = topic.clone();
            let checked = tokio::task::spawn_blocking(move || {
                producer
                    .client()
                    .fetch_metadata(Some(&topic_name), Duration::from_secs(1))
                    .map(|m| {
                        m.topics()
                            .iter()
                            .any(|t| t.name() == topic_name && !t.partitions().is_empty())
                    })
            })
            .await;
            cell.set(match checked {
                Ok(Ok(true)) => Readiness::Ready,
                Ok(Ok(false)) => Readiness::TopicMissing,
                _ => Readiness::KafkaUnreachable,
            });
            tokio::time::sleep(interval).await;
        }
    }));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cell_round_trips_every_state() {
        let cell = ReadinessCell::default();
        assert_eq!(cell.get(), Readiness::Starting);
        for state in [
            Readiness::Ready,
            Readiness::TopicMissing,
            Readiness::KafkaUnreachable,
            Readiness::Starting,
        ] {
            cell.set(state);
            assert_eq!(cell.get(), state);
        }
        assert_eq!(Readiness::Ready.reason(), None);
        assert_eq!(Readiness::TopicMissing.reason(), Some("topic missing"));
    }
}
