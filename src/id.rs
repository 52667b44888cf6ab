//! Newtype identifiers.
//!
//! Every id is a distinct type (`C-NEWTYPE`), so a rule id can never be passed where a
//! contact id is expected. Ids that hosts choose (contacts, events) are strings; ids that
//! rule-set authors choose (rules, scores, segments) are strings too, kept stable across
//! rule-set versions so that state keyed by them survives a reload.

use std::fmt;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

macro_rules! string_id {
    ($(#[$meta:meta])* $name:ident) => {
        $(#[$meta])*
        #[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(Arc<str>);

        impl $name {
            /// Creates the id from any string.
            pub fn new(id: impl AsRef<str>) -> Self {
                Self(Arc::from(id.as_ref()))
            }

            /// The id as a string slice.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({:?})", stringify!($name), &*self.0)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl From<&str> for $name {
            fn from(id: &str) -> Self {
                Self::new(id)
            }
        }

        impl From<String> for $name {
            fn from(id: String) -> Self {
                Self(Arc::from(id))
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }
    };
}

string_id!(
    /// A contact (person or account) as the host identifies it.
    ContactId
);
string_id!(
    /// An event as the host identifies it; used for de-duplication and idempotency keys.
    EventId
);
string_id!(
    /// A rule, stable across rule-set versions.
    RuleId
);
string_id!(
    /// A score model, stable across rule-set versions.
    ScoreId
);
string_id!(
    /// An event type name, such as `page_visit`.
    EventTypeName
);

/// Dense index of an event type inside one [`Schema`](crate::Schema).
///
/// Resolved once when an event is built, so matching never hashes the type name.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct EventTypeIndex(pub(crate) u32);

impl EventTypeIndex {
    /// The position of the event type in its schema's declaration order.
    pub fn get(self) -> usize {
        self.0 as usize
    }
}
