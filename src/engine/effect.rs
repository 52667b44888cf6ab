//! Effects: what the host must perform, each with a deterministic idempotency key.

use serde::{Deserialize, Serialize};

use crate::def::ActionDef;
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
    /// A short, stable name for the kind: `action`, `threshold_crossed`, `band_changed`,
    /// `segment_entered`, `segment_exited`, `cascade_limit`, `rule_error`,
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
}

/// A 64-bit idempotency key, shown (and serialized) as 16 hex digits, so that JSON
/// readers whose numbers are doubles keep it exact.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct IdempotencyKey(pub u64);

impl Serialize for IdempotencyKey {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.to_string())
    }
}

impl<'de> Deserialize<'de> for IdempotencyKey {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<IdempotencyKey, D::Error> {
        let text = String::deserialize(deserializer)?;
        if text.len() != 16 {
            return Err(serde::de::Error::custom("an idempotency key is 16 hex digits"));
        }
        u64::from_str_radix(&text, 16).map(IdempotencyKey).map_err(serde::de::Error::custom)
    }
}

impl std::fmt::Display for IdempotencyKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:016x}", self.0)
    }
}

/// FNV-1a, 64-bit: fixed, portable, and enough to tell effects apart (keys are for
/// deduplication, not security).
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

/// The key of an effect: contact, cause, and what distinguishes the effect within it.
pub(crate) fn key_of(contact: &str, cause: &Cause, parts: &[&[u8]]) -> IdempotencyKey {
    let mut h = Fnv::new().bytes(contact.as_bytes());
    h = match cause {
        Cause::Event(id) => h.bytes(b"event").bytes(id.as_str().as_bytes()),
        Cause::Timeout(at) => h
            .bytes(b"timeout")
            .bytes(&at.unix_seconds().to_le_bytes())
            .bytes(&at.subsec_nanos().to_le_bytes()),
        Cause::AttributeChange(at) => h
            .bytes(b"attributes")
            .bytes(&at.unix_seconds().to_le_bytes())
            .bytes(&at.subsec_nanos().to_le_bytes()),
    };
    for p in parts {
        h = h.bytes(p);
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
        assert_ne!(key_of("c", &cause, &[b"ab", b"c"]), key_of("c", &cause, &[b"a", b"bc"]));
        assert_eq!(key_of("c", &cause, &[b"x"]), key_of("c", &cause, &[b"x"]));
    }
}
