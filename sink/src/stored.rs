//! What a batch finds in `properties` for its properties, as a prior state
//! for the merge. Pure: [`StoredColumns`] is what the store's `SELECT ...
//! FOR UPDATE` read ([`crate::statements::SELECT_STATES`]); [`StoredRow::of`]
//! turns it into the state to merge into.
//!
//! A row written since migration `0007` holds its `PropertyState` in
//! `state`. A row from before (`state IS NULL`) holds only the snapshot of
//! the newest event it saw; [`legacy_state`] makes it the state of that one
//! event (its `last_dedupe_key`, `last_event_at`, `last_normalizer_version`,
//! and the event's id and arrival from its `property_events` row), so an
//! upgrade keeps every field the row knew, and the merge still lets a newer
//! event win each field and an older one fill only what the row did not
//! know. A row that cannot be read is never overwritten.

use common::ProviderKind;
use schemas::{EventType, Lineage, PropertyEvent, PropertySnapshot, PropertyState, Provider};

/// The columns of one stored `properties` row the merge needs (times in
/// Unix ms). For a row from before migration `0007`, the last event's key
/// and version fall back to its `property_events` row (found by position
/// for rows from before migration `0004`, which had no key).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct StoredColumns {
    /// `property_key`.
    pub property_key: String,
    /// `state` as JSON text (`None`: a row from before migration `0007`).
    pub state: Option<String>,
    /// `snapshot` as JSON text, read only for a row from before migration
    /// `0007` (`None` otherwise: a state carries its own snapshot).
    pub snapshot: Option<String>,
    /// `source`.
    pub source: String,
    /// `provider` (a [`ProviderKind`] name).
    pub provider: String,
    /// `provider_property_id`.
    pub provider_property_id: String,
    /// `last_event_type`.
    pub last_event_type: Option<String>,
    /// `last_event_at`.
    pub last_event_at: Option<i64>,
    /// `last_event_partition`.
    pub last_event_partition: Option<i32>,
    /// `last_event_offset`.
    pub last_event_offset: Option<i64>,
    /// `last_dedupe_key`.
    pub last_dedupe_key: Option<String>,
    /// `last_normalizer_version`.
    pub last_normalizer_version: Option<String>,
    /// The last event's `event_id` (its `property_events` row; legacy rows only).
    pub last_event_id: Option<String>,
    /// The last event's `received_at` (its `property_events` row; legacy rows only).
    pub last_received_at: Option<i64>,
    /// `first_seen_at` (legacy rows only: a state holds its own).
    pub first_seen_at: Option<i64>,
    /// `last_seen_at` (legacy rows only: a state holds its own).
    pub last_seen_at: Option<i64>,
}

/// The prior state a stored row gives the merge.
#[derive(Debug, Clone, PartialEq)]
pub enum Prior {
    /// The state the row holds.
    State(Box<PropertyState>),
    /// A row from before migration `0007`, as the state of its one event.
    /// It is written the first time a batch touches it, changed or not, so
    /// its `state` is filled.
    Legacy(Box<PropertyState>),
    /// A row whose state (or, for a legacy row, snapshot) does not read:
    /// left as it is, never overwritten by what the batch alone knows.
    Unreadable(String),
}

/// The last event a stored row names, and where it was read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredLastEvent {
    /// Its dedupe key.
    pub dedupe_key: String,
    /// Its normalizer version.
    pub normalizer_version: String,
    /// Its partition on `properties.events`.
    pub partition: i32,
    /// Its offset there.
    pub offset: i64,
}

/// One stored row, ready to merge into.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredRow {
    /// Its state.
    pub prior: Prior,
    /// Its last event's position, kept when that event stays the last.
    pub last_event: Option<StoredLastEvent>,
}

impl StoredRow {
    /// The row `columns` describe.
    pub fn of(columns: &StoredColumns) -> Self {
        let prior = match &columns.state {
            Some(json) => match serde_json::from_str::<PropertyState>(json) {
                Ok(state) => Prior::State(Box::new(state)),
                Err(e) => Prior::Unreadable(format!("its state does not read: {e}")),
            },
            None => match legacy_state(columns) {
                Ok(state) => Prior::Legacy(Box::new(state)),
                Err(why) => Prior::Unreadable(why),
            },
        };
        let last_event = match (columns.last_event_partition, columns.last_event_offset) {
            (Some(partition), Some(offset)) => Some(StoredLastEvent {
                dedupe_key: legacy_key(columns),
                normalizer_version: legacy_version(columns),
                partition,
                offset,
            }),
            _ => None,
        };
        Self { prior, last_event }
    }
}

/// The normalizer version given to a legacy row without one (rows from
/// before migration `0004` whose event row is gone): older than any.
pub const UNKNOWN_VERSION: &str = "0.0.0";

