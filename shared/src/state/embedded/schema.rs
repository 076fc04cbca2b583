//! The embedded store's tables, and the columns added since the first schema
//! (a database made by an earlier version gets them on open).

use rusqlite::Connection;

pub(super) const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS shard (
    consumer        TEXT    NOT NULL,
    stream_arn      TEXT    NOT NULL,
    shard_id        TEXT    NOT NULL,
    checkpoint_seq  TEXT,
    checkpoint_sub  INTEGER,
    head_seq        TEXT,
    head_sub        INTEGER,
    head_attempts   INTEGER,
    version         INTEGER NOT NULL,
    lineage         TEXT    NOT NULL DEFAULT 'unknown',
    parents         TEXT    NOT NULL DEFAULT '[]',
    ended           INTEGER NOT NULL DEFAULT 0,
    children        TEXT    NOT NULL DEFAULT '[]',
    delivered       TEXT    NOT NULL DEFAULT '{}',
    done_after      TEXT    NOT NULL DEFAULT '',
    failing_heads   TEXT    NOT NULL DEFAULT '',
    PRIMARY KEY (consumer, stream_arn, shard_id)
);
DROP TABLE IF EXISTS sink_progress;
CREATE TABLE IF NOT EXISTS key_progress (
    consumer        TEXT    NOT NULL,
    stream_arn      TEXT    NOT NULL,
    shard_id        TEXT    NOT NULL,
    partition_key   TEXT    NOT NULL,
    checkpoint_seq  TEXT,
    checkpoint_sub  INTEGER,
    head_seq        TEXT,
    head_sub        INTEGER,
    head_attempts   INTEGER,
    delivered       TEXT    NOT NULL DEFAULT '{}',
    version         INTEGER NOT NULL DEFAULT 0,
    expires_at      INTEGER NOT NULL DEFAULT 0,
    done_after      TEXT    NOT NULL DEFAULT '',
    failing_heads   TEXT    NOT NULL DEFAULT '',
    PRIMARY KEY (consumer, stream_arn, shard_id, partition_key)
);
CREATE TABLE IF NOT EXISTS dedup (
    consumer    TEXT    NOT NULL,
    key         TEXT    NOT NULL,
    owner       TEXT    NOT NULL,
    expires_at  INTEGER NOT NULL,
    in_flight   INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (consumer, key)
);
CREATE TABLE IF NOT EXISTS quarantine (
    id                  INTEGER PRIMARY KEY AUTOINCREMENT,
    consumer            TEXT    NOT NULL,
    stream_arn          TEXT    NOT NULL,
    shard_id            TEXT    NOT NULL,
    sequence_number     TEXT    NOT NULL,
    subsequence_number  INTEGER NOT NULL,
    partition_key       TEXT    NOT NULL,
    reason              TEXT    NOT NULL,
    detail              TEXT    NOT NULL,
    attempts            INTEGER NOT NULL,
    quarantined_at      INTEGER NOT NULL,
    data                BLOB    NOT NULL,
    explicit_hash_key   TEXT,
    replay_started_at   INTEGER,
    UNIQUE (consumer, stream_arn, shard_id, sequence_number, subsequence_number)
);
";

/// Columns added since the first schema.
const ADDED_COLUMNS: &[(&str, &str, &str)] = &[
    ("shard", "delivered", "TEXT NOT NULL DEFAULT '{}'"),
    ("key_progress", "delivered", "TEXT NOT NULL DEFAULT '{}'"),
    ("key_progress", "version", "INTEGER NOT NULL DEFAULT 0"),
    ("key_progress", "expires_at", "INTEGER NOT NULL DEFAULT 0"),
    ("shard", "done_after", "TEXT NOT NULL DEFAULT ''"),
    ("shard", "failing_heads", "TEXT NOT NULL DEFAULT ''"),
    ("key_progress", "done_after", "TEXT NOT NULL DEFAULT ''"),
    ("key_progress", "failing_heads", "TEXT NOT NULL DEFAULT ''"),
    ("quarantine", "explicit_hash_key", "TEXT"),
    ("quarantine", "replay_started_at", "INTEGER"),
    ("dedup", "in_flight", "INTEGER NOT NULL DEFAULT 0"),
];

pub(super) fn add_missing_columns(conn: &Connection) -> Result<(), rusqlite::Error> {
    crate::sqlite::add_missing_columns(conn, ADDED_COLUMNS)
}
