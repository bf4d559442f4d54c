-- A property's row remembers which event (dedupe key) and which normalizer
-- version produced it, so a replay of that same event by an older
-- normalizer cannot overwrite a correction (DESIGN.md, "Normalize").
ALTER TABLE properties
    ADD COLUMN last_dedupe_key text,
    ADD COLUMN last_normalizer_version text;
