//! A contact's engine state: scores, counters, tags, lists, lifecycle stage, owner,
//! recent event ids (for duplicates) and effects awaiting approval. Serializable, with
//! a format version; loading validates it (a tampered or corrupt state is refused with
//! an error naming the field) and upgrades format 1.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use serde::{Deserialize, Serialize};

use crate::counters::CounterState;
use crate::engine::effect::{Effect, IdempotencyKey};
use crate::hash::SipHasher128;
use crate::id::{ContactId, EventId};
use crate::policy::PolicyState;
use crate::scoring::ContactScores;
use crate::time::Timestamp;

/// The format version [`ContactState`] serializes with. Format 2 (this one) has 128-bit
/// duplicate fingerprints and idempotency keys; format 1 (64-bit FNV-1a) is read and
/// upgraded on load (`docs/decisions.md`, "128-bit keys and fingerprints").
pub const STATE_FORMAT: u32 = 2;

/// How many recent event ids a contact remembers by default to ignore duplicates: a
/// redelivered event is ignored if fewer than this many of the contact's other events
/// came after it ([`Engine::with_dedup_window`](crate::engine::Engine::with_dedup_window)
/// changes it; `docs/engine.md`, "Idempotency keys and duplicates", states the guarantee).
pub const DEDUP_WINDOW: usize = 64;

/// The largest duplicate window an engine may have (and a stored state may carry):
/// 16 bytes per id in memory, 34 in JSON, so at most about 340 KB of JSON per contact.
pub const MAX_DEDUP_WINDOW: usize = 10_000;

/// A 128-bit fingerprint of an event id (SipHash-1-3-128 under the crate's key),
/// stored as 32 hex digits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Fingerprint(pub(crate) u128);

impl Serialize for Fingerprint {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(&format_args!("{:032x}", self.0))
    }
}

impl<'de> Deserialize<'de> for Fingerprint {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Fingerprint, D::Error> {
        let text = String::deserialize(deserializer)?;
        if text.len() != 32 || !text.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(serde::de::Error::custom("a fingerprint is 32 hex digits"));
        }
        u128::from_str_radix(&text, 16).map(Fingerprint).map_err(serde::de::Error::custom)
    }
}

/// Everything the engine keeps for one contact. The host stores it (serde) and hands it
/// back with the contact's next event.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "StateWire")]
pub struct ContactState {
    pub(crate) format: u32,
    pub(crate) contact: ContactId,
    pub(crate) scores: Option<ContactScores>,
    pub(crate) counters: CounterState,
    pub(crate) tags: BTreeSet<String>,
    pub(crate) lists: BTreeSet<String>,
    pub(crate) stage: Option<String>,
    pub(crate) owner: Option<String>,
    /// 128-bit fingerprints of the recent event ids, oldest first: a fixed 16 bytes
    /// each, and a compare per id instead of a string compare. Two distinct ids share
    /// one with probability 2^-128 per pair, even for ids an attacker chooses.
    pub(crate) seen: VecDeque<Fingerprint>,
    /// The 64-bit FNV-1a fingerprints a format-1 state held, oldest first (all older
    /// than every entry of `seen`): still matched against incoming ids (FNV of the id)
    /// until newer ids push them out of the window. Empty for states made by format 2.
    #[serde(default, skip_serializing_if = "VecDeque::is_empty")]
    pub(crate) seen_fnv64: VecDeque<u64>,
    /// Steps this state has taken (events handled, attribute changes, timeouts): part of
    /// the idempotency keys of attribute changes and timeouts, which can repeat at one
    /// instant.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub(crate) steps: u64,
    /// The contact fields (names, in slot order) of the program the state last ran
    /// under: a contact built under another program is re-mapped by name
    /// ([`Engine::adopt_contact`](crate::engine::Engine::adopt_contact)). Empty for
    /// format-1 states, which are taken to match the program they are loaded under.
    /// Shared with the engine that made the state, so that checking it against the
    /// program each step is one pointer comparison.
    #[serde(skip_serializing_if = "no_fields")]
    pub(crate) fields: std::sync::Arc<[String]>,
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
    /// Per keyed event type (`schema.keys`), by name: 128-bit fingerprints of the keys
    /// of its most recent instances, oldest first, at most `engine::KEY_WINDOW` each.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub(crate) keyed: BTreeMap<String, VecDeque<(u64, u64)>>,
    /// Consent, do-not-contact marks, their history and the sends caps count.
    #[serde(default, skip_serializing_if = "PolicyState::is_empty")]
    pub(crate) policy: PolicyState,
    /// Sends the policy deferred, until their instant comes.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub(crate) deferred: Vec<DeferredSend>,
    /// Active journey enrolments, oldest first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub(crate) journeys: Vec<crate::engine::journey::Enrolment>,
    /// Per journey id: enrolments so far, the last exit, versions entered.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub(crate) journey_log: BTreeMap<String, crate::engine::journey::JourneyLog>,
}

