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
use crate::time::{Instant12, Timestamp};

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
///
/// Kept compact, since a host holds one per contact: instants take 12 bytes, threshold
/// memory is bits, and what most contacts never have (counters, timeframe awards,
/// explanations) sits behind optional pointers. Snapshots are written in the original
/// shape (see [`wire`]), so states written before the compact layout still load.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(into = "wire::ContactScoresWire", try_from = "wire::ContactScoresWire")]
pub struct ContactScores {
    pub(crate) models: SmallVec<[ModelState; 1]>,
    /// The scorer's counters, only when it has any.
    pub(crate) counters: Option<Box<CounterState>>,
    last: Instant12,
    /// Events at or after this instant must check thresholds and bands: the next
    /// decay-driven wake-up as of the last change (`Timestamp::MAX` for never).
    check_from: Instant12,
    /// Explanations: allocated on the first change, absent when the scorer keeps none.
    pub(crate) history: Option<Box<History>>,
}

impl ContactScores {
    /// A state of these parts.
    pub(crate) fn from_parts(
        models: SmallVec<[ModelState; 1]>,
        counters: Option<Box<CounterState>>,
        last: Timestamp,
        check_from: Timestamp,
    ) -> ContactScores {
        ContactScores {
            models,
            counters,
            last: Instant12::new(last),
            check_from: Instant12::new(check_from),
            history: None,
        }
    }

    /// When the state last changed (or was last checked): events must not be older.
    pub fn last_change(&self) -> Timestamp {
        self.last.get()
    }

    pub(crate) fn set_last(&mut self, at: Timestamp) {
        self.last = Instant12::new(at);
    }

    /// See [`ContactScores::check_from`](#structfield.check_from).
    pub(crate) fn check_from(&self) -> Timestamp {
        self.check_from.get()
    }

    pub(crate) fn set_check_from(&mut self, at: Timestamp) {
        self.check_from = Instant12::new(at);
    }

    /// The wake-up remembered at the last change (`None`: never), which may be due
    /// already (a fresh or adopted state is due at once).
    pub(crate) fn remembered_wake(&self) -> Option<Timestamp> {
        (self.check_from != Instant12::MAX).then_some(self.check_from.get())
    }

    /// Heap bytes this state holds, split into the hot part and the explanation
    /// history (requested sizes, without the allocator's own overhead).
    pub fn heap_bytes(&self) -> (usize, usize) {
        let models: usize = self.models.iter().map(ModelState::heap_bytes).sum();
        let inline = if self.models.spilled() { self.models.capacity() * size_of::<ModelState>() } else { 0 };
        let counters = self.counters.as_ref().map_or(0, |c| size_of::<CounterState>() + c.heap_bytes());
        let hot = models + inline + counters;
        let history = self.history.as_ref().map_or(0, |h| size_of::<History>() + h.heap_bytes());
        (hot, history)
    }
}

/// One model's hot state for one contact.
#[derive(Clone, Debug)]
pub(crate) struct ModelState {
    pub(crate) groups: SmallVec<[ScoreCell; 2]>,
    pub(crate) fit: f64,
    /// The fit rules that currently hold, by position.
    pub(crate) fit_holds: SmallVec<[u32; 2]>,
    /// Repeat-policy memory of the rules that have a policy and have awarded points,
    /// sorted by rule. Rules that award every time keep nothing.
    pub(crate) memory: Vec<RuleMemory>,
    /// What few contacts have: timeframe awards, and the memory of thresholds past
    /// the first [`INLINE_THRESHOLDS`].
    cold: Option<Box<ModelCold>>,
    /// Two bits per threshold (inside, ever entered), for the first
    /// [`INLINE_THRESHOLDS`].
    threshold_bits: u32,
    thresholds: u16,
    pub(crate) band: Option<u16>,
}

/// Thresholds whose memory is kept inline, as bits.
const INLINE_THRESHOLDS: usize = 16;

/// The rarely used part of a model's state.
#[derive(Clone, Debug, Default, PartialEq)]
struct ModelCold {
    /// Timeframe groups' awards still inside their windows.
    awards: Vec<Award>,
    /// The thresholds past the first [`INLINE_THRESHOLDS`].
    thresholds: Vec<ThresholdState>,
}

