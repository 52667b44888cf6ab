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
/// shape (the `wire` module), so states written before the compact layout still load.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(into = "wire::ContactScoresWire", try_from = "wire::ContactScoresWire")]
pub struct ContactScores {
    pub(crate) models: SmallVec<[ModelState; 1]>,
    last: Instant12,
    /// Events at or after this instant must check thresholds and bands: the next
    /// decay-driven wake-up as of the last change (`Timestamp::MAX` for never).
    check_from: Instant12,
    /// The scorer's counters and the explanations, behind one pointer: absent until
    /// there is one of them (most contacts of a scorer without counters and without
    /// explanations never allocate it). Never left holding neither.
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
        if extra.counters.is_none() {
            self.0 = None;
        }
        history
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
}

/// Equal by content.
impl PartialEq for ContactScores {
    fn eq(&self, other: &ContactScores) -> bool {
        self.models == other.models
            && self.last == other.last
            && self.check_from == other.check_from
            && self.extra.counters() == other.extra.counters()
            && self.extra.history() == other.extra.history()
    }
}

impl ContactScores {
    /// A state of these parts.
    pub(crate) fn from_parts(
        models: SmallVec<[ModelState; 1]>,
        counters: Option<CounterState>,
        last: Timestamp,
        check_from: Timestamp,
    ) -> ContactScores {
        ContactScores {
            models,
            last: Instant12::new(last),
            check_from: Instant12::new(check_from),
            extra: ExtraSlot(
                counters
                    .map(|counters| Box::new(Extra { counters: Some(Box::new(counters)), history: None })),
            ),
        }
    }

    /// When the state last changed (or was last checked): events must not be older.
    pub fn last_change(&self) -> Timestamp {
        self.last.get()
    }

    pub(crate) fn set_last(&mut self, at: Timestamp) {
        self.last = Instant12::new(at);
    }

    /// See the field `check_from`.
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
        // The shared box counts as history when it holds explanations, but for the
        // counters' own slot; otherwise it is all hot (it exists for the counters).
        let (extra_hot, history) = match &self.extra.0 {
            None => (0, 0),
            Some(extra) => {
                let counters =
                    extra.counters.as_ref().map_or(0, |c| size_of::<CounterState>() + c.heap_bytes());
                match &extra.history {
                    None => (size_of::<Extra>() + counters, 0),
                    Some(h) => {
                        let slot =
                            if extra.counters.is_some() { size_of::<Option<Box<CounterState>>>() } else { 0 };
                        (slot + counters, size_of::<Extra>() - slot + h.heap_bytes())
                    }
                }
            }
        };
        (models + inline + extra_hot, history)
    }
}

/// One model's hot state for one contact.
#[derive(Clone, Debug)]
pub(crate) struct ModelState {
    /// The groups' cells when there are at most [`INLINE_GROUPS`] (the rest unused);
    /// otherwise they are all in the cold part.
    cells: [ScoreCell; INLINE_GROUPS],
    /// How many groups, when at most [`INLINE_GROUPS`]; `u8::MAX` when they are in the
    /// cold part.
    inline_groups: u8,
    pub(crate) fit: f64,
    /// The fit rules that currently hold, and the repeat-policy memory of the rules
    /// that have a policy and have awarded points. Rules that award every time keep
    /// nothing.
    pub(crate) rules: RuleBlock,
    /// What few contacts have: timeframe awards, and the memory of thresholds past
    /// the first [`INLINE_THRESHOLDS`].
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
}

/// Thresholds whose memory is kept inline, as bits.
const INLINE_THRESHOLDS: usize = 16;

/// Groups whose cells are kept inline.
const INLINE_GROUPS: usize = 2;

/// The rarely used part of a model's state.
#[derive(Clone, Debug, Default, PartialEq)]
struct ModelCold {
    /// The groups' cells when there are more than [`INLINE_GROUPS`].
    groups: Vec<ScoreCell>,
    /// Timeframe groups' awards still inside their windows.
    awards: Vec<Award>,
    /// The thresholds past the first [`INLINE_THRESHOLDS`].
    thresholds: Vec<ThresholdState>,
}

