-- A property's row holds its merged state (DESIGN.md, "Property state"):
-- `state` is the `PropertyState` that `property_state::merge` computes from
-- the property's events (per field, the latest event wins; a field an event
-- does not carry is unknown, never null), as serde JSON. `snapshot` is its
-- merged snapshot, and the typed columns are derived from it by the sink.
-- The row used to be the newest event's snapshot, so a partial event (a
-- sale carrying only its price and date) replaced a whole row with nulls.
--
-- Rows written before this migration have `state IS NULL`. The sink turns
-- such a row into a prior state as if its snapshot came from one event (its
-- last_dedupe_key, last_event_at, last_normalizer_version) the first time a
-- batch touches the property, so an upgrade erases nothing it knew.

ALTER TABLE properties
    ADD COLUMN state jsonb,
    ADD COLUMN sold_price double precision,
    ADD COLUMN sold_at timestamptz,
    ADD COLUMN provider_property_type text,
    ADD COLUMN provider_transaction_type text,
    -- How many distinct events (dedupe keys) the state is built from.
    ADD COLUMN contributing_events integer,
    -- The snapshot fields (paths: price, location.city) the last event set.
    ADD COLUMN last_changed_fields text[];

-- A property known only from reference-only events (Fluximmo sends ids,
-- never data) has a state with no last event.
ALTER TABLE properties
    ALTER COLUMN last_event_type DROP NOT NULL,
    ALTER COLUMN last_event_at DROP NOT NULL,
    ALTER COLUMN last_event_partition DROP NOT NULL,
    ALTER COLUMN last_event_offset DROP NOT NULL;

-- What the rows from before already know of the new columns (a snapshot
-- written by an older sink may hold none of it). `state` stays NULL: only
-- the merge writes it.
UPDATE properties SET
    sold_price = (snapshot->>'sold_price')::double precision,
    sold_at = to_timestamp((snapshot->>'sold_at')::double precision / 1000),
    provider_property_type = snapshot->>'provider_property_type',
    provider_transaction_type = snapshot->>'provider_transaction_type',
    contributing_events = 1
WHERE state IS NULL;
