//! Effects: what the host must perform, each with a deterministic idempotency key.

use serde::{Deserialize, Serialize};

use crate::def::ActionDef;
use crate::hash::SipHasher128;
use crate::id::{ContactId, EventId, RuleId, ScoreId};
use crate::scoring::Crossing;
use crate::time::Timestamp;

/// What caused an effect: an event, or the passage of time (a timeout).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Cause {
    /// An event, by id.
    Event(EventId),
    /// A timeout at this instant.
    Timeout(Timestamp),
    /// Attributes the host changed, at this instant.
    AttributeChange(Timestamp),
    /// The contact was created ([`Engine::create`](crate::engine::Engine::create)) at
    /// this instant.
    Created(Timestamp),
    /// A person approved the held effect with this key, at this instant
    /// ([`Engine::approve_with`](crate::engine::Engine::approve_with)).
    Approval {
        /// The held effect's key.
        key: IdempotencyKey,
        /// When it was approved.
        at: Timestamp,
    },
}

/// Whether an effect may be performed now.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Status {
    /// Perform it.
    Ready,
    /// Held until a person approves it ([`Engine::approve`](crate::engine::Engine::approve)).
    PendingApproval,
    /// A send the policy deferred: not to be performed; the engine releases it (once)
    /// as a new effect at the instant its decision names.
    Deferred,
    /// A send the policy suppressed: not to be performed; its decision says why.
    Suppressed,
    /// A marketing send to a contact in the control group: not to be performed, recorded
    /// as "would have sent" so the host can measure lift.
    Control,
}

/// What to do.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
#[non_exhaustive]
pub enum EffectKind {
    /// A rule's action, as the rule set declares it.
    Action {
        /// The rule.
        rule: RuleId,
        /// The action's position among the rule's actions.
        index: u32,
        /// The action.
        action: ActionDef,
    },
    /// A score crossed a threshold.
    ThresholdCrossed {
        /// The score.
        score: ScoreId,
        /// The threshold's id.
        threshold: String,
        /// Up or down.
        direction: Crossing,
    },
    /// A score moved into another band (`None`: below every band).
    BandChanged {
        /// The score.
        score: ScoreId,
        /// The band before.
        from: Option<String>,
        /// The band after.
        to: Option<String>,
    },
    /// The contact entered a segment.
    SegmentEntered {
        /// The segment's id.
        segment: String,
    },
    /// The contact left a segment.
    SegmentExited {
        /// The segment's id.
        segment: String,
    },
    /// State changes kept starting rules for this many rounds; the step stopped there.
    CascadeLimit {
        /// The rounds run.
        rounds: u32,
    },
    /// A rule's condition failed to evaluate (the rule did not fire), or one of its
    /// actions could not apply (the others did).
    RuleError {
        /// The rule.
        rule: RuleId,
        /// The error, as text.
        message: String,
    },
    /// A segment's condition failed to evaluate: the contact counts as not a member
    /// (reported once per segment per step).
    SegmentError {
        /// The segment's id.
        segment: String,
        /// The error, as text.
        message: String,
    },
    /// A contact entered a journey.
    JourneyEntered {
        /// The journey's id.
        journey: String,
        /// Its version.
        version: u32,
        /// The contact's enrolment number in this journey (1, 2, ...).
        instance: u32,
    },
    /// An enrolment reached a step.
    JourneyStep {
        /// The journey's id.
        journey: String,
        /// Its version.
        version: u32,
        /// The enrolment number.
        instance: u32,
        /// The step's id.
        step: String,
    },
    /// A split put an enrolment in an arm (or the holdout).
    JourneyArm {
        /// The journey's id.
        journey: String,
        /// Its version.
        version: u32,
        /// The enrolment number.
        instance: u32,
        /// The split step's id.
        step: String,
        /// The arm's id (`holdout` for the holdout).
        arm: String,
        /// Whether it is the holdout.
        holdout: bool,
    },
    /// An enrolment waits at a step until an instant (for a wait for: at most).
    JourneyWaiting {
        /// The journey's id.
        journey: String,
        /// Its version.
        version: u32,
        /// The enrolment number.
        instance: u32,
        /// The step's id.
        step: String,
        /// Until when.
        until: Timestamp,
    },
    /// An enrolment reached the journey's goal (an `exited` effect with reason `goal`
    /// follows).
    JourneyGoal {
        /// The journey's id.
        journey: String,
        /// Its version.
        version: u32,
        /// The enrolment number.
        instance: u32,
        /// The split arm it was in, if any.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        arm: Option<String>,
    },
    /// An enrolment ended.
    JourneyExited {
        /// The journey's id.
        journey: String,
        /// Its version.
        version: u32,
        /// The enrolment number.
        instance: u32,
        /// Why.
        reason: ExitReason,
        /// For an exit condition: its id.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        exit: Option<String>,
        /// The step it was at.
        step: String,
        /// The split arm it was in, if any.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        arm: Option<String>,
    },
    /// A journey step's action, as the journey declares it.
    JourneyAction {
        /// The journey's id.
        journey: String,
        /// Its version.
        version: u32,
        /// The enrolment number.
        instance: u32,
        /// The step's id.
        step: String,
        /// The action's position among the step's actions.
        index: u32,
        /// The action.
        action: ActionDef,
    },
}

