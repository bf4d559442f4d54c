//! The requests the bench sends: signed for the bench's generic source at
//! send time, as a provider would sign them, and generic `property.created`
//! bodies with unique event ids for the end-to-end run.

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::Context as _;
use axum::body::Bytes;
use http_body_util::Full;
use hyper::Request;
use ingest::settings::SourceSettings;

use crate::http_load::RequestFactory;
use crate::pipeline::source_toml;

/// The bench's generic source, as ingest reads it.
pub fn generic_source() -> anyhow::Result<SourceSettings> {
    #[derive(serde::Deserialize)]
    struct File {
        sources: Vec<SourceSettings>,
    }
    let file: File = toml::from_str(&source_toml()).context("the bench's source config")?;
    file.sources
        .into_iter()
        .next()
        .context("the bench's source config has no source")
}

/// `POST /webhooks/generic` with body `body(n)`, signed at send time.
pub fn signed(
    source: &SourceSettings,
    body: impl Fn(u64) -> Bytes + Send + Sync + 'static,
) -> RequestFactory {
    let source = source.clone();
    Arc::new(move |n| {
        let body = body(n);
        let now = SystemTime::now().duration_since(UNIX_EPOCH)?.as_secs() as i64;
        let signed = ingest::send::sign(&source, &body, now, &|_| None)?;
        let mut request = Request::post("/webhooks/generic")
            .header("host", "127.0.0.1")
            .header("content-type", "application/json");
        for (name, value) in &signed.headers {
            request = request.header(name, value);
        }
        Ok(request.body(Full::new(body))?)
    })
}

/// The fixture's event time, 2023-06-15T10:30:00Z (Unix seconds).
const FIXTURE_CREATED: i64 = 1_686_825_000;

/// A generic `property.created` webhook for event `event` about property
/// `property`, shaped like the documented fixture (345 bytes for small ids).
pub fn property_created(event: &str, property: &str, price: u64) -> Bytes {
    property_created_later(event, property, price, 0)
}

/// [`property_created`] dated `later_secs` after the fixture's time (same
/// size): successive events of one property then each change its state,
/// as real updates do, instead of tying on one time.
pub fn property_created_later(event: &str, property: &str, price: u64, later_secs: u64) -> Bytes {
    let at = i64::try_from(later_secs)
        .ok()
        .and_then(|s| s.checked_add(FIXTURE_CREATED))
        .and_then(|s| time::OffsetDateTime::from_unix_timestamp(s).ok())
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_else(|| "2023-06-15T10:30:00Z".to_string());
    Bytes::from(format!(
        r#"{{"id":"{event}","type":"property.created","created":"{at}","data":{{"property":{{"id":"{property}","address":"123 Main St, New York, NY 10001","price":{price},"bedrooms":2,"bathrooms":2,"squareFeet":1200,"createdAt":"2023-06-15T10:30:00Z"}}}}}}"#
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_later_event_is_the_same_size_and_dated_later() {
        let first = property_created("evt_1", "prop_2", 750_000);
        let later = property_created_later("evt_1", "prop_2", 750_000, 90_061);
        assert_eq!(first.len(), later.len());
        let value: serde_json::Value = serde_json::from_slice(&later).expect("JSON");
        assert_eq!(value["created"], "2023-06-16T11:31:01Z");
    }

    #[test]
    fn generated_bodies_are_valid_json_with_their_ids() {
        let body = property_created("evt_1", "prop_2", 750_000);
        let value: serde_json::Value = serde_json::from_slice(&body).expect("valid JSON");
        assert_eq!(value["id"], "evt_1");
        assert_eq!(value["data"]["property"]["id"], "prop_2");
        assert_eq!(value["data"]["property"]["price"], 750_000);
    }

    #[test]
    fn the_bench_source_parses() {
        assert_eq!(generic_source().expect("parses").name, "generic");
    }
}
