//! Keyed events: an event type whose instances a property identifies (an order id,
//! `schema.keys`) counts at most once per key among a contact's recent events of that
//! type. The memory lives in the contact's state, bounded per type: [`KEY_WINDOW`]
//! fingerprints of 16 bytes each.

use std::collections::VecDeque;

use super::*;
use crate::schema::Event;

/// How many recent keys a contact remembers per keyed event type: an instance whose
/// key is among them is a duplicate.
pub const KEY_WINDOW: usize = 256;

impl Engine {
    /// The fingerprint an event's key is remembered by (`None`: not keyed): the
    /// SipHash-1-3-128 of the key, length-prefixed, as for event ids (keys are chosen
    /// outside, so the hash must resist chosen collisions), a fixed 16 bytes.
    pub(super) fn memory_key(&self, event: &Event) -> Option<KeyPrint> {
        let key = self.program.event_key(event)?;
        let mut hasher = crate::hash::SipHasher128::keys();
        hasher.part(b"event key").part(key.as_bytes());
        let h = hasher.finish();
        Some(((h >> 64) as u64, h as u64))
    }
}

/// A remembered key: a 128-bit fingerprint as two 64-bit halves (high, low).
pub(crate) type KeyPrint = (u64, u64);

/// Whether a key is among the recent ones of its event type.
pub(super) fn seen_key(state: &ContactState, event: &Event, key: KeyPrint) -> bool {
    state.keyed.get(event.type_name().as_str()).is_some_and(|keys| keys.contains(&key))
}

/// Remembers a key, forgetting the oldest of its type beyond [`KEY_WINDOW`].
pub(super) fn remember_key(state: &mut ContactState, event: &Event, key: KeyPrint) {
    let keys: &mut VecDeque<KeyPrint> =
        state.keyed.entry(event.type_name().as_str().to_string()).or_default();
    if keys.len() >= KEY_WINDOW {
        keys.pop_front();
    }
    keys.push_back(key);
}
