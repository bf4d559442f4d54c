//! Row mapping: a decoded `PropertyEvent` and where it was read from, to the
//! values of one `property_events` row and, when the event carries a
//! snapshot, one `properties` row. Pure; the SQL lives in [`crate::store`].

use schemas::{PropertyEvent, Provider};

/// Where an event was consumed from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Position {
    /// Topic.
    pub topic: String,
    /// Partition.
    pub partition: i32,
    /// Offset.
    pub offset: i64,
}

/// One event to write, with its position.
#[derive(Debug, Clone)]
pub struct EventToWrite {
    /// The decoded event.
    pub event: PropertyEvent,
    /// Where it was read.
    pub position: Position,
}

/// The events of a batch whose snapshot is upserted into `properties`: per
/// property, only the newest (event time, then offset). One statement cannot
/// update a row twice, and the older snapshots would lose to it anyway (the
/// same order the upsert's guard applies against the stored row).
pub fn newest_snapshot_per_property(events: &[EventToWrite]) -> Vec<&EventToWrite> {
    let mut newest: std::collections::HashMap<&str, &EventToWrite> =
        std::collections::HashMap::new();
    for item in events.iter().filter(|e| e.event.property.is_some()) {
        let order = |e: &EventToWrite| (e.event.occurred_at, e.position.offset);
        let _ = newest
            .entry(item.event.property_key.as_str())
            .and_modify(|kept| {
                if order(item) >= order(kept) {
                    *kept = item;
                }
            })
            .or_insert(item);
    }
    let mut out: Vec<&EventToWrite> = newest.into_values().collect();
    out.sort_by(|a, b| a.event.property_key.cmp(&b.event.property_key));
    out
}

/// A normalizer version's sort key (the same key as the SQL
/// `normalizer_version_key`, migration `0006`).
pub use property_state::version_key;

/// One event per dedupe key, in first-seen order: a correction in the same
/// batch as the event it corrects replaces it when its normalizer version
/// is newer (then the one read last wins).
pub fn one_per_dedupe_key(events: &[EventToWrite]) -> Vec<&EventToWrite> {
    let mut index: std::collections::HashMap<&str, usize> = std::collections::HashMap::new();
    let mut out: Vec<&EventToWrite> = Vec::with_capacity(events.len());
    let order = |e: &EventToWrite| {
        (
            version_key(&e.event.lineage.normalizer_version),
            e.position.offset,
        )
    };
    for item in events {
        match index.get(item.event.dedupe_key.as_str()) {
            Some(&i) => {
                if let Some(kept) = out.get_mut(i)
                    && order(item) > order(kept)
                {
                    *kept = item;
                }
            }
            None => {
                let _ = index.insert(item.event.dedupe_key.as_str(), out.len());
                out.push(item);
            }
        }
    }
    out
}

/// The provider as stored: its [`common::ProviderKind`] name (as configured
/// in ingest), or `unknown` for a symbol this reader does not know.
pub fn provider_name(provider: Provider) -> &'static str {
    provider
        .kind()
        .map_or("unknown", common::ProviderKind::as_str)
}

/// The snapshot as the `jsonb` document stored in `properties.snapshot`.
pub fn snapshot_json(event: &PropertyEvent) -> Option<String> {
    event
        .property
        .as_ref()
        .and_then(|p| serde_json::to_string(p).ok())
}

/// The whole event as the `jsonb` document in `property_events.event`.
pub fn event_json(event: &PropertyEvent) -> String {
    serde_json::to_string(event).unwrap_or_else(|_| "{}".to_string())
}

/// Milliseconds to the seconds PostgreSQL's `to_timestamp` takes.
pub fn seconds(ms: i64) -> f64 {
    // Millisecond timestamps fit f64 exactly up to year 285,000.
    #[allow(clippy::cast_precision_loss)]
    let s = ms as f64 / 1000.0;
    s
}

/// The enum symbols stored in text columns.
pub fn transaction_and_property_type(event: &PropertyEvent) -> (String, String) {
    event.property.as_ref().map_or_else(
        || ("unknown".to_string(), "unknown".to_string()),
        |p| (enum_text(&p.transaction_type), enum_text(&p.property_type)),
    )
}