/// A send the policy deferred: the effect that reported it, when it is decided again,
/// and when it was first decided (for the policy's `max_delay`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct DeferredSend {
    /// The effect that reported the deferral (status `deferred`).
    pub effect: Effect,
    /// When it is decided again.
    pub until: Timestamp,
    /// When it was first decided.
    pub since: Timestamp,
    /// Higher goes first when several come due together.
    #[serde(default, skip_serializing_if = "is_zero_u32")]
    pub priority: u32,
}

fn is_zero_u32(n: &u32) -> bool {
    *n == 0
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

    /// Consent per channel and purpose, do-not-contact marks, their history and the
    /// recent marketing sends (`docs/send-policy.md`).
    pub fn policy(&self) -> &PolicyState {
        &self.policy
    }

    /// Sends the policy deferred, in the order they were deferred.
    pub fn deferred(&self) -> &[DeferredSend] {
        &self.deferred
    }

    /// The active journey enrolments, oldest first.
    pub fn enrolments(&self) -> &[crate::engine::journey::Enrolment] {
        &self.journeys
    }

    /// The contact fields, by name in slot order, of the program this state last ran
    /// under (empty for a state written before states recorded them). A host that keeps
    /// contacts by field name compares it with the schema's to tell whether a stored
    /// contact may hold fields the program no longer declares.
    pub fn fields(&self) -> &[String] {
        &self.fields
    }

    /// When the state last changed.
    pub fn last_change(&self) -> Timestamp {
        self.last
    }

    /// Remembers an event id in a window of `window` ids (the oldest leave first,
    /// format-1 ones before any other); `false` when it was already among them.
    #[cfg(test)]
    pub(crate) fn remember(&mut self, id: &EventId, window: usize) -> bool {
        if self.has_seen(id) {
            return false;
        }
        self.remember_new(fingerprint(id), window);
        true
    }

    /// Remembers a fingerprint known not to be among the recent ones (the caller
    /// searched already: one search per event).
    pub(crate) fn remember_new(&mut self, print: Fingerprint, window: usize) {
        let window = window.clamp(1, MAX_DEDUP_WINDOW);
        while self.seen.len() + self.seen_fnv64.len() >= window {
            if self.seen_fnv64.pop_front().is_none() {
                self.seen.pop_front();
            }
        }
        self.seen.push_back(print);
    }

    /// Whether an event id is among the recent ones.
    #[cfg(test)]
    pub(crate) fn has_seen(&self, id: &EventId) -> bool {
        self.has_seen_print(id, fingerprint(id))
    }

    /// Whether an event id, whose fingerprint is `print`, is among the recent ones.
    pub(crate) fn has_seen_print(&self, id: &EventId, print: Fingerprint) -> bool {
        self.seen.contains(&print)
            || (!self.seen_fnv64.is_empty() && self.seen_fnv64.contains(&fingerprint_v1(id)))
    }

    /// How many event ids the state remembers (both formats).
    pub fn remembered_events(&self) -> usize {
        self.seen.len() + self.seen_fnv64.len()
    }

    /// Takes a pending effect out by key.
    pub(crate) fn take_pending(&mut self, key: IdempotencyKey) -> Option<Effect> {
        let i = self.pending.iter().position(|e| e.key == key)?;
        Some(self.pending.remove(i))
    }
}

/// An event id's fingerprint for the duplicate window.
pub(crate) fn fingerprint(id: &EventId) -> Fingerprint {
    let mut h = SipHasher128::keys();
    h.part(b"event id").part(id.as_str().as_bytes());
    Fingerprint(h.finish())
}

/// An event id's fingerprint as state format 1 made it (FNV-1a 64 with a separator).
fn fingerprint_v1(id: &EventId) -> u64 {
    crate::engine::effect::Fnv::new().bytes(id.as_str().as_bytes()).finish()
}

