//! The database: contacts with versions, timers, the outbox, and the materialised
//! segment members and scores.

use std::path::Path;
use std::sync::Arc;

use nurture::engine::{ContactState, Effect};
use nurture::host::{ContactStore, StoreError, StoredContact, Versioned};
use nurture::{ContactId, Program, Schema, Timestamp};
use rusqlite::{params, Connection, OpenFlags, OptionalExtension};

use crate::error::Error;
use crate::migrations;

/// Where an effect is in the outbox.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum OutboxStatus {
    /// Ready, waiting for (another) delivery attempt.
    Pending,
    /// Held for a person's approval.
    Held,
    /// Delivered.
    Delivered,
    /// Given up after the retry policy's attempts; the last error is recorded.
    Dead,
    /// Rejected by a person.
    Rejected,
}

impl OutboxStatus {
    /// Every status.
    pub const ALL: [OutboxStatus; 5] = [
        OutboxStatus::Pending,
        OutboxStatus::Held,
        OutboxStatus::Delivered,
        OutboxStatus::Dead,
        OutboxStatus::Rejected,
    ];

    /// The name stored in the `status` column.
    pub fn as_str(self) -> &'static str {
        match self {
            OutboxStatus::Pending => "pending",
            OutboxStatus::Held => "held",
            OutboxStatus::Delivered => "delivered",
            OutboxStatus::Dead => "dead",
            OutboxStatus::Rejected => "rejected",
        }
    }

    fn parse(text: &str) -> Option<OutboxStatus> {
        OutboxStatus::ALL.into_iter().find(|s| s.as_str() == text)
    }
}

/// One row of the outbox.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct OutboxEntry {
    /// The effect.
    pub effect: Effect,
    /// Where it is.
    pub status: OutboxStatus,
    /// Delivery attempts so far.
    pub attempts: u32,
    /// The last delivery error, or why it was given up or rejected.
    pub last_error: Option<String>,
}

/// A contact's score as materialised on its last write.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct StoredScore {
    /// The score model's id.
    pub score: String,
    /// Its value at `as_of` (decay after that is not applied).
    pub value: f64,
    /// The contact's last change.
    pub as_of: Timestamp,
}

/// The SQLite database of a host. Implements [`ContactStore`]; the host's driver,
/// [`SqliteHost`](crate::SqliteHost), writes through it too.
pub struct SqliteStore {
    pub(crate) conn: Connection,
    schema: Arc<Schema>,
    /// For materialising scores on write (none: the `scores` table is not written).
    program: Option<Arc<Program>>,
}

impl std::fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteStore").field("path", &self.conn.path()).finish_non_exhaustive()
    }
}

/// Milliseconds since the Unix epoch, by the wall clock.
pub(crate) fn wall_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis().min(i64::MAX as u128) as i64)
}

impl SqliteStore {
    /// Opens (or creates) the database at `path` for contacts of `schema`, in WAL mode
    /// with `synchronous = FULL`, and applies the missing [migrations](crate::MIGRATIONS).
    ///
    /// # Errors
    ///
    /// [`Error::TooNew`] for a database of a newer version, [`Error::Corrupt`] for a
    /// file that is not a database, [`Error::Io`] when it cannot be opened.
    pub fn open(path: impl AsRef<Path>, schema: Arc<Schema>) -> Result<SqliteStore, Error> {
        let flags = OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_CREATE
            | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let conn = Connection::open_with_flags(path, flags)?;
        SqliteStore::setup(conn, schema, true)
    }

    /// A private database in memory (for tests; nothing survives the process).
    ///
    /// # Errors
    ///
    /// As [`SqliteStore::open`].
    pub fn open_in_memory(schema: Arc<Schema>) -> Result<SqliteStore, Error> {
        SqliteStore::setup(Connection::open_in_memory()?, schema, false)
    }

