-- Schema version 7: settings, small JSON documents written by
-- compare-and-set on their version (1 after the first write, one more after
-- each). value_json holds serde_json text; updated_at is fixed-width
-- RFC 3339 text, as everywhere in this schema.
CREATE TABLE settings (
    key        TEXT PRIMARY KEY,
    value_json TEXT NOT NULL,
    version    INTEGER NOT NULL,
    updated_at TEXT NOT NULL
);
