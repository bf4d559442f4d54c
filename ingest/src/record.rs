//! Builds the Kafka record for an accepted webhook: the body byte for byte,
//! the key, and ingest's metadata (the DESIGN.md header fields), as one
//! `ingest-meta` header or a header per field. Pure, so the contract is
//! testable without a broker.

use common::{ProviderKind, headers};

use crate::settings::RawMetadata;
use crate::verify::Verdict;

/// Everything known about one accepted request.
#[derive(Debug, Clone)]
pub struct Arrival<'a> {
    /// Source name.
    pub source: &'a str,
    /// Provider kind (the `provider` header: what normalize dispatches on).
    pub provider: ProviderKind,
    /// Request content type.
    pub content_type: &'a str,
    /// Arrival time, Unix ms.
    pub received_at_ms: i64,
    /// Request id.
    pub request_id: &'a str,
    /// Verification verdict (with the provider ids found in headers).
    pub verdict: &'a Verdict,
    /// W3C trace context.
    pub traceparent: &'a str,
}

/// The record key: `<source>:<event id>` when the request carries one.
pub fn key(arrival: &Arrival<'_>) -> Option<String> {
    arrival
        .verdict
        .event_id
        .as_ref()
        .map(|id| format!("{}:{id}", arrival.source))
}

/// The record's Kafka headers for `fields` ([`headers`]): the one
/// `ingest-meta` header holding them all, or one header per field.
pub fn kafka_headers(
    fields: Vec<(&'static str, String)>,
    layout: RawMetadata,
) -> Vec<(&'static str, String)> {
    match layout {
        RawMetadata::Headers => fields,
        RawMetadata::OneHeader => vec![(
            headers::INGEST_META,
            common::ingest_meta::encode(fields.iter().map(|(k, v)| (*k, v.as_str()))),
        )],
    }
}

/// The metadata fields of the record (named as their headers of
/// [`common::headers`]), in a stable order.
pub fn headers(arrival: &Arrival<'_>) -> Vec<(&'static str, String)> {
    let mut out = vec![
        (headers::SOURCE, arrival.source.to_string()),
        (headers::PROVIDER, arrival.provider.as_str().to_string()),
        (headers::CONTENT_TYPE, arrival.content_type.to_string()),
        (headers::RECEIVED_AT, arrival.received_at_ms.to_string()),
        (headers::REQUEST_ID, arrival.request_id.to_string()),
        (headers::VERIFY_SCHEME, arrival.verdict.scheme.to_string()),
        (headers::VERIFY_KEY, arrival.verdict.key_label.clone()),
        (headers::TRACEPARENT, arrival.traceparent.to_string()),
    ];
    if let Some(skew) = arrival.verdict.skew_ms {
        out.push((headers::VERIFY_SKEW_MS, skew.to_string()));
    }
    if let Some(id) = &arrival.verdict.event_id {
        out.push((headers::EVENT_ID, id.clone()));
    }
    if let Some(id) = &arrival.verdict.delivery_id {
        out.push((headers::DELIVERY_ID, id.clone()));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn verdict() -> Verdict {
        Verdict {
            skew_ms: Some(-12),
            ..Verdict::new("hmac-sha256", "current")
        }
    }

    #[test]
    fn generic_requests_have_no_key_and_carry_the_verdict() {
        let v = verdict();
        let arrival = Arrival {
            source: "generic",
            provider: ProviderKind::Generic,
            content_type: "application/json",
            received_at_ms: 1_700_000_000_000,
            request_id: "r1",
            verdict: &v,
            traceparent: "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
        };
        assert_eq!(key(&arrival), None);
        let h = headers(&arrival);
        let get = |name: &str| h.iter().find(|(k, _)| *k == name).map(|(_, v)| v.as_str());
        assert_eq!(get("source"), Some("generic"));
        assert_eq!(get("provider"), Some("generic"));
        assert_eq!(get("received-at"), Some("1700000000000"));
        assert_eq!(get("verify-scheme"), Some("hmac-sha256"));
        assert_eq!(get("verify-key"), Some("current"));
        assert_eq!(get("verify-skew-ms"), Some("-12"));
        assert_eq!(get("event-id"), None);
    }

    #[test]
    fn provider_event_ids_become_the_key_and_headers() {
        let v = Verdict {
            event_id: Some("e-1".into()),
            delivery_id: Some("d-1".into()),
            ..verdict()
        };
        let arrival = Arrival {
            source: "immo",
            provider: ProviderKind::Immoteur,
            content_type: "application/json",
            received_at_ms: 1,
            request_id: "r",
            verdict: &v,
            traceparent: "tp",
        };
        assert_eq!(key(&arrival).as_deref(), Some("immo:e-1"));
        let h = headers(&arrival);
        assert!(h.contains(&("event-id", "e-1".into())));
        assert!(h.contains(&("delivery-id", "d-1".into())));
    }

    /// The `provider` header of every kind is its name, which names the
    /// kind back (what normalize reads it with).
    #[test]
    fn the_provider_header_names_the_kind() {
        let v = verdict();
        for &kind in ProviderKind::ALL {
            let arrival = Arrival {
                source: "s",
                provider: kind,
                content_type: "application/json",
                received_at_ms: 1,
                request_id: "r",
                verdict: &v,
                traceparent: "tp",
            };
            let h = headers(&arrival);
            let provider = h
                .iter()
                .find(|(name, _)| *name == headers::PROVIDER)
                .map(|(_, value)| value.as_str());
            assert_eq!(provider, Some(kind.as_str()));
            assert_eq!(provider.map(str::parse::<ProviderKind>), Some(Ok(kind)));
        }
    }

    #[test]
    fn one_header_holds_every_field_and_reads_back_the_same() {
        let v = Verdict {
            event_id: Some("evt 1&2=3".to_string()),
            ..verdict()
        };
        let arrival = Arrival {
            source: "generic",
            provider: ProviderKind::Generic,
            content_type: "application/json; charset=utf-8",
            received_at_ms: 1_700_000_000_000,
            request_id: "r1",
            verdict: &v,
            traceparent: "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
        };
        let fields = headers(&arrival);
        let packed = kafka_headers(fields.clone(), RawMetadata::OneHeader);
        assert_eq!(packed.len(), 1);
        assert_eq!(packed[0].0, headers::INGEST_META);
        let meta = common::ingest_meta::IngestMeta::parse(packed[0].1.as_bytes());
        let read: Vec<(String, String)> = meta
            .fields()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let written: Vec<(String, String)> = fields
            .iter()
            .map(|(k, v)| ((*k).to_string(), v.clone()))
            .collect();
        assert_eq!(read, written);
        assert_eq!(meta.get(headers::EVENT_ID), Some("evt 1&2=3"));
        assert_eq!(kafka_headers(fields.clone(), RawMetadata::Headers), fields);
    }
}
