-- infraai metadata store on PostgreSQL, schema version 1: the SQLite schema
-- (versions 1-3) in one step, with the same columns and encodings.
-- Timestamps are fixed-width RFC 3339 UTC text (text order = time order, and
-- the codec is shared with SQLite). Enum columns hold the domain's serde names
-- (snake_case). *_json columns hold serde_json text (TEXT, not JSONB, so the
-- bytes read back are the bytes written: key order and float digits kept).

CREATE TABLE deployments (
    id         TEXT PRIMARY KEY,
    cloud      TEXT NOT NULL,
    region     TEXT NOT NULL,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    doc_json   TEXT NOT NULL
);
CREATE INDEX deployments_by_created ON deployments (created_at);

-- Resource name -> deployment, for find_deployment_by_resource.
CREATE TABLE deployment_resources (
    deployment_id TEXT NOT NULL REFERENCES deployments (id) ON DELETE CASCADE,
    resource      TEXT NOT NULL,
    PRIMARY KEY (deployment_id, resource)
);
CREATE INDEX deployment_resources_by_resource ON deployment_resources (resource);

-- doc_json holds the run without its phase history, which lives in run_phases.
CREATE TABLE runs (
    id            TEXT PRIMARY KEY,
    goal          TEXT NOT NULL,
    phase         TEXT NOT NULL,
    deployment_id TEXT,
    dry_run       BOOLEAN NOT NULL,
    error         TEXT,
    created_at    TEXT NOT NULL,
    updated_at    TEXT NOT NULL,
    doc_json      TEXT NOT NULL
);
CREATE INDEX runs_by_created ON runs (created_at);
CREATE INDEX runs_by_deployment ON runs (deployment_id);

CREATE TABLE run_phases (
    run_id TEXT NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    seq    BIGINT NOT NULL,
    phase  TEXT NOT NULL,
    at     TEXT NOT NULL,
    note   TEXT,
    PRIMARY KEY (run_id, seq)
);

-- One row per incident; the alert columns hold its latest alert.
CREATE TABLE incidents (
    id                   TEXT PRIMARY KEY,
    fingerprint          TEXT NOT NULL,
    status               TEXT NOT NULL,
    source               TEXT NOT NULL,
    policy_name          TEXT NOT NULL,
    resource             TEXT NOT NULL,
    resource_type        TEXT NOT NULL,
    cloud                TEXT NOT NULL,
    metric               TEXT NOT NULL,
    value                DOUBLE PRECISION,
    threshold            DOUBLE PRECISION,
    severity             TEXT NOT NULL,
    alert_state          TEXT NOT NULL,
    started_at           TEXT NOT NULL,
    labels_json          TEXT NOT NULL,
    raw_json             TEXT NOT NULL,
    occurrences          BIGINT NOT NULL,
    decision_json        TEXT,
    guardrail_notes_json TEXT NOT NULL,
    deployment_id        TEXT,
    note                 TEXT,
    created_at           TEXT NOT NULL,
    updated_at           TEXT NOT NULL
);
-- At most one open incident per fingerprint, whatever a writer does.
-- The closed statuses are IncidentStatus::is_closed (checked by a unit test).
CREATE UNIQUE INDEX incidents_open_fingerprint ON incidents (fingerprint)
    WHERE status NOT IN ('resolved', 'expired');
CREATE INDEX incidents_by_fingerprint ON incidents (fingerprint, created_at);
CREATE INDEX incidents_by_created ON incidents (created_at);
CREATE INDEX incidents_by_status ON incidents (status);
CREATE INDEX incidents_by_resource ON incidents (resource);

-- The one decision of each incident (also in incidents.decision_json for reads).
CREATE TABLE decisions (
    incident_id          TEXT PRIMARY KEY REFERENCES incidents (id),
    decision_json        TEXT NOT NULL,
    guardrail_notes_json TEXT NOT NULL,
    routed_to            TEXT NOT NULL,
    decided_at           TEXT NOT NULL
);

CREATE TABLE approvals (
    seq           BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    incident_id   TEXT NOT NULL,
    approved      BOOLEAN NOT NULL,
    actor_channel TEXT NOT NULL,
    actor_id      TEXT NOT NULL,
    actor_json    TEXT NOT NULL,
    effective     BOOLEAN NOT NULL,
    at            TEXT NOT NULL
);
CREATE INDEX approvals_by_incident ON approvals (incident_id, seq);

CREATE TABLE actions (
    seq          BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    id           TEXT NOT NULL UNIQUE,
    incident_id  TEXT NOT NULL,
    resource     TEXT NOT NULL,
    action_json  TEXT NOT NULL,
    success      BOOLEAN NOT NULL,
    summary      TEXT NOT NULL,
    details_json TEXT NOT NULL,
    started_at   TEXT NOT NULL,
    finished_at  TEXT NOT NULL
);
CREATE INDEX actions_by_incident ON actions (incident_id, seq);
CREATE INDEX actions_by_resource ON actions (resource, started_at);

-- Append-only: the triggers refuse every UPDATE, DELETE and TRUNCATE,
-- whoever issues it (only a superuser dropping the triggers gets around them).
CREATE TABLE audit (
    seq         BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    id          TEXT NOT NULL UNIQUE,
    at          TEXT NOT NULL,
    step        TEXT NOT NULL,
    incident_id TEXT,
    run_id      TEXT,
    actor       TEXT NOT NULL,
    input_json  TEXT NOT NULL,
    reasoning   TEXT,
    confidence  DOUBLE PRECISION,
    outcome     TEXT NOT NULL
);
CREATE INDEX audit_by_incident ON audit (incident_id, seq);
CREATE INDEX audit_by_run ON audit (run_id, seq);
CREATE FUNCTION infraai_audit_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'audit records are append-only' USING ERRCODE = 'insufficient_privilege';
END;
$$;
CREATE TRIGGER audit_no_update BEFORE UPDATE OR DELETE ON audit
    FOR EACH ROW EXECUTE FUNCTION infraai_audit_append_only();
CREATE TRIGGER audit_no_truncate BEFORE TRUNCATE ON audit
    FOR EACH STATEMENT EXECUTE FUNCTION infraai_audit_append_only();

-- The STOP AUTONOMY switch: one row, always present (a claim locks it FOR
-- SHARE, so engaging the switch waits for claims in flight and vice versa).
CREATE TABLE kill_switch (
    id      INTEGER PRIMARY KEY CHECK (id = 1),
    engaged BOOLEAN NOT NULL,
    set_by  TEXT,
    reason  TEXT,
    set_at  TEXT
);
INSERT INTO kill_switch (id, engaged) VALUES (1, FALSE);

-- Named cursors (e.g. a chat channel's update offset).
CREATE TABLE cursors (
    name       TEXT PRIMARY KEY,
    value      BIGINT NOT NULL,
    updated_at TEXT NOT NULL
);
