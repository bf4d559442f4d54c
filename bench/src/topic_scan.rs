//! Reading a whole topic once, from its beginning to its end: the records
//! the write ceilings produce again, and the timestamps the end-to-end
//! measurement splits its latency with.

use std::time::{Duration, Instant};

use anyhow::Context as _;
use common::kafka::KafkaSettings;
use rdkafka::consumer::{BaseConsumer, Consumer as _};
use rdkafka::error::KafkaError;
use rdkafka::message::BorrowedMessage;
use rdkafka::{Offset, TopicPartitionList};

/// Longest a scan may take.
const DEADLINE: Duration = Duration::from_secs(120);

/// Calls `each` with every record of `topic`, partition by partition in
/// offset order, until every partition's end.
pub fn scan(
    brokers: &str,
    topic: &str,
    mut each: impl FnMut(&BorrowedMessage<'_>),
) -> anyhow::Result<()> {
    let consumer: BaseConsumer = KafkaSettings {
        brokers: brokers.to_string(),
        ..KafkaSettings::default()
    }
    .reader()
    .create()
    .context("cannot create the reader")?;
    let metadata = consumer.fetch_metadata(Some(topic), Duration::from_secs(10))?;
    let mut assignment = TopicPartitionList::new();
    let mut open = 0;
    for t in metadata.topics() {
        for p in t.partitions() {
            assignment.add_partition_offset(topic, p.id(), Offset::Beginning)?;
            open += 1;
        }
    }
    consumer.assign(&assignment)?;
    let deadline = Instant::now() + DEADLINE;
    while open > 0 {
        anyhow::ensure!(Instant::now() < deadline, "cannot read all of {topic}");
        match consumer.poll(Duration::from_millis(200)) {
            Some(Ok(message)) => each(&message),
            Some(Err(KafkaError::PartitionEOF(_))) => open -= 1,
            Some(Err(e)) => anyhow::bail!("cannot read {topic}: {e}"),
            None => {}
        }
    }
    Ok(())
}