/// Why an enrolment ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum ExitReason {
    /// It ran to the end (a step without next, or an `exit` step; a holdout's period).
    Completed,
    /// It reached the goal.
    Goal,
    /// An exit condition held.
    ExitCondition,
    /// A `remove_from_journey` action removed it.
    Removed,
    /// The contact entered again under the `always` re-entry policy.
    Reentered,
    /// A new version of the journey replaced its version (upgrade policy `exit`).
    Superseded,
}

impl ExitReason {
    /// The reason's name: `completed`, `goal`, `exit_condition`, `removed`,
    /// `reentered` or `superseded`.
    pub fn name(self) -> &'static str {
        match self {
            ExitReason::Completed => "completed",
            ExitReason::Goal => "goal",
            ExitReason::ExitCondition => "exit_condition",
            ExitReason::Removed => "removed",
            ExitReason::Reentered => "reentered",
            ExitReason::Superseded => "superseded",
        }
    }
}

impl EffectKind {
    /// The action of a rule's or a journey step's action effect.
    pub fn action(&self) -> Option<&ActionDef> {
        match self {
            EffectKind::Action { action, .. } | EffectKind::JourneyAction { action, .. } => Some(action),
            _ => None,
        }
    }

    /// A short, stable name for the kind: `action`, `threshold_crossed`, `band_changed`,
    /// `segment_entered`, `segment_exited`, `cascade_limit`, `rule_error`, `segment_error`,
    /// `journey_entered`, `journey_step`, `journey_arm`, `journey_waiting`,
    /// `journey_goal`, `journey_exited` or `journey_action` (the `kind` tag of the
    /// effect's JSON), for logs, metrics and routing.
    ///
    /// ```
    /// use nurture::engine::EffectKind;
    /// let kind = EffectKind::SegmentEntered { segment: "hot".into() };
    /// assert_eq!(kind.name(), "segment_entered");
    /// assert_eq!(kind.to_string(), "segment_entered hot");
    /// ```
    pub fn name(&self) -> &'static str {
        match self {
            EffectKind::Action { .. } => "action",
            EffectKind::ThresholdCrossed { .. } => "threshold_crossed",
            EffectKind::BandChanged { .. } => "band_changed",
            EffectKind::SegmentEntered { .. } => "segment_entered",
            EffectKind::SegmentExited { .. } => "segment_exited",
            EffectKind::CascadeLimit { .. } => "cascade_limit",
            EffectKind::RuleError { .. } => "rule_error",
            EffectKind::SegmentError { .. } => "segment_error",
            EffectKind::JourneyEntered { .. } => "journey_entered",
            EffectKind::JourneyStep { .. } => "journey_step",
            EffectKind::JourneyArm { .. } => "journey_arm",
            EffectKind::JourneyWaiting { .. } => "journey_waiting",
            EffectKind::JourneyGoal { .. } => "journey_goal",
            EffectKind::JourneyExited { .. } => "journey_exited",
            EffectKind::JourneyAction { .. } => "journey_action",
        }
    }
}

