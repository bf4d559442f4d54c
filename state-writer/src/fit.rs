//! Fitting a new state into one record of `properties.latest`, sans IO.
//!
//! [`RecordLimit::fit`] encodes the state the merge gave and, when its
//! record would be over the producer's limit (`[kafka] message_max_bytes`,
//! less what librdkafka adds around a record), withholds the state's
//! largest values one at a time until it fits
//! (`property_state::withhold`). The state with its values withheld is
//! the one written, kept and restored, so a restart gives the same records.
//! Stopping instead would stand the whole partition still: the state is
//! read again from the same events after every restart.
//!
//! The record's exact size is counted here, key, headers and framing
//! included, so the datum encoded here is the one sent
//! ([`crate::writer::Writer::record`] only frames it).

use common::headers;
use common::produce::{RECORD_OVERHEAD, header_wire_size, record_budget};
use property_state::{Merged, diff, withhold::withhold_largest};
use schemas::PropertyState;

/// The bytes of a `traceparent` header value (W3C: `00-<32>-<16>-<2>`).
const TRACEPARENT_LEN: usize = 55;

/// Bytes the Confluent wire format adds before the datum.
const WIRE_PREFIX: usize = 5;

/// The size one record of `properties.latest` may have.
#[derive(Debug, Clone, Copy)]
pub struct RecordLimit {
    budget: usize,
    message_max_bytes: usize,
}

/// A state that fits one record.
#[derive(Debug, Clone, PartialEq)]
pub struct Fitted {
    /// The merge's result, with the values withheld to fit.
    pub merged: Merged,
    /// The state's Avro datum (no wire-format prefix).
    pub datum: Vec<u8>,
    /// The fields this fit withheld (empty: it fit as merged).
    pub withheld: Vec<&'static str>,
}

impl RecordLimit {
    /// The limit of a producer whose `message.max.bytes` is
    /// `message_max_bytes`.
    pub fn new(message_max_bytes: usize) -> Self {
        Self {
            budget: record_budget(message_max_bytes),
            message_max_bytes,
        }
    }

    /// The record size of a datum of `datum_len` bytes for property `key`,
    /// written for the input at `offset` with dedupe key `dedupe_key`.
    fn record_size(key: &str, dedupe_key: &str, offset: i64, datum_len: usize) -> usize {
        RECORD_OVERHEAD
            + key.len()
            + WIRE_PREFIX
            + datum_len
            + header_wire_size(headers::TRACEPARENT, &[0; TRACEPARENT_LEN])
            + header_wire_size(headers::DEDUPE_KEY, dedupe_key.as_bytes())
            + header_wire_size(headers::SOURCE_OFFSET, offset.to_string().as_bytes())
    }