fn enum_text<T: serde::Serialize>(value: &T) -> String {
    serde_json::to_value(value)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_else(|| "unknown".to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use schemas::{EventType, Lineage, PropertySnapshot, PropertyType, TransactionType};

    fn event() -> PropertyEvent {
        let mut p = PropertySnapshot::empty();
        p.transaction_type = TransactionType::Sale;
        p.property_type = PropertyType::Apartment;
        p.price = Some(1.0);
        PropertyEvent {
            event_id: "e".into(),
            dedupe_key: "s:e".into(),
            source: "s".into(),
            provider: Provider::StreamEstate,
            provider_property_id: "p".into(),
            property_key: "s:p".into(),
            event_type: EventType::Created,
            occurred_at: 1500,
            received_at: 2000,
            alert_id: None,
            provider_event_type: None,
            change: None,
            property: Some(p),
            lineage: Lineage {
                raw_topic: "t".into(),
                raw_partition: 0,
                raw_offset: 0,
                normalizer_version: "v".into(),
            },
            cleared_fields: None,
            occurred_at_claimed: None,
            unchanged: None,
        }
    }

    #[test]
    fn maps_enums_and_documents() {
        let e = event();
        assert_eq!(provider_name(e.provider), "stream-estate");
        assert_eq!(
            transaction_and_property_type(&e),
            ("sale".to_string(), "apartment".to_string())
        );
        let snapshot: serde_json::Value =
            serde_json::from_str(&snapshot_json(&e).expect("snapshot")).expect("json");
        assert_eq!(snapshot["price"], 1.0);
        assert!(event_json(&e).contains("\"dedupe_key\":\"s:e\""));
        assert!((seconds(1500) - 1.5).abs() < f64::EPSILON);
    }

    fn at(key: &str, occurred_at: i64, offset: i64, snapshot: bool) -> EventToWrite {
        let mut e = event();
        e.property_key = key.into();
        e.occurred_at = occurred_at;
        if !snapshot {
            e.property = None;
        }
        EventToWrite {
            event: e,
            position: Position {
                topic: "t".into(),
                partition: 0,
                offset,
            },
        }
    }

    #[test]
    fn a_batch_upserts_each_property_once_at_its_newest_event() {
        let batch = vec![
            at("a", 20, 1, true),
            at("a", 10, 2, true), // older event, later offset: loses
            at("b", 5, 3, true),
            at("b", 5, 4, true),   // same time: the later offset wins
            at("c", 99, 5, false), // no snapshot: nothing to upsert
        ];
        let kept: Vec<(&str, i64)> = newest_snapshot_per_property(&batch)
            .iter()
            .map(|e| (e.event.property_key.as_str(), e.position.offset))
            .collect();
        assert_eq!(kept, vec![("a", 1), ("b", 4)]);
    }

    #[test]
    fn events_without_snapshot_have_no_property_document() {
        let mut e = event();
        e.property = None;
        assert_eq!(snapshot_json(&e), None);
        assert_eq!(
            transaction_and_property_type(&e),
            ("unknown".to_string(), "unknown".to_string())
        );
    }

    #[test]
    fn a_batch_keeps_one_event_per_dedupe_key_the_newest_version_winning() {
        let versioned = |key: &str, version: &str, offset: i64| {
            let mut item = at("s:p", 1, offset, true);
            item.event.dedupe_key = key.into();
            item.event.lineage.normalizer_version = version.into();
            item
        };
        let batch = vec![
            versioned("a", "0.9.0", 1),
            versioned("b", "0.9.0", 2),
            versioned("a", "0.10.0", 3),
            versioned("a", "0.9.5", 4),
        ];
        let kept: Vec<(&str, &str)> = one_per_dedupe_key(&batch)
            .iter()
            .map(|e| {
                (
                    e.event.dedupe_key.as_str(),
                    e.event.lineage.normalizer_version.as_str(),
                )
            })
            .collect();
        assert_eq!(kept, [("a", "0.10.0"), ("b", "0.9.0")]);
    }
}
