-- Named cursors (e.g. a chat channel's update offset), schema version 2.
CREATE TABLE cursors (
    name       TEXT PRIMARY KEY,
    value      INTEGER NOT NULL,
    updated_at TEXT NOT NULL
);
