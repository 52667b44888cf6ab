//! A contact's scoring state, in two parts: the hot part every event reads and writes
//! (values, threshold and band memory, repeat-policy memory), and the explanation
//! history (a ledger of recent changes and each rule's contribution), which is kept
//! apart, allocated only when a contact first changes, and can be switched off.

use std::collections::VecDeque;

use serde::{Deserialize, Serialize};
use smallvec::SmallVec;

use crate::counters::CounterState;
use crate::id::{EventId, RuleId};
use crate::scoring::cell::ScoreCell;
use crate::scoring::threshold::ThresholdState;
use crate::time::Timestamp;

/// A change to one score caused by one rule.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LedgerEntry {
    /// The rule.
    pub rule: RuleId,
    /// The points that took effect (after caps).
    pub delta: f64,
    /// When.
    pub at: Timestamp,
    /// The event that caused it; `None` for fit changes.
    pub event: Option<EventId>,
}

/// A contact's scores under a [`Scorer`](crate::scoring::Scorer).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ContactScores {
    pub(crate) models: SmallVec<[ModelState; 1]>,
    pub(crate) counters: CounterState,
    pub(crate) last: Timestamp,
    /// Events at or after this instant must check thresholds and bands: the next
    /// decay-driven wake-up as of the last change (`Timestamp::MAX` for never).
    pub(crate) check_from: Timestamp,
    /// Explanations: allocated on the first change, absent when the scorer keeps none.
    pub(crate) history: Option<Box<History>>,
}

impl ContactScores {
    /// When the state last changed (or was last checked): events must not be older.
    pub fn last_change(&self) -> Timestamp {
        self.last
    }

    /// The wake-up remembered at the last change (`None`: never), which may be due
    /// already (a fresh or adopted state is due at once).
    pub(crate) fn remembered_wake(&self) -> Option<Timestamp> {
        (self.check_from != Timestamp::MAX).then_some(self.check_from)
    }

    /// Heap bytes this state holds, split into the hot part and the explanation
    /// history (requested sizes, without the allocator's own overhead).
    pub fn heap_bytes(&self) -> (usize, usize) {
        let models: usize = self.models.iter().map(ModelState::heap_bytes).sum();
        let inline = if self.models.spilled() { self.models.capacity() * size_of::<ModelState>() } else { 0 };
        let hot = models + inline + self.counters.heap_bytes();
        let history = self.history.as_ref().map_or(0, |h| size_of::<History>() + h.heap_bytes());
        (hot, history)
    }
}

/// One model's hot state for one contact.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub(crate) struct ModelState {
    pub(crate) groups: SmallVec<[ScoreCell; 2]>,
    pub(crate) fit: f64,
    /// The fit rules that currently hold, by position.
    pub(crate) fit_holds: SmallVec<[u32; 2]>,
    pub(crate) thresholds: SmallVec<[ThresholdState; 4]>,
    pub(crate) band: Option<u16>,
    /// Repeat-policy memory of the rules that have a policy and have awarded points,
    /// sorted by rule. Rules that award every time keep nothing.
    pub(crate) memory: Vec<RuleMemory>,
    /// Timeframe groups' awards still inside their windows.
    pub(crate) awards: Vec<Award>,
}

impl ModelState {
    fn heap_bytes(&self) -> usize {
        let spilled = |spilled: bool, bytes: usize| if spilled { bytes } else { 0 };
        spilled(self.groups.spilled(), self.groups.capacity() * size_of::<ScoreCell>())
            + spilled(self.fit_holds.spilled(), self.fit_holds.capacity() * 4)
            + spilled(self.thresholds.spilled(), self.thresholds.capacity() * size_of::<ThresholdState>())
            + self.memory.capacity() * size_of::<RuleMemory>()
            + self
                .memory
                .iter()
                .map(|m| spilled(m.memory.times.spilled(), m.memory.times.capacity() * 16))
                .sum::<usize>()
            + self.awards.capacity() * size_of::<Award>()
    }
}

/// What a rule's repeat policy needs to remember: whether it ever awarded, and its
/// most recent award instants (as many as "at most N per window" needs).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub(crate) struct RuleMemory {
    pub(crate) rule: u32,
    #[serde(flatten)]
    pub(crate) memory: crate::repeat::RepeatMemory,
}

/// Points a rule earned in a timeframe group, expiring one window later.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub(crate) struct Award {
    pub(crate) at: Timestamp,
    pub(crate) points: f64,
    pub(crate) rule: u32,
    pub(crate) group: u16,
}

/// Explanations for every model: read by `explain`, written on every change.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub(crate) struct History {
    pub(crate) models: SmallVec<[ModelHistory; 1]>,
}

impl History {
    fn heap_bytes(&self) -> usize {
        (if self.models.spilled() { self.models.capacity() * size_of::<ModelHistory>() } else { 0 })
            + self
                .models
                .iter()
                .map(|m| {
                    m.ledger.capacity() * size_of::<StoredEntry>()
                        + m.contributions.capacity() * size_of::<Contribution>()
                        + if m.scales.spilled() { m.scales.capacity() * 8 } else { 0 }
                })
                .sum::<usize>()
    }
}

