-- Schema version 2: leased jobs and the replica of each audit record.
--
-- A job is background work that runs once across the replicas sharing the
-- database. Its holder renews `lease_until` while it works; a job with no
-- owner, or whose lease ended, is taken by another replica (claims lock the
-- row, and scans skip rows another scan has locked). Times are fixed-width
-- RFC 3339 text, as everywhere in this schema, so text order is time order.
CREATE TABLE jobs (
    key         TEXT PRIMARY KEY,
    owner       TEXT,
    lease_until TEXT,
    claims      INTEGER NOT NULL
);
CREATE INDEX jobs_by_lease ON jobs (lease_until);

ALTER TABLE audit ADD COLUMN replica TEXT;
