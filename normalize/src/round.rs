//! One delivery round on the producer, the IO half of [`crate::delivery`]:
//! sends the pending records, and says how each fared ([`Sent`]) for
//! [`crate::delivery::Delivery::settle`] to decide the next round. A record
//! refused for its size is sent again alone (a broker refuses whole
//! batches), and only refused alone is it [`Sent::TooLarge`]; a librdkafka
//! fatal error ends the round as fatal ([`crate::failures::kafka_fatal`]).

use common::produce::{OutRecord, is_size_error, send_each};
use common::stage_loop::Verdict;
use rdkafka::error::KafkaError;
use rdkafka::producer::{FutureProducer, Producer};

use crate::failures::kafka_fatal;
use crate::sizing::Sent;

/// Sends `records` once: how each fared, in order, and the last transient
/// error.
pub(crate) async fn send_round(
    producer: &FutureProducer,
    records: &[OutRecord],
) -> Result<(Vec<Sent>, Option<String>), Verdict<anyhow::Error>> {
    let mut sent = Vec::with_capacity(records.len());
    let mut transient = None;
    for (record, result) in records.iter().zip(send_each(producer, records).await) {
        let result = match result {
            Err(e) if is_size_error(&e) => send_each(producer, std::slice::from_ref(record))
                .await
                .pop()
                .unwrap_or(Err(KafkaError::Canceled)),
            other => other,
        };
        sent.push(match result {
            Ok(_) => Sent::Stored,
            Err(e) if is_size_error(&e) => Sent::TooLarge(e.to_string()),
            Err(e) => {
                if let Some(fatal) = kafka_fatal(&e, producer.client().fatal_error()) {
                    return Err(Verdict::Fatal(anyhow::anyhow!("fatal: {fatal}")));
                }
                transient = Some(e.to_string());
                Sent::Transient
            }
        });
    }
    Ok((sent, transient))
}
