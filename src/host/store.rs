//! Where contacts and their engine states live: a trait the host implements over its
//! database, with compare-and-swap versions, and an in-memory implementation.

use hashbrown::HashMap;

use crate::engine::ContactState;
use crate::id::ContactId;
use crate::schema::Contact;

/// A contact's attributes and engine state, as stored.
#[derive(Clone, Debug, PartialEq)]
pub struct StoredContact {
    /// The attributes.
    pub contact: Contact,
    /// The engine's state.
    pub state: ContactState,
}

/// A stored value and its version (incremented by every save).
#[derive(Clone, Debug, PartialEq)]
pub struct Versioned<T> {
    /// The value.
    pub value: T,
    /// Its version.
    pub version: u64,
}

/// Why a store refused.
#[derive(Clone, Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// Someone saved the contact since it was loaded (compare-and-swap failed).
    #[error(
        "contact `{contact}` was saved by someone else (expected version {expected:?}, found {found:?})"
    )]
    Conflict {
        /// The contact.
        contact: ContactId,
        /// The version the save expected.
        expected: Option<u64>,
        /// The version found.
        found: Option<u64>,
    },
    /// The store itself failed (I/O, connection, a full disk); the host's error is the
    /// source.
    #[error("store failure: {0}")]
    Backend(#[source] std::sync::Arc<dyn std::error::Error + Send + Sync>),
}

impl StoreError {
    /// A backend failure from the host's error (or message).
    ///
    /// ```
    /// use nurture::host::StoreError;
    /// let io = std::io::Error::new(std::io::ErrorKind::StorageFull, "disk full");
    /// let error = StoreError::backend(io);
    /// assert_eq!(error.to_string(), "store failure: disk full");
    /// assert!(std::error::Error::source(&error).is_some());
    /// ```
    pub fn backend(error: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> StoreError {
        StoreError::Backend(std::sync::Arc::from(error.into()))
    }
}

/// Loads and saves contacts; implement it over the host's database.
pub trait ContactStore {
    /// The contact and its version, if stored.
    ///
    /// # Errors
    ///
    /// [`StoreError::Backend`] when the store fails.
    fn load(&mut self, id: &ContactId) -> Result<Option<Versioned<StoredContact>>, StoreError>;

    /// Saves the contact if its stored version is still `expected` (`None`: not stored
    /// yet), and returns the new version.
    ///
    /// # Errors
    ///
    /// [`StoreError::Conflict`] when the version differs; nothing is written.
    fn save(
        &mut self,
        id: &ContactId,
        value: StoredContact,
        expected: Option<u64>,
    ) -> Result<u64, StoreError>;

    /// Loads a contact, lets `change` modify it, and saves it if `change` returns `true`
    /// (compare-and-swap against the version loaded). Returns `None` for a contact not
    /// stored, else whether it was saved. The default loads a copy and calls `save`; an
    /// in-memory store can change the contact in place instead, without the copy. A
    /// `change` that returns `false` must have left the contact as it was.
    ///
    /// # Errors
    ///
    /// As [`ContactStore::load`] and [`ContactStore::save`].
    fn modify(
        &mut self,
        id: &ContactId,
        change: &mut dyn FnMut(&mut StoredContact) -> bool,
    ) -> Result<Option<bool>, StoreError> {
        let Some(Versioned { mut value, version }) = self.load(id)? else {
            return Ok(None);
        };
        if !change(&mut value) {
            return Ok(Some(false));
        }
        self.save(id, value, Some(version)).map(|_| Some(true))
    }
}

/// An in-memory [`ContactStore`], for tests, examples and single-process hosts.
#[derive(Clone, Debug, Default)]
pub struct MemoryStore {
    contacts: HashMap<ContactId, Versioned<StoredContact>>,
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> MemoryStore {
        MemoryStore::default()
    }

    /// How many contacts it holds.
    pub fn len(&self) -> usize {
        self.contacts.len()
    }

    /// Whether it holds none.
    pub fn is_empty(&self) -> bool {
        self.contacts.is_empty()
    }

    /// Every stored contact, in no particular order.
    pub fn iter(&self) -> impl Iterator<Item = &StoredContact> {
        self.contacts.values().map(|v| &v.value)
    }

    /// One stored contact.
    pub fn get(&self, id: &ContactId) -> Option<&StoredContact> {
        self.contacts.get(id).map(|v| &v.value)
    }
}

impl ContactStore for MemoryStore {
    fn load(&mut self, id: &ContactId) -> Result<Option<Versioned<StoredContact>>, StoreError> {
        Ok(self.contacts.get(id).cloned())
    }

    fn modify(
        &mut self,
        id: &ContactId,
        change: &mut dyn FnMut(&mut StoredContact) -> bool,
    ) -> Result<Option<bool>, StoreError> {
        // In place: no copy of the state per step.
        let Some(stored) = self.contacts.get_mut(id) else {
            return Ok(None);
        };
        let changed = change(&mut stored.value);
        if changed {
            stored.version += 1;
        }
        Ok(Some(changed))
    }

    fn save(
        &mut self,
        id: &ContactId,
        value: StoredContact,
        expected: Option<u64>,
    ) -> Result<u64, StoreError> {
        let found = self.contacts.get(id).map(|v| v.version);
        if found != expected {
            return Err(StoreError::Conflict { contact: id.clone(), expected, found });
        }
        let version = found.map_or(1, |v| v + 1);
        self.contacts.insert(id.clone(), Versioned { value, version });
        Ok(version)
    }
}
