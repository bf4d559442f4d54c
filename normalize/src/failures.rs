//! Which failures normalize retries and which end it, decided from the
//! error values alone. A failure that retrying cannot cure is fatal: the
//! process exits non-zero with a message saying what to fix, and its
//! supervisor restarts it. Everything else is retried with the stage's
//! [`common::stage_loop::RetryPolicy`] until it passes or the stage stops.
//!
//! - The schema registry ([`registry_failure`]): a refusal of the schema
//!   (409 incompatible, 422 invalid) or of our credentials (other 4xx) is
//!   fatal; no answer, a 5xx, a 404 (a registry still catching up on its
//!   `_schemas` topic), 408 and 429 are transient; an error with no HTTP
//!   status that the client itself calls permanent is the value's own
//!   fault (the event does not fit the schema: a `schema` dead letter).
//! - Kafka ([`kafka_fatal`]): librdkafka's fatal errors (the idempotent
//!   producer's `_FATAL`, which leaves the producer unable to send, and a
//!   consumer's fatal error) end the process; every other error is
//!   transient (the broker restarts, leaders move).

use std::error::Error as _;

use rdkafka::error::KafkaError;
use rdkafka::types::RDKafkaErrorCode;
use schema_registry_converter::error::SRCError;
use schema_registry_converter::schema_registry_common::RawError;

/// What a schema registry failure means.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum RegistryFailure {
    /// Not an answer about the schema: try again.
    Unavailable(String),
    /// The registry refuses the schema or us: an operator must act.
    Fatal(String),
    /// The value could not be encoded with the schema.
    Invalid(String),
}

/// Classifies `error` from a registry call for `subject`.
pub(crate) fn registry_failure(subject: &str, error: &SRCError) -> RegistryFailure {
    let answer = error
        .source()
        .and_then(|source| source.downcast_ref::<RawError>())
        .map(|raw| raw.message.clone())
        .unwrap_or_default();
    match registry_status(error) {
        Some(409) => RegistryFailure::Fatal(format!(
            "the schema registry refuses the schema of {subject} as incompatible with its \
             registered versions (409: {answer}). PropertyEvent changes must stay BACKWARD \
             compatible (README, \"The PropertyEvent schema\"): fix the schema, or the \
             subject's compatibility setting, then restart normalize"
        )),
        Some(422) => RegistryFailure::Fatal(format!(
            "the schema registry refuses the schema of {subject} as invalid (422: {answer})"
        )),
        Some(status @ 400..=499) if !matches!(status, 404 | 408 | 429) => {
            RegistryFailure::Fatal(format!(
                "the schema registry refuses normalize's requests for {subject} ({status}: \
                 {answer}); check its URL and credentials"
            ))
        }
        Some(_) => RegistryFailure::Unavailable(error.to_string()),
        None if error.retriable => RegistryFailure::Unavailable(error.to_string()),
        None => RegistryFailure::Invalid(error.to_string()),
    }
}

/// The HTTP status of a registry answer: from its `error_code` (whose
/// first three digits are the status, e.g. 40401 → 404), else from the
/// client's message ("... failed with status 409 Conflict").
fn registry_status(error: &SRCError) -> Option<u16> {
    let from_code = error
        .source()
        .and_then(|source| source.downcast_ref::<RawError>())
        .map(|raw| raw.error_code)
        .filter(|code| *code >= 100)
        .map(|mut code| {
            while code >= 1000 {
                code /= 10;
            }
            code
        })
        .and_then(|code| u16::try_from(code).ok());
    from_code.or_else(|| {
        let (_, after) = error.error.split_once("status ")?;
        after.get(..3)?.parse().ok()
    })
}