fn no_fields(fields: &std::sync::Arc<[String]>) -> bool {
    fields.is_empty()
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// A duplicate-window entry as stored: a number in format 1, 32 hex digits in format 2.
#[derive(Deserialize)]
#[serde(untagged)]
enum SeenWire {
    V1(u64),
    V2(Fingerprint),
}

/// [`ContactState`] as stored, before it is checked ([`ContactState::validate`]) and
/// upgraded from format 1.
#[derive(Deserialize)]
struct StateWire {
    format: u32,
    contact: ContactId,
    scores: Option<ContactScores>,
    counters: CounterState,
    tags: BTreeSet<String>,
    lists: BTreeSet<String>,
    stage: Option<String>,
    owner: Option<String>,
    seen: VecDeque<SeenWire>,
    #[serde(default)]
    seen_fnv64: VecDeque<u64>,
    #[serde(default)]
    steps: u64,
    #[serde(default)]
    fields: Vec<String>,
    pending: Vec<Effect>,
    last: Timestamp,
    since: Timestamp,
    segments: BTreeSet<String>,
    fired: BTreeMap<String, crate::repeat::RepeatMemory>,
    last_seen: BTreeMap<String, Timestamp>,
    quiet: BTreeSet<String>,
    occurred: BTreeMap<String, Timestamp>,
    score_models: Vec<crate::id::ScoreId>,
    counter_count: usize,
    #[serde(default)]
    keyed: BTreeMap<String, VecDeque<(u64, u64)>>,
    #[serde(default)]
    policy: PolicyState,
    #[serde(default)]
    deferred: Vec<DeferredSend>,
    #[serde(default)]
    journeys: Vec<crate::engine::journey::Enrolment>,
    #[serde(default)]
    journey_log: BTreeMap<String, crate::engine::journey::JourneyLog>,
}

impl TryFrom<StateWire> for ContactState {
    type Error = String;

    fn try_from(wire: StateWire) -> Result<ContactState, String> {
        let mut seen = VecDeque::with_capacity(wire.seen.len());
        let mut seen_fnv64 = wire.seen_fnv64;
        match wire.format {
            1 => {
                if !seen_fnv64.is_empty() {
                    return Err("`seen_fnv64`: not part of state format 1".into());
                }
                for (i, entry) in wire.seen.into_iter().enumerate() {
                    match entry {
                        SeenWire::V1(print) => seen_fnv64.push_back(print),
                        SeenWire::V2(_) => {
                            return Err(format!("`seen[{i}]`: format 1 stores fingerprints as numbers"))
                        }
                    }
                }
            }
            STATE_FORMAT => {
                for (i, entry) in wire.seen.into_iter().enumerate() {
                    match entry {
                        SeenWire::V2(print) => seen.push_back(print),
                        SeenWire::V1(_) => {
                            return Err(format!("`seen[{i}]`: format 2 stores fingerprints as 32 hex digits"))
                        }
                    }
                }
            }
            other => {
                return Err(format!(
                "`format`: state format {other} is not supported (this version reads 1 and {STATE_FORMAT})"
            ))
            }
        }
        let state = ContactState {
            // Upgraded: everything below is as format 2 has it.
            format: STATE_FORMAT,
            contact: wire.contact,
            scores: wire.scores,
            counters: wire.counters,
            tags: wire.tags,
            lists: wire.lists,
            stage: wire.stage,
            owner: wire.owner,
            seen,
            seen_fnv64,
            steps: wire.steps,
            fields: wire.fields.into(),
            pending: wire.pending,
            last: wire.last,
            since: wire.since,
            segments: wire.segments,
            fired: wire.fired,
            last_seen: wire.last_seen,
            quiet: wire.quiet,
            occurred: wire.occurred,
            score_models: wire.score_models,
            counter_count: wire.counter_count,
            keyed: wire.keyed,
            policy: wire.policy,
            deferred: wire.deferred,
            journeys: wire.journeys,
            journey_log: wire.journey_log,
        };
        state.validate().map_err(|e| format!("invalid contact state: {e}"))?;
        Ok(state)
    }
}

impl ContactState {
    /// Checks what a loaded state holds, naming the first field that is wrong: lengths
    /// within bounds, numbers finite, instants no later than the state's last change,
    /// pending effects of this contact and awaiting approval, score state consistent
    /// ([`ContactScores`]' own check). Whether the state fits a program is checked
    /// when it runs ([`Engine::fits`](crate::engine::Engine::fits)).
    pub(crate) fn validate(&self) -> Result<(), String> {
        let remembered = self.seen.len() + self.seen_fnv64.len();
        if remembered > MAX_DEDUP_WINDOW {
            return Err(format!("`seen`: {remembered} event ids, more than {MAX_DEDUP_WINDOW}"));
        }
        if let Some((event_type, keys)) =
            self.keyed.iter().find(|(_, keys)| keys.len() > crate::engine::KEY_WINDOW)
        {
            return Err(format!(
                "`keyed.{event_type}`: {} keys, more than {}",
                keys.len(),
                crate::engine::KEY_WINDOW
            ));
        }
        if self.deferred.len() > crate::engine::policy::MAX_DEFERRED {
            return Err(format!(
                "`deferred`: {} sends, more than {}",
                self.deferred.len(),
                crate::engine::policy::MAX_DEFERRED
            ));
        }
        for (i, deferred) in self.deferred.iter().enumerate() {
            if deferred.effect.contact != self.contact {
                return Err(format!("`deferred[{i}].effect.contact`: not the state's"));
            }
            if deferred.since > self.last {
                return Err(format!(
                    "`deferred[{i}].since`: {} is after the last change {}",
                    deferred.since, self.last
                ));
            }
        }
        if self.policy.history.len() > crate::policy::CHANGE_HISTORY {
            return Err(format!(
                "`policy.history`: {} changes, more than {}",
                self.policy.history.len(),
                crate::policy::CHANGE_HISTORY
            ));
        }
        if self.since > self.last {
            return Err(format!("`since`: {} is after the last change {}", self.since, self.last));
        }
        let after = |field: &str, map: &BTreeMap<String, Timestamp>| {
            map.iter()
                .find(|(_, t)| **t > self.last)
                .map(|(k, t)| format!("`{field}.{k}`: {t} is after the last change {}", self.last))
        };
        if let Some(e) = after("last_seen", &self.last_seen).or_else(|| after("occurred", &self.occurred)) {
            return Err(e);
        }
        for (rule, memory) in &self.fired {
            if let Some(t) = memory.times.iter().find(|t| **t > self.last) {
                return Err(format!("`fired.{rule}`: {t} is after the last change {}", self.last));
            }
        }
        for (i, effect) in self.pending.iter().enumerate() {
            if effect.contact != self.contact {
                return Err(format!(
                    "`pending[{i}].contact`: `{}`, not the state's",
                    effect.contact.as_str()
                ));
            }
            if effect.status != crate::engine::Status::PendingApproval {
                return Err(format!("`pending[{i}].status`: not pending approval"));
            }
            if !finite_action(&effect.kind) {
                return Err(format!("`pending[{i}].kind`: a number that is not finite"));
            }
        }
        let mut ids = BTreeSet::new();
        if let Some(dup) = self.score_models.iter().find(|id| !ids.insert(id.as_str())) {
            return Err(format!("`score_models`: `{}` twice", dup.as_str()));
        }
        let mut names = BTreeSet::new();
        if let Some(dup) = self.fields.iter().find(|f| !names.insert(f.as_str())) {
            return Err(format!("`fields`: `{dup}` twice"));
        }
        match &self.scores {
            Some(scores) => {
                scores.validate(self.score_models.len(), self.last).map_err(|e| format!("`scores`: {e}"))?
            }
            None if !self.score_models.is_empty() => {
                return Err("`score_models`: models named but no `scores`".into())
            }
            None => {}
        }
        Ok(())
    }
}

/// Whether an effect's kind survives a JSON round trip (serde_json writes a non-finite
/// number as `null`, which does not read back).
fn finite_action(kind: &crate::engine::EffectKind) -> bool {
    serde_json::to_value(kind)
        .ok()
        .and_then(|json| serde_json::from_value::<crate::engine::EffectKind>(json).ok())
        .is_some()
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use crate::engine::Engine;
    use crate::program::Program;
    use crate::time::Timestamp;

    fn engine() -> Engine {
        let program = Program::from_json(
            r#"{"version": 1, "schema": {"events": {"visit": {}}},
                "scoring": {"models": [{"id": "m", "rules": [{"id": "v", "on": "visit", "points": 5}]}]}}"#,
        )
        .unwrap();
        Engine::new(Arc::new(program))
    }

    #[test]
    fn non_finite_numbers_are_refused_naming_the_field() {
        // JSON cannot hold them; other serde formats (and a host building states by
        // hand through serde) can.
        let engine = engine();
        let t = Timestamp::from_unix(1_767_225_600, 0).unwrap();
        let state = engine.new_state(&engine.program().schema().contact("c1").build(), t);
        assert_eq!(state.validate(), Ok(()));
        for bad in [f64::NAN, f64::INFINITY, f64::NEG_INFINITY] {
            let mut s = state.clone();
            s.scores.as_mut().unwrap().models[0].fit = bad;
            let error = s.validate().unwrap_err();
            assert!(error.contains("models[0].fit: not finite"), "{error}");
        }
    }

    #[test]
    fn the_window_drops_format_1_fingerprints_first() {
        let engine = engine();
        let t = Timestamp::from_unix(1_767_225_600, 0).unwrap();
        let mut state = engine.new_state(&engine.program().schema().contact("c1").build(), t);
        let old = crate::id::EventId::from("old");
        state.seen_fnv64.push_back(super::fingerprint_v1(&old));
        assert!(state.has_seen(&old));
        assert!(state.remember(&crate::id::EventId::from("new"), 2));
        assert!(state.has_seen(&old), "two fit in a window of two");
        assert!(state.remember(&crate::id::EventId::from("newer"), 2));
        assert!(!state.has_seen(&old));
        assert!(state.has_seen(&crate::id::EventId::from("new")));
    }
}
