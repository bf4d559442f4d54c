//! The parts every provider's events share: identity, keys, lineage.
//!
//! Keys follow DESIGN.md's precedence: the dedupe key is
//! `<source>:<event id>`, where the event id is the provider's own when it
//! sends one, else [`BodyHash::position_id`]: a SHA-256 of the raw body plus the
//! item's position in it, stable across retries of the same delivery.
//!
//! An event id longer than [`MAX_EVENT_ID_BYTES`] (nothing bounds a
//! sender's envelope `id` or event-id header but the body and header caps)
//! is replaced by `sha256:` and the hex digest of the id: still one id per
//! event, stable across redeliveries, and small enough that a property
//! state, which keeps the ids of the events its values come from, always
//! fits one record of `properties.latest`.

use schemas::{EventType, Lineage, PropertyEvent, Provider};
use sha2::{Digest, Sha256};

use super::RawContext;
use crate::NORMALIZER_VERSION;

/// An event with identity, keys, times and lineage set, and nothing else:
/// the parser fills in the alert, the change and the snapshot.
pub(crate) fn new_event(
    context: &RawContext<'_>,
    provider: Provider,
    event_id: String,
    property_id: String,
    event_type: EventType,
    occurred_at: i64,
) -> PropertyEvent {
    let event_id = bounded_event_id(event_id);
    PropertyEvent {
        dedupe_key: prefixed(context.source, &event_id),
        event_id,
        source: context.source.to_string(),
        provider,
        property_key: prefixed(context.source, &property_id),
        provider_property_id: property_id,
        event_type,
        occurred_at,
        received_at: context.received_at_ms,
        alert_id: None,
        provider_event_type: None,
        change: None,
        property: None,
        lineage: Lineage {
            raw_topic: context.topic.to_string(),
            raw_partition: context.partition,
            raw_offset: context.offset,
            normalizer_version: NORMALIZER_VERSION.to_string(),
        },
        cleared_fields: None,
        occurred_at_claimed: None,
        unchanged: None,
    }
}

/// The longest event id kept as the provider sent it: a UUID, a Svix
/// `msg_` id or a body-hash position id are far below it.
pub const MAX_EVENT_ID_BYTES: usize = 200;

/// What starts an event id that is a digest.
const DIGEST_PREFIX: &str = "sha256:";

/// `id` itself when it is at most [`MAX_EVENT_ID_BYTES`] long and does not
/// start with `sha256:`, else `sha256:<hex digest of id>` (71 bytes).
pub fn bounded_event_id(id: String) -> String {
    // A kept id never starts like a digest, so a sender cannot send the
    // digest of another of its event ids as an id and share its key.
    if id.len() <= MAX_EVENT_ID_BYTES && !id.starts_with(DIGEST_PREFIX) {
        return id;
    }
    let mut bounded = String::with_capacity(DIGEST_PREFIX.len() + 64);
    bounded.push_str(DIGEST_PREFIX);
    bounded.push_str(&hex::encode(Sha256::digest(id.as_bytes())));
    bounded
}

/// `<source>:<id>`, allocated once (it runs for every event).
fn prefixed(source: &str, id: &str) -> String {
    let mut key = String::with_capacity(source.len() + 1 + id.len());
    key.push_str(source);
    key.push(':');
    key.push_str(id);
    key
}

/// The raw body's lowercase hex SHA-256, computed once per record.
pub(crate) struct BodyHash([u8; 64]);

impl BodyHash {
    /// Hashes the raw body.
    pub(crate) fn of(body: &[u8]) -> Self {
        let mut hex = [0u8; 64];
        // 32 bytes always fit 64 hex digits.
        let _ = hex::encode_to_slice(Sha256::digest(body), &mut hex);
        Self(hex)
    }

    fn hex(&self) -> &str {
        // Hex digits are ASCII.
        std::str::from_utf8(&self.0).unwrap_or_default()
    }

    /// Event id for providers that send none: the body hash, `:` and the
    /// item's position in the body (e.g. `created.0.1`).
    pub(crate) fn position_id(&self, position: &str) -> String {
        prefixed(self.hex(), position)
    }

    /// [`Self::position_id`] of `<list>.<item>.<index>`, in one allocation.
    pub(crate) fn list_position_id(&self, list: &str, item: usize, index: usize) -> String {
        use std::fmt::Write as _;
        let mut id = String::with_capacity(64 + 1 + list.len() + 2 * 20 + 2);
        id.push_str(self.hex());
        id.push(':');
        id.push_str(list);
        // Writing into a String cannot fail.
        let _ = write!(id, ".{item}.{index}");
        id
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn body_ids_are_stable_and_differ_by_position() {
        let a = BodyHash::of(b"{}").position_id("0");
        assert_eq!(a, BodyHash::of(b"{}").position_id("0"));
        assert_ne!(a, BodyHash::of(b"{}").position_id("1"));
        assert_ne!(a, BodyHash::of(b"{ }").position_id("0"));
        assert_eq!(
            a,
            "44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a:0"
        );
        assert_eq!(
            BodyHash::of(b"{}").list_position_id("created", 0, 1),
            BodyHash::of(b"{}").position_id("created.0.1")
        );
    }

    #[test]
    fn an_event_id_up_to_the_bound_is_kept_as_sent() {
        let id = "e".repeat(MAX_EVENT_ID_BYTES);
        assert_eq!(bounded_event_id(id.clone()), id);
        let position = BodyHash::of(b"{}").list_position_id("updated", 999, 999);
        assert_eq!(bounded_event_id(position.clone()), position);
    }

    #[test]
    fn a_longer_event_id_becomes_its_digest_stable_and_distinct() {
        let long = "e".repeat(20_000);
        let bounded = bounded_event_id(long.clone());
        assert_eq!(bounded.len(), 71);
        assert!(bounded.starts_with("sha256:"));
        assert_eq!(
            bounded,
            bounded_event_id(long.clone()),
            "a redelivery has the same id"
        );
        let other = format!("{long}f");
        assert_ne!(
            bounded,
            bounded_event_id(other),
            "another event keeps its own id"
        );
        // One byte over the bound is enough.
        let just_over = "e".repeat(MAX_EVENT_ID_BYTES + 1);
        assert_eq!(bounded_event_id(just_over).len(), 71);
    }
}