fn legacy_key(columns: &StoredColumns) -> String {
    columns
        .last_dedupe_key
        .clone()
        .unwrap_or_else(|| format!("legacy:{}", columns.property_key))
}

fn legacy_version(columns: &StoredColumns) -> String {
    columns
        .last_normalizer_version
        .clone()
        .unwrap_or_else(|| UNKNOWN_VERSION.to_string())
}

/// A row from before migration `0007` as a state: its snapshot as if one
/// event set it, the row's last event. The row's `first_seen_at` and
/// `last_seen_at` (the earliest and latest an older sink ever stored) are
/// that event's first and last seen, so the row's columns, now derived
/// from its state alone, keep what they showed. Err when the snapshot does
/// not read or the row has no event time.
pub fn legacy_state(columns: &StoredColumns) -> Result<PropertyState, String> {
    let text = columns
        .snapshot
        .as_deref()
        .ok_or_else(|| "its snapshot was not read".to_string())?;
    let mut snapshot: PropertySnapshot =
        serde_json::from_str(text).map_err(|e| format!("its snapshot does not read: {e}"))?;
    snapshot.first_seen_at = columns.first_seen_at.or(snapshot.first_seen_at);
    snapshot.last_seen_at = columns.last_seen_at.or(snapshot.last_seen_at);
    let occurred_at = columns
        .last_event_at
        .ok_or_else(|| "it has no last event time".to_string())?;
    let dedupe_key = legacy_key(columns);
    let event = PropertyEvent {
        event_id: columns
            .last_event_id
            .clone()
            .unwrap_or_else(|| dedupe_key.clone()),
        dedupe_key,
        source: columns.source.clone(),
        provider: provider_of(&columns.provider),
        provider_property_id: columns.provider_property_id.clone(),
        property_key: columns.property_key.clone(),
        event_type: columns
            .last_event_type
            .as_deref()
            .map_or(EventType::Unknown, event_type_of),
        occurred_at,
        received_at: columns.last_received_at.unwrap_or(occurred_at),
        alert_id: None,
        provider_event_type: None,
        change: None,
        property: Some(snapshot),
        lineage: Lineage {
            raw_topic: String::new(),
            raw_partition: 0,
            raw_offset: 0,
            normalizer_version: legacy_version(columns),
        },
        cleared_fields: None,
        occurred_at_claimed: None,
        unchanged: None,
    };
    Ok(property_state::state_of(&event))
}

/// The provider stored as its [`ProviderKind`] name
/// ([`crate::rows::provider_name`]), back.
pub fn provider_of(name: &str) -> Provider {
    ProviderKind::ALL
        .iter()
        .find(|kind| kind.as_str() == name)
        .map_or(Provider::Unknown, |kind| Provider::from(*kind))
}

