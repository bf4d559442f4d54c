-- Corrections (DESIGN.md, "Normalize"): a replayed event whose dedupe key
-- is already stored overwrites its property_events row when it comes from
-- a newer normalizer version. Versions compare by their numeric parts
-- ("0.10.0" is newer than "0.9.3"), not as text.

CREATE FUNCTION normalizer_version_key(version text) RETURNS bigint[]
    LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
    RETURN ARRAY(SELECT m[1]::bigint FROM regexp_matches(version, '([0-9]+)', 'g') AS m);
