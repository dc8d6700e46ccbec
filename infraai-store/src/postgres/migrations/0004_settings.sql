-- Schema version 4: settings, small JSON documents written by
-- compare-and-set on their version (as SQLite's schema 7). value_json holds
-- serde_json text and updated_at fixed-width RFC 3339 text, as everywhere in
-- this schema. The key collates as "C" (byte order), so listings are ordered
-- as in the other stores whatever the database's locale.
CREATE TABLE settings (
    key        TEXT COLLATE "C" PRIMARY KEY,
    value_json TEXT NOT NULL,
    version    BIGINT NOT NULL,
    updated_at TEXT NOT NULL
);
