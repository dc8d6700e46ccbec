-- Schema version 3: the fingerprint history holds closed incidents only
-- (as SQLite's schema 6).
--
-- An open incident is found by `incidents_open_fingerprint` (unique, open
-- only); the latest closed one by this index, which is read only when the
-- fingerprint has no open incident. Before, every new incident also wrote an
-- entry into a history index over all incidents, at a random place for
-- every new fingerprint. Now an incident enters it when it closes.
DROP INDEX incidents_by_fingerprint;
CREATE INDEX incidents_closed_fingerprint ON incidents (fingerprint, created_at)
    WHERE status IN ('resolved', 'expired');
