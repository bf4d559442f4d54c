-- Every event about a property rewrites the property's row. Leaving a
-- third of each page free lets PostgreSQL put the new version on the same
-- page as the old one and skip all five indexes (a HOT update) whenever no
-- indexed column changes, which is the usual case: a new price or a new
-- snapshot, not a new city. Pages written before this migration get the
-- free space when they are next rewritten (VACUUM FULL, or as rows move).
ALTER TABLE properties SET (fillfactor = 70);