/// The name, then what the effect is about: `action welcome#0`, `threshold_crossed
/// lead/mql up`, `segment_entered hot`.
impl std::fmt::Display for EffectKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())?;
        match self {
            EffectKind::Action { rule, index, .. } => write!(f, " {}#{index}", rule.as_str()),
            EffectKind::ThresholdCrossed { score, threshold, direction } => {
                let way = if *direction == Crossing::Up { "up" } else { "down" };
                write!(f, " {}/{threshold} {way}", score.as_str())
            }
            EffectKind::BandChanged { score, from, to } => write!(
                f,
                " {} {} -> {}",
                score.as_str(),
                from.as_deref().unwrap_or("-"),
                to.as_deref().unwrap_or("-")
            ),
            EffectKind::SegmentEntered { segment } | EffectKind::SegmentExited { segment } => {
                write!(f, " {segment}")
            }
            EffectKind::CascadeLimit { rounds } => write!(f, " after {rounds} rounds"),
            EffectKind::RuleError { rule, message } => write!(f, " {}: {message}", rule.as_str()),
            EffectKind::SegmentError { segment, message } => write!(f, " {segment}: {message}"),
            EffectKind::JourneyEntered { journey, version, instance } => {
                write!(f, " {journey} v{version} #{instance}")
            }
            EffectKind::JourneyStep { journey, version, instance, step } => {
                write!(f, " {journey} v{version} #{instance} {step}")
            }
            EffectKind::JourneyArm { journey, version, instance, step, arm, .. } => {
                write!(f, " {journey} v{version} #{instance} {step} -> {arm}")
            }
            EffectKind::JourneyWaiting { journey, version, instance, step, until } => {
                write!(f, " {journey} v{version} #{instance} {step} until {until}")
            }
            EffectKind::JourneyGoal { journey, version, instance, .. } => {
                write!(f, " {journey} v{version} #{instance}")
            }
            EffectKind::JourneyExited { journey, version, instance, reason, exit, .. } => {
                write!(f, " {journey} v{version} #{instance} {}", reason.name())?;
                match exit {
                    Some(exit) => write!(f, " ({exit})"),
                    None => Ok(()),
                }
            }
            EffectKind::JourneyAction { journey, version, instance, step, index, .. } => {
                write!(f, " {journey} v{version} #{instance} {step}#{index}")
            }
        }
    }
}

/// One thing the host must do (or know), in a deterministic order.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Effect {
    /// Stable across retries and replays: the same contact, cause and effect give the
    /// same key on every machine, so a delivery layer can drop duplicates.
    pub key: IdempotencyKey,
    /// The contact it is for.
    pub contact: ContactId,
    /// What caused it.
    pub cause: Cause,
    /// When (the event's instant, or the timeout's).
    pub at: Timestamp,
    /// Whether it may be performed now.
    pub status: Status,
    /// What to do.
    pub kind: EffectKind,
    /// For a send: the send policy's decision and its reason (`docs/send-policy.md`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decision: Option<crate::policy::SendDecision>,
    /// For a send with `params`: their values when the rule fired, the personalization
    /// context the host's template renders.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub params: std::collections::BTreeMap<String, serde_json::Value>,
    /// For an effect that was held for approval and approved: who approved it, with
    /// their note and edits.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approval: Option<Approval>,
}

