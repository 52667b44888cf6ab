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
use crate::scoring::thin::ThinWords;
use crate::scoring::threshold::ThresholdState;
use crate::time::{Instant12, Instant8, Timestamp};

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
/// Kept compact, since a host holds one per contact: instants take 8 bytes (with a
/// cold copy for the rare instant outside 1697 to 2242), threshold memory is bits, the
/// first model is inline, and what most contacts never have (counters, timeframe
/// awards, explanations) sits behind optional pointers. Snapshots are written in the
/// original shape (the `wire` module), so states written before the compact layout
/// still load.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(into = "wire::ContactScoresWire", try_from = "wire::ContactScoresWire")]
pub struct ContactScores {
    pub(crate) models: Models,
    /// `Instant8::FAR`: the instant is in the optional part.
    last: Instant8,
    /// Events at or after this instant must check thresholds and bands: the next
    /// decay-driven wake-up as of the last change (`Timestamp::MAX` for never).
    /// `Instant8::FAR`: the instant is in the optional part.
    check_from: Instant8,
    /// The scorer's counters and the explanations, behind one pointer: absent until
    /// there is one of them (most contacts of a scorer without counters and without
    /// explanations never allocate it). Never left holding none of its parts.
    pub(crate) extra: ExtraSlot,
}

/// The pointer to the optional parts (a field of its own, so that a model's state and
/// the explanations can be borrowed together).
#[derive(Clone, Debug, Default)]
pub(crate) struct ExtraSlot(Option<Box<Extra>>);

impl ExtraSlot {
    /// The scorer's counters (`None` when it has none).
    pub(crate) fn counters(&self) -> Option<&CounterState> {
        self.0.as_ref()?.counters.as_deref()
    }

    /// The counters, made by `new` if absent.
    pub(crate) fn counters_mut(&mut self, new: impl FnOnce() -> CounterState) -> &mut CounterState {
        self.0.get_or_insert_with(Box::default).counters.get_or_insert_with(|| Box::new(new()))
    }

    /// The explanations, if any were kept.
    pub(crate) fn history(&self) -> Option<&History> {
        self.0.as_ref()?.history.as_ref()
    }

    /// The explanations, made by `new` if absent.
    pub(crate) fn history_mut(&mut self, new: impl FnOnce() -> History) -> &mut History {
        self.0.get_or_insert_with(Box::default).history.get_or_insert_with(new)
    }

    /// Takes the explanations out.
    pub(crate) fn take_history(&mut self) -> Option<History> {
        let extra = self.0.as_mut()?;
        let history = extra.history.take();
        if extra.counters.is_none() && extra.far.is_none() {
            self.0 = None;
        }
        history
    }

    /// The instants kept here because their 8-byte form is `FAR`.
    fn far(&self) -> FarInstants {
        self.0.as_ref().and_then(|e| e.far.as_deref()).copied().unwrap_or_default()
    }

    fn far_mut(&mut self) -> &mut FarInstants {
        self.0.get_or_insert_with(Box::default).far.get_or_insert_with(Box::default)
    }
}

/// The optional parts of a contact's scores.
#[derive(Clone, Debug, Default, PartialEq)]
struct Extra {
    /// The scorer's counters, only when it has any (boxed: the explanations, which
    /// most states have, should not carry their space).
    counters: Option<Box<CounterState>>,
    /// Explanations: made at the first change, never when the scorer keeps none.
    history: Option<History>,
    /// The contact's instants outside the span of an [`Instant8`] (only read where the
    /// inline form is `FAR`).
    far: Option<Box<FarInstants>>,
}

/// The exact `last` and `check_from` of a state whose inline form says `FAR`.
#[derive(Clone, Copy, Debug, PartialEq)]
struct FarInstants {
    last: Timestamp,
    check_from: Timestamp,
}

impl Default for FarInstants {
    fn default() -> FarInstants {
        FarInstants { last: Timestamp::UNIX_EPOCH, check_from: Timestamp::UNIX_EPOCH }
    }
}

/// Equal by content.
impl PartialEq for ContactScores {
    fn eq(&self, other: &ContactScores) -> bool {
        self.models == other.models
            && self.last_change() == other.last_change()
            && self.check_from() == other.check_from()
            && self.extra.counters() == other.extra.counters()
            && self.extra.history() == other.extra.history()
    }
}

impl ContactScores {
    /// A state of these parts.
    pub(crate) fn from_parts(
        models: impl IntoIterator<Item = ModelState>,
        counters: Option<CounterState>,
        last: Timestamp,
        check_from: Timestamp,
    ) -> ContactScores {
        let mut state = ContactScores {
            models: Models::from_iter(models),
            last: Instant8::NEVER,
            check_from: Instant8::NEVER,
            extra: ExtraSlot(counters.map(|counters| {
                Box::new(Extra { counters: Some(Box::new(counters)), history: None, far: None })
            })),
        };
        state.set_last(last);
        state.set_check_from(check_from);
        state
    }

    /// When the state last changed (or was last checked): events must not be older.
    #[inline]
    pub fn last_change(&self) -> Timestamp {
        match self.last.get() {
            Some(t) => t,
            None => self.extra.far().last,
        }
    }

    #[inline]
    pub(crate) fn set_last(&mut self, at: Timestamp) {
        self.last = Instant8::new(at);
        if self.last == Instant8::FAR {
            self.extra.far_mut().last = at;
        }
    }

    /// See the field `check_from`.
    #[inline]
    pub(crate) fn check_from(&self) -> Timestamp {
        match self.check_from.get() {
            Some(t) => t,
            None => self.extra.far().check_from,
        }
    }

    #[inline]
    pub(crate) fn set_check_from(&mut self, at: Timestamp) {
        self.check_from = Instant8::new(at);
        if self.check_from == Instant8::FAR {
            self.extra.far_mut().check_from = at;
        }
    }

    /// The wake-up remembered at the last change (`None`: never), which may be due
    /// already (a fresh or adopted state is due at once).
    pub(crate) fn remembered_wake(&self) -> Option<Timestamp> {
        (self.check_from != Instant8::NEVER).then(|| self.check_from())
    }

