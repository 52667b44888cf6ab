//! Repeat policies: how often one rule may fire (or award points) for one contact, and
//! the little a contact's state must remember to enforce it.
//!
//! Engine rules and point rules share this one implementation: the engine keeps a
//! [`RepeatMemory`] per rule id, the scorer one per rule position.

use serde::{Deserialize, Serialize};
use smallvec::SmallVec;

use crate::def::RepeatDef;
use crate::diagnostic::{did_you_mean, Code, Diagnostic};
use crate::time::{Duration, Timestamp};

/// How often one rule may fire for one contact.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Repeat {
    /// Every time its trigger and condition hold.
    EveryTime,
    /// Only the first time ever.
    Once,
    /// At most `max` times in any window of length `per` (a sliding window: Marketo's
    /// "20 per day" cap, kept exact).
    AtMost {
        /// Firings allowed per window.
        max: u32,
        /// The window.
        per: Duration,
    },
}

/// A repeat policy with an optional minimum interval between two firings.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct RepeatPolicy {
    pub(crate) repeat: Repeat,
    pub(crate) min_interval: Option<Duration>,
}

impl RepeatPolicy {
    /// A policy with no minimum interval.
    pub(crate) fn new(repeat: Repeat) -> RepeatPolicy {
        RepeatPolicy { repeat, min_interval: None }
    }

    /// Whether the policy needs any memory (rules that fire every time keep none).
    pub(crate) fn needs_memory(&self) -> bool {
        self.min_interval.is_some() || !matches!(self.repeat, Repeat::EveryTime)
    }

    /// How many recent firing instants the policy must keep.
    fn instants_kept(&self) -> usize {
        match self.repeat {
            Repeat::AtMost { max, .. } => (max as usize).max(1),
            Repeat::EveryTime => 1,
            Repeat::Once => usize::from(self.min_interval.is_some()),
        }
    }

    /// Whether the rule may fire at `now`, given what it remembers (`None`: never fired).
    pub(crate) fn allows(&self, memory: Option<&RepeatMemory>, now: Timestamp) -> bool {
        let Some(memory) = memory else {
            return true;
        };
        if let (Some(gap), Some(last)) = (self.min_interval, memory.times.last()) {
            if now.duration_since(*last).is_some_and(|d| d < gap) {
                return false;
            }
        }
        match self.repeat {
            Repeat::EveryTime => true,
            Repeat::Once => !memory.ever,
            Repeat::AtMost { max, per } => {
                let recent = memory.times.iter().filter(|t| now.duration_since(**t).is_some_and(|d| d < per));
                recent.count() < max as usize
            }
        }
    }

    /// Records a firing at `now`.
    pub(crate) fn record(&self, memory: &mut RepeatMemory, now: Timestamp) {
        memory.ever = true;
        let keep = self.instants_kept();
        if keep > 0 {
            memory.times.push(now);
            if memory.times.len() > keep {
                memory.times.drain(..memory.times.len() - keep);
            }
        }
    }
}

/// What a repeat policy remembers of one rule: whether it ever fired, and its most recent
/// firing instants (as many as "at most N per window" needs).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(from = "MemoryWire")]
pub(crate) struct RepeatMemory {
    pub(crate) ever: bool,
    pub(crate) times: SmallVec<[Timestamp; 1]>,
}

/// The stored form; `ever` is absent in states written before it existed, where a
/// remembered instant meant the rule had fired.
#[derive(Deserialize)]
struct MemoryWire {
    #[serde(default)]
    ever: bool,
    times: SmallVec<[Timestamp; 1]>,
}

impl From<MemoryWire> for RepeatMemory {
    fn from(wire: MemoryWire) -> RepeatMemory {
        RepeatMemory { ever: wire.ever || !wire.times.is_empty(), times: wire.times }
    }
}

/// A repeat policy from the document (`None`: every time), problems recorded at `path`.
pub(crate) fn compile_repeat(
    def: Option<&RepeatDef>,
    path: &str,
    diagnostics: &mut Vec<Diagnostic>,
) -> Repeat {
    match def {
        None => Repeat::EveryTime,
        Some(RepeatDef::Named(name)) => match name.as_str() {
            "every_time" => Repeat::EveryTime,
            "once" => Repeat::Once,
            other => {
                diagnostics.push(
                    Diagnostic::new(Code::InvalidDocument, format!("unknown repeat policy `{other}`"))
                        .with_path(path.to_string())
                        .with_help("write \"every_time\", \"once\" or {\"max\": N, \"per\": \"1d\"}")
                        .with_did_you_mean(did_you_mean(other, ["every_time", "once"])),
                );
                Repeat::EveryTime
            }
        },
        Some(RepeatDef::AtMost { max, per }) => {
            match crate::def::period_or_report(per, format!("{path}/per"), diagnostics) {
                Some(per) => Repeat::AtMost { max: *max, per },
                None => Repeat::EveryTime,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: i64) -> Timestamp {
        Timestamp::from_unix(s, 0).unwrap()
    }

    #[test]
    fn at_most_is_a_sliding_window() {
        let policy = RepeatPolicy::new(Repeat::AtMost { max: 2, per: Duration::from_secs(10).unwrap() });
        let mut memory = RepeatMemory::default();
        for t in [0, 5] {
            assert!(policy.allows(Some(&memory), at(t)));
            policy.record(&mut memory, at(t));
        }
        assert!(!policy.allows(Some(&memory), at(9)));
        assert!(policy.allows(Some(&memory), at(10)));
        assert_eq!(memory.times.len(), 2);
    }

    #[test]
    fn once_remembers_without_instants() {
        let policy = RepeatPolicy::new(Repeat::Once);
        let mut memory = RepeatMemory::default();
        policy.record(&mut memory, at(0));
        assert!(memory.times.is_empty());
        assert!(!policy.allows(Some(&memory), at(1_000_000)));
    }

    #[test]
    fn old_engine_memory_without_ever_reads_as_fired() {
        let memory: RepeatMemory = serde_json::from_str(r#"{"times": ["2026-01-01T00:00:00Z"]}"#).unwrap();
        assert!(memory.ever);
    }
}
