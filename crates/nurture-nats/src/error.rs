//! One error type for the crate.

/// What went wrong talking to NATS or handling an input.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The server or the connection failed (timeouts included); retrying may help.
    #[error("nats: {0}")]
    Nats(String),
    /// A compare-and-swap lost: someone else wrote the key since it was read.
    #[error("`{key}` was written by someone else since revision {expected:?}")]
    Conflict {
        /// The key.
        key: String,
        /// The revision expected (`None`: expected absent).
        expected: Option<u64>,
    },
    /// This worker no longer holds the partition's lease; it must stop writing.
    #[error("the lease on partition {0} is lost or expired")]
    LeaseLost(u32),
    /// A stored value could not be read.
    #[error("corrupt entry `{key}`: {message}")]
    Corrupt {
        /// The key.
        key: String,
        /// Why.
        message: String,
    },
    /// An input could not be used (it goes to the dead-letter subject, with this text).
    #[error("bad input: {0}")]
    BadInput(String),
}

impl Error {
    pub(crate) fn nats(e: impl std::fmt::Display) -> Error {
        Error::Nats(e.to_string())
    }
}