    /// Heap bytes this state holds, split into the hot part and the explanation
    /// history (requested sizes, without the allocator's own overhead).
    pub fn heap_bytes(&self) -> (usize, usize) {
        let models = self.models.0.heap_bytes();
        // The shared box counts as history when it holds explanations, but for the
        // counters' and the far instants' slots; otherwise it is all hot (it exists for
        // those).
        let (extra_hot, history) = match &self.extra.0 {
            None => (0, 0),
            Some(extra) => {
                let counters =
                    extra.counters.as_ref().map_or(0, |c| size_of::<CounterState>() + c.heap_bytes());
                let far = extra.far.as_ref().map_or(0, |_| size_of::<FarInstants>());
                match &extra.history {
                    None => (size_of::<Extra>() + counters + far, 0),
                    Some(h) => {
                        let slot =
                            if extra.counters.is_some() { size_of::<Option<Box<CounterState>>>() } else { 0 }
                                + if far > 0 { size_of::<Option<Box<FarInstants>>>() } else { 0 };
                        (slot + counters + far, size_of::<Extra>() - slot + h.heap_bytes())
                    }
                }
            }
        };
        (models + extra_hot, history)
    }
}

/// The models' states of one contact: the first inline, the others (which most
/// programs do not have) in the first one's cold part, so a one-model state pays
/// neither a length nor a pointer.
#[derive(Clone, Debug)]
pub(crate) struct Models(ModelState);

impl Models {
    /// How many models.
    #[inline]
    pub(crate) fn len(&self) -> usize {
        if self.0.present {
            1 + self.0.more().len()
        } else {
            0
        }
    }

    /// Model `i`'s state.
    #[inline]
    pub(crate) fn get(&self, i: usize) -> Option<&ModelState> {
        match i {
            0 if self.0.present => Some(&self.0),
            0 => None,
            _ => self.0.more().get(i - 1),
        }
    }

    /// Model `i`'s state, to change (not to replace: see [`Models::set`]).
    #[inline]
    pub(crate) fn get_mut(&mut self, i: usize) -> Option<&mut ModelState> {
        match i {
            0 if self.0.present => Some(&mut self.0),
            0 => None,
            _ => self.0.cold.as_mut()?.more.get_mut(i - 1),
        }
    }

    /// Replaces model `i`'s state (a no-op out of range).
    pub(crate) fn set(&mut self, i: usize, mut state: ModelState) {
        if let Some(cold) = &mut state.cold {
            cold.more = Vec::new();
        }
        if i == 0 && self.0.present {
            let more = self.0.cold.as_mut().map(|c| std::mem::take(&mut c.more)).unwrap_or_default();
            self.0 = state;
            if !more.is_empty() {
                self.0.cold_mut().more = more;
            }
        } else if let Some(slot) = self.get_mut(i) {
            *slot = state;
        }
    }

    /// The states in model order.
    pub(crate) fn iter(&self) -> ModelsIter<'_> {
        self.0.present.then_some(&self.0).into_iter().chain(self.0.more())
    }

    /// The states, taken out, in model order.
    pub(crate) fn into_vec(mut self) -> Vec<ModelState> {
        if !self.0.present {
            return Vec::new();
        }
        let more = self.0.cold.as_mut().map(|c| std::mem::take(&mut c.more)).unwrap_or_default();
        let mut all = Vec::with_capacity(1 + more.len());
        all.push(self.0);
        all.extend(more);
        all
    }
}

impl FromIterator<ModelState> for Models {
    fn from_iter<I: IntoIterator<Item = ModelState>>(iter: I) -> Models {
        let mut iter = iter.into_iter();
        let Some(mut first) = iter.next() else {
            let mut none = ModelState::new(&[], 0);
            none.present = false;
            return Models(none);
        };
        first.present = true;
        let more: Vec<ModelState> = iter.collect();
        if let Some(cold) = &mut first.cold {
            cold.more = Vec::new();
        }
        if !more.is_empty() {
            first.cold_mut().more = more;
        }
        Models(first)
    }
}

/// An iterator over [`Models`].
pub(crate) type ModelsIter<'a> =
    std::iter::Chain<std::option::IntoIter<&'a ModelState>, std::slice::Iter<'a, ModelState>>;

impl<'a> IntoIterator for &'a Models {
    type Item = &'a ModelState;
    type IntoIter = ModelsIter<'a>;

    fn into_iter(self) -> ModelsIter<'a> {
        self.iter()
    }
}

impl std::ops::Index<usize> for Models {
    type Output = ModelState;

    #[inline]
    fn index(&self, i: usize) -> &ModelState {
        match self.get(i) {
            Some(m) => m,
            None => panic!("model {i} of a state with {} models", self.len()),
        }
    }
}

impl std::ops::IndexMut<usize> for Models {
    #[inline]
    fn index_mut(&mut self, i: usize) -> &mut ModelState {
        let len = self.len();
        match self.get_mut(i) {
            Some(m) => m,
            None => panic!("model {i} of a state with {len} models"),
        }
    }
}

/// Equal by content.
impl PartialEq for Models {
    fn eq(&self, other: &Models) -> bool {
        self.len() == other.len() && self.iter().eq(other.iter())
    }
}

/// A group's value and the instant of its last write, inline in 16 bytes.
#[derive(Clone, Copy, Debug)]
struct Cell8 {
    value: f64,
    /// Never `Instant8::FAR`: such a cell moves the model's groups to the cold part.
    at: Instant8,
}

/// One model's hot state for one contact.
#[derive(Clone, Debug)]
pub(crate) struct ModelState {
    /// The groups' cells when there are at most [`INLINE_GROUPS`] and every instant
    /// has an 8-byte form (the rest unused); otherwise they are all in the cold part.
    cells: [Cell8; INLINE_GROUPS],
    pub(crate) fit: f64,
    /// The fit rules that currently hold, and the repeat-policy memory of the rules
    /// that have a policy and have awarded points. Rules that award every time keep
    /// nothing.
    pub(crate) rules: RuleBlock,
    /// What few contacts have: timeframe awards, the memory of thresholds past the
    /// first [`INLINE_THRESHOLDS`], groups that are not inline, and (in a contact's
    /// first model) the other models.
    cold: Option<Box<ModelCold>>,
    /// Two bits per threshold (inside, ever entered), for the first
    /// [`INLINE_THRESHOLDS`].
    threshold_bits: u32,
    thresholds: u16,
    pub(crate) band: Option<u16>,
    /// The fit rules that hold within `fit_base .. fit_base + 16`, as bits, where
    /// `fit_base` is the lowest holding fit rule (when below 2^16); the others that hold
    /// are in `rules`. So a model whose fit rules sit together, as usual, keeps them in
    /// 4 bytes of what would be padding.
    fit_base: u16,
    fit_bits: u16,
    /// How many groups, when inline; `u8::MAX` when they are in the cold part.
    inline_groups: u8,
    /// False only for the placeholder of a state without models (see [`Models`]).
    present: bool,
}

/// Thresholds whose memory is kept inline, as bits.
const INLINE_THRESHOLDS: usize = 16;