/// A person's approval of a held effect ([`Engine::approve_with`](crate::engine::Engine::approve_with)).
///
/// ```
/// use nurture::engine::Approval;
/// let approval = Approval::by("ana@example.com").with_note("ok, but friendlier").with_param("tone", "warm");
/// assert_eq!(approval.params["tone"], "warm");
/// ```
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Approval {
    /// Who approved it.
    pub approver: String,
    /// Their note.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    /// Edits to a send's `params`: these replace or add to the computed ones.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub params: std::collections::BTreeMap<String, serde_json::Value>,
}

impl Approval {
    /// An approval by `approver`.
    pub fn by(approver: impl Into<String>) -> Approval {
        Approval { approver: approver.into(), ..Approval::default() }
    }

    /// With a note.
    pub fn with_note(mut self, note: impl Into<String>) -> Approval {
        self.note = Some(note.into());
        self
    }

    /// With an edit to a param.
    pub fn with_param(mut self, name: impl Into<String>, value: impl Into<serde_json::Value>) -> Approval {
        self.params.insert(name.into(), value.into());
        self
    }
}

/// A 128-bit idempotency key: SipHash-1-3-128 of the contact, the cause and what tells
/// the effect apart, each part length-prefixed (`docs/engine.md`, "Idempotency keys").
/// Shown (and serialized) as 32 hex digits, so that JSON readers whose numbers are
/// doubles keep it exact. A key written by state format 1 (64-bit, for an effect still
/// awaiting approval in an old state) keeps its 16 digits: a key below 2^64 is shown
/// with 16, and both widths read back to the same key.
///
/// ```
/// use nurture::engine::IdempotencyKey;
/// let key: IdempotencyKey = "0123456789abcdef0123456789abcdef".parse()?;
/// assert_eq!(key.to_string(), "0123456789abcdef0123456789abcdef");
/// let old: IdempotencyKey = "0ee3d08fbb24d9f2".parse()?;
/// assert_eq!(old, IdempotencyKey(0x0ee3_d08f_bb24_d9f2));
/// assert_eq!(old.to_string(), "0ee3d08fbb24d9f2");
/// assert!("xyz".parse::<IdempotencyKey>().is_err());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct IdempotencyKey(pub u128);

/// Why a text is not an idempotency key.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("an idempotency key is 32 hex digits (16 for a key of state format 1), not `{0}`")]
pub struct KeyParseError(String);

impl std::str::FromStr for IdempotencyKey {
    type Err = KeyParseError;

    fn from_str(text: &str) -> Result<IdempotencyKey, KeyParseError> {
        let bad = || KeyParseError(text.chars().take(40).collect());
        if !matches!(text.len(), 16 | 32) || !text.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(bad());
        }
        u128::from_str_radix(text, 16).map(IdempotencyKey).map_err(|_| bad())
    }
}

impl Serialize for IdempotencyKey {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.to_string())
    }
}

impl<'de> Deserialize<'de> for IdempotencyKey {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<IdempotencyKey, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

impl std::fmt::Display for IdempotencyKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match u64::try_from(self.0) {
            Ok(old) => write!(f, "{old:016x}"),
            Err(_) => write!(f, "{:032x}", self.0),
        }
    }
}

/// FNV-1a, 64-bit: what [`shard_of`](crate::engine::shard_of) hashes contact ids with
/// (a fixed assignment of contacts to shards, kept as it was), and what state format 1
/// fingerprinted event ids with (to recognise them while they are in the window).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Fnv(u64);

impl Fnv {
    pub(crate) fn new() -> Fnv {
        Fnv(0xcbf2_9ce4_8422_2325)
    }

    pub(crate) fn bytes(mut self, bytes: &[u8]) -> Fnv {
        for b in bytes {
            self.0 ^= u64::from(*b);
            self.0 = self.0.wrapping_mul(0x0100_0000_01b3);
        }
        // A separator, so that ("ab", "c") and ("a", "bc") differ.
        self.0 ^= 0xff;
        self.0 = self.0.wrapping_mul(0x0100_0000_01b3);
        self
    }

    pub(crate) fn finish(self) -> u64 {
        self.0
    }
}