/// The message to exit with when `error`, or the client's own state
/// (`fatal`: `client().fatal_error()`), is a librdkafka fatal error, which
/// no retry can cure: the idempotent producer cannot keep its ordering and
/// no-duplicate guarantees after one, and refuses every later record.
pub(crate) fn kafka_fatal(
    error: &KafkaError,
    fatal: Option<(RDKafkaErrorCode, String)>,
) -> Option<String> {
    if let Some((code, reason)) = fatal {
        return Some(format!(
            "librdkafka raised a fatal error ({code:?}: {reason}); the client cannot \
             continue, so normalize exits for its supervisor to restart it (uncommitted \
             records are processed again)"
        ));
    }
    let fatal = matches!(error, KafkaError::MessageConsumptionFatal(_))
        || error.rdkafka_error_code() == Some(RDKafkaErrorCode::Fatal);
    fatal.then(|| {
        format!(
            "librdkafka raised a fatal error ({error}); the client cannot continue, so \
             normalize exits for its supervisor to restart it"
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(status: &str, code: u32, message: &str) -> SRCError {
        let raw: RawError =
            serde_json::from_str(&format!(r#"{{"error_code":{code},"message":"{message}"}}"#))
                .unwrap_or_else(|e| panic!("a registry error body: {e}"));
        let retriable = status.starts_with("502") || status.starts_with("503");
        let text = format!("HTTP request to schema registry failed with status {status}");
        if retriable {
            SRCError::retryable_with_cause(raw, &text)
        } else {
            SRCError::non_retryable_with_cause(raw, &text)
        }
    }

    fn classify(error: &SRCError) -> RegistryFailure {
        registry_failure("t.properties.normalized-value", error)
    }

    #[test]
    fn an_incompatible_or_invalid_schema_is_fatal_at_once() {
        let incompatible = answer(
            "409 Conflict",
            409,
            "Schema being registered is incompatible",
        );
        let RegistryFailure::Fatal(message) = classify(&incompatible) else {
            panic!("409 is fatal");
        };
        assert!(
            message.contains("t.properties.normalized-value")
                && message.contains("incompatible")
                && message.contains("being registered is incompatible")
                && message.contains("BACKWARD"),
            "{message}"
        );
        assert!(matches!(
            classify(&answer("422 Unprocessable Entity", 42201, "Invalid schema")),
            RegistryFailure::Fatal(m) if m.contains("invalid (422")
        ));
        assert!(matches!(
            classify(&answer("401 Unauthorized", 401, "Unauthorized")),
            RegistryFailure::Fatal(m) if m.contains("credentials")
        ));
    }

    #[test]
    fn a_registry_that_is_down_or_catching_up_is_retried() {
        for (status, code) in [
            ("503 Service Unavailable", 50301),
            ("500 Internal Server Error", 50001),
            ("404 Not Found", 40401),
            ("429 Too Many Requests", 429),
        ] {
            assert!(
                matches!(
                    classify(&answer(status, code, "x")),
                    RegistryFailure::Unavailable(_)
                ),
                "{status}"
            );
        }
        let refused = SRCError::retryable_with_cause(
            std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "refused"),
            "http call to schema registry failed",
        );
        assert!(matches!(
            classify(&refused),
            RegistryFailure::Unavailable(_)
        ));
    }

    #[test]
    fn the_status_is_read_from_the_message_when_the_body_is_not_json() {
        let raw: RawError = serde_json::from_str(
            r#"{"error_code":0,"message":"couldn't parse schema registry error json"}"#,
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let behind_a_proxy = SRCError::non_retryable_with_cause(
            raw,
            "HTTP request to schema registry failed with status 409 Conflict",
        );
        assert!(matches!(
            classify(&behind_a_proxy),
            RegistryFailure::Fatal(_)
        ));
    }

    #[test]
    fn a_value_the_schema_cannot_encode_is_the_records_fault() {
        let error = SRCError::non_retryable_without_cause("Could not get Avro bytes");
        assert!(matches!(classify(&error), RegistryFailure::Invalid(_)));
    }

    #[test]
    fn only_librdkafka_fatal_errors_end_the_process() {
        let produce = |code| KafkaError::MessageProduction(code);
        for transient in [
            RDKafkaErrorCode::MessageTimedOut,
            RDKafkaErrorCode::AllBrokersDown,
            RDKafkaErrorCode::BrokerTransportFailure,
            RDKafkaErrorCode::NotLeaderForPartition,
            RDKafkaErrorCode::OutOfOrderSequenceNumber,
        ] {
            assert_eq!(
                kafka_fatal(&produce(transient), None),
                None,
                "{transient:?}"
            );
        }
        let message = kafka_fatal(&produce(RDKafkaErrorCode::Fatal), None).expect("fatal");
        assert!(message.contains("fatal error"), "{message}");
        let state = Some((
            RDKafkaErrorCode::OutOfOrderSequenceNumber,
            "the broker lost acknowledged records".to_string(),
        ));
        let message = kafka_fatal(&produce(RDKafkaErrorCode::MessageTimedOut), state)
            .expect("the client's fatal state decides");
        assert!(
            message.contains("OutOfOrderSequenceNumber")
                && message.contains("the broker lost acknowledged records"),
            "{message}"
        );
        assert!(
            kafka_fatal(
                &KafkaError::MessageConsumptionFatal(RDKafkaErrorCode::Fenced),
                None
            )
            .is_some()
        );
    }

    /// A real idempotent producer against librdkafka's mock cluster, whose
    /// `InitProducerId` answer is one librdkafka treats as fatal: what the
    /// runner sees (a failed delivery, the client's fatal state) is
    /// classified fatal, so the stage exits instead of retrying forever.
    #[tokio::test]
    async fn a_fatal_error_of_a_real_idempotent_producer_is_fatal() {
        use common::produce::{OutRecord, send_each};
        use rdkafka::mocking::MockCluster;
        use rdkafka::producer::{FutureProducer, Producer};
        use rdkafka::types::{RDKafkaApiKey, RDKafkaRespErr};

        let mock = MockCluster::new(1).expect("a mock cluster");
        mock.create_topic("t", 1, 1).expect("a topic");
        mock.request_errors(
            RDKafkaApiKey::InitProducerId,
            &[RDKafkaRespErr::RD_KAFKA_RESP_ERR_CLUSTER_AUTHORIZATION_FAILED],
        );
        let settings = common::kafka::KafkaSettings {
            brokers: mock.bootstrap_servers(),
            ..common::kafka::KafkaSettings::default()
        };
        let producer: FutureProducer = settings.producer().create().expect("a producer");
        let record = OutRecord {
            topic: "t".into(),
            payload: Some(b"x".to_vec()),
            ..OutRecord::default()
        };
        let result = tokio::time::timeout(
            std::time::Duration::from_secs(30),
            send_each(&producer, &[record]),
        )
        .await
        .expect("the delivery fails at once, not after message.timeout.ms");
        let Some(Err(error)) = result.into_iter().next() else {
            panic!("the record cannot be delivered");
        };
        let fatal = kafka_fatal(&error, producer.client().fatal_error())
            .unwrap_or_else(|| panic!("{error} is not seen as fatal"));
        assert!(fatal.contains("ClusterAuthorizationFailed"), "{fatal}");
    }
}