/// Groups whose cells are kept inline.
const INLINE_GROUPS: usize = 2;

/// The rarely used part of a model's state.
#[derive(Clone, Debug, Default, PartialEq)]
struct ModelCold {
    /// The groups' cells when they are not inline.
    groups: Vec<ScoreCell>,
    /// Timeframe groups' awards still inside their windows.
    awards: Vec<Award>,
    /// The thresholds past the first [`INLINE_THRESHOLDS`].
    thresholds: Vec<ThresholdState>,
    /// In a contact's first model: the other models' states.
    more: Vec<ModelState>,
}

/// Equal by content (an emptied cold part equals none; other models are not part of
/// a model's content).
impl PartialEq for ModelState {
    fn eq(&self, other: &ModelState) -> bool {
        self.groups().eq(other.groups())
            && self.fit == other.fit
            && self.rules == other.rules
            && self.fit_bits == other.fit_bits
            && (self.fit_bits == 0 || self.fit_base == other.fit_base)
            && self.awards() == other.awards()
            && self.threshold_count() == other.threshold_count()
            && self.thresholds().eq(other.thresholds())
            && self.band == other.band
    }
}

impl ModelState {
    /// A model's state: `groups` cells, `thresholds` thresholds neither inside nor ever
    /// entered, nothing else.
    pub(crate) fn new(groups: &[ScoreCell], thresholds: usize) -> ModelState {
        let mut state = ModelState {
            cells: [Cell8 { value: 0.0, at: Instant8::new(Timestamp::UNIX_EPOCH) }; INLINE_GROUPS],
            fit: 0.0,
            rules: RuleBlock::default(),
            cold: None,
            threshold_bits: 0,
            thresholds: 0,
            band: None,
            fit_base: 0,
            fit_bits: 0,
            inline_groups: 0,
            present: true,
        };
        state.set_threshold_count(thresholds);
        let inline = groups.len() <= INLINE_GROUPS
            && groups.iter().all(|c| Instant8::new(c.updated_at()) != Instant8::FAR);
        match u8::try_from(groups.len()) {
            Ok(n) if inline => {
                for (slot, c) in state.cells.iter_mut().zip(groups) {
                    *slot = Cell8 { value: c.stored(), at: Instant8::new(c.updated_at()) };
                }
                state.inline_groups = n;
            }
            _ => {
                state.inline_groups = u8::MAX;
                state.cold_mut().groups = groups.to_vec();
            }
        }
        state
    }

    /// How many groups.
    #[inline]
    pub(crate) fn group_count(&self) -> usize {
        match self.inline_groups {
            u8::MAX => self.cold.as_ref().map_or(0, |c| c.groups.len()),
            n => usize::from(n),
        }
    }

    /// Group `g`'s cell, `None` out of range.
    #[inline]
    pub(crate) fn get_group(&self, g: usize) -> Option<ScoreCell> {
        match self.inline_groups {
            u8::MAX => self.cold.as_ref()?.groups.get(g).copied(),
            n => {
                let c = self.cells[..usize::from(n)].get(g)?;
                // Inline instants are never `FAR`.
                Some(ScoreCell::written(c.value, c.at.get().unwrap_or(Timestamp::MAX)))
            }
        }
    }

    /// Group `g`'s cell.
    ///
    /// # Panics
    ///
    /// Out of range, as indexing does (callers check the state fits its model).
    #[inline]
    pub(crate) fn group(&self, g: usize) -> ScoreCell {
        match self.get_group(g) {
            Some(c) => c,
            None => panic!("group {g} of a model state with {} groups", self.group_count()),
        }
    }