    /// Fits `merged`, the merge of the input at `offset` (dedupe key
    /// `dedupe_key`) into `prior`, into one record. `Err` when the state
    /// does not encode, or does not fit with every value withheld (its
    /// identity and bookkeeping alone are over the limit).
    pub fn fit(
        &self,
        prior: Option<&PropertyState>,
        merged: Merged,
        dedupe_key: &str,
        offset: i64,
    ) -> anyhow::Result<Fitted> {
        let mut merged = merged;
        let mut withheld = Vec::new();
        loop {
            let key = merged.state.property_key.clone();
            let datum = schemas::encode_state(&merged.state)
                .map_err(|e| anyhow::anyhow!("the state of {key} does not fit its schema: {e}"))?;
            let size = Self::record_size(&key, dedupe_key, offset, datum.len());
            if size <= self.budget {
                if !withheld.is_empty() {
                    merged = diff(prior, merged.state);
                }
                return Ok(Fitted {
                    merged,
                    datum,
                    withheld,
                });
            }
            let Some(field) = withhold_largest(&mut merged.state) else {
                anyhow::bail!(
                    "the state of {key} is {size} bytes with every value withheld, over the {} \
                     a record may have under message_max_bytes ({}): raise [kafka] \
                     message_max_bytes and the topic's max.message.bytes (config/topics.toml) \
                     together",
                    self.budget,
                    self.message_max_bytes
                );
            };
            withheld.push(field);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use property_state::merge;
    use schemas::sample::snapshot_event as event;

    fn described(id: &str, occurred_at: i64, len: usize) -> schemas::PropertyEvent {
        let mut e = event(id, occurred_at);
        if let Some(p) = e.property.as_mut() {
            p.description = Some("d".repeat(len));
        }
        e
    }

    #[test]
    fn a_state_that_fits_is_written_as_merged() {
        let e = event("a", 1_000);
        let merged = merge(None, &e);
        let fitted = RecordLimit::new(1_000_000)
            .fit(None, merged.clone(), &e.dedupe_key, 7)
            .expect("fits");
        assert_eq!(fitted.merged, merged);
        assert!(fitted.withheld.is_empty());
        assert_eq!(
            schemas::decode_state(schemas::state_schema(), &fitted.datum).expect("decodes"),
            merged.state
        );
    }

    #[test]
    fn an_oversized_state_withholds_its_largest_value_and_fits_exactly() {
        let e = described("a", 1_000, 20_000);
        let limit = RecordLimit::new(10_000);
        let fitted = limit
            .fit(None, merge(None, &e), &e.dedupe_key, 7)
            .expect("fits");
        assert_eq!(fitted.withheld, ["description"]);
        assert_eq!(fitted.merged.state.withheld_fields, ["description"]);
        assert_eq!(fitted.merged.state.property.description, None);
        assert!(fitted.merged.state.property.price.is_some());
        let size = RecordLimit::record_size("generic:p1", &e.dedupe_key, 7, fitted.datum.len());
        assert!(size <= limit.budget, "{size}");
    }

    #[test]
    fn the_record_size_counts_what_the_writer_sends() {
        let record = common::produce::OutRecord {
            topic: "t".into(),
            partition: Some(0),
            key: Some(b"generic:p1".to_vec()),
            payload: Some(schemas::wire::frame(3, &[0; 100])),
            headers: Vec::new(),
        }
        .header(headers::TRACEPARENT, "0".repeat(TRACEPARENT_LEN))
        .header(headers::DEDUPE_KEY, "generic:a")
        .header(headers::SOURCE_OFFSET, "12345");
        assert_eq!(
            RecordLimit::record_size("generic:p1", "generic:a", 12_345, 100),
            record.wire_size()
        );
    }

    #[test]
    fn withholding_back_to_the_prior_state_changes_nothing() {
        // The prior withheld the description; the same event again brings
        // it back in the merge, and the fit withholds it again: unchanged.
        let e = described("a", 1_000, 20_000);
        let limit = RecordLimit::new(10_000);
        let first = limit
            .fit(None, merge(None, &e), &e.dedupe_key, 1)
            .expect("fits");
        let prior = first.merged.state;
        let again = merge(Some(&prior), &e);
        assert!(again.changed, "the merge brought the value back");
        let fitted = limit
            .fit(Some(&prior), again, &e.dedupe_key, 2)
            .expect("fits");
        assert!(!fitted.merged.changed);
        assert_eq!(fitted.merged.state, prior);
    }

    #[test]
    fn a_newer_small_value_comes_back_after_a_withheld_one() {
        let big = described("big", 1_000, 20_000);
        let limit = RecordLimit::new(10_000);
        let prior = limit
            .fit(None, merge(None, &big), &big.dedupe_key, 1)
            .expect("fits")
            .merged
            .state;
        let small = described("small", 2_000, 100);
        let fitted = limit
            .fit(
                Some(&prior),
                merge(Some(&prior), &small),
                &small.dedupe_key,
                2,
            )
            .expect("fits");
        assert!(fitted.merged.changed);
        assert!(fitted.withheld.is_empty());
        assert!(fitted.merged.state.withheld_fields.is_empty());
        assert_eq!(
            fitted
                .merged
                .state
                .property
                .description
                .as_deref()
                .map(str::len),
            Some(100)
        );
    }

    #[test]
    fn a_limit_below_the_bare_state_is_an_error_naming_the_setting() {
        let e = event("a", 1_000);
        let error = RecordLimit::new(200)
            .fit(None, merge(None, &e), &e.dedupe_key, 1)
            .expect_err("cannot fit");
        assert!(error.to_string().contains("message_max_bytes"), "{error}");
    }
}
