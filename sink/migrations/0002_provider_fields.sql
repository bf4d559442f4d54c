-- Typed columns for the fields the widened PropertyEvent carries (issue 4),
-- derived from the stored documents so the upsert and insert statements do
-- not change and the columns can never disagree with the snapshot. Rows
-- written before this migration get them too.

ALTER TABLE properties
    ADD COLUMN insee_code text
        GENERATED ALWAYS AS (snapshot->'location'->>'insee_code') STORED,
    ADD COLUMN region text
        GENERATED ALWAYS AS (snapshot->'location'->>'region') STORED,
    ADD COLUMN dpe_class text
        GENERATED ALWAYS AS (snapshot->>'dpe_class') STORED,
    ADD COLUMN ges_class text
        GENERATED ALWAYS AS (snapshot->>'ges_class') STORED,
    ADD COLUMN advert_count integer
        GENERATED ALWAYS AS (
            CASE WHEN jsonb_typeof(snapshot->'adverts') = 'array'
                 THEN jsonb_array_length(snapshot->'adverts') END) STORED;
CREATE INDEX properties_insee_idx ON properties (insee_code);
CREATE INDEX properties_department_idx ON properties (department);

ALTER TABLE property_events
    ADD COLUMN provider_event_type text
        GENERATED ALWAYS AS (event->>'provider_event_type') STORED;
