//! Whether dedupe runs with Kafka transactions, decided once at start.
//!
//! With `auto`, dedupe asks the broker by calling `init_transactions` on a
//! transactional producer. Apache Kafka accepts, and output, changelog and
//! input offsets then commit in one transaction. The local development broker
//! refuses at once (`TRANSACTIONAL_ID_AUTHORIZATION_FAILED`): that is logged
//! once, and dedupe uses the output-first recovery (see `runner`).

use std::time::Duration;

use anyhow::Context;
use rdkafka::producer::{FutureProducer, Producer};

use crate::settings::{DedupeSettings, TransactionsSetting};

/// The delivery mode in use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Output, changelog and offsets commit in one Kafka transaction.
    Transactional,
    /// No transactions: output first, then changelog, then offsets.
    OutputFirst,
}

impl Mode {
    /// How the mode is named in logs.
    pub fn describe(self) -> &'static str {
        match self {
            Self::Transactional => {
                "Kafka transactions (output, changelog and offsets commit together)"
            }
            Self::OutputFirst => "output-first recovery (no broker transactions)",
        }
    }
}

/// How long a transactional call may block.
pub const TRANSACTION_TIMEOUT: Duration = Duration::from_secs(30);

/// Creates the producer and decides the mode per `settings.transactions`.
pub fn open_producer(settings: &DedupeSettings) -> anyhow::Result<(FutureProducer, Mode)> {
    let plain = || -> anyhow::Result<FutureProducer> {
        settings
            .kafka
            .producer()
            .create()
            .context("cannot create the Kafka producer")
    };
    if settings.transactions == TransactionsSetting::Off {
        return Ok((plain()?, Mode::OutputFirst));
    }
    // Unique per process: zombie fencing across instances comes from the
    // consumer group metadata sent with the offsets (KIP-447).
    let id = format!(
        "{}-{}",
        settings.transactional_id_prefix,
        uuid::Uuid::new_v4().simple()
    );
    let transactional: FutureProducer = settings
        .kafka
        .producer()
        .set("transactional.id", &id)
        .set("transaction.timeout.ms", "60000")
        // librdkafka requires delivery to time out within the transaction.
        .set("message.timeout.ms", "60000")
        .create()
        .context("cannot create the transactional producer")?;
    match transactional.init_transactions(TRANSACTION_TIMEOUT) {
        Ok(()) => Ok((transactional, Mode::Transactional)),
        Err(e) if settings.transactions == TransactionsSetting::Required => Err(anyhow::anyhow!(
            "the broker refused transactions ({e}) and `transactions = \"required\"`"
        )),
        Err(e) => {
            tracing::warn!(
                error = %e,
                "the broker does not support transactions; using the output-first recovery"
            );
            Ok((plain()?, Mode::OutputFirst))
        }
    }
}