/// The key of an effect: contact, cause, the step's number for causes that can repeat
/// at one instant (attribute changes and timeouts), and what distinguishes the effect
/// within the step. Every part is length-prefixed.
pub(crate) fn key_of(contact: &str, cause: &Cause, step: u64, parts: &[&[u8]]) -> IdempotencyKey {
    let mut h = SipHasher128::keys();
    h.part(contact.as_bytes());
    match cause {
        Cause::Event(id) => h.part(b"event").part(id.as_str().as_bytes()),
        Cause::Timeout(at) => h
            .part(b"timeout")
            .part(&at.unix_seconds().to_le_bytes())
            .part(&at.subsec_nanos().to_le_bytes())
            .part(&step.to_le_bytes()),
        Cause::AttributeChange(at) => h
            .part(b"attributes")
            .part(&at.unix_seconds().to_le_bytes())
            .part(&at.subsec_nanos().to_le_bytes())
            .part(&step.to_le_bytes()),
        Cause::Created(at) => h
            .part(b"created")
            .part(&at.unix_seconds().to_le_bytes())
            .part(&at.subsec_nanos().to_le_bytes())
            .part(&step.to_le_bytes()),
        Cause::Approval { key, at } => h
            .part(b"approval")
            .part(&key.0.to_le_bytes())
            .part(&at.unix_seconds().to_le_bytes())
            .part(&at.subsec_nanos().to_le_bytes())
            .part(&step.to_le_bytes()),
    };
    h.write(&(parts.len() as u64).to_le_bytes());
    for p in parts {
        h.part(p);
    }
    IdempotencyKey(h.finish())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fnv_matches_the_published_test_vector() {
        // FNV-1a 64 of "a" is 0xaf63dc4c8601ec8c; ours appends a separator byte.
        let mut h = Fnv::new();
        h.0 ^= u64::from(b'a');
        h.0 = h.0.wrapping_mul(0x0100_0000_01b3);
        assert_eq!(h.finish(), 0xaf63_dc4c_8601_ec8c);
    }

    #[test]
    fn keys_separate_their_parts() {
        let cause = Cause::Event(EventId::from("e1"));
        assert_ne!(key_of("c", &cause, 0, &[b"ab", b"c"]), key_of("c", &cause, 0, &[b"a", b"bc"]));
        assert_ne!(key_of("c", &cause, 0, &[b"ab"]), key_of("c", &cause, 0, &[b"ab", b""]));
        assert_eq!(key_of("c", &cause, 0, &[b"x"]), key_of("c", &cause, 0, &[b"x"]));
        // An event's keys do not depend on the step's number (a redelivery beyond the
        // duplicate window gives the same keys); other causes' keys do.
        assert_eq!(key_of("c", &cause, 0, &[b"x"]), key_of("c", &cause, 7, &[b"x"]));
        let at = Timestamp::from_unix(1_767_225_600, 0).unwrap();
        let change = Cause::AttributeChange(at);
        assert_ne!(key_of("c", &change, 0, &[b"x"]), key_of("c", &change, 1, &[b"x"]));
        let timeout = Cause::Timeout(at);
        assert_ne!(key_of("c", &timeout, 0, &[b"x"]), key_of("c", &timeout, 1, &[b"x"]));
        assert_ne!(key_of("c", &timeout, 0, &[b"x"]), key_of("c", &change, 0, &[b"x"]));
    }

    #[test]
    fn keys_are_32_hex_digits_and_old_ones_keep_16() {
        let key = key_of("c", &Cause::Event(EventId::from("e1")), 0, &[b"x"]);
        assert_eq!(key.to_string().len(), 32);
        assert_eq!(key.to_string().parse::<IdempotencyKey>(), Ok(key));
        assert_eq!(IdempotencyKey(0xab).to_string(), "00000000000000ab");
        assert!("+123456789abcdef".parse::<IdempotencyKey>().is_err());
        assert!("0123456789abcdef0".parse::<IdempotencyKey>().is_err());
    }
}