/// Equal by content (an emptied cold part equals none).
impl PartialEq for ModelState {
    fn eq(&self, other: &ModelState) -> bool {
        self.groups == other.groups
            && self.fit == other.fit
            && self.fit_holds == other.fit_holds
            && self.memory == other.memory
            && self.awards() == other.awards()
            && self.threshold_count() == other.threshold_count()
            && self.thresholds().eq(other.thresholds())
            && self.band == other.band
    }
}

impl ModelState {
    /// A model's state: `groups` cells, `thresholds` thresholds neither inside nor ever
    /// entered, nothing else.
    pub(crate) fn new(groups: SmallVec<[ScoreCell; 2]>, thresholds: usize) -> ModelState {
        let mut state = ModelState {
            groups,
            fit: 0.0,
            fit_holds: SmallVec::new(),
            memory: Vec::new(),
            cold: None,
            threshold_bits: 0,
            thresholds: 0,
            band: None,
        };
        state.set_threshold_count(thresholds);
        state
    }

    fn set_threshold_count(&mut self, n: usize) {
        // Counts past u16 are clamped: such a state does not fit any model (`fits`).
        self.thresholds = u16::try_from(n).unwrap_or(u16::MAX);
        if n > INLINE_THRESHOLDS {
            self.cold_mut().thresholds = vec![ThresholdState::default(); n - INLINE_THRESHOLDS];
        }
    }

    fn cold_mut(&mut self) -> &mut ModelCold {
        self.cold.get_or_insert_with(Box::default)
    }

    /// How many thresholds the state remembers.
    pub(crate) fn threshold_count(&self) -> usize {
        usize::from(self.thresholds)
    }

    /// Threshold `i`'s memory (`i < threshold_count()`).
    pub(crate) fn threshold(&self, i: usize) -> ThresholdState {
        if i < INLINE_THRESHOLDS {
            let bits = self.threshold_bits >> (2 * i);
            ThresholdState::from_bits(bits & 1 != 0, bits & 2 != 0)
        } else {
            self.cold
                .as_ref()
                .and_then(|c| c.thresholds.get(i - INLINE_THRESHOLDS))
                .copied()
                .unwrap_or_default()
        }
    }

    /// Sets threshold `i`'s memory (`i < threshold_count()`).
    pub(crate) fn set_threshold(&mut self, i: usize, t: ThresholdState) {
        if i < INLINE_THRESHOLDS {
            let bits = u32::from(t.inside()) | u32::from(t.ever_entered()) << 1;
            self.threshold_bits = self.threshold_bits & !(3 << (2 * i)) | bits << (2 * i);
        } else if let Some(slot) = self.cold_mut().thresholds.get_mut(i - INLINE_THRESHOLDS) {
            *slot = t;
        }
    }