/// The event type stored as its Avro symbol ([`EventType::as_str`]), back.
fn event_type_of(symbol: &str) -> EventType {
    serde_json::from_value(serde_json::Value::from(symbol)).unwrap_or(EventType::Unknown)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A row as an older sink wrote it: the sample event's snapshot.
    fn legacy_row() -> StoredColumns {
        let event = schemas::sample::price_change();
        StoredColumns {
            property_key: event.property_key.clone(),
            state: None,
            snapshot: Some(serde_json::to_string(&event.property).expect("a snapshot")),
            source: event.source.clone(),
            provider: "generic".into(),
            provider_property_id: event.provider_property_id.clone(),
            last_event_type: Some("price_changed".into()),
            last_event_at: Some(event.occurred_at),
            last_event_partition: Some(2),
            last_event_offset: Some(41),
            last_dedupe_key: Some("generic:old".into()),
            last_normalizer_version: Some("0.1.0".into()),
            last_event_id: Some("old".into()),
            last_received_at: Some(event.occurred_at + 5),
            first_seen_at: None,
            last_seen_at: None,
        }
    }

    #[test]
    fn a_legacy_row_is_the_state_of_its_one_event() {
        let row = StoredRow::of(&legacy_row());
        let Prior::Legacy(state) = &row.prior else {
            panic!("a legacy prior: {row:?}");
        };
        let sample = schemas::sample::price_change();
        assert_eq!(Some(&state.property), sample.property.as_ref());
        assert_eq!(state.provider, Provider::Generic);
        assert_eq!(state.contributing_events, 1);
        let last = state.last_event.as_ref().expect("one event");
        assert_eq!(last.dedupe_key, "generic:old");
        assert_eq!(last.event_id, "old");
        assert_eq!(last.event_type, EventType::PriceChanged);
        assert_eq!(last.normalizer_version, "0.1.0");
        assert!(state.fields.values().all(|v| v.dedupe_key == "generic:old"));
        assert_eq!(
            row.last_event,
            Some(StoredLastEvent {
                dedupe_key: "generic:old".into(),
                normalizer_version: "0.1.0".into(),
                partition: 2,
                offset: 41,
            })
        );
    }

    #[test]
    fn a_newer_event_wins_over_a_legacy_row_and_an_older_one_only_fills_gaps() {
        let row = StoredRow::of(&legacy_row());
        let Prior::Legacy(prior) = row.prior else {
            panic!("a legacy prior");
        };
        let mut newer = schemas::sample::price_change();
        newer.dedupe_key = "generic:new".into();
        newer.occurred_at += 1_000;
        let mut sale = PropertySnapshot::empty();
        sale.sold_price = Some(1.0);
        newer.event_type = EventType::Sold;
        newer.property = Some(sale);
        let merged = property_state::merge(Some(&prior), &newer);
        assert!(merged.changed);
        assert_eq!(merged.state.property.price, prior.property.price, "kept");
        assert_eq!(merged.state.property.status.as_deref(), Some("sold"));
        assert_eq!(merged.state.property.sold_price, Some(1.0));

        let mut older = schemas::sample::price_change();
        older.dedupe_key = "generic:older".into();
        older.occurred_at -= 1_000;
        let mut p = PropertySnapshot::empty();
        p.price = Some(2.0);
        p.title = Some("only the older one says".into());
        older.property = Some(p);
        let merged = property_state::merge(Some(&prior), &older);
        assert_eq!(merged.state.property.price, prior.property.price);
        assert_eq!(
            merged.state.property.title.as_deref(),
            Some("only the older one says")
        );
    }

    /// The seen times an older sink kept (the earliest and latest it ever
    /// stored) become the legacy event's, so the row's columns, derived
    /// from its state, keep showing them (breaker-s16).
    #[test]
    fn a_legacy_rows_seen_times_are_its_states() {
        let columns = StoredColumns {
            first_seen_at: Some(10),
            last_seen_at: Some(20),
            ..legacy_row()
        };
        let Prior::Legacy(state) = StoredRow::of(&columns).prior else {
            panic!("a legacy prior");
        };
        assert_eq!(
            (state.property.first_seen_at, state.property.last_seen_at),
            (Some(10), Some(20))
        );
        assert!(state.fields.contains_key("first_seen_at"));
        let Prior::Legacy(without) = StoredRow::of(&legacy_row()).prior else {
            panic!("a legacy prior");
        };
        assert_eq!(without.property.first_seen_at, None);
    }

    #[test]
    fn a_row_from_before_0004_gets_a_key_and_the_oldest_version() {
        let mut columns = legacy_row();
        columns.last_dedupe_key = None;
        columns.last_normalizer_version = None;
        columns.last_event_id = None;
        columns.last_received_at = None;
        let row = StoredRow::of(&columns);
        let Prior::Legacy(state) = &row.prior else {
            panic!("a legacy prior");
        };
        let last = state.last_event.as_ref().expect("one event");
        assert_eq!(last.dedupe_key, "legacy:generic:prop_1");
        assert_eq!(last.event_id, last.dedupe_key);
        assert_eq!(last.normalizer_version, UNKNOWN_VERSION);
        assert_eq!(
            row.last_event.map(|l| l.dedupe_key),
            Some("legacy:generic:prop_1".into())
        );
    }

    #[test]
    fn a_stored_state_reads_back_as_it_was_written() {
        let state = property_state::state_of(&schemas::sample::price_change());
        let columns = StoredColumns {
            state: Some(serde_json::to_string(&state).expect("JSON")),
            ..legacy_row()
        };
        assert_eq!(StoredRow::of(&columns).prior, Prior::State(Box::new(state)));
    }

    #[test]
    fn an_unreadable_row_is_not_a_prior_to_overwrite() {
        let broken = StoredColumns {
            state: Some("{\"property_key\": 1}".into()),
            ..legacy_row()
        };
        assert!(matches!(
            StoredRow::of(&broken).prior,
            Prior::Unreadable(why) if why.contains("state")
        ));
        let no_snapshot = StoredColumns {
            snapshot: Some("[]".into()),
            ..legacy_row()
        };
        assert!(matches!(
            StoredRow::of(&no_snapshot).prior,
            Prior::Unreadable(why) if why.contains("snapshot")
        ));
    }

    #[test]
    fn stored_names_read_back() {
        for &kind in ProviderKind::ALL {
            assert_eq!(
                provider_of(crate::rows::provider_name(Provider::from(kind))),
                Provider::from(kind)
            );
        }
        assert_eq!(provider_of("nobody"), Provider::Unknown);
        assert_eq!(event_type_of("reference_only"), EventType::ReferenceOnly);
        assert_eq!(event_type_of("no such type"), EventType::Unknown);
    }
}