/// A ledger entry as stored: the rule by position (its id is looked up when read).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub(crate) struct StoredEntry {
    pub(crate) rule: u32,
    pub(crate) delta: f64,
    pub(crate) at: Timestamp,
    pub(crate) event: Option<EventId>,
}

/// One model's explanations for one contact.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub(crate) struct ModelHistory {
    pub(crate) ledger: VecDeque<StoredEntry>,
    /// Per group: the product of the decay factors applied at the group's writes. A
    /// contribution is kept divided by the scale at which it was earned, so that every
    /// contribution decays with its group without being touched at each write.
    pub(crate) scales: SmallVec<[f64; 2]>,
    /// Per rule that earned points in a decaying or plain group, sorted by rule.
    pub(crate) contributions: Vec<Contribution>,
}

/// A rule's points, divided by its group's scale (see [`ModelHistory::scales`]).
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub(crate) struct Contribution {
    pub(crate) rule: u32,
    pub(crate) group: u16,
    pub(crate) normalized: f64,
}

/// Scales below this are folded into the contributions, so that neither underflows.
const MIN_SCALE: f64 = 1e-100;

impl ModelHistory {
    /// Applies the decay factor of a group's write to its scale.
    pub(crate) fn decay_group(&mut self, group: usize, factor: f64) {
        if group >= self.scales.len() {
            self.scales.resize(group + 1, 1.0);
        }
        self.scales[group] *= factor;
        if self.scales[group] < MIN_SCALE {
            self.fold(group);
        }
    }

    /// Folds a group's scale into its contributions and resets it to 1.
    fn fold(&mut self, group: usize) {
        let scale = self.scales[group];
        for c in self.contributions.iter_mut().filter(|c| usize::from(c.group) == group) {
            c.normalized *= scale;
        }
        self.scales[group] = 1.0;
    }

    /// Adds `delta` points (as of the group's current scale) to a rule's contribution.
    pub(crate) fn contribute(&mut self, rule: u32, group: usize, delta: f64) {
        if group >= self.scales.len() {
            self.scales.resize(group + 1, 1.0);
        }
        if !(delta / self.scales[group]).is_finite() {
            self.fold(group);
        }
        let normalized = delta / self.scales[group];
        match self.contributions.binary_search_by_key(&rule, |c| c.rule) {
            Ok(i) => self.contributions[i].normalized += normalized,
            Err(i) => self.contributions.insert(
                i,
                Contribution { rule, group: u16::try_from(group).unwrap_or(u16::MAX), normalized },
            ),
        }
    }

    /// A contribution's points as of its group's last write.
    pub(crate) fn at_last_write(&self, c: &Contribution) -> f64 {
        c.normalized * self.scales.get(usize::from(c.group)).copied().unwrap_or(1.0)
    }

    /// Appends to the ledger, dropping the oldest entry past `len`. (It grows as
    /// needed: most contacts never fill it.)
    pub(crate) fn push(&mut self, entry: StoredEntry, len: usize) {
        if len == 0 {
            return;
        }
        while self.ledger.len() >= len {
            self.ledger.pop_front();
        }
        self.ledger.push_back(entry);
    }
}

impl ContactScores {
    /// Checks a loaded score state on its own (whether it fits a program is
    /// [`Scorer::fits`](crate::scoring::Scorer::fits)): `models` models, every number
    /// finite, every decay scale positive, no instant after `last` (the contact's last
    /// change). The error names the field, as `models[0].fit: not finite`.
    pub(crate) fn validate(&self, models: usize, last: Timestamp) -> Result<(), String> {
        if self.models.len() != models {
            return Err(format!("models: {} of them for {models} model ids", self.models.len()));
        }
        let finite =
            |path: String, v: f64| if v.is_finite() { Ok(()) } else { Err(format!("{path}: not finite")) };
        let before = |path: String, t: Timestamp| {
            if t <= last {
                Ok(())
            } else {
                Err(format!("{path}: {t} is after the last change {last}"))
            }
        };
        before("last".into(), self.last)?;
        for (m, model) in self.models.iter().enumerate() {
            finite(format!("models[{m}].fit"), model.fit)?;
            for (g, cell) in model.groups.iter().enumerate() {
                finite(format!("models[{m}].groups[{g}].value"), cell.stored())?;
                before(format!("models[{m}].groups[{g}].at"), cell.updated_at())?;
            }
            for (a, award) in model.awards.iter().enumerate() {
                finite(format!("models[{m}].awards[{a}].points"), award.points)?;
                before(format!("models[{m}].awards[{a}].at"), award.at)?;
            }
        }
        if let Some(history) = &self.history {
            if history.models.len() != models {
                return Err(format!("history.models: {} of them for {models} models", history.models.len()));
            }
            for (m, h) in history.models.iter().enumerate() {
                for (i, entry) in h.ledger.iter().enumerate() {
                    finite(format!("history.models[{m}].ledger[{i}].delta"), entry.delta)?;
                }
                for (g, scale) in h.scales.iter().enumerate() {
                    if !(scale.is_finite() && *scale > 0.0 && *scale <= 1.0) {
                        return Err(format!("history.models[{m}].scales[{g}]: {scale} is not in (0, 1]"));
                    }
                }
                for (i, c) in h.contributions.iter().enumerate() {
                    finite(format!("history.models[{m}].contributions[{i}].normalized"), c.normalized)?;
                }
            }
        }
        Ok(())
    }
}
