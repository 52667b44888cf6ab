//! Schema versioning: a `schema_migrations` table records the migrations applied; on
//! open, the missing ones are applied in order, each in its own transaction; a database
//! with a migration this code does not know is refused before anything is written.

use rusqlite::{params, Connection, OptionalExtension};

use crate::error::Error;

/// One forward migration.
#[derive(Clone, Copy, Debug)]
pub struct Migration {
    /// Its version (1, 2, ...; applied in order).
    pub version: u32,
    /// What it does.
    pub name: &'static str,
    /// The SQL.
    pub sql: &'static str,
}

/// Every migration, oldest first. The schema version of a database is the highest one
/// applied.
pub const MIGRATIONS: &[Migration] = &[Migration {
    version: 1,
    name: "contacts, timers, outbox, segment members, scores, meta",
    sql: r#"
CREATE TABLE contacts (
    id          TEXT PRIMARY KEY NOT NULL,
    version     INTEGER NOT NULL,
    contact     TEXT NOT NULL,          -- Schema::contact_to_json
    state       BLOB NOT NULL,          -- ContactState as JSON
    last_change TEXT NOT NULL           -- the state's last change, RFC 3339
);                                      -- a rowid table: states are kilobytes, too big for WITHOUT ROWID

CREATE TABLE timers (
    contact TEXT PRIMARY KEY NOT NULL REFERENCES contacts(id),
    at_s    INTEGER NOT NULL,           -- the wake-up, Unix seconds
    at_ns   INTEGER NOT NULL            -- and nanoseconds
) WITHOUT ROWID;
CREATE INDEX timers_due ON timers (at_s, at_ns, contact);

CREATE TABLE outbox (
    seq             INTEGER PRIMARY KEY,        -- commit order
    key             TEXT NOT NULL UNIQUE,       -- the idempotency key, 16 hex digits
    contact         TEXT NOT NULL,
    effect          TEXT NOT NULL,              -- Effect as JSON
    status          TEXT NOT NULL CHECK (status IN ('pending', 'held', 'delivered', 'dead', 'rejected')),
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_ms INTEGER NOT NULL DEFAULT 0, -- wall clock, Unix milliseconds
    last_error      TEXT,
    created_ms      INTEGER NOT NULL,
    done_ms         INTEGER
);
CREATE INDEX outbox_due ON outbox (status, next_attempt_ms, seq);
CREATE INDEX outbox_contact ON outbox (contact);

CREATE TABLE segment_members (
    segment TEXT NOT NULL,
    contact TEXT NOT NULL,
    PRIMARY KEY (segment, contact)
) WITHOUT ROWID;
CREATE INDEX segment_members_contact ON segment_members (contact);

CREATE TABLE scores (
    contact TEXT NOT NULL,
    score   TEXT NOT NULL,
    value   REAL NOT NULL,                 -- as of the state's last change
    as_of   TEXT NOT NULL,
    PRIMARY KEY (contact, score)
) WITHOUT ROWID;
CREATE INDEX scores_by_value ON scores (score, value);

CREATE TABLE meta (
    key   TEXT PRIMARY KEY NOT NULL,
    value TEXT NOT NULL
) WITHOUT ROWID;
"#,
}];

/// The newest schema version this code knows.
pub(crate) fn latest() -> u32 {
    MIGRATIONS.last().map_or(0, |m| m.version)
}

/// Applies the missing migrations; refuses a database newer than the code.
pub(crate) fn migrate(conn: &mut Connection) -> Result<u32, Error> {
    conn.execute_batch(
        "CREATE TABLE IF NOT EXISTS schema_migrations (
             version    INTEGER PRIMARY KEY NOT NULL,
             name       TEXT NOT NULL,
             applied_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
         )",
    )?;
    let found: Option<u32> =
        conn.query_row("SELECT max(version) FROM schema_migrations", [], |r| r.get(0)).optional()?.flatten();
    let found = found.unwrap_or(0);
    let known = latest();
    if found > known {
        return Err(Error::TooNew { found, known });
    }
    for migration in MIGRATIONS.iter().filter(|m| m.version > found) {
        let tx = conn.transaction()?;
        tx.execute_batch(migration.sql)?;
        tx.execute(
            "INSERT INTO schema_migrations (version, name) VALUES (?1, ?2)",
            params![migration.version, migration.name],
        )?;
        tx.commit()?;
    }
    Ok(known)
}
