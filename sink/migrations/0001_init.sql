-- Initial tables of the PostgreSQL sink. See DESIGN.md, "Sink".

-- Latest known state per property, upserted; an older event never
-- overwrites a newer one (compared on event time, then offset).
CREATE TABLE properties (
    property_key          text PRIMARY KEY,
    source                text NOT NULL,
    provider              text NOT NULL,
    provider_property_id  text NOT NULL,
    transaction_type      text NOT NULL,
    property_type         text NOT NULL,
    title                 text,
    price                 double precision,
    currency              text,
    price_per_m2          double precision,
    surface_m2            double precision,
    rooms                 integer,
    bedrooms              integer,
    bathrooms             integer,
    address               text,
    city                  text,
    postcode              text,
    department            text,
    country               text,
    latitude              double precision,
    longitude             double precision,
    status                text,
    first_seen_at         timestamptz,
    last_seen_at          timestamptz,
    last_event_type       text NOT NULL,
    last_event_at         timestamptz NOT NULL,
    last_event_partition  integer NOT NULL,
    last_event_offset     bigint NOT NULL,
    snapshot              jsonb NOT NULL,
    updated_at            timestamptz NOT NULL DEFAULT clock_timestamp()
);
CREATE INDEX properties_city_idx ON properties (city);
CREATE INDEX properties_postcode_idx ON properties (postcode);

-- One row per unique event, keyed by its dedupe key.
CREATE TABLE property_events (
    dedupe_key          text PRIMARY KEY,
    event_id            text NOT NULL,
    property_key        text NOT NULL,
    source              text NOT NULL,
    event_type          text NOT NULL,
    occurred_at         timestamptz NOT NULL,
    received_at         timestamptz NOT NULL,
    alert_id            text,
    change_field        text,
    change_old_value    text,
    change_new_value    text,
    change_percent      double precision,
    raw_topic           text NOT NULL,
    raw_partition       integer NOT NULL,
    raw_offset          bigint NOT NULL,
    normalizer_version  text NOT NULL,
    kafka_topic         text NOT NULL,
    kafka_partition     integer NOT NULL,
    kafka_offset        bigint NOT NULL,
    event               jsonb NOT NULL,
    committed_at        timestamptz NOT NULL DEFAULT clock_timestamp()
);
CREATE INDEX property_events_property_idx ON property_events (property_key, occurred_at);

-- Consumed offsets, written in the same transaction as the rows.
CREATE TABLE sink_offsets (
    consumer_group  text NOT NULL,
    topic           text NOT NULL,
    partition       integer NOT NULL,
    next_offset     bigint NOT NULL,
    updated_at      timestamptz NOT NULL DEFAULT clock_timestamp(),
    PRIMARY KEY (consumer_group, topic, partition)
);
