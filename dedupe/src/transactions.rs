//! Whether dedupe runs with Kafka transactions, decided once at start.
//!
//! With `auto`, dedupe asks the broker by calling `init_transactions` on a
//! transactional producer. Apache Kafka accepts, and output, changelog and
//! input offsets then commit in one transaction. The local development broker
//! refuses at once (`TRANSACTIONAL_ID_AUTHORIZATION_FAILED`): that is logged
//! once, and dedupe uses the output-first recovery (see `runner`).
//!
//! Only the broker's explicit refusal ([`is_refusal`]: an authorization
//! failure for the transactional id or the cluster, or a broker without the
//! transactional API) selects the fallback. Any other error (a timeout, a
//! coordinator not yet available, a lost connection) is retried a few times
//! and is then fatal: falling back on a transient error would silently give
//! up the stronger mode on a broker that has it.

use std::time::Duration;

use anyhow::Context;
use common::stage_loop::{Cancel, RetryPolicy, Verdict};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
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

/// How `init_transactions` is retried on errors that are not a refusal.
const INIT_RETRY: RetryPolicy = RetryPolicy {
    initial: Duration::from_millis(500),
    max: Duration::from_secs(5),
    max_attempts: Some(5),
};

/// Whether an `init_transactions` error is the broker saying it will not do
/// transactions (as opposed to a transient failure).
pub fn is_refusal(code: Option<RDKafkaErrorCode>) -> bool {
    matches!(
        code,
        Some(
            RDKafkaErrorCode::TransactionalIdAuthorizationFailed
                | RDKafkaErrorCode::ClusterAuthorizationFailed
                | RDKafkaErrorCode::UnsupportedVersion
                | RDKafkaErrorCode::UnsupportedFeature
                | RDKafkaErrorCode::UnsupportedForMessageFormat
        )
    )
}

/// Creates the producer and decides the mode per `settings.transactions`.
/// `producer` is the non-transactional producer's configuration.
pub fn open_producer(
    settings: &DedupeSettings,
    producer: rdkafka::ClientConfig,
    cancel: &Cancel,
) -> anyhow::Result<(FutureProducer, Mode)> {
    let plain = || -> anyhow::Result<FutureProducer> {
        producer
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
    let init = INIT_RETRY.run_blocking(cancel, "init_transactions", |_| {
        transactional
            .init_transactions(TRANSACTION_TIMEOUT)
            .map_err(|e: KafkaError| {
                if is_refusal(e.rdkafka_error_code()) {
                    Verdict::Fatal(e)
                } else {
                    Verdict::Retry(e)
                }
            })
    });
    match init {
        Ok(()) => Ok((transactional, Mode::Transactional)),
        Err(gave_up) => {
            let refused = matches!(&gave_up, common::stage_loop::GaveUp::Fatal(_));
            let e = gave_up.into_error();
            if !refused {
                anyhow::bail!(
                    "cannot tell whether the broker has transactions: init_transactions kept \
                     failing ({e}); fix the broker connection, or set `transactions = \"off\"`"
                );
            }
            if settings.transactions == TransactionsSetting::Required {
                anyhow::bail!(
                    "the broker refused transactions ({e}) and `transactions = \"required\"`"
                );
            }
            tracing::warn!(
                error = %e,
                "the broker does not support transactions (it refused them); using the output-first recovery"
            );
            Ok((plain()?, Mode::OutputFirst))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_an_explicit_refusal_selects_the_fallback() {
        assert!(is_refusal(Some(
            RDKafkaErrorCode::TransactionalIdAuthorizationFailed
        )));
        assert!(is_refusal(Some(RDKafkaErrorCode::UnsupportedVersion)));
        for transient in [
            RDKafkaErrorCode::MessageTimedOut,
            RDKafkaErrorCode::CoordinatorNotAvailable,
            RDKafkaErrorCode::NotCoordinator,
            RDKafkaErrorCode::BrokerTransportFailure,
            RDKafkaErrorCode::AllBrokersDown,
            RDKafkaErrorCode::RequestTimedOut,
        ] {
            assert!(!is_refusal(Some(transient)), "{transient:?}");
        }
        assert!(!is_refusal(None));
    }
}