    /// The groups' cells, in order.
    pub(crate) fn groups(&self) -> impl ExactSizeIterator<Item = ScoreCell> + Clone + '_ {
        (0..self.group_count()).map(|g| self.group(g))
    }

    /// Writes group `g`'s cell (a no-op out of range; callers check the state fits).
    #[inline]
    pub(crate) fn set_group(&mut self, g: usize, cell: ScoreCell) {
        if self.inline_groups != u8::MAX {
            let at = Instant8::new(cell.updated_at());
            if at != Instant8::FAR {
                if let Some(slot) = self.cells[..usize::from(self.inline_groups)].get_mut(g) {
                    *slot = Cell8 { value: cell.stored(), at };
                }
                return;
            }
            // An instant outside the 8-byte span: the groups move to the cold part.
            let groups: SmallVec<[ScoreCell; INLINE_GROUPS]> = self.groups().collect();
            self.cold_mut().groups = groups.to_vec();
            self.inline_groups = u8::MAX;
        }
        if let Some(slot) = self.cold.as_mut().and_then(|c| c.groups.get_mut(g)) {
            *slot = cell;
        }
    }

    /// In a contact's first model: the other models.
    fn more(&self) -> &[ModelState] {
        self.cold.as_ref().map_or(&[], |c| &c.more)
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

    /// The fit rules that hold, in rule order.
    pub(crate) fn holding(&self) -> impl Iterator<Item = u32> + '_ {
        let window = (0..16u32).filter(|i| self.fit_bits >> i & 1 != 0).map(|i| u32::from(self.fit_base) + i);
        window.chain(self.rules.holding())
    }

    /// Whether fit rule `rule` holds.
    pub(crate) fn holds(&self, rule: u32) -> bool {
        match rule.checked_sub(u32::from(self.fit_base)) {
            Some(i) if i < 16 && self.fit_bits != 0 => self.fit_bits >> i & 1 != 0,
            _ => self.rules.holds(rule),
        }
    }

    /// Records whether fit rule `rule` holds (attribute changes only: not per event).
    pub(crate) fn set_holds(&mut self, rule: u32, holds: bool) {
        if self.holds(rule) == holds {
            return;
        }
        let mut list: SmallVec<[u32; 8]> = self.holding().collect();
        match list.binary_search(&rule) {
            Ok(i) => {
                list.remove(i);
            }
            Err(i) => list.insert(i, rule),
        }
        self.set_holding(&list);
    }

    /// Sets the fit rules that hold (sorted, without repeats), in the one layout this
    /// set has: the window from the lowest, the rest in `rules`.
    fn set_holding(&mut self, list: &[u32]) {
        let old: SmallVec<[u32; 8]> = self.rules.holding().collect();
        for r in old {
            self.rules.set_holds(r, false);
        }
        self.fit_base = 0;
        self.fit_bits = 0;
        let base = list.first().and_then(|&b| u16::try_from(b).ok());
        for &r in list {
            match base.and_then(|b| r.checked_sub(u32::from(b))) {
                Some(i) if i < 16 => {
                    self.fit_base = base.unwrap_or(0);
                    self.fit_bits |= 1 << i;
                }
                _ => self.rules.set_holds(r, true),
            }
        }
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
        self.rules.heap_bytes()
            + self.cold.as_ref().map_or(0, |c| {
                size_of::<ModelCold>()
                    + c.groups.capacity() * size_of::<ScoreCell>()
                    + c.awards.capacity() * size_of::<Award>()
                    + c.thresholds.capacity() * size_of::<ThresholdState>()
                    + c.more.capacity() * size_of::<ModelState>()
                    + c.more.iter().map(ModelState::heap_bytes).sum::<usize>()
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

/// One model's per-rule memory for one contact, packed into one block of words of
/// exactly the size it needs behind a thin pointer (an empty block allocates nothing): the fit rules that
/// hold, and what repeat policies remember (see [`RuleMemory`]), sorted by rule.
///
/// Layout: `[n, n entries, the instants]`. An entry is `[rule, head | first << 16]`,
/// where `head` holds the flags [`HOLDS`], [`MEMORY`] and [`EVER`] and, from bit
/// [`COUNT_SHIFT`], the number of instants the rule keeps, which start at instant
/// `first`; an instant is an [`Instant8`] in two words, low word first. A block that
/// cannot be written so (an instant outside 1697 to 2242, a rule keeping 2^13 instants
/// or more, 2^16 instants in all) is *wide* ([`WIDE`] set in `n`): entries are
/// `[rule, head, first]` and instants [`Instant12`]s, three words each. Entries are
/// found by binary search; a rule's instants are rewritten in place once it keeps as
/// many as its policy allows, so the block is reallocated only when a rule first holds
/// or awards, or keeps one more instant.
#[derive(Clone, Debug, Default)]
pub(crate) struct RuleBlock(ThinWords);

/// The fit rule holds.
const HOLDS: u32 = 1;
/// The rule has repeat-policy memory.
const MEMORY: u32 = 2;
/// The rule awarded at least once.
const EVER: u32 = 4;
/// Where the instant count starts in an entry's `head`.
const COUNT_SHIFT: u32 = 3;
/// In the first word: entries and instants take three words.
const WIDE: u32 = 1 << 31;
/// Instants a rule keeps in a narrow block, at most.
const NARROW_COUNT: usize = (1 << (16 - COUNT_SHIFT)) - 1;
/// Instants a narrow block keeps, at most.
const NARROW_TIMES: usize = u16::MAX as usize;

/// A block being built (on the stack, as most are small).
type Words = SmallVec<[u32; 32]>;

/// An entry being rebuilt: rule, flags, instants.
type Entry = (u32, u32, Vec<Timestamp>);

/// Equal by content (a wide block can equal a narrow one).
impl PartialEq for RuleBlock {
    fn eq(&self, other: &RuleBlock) -> bool {
        let flags = HOLDS | MEMORY | EVER;
        self.len() == other.len()
            && (0..self.len()).all(|i| {
                let (a, b) = (self.entry(i), other.entry(i));
                a.0 == b.0 && a.1 & flags == b.1 & flags && self.times_of(i).eq(other.times_of(i))
            })
    }
}

/// A block's words with its layout read once (the hot paths take one view per call).
#[derive(Clone, Copy)]
struct View<'a> {
    words: &'a [u32],
    /// Entries.
    n: usize,
    /// Words per entry and per instant.
    s: usize,
}

impl<'a> View<'a> {
    /// Entry `i`'s rule, head and first instant.
    #[inline]
    fn entry(self, i: usize) -> (u32, u32, u32) {
        if self.s == 2 {
            let o = 1 + 2 * i;
            (self.words[o], self.words[o + 1] & 0xFFFF, self.words[o + 1] >> 16)
        } else {
            let o = 1 + 3 * i;
            (self.words[o], self.words[o + 1], self.words[o + 2])
        }
    }

    #[inline]
    fn find(self, rule: u32) -> Result<usize, usize> {
        let (mut lo, mut hi) = (0, self.n);
        while lo < hi {
            let mid = (lo + hi) / 2;
            match self.words[1 + self.s * mid].cmp(&rule) {
                std::cmp::Ordering::Less => lo = mid + 1,
                std::cmp::Ordering::Greater => hi = mid,
                std::cmp::Ordering::Equal => return Ok(mid),
            }
        }
        Err(lo)
    }

    /// Where entry `i`'s instants start in the block, and how many there are.
    #[inline]
    fn times_span(self, i: usize) -> (usize, usize) {
        let (_, head, first) = self.entry(i);
        (1 + self.s * self.n + self.s * first as usize, (head >> COUNT_SHIFT) as usize)
    }

    #[inline]
    fn times_of(self, i: usize) -> impl DoubleEndedIterator<Item = Timestamp> + Clone + 'a {
        let (start, count) = self.times_span(i);
        self.words[start..start + self.s * count].chunks_exact(self.s).map(RuleBlock::instant)
    }
}

impl RuleBlock {
    #[inline]
    fn view(&self) -> View<'_> {
        let words = &self.0[..];
        match words.first() {
            None => View { words, n: 0, s: 2 },
            Some(&h) => View { words, n: (h & !WIDE) as usize, s: if h & WIDE != 0 { 3 } else { 2 } },
        }
    }

    #[inline]
    fn len(&self) -> usize {
        self.view().n
    }

    /// Words per entry and per instant.
    #[inline]
    fn stride(&self) -> usize {
        self.view().s
    }

    /// Entry `i`'s rule, head and first instant.
    #[inline]
    fn entry(&self, i: usize) -> (u32, u32, u32) {
        self.view().entry(i)
    }

    /// The word of entry `i` that holds its flags (in the low bits).
    #[inline]
    fn head_word(&mut self, i: usize) -> &mut u32 {
        let o = 1 + self.stride() * i + 1;
        &mut self.0[o]
    }

    /// Writes an entry in the layout of stride `s` at `w[k..]`; returns where it ends.
    #[inline]
    fn put_entry(w: &mut [u32], k: usize, s: usize, rule: u32, head: u32, first: usize) -> usize {
        if s == 2 {
            w[k..k + 2].copy_from_slice(&[rule, head | (first as u32) << 16]);
        } else {
            w[k..k + 3].copy_from_slice(&[rule, head, first as u32]);
        }
        k + s
    }

    /// Appends an entry in the layout of stride `s`.
    #[inline]
    fn push_entry(words: &mut Words, s: usize, rule: u32, head: u32, first: usize) {
        if s == 2 {
            words.extend([rule, head | (first as u32) << 16]);
        } else {
            words.extend([rule, head, first as u32]);
        }
    }

    /// Whether entries of these instants, `times` instants in all, fit a narrow block.
    fn narrow<'a>(times: usize, entries: impl IntoIterator<Item = &'a [Timestamp]>) -> bool {
        times <= NARROW_TIMES
            && entries
                .into_iter()
                .all(|t| t.len() <= NARROW_COUNT && t.iter().all(|&t| Instant8::new(t) != Instant8::FAR))
    }

    #[inline]
    fn find(&self, rule: u32) -> Result<usize, usize> {
        self.view().find(rule)
    }

    fn times_of(&self, i: usize) -> impl DoubleEndedIterator<Item = Timestamp> + Clone + '_ {
        self.view().times_of(i)
    }

    /// The instant of these words (two or three).
    #[inline]
    fn instant(w: &[u32]) -> Timestamp {
        match *w {
            [lo, hi] => Instant8::from_bits((u64::from(lo) | u64::from(hi) << 32) as i64)
                .get()
                .unwrap_or(Timestamp::MAX),
            [a, b, c] => Instant12::from_words([a, b, c]),
            _ => Timestamp::MAX,
        }
    }

    /// Writes `t` into these words (two, when `t` has an 8-byte form, or three).
    #[inline]
    fn put_instant(w: &mut [u32], t: Timestamp) {
        if let [lo, hi] = w {
            let bits = Instant8::new(t).to_bits() as u64;
            (*lo, *hi) = (bits as u32, (bits >> 32) as u32);
        } else {
            w.copy_from_slice(&Instant12::to_words(t));
        }
    }

    /// The fit rules that hold, in rule order.
    pub(crate) fn holding(&self) -> impl Iterator<Item = u32> + '_ {
        (0..self.len()).map(|i| self.entry(i)).filter(|e| e.1 & HOLDS != 0).map(|e| e.0)
    }

    /// Whether fit rule `rule` holds.
    pub(crate) fn holds(&self, rule: u32) -> bool {
        self.find(rule).is_ok_and(|i| self.entry(i).1 & HOLDS != 0)
    }

    /// Records whether fit rule `rule` holds.
    pub(crate) fn set_holds(&mut self, rule: u32, holds: bool) {
        match self.find(rule) {
            Ok(i) => {
                let head = self.entry(i).1;
                if holds == (head & HOLDS != 0) {
                    return;
                }
                if holds || head & MEMORY != 0 {
                    *self.head_word(i) ^= HOLDS;
                } else {
                    *self = self.with_entry(rule, None);
                }
            }
            Err(_) if holds => *self = self.with_entry(rule, Some((HOLDS, &[]))),
            Err(_) => {}
        }
    }

    /// The repeat-policy memory of each rule that has one: rule, whether it ever
    /// awarded, its kept instants (oldest first).
    pub(crate) fn remembered(
        &self,
    ) -> impl Iterator<Item = (u32, bool, impl DoubleEndedIterator<Item = Timestamp> + Clone + '_)> + '_ {
        (0..self.len())
            .filter(|&i| self.entry(i).1 & MEMORY != 0)
            .map(|i| (self.entry(i).0, self.entry(i).1 & EVER != 0, self.times_of(i)))
    }

    /// Whether `policy` lets rule `rule` award at `now`, given what it remembers.
    pub(crate) fn allows(&self, rule: u32, policy: &crate::repeat::RepeatPolicy, now: Timestamp) -> bool {
        let v = self.view();
        match v.find(rule) {
            Ok(i) => {
                let head = v.entry(i).1;
                head & MEMORY == 0 || policy.allows_remembered(head & EVER != 0, v.times_of(i), now, None)
            }
            Err(_) => true,
        }
    }

    /// Records an award of rule `rule` at `now` under `policy` (as
    /// [`RepeatPolicy::record`](crate::repeat::RepeatPolicy::record) does).
    pub(crate) fn record(&mut self, rule: u32, policy: &crate::repeat::RepeatPolicy, now: Timestamp) {
        let keep = policy.instants_kept();
        let v = self.view();
        let (s, found) = (v.s, v.find(rule));
        let fits = s == 3 || Instant8::new(now) != Instant8::FAR;
        if let Ok(i) = found {
            let (start, count) = v.times_span(i);
            if keep == 0 || count == keep && fits {
                // The instants keep their number: shift out the oldest in place.
                *self.head_word(i) |= MEMORY | EVER;
                if keep > 0 {
                    self.0.copy_within(start + s..start + s * count, start);
                    let last = start + s * (count - 1);
                    RuleBlock::put_instant(&mut self.0[last..last + s], now);
                }
                return;
            }
        }
        let (flags, mut times) = match found {
            Ok(i) => (self.entry(i).1 & (HOLDS | MEMORY | EVER), self.times_of(i).collect()),
            Err(_) => (0, SmallVec::<[Timestamp; 4]>::new()),
        };
        if keep > 0 {
            times.push(now);
            let excess = times.len().saturating_sub(keep);
            times.drain(..excess);
        }
        *self = self.with_entry(rule, Some((flags | MEMORY | EVER, &times)));
    }

    /// This block with rule `rule`'s entry replaced by (or set to) `entry` (flags and
    /// instants), or removed for `None`: one allocation of the exact size, the other
    /// entries and instants copied in slices.
    fn with_entry(&self, rule: u32, entry: Option<(u32, &[Timestamp])>) -> RuleBlock {
        let v = self.view();
        let (n, s) = (v.n, v.s);
        let (at, replaced) = match v.find(rule) {
            Ok(i) => (i, true),
            Err(i) => (i, false),
        };
        let new_n = n - usize::from(replaced) + usize::from(entry.is_some());
        if new_n == 0 {
            return RuleBlock::default();
        }
        // The edited entry's instants start where the entries before it end.
        let times_start = 1 + s * n;
        let all_times = v.words.len().saturating_sub(times_start) / s;
        let (old_first, old_count) = if replaced {
            (v.entry(at).2 as usize, v.times_span(at).1)
        } else if at < n {
            (v.entry(at).2 as usize, 0)
        } else {
            (all_times, 0)
        };
        let new_count = entry.map_or(0, |e| e.1.len());
        let new_times = all_times - old_count + new_count;
        if s == 2 && !RuleBlock::narrow(new_times, entry.map(|e| e.1)) {
            // The block becomes wide: rebuilt from its entries (rare: see the type).
            let mut entries = self.entries();
            let (flags, t) = entry.unwrap_or((0, &[]));
            match entries.binary_search_by_key(&rule, |e| e.0) {
                Ok(i) => entries[i] = (rule, flags, t.to_vec()),
                Err(i) => entries.insert(i, (rule, flags, t.to_vec())),
            }
            return RuleBlock::build(entries);
        }
        // Written in place into one allocation of the exact size.
        let mut out = ThinWords::zeroed(1 + s * new_n + s * new_times);
        let w = out.as_mut_slice();
        w[0] = new_n as u32 | if s == 3 { WIDE } else { 0 };
        let mut k = 1;
        let copy = |w: &mut [u32], k: &mut usize, from: &[u32]| {
            w[*k..*k + from.len()].copy_from_slice(from);
            *k += from.len();
        };
        if n > 0 {
            copy(w, &mut k, &v.words[1..1 + s * at]);
        }
        if let Some((flags, t)) = entry {
            k = RuleBlock::put_entry(w, k, s, rule, flags | (t.len() as u32) << COUNT_SHIFT, old_first);
        }
        for i in at + usize::from(replaced)..n {
            let (r, h, first) = v.entry(i);
            // Later entries' instants move by the change in the edited entry's count.
            k = RuleBlock::put_entry(w, k, s, r, h, first as usize + new_count - old_count);
        }
        let edited = times_start + s * old_first;
        if n > 0 {
            copy(w, &mut k, &v.words[times_start..edited]);
        }
        if let Some((_, t)) = entry {
            for t in t {
                RuleBlock::put_instant(&mut w[k..k + s], *t);
                k += s;
            }
        }
        if n > 0 {
            copy(w, &mut k, &v.words[edited + s * old_count..]);
        }
        debug_assert_eq!(k, w.len());
        RuleBlock(out)
    }

    /// The entries, unpacked.
    fn entries(&self) -> Vec<Entry> {
        (0..self.len())
            .map(|i| {
                let (rule, head, _) = self.entry(i);
                (rule, head & (HOLDS | MEMORY | EVER), self.times_of(i).collect())
            })
            .collect()
    }

    /// A block of these entries (sorted by rule, each rule once), wide only when it
    /// cannot be narrow.
    fn build(entries: Vec<Entry>) -> RuleBlock {
        if entries.is_empty() {
            return RuleBlock::default();
        }
        let times: usize = entries.iter().map(|e| e.2.len()).sum();
        let wide = !RuleBlock::narrow(times, entries.iter().map(|e| &e.2[..]));
        let s = if wide { 3 } else { 2 };
        let mut words: Words = SmallVec::with_capacity(1 + s * entries.len() + s * times);
        words.push(entries.len() as u32 | if wide { WIDE } else { 0 });
        let mut first = 0;
        for (rule, flags, t) in &entries {
            RuleBlock::push_entry(&mut words, s, *rule, flags | (t.len() as u32) << COUNT_SHIFT, first);
            first += t.len();
        }
        let from = words.len();
        words.resize(from + s * times, 0);
        for (w, t) in words[from..].chunks_exact_mut(s).zip(entries.iter().flat_map(|e| &e.2)) {
            RuleBlock::put_instant(w, *t);
        }
        RuleBlock(ThinWords::from_slice(&words))
    }

    /// The block of the stored lists: the fit rules that hold and the repeat-policy
    /// memory, each sorted by rule without repeats (as states are written).
    fn from_lists(holding: &[u32], memory: &[RuleMemory]) -> Result<RuleBlock, String> {
        if !holding.windows(2).all(|w| w[0] < w[1]) {
            return Err("fit_holds: not sorted by rule without repeats".into());
        }
        if !memory.windows(2).all(|w| w[0].rule < w[1].rule) {
            return Err("memory: not sorted by rule without repeats".into());
        }
        const MAX_TIMES: usize = (u32::MAX >> COUNT_SHIFT) as usize;
        if memory.iter().map(|m| m.memory.times.len()).sum::<usize>() > MAX_TIMES {
            return Err("memory: too many instants".into());
        }
        if holding.len().saturating_add(memory.len()) >= WIDE as usize {
            return Err("memory: too many rules".into());
        }
        let mut entries: Vec<Entry> = holding.iter().map(|&r| (r, HOLDS, Vec::new())).collect();
        for m in memory {
            let flags = MEMORY | if m.memory.ever { EVER } else { 0 };
            let times = m.memory.times.to_vec();
            match entries.binary_search_by_key(&m.rule, |e| e.0) {
                Ok(i) => {
                    entries[i].1 |= flags;
                    entries[i].2 = times;
                }
                Err(i) => entries.insert(i, (m.rule, flags, times)),
            }
        }
        Ok(RuleBlock::build(entries))
    }

    fn heap_bytes(&self) -> usize {
        // The words and the length word in front of them.
        if self.0.is_empty() {
            0
        } else {
            (self.0.len() + 1) * size_of::<u32>()
        }
    }
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
        before("last".into(), self.last_change())?;
        for (m, model) in self.models.iter().enumerate() {
            finite(format!("models[{m}].fit"), model.fit)?;
            for (g, cell) in model.groups().enumerate() {
                finite(format!("models[{m}].groups[{g}].value"), cell.stored())?;
                before(format!("models[{m}].groups[{g}].at"), cell.updated_at())?;
            }
            for (a, award) in model.awards().iter().enumerate() {
                finite(format!("models[{m}].awards[{a}].points"), award.points)?;
                before(format!("models[{m}].awards[{a}].at"), award.at)?;
            }
        }
        if let Some(history) = self.extra.history() {
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
            let (last, check_from) = (s.last_change(), s.check_from());
            let (counters, history) = s.extra.0.map_or((None, None), |e| (e.counters, e.history));
            ContactScoresWire {
                models: s.models.into_vec().into_iter().map(ModelStateWire::from).collect(),
                counters: counters.map(|c| *c).unwrap_or_default(),
                last,
                check_from,
                history: history.map(Box::new),
            }
        }
    }

    impl From<ModelState> for ModelStateWire {
        fn from(m: ModelState) -> ModelStateWire {
            ModelStateWire {
                groups: m.groups().map(|c| ScoreCellWire { value: c.stored(), at: c.updated_at() }).collect(),
                fit: m.fit,
                thresholds: m
                    .thresholds()
                    .map(|t| ThresholdStateWire { inside: t.inside(), ever_entered: t.ever_entered() })
                    .collect(),
                band: m.band,
                awards: m.awards().to_vec(),
                fit_holds: m.holding().collect(),
                memory: m
                    .rules
                    .remembered()
                    .map(|(rule, ever, times)| RuleMemory {
                        rule,
                        memory: crate::repeat::RepeatMemory { ever, times: times.collect() },
                    })
                    .collect(),
            }
        }
    }

    impl TryFrom<ContactScoresWire> for ContactScores {
        type Error = String;

        fn try_from(w: ContactScoresWire) -> Result<ContactScores, String> {
            let models: Vec<ModelState> =
                w.models.into_iter().map(ModelState::try_from).collect::<Result<_, _>>()?;
            let counters = (!w.counters.is_empty()).then_some(w.counters);
            let mut state = ContactScores::from_parts(models, counters, w.last, w.check_from);
            if let Some(history) = w.history {
                state.extra.history_mut(|| *history);
            }
            Ok(state)
        }
    }

    impl TryFrom<ModelStateWire> for ModelState {
        type Error = String;

        fn try_from(w: ModelStateWire) -> Result<ModelState, String> {
            if w.thresholds.len() > usize::from(u16::MAX) {
                return Err(format!("{} thresholds, more than {}", w.thresholds.len(), u16::MAX));
            }
            let groups: Vec<ScoreCell> = w.groups.iter().map(|c| ScoreCell::written(c.value, c.at)).collect();
            let mut m = ModelState::new(&groups, w.thresholds.len());
            for (i, t) in w.thresholds.iter().enumerate() {
                m.set_threshold(i, ThresholdState::from_bits(t.inside, t.ever_entered));
            }
            m.fit = w.fit;
            m.band = w.band;
            if !w.fit_holds.windows(2).all(|p| p[0] < p[1]) {
                return Err("fit_holds: not sorted by rule without repeats".into());
            }
            m.rules = RuleBlock::from_lists(&[], &w.memory)?;
            m.set_holding(&w.fit_holds);
            if !w.awards.is_empty() {
                *m.awards_mut() = w.awards;
            }
            Ok(m)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::repeat::{Repeat, RepeatMemory, RepeatPolicy};
    use crate::time::Duration;
    use proptest::prelude::*;
    use std::collections::{BTreeMap, BTreeSet};

    fn policy(rule: u32) -> RepeatPolicy {
        let secs = |s| Duration::from_secs(s).unwrap();
        match rule % 4 {
            0 => RepeatPolicy::new(Repeat::Once),
            1 => RepeatPolicy::new(Repeat::AtMost { max: 3, per: secs(10) }),
            2 => RepeatPolicy { repeat: Repeat::EveryTime, min_interval: Some(secs(5)) },
            _ => RepeatPolicy { repeat: Repeat::Once, min_interval: Some(secs(7)) },
        }
    }

    proptest! {
        /// The packed block answers exactly as the list of `RepeatMemory` it replaces,
        /// and converts to and from the stored lists unchanged.
        ///
        /// Either in today's instants, or starting just before the end of the span of
        /// 8-byte instants (2242) or before its start (1697), so that blocks turn wide
        /// midway.
        #[test]
        fn rule_block_matches_the_repeat_memory_it_packs(
            ops in prop::collection::vec((0u32..9, 0u8..3, 0i64..4, 0u32..3), 0..80),
            start in prop_oneof![Just(1_700_000_000i64), Just((1i64 << 33) - 40), Just(-(1i64 << 33) - 40)],
        ) {
            let mut block = RuleBlock::default();
            let mut holds = BTreeSet::new();
            let mut memory: BTreeMap<u32, RepeatMemory> = BTreeMap::new();
            let mut secs = start;
            for (rule, op, gap, nanos) in ops {
                secs += gap;
                let now = Timestamp::from_unix(secs, nanos).unwrap();
                match op {
                    0 => {
                        block.set_holds(rule, true);
                        holds.insert(rule);
                    }
                    1 => {
                        block.set_holds(rule, false);
                        holds.remove(&rule);
                    }
                    _ => {
                        let p = policy(rule);
                        let allowed = p.allows(memory.get(&rule), now);
                        prop_assert_eq!(block.allows(rule, &p, now), allowed);
                        block.record(rule, &p, now);
                        p.record(memory.entry(rule).or_default(), now);
                    }
                }
                for r in 0..9 {
                    prop_assert_eq!(block.holds(r), holds.contains(&r));
                    prop_assert_eq!(block.allows(r, &policy(r), now), policy(r).allows(memory.get(&r), now));
                }
                prop_assert_eq!(block.holding().collect::<Vec<_>>(), holds.iter().copied().collect::<Vec<_>>());
                let listed: Vec<RuleMemory> =
                    memory.iter().map(|(&rule, m)| RuleMemory { rule, memory: m.clone() }).collect();
                let unpacked: Vec<RuleMemory> = block
                    .remembered()
                    .map(|(rule, ever, times)| RuleMemory { rule, memory: RepeatMemory { ever, times: times.collect() } })
                    .collect();
                prop_assert_eq!(&unpacked, &listed);
                let holding: Vec<u32> = holds.iter().copied().collect();
                prop_assert_eq!(RuleBlock::from_lists(&holding, &listed).unwrap(), block.clone());
                let total: usize = listed.iter().map(|m| m.memory.times.len()).sum();
                let n = holds.union(&memory.keys().copied().collect()).count();
                let stride = block.stride();
                prop_assert_eq!(block.heap_bytes(), if n == 0 { 0 } else { 4 * (2 + stride * n + stride * total) });
                if start == 1_700_000_000 {
                    prop_assert_eq!(stride, 2);
                }
            }
        }
    }

    proptest! {
        /// Fit holds, in the window or the block, are the set they were given, in one
        /// layout per set (so equal sets compare equal), through the stored shape too.
        #[test]
        fn fit_holds_are_kept_exactly(
            ops in prop::collection::vec((prop_oneof![0u32..40, 65_530u32..65_560], any::<bool>()), 0..60),
        ) {
            let mut m = ModelState::new(&[], 0);
            let mut set = BTreeSet::new();
            for (rule, holds) in ops {
                m.set_holds(rule, holds);
                if holds { set.insert(rule); } else { set.remove(&rule); }
                prop_assert_eq!(m.holding().collect::<Vec<_>>(), set.iter().copied().collect::<Vec<_>>());
                for r in [0, 1, 17, 39, 65_535, 65_536, 65_559] {
                    prop_assert_eq!(m.holds(r), set.contains(&r));
                }
                let mut fresh = ModelState::new(&[], 0);
                fresh.set_holding(&set.iter().copied().collect::<Vec<_>>());
                prop_assert_eq!(&fresh, &m);
                prop_assert_eq!((fresh.fit_base, fresh.fit_bits, &fresh.rules), (m.fit_base, m.fit_bits, &m.rules));
            }
        }
    }

    /// Models past the inline sizes (three groups, twenty thresholds) keep everything,
    /// through the stored shape too.
    #[test]
    fn large_models_spill_to_the_cold_part_and_round_trip() {
        let t = |s: i64| Timestamp::from_unix(1_700_000_000 + s, 0).unwrap();
        let cells =
            [ScoreCell::written(1.0, t(1)), ScoreCell::written(2.0, t(2)), ScoreCell::written(3.0, t(3))];
        let mut m = ModelState::new(&cells, 20);
        assert!(m.groups().eq(cells));
        m.set_group(2, ScoreCell::written(4.0, t(4)));
        for i in [0, 15, 16, 19] {
            m.set_threshold(i, ThresholdState::from_bits(i % 2 == 0, true));
        }
        let states: Vec<_> = m.thresholds().collect();
        assert_eq!(states.len(), 20);
        assert!(
            states[0].inside() && states[16].inside() && !states[15].inside() && states[19].ever_entered()
        );
        assert!(!states[1].ever_entered() && !states[17].ever_entered());
        let state = ContactScores::from_parts([m], None, t(5), t(5));
        let json = serde_json::to_string(&state).unwrap();
        let back: ContactScores = serde_json::from_str(&json).unwrap();
        assert_eq!(back, state);
        assert_eq!(back.models[0].group(2).stored(), 4.0);
        assert_eq!(serde_json::to_string(&back).unwrap(), json);
    }

    /// A rule keeping more instants than a narrow entry counts turns the block wide,
    /// and it still answers as the list it packs.
    #[test]
    fn long_memories_make_a_wide_block() {
        let p = RepeatPolicy::new(Repeat::AtMost { max: 9_000, per: Duration::from_days(365).unwrap() });
        let mut block = RuleBlock::default();
        let mut memory = RepeatMemory::default();
        block.set_holds(1, true);
        for i in 0..(NARROW_COUNT as i64 + 3) {
            let now = Timestamp::from_unix(1_700_000_000 + i, 0).unwrap();
            block.record(7, &p, now);
            p.record(&mut memory, now);
        }
        assert_eq!(block.stride(), 3);
        assert!(block.holds(1));
        let (rule, ever, times) = block.remembered().next().unwrap();
        assert_eq!((rule, ever), (7, true));
        assert!(times.eq(memory.times.iter().copied()));
        let back = RuleBlock::from_lists(&[1], &[RuleMemory { rule: 7, memory }]).unwrap();
        assert_eq!(back, block);
    }

    /// Instants outside the 8-byte span are kept exactly: a contact's `last` and
    /// `check_from` in the cold copy, a model's groups in its cold part, through the
    /// stored shape too.
    #[test]
    fn far_instants_are_kept_exactly() {
        let early = Timestamp::from_unix(-(1 << 33) - 5, 7).unwrap();
        let late = Timestamp::from_unix((1 << 33) + 5, 999_999_999).unwrap();
        let now = Timestamp::from_unix(1_700_000_000, 1).unwrap();
        let mut m = ModelState::new(&[ScoreCell::written(1.0, now), ScoreCell::written(2.0, now)], 1);
        assert_eq!(m.inline_groups, 2);
        m.set_group(1, ScoreCell::written(3.0, early));
        assert_eq!(m.inline_groups, u8::MAX);
        assert_eq!(m.group(0), ScoreCell::written(1.0, now));
        assert_eq!(m.group(1), ScoreCell::written(3.0, early));
        m.set_group(0, ScoreCell::written(4.0, now));
        assert_eq!(m.group(0), ScoreCell::written(4.0, now));
        let mut state = ContactScores::from_parts([m], None, late, Timestamp::MAX);
        assert_eq!(state.last_change(), late);
        assert_eq!(state.remembered_wake(), None);
        state.set_check_from(early);
        assert_eq!((state.check_from(), state.remembered_wake()), (early, Some(early)));
        state.set_check_from(now);
        assert_eq!((state.check_from(), state.last_change()), (now, late));
        let json = serde_json::to_string(&state).unwrap();
        let back: ContactScores = serde_json::from_str(&json).unwrap();
        assert_eq!(back, state);
        assert_eq!(back.models[0].group(1), ScoreCell::written(3.0, early));
        assert_eq!(serde_json::to_string(&back).unwrap(), json);
        // Taking the explanations out keeps the box that holds the cold copy.
        state.extra.history_mut(History::default);
        assert!(state.extra.take_history().is_some());
        assert_eq!(state.last_change(), late);
    }

    /// The models past the first live in its cold part, and replacing the first keeps
    /// them.
    #[test]
    fn models_past_the_first_live_in_its_cold_part() {
        let t = Timestamp::from_unix(1_700_000_000, 0).unwrap();
        let model = |fit| {
            let mut m = ModelState::new(&[ScoreCell::new(t)], 0);
            m.fit = fit;
            m
        };
        let fits = |models: &Models| models.iter().map(|m| m.fit).collect::<Vec<_>>();
        let mut models: Models = [0.0, 1.0, 2.0].into_iter().map(model).collect();
        assert_eq!((models.len(), fits(&models)), (3, vec![0.0, 1.0, 2.0]));
        models.set(0, model(9.0));
        models.set(2, model(7.0));
        models[1].fit = 5.0;
        assert_eq!(fits(&models), [9.0, 5.0, 7.0]);
        assert!(models.get(3).is_none());
        let none: Models = std::iter::empty().collect();
        assert_eq!((none.len(), none.get(0).is_none(), none.iter().count()), (0, true, 0));
        assert_eq!(models.into_vec().iter().map(|m| m.fit).collect::<Vec<_>>(), [9.0, 5.0, 7.0]);
    }

    /// The layout the benchmark's byte figures rest on.
    #[test]
    #[cfg(target_pointer_width = "64")]
    fn the_hot_state_is_96_bytes_inline() {
        assert_eq!(size_of::<ModelState>(), 72);
        assert_eq!(size_of::<ContactScores>(), 96);
    }

    #[test]
    fn unsorted_or_repeated_lists_are_refused() {
        assert!(RuleBlock::from_lists(&[3, 1], &[]).is_err());
        assert!(RuleBlock::from_lists(&[1, 1], &[]).is_err());
        let m = |rule| RuleMemory { rule, memory: RepeatMemory::default() };
        assert!(RuleBlock::from_lists(&[], &[m(2), m(2)]).is_err());
        assert!(RuleBlock::from_lists(&[2], &[m(1), m(2)]).is_ok());
    }
}
