//! A contact's engine state: scores, counters, tags, lists, lifecycle stage, owner,
//! recent event ids (for duplicates) and effects awaiting approval. Serializable, with
//! a format version.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use serde::{Deserialize, Serialize};

use crate::counters::CounterState;
use crate::engine::effect::{Effect, IdempotencyKey};
use crate::id::{ContactId, EventId};
use crate::scoring::ContactScores;
use crate::time::Timestamp;

/// The format version [`ContactState`] serializes with.
pub const STATE_FORMAT: u32 = 1;

/// How many recent event ids a contact remembers to ignore duplicates: a redelivered
/// event is ignored if fewer than this many of the contact's events came after it.
pub const DEDUP_WINDOW: usize = 64;

/// Everything the engine keeps for one contact. The host stores it (serde) and hands it
/// back with the contact's next event.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ContactState {
    pub(crate) format: u32,
    pub(crate) contact: ContactId,
    pub(crate) scores: Option<ContactScores>,
    pub(crate) counters: CounterState,
    pub(crate) tags: BTreeSet<String>,
    pub(crate) lists: BTreeSet<String>,
    pub(crate) stage: Option<String>,
    pub(crate) owner: Option<String>,
    /// 64-bit fingerprints (FNV-1a) of the recent event ids: a fixed 8 bytes each, and
    /// a compare per id instead of a string compare. Two distinct ids share one with
    /// probability about 2^-64 per pair.
    pub(crate) seen: VecDeque<u64>,
    pub(crate) pending: Vec<Effect>,
    pub(crate) last: Timestamp,
    /// When the state was created: inactivity counts from here until a first event.
    pub(crate) since: Timestamp,
    /// The segments the contact is in, by id (ids survive program changes).
    pub(crate) segments: BTreeSet<String>,
    /// Per rule that has fired and has a repeat policy, by rule id.
    pub(crate) fired: BTreeMap<String, crate::repeat::RepeatMemory>,
    /// The last event per event type name (and `*` for any).
    pub(crate) last_seen: BTreeMap<String, Timestamp>,
    /// Inactivity rules that fired in the current quiet spell, by rule id.
    pub(crate) quiet: BTreeSet<String>,
    /// The last occurrence each date or schedule rule fired for, by rule id.
    pub(crate) occurred: BTreeMap<String, Timestamp>,
    /// The score models' ids when the scores were made, to carry them over to a
    /// changed program by id.
    pub(crate) score_models: Vec<crate::id::ScoreId>,
    /// How many windowed counters the program had when they were counted.
    pub(crate) counter_count: usize,
    /// Active journey enrolments, oldest first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub(crate) journeys: Vec<crate::engine::journey::Enrolment>,
    /// Per journey id: enrolments so far, the last exit, versions entered.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub(crate) journey_log: BTreeMap<String, crate::engine::journey::JourneyLog>,
}

impl ContactState {
    /// The format version this state was written with.
    pub fn format(&self) -> u32 {
        self.format
    }

    /// The contact.
    pub fn contact(&self) -> &ContactId {
        &self.contact
    }

    /// The contact's scores, when the program has a `scoring` section.
    pub fn scores(&self) -> Option<&ContactScores> {
        self.scores.as_ref()
    }

    /// Tags, in order.
    pub fn tags(&self) -> impl Iterator<Item = &str> {
        self.tags.iter().map(String::as_str)
    }

    /// Whether the contact has a tag.
    pub fn has_tag(&self, tag: &str) -> bool {
        self.tags.contains(tag)
    }

    /// Static lists the contact is on, in order.
    pub fn lists(&self) -> impl Iterator<Item = &str> {
        self.lists.iter().map(String::as_str)
    }

    /// The lifecycle stage, once an action set one.
    pub fn stage(&self) -> Option<&str> {
        self.stage.as_deref()
    }

    /// The owner, once an action assigned one.
    pub fn owner(&self) -> Option<&str> {
        self.owner.as_deref()
    }

    /// The segments the contact is in, by id, in order.
    pub fn segments(&self) -> impl Iterator<Item = &str> {
        self.segments.iter().map(String::as_str)
    }

    /// Whether the contact is in a segment.
    pub fn in_segment(&self, id: &str) -> bool {
        self.segments.contains(id)
    }

    /// Effects held for approval, oldest first.
    pub fn pending(&self) -> &[Effect] {
        &self.pending
    }

    /// The active journey enrolments, oldest first.
    pub fn enrolments(&self) -> &[crate::engine::journey::Enrolment] {
        &self.journeys
    }

    /// When the state last changed.
    pub fn last_change(&self) -> Timestamp {
        self.last
    }

    /// Remembers an event id; `false` when it was already among the recent ones.
    pub(crate) fn remember(&mut self, id: &EventId) -> bool {
        let print = fingerprint(id);
        if self.seen.contains(&print) {
            return false;
        }
        if self.seen.len() >= DEDUP_WINDOW {
            self.seen.pop_front();
        }
        self.seen.push_back(print);
        true
    }

    /// Whether an event id is among the recent ones.
    pub(crate) fn has_seen(&self, id: &EventId) -> bool {
        self.seen.contains(&fingerprint(id))
    }

    /// Takes a pending effect out by key.
    pub(crate) fn take_pending(&mut self, key: IdempotencyKey) -> Option<Effect> {
        let i = self.pending.iter().position(|e| e.key == key)?;
        Some(self.pending.remove(i))
    }
}

/// An event id's fingerprint for the duplicate window.
fn fingerprint(id: &EventId) -> u64 {
    crate::engine::effect::Fnv::new().bytes(id.as_str().as_bytes()).finish()
}
