//! Keyed events: an event type whose instances a property identifies (an order id,
//! `schema.keys`) counts at most once per key among a contact's recent events of that
//! type. The memory lives in the contact's state, bounded per type.

use std::collections::VecDeque;

use super::*;
use crate::schema::Event;

/// How many recent keys a contact remembers per keyed event type: an instance whose
/// key is among them is a duplicate.
pub const KEY_WINDOW: usize = 256;

/// Keys longer than this many bytes are remembered by a 128-bit fingerprint.
pub const MAX_KEY_BYTES: usize = 64;

impl Engine {
    /// The key an event is remembered by (`None`: not keyed): the key property's text,
    /// or `#` and a 128-bit FNV-1a fingerprint of it (32 hex digits) when it is longer
    /// than [`MAX_KEY_BYTES`], so one remembered key takes at most 64 bytes.
    pub(super) fn memory_key(&self, event: &Event) -> Option<String> {
        let key = self.program.event_key(event)?;
        if key.len() <= MAX_KEY_BYTES {
            return Some(key);
        }
        let mut h: u128 = 0x6c62_272e_07bb_0142_62b8_2175_6295_c58d;
        for b in (key.len() as u64).to_le_bytes().iter().chain(key.as_bytes()) {
            h ^= u128::from(*b);
            h = h.wrapping_mul(0x0000_0000_0100_0000_0000_0000_0000_013b);
        }
        Some(format!("#{h:032x}"))
    }
}

/// Whether a key is among the recent ones of its event type.
pub(super) fn seen_key(state: &ContactState, event: &Event, key: &str) -> bool {
    state.keyed.get(event.type_name().as_str()).is_some_and(|keys| keys.iter().any(|k| k == key))
}

/// Remembers a key, forgetting the oldest of its type beyond [`KEY_WINDOW`].
pub(super) fn remember_key(state: &mut ContactState, event: &Event, key: String) {
    let keys: &mut VecDeque<String> = state.keyed.entry(event.type_name().as_str().to_string()).or_default();
    if keys.len() >= KEY_WINDOW {
        keys.pop_front();
    }
    keys.push_back(key);
}
