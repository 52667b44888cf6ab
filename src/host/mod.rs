//! The host side: storage and delivery as traits, an in-memory store, and a runtime
//! that drives the engine with a timer queue. Everything here is optional glue; the
//! engine itself never does I/O.

pub mod conformance;
mod delivery;
mod runtime;
mod store;

pub use delivery::{Delivery, DeliveryError, RecordingDelivery};
pub use runtime::{
    Runtime, RuntimeError, RuntimeStats, WakeFailure, DEFAULT_MAX_AHEAD_SECS, DEFAULT_MAX_WAKEUPS_PER_CALL,
};
pub use store::{ContactStore, MemoryStore, StoreError, StoredContact, Versioned};
