//! Holding a batch while the schema registry cannot give one of its
//! writer schemas: never skip a valid event because the registry is down.
//!
//! [`StateWriter::decode_holding`] decodes the batch's values. When one
//! names a writer schema the registry cannot give now (unreachable, a 5xx,
//! a 404 from a registry still catching up), every assigned partition is
//! paused and the schema is asked for again with the stage's backoff
//! (`RetryPolicy::UNTIL_STOPPED`), while the consumer keeps polling every
//! 100 ms: the member stays in its group and rebalance callbacks run (a
//! partition revoked meanwhile is simply not owned when the batch is
//! planned). Once the registry answers, the batch is decoded again and the
//! partitions with a state resume. Nothing of the batch is written or
//! committed while it is held; a stop ends the hold without committing, so
//! the batch is read again at the next start. Holding is no progress for
//! `/health`, which answers 503 after `stall_after_secs` with lag.
//!
//! A value that is broken on its own (not the wire format, a datum its
//! writer schema does not decode) is not held: it is logged and skipped,
//! and the sink dead-letters it.

use std::time::{Duration, Instant};

use common::kafka::partition_list;
use common::stage_loop::{RetryPolicy, assigned};
use rdkafka::consumer::Consumer;
use rdkafka::message::BorrowedMessage;
use rdkafka::{Message, Offset};
use schemas::PropertyEvent;
use schemas::writer_schemas::Decoded;

use crate::runner::StateWriter;

/// A batch's decoded values.
pub(crate) struct DecodedBatch {
    /// One per record: the event, or `None` for a value that does not decode.
    pub events: Vec<Option<PropertyEvent>>,
    /// When the batch's last proof of membership was (a poll), if it was
    /// held: the fence counts from the end of the hold.
    pub held_until: Option<Instant>,
}

/// How often the consumer polls while a batch is held.
const POLL_WHILE_HELD: Duration = Duration::from_millis(100);

impl StateWriter {
    /// Decodes `batch`, holding it while a writer schema cannot be had.
    /// `None` when the stage stops meanwhile.
    pub(crate) fn decode_holding(
        &self,
        batch: &[BorrowedMessage<'_>],
    ) -> anyhow::Result<Option<DecodedBatch>> {
        let mut attempt = 0;
        let mut held_until = None;
        loop {
            let (schema_id, reason) = match self.decode(batch) {
                Ok(events) => {
                    if held_until.is_some() {
                        let ready = self.co.partitions.ready();
                        let resume: Vec<i32> = assigned(&self.co.consumer, &self.co.input_topic)?
                            .into_iter()
                            .filter(|p| ready.contains(p))
                            .collect();
                        self.co
                            .consumer
                            .resume(&partition_list(&self.co.input_topic, &resume))?;
                        tracing::info!(
                            attempts = attempt,
                            "writer schema fetched; the held batch goes on"
                        );
                    }
                    return Ok(Some(DecodedBatch { events, held_until }));
                }
                Err(unavailable) => unavailable,
            };
            if held_until.is_none() {
                let all = assigned(&self.co.consumer, &self.co.input_topic)?;
                self.co
                    .consumer
                    .pause(&partition_list(&self.co.input_topic, &all))?;
                tracing::warn!(schema_id, %reason,
                    "the schema registry cannot give a writer schema; the batch is held and its partitions paused");
            }
            attempt += 1;
            let delay = RetryPolicy::UNTIL_STOPPED.delay(attempt);
            let until = Instant::now() + delay;
            while Instant::now() < until {
                if self.cancel.is_cancelled() {
                    return Ok(None);
                }
                self.poll_while_held();
                held_until = Some(Instant::now());
            }
            if let Err(reason) = self.schemas.fetch_event_schema(schema_id) {
                tracing::warn!(schema_id, attempt, %reason, "the batch is still held");
            }
        }
    }

    /// Polls once while held: rebalance callbacks run; a record fetched
    /// before the pause is read again later.
    fn poll_while_held(&self) {
        if let Some(Ok(message)) = self.co.consumer.poll(POLL_WHILE_HELD) {
            let partition = message.partition();
            if let Err(e) = self.co.consumer.seek(
                message.topic(),
                partition,
                Offset::Offset(message.offset()),
                Duration::from_secs(5),
            ) {
                tracing::warn!(partition, error = %e, "cannot move back; restoring the partition");
                self.co.partitions.reset([partition]);
            }
        }
    }

    /// Decodes every value of `batch`: the events (`None` for a value
    /// broken on its own), or the first writer schema the registry cannot
    /// give, with why.
    fn decode(
        &self,
        batch: &[BorrowedMessage<'_>],
    ) -> Result<Vec<Option<PropertyEvent>>, (u32, String)> {
        let mut events = Vec::with_capacity(batch.len());
        for message in batch {
            let decoded = match message.payload() {
                Some(bytes) => self.schemas.event(bytes),
                None => Decoded::Fault("no value".into()),
            };
            match decoded {
                Decoded::Value(event) => events.push(Some(*event)),
                Decoded::Fault(reason) => {
                    tracing::warn!(
                        partition = message.partition(),
                        offset = message.offset(),
                        %reason,
                        "an event that does not decode is skipped (the sink dead-letters it)"
                    );
                    events.push(None);
                }
                Decoded::Unavailable { schema_id, reason } => return Err((schema_id, reason)),
            }
        }
        Ok(events)
    }
}
