-- The latest incident of a fingerprint, open or closed (schema version 3):
-- a late firing copy of an episode already resolved is noted, not reopened.
CREATE INDEX incidents_by_fingerprint ON incidents (fingerprint, created_at);
