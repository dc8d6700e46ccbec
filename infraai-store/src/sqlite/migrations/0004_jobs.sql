-- Schema version 4: leased jobs and the replica of each audit record.
--
-- A job is background work that runs once across the replicas sharing a
-- store. Its holder renews `lease_until` while it works; a job with no owner,
-- or whose lease ended, is taken by another replica. Times are fixed-width
-- RFC 3339 strings, so text order is time order.
CREATE TABLE jobs (
    key         TEXT PRIMARY KEY,
    owner       TEXT,
    lease_until TEXT,
    claims      INTEGER NOT NULL
);
CREATE INDEX jobs_by_lease ON jobs (lease_until);

ALTER TABLE audit ADD COLUMN replica TEXT;