    /// Every threshold's memory, in order.
    pub(crate) fn thresholds(&self) -> impl Iterator<Item = ThresholdState> + '_ {
        (0..self.threshold_count()).map(|i| self.threshold(i))
    }

    /// Timeframe groups' awards still inside their windows.
    pub(crate) fn awards(&self) -> &[Award] {
        self.cold.as_ref().map_or(&[], |c| &c.awards)
    }

    /// The awards, to change (allocating the cold part only to add one).
    pub(crate) fn awards_mut(&mut self) -> &mut Vec<Award> {
        &mut self.cold_mut().awards
    }

    /// Drops the awards `keep` refuses, without allocating.
    pub(crate) fn retain_awards(&mut self, keep: impl FnMut(&Award) -> bool) {
        if let Some(cold) = &mut self.cold {
            cold.awards.retain(keep);
        }
    }

    fn heap_bytes(&self) -> usize {
        let spilled = |spilled: bool, bytes: usize| if spilled { bytes } else { 0 };
        spilled(self.groups.spilled(), self.groups.capacity() * size_of::<ScoreCell>())
            + spilled(self.fit_holds.spilled(), self.fit_holds.capacity() * 4)
            + self.memory.capacity() * size_of::<RuleMemory>()
            + self
                .memory
                .iter()
                .map(|m| spilled(m.memory.times.spilled(), m.memory.times.capacity() * 16))
                .sum::<usize>()
            + self.cold.as_ref().map_or(0, |c| {
                size_of::<ModelCold>()
                    + c.awards.capacity() * size_of::<Award>()
                    + c.thresholds.capacity() * size_of::<ThresholdState>()
            })
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
        before("last".into(), self.last.get())?;
        for (m, model) in self.models.iter().enumerate() {
            finite(format!("models[{m}].fit"), model.fit)?;
            for (g, cell) in model.groups.iter().enumerate() {
                finite(format!("models[{m}].groups[{g}].value"), cell.stored())?;
                before(format!("models[{m}].groups[{g}].at"), cell.updated_at())?;
            }
            for (a, award) in model.awards().iter().enumerate() {
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

/// The serialized shape of a [`ContactScores`]: the layout before the compact state, so
/// that snapshots written by either load in both.
pub(crate) mod wire {
    use super::*;
    use crate::scoring::cell::ScoreCell;

    #[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
    pub(crate) struct ContactScoresWire {
        models: SmallVec<[ModelStateWire; 1]>,
        counters: CounterState,
        last: Timestamp,
        check_from: Timestamp,
        history: Option<Box<History>>,
    }

    #[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
    struct ModelStateWire {
        groups: SmallVec<[ScoreCellWire; 2]>,
        fit: f64,
        fit_holds: SmallVec<[u32; 2]>,
        thresholds: SmallVec<[ThresholdStateWire; 4]>,
        band: Option<u16>,
        memory: Vec<RuleMemory>,
        awards: Vec<Award>,
    }

    #[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
    struct ScoreCellWire {
        value: f64,
        at: Timestamp,
    }

    #[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
    struct ThresholdStateWire {
        inside: bool,
        ever_entered: bool,
    }

    impl From<ContactScores> for ContactScoresWire {
        fn from(s: ContactScores) -> ContactScoresWire {
            ContactScoresWire {
                models: s.models.into_iter().map(ModelStateWire::from).collect(),
                counters: s.counters.map(|c| *c).unwrap_or_default(),
                last: s.last.get(),
                check_from: s.check_from.get(),
                history: s.history,
            }
        }
    }

    impl From<ModelState> for ModelStateWire {
        fn from(m: ModelState) -> ModelStateWire {
            ModelStateWire {
                groups: m
                    .groups
                    .iter()
                    .map(|c| ScoreCellWire { value: c.stored(), at: c.updated_at() })
                    .collect(),
                fit: m.fit,
                thresholds: m
                    .thresholds()
                    .map(|t| ThresholdStateWire { inside: t.inside(), ever_entered: t.ever_entered() })
                    .collect(),
                band: m.band,
                awards: m.awards().to_vec(),
                fit_holds: m.fit_holds,
                memory: m.memory,
            }
        }
    }

    impl TryFrom<ContactScoresWire> for ContactScores {
        type Error = String;

        fn try_from(w: ContactScoresWire) -> Result<ContactScores, String> {
            let models = w.models.into_iter().map(ModelState::try_from).collect::<Result<_, _>>()?;
            let counters = (!w.counters.is_empty()).then(|| Box::new(w.counters));
            let mut state = ContactScores::from_parts(models, counters, w.last, w.check_from);
            state.history = w.history;
            Ok(state)
        }
    }

    impl TryFrom<ModelStateWire> for ModelState {
        type Error = String;

        fn try_from(w: ModelStateWire) -> Result<ModelState, String> {
            if w.thresholds.len() > usize::from(u16::MAX) {
                return Err(format!("{} thresholds, more than {}", w.thresholds.len(), u16::MAX));
            }
            let groups = w.groups.iter().map(|c| ScoreCell::written(c.value, c.at)).collect();
            let mut m = ModelState::new(groups, w.thresholds.len());
            for (i, t) in w.thresholds.iter().enumerate() {
                m.set_threshold(i, ThresholdState::from_bits(t.inside, t.ever_entered));
            }
            m.fit = w.fit;
            m.fit_holds = w.fit_holds;
            m.band = w.band;
            m.memory = w.memory;
            if !w.awards.is_empty() {
                *m.awards_mut() = w.awards;
            }
            Ok(m)
        }
    }
}