/// Equal by content (an emptied cold part equals none).
impl PartialEq for ModelState {
    fn eq(&self, other: &ModelState) -> bool {
        self.groups() == other.groups()
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
            cells: [ScoreCell::new(Timestamp::UNIX_EPOCH); INLINE_GROUPS],
            inline_groups: 0,
            fit: 0.0,
            rules: RuleBlock::default(),
            cold: None,
            threshold_bits: 0,
            thresholds: 0,
            band: None,
            fit_base: 0,
            fit_bits: 0,
        };
        state.set_threshold_count(thresholds);
        match u8::try_from(groups.len()) {
            Ok(n) if groups.len() <= INLINE_GROUPS => {
                state.cells[..groups.len()].copy_from_slice(groups);
                state.inline_groups = n;
            }
            _ => {
                state.inline_groups = u8::MAX;
                state.cold_mut().groups = groups.to_vec();
            }
        }
        state
    }

    /// The groups' cells.
    #[inline]
    pub(crate) fn groups(&self) -> &[ScoreCell] {
        match self.inline_groups {
            u8::MAX => self.cold.as_ref().map_or(&[], |c| &c.groups),
            n => &self.cells[..usize::from(n)],
        }
    }

    /// The groups' cells, to write.
    #[inline]
    pub(crate) fn groups_mut(&mut self) -> &mut [ScoreCell] {
        match self.inline_groups {
            u8::MAX => self.cold.as_mut().map_or(&mut [], |c| &mut c.groups),
            n => &mut self.cells[..usize::from(n)],
        }
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
/// exactly the size it needs (an empty block allocates nothing): the fit rules that
/// hold, and what repeat policies remember (see [`RuleMemory`]), sorted by rule.
///
/// Layout: `[n, n entries of [rule, head, first], the instants, 3 words each]`; `head`
/// holds the flags [`HOLDS`], [`MEMORY`] and [`EVER`] and, from bit [`COUNT_SHIFT`], the
/// number of instants the rule keeps, which start at instant `first`. Entries are
/// found by binary search; a rule's instants are rewritten in place once it keeps as
/// many as its policy allows, so the block is reallocated only when a rule first
/// holds or awards, or keeps one more instant.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct RuleBlock(Box<[u32]>);

/// The fit rule holds.
const HOLDS: u32 = 1;
/// The rule has repeat-policy memory.
const MEMORY: u32 = 2;
/// The rule awarded at least once.
const EVER: u32 = 4;
/// Where the instant count starts in an entry's `head`.
const COUNT_SHIFT: u32 = 3;

/// An entry being rebuilt: rule, flags, instants.
type Entry = (u32, u32, Vec<Timestamp>);

impl RuleBlock {
    fn len(&self) -> usize {
        self.0.first().map_or(0, |&n| n as usize)
    }

    /// Entry `i`'s rule, head and first instant.
    #[inline]
    fn entry(&self, i: usize) -> (u32, u32, u32) {
        let o = 1 + 3 * i;
        (self.0[o], self.0[o + 1], self.0[o + 2])
    }

    fn find(&self, rule: u32) -> Result<usize, usize> {
        let (mut lo, mut hi) = (0, self.len());
        while lo < hi {
            let mid = (lo + hi) / 2;
            match self.entry(mid).0.cmp(&rule) {
                std::cmp::Ordering::Less => lo = mid + 1,
                std::cmp::Ordering::Greater => hi = mid,
                std::cmp::Ordering::Equal => return Ok(mid),
            }
        }
        Err(lo)
    }

    /// Where entry `i`'s instants start in the block, and how many there are.
    #[inline]
    fn times_span(&self, i: usize) -> (usize, usize) {
        let (_, head, first) = self.entry(i);
        (1 + 3 * self.len() + 3 * first as usize, (head >> COUNT_SHIFT) as usize)
    }

    fn times_of(&self, i: usize) -> impl DoubleEndedIterator<Item = Timestamp> + Clone + '_ {
        let (start, count) = self.times_span(i);
        self.0[start..start + 3 * count].chunks_exact(3).map(|w| Instant12::from_words([w[0], w[1], w[2]]))
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
                    self.0[1 + 3 * i + 1] = head ^ HOLDS;
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
        match self.find(rule) {
            Ok(i) if self.entry(i).1 & MEMORY != 0 => {
                policy.allows_remembered(self.entry(i).1 & EVER != 0, self.times_of(i), now, None)
            }
            _ => true,
        }
    }

    /// Records an award of rule `rule` at `now` under `policy` (as
    /// [`RepeatPolicy::record`](crate::repeat::RepeatPolicy::record) does).
    pub(crate) fn record(&mut self, rule: u32, policy: &crate::repeat::RepeatPolicy, now: Timestamp) {
        let keep = policy.instants_kept();
        if let Ok(i) = self.find(rule) {
            let head = self.entry(i).1;
            let (start, count) = self.times_span(i);
            if keep == 0 || count == keep {
                // The instants keep their number: shift out the oldest in place.
                self.0[1 + 3 * i + 1] = head | MEMORY | EVER;
                if keep > 0 {
                    self.0.copy_within(start + 3..start + 3 * count, start);
                    let last = start + 3 * (count - 1);
                    self.0[last..last + 3].copy_from_slice(&Instant12::to_words(now));
                }
                return;
            }
        }
        let (flags, mut times) = match self.find(rule) {
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
        let n = self.len();
        let (at, replaced) = match self.find(rule) {
            Ok(i) => (i, true),
            Err(i) => (i, false),
        };
        let new_n = n - usize::from(replaced) + usize::from(entry.is_some());
        if new_n == 0 {
            return RuleBlock::default();
        }
        if n == 0 {
            let (flags, t) = entry.unwrap_or((0, &[]));
            let mut words = Vec::with_capacity(4 + 3 * t.len());
            words.extend([1, rule, flags | (t.len() as u32) << COUNT_SHIFT, 0]);
            words.extend(t.iter().flat_map(|t| Instant12::to_words(*t)));
            return RuleBlock(words.into_boxed_slice());
        }
        // The edited entry's instants start where the entries before it end.
        let times_start = 1 + 3 * n;
        let (old_first, old_count) = if replaced {
            (self.entry(at).2 as usize, self.times_span(at).1)
        } else if at < n {
            (self.entry(at).2 as usize, 0)
        } else {
            ((self.0.len() - times_start) / 3, 0)
        };
        let new_count = entry.map_or(0, |e| e.1.len());
        let all_times = (self.0.len() - times_start) / 3;
        let mut words = Vec::with_capacity(1 + 3 * new_n + 3 * (all_times - old_count + new_count));
        words.push(new_n as u32);
        words.extend_from_slice(&self.0[1..1 + 3 * at]);
        if let Some((flags, t)) = entry {
            words.extend([rule, flags | (t.len() as u32) << COUNT_SHIFT, old_first as u32]);
        }
        let after = at + usize::from(replaced);
        for i in after..n {
            let (r, h, first) = self.entry(i);
            // Later entries' instants move by the change in the edited entry's count.
            words.extend([r, h, (first as usize + new_count - old_count) as u32]);
        }
        let edited = times_start + 3 * old_first;
        words.extend_from_slice(&self.0[times_start..edited]);
        if let Some((_, t)) = entry {
            words.extend(t.iter().flat_map(|t| Instant12::to_words(*t)));
        }
        words.extend_from_slice(&self.0[edited + 3 * old_count..]);
        RuleBlock(words.into_boxed_slice())
    }

    /// A block of these entries (sorted by rule, each rule once).
    fn build(entries: Vec<Entry>) -> RuleBlock {
        if entries.is_empty() {
            return RuleBlock::default();
        }
        let times: usize = entries.iter().map(|e| e.2.len()).sum();
        let mut words = Vec::with_capacity(1 + 3 * entries.len() + 3 * times);
        words.push(entries.len() as u32);
        let mut first = 0u32;
        for (rule, flags, t) in &entries {
            words.extend([*rule, flags | (t.len() as u32) << COUNT_SHIFT, first]);
            first += t.len() as u32;
        }
        for t in entries.iter().flat_map(|e| &e.2) {
            words.extend(Instant12::to_words(*t));
        }
        RuleBlock(words.into_boxed_slice())
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
        self.0.len() * size_of::<u32>()
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
        before("last".into(), self.last.get())?;
        for (m, model) in self.models.iter().enumerate() {
            finite(format!("models[{m}].fit"), model.fit)?;
            for (g, cell) in model.groups().iter().enumerate() {
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
            let (counters, history) = s.extra.0.map_or((None, None), |e| (e.counters, e.history));
            ContactScoresWire {
                models: s.models.into_iter().map(ModelStateWire::from).collect(),
                counters: counters.map(|c| *c).unwrap_or_default(),
                last: s.last.get(),
                check_from: s.check_from.get(),
                history: history.map(Box::new),
            }
        }
    }

    impl From<ModelState> for ModelStateWire {
        fn from(m: ModelState) -> ModelStateWire {
            ModelStateWire {
                groups: m
                    .groups()
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
            let models = w.models.into_iter().map(ModelState::try_from).collect::<Result<_, _>>()?;
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
        #[test]
        fn rule_block_matches_the_repeat_memory_it_packs(
            ops in prop::collection::vec((0u32..9, 0u8..3, 0i64..4, 0u32..3), 0..80),
        ) {
            let mut block = RuleBlock::default();
            let mut holds = BTreeSet::new();
            let mut memory: BTreeMap<u32, RepeatMemory> = BTreeMap::new();
            let mut secs = 1_700_000_000;
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
                prop_assert_eq!(block.heap_bytes(), if n == 0 { 0 } else { 4 * (1 + 3 * n + 3 * total) });
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
        assert_eq!(m.groups(), &cells);
        m.groups_mut()[2] = ScoreCell::written(4.0, t(4));
        for i in [0, 15, 16, 19] {
            m.set_threshold(i, ThresholdState::from_bits(i % 2 == 0, true));
        }
        let states: Vec<_> = m.thresholds().collect();
        assert_eq!(states.len(), 20);
        assert!(
            states[0].inside() && states[16].inside() && !states[15].inside() && states[19].ever_entered()
        );
        assert!(!states[1].ever_entered() && !states[17].ever_entered());
        let state = ContactScores::from_parts(smallvec::smallvec![m], None, t(5), t(5));
        let json = serde_json::to_string(&state).unwrap();
        let back: ContactScores = serde_json::from_str(&json).unwrap();
        assert_eq!(back, state);
        assert_eq!(back.models[0].groups()[2].stored(), 4.0);
        assert_eq!(serde_json::to_string(&back).unwrap(), json);
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