    fn setup(mut conn: Connection, schema: Arc<Schema>, wal: bool) -> Result<SqliteStore, Error> {
        // Another process (a backup, an operator's query) may hold the lock briefly.
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        if wal {
            let mode: String = conn.query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))?;
            if !mode.eq_ignore_ascii_case("wal") {
                return Err(Error::Sqlite(format!("could not switch to WAL mode (journal mode is {mode})")));
            }
        }
        // A 64 MiB page cache (the default is 2 MiB), and temporary b-trees in memory.
        conn.execute_batch(
            "PRAGMA synchronous = FULL; PRAGMA cache_size = -65536; PRAGMA temp_store = MEMORY",
        )?;
        migrations::migrate(&mut conn)?;
        Ok(SqliteStore { conn, schema, program: None })
    }

    /// Materialises scores with this program's scorer from now on (the host sets it).
    pub fn set_program(&mut self, program: Arc<Program>) {
        self.schema = program.schema_arc().clone();
        self.program = Some(program);
    }

    /// The database file (`None` in memory).
    pub fn path(&self) -> Option<&Path> {
        self.conn.path().filter(|p| !p.is_empty()).map(Path::new)
    }

    /// The schema contacts are read with.
    pub fn schema(&self) -> &Arc<Schema> {
        &self.schema
    }

    /// The schema version of the database (the highest migration applied).
    ///
    /// # Errors
    ///
    /// When the query fails.
    pub fn schema_version(&self) -> Result<u32, Error> {
        Ok(self.conn.query_row("SELECT max(version) FROM schema_migrations", [], |r| r.get(0))?)
    }

    /// Limits the database to `pages` pages (`PRAGMA max_page_count`); a write that needs
    /// more fails with [`Error::DiskFull`]. Returns the limit in force.
    ///
    /// # Errors
    ///
    /// When the pragma fails.
    pub fn set_max_page_count(&mut self, pages: u64) -> Result<u64, Error> {
        Ok(self.conn.query_row(&format!("PRAGMA max_page_count = {pages}"), [], |r| r.get(0))?)
    }

    /// The database's size: pages in use times the page size (the WAL not counted; it is
    /// folded in at checkpoints).
    ///
    /// # Errors
    ///
    /// When the query fails.
    pub fn size_bytes(&self) -> Result<u64, Error> {
        let pages: u64 = self.conn.query_row("PRAGMA page_count", [], |r| r.get(0))?;
        let size: u64 = self.conn.query_row("PRAGMA page_size", [], |r| r.get(0))?;
        Ok(pages * size)
    }

    /// Copies the whole database, consistently, to `path` (SQLite's `VACUUM INTO`), while
    /// the host keeps its connection; the copy is a database on its own.
    ///
    /// # Errors
    ///
    /// When the copy fails (the target exists, the disk is full).
    pub fn backup_to(&self, path: impl AsRef<Path>) -> Result<(), Error> {
        let path = path.as_ref().to_str().ok_or_else(|| Error::Io("the backup path is not UTF-8".into()))?;
        self.conn.execute("VACUUM INTO ?1", params![path])?;
        Ok(())
    }

    /// How many contacts are stored.
    ///
    /// # Errors
    ///
    /// When the query fails.
    pub fn contact_count(&self) -> Result<u64, Error> {
        Ok(self.conn.query_row("SELECT count(*) FROM contacts", [], |r| r.get(0))?)
    }

    /// Whether a contact is stored.
    ///
    /// # Errors
    ///
    /// When the query fails.
    pub fn contains(&self, id: &ContactId) -> Result<bool, Error> {
        let mut stmt = self.conn.prepare_cached("SELECT 1 FROM contacts WHERE id = ?1")?;
        Ok(stmt.exists(params![id.as_str()])?)
    }

    /// Every stored contact id, in order.
    ///
    /// # Errors
    ///
    /// When the query fails.
    pub fn contact_ids(&self) -> Result<Vec<ContactId>, Error> {
        let mut stmt = self.conn.prepare_cached("SELECT id FROM contacts ORDER BY id")?;
        let rows = stmt.query_map([], |r| r.get::<_, String>(0))?;
        rows.map(|r| Ok(ContactId::from(r?))).collect()
    }

    /// The members of a segment, in id order.
    ///
    /// # Errors
    ///
    /// When the query fails.
    pub fn segment_members(&self, segment: &str) -> Result<Vec<ContactId>, Error> {
        let mut stmt = self
            .conn
            .prepare_cached("SELECT contact FROM segment_members WHERE segment = ?1 ORDER BY contact")?;
        let rows = stmt.query_map(params![segment], |r| r.get::<_, String>(0))?;
        rows.map(|r| Ok(ContactId::from(r?))).collect()
    }

    /// Every non-empty segment and its size, in segment order.
    ///
    /// # Errors
    ///
    /// When the query fails.
    pub fn segment_sizes(&self) -> Result<Vec<(String, u64)>, Error> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT segment, count(*) FROM segment_members GROUP BY segment ORDER BY segment",
        )?;
        let rows = stmt.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, u64>(1)?)))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Contacts whose wake-up is at or before `at`, earliest first (then by id), at most
    /// `limit`.
    ///
    /// # Errors
    ///
    /// When the query fails or a row is damaged.
    pub fn due_before(&self, at: Timestamp, limit: usize) -> Result<Vec<(ContactId, Timestamp)>, Error> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT contact, at_s, at_ns FROM timers
             WHERE at_s < ?1 OR (at_s = ?1 AND at_ns <= ?2)
             ORDER BY at_s, at_ns, contact LIMIT ?3",
        )?;
        let rows = stmt.query_map(params![at.unix_seconds(), at.subsec_nanos(), limit as i64], |r| {
            Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?, r.get::<_, u32>(2)?))
        })?;
        let mut out = Vec::new();
        for row in rows {
            let (contact, s, ns) = row?;
            let at = timestamp(&contact, s, ns)?;
            out.push((ContactId::from(contact), at));
        }
        Ok(out)
    }

    /// Every scheduled wake-up, earliest first.
    pub(crate) fn timers(&self) -> Result<Vec<(ContactId, Timestamp)>, Error> {
        let mut stmt = self.conn.prepare_cached("SELECT contact, at_s, at_ns FROM timers")?;
        let rows =
            stmt.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?, r.get::<_, u32>(2)?)))?;
        let mut out = Vec::new();
        for row in rows {
            let (contact, s, ns) = row?;
            out.push((ContactId::from(contact.as_str()), timestamp(&contact, s, ns)?));
        }
        Ok(out)
    }

    /// A contact's wake-up, if one is scheduled.
    ///
    /// # Errors
    ///
    /// When the query fails.
    pub fn wake_up(&self, id: &ContactId) -> Result<Option<Timestamp>, Error> {
        let mut stmt = self.conn.prepare_cached("SELECT at_s, at_ns FROM timers WHERE contact = ?1")?;
        let row = stmt
            .query_row(params![id.as_str()], |r| Ok((r.get::<_, i64>(0)?, r.get::<_, u32>(1)?)))
            .optional()?;
        row.map(|(s, ns)| timestamp(id.as_str(), s, ns)).transpose()
    }

    /// How many outbox entries have each status.
    ///
    /// # Errors
    ///
    /// When the query fails.
    pub fn outbox_counts(&self) -> Result<Vec<(OutboxStatus, u64)>, Error> {
        let mut stmt = self.conn.prepare_cached("SELECT status, count(*) FROM outbox GROUP BY status")?;
        let rows = stmt.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, u64>(1)?)))?;
        let mut out = Vec::new();
        for row in rows {
            let (status, n) = row?;
            let status = OutboxStatus::parse(&status)
                .ok_or_else(|| Error::Corrupt(format!("outbox status `{status}`")))?;
            out.push((status, n));
        }
        out.sort();
        Ok(out)
    }

    /// Outbox entries with a status, in commit order, at most `limit`.
    ///
    /// # Errors
    ///
    /// When the query fails or a row is damaged.
    pub fn effects_by_status(&self, status: OutboxStatus, limit: usize) -> Result<Vec<OutboxEntry>, Error> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT contact, effect, attempts, last_error FROM outbox WHERE status = ?1 ORDER BY seq LIMIT ?2",
        )?;
        let rows = stmt.query_map(params![status.as_str(), limit as i64], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, u32>(2)?,
                r.get::<_, Option<String>>(3)?,
            ))
        })?;
        let mut out = Vec::new();
        for row in rows {
            let (contact, effect, attempts, last_error) = row?;
            out.push(OutboxEntry { effect: decode_effect(&contact, &effect)?, status, attempts, last_error });
        }
        Ok(out)
    }

    /// A contact's scores as of its last change, in score order.
    ///
    /// # Errors
    ///
    /// When the query fails.
    pub fn scores(&self, id: &ContactId) -> Result<Vec<StoredScore>, Error> {
        let mut stmt = self
            .conn
            .prepare_cached("SELECT score, value, as_of FROM scores WHERE contact = ?1 ORDER BY score")?;
        let rows = stmt.query_map(params![id.as_str()], |r| {
            Ok((r.get::<_, String>(0)?, r.get::<_, f64>(1)?, r.get::<_, String>(2)?))
        })?;
        let mut out = Vec::new();
        for row in rows {
            let (score, value, as_of) = row?;
            let as_of = Timestamp::parse(&as_of).map_err(|e| Error::BadRow {
                contact: id.as_str().to_string(),
                what: "score",
                message: e.to_string(),
            })?;
            out.push(StoredScore { score, value, as_of });
        }
        Ok(out)
    }

    /// The contacts with the highest value of a score (as of their last change), best
    /// first, at most `limit`.
    ///
    /// # Errors
    ///
    /// When the query fails.
    pub fn top_scores(&self, score: &str, limit: usize) -> Result<Vec<(ContactId, f64)>, Error> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT contact, value FROM scores WHERE score = ?1 ORDER BY value DESC, contact LIMIT ?2",
        )?;
        let rows = stmt
            .query_map(params![score, limit as i64], |r| Ok((r.get::<_, String>(0)?, r.get::<_, f64>(1)?)))?;
        rows.map(|r| r.map(|(c, v)| (ContactId::from(c), v)).map_err(Error::from)).collect()
    }

    /// Reads a contact row.
    pub(crate) fn read(&self, id: &ContactId) -> Result<Option<Versioned<StoredContact>>, Error> {
        let mut stmt =
            self.conn.prepare_cached("SELECT version, contact, state FROM contacts WHERE id = ?1")?;
        let row = stmt
            .query_row(params![id.as_str()], |r| {
                Ok((r.get::<_, u64>(0)?, r.get::<_, String>(1)?, r.get::<_, Vec<u8>>(2)?))
            })
            .optional()?;
        let Some((version, contact, state)) = row else {
            return Ok(None);
        };
        let bad = |what: &'static str, message: String| Error::BadRow {
            contact: id.as_str().to_string(),
            what,
            message,
        };
        let json: serde_json::Value =
            serde_json::from_str(&contact).map_err(|e| bad("contact", e.to_string()))?;
        let contact = match self.schema.contact_from_json(&json) {
            Ok(contact) => contact,
            // Written under an earlier program: fields it no longer declares, or whose
            // type changed, are dropped (attributes are matched by name, as
            // `Engine::adopt_contact` does); anything else is a damaged row.
            Err(_) => self
                .schema
                .contact_from_json(&current_fields(&self.schema, json))
                .map_err(|e| bad("contact", e.to_string()))?,
        };
        let state: ContactState = serde_json::from_slice(&state).map_err(|e| bad("state", e.to_string()))?;
        Ok(Some(Versioned { value: StoredContact { contact, state }, version }))
    }

    /// Writes a contact if its version is still `expected`, with its materialised
    /// segment members (changed from `before`'s, or all when `None`) and scores. Must
    /// run inside a transaction or savepoint. Returns the new version.
    pub(crate) fn write(
        &self,
        id: &ContactId,
        value: &StoredContact,
        expected: Option<u64>,
        before: Option<&ContactState>,
    ) -> Result<u64, Error> {
        let contact_json = self
            .schema
            .contact_to_json(&value.contact)
            .map_err(|e| Error::BadContact { contact: id.as_str().to_string(), message: e.to_string() })?;
        let contact_json = contact_json.to_string();
        let state = serde_json::to_vec(&value.state)
            .map_err(|e| Error::BadContact { contact: id.as_str().to_string(), message: e.to_string() })?;
        let last = value.state.last_change().to_string();
        let changed = match expected {
            None => {
                let mut stmt = self.conn.prepare_cached(
                    "INSERT INTO contacts (id, version, contact, state, last_change) VALUES (?1, 1, ?2, ?3, ?4)
                     ON CONFLICT (id) DO NOTHING",
                )?;
                stmt.execute(params![id.as_str(), contact_json, state, last])?
            }
            Some(v) => {
                let mut stmt = self.conn.prepare_cached(
                    "UPDATE contacts SET version = version + 1, contact = ?2, state = ?3, last_change = ?4
                     WHERE id = ?1 AND version = ?5",
                )?;
                stmt.execute(params![id.as_str(), contact_json, state, last, v])?
            }
        };
        if changed != 1 {
            let found: Option<u64> = self
                .conn
                .prepare_cached("SELECT version FROM contacts WHERE id = ?1")?
                .query_row(params![id.as_str()], |r| r.get(0))
                .optional()?;
            return Err(Error::Store(StoreError::Conflict { contact: id.clone(), expected, found }));
        }
        // Segment members: the difference from before.
        let after: Vec<&str> = value.state.segments().collect();
        let previous: Vec<&str> = match before {
            Some(b) => b.segments().collect(),
            None => {
                self.conn
                    .prepare_cached("DELETE FROM segment_members WHERE contact = ?1")?
                    .execute(params![id.as_str()])?;
                Vec::new()
            }
        };
        for left in previous.iter().filter(|s| !after.contains(s)) {
            self.conn
                .prepare_cached("DELETE FROM segment_members WHERE segment = ?1 AND contact = ?2")?
                .execute(params![left, id.as_str()])?;
        }
        for entered in after.iter().filter(|s| !previous.contains(s)) {
            self.conn
                .prepare_cached("INSERT OR IGNORE INTO segment_members (segment, contact) VALUES (?1, ?2)")?
                .execute(params![entered, id.as_str()])?;
        }
        // Scores as of the last change.
        if let (Some(program), Some(scores)) = (&self.program, value.state.scores()) {
            if let Some(scorer) = program.scorer() {
                let at = value.state.last_change();
                for (m, model) in scorer.models().iter().enumerate() {
                    if let Some(v) = scorer.value(scores, m, at).filter(|v| v.is_finite()) {
                        self.conn
                            .prepare_cached(
                                "INSERT INTO scores (contact, score, value, as_of) VALUES (?1, ?2, ?3, ?4)
                                 ON CONFLICT (contact, score) DO UPDATE SET value = excluded.value, as_of = excluded.as_of",
                            )?
                            .execute(params![id.as_str(), model.id().as_str(), v, last])?;
                    }
                }
            }
        }
        Ok(expected.map_or(1, |v| v + 1))
    }

    /// Schedules (or clears) a contact's wake-up.
    pub(crate) fn write_timer(&self, id: &ContactId, at: Option<Timestamp>) -> Result<(), Error> {
        match at {
            Some(at) => {
                self.conn
                    .prepare_cached(
                        "INSERT INTO timers (contact, at_s, at_ns) VALUES (?1, ?2, ?3)
                         ON CONFLICT (contact) DO UPDATE SET at_s = excluded.at_s, at_ns = excluded.at_ns",
                    )?
                    .execute(params![id.as_str(), at.unix_seconds(), at.subsec_nanos()])?;
            }
            None => {
                self.conn
                    .prepare_cached("DELETE FROM timers WHERE contact = ?1")?
                    .execute(params![id.as_str()])?;
            }
        }
        Ok(())
    }

    /// Puts an effect in the outbox unless its key is there already; `true` if added.
    pub(crate) fn enqueue(&self, effect: &Effect, status: OutboxStatus, now_ms: i64) -> Result<bool, Error> {
        let json = serde_json::to_string(effect).map_err(|e| Error::BadContact {
            contact: effect.contact.as_str().to_string(),
            message: format!("effect {}: {e}", effect.key),
        })?;
        let n = self
            .conn
            .prepare_cached(
                "INSERT INTO outbox (key, contact, effect, status, created_ms, next_attempt_ms)
                 VALUES (?1, ?2, ?3, ?4, ?5, 0) ON CONFLICT (key) DO NOTHING",
            )?
            .execute(params![
                effect.key.to_string(),
                effect.contact.as_str(),
                json,
                status.as_str(),
                now_ms
            ])?;
        Ok(n == 1)
    }

    /// Replaces a held effect's row with its decided form and status (an approval).
    pub(crate) fn resolve_held(&self, effect: &Effect, status: OutboxStatus) -> Result<(), Error> {
        let json = serde_json::to_string(effect).map_err(|e| Error::BadContact {
            contact: effect.contact.as_str().to_string(),
            message: format!("effect {}: {e}", effect.key),
        })?;
        self.conn
            .prepare_cached(
                "UPDATE outbox SET effect = ?2, status = ?3, next_attempt_ms = 0 WHERE key = ?1 AND status = 'held'",
            )?
            .execute(params![effect.key.to_string(), json, status.as_str()])?;
        Ok(())
    }

    /// A meta value.
    pub(crate) fn meta(&self, key: &str) -> Result<Option<String>, Error> {
        Ok(self
            .conn
            .prepare_cached("SELECT value FROM meta WHERE key = ?1")?
            .query_row(params![key], |r| r.get(0))
            .optional()?)
    }

    pub(crate) fn set_meta(&self, key: &str, value: &str) -> Result<(), Error> {
        self.conn
            .prepare_cached("INSERT INTO meta (key, value) VALUES (?1, ?2) ON CONFLICT (key) DO UPDATE SET value = excluded.value")?
            .execute(params![key, value])?;
        Ok(())
    }

    /// Runs `f` in a savepoint (inside the host's open transaction, or alone).
    fn atomically<T>(&mut self, f: impl FnOnce(&SqliteStore) -> Result<T, Error>) -> Result<T, Error> {
        self.conn.execute_batch("SAVEPOINT nurture_save")?;
        match f(self) {
            Ok(v) => {
                self.conn.execute_batch("RELEASE nurture_save")?;
                Ok(v)
            }
            Err(e) => {
                // Undo the savepoint's writes; the error that caused it is the one to report.
                let _ = self.conn.execute_batch("ROLLBACK TO nurture_save; RELEASE nurture_save");
                Err(e)
            }
        }
    }
}

