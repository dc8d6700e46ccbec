-- Schema version 5: the audit indexes hold only the rows they can find.
--
-- A record of an incident has no run and the other way round, so each index
-- kept an entry (a NULL key) for every record of the other kind: one more
-- page written per commit on the alert path for nothing. `list_audit` asks
-- `incident_id = ?` or `run_id = ?`, which lets the planner use these.
DROP INDEX audit_by_incident;
CREATE INDEX audit_by_incident ON audit (incident_id, seq) WHERE incident_id IS NOT NULL;
DROP INDEX audit_by_run;
CREATE INDEX audit_by_run ON audit (run_id, seq) WHERE run_id IS NOT NULL;
