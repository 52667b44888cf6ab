//! The crate's error.

use nurture::engine::EngineError;
use nurture::host::StoreError;
use rusqlite::ErrorCode;

/// Why the store or the host refused or failed. Every variant says whether anything was
/// lost: a failed transaction is rolled back whole, so what was committed before it stays.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The disk (or the configured `max_page_count`) is full. The transaction in
    /// progress was rolled back; everything committed before it is intact.
    #[error(
        "the database is full ({0}); the uncommitted steps were rolled back and nothing committed was lost: \
         free space or raise the page limit, then resume from the host's cursor"
    )]
    DiskFull(String),
    /// The operating system reported an I/O error. The transaction in progress was rolled
    /// back; everything committed before it is intact.
    #[error(
        "i/o error on the database ({0}); the uncommitted steps were rolled back and nothing committed was lost"
    )]
    Io(String),
    /// The file is not a SQLite database, or is damaged.
    #[error("the database is corrupt or not a nurture-sqlite database: {0}")]
    Corrupt(String),
    /// A stored contact could not be read back (a damaged or hand-edited row).
    #[error("contact `{contact}`: the stored {what} cannot be read: {message}")]
    BadRow {
        /// The contact.
        contact: String,
        /// Which column (`contact`, `state`, `effect`, `timer`).
        what: &'static str,
        /// The decoder's message.
        message: String,
    },
    /// The database was migrated by a newer version of this crate.
    #[error(
        "the database has schema version {found}, newer than this code's {known}: it was written by a newer \
         nurture-sqlite; run that version or restore a backup (nothing was changed)"
    )]
    TooNew {
        /// The version found.
        found: u32,
        /// The newest version this code knows.
        known: u32,
    },
    /// The engine refused the input; the contact is unchanged.
    #[error(transparent)]
    Engine(#[from] EngineError),
    /// A compare-and-swap conflict (another writer saved the contact).
    #[error(transparent)]
    Store(StoreError),
    /// An event dated further ahead of the host's clock than
    /// [`HostOptions::max_ahead`](crate::HostOptions::max_ahead); nothing changed.
    #[error("event `{event}` is dated {at}, more than {limit} ahead of the clock ({clock})")]
    TooFarAhead {
        /// The event.
        event: String,
        /// Its instant.
        at: nurture::Timestamp,
        /// The host's clock.
        clock: nurture::Timestamp,
        /// The limit.
        limit: nurture::Duration,
    },
    /// An event or approval for a contact that is not stored.
    #[error("no contact `{0}`; add it first")]
    UnknownContact(String),
    /// A contact's attributes could not be written as JSON (a non-finite double).
    #[error("contact `{contact}`: {message}")]
    BadContact {
        /// The contact.
        contact: String,
        /// Why.
        message: String,
    },
    /// Any other SQLite error.
    #[error("sqlite: {0}")]
    Sqlite(String),
}

impl Error {
    /// Whether this error rolled back the host's uncommitted group (a database failure,
    /// as opposed to an input the engine refused).
    pub fn is_database_failure(&self) -> bool {
        matches!(self, Error::DiskFull(_) | Error::Io(_) | Error::Corrupt(_) | Error::Sqlite(_))
    }
}

impl From<rusqlite::Error> for Error {
    fn from(e: rusqlite::Error) -> Error {
        let text = e.to_string();
        match e.sqlite_error_code() {
            Some(ErrorCode::DiskFull) => Error::DiskFull(text),
            Some(ErrorCode::SystemIoFailure) | Some(ErrorCode::CannotOpen) => Error::Io(text),
            Some(ErrorCode::DatabaseCorrupt) | Some(ErrorCode::NotADatabase) => Error::Corrupt(text),
            _ => Error::Sqlite(text),
        }
    }
}

impl From<StoreError> for Error {
    fn from(e: StoreError) -> Error {
        Error::Store(e)
    }
}

impl From<Error> for StoreError {
    fn from(e: Error) -> StoreError {
        match e {
            Error::Store(e) => e,
            other => StoreError::backend(other),
        }
    }
}