pub(crate) fn timestamp(contact: &str, s: i64, ns: u32) -> Result<Timestamp, Error> {
    Timestamp::from_unix(s, ns).map_err(|e| Error::BadRow {
        contact: contact.to_string(),
        what: "timer",
        message: e.to_string(),
    })
}

pub(crate) fn decode_effect(contact: &str, json: &str) -> Result<Effect, Error> {
    serde_json::from_str(json).map_err(|e| Error::BadRow {
        contact: contact.to_string(),
        what: "effect",
        message: e.to_string(),
    })
}

impl ContactStore for SqliteStore {
    fn load(&mut self, id: &ContactId) -> Result<Option<Versioned<StoredContact>>, StoreError> {
        Ok(self.read(id)?)
    }

    fn save(
        &mut self,
        id: &ContactId,
        value: StoredContact,
        expected: Option<u64>,
    ) -> Result<u64, StoreError> {
        let before = match expected {
            Some(_) => self.read(id).ok().flatten().map(|v| v.value.state),
            None => None,
        };
        Ok(self.atomically(|store| store.write(id, &value, expected, before.as_ref()))?)
    }
}

/// A stored contact's JSON with only the attributes `schema` declares with a matching
/// type.
fn current_fields(schema: &Schema, mut json: serde_json::Value) -> serde_json::Value {
    if let Some(attributes) = json.get_mut("attributes").and_then(serde_json::Value::as_object_mut) {
        let fields = schema.contact_fields();
        attributes.retain(|name, value| {
            fields.iter().any(|(field, ty)| {
                field == name
                    && nurture::Value::from_json(value, ty).is_some_and(|v| v != nurture::Value::Null)
            })
        });
    }
    json
}
