-- Normalizer versions compare as semantic versions: a pre-release sorts
-- below its release ("0.2.0-rc.1" < "0.2.0"), which migration 0003's plain
-- list of numbers got backwards (it read "0.2.0-rc.1" as 0, 2, 0, 1).
--
-- The key: the release's numbers, padded to three; then 1 for a release, or
-- 0 followed by the pre-release's numbers. Build metadata ("+abc") is
-- ignored. sink/src/rows.rs `version_key` computes the same key.
CREATE OR REPLACE FUNCTION normalizer_version_key(version text) RETURNS bigint[]
    LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
AS $$
    WITH core AS (
        SELECT split_part(version, '+', 1) AS v
    ), parts AS (
        SELECT split_part(v, '-', 1) AS release,
               CASE WHEN strpos(v, '-') > 0 THEN substr(v, strpos(v, '-') + 1) END AS pre
        FROM core
    ), numbers AS (
        SELECT ARRAY(SELECT m[1]::bigint FROM regexp_matches(release, '([0-9]+)', 'g') AS m)
                   AS release,
               pre
        FROM parts
    )
    SELECT release
        || array_fill(0::bigint, ARRAY[greatest(0, 3 - cardinality(release))])
        || CASE WHEN pre IS NULL THEN ARRAY[1::bigint]
                ELSE ARRAY[0::bigint]
                     || ARRAY(SELECT m[1]::bigint FROM regexp_matches(pre, '([0-9]+)', 'g') AS m)
           END
    FROM numbers
$$;
