//! Incremental scoring: events applied one at a time or in batches, fit rules
//! re-evaluated when attributes change, decay-driven crossings found by timeouts,
//! explanations and recomputation from history.

use smallvec::SmallVec;

use crate::counters::Counters;
use crate::expr::{Activation, Expression};
use crate::id::{EventTypeIndex, RuleId, ScoreId};
use crate::index::{IndexEntry, RuleIndex};
use crate::repeat::RepeatMemory;
use crate::schema::Slot;
use crate::schema::{Contact, Event};
use crate::scoring::cell::{Bounds, ScoreCell, ScoreError};
use crate::scoring::decay::Decay;
use crate::scoring::model::{ModelError, PointRule, ScoreModel, Trigger};
use crate::scoring::state::{
    Award, ContactScores, History, LedgerEntry, ModelHistory, ModelState, RuleMemory, StoredEntry,
};
use crate::scoring::threshold::{Crossing, ThresholdState};
use crate::scoring::wake::{first_below, DecayForm, Start};
use crate::time::{Duration, Timestamp};
use crate::value::Value;

/// How many recent changes each contact's ledger keeps per model, unless
/// [`Scorer::with_ledger`] says otherwise.
pub const LEDGER_LEN: usize = 32;

/// The pseudo-rule under which [`Scorer::adjust`] points are explained.
pub const ADJUSTMENT: &str = "adjust_score";

/// Its position in explanations (after every real rule).
const ADJUSTED: u32 = u32::MAX;

/// How many events ahead [`Scorer::handle_batch`] asks the processor to fetch states.
const PREFETCH_DISTANCE: usize = 8;

/// Compiled score models, ready to score contacts.
#[derive(Clone, Debug)]
pub struct Scorer {
    models: Vec<ScoreModel>,
    /// Per model: its engagement rules indexed by event type and hashed equality tests,
    /// as rule sets are, so an event costs only the rules it can touch.
    indexes: Vec<RuleIndex>,
    counters: Counters,
    /// Per model, per rule: the contact fields a fit rule reads (empty for others).
    fit_reads: Vec<Vec<Vec<Slot>>>,
    /// Contact field names by slot, for [`Scorer::handle_attribute_change`].
    contact_fields: Vec<std::sync::Arc<str>>,
    /// Per schema score (`score.NAME`, in declaration order): the model of that id.
    score_models: Vec<Option<usize>>,
    /// Whether any engagement rule reads `score.NAME` (else scores are not bound).
    reads_scores: bool,
    /// Ledger entries kept per contact and model; 0 keeps no explanation history.
    ledger_len: usize,
    /// Per model: where its groups start in [`ScoreScratch::values`].
    group_offsets: Vec<usize>,
}

/// Reusable buffers for the scoring calls that take one; one per thread.
#[derive(Clone, Debug, Default)]
pub struct ScoreScratch {
    candidates: Vec<u32>,
    counts: Vec<Option<Value>>,
    scores: Vec<Option<Value>>,
    /// Every group's value at the event's instant, for the models settled so far.
    values: Vec<f64>,
    /// Per group: the decay factor since its last write, until the group is written.
    factors: Vec<f64>,
    /// Per model: whether its groups are in `values`.
    settled: Vec<bool>,
    model_values: Vec<f64>,
    update: ScoreUpdate,
}

/// What an event or a timeout changed.
#[derive(Clone, Debug, Default, PartialEq)]
#[non_exhaustive]
pub struct ScoreUpdate {
    /// Point changes that took effect: (score, rule, points).
    pub changes: Vec<(ScoreId, RuleId, f64)>,
    /// Threshold crossings: (score, threshold name, direction).
    pub crossings: Vec<(ScoreId, String, Crossing)>,
    /// Band changes: (score, band before, band after); `None` is below every band.
    pub band_changes: Vec<(ScoreId, Option<String>, Option<String>)>,
    /// The next instant at which decay alone can move a score across a threshold or a
    /// band boundary; the host should call [`Scorer::handle_timeout`] then.
    pub next_wake: Option<Timestamp>,
}

impl ScoreUpdate {
    /// Empties the update, keeping its buffers.
    pub fn clear(&mut self) {
        self.changes.clear();
        self.crossings.clear();
        self.band_changes.clear();
        self.next_wake = None;
    }

    /// Whether nothing changed (the wake-up aside).
    pub fn is_empty(&self) -> bool {
        self.changes.is_empty() && self.crossings.is_empty() && self.band_changes.is_empty()
    }
}

/// One event of a batch for [`Scorer::handle_batch`]: the position of the contact's
/// state in the host's slice of states, the contact, and the event.
#[derive(Clone, Copy, Debug)]
pub struct BatchEvent<'a> {
    /// Index of the contact's state in the `states` slice.
    pub state: usize,
    /// The contact.
    pub contact: &'a Contact,
    /// The event.
    pub event: &'a Event,
}

/// A score broken down by group and rule, with decay applied.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct Explanation {
    /// The score.
    pub score: ScoreId,
    /// Its value.
    pub value: f64,
    /// Each group's points: (group, points).
    pub groups: Vec<(String, f64)>,
    /// Each rule's contribution: (rule, points), in rule order. Empty when the scorer
    /// keeps no history ([`Scorer::with_ledger`] with 0).
    pub rules: Vec<(RuleId, f64)>,
    /// Points from fit rules that currently hold.
    pub fit: f64,
    /// Recent changes, oldest first.
    pub ledger: Vec<LedgerEntry>,
}

/// The bounds a group actually applies: a decaying group never goes below zero, so that
/// decay (which scales toward zero) can never raise a score.
fn effective_bounds(bounds: Bounds, decay: &Decay) -> Bounds {
    if matches!(decay, Decay::None) {
        bounds
    } else {
        Bounds { floor: Some(bounds.floor.map_or(0.0, |f| f.max(0.0))), cap: bounds.cap.map(|c| c.max(0.0)) }
    }
}

fn clamp(bounds: Bounds, v: f64) -> f64 {
    let v = bounds.cap.map_or(v, |c| v.min(c));
    bounds.floor.map_or(v, |f| v.max(f))
}

/// Asks the processor to start loading `value`'s memory; only a hint.
#[inline(always)]
fn prefetch<T>(value: &T) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: a prefetch never faults and does not change program state; SSE is part of
    // the x86_64 baseline.
    unsafe {
        std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(
            (value as *const T).cast::<i8>(),
        );
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = value;
}

impl Scorer {
    /// Builds a scorer from validated models.
    ///
    /// # Errors
    ///
    /// The first model that fails [`ScoreModel::validate`].
    pub fn new(models: Vec<ScoreModel>, event_types: usize) -> Result<Scorer, ModelError> {
        let mut indexes = Vec::with_capacity(models.len());
        for (mi, model) in models.iter().enumerate() {
            model.validate()?;
            if model.combine.iter().any(|(part, _)| *part >= mi) {
                return Err(ModelError::Invalid(format!(
                    "combined score `{}` may only combine models declared before it",
                    model.id
                )));
            }
            let entries: Vec<IndexEntry<'_>> = model
                .rules
                .iter()
                .map(|rule| match &rule.trigger {
                    Trigger::Event { event_type, condition } => IndexEntry {
                        event_type: *event_type,
                        condition: condition.as_ref().and_then(Expression::pred),
                        enabled: true,
                    },
                    Trigger::Fit { .. } => {
                        IndexEntry { event_type: EventTypeIndex(0), condition: None, enabled: false }
                    }
                })
                .collect();
            indexes.push(RuleIndex::from_entries(event_types, &entries));
        }
        let reads_scores = models.iter().flat_map(|m| &m.rules).any(|r| match &r.trigger {
            Trigger::Event { condition: Some(c), .. } => c.reads_scores(),
            _ => false,
        });
        let fit_reads = models
            .iter()
            .map(|m| {
                m.rules
                    .iter()
                    .map(|r| match &r.trigger {
                        Trigger::Fit { condition } => condition.contact_reads(),
                        Trigger::Event { .. } => Vec::new(),
                    })
                    .collect()
            })
            .collect();
        let group_offsets = models
            .iter()
            .scan(0, |next, m| {
                let at = *next;
                *next += m.groups.len();
                Some(at)
            })
            .collect();
        Ok(Scorer {
            models,
            indexes,
            counters: Counters::default(),
            fit_reads,
            contact_fields: Vec::new(),
            score_models: Vec::new(),
            reads_scores,
            ledger_len: LEDGER_LEN,
            group_offsets,
        })
    }

    /// Adds windowed event counters: each event is counted before the rules run, and
    /// conditions read the counts as `counter.NAME`.
    pub fn with_counters(mut self, counters: Counters) -> Scorer {
        self.counters = counters;
        self
    }

    /// Names the contact fields (the schema's, in slot order), so that
    /// [`Scorer::handle_attribute_change`] can take field names.
    pub fn with_schema(mut self, schema: &crate::schema::Schema) -> Scorer {
        self.contact_fields = schema.contact_fields().iter().map(|(n, _)| std::sync::Arc::from(n)).collect();
        self
    }

    /// Binds the scores conditions read as `score.NAME` to the models of those ids.
    pub fn with_condition_names(mut self, names: &crate::condition::ConditionNames) -> Scorer {
        self.score_models = names
            .scores()
            .iter()
            .map(|(name, _)| self.models.iter().position(|m| m.id.as_str() == name))
            .collect();
        self
    }

    /// How many recent changes to keep per contact and model for explanations
    /// (default [`LEDGER_LEN`]). With 0 the scorer keeps no explanation history at all:
    /// no ledger and no per-rule breakdown, which saves memory and time per change.
    /// Scores, thresholds and wake-ups are the same either way.
    pub fn with_ledger(mut self, len: usize) -> Scorer {
        self.ledger_len = len;
        self
    }

    /// The models.
    pub fn models(&self) -> &[ScoreModel] {
        &self.models
    }

    /// A fresh state: every score at zero as of `at`, fit rules not yet evaluated.
    pub fn new_state(&self, at: Timestamp) -> ContactScores {
        ContactScores {
            models: self
                .models
                .iter()
                .map(|m| ModelState {
                    groups: m.groups.iter().map(|_| ScoreCell::new(at)).collect(),
                    fit: 0.0,
                    fit_holds: SmallVec::new(),
                    thresholds: m.thresholds.iter().map(|_| ThresholdState::default()).collect(),
                    band: None,
                    memory: Vec::new(),
                    awards: Vec::new(),
                })
                .collect(),
            counters: self.counters.new_state(),
            last: at,
            // Due at once: the first event or timeout places the scores in their bands.
            check_from: at,
            history: None,
        }
    }

    /// Carries a state made under other models (`old_ids`, their ids in order) over to
    /// this scorer: each model whose id is still here and whose shape (groups and
    /// thresholds) is unchanged keeps its points, memory and history; the others start
    /// fresh at `at`. Fit rules are not re-evaluated (call `handle_attributes`).
    pub fn adopt(&self, old_ids: &[ScoreId], mut state: ContactScores, at: Timestamp) -> ContactScores {
        let mut fresh = self.new_state(at);
        fresh.last = state.last.max(at);
        let mut history = state.history.take();
        for (mi, model) in self.models.iter().enumerate() {
            let Some(old) = old_ids.iter().position(|id| *id == model.id) else {
                continue;
            };
            let fits = state.models.get(old).is_some_and(|s| {
                s.groups.len() == model.groups.len() && s.thresholds.len() == model.thresholds.len()
            });
            if fits {
                fresh.models[mi] = state.models[old].clone();
                if let Some(h) = history.as_mut().and_then(|h| h.models.get_mut(old)) {
                    let target = fresh.history.get_or_insert_with(|| self.new_history());
                    target.models[mi] = std::mem::take(h);
                }
            }
        }
        // Wake-ups are recomputed at the next step.
        fresh.check_from = at;
        fresh
    }

    /// Whether `state` has the shape this scorer's models give (a state restored from
    /// elsewhere may not); every entry point checks, so that nothing indexes out of
    /// range. (Positions stored inside, such as a rule's or a group's, are looked up
    /// with bounds checks wherever they are read.)
    pub fn fits(&self, state: &ContactScores) -> bool {
        state.models.len() == self.models.len()
            && self
                .models
                .iter()
                .zip(&state.models)
                .all(|(m, s)| s.groups.len() == m.groups.len() && s.thresholds.len() == m.thresholds.len())
            && state.history.as_ref().is_none_or(|h| h.models.len() == self.models.len())
    }

    fn new_history(&self) -> Box<History> {
        Box::new(History {
            models: self
                .models
                .iter()
                .map(|m| ModelHistory {
                    scales: m.groups.iter().map(|_| 1.0).collect(),
                    ..ModelHistory::default()
                })
                .collect(),
        })
    }

    /// A score's value at `now`, decay applied.
    pub fn value(&self, state: &ContactScores, model: usize, now: Timestamp) -> Option<f64> {
        (model < self.models.len() && self.fits(state)).then(|| self.value_of(state, model, now))
    }

    /// A model's value: its own points, or the weighted sum of the models it combines.
    fn value_of(&self, state: &ContactScores, model: usize, now: Timestamp) -> f64 {
        self.value_with(state, model, now, Precision::Exact)
    }

    /// [`Scorer::value_of`], exactly or (for searches) approximately.
    fn value_with(&self, state: &ContactScores, model: usize, now: Timestamp, precision: Precision) -> f64 {
        let m = &self.models[model];
        if m.combine.is_empty() {
            model_value(m, &state.models[model], now, precision)
        } else {
            let sum: f64 =
                m.combine.iter().map(|(part, w)| w * self.value_with(state, *part, now, precision)).sum();
            clamp(m.bounds, sum)
        }
    }

    /// The name of the band a score is in at `now`, if any.
    pub fn band(&self, state: &ContactScores, model: usize, now: Timestamp) -> Option<&str> {
        let value = self.value(state, model, now)?;
        self.models[model].bands.iter().rev().find(|b| value >= b.from).map(|b| b.name.as_str())
    }

    /// A fit-by-engagement matrix cell, such as `A1`: the band of the `row` model (fit
    /// grades A to D) followed by the band of the `column` model (engagement 1 to 4).
    pub fn matrix(&self, state: &ContactScores, row: usize, column: usize, now: Timestamp) -> Option<String> {
        Some(format!("{}{}", self.band(state, row, now)?, self.band(state, column, now)?))
    }

    /// The model's raw value from `now` on as a constant plus half-life terms; `None`
    /// when a group decays in steps.
    fn decay_form(&self, state: &ContactScores, model: usize, now: Timestamp) -> Option<DecayForm> {
        let m = &self.models[model];
        let mut form = DecayForm::default();
        if !m.combine.is_empty() {
            for (part, w) in &m.combine {
                form.add_scaled(&self.decay_form(state, *part, now)?, *w);
            }
            return Some(form);
        }
        let s = &state.models[model];
        for (gi, g) in m.groups.iter().enumerate() {
            // Only an estimate is made from the form: the fast functions do.
            let v = group_value(m, s, gi, now, Precision::Approximate);
            match g.decay {
                _ if g.window.is_some() => form.constant += v,
                Decay::None => form.constant += v,
                Decay::HalfLife { half_life } => form.add_term(v, half_life.as_secs_f64()),
                _ => return None,
            }
        }
        form.constant += s.fit;
        Some(form)
    }

    /// Where a model's value ends up if no event ever comes: decaying and timeframe
    /// points gone, the rest (fit, non-decaying groups) kept.
    fn limit_of(&self, state: &ContactScores, model: usize) -> f64 {
        let m = &self.models[model];
        if !m.combine.is_empty() {
            let sum: f64 = m.combine.iter().map(|(part, w)| w * self.limit_of(state, *part)).sum();
            return clamp(m.bounds, sum);
        }
        let s = &state.models[model];
        let kept: f64 = m
            .groups
            .iter()
            .zip(&s.groups)
            .map(|(g, c)| if g.window.is_none() && matches!(g.decay, Decay::None) { c.stored() } else { 0.0 })
            .sum();
        clamp(m.bounds, kept + s.fit)
    }

    /// Feeds every model's value at `now` to its thresholds and bands, using the group
    /// values an event already settled; then computes and remembers the wake-up.
    fn observe_all(&self, state: &mut ContactScores, now: Timestamp, scratch: &mut ScoreScratch) {
        scratch.model_values.clear();
        for (mi, m) in self.models.iter().enumerate() {
            let value = if !m.combine.is_empty() {
                let sum: f64 = m.combine.iter().map(|(part, w)| w * scratch.model_values[*part]).sum();
                clamp(m.bounds, sum)
            } else if scratch.settled.get(mi).copied().unwrap_or(false) {
                let at = self.group_offsets[mi];
                let raw = scratch.values[at..at + m.groups.len()].iter().sum::<f64>() + state.models[mi].fit;
                clamp(m.bounds, raw)
            } else {
                model_value(m, &state.models[mi], now, Precision::Exact)
            };
            scratch.model_values.push(value);
            observe(m, &mut state.models[mi], value, &mut scratch.update);
        }
        let next = self.wake_after(state, Start { since: now, above: true });
        state.check_from = next.unwrap_or(Timestamp::MAX);
        scratch.update.next_wake = next;
    }

    /// Applies an event: every engagement rule of its type whose condition holds awards
    /// its points (subject to its repeat policy), in rule order; then thresholds and
    /// bands are checked.
    ///
    /// # Errors
    ///
    /// [`ScoreError::OutOfOrder`] for an event older than the state's last change; the
    /// state is left unchanged.
    pub fn handle_event(
        &self,
        state: &mut ContactScores,
        contact: &Contact,
        event: &Event,
    ) -> Result<ScoreUpdate, ScoreError> {
        self.handle_event_with(state, contact, event, &mut ScoreScratch::default())
    }

    /// [`Scorer::handle_event`] with reusable buffers.
    ///
    /// # Errors
    ///
    /// As [`Scorer::handle_event`].
    pub fn handle_event_with(
        &self,
        state: &mut ContactScores,
        contact: &Contact,
        event: &Event,
        scratch: &mut ScoreScratch,
    ) -> Result<ScoreUpdate, ScoreError> {
        self.apply_event(state, contact, event, scratch)?;
        Ok(std::mem::take(&mut scratch.update))
    }

    /// [`Scorer::handle_event`] without allocating: the update is left in `scratch` and
    /// borrowed from it, valid until the scratch is used again. For hot loops.
    ///
    /// # Errors
    ///
    /// As [`Scorer::handle_event`].
    pub fn handle_event_in<'s>(
        &self,
        state: &mut ContactScores,
        contact: &Contact,
        event: &Event,
        scratch: &'s mut ScoreScratch,
    ) -> Result<&'s ScoreUpdate, ScoreError> {
        self.apply_event(state, contact, event, scratch)?;
        Ok(&scratch.update)
    }

    /// Applies a batch of events in order, each to the state at its `state` index, and
    /// hands each event's update (or error) to `sink` with the event's position in the
    /// batch. The result is exactly that of calling [`Scorer::handle_event`] for each
    /// event in turn; it is faster because the states of events further on are fetched
    /// into the cache ahead of their turn and nothing is allocated per event. An index
    /// outside `states` is reported as [`ScoreError::NoSuchState`] for that event.
    ///
    /// ```
    /// # use nurture::scoring::{BatchEvent, PointRule, ScoreModel, ScoreScratch, Scorer};
    /// # use nurture::{Schema, Timestamp, Type};
    /// let schema = Schema::builder().event_type("page_visit", [("url", Type::String)]).build()?;
    /// let visit = schema.event_type_index("page_visit").unwrap();
    /// let model = ScoreModel::new("engagement").with_rule(PointRule::on_event("visit", visit, None, 5.0));
    /// let scorer = Scorer::new(vec![model], schema.event_types().count())?;
    /// let t = Timestamp::from_unix(1_700_000_000, 0)?;
    /// let mut states = vec![scorer.new_state(t), scorer.new_state(t)];
    /// let contact = schema.contact("c1").build();
    /// let events: Vec<_> = (0..3)
    ///     .map(|i| schema.event(format!("e{i}"), "c1", "page_visit", t).unwrap().set("url", "/").unwrap().build())
    ///     .collect();
    /// let batch: Vec<_> = events.iter().map(|event| BatchEvent { state: 1, contact: &contact, event }).collect();
    /// let mut awarded = 0.0;
    /// scorer.handle_batch(&mut states, &batch, &mut ScoreScratch::default(), |_, update| {
    ///     awarded += update.map_or(0.0, |u| u.changes.iter().map(|c| c.2).sum());
    /// });
    /// assert_eq!(awarded, 15.0);
    /// assert_eq!(scorer.value(&states[1], 0, t), Some(15.0));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn handle_batch(
        &self,
        states: &mut [ContactScores],
        batch: &[BatchEvent<'_>],
        scratch: &mut ScoreScratch,
        mut sink: impl FnMut(usize, Result<&ScoreUpdate, ScoreError>),
    ) {
        for (i, item) in batch.iter().enumerate() {
            if let Some(ahead) = batch.get(i + PREFETCH_DISTANCE) {
                if let Some(s) = states.get(ahead.state) {
                    prefetch(s);
                }
                prefetch(ahead.event);
            }
            let Some(state) = states.get_mut(item.state) else {
                sink(i, Err(ScoreError::NoSuchState));
                continue;
            };
            match self.apply_event(state, item.contact, item.event, scratch) {
                Ok(()) => sink(i, Ok(&scratch.update)),
                Err(e) => sink(i, Err(e)),
            }
        }
    }

    /// The event step: the update is left in `scratch.update`.
    fn apply_event(
        &self,
        state: &mut ContactScores,
        contact: &Contact,
        event: &Event,
        scratch: &mut ScoreScratch,
    ) -> Result<(), ScoreError> {
        if event.at() < state.last {
            return Err(ScoreError::OutOfOrder);
        }
        self.apply_event_at(state, contact, event, scratch)
    }

    /// A late event: one older than the state's last change, applied at that last
    /// change. Its points are credited as if earned at the event's own instant (decayed
    /// since; a timeframe award keeps its own expiry, or is nothing if already expired)
    /// and counters count it at its own instant; conditions, repeat policies, caps and
    /// thresholds are applied as of the last change, and crossings are reported then.
    /// An event that is not late is applied as [`Scorer::handle_event_in`] does.
    ///
    /// # Errors
    ///
    /// [`ScoreError::ForeignState`]; the state is left unchanged.
    pub fn handle_late_event_in<'s>(
        &self,
        state: &mut ContactScores,
        contact: &Contact,
        event: &Event,
        scratch: &'s mut ScoreScratch,
    ) -> Result<&'s ScoreUpdate, ScoreError> {
        self.apply_event_at(state, contact, event, scratch)?;
        Ok(&scratch.update)
    }

    /// The event step at `max(event instant, last change)`.
    fn apply_event_at(
        &self,
        state: &mut ContactScores,
        contact: &Contact,
        event: &Event,
        scratch: &mut ScoreScratch,
    ) -> Result<(), ScoreError> {
        scratch.update.clear();
        let earned = event.at();
        let now = earned.max(state.last);
        if !self.fits(state) {
            return Err(ScoreError::ForeignState);
        }
        if !self.counters.is_empty() {
            self.counters.observe(&mut state.counters, contact, event);
            self.counters.values(&state.counters, now, &mut scratch.counts);
        }
        // `score.NAME` reads the scores as they stand before this event.
        scratch.scores.clear();
        if self.reads_scores {
            for model in &self.score_models {
                scratch.scores.push(model.map(|m| Value::Double(self.value_of(state, m, now))));
            }
        }
        scratch.settled.clear();
        scratch.settled.resize(self.models.len(), false);
        let act = Activation::new()
            .with_contact(contact)
            .with_event(event)
            .with_now(now)
            .with_counters(&scratch.counts)
            .with_scores(&scratch.scores);
        let mut changed = false;
        for (mi, model) in self.models.iter().enumerate() {
            self.indexes[mi].candidates(event, &mut scratch.candidates);
            let ms = &mut state.models[mi];
            for &ri in &scratch.candidates {
                let rule = &model.rules[ri as usize];
                let Trigger::Event { condition, .. } = &rule.trigger else {
                    continue;
                };
                if condition.as_ref().is_some_and(|c| c.eval_bool(&act) != Ok(true))
                    || !allowed(ms, ri, rule, now)
                {
                    continue;
                }
                let at = self.group_offsets[mi];
                let groups = at..at + model.groups.len();
                if !scratch.settled[mi] {
                    settle(model, ms, now, &mut scratch.values, &mut scratch.factors, at);
                    scratch.settled[mi] = true;
                }
                let when = Earned { now, at: earned };
                let delta = award(model, ms, rule, ri, when, &mut scratch.values[groups.clone()])?;
                remember(ms, ri, rule, now);
                if self.ledger_len > 0 {
                    let history = state.history.get_or_insert_with(|| self.new_history());
                    let h = &mut history.models[mi];
                    let factor = &mut scratch.factors[at + rule.group];
                    if *factor != 1.0 {
                        h.decay_group(rule.group, *factor);
                        *factor = 1.0;
                    }
                    if model.groups[rule.group].window.is_none() {
                        h.contribute(ri, rule.group, delta);
                    }
                    let entry = StoredEntry { rule: ri, delta, at: earned, event: Some(event.id().clone()) };
                    h.push(entry, self.ledger_len);
                }
                scratch.update.changes.push((model.id.clone(), rule.id.clone(), delta));
                changed = true;
            }
        }
        // Without a change, only decay can have moved a score, and not before the wake-up
        // computed at the last change.
        if changed || state.check_from <= now {
            self.observe_all(state, now, scratch);
        } else {
            scratch.update.next_wake = (state.check_from != Timestamp::MAX).then_some(state.check_from);
        }
        state.last = now;
        Ok(())
    }

    /// Adds `points` (negative to subtract) to a model's first group at `now`, within
    /// the group's and the model's bounds, as a rule action does; then checks
    /// thresholds and bands. The change shows in values and crossings, not under a rule
    /// in explanations.
    ///
    /// # Errors
    ///
    /// [`ScoreError::NotFinite`] for non-finite points, [`ScoreError::OutOfOrder`] for an
    /// instant before the last change, [`ScoreError::ForeignState`]; nothing changes.
    pub fn adjust(
        &self,
        state: &mut ContactScores,
        model: usize,
        points: f64,
        now: Timestamp,
    ) -> Result<ScoreUpdate, ScoreError> {
        if !points.is_finite() {
            return Err(ScoreError::NotFinite);
        }
        if now < state.last {
            return Err(ScoreError::OutOfOrder);
        }
        if !self.fits(state) {
            return Err(ScoreError::ForeignState);
        }
        let mut scratch = ScoreScratch::default();
        scratch.settled.resize(self.models.len(), false);
        if let Some(m) = self.models.get(model).filter(|m| m.combine.is_empty() && !m.groups.is_empty()) {
            let at = self.group_offsets[model];
            settle(m, &state.models[model], now, &mut scratch.values, &mut scratch.factors, at);
            scratch.settled[model] = true;
            let rule = PointRule::on_event(ADJUSTMENT, EventTypeIndex(0), None, points);
            let values = &mut scratch.values[at..at + m.groups.len()];
            let delta = award(m, &mut state.models[model], &rule, ADJUSTED, Earned { now, at: now }, values)?;
            // Explained under one pseudo-rule, `adjust_score`, like any other points.
            if self.ledger_len > 0 {
                let history = state.history.get_or_insert_with(|| self.new_history());
                let h = &mut history.models[model];
                let factor = scratch.factors[at];
                if factor != 1.0 {
                    h.decay_group(0, factor);
                }
                if m.groups[0].window.is_none() {
                    h.contribute(ADJUSTED, 0, delta);
                }
                h.push(StoredEntry { rule: ADJUSTED, delta, at: now, event: None }, self.ledger_len);
            }
        }
        self.observe_all(state, now, &mut scratch);
        state.last = now;
        Ok(scratch.update)
    }

    /// The first whole second after `now` at which decay alone takes a score below
    /// `level` (`None`: it is below already, or never will be before an event).
    pub fn next_below(
        &self,
        state: &ContactScores,
        model: usize,
        level: f64,
        now: Timestamp,
    ) -> Option<Timestamp> {
        if model >= self.models.len() || !self.fits(state) || level <= self.limit_of(state, model) {
            return None;
        }
        let at = |secs: i64| Duration::from_secs(secs).ok().and_then(|d| now.checked_add(d));
        let value = |secs: i64, precision| {
            at(secs).map_or(f64::NEG_INFINITY, |t| self.value_with(state, model, t, precision))
        };
        let guess = self.decay_form(state, model, now).and_then(|form| form.crossing(level));
        let horizon = self.models.iter().zip(&state.models).filter_map(|(m, s)| next_expiry(m, s, now)).min();
        first_below(
            |secs| value(secs, Precision::Approximate),
            |secs| value(secs, Precision::Exact),
            guess,
            level,
            Start { since: now, above: false },
            horizon,
        )
        .or(horizon)
    }

    /// Re-evaluates the fit rules against the contact's attributes, as of `now`; call it
    /// when attributes change. Fit points count while their condition holds; they do
    /// not decay.
    ///
    /// # Errors
    ///
    /// [`ScoreError::OutOfOrder`] when `now` is older than the state's last change.
    pub fn handle_attributes(
        &self,
        state: &mut ContactScores,
        contact: &Contact,
        now: Timestamp,
    ) -> Result<ScoreUpdate, ScoreError> {
        self.refit(state, contact, now, |_| true)
    }

    /// Re-evaluates only the fit rules that read one of the `changed` contact fields
    /// (by name); call it when the host writes those attributes.
    ///
    /// # Errors
    ///
    /// [`ScoreError::OutOfOrder`] when `now` is older than the state's last change.
    pub fn handle_attribute_change(
        &self,
        state: &mut ContactScores,
        contact: &Contact,
        changed: &[&str],
        now: Timestamp,
    ) -> Result<ScoreUpdate, ScoreError> {
        let slots: SmallVec<[Slot; 4]> = changed
            .iter()
            .filter_map(|name| self.contact_fields.iter().position(|f| &**f == *name))
            .map(|i| i as Slot)
            .collect();
        self.refit(state, contact, now, |reads: &[Slot]| reads.iter().any(|r| slots.contains(r)))
    }

    /// Re-evaluates the fit rules `select` picks (by the contact fields they read).
    fn refit(
        &self,
        state: &mut ContactScores,
        contact: &Contact,
        now: Timestamp,
        select: impl Fn(&[Slot]) -> bool,
    ) -> Result<ScoreUpdate, ScoreError> {
        if now < state.last {
            return Err(ScoreError::OutOfOrder);
        }
        if !self.fits(state) {
            return Err(ScoreError::ForeignState);
        }
        let act = Activation::new().with_contact(contact).with_now(now);
        let mut scratch = ScoreScratch::default();
        for (mi, model) in self.models.iter().enumerate() {
            let ms = &mut state.models[mi];
            for (ri, rule) in model.rules.iter().enumerate() {
                let Trigger::Fit { condition } = &rule.trigger else {
                    continue;
                };
                if !select(&self.fit_reads[mi][ri]) {
                    continue;
                }
                let ri = ri as u32;
                let holds = condition.eval_bool(&act) == Ok(true);
                let held = ms.fit_holds.binary_search(&ri);
                let delta = match (holds, held) {
                    (true, Err(pos)) => {
                        ms.fit_holds.insert(pos, ri);
                        rule.points
                    }
                    (false, Ok(pos)) => {
                        ms.fit_holds.remove(pos);
                        -rule.points
                    }
                    _ => continue,
                };
                if self.ledger_len > 0 {
                    let history = state.history.get_or_insert_with(|| self.new_history());
                    history.models[mi]
                        .push(StoredEntry { rule: ri, delta, at: now, event: None }, self.ledger_len);
                }
                scratch.update.changes.push((model.id.clone(), rule.id.clone(), delta));
            }
            // Summed afresh, in rule order, so the total never drifts.
            ms.fit =
                ms.fit_holds.iter().filter_map(|&ri| model.rules.get(ri as usize)).map(|r| r.points).sum();
        }
        self.observe_all(state, now, &mut scratch);
        state.last = now;
        Ok(scratch.update)
    }

    /// Checks thresholds and bands at `now` with decay applied: the crossings decay alone
    /// caused since the last change. Call it at the `next_wake` instant.
    ///
    /// # Errors
    ///
    /// [`ScoreError::OutOfOrder`] when `now` is older than the state's last change.
    pub fn handle_timeout(
        &self,
        state: &mut ContactScores,
        now: Timestamp,
    ) -> Result<ScoreUpdate, ScoreError> {
        if now < state.last {
            return Err(ScoreError::OutOfOrder);
        }
        if !self.fits(state) {
            return Err(ScoreError::ForeignState);
        }
        let mut scratch = ScoreScratch::default();
        self.observe_all(state, now, &mut scratch);
        state.last = now;
        Ok(scratch.update)
    }

    /// The first instant after `now` at which decay alone moves a score below a
    /// threshold it is inside, or below the lower bound of its band (or a timeframe
    /// award expires).
    pub fn next_wake(&self, state: &ContactScores, now: Timestamp) -> Option<Timestamp> {
        if !self.fits(state) {
            return None;
        }
        self.wake_after(state, Start { since: now, above: false })
    }

    /// [`Scorer::next_wake`] from `start`.
    fn wake_after(&self, state: &ContactScores, start: Start) -> Option<Timestamp> {
        let now = start.since;
        // Timeframe awards expire in steps: wake at the next expiry at the latest, and
        // search decay crossings only up to it (every value is monotone before it).
        let horizon = self.models.iter().zip(&state.models).filter_map(|(m, s)| next_expiry(m, s, now)).min();
        let mut wake = horizon;
        for (mi, (model, ms)) in self.models.iter().zip(&state.models).enumerate() {
            // The value falls through the highest level it is above first.
            let inside = model.thresholds.iter().zip(&ms.thresholds).filter(|(_, ts)| ts.inside());
            let band = ms.band.and_then(|b| model.bands.get(usize::from(b))).map(|b| b.from);
            let Some(target) = inside.map(|((_, t), _)| t.exit).chain(band).reduce(f64::max) else {
                continue;
            };
            // A value never falls below where decay leaves it in the end.
            if target <= self.limit_of(state, mi) {
                continue;
            }
            let at = |secs: i64| Duration::from_secs(secs).ok().and_then(|d| now.checked_add(d));
            let value = |secs: i64, precision| {
                at(secs).map_or(f64::NEG_INFINITY, |t| self.value_with(state, mi, t, precision))
            };
            let fast = |secs| value(secs, Precision::Approximate);
            let guess = self.decay_form(state, mi, now).and_then(|form| form.crossing(target));
            let found = match Trajectory::new(model, ms, now) {
                // Most models: decayed values straight from integer spans.
                Some(path) => first_below(
                    fast,
                    |secs| path.value(secs).unwrap_or_else(|| value(secs, Precision::Exact)),
                    guess,
                    target,
                    start,
                    horizon,
                ),
                None => {
                    first_below(fast, |secs| value(secs, Precision::Exact), guess, target, start, horizon)
                }
            };
            if let Some(at) = found {
                wake = Some(wake.map_or(at, |w| w.min(at)));
            }
        }
        wake
    }

    /// A score broken down by group and rule at `now`, with the recent ledger.
    pub fn explain(&self, state: &ContactScores, model: usize, now: Timestamp) -> Option<Explanation> {
        if !self.fits(state) {
            return None;
        }
        let m = self.models.get(model)?;
        let s = state.models.get(model)?;
        let history = state.history.as_ref().and_then(|h| h.models.get(model));
        let mut rules: Vec<(u32, f64)> = Vec::new();
        if let Some(h) = history {
            for c in &h.contributions {
                let g = usize::from(c.group);
                let (Some(group), Some(cell)) = (m.groups.get(g), s.groups.get(g)) else {
                    continue;
                };
                rules.push((c.rule, group.decay.apply(h.at_last_write(c), cell.updated_at(), now)));
            }
        }
        for a in &s.awards {
            let window = m.groups.get(usize::from(a.group)).and_then(|g| g.window);
            if window.is_some_and(|w| in_window(a.at, now, w)) {
                match rules.iter_mut().find(|(r, _)| *r == a.rule) {
                    Some(entry) => entry.1 += a.points,
                    None => rules.push((a.rule, a.points)),
                }
            }
        }
        rules.sort_by_key(|(r, _)| *r);
        Some(Explanation {
            score: m.id.clone(),
            value: self.value_of(state, model, now),
            groups: m
                .groups
                .iter()
                .enumerate()
                .map(|(gi, g)| (g.name.clone(), group_value(m, s, gi, now, Precision::Exact)))
                .collect(),
            rules: rules.into_iter().filter_map(|(r, p)| Some((rule_id(m, r)?, p))).collect(),
            fit: s.fit,
            ledger: history
                .map(|h| {
                    h.ledger
                        .iter()
                        .filter_map(|e| {
                            Some(LedgerEntry {
                                rule: rule_id(m, e.rule)?,
                                delta: e.delta,
                                at: e.at,
                                event: e.event.clone(),
                            })
                        })
                        .collect()
                })
                .unwrap_or_default(),
        })
    }

    /// Recomputes a contact's scores from its full history (events in time order), as
    /// when a model changes. Fit rules are evaluated against `contact` at `start`.
    ///
    /// # Errors
    ///
    /// [`ScoreError::OutOfOrder`] when the history is not in time order.
    pub fn recompute(
        &self,
        contact: &Contact,
        history: &[Event],
        start: Timestamp,
    ) -> Result<ContactScores, ScoreError> {
        self.recompute_with(contact, history, start, &mut ScoreScratch::default())
    }

    fn recompute_with(
        &self,
        contact: &Contact,
        history: &[Event],
        start: Timestamp,
        scratch: &mut ScoreScratch,
    ) -> Result<ContactScores, ScoreError> {
        let mut state = self.new_state(start);
        self.handle_attributes(&mut state, contact, start)?;
        for event in history {
            self.apply_event(&mut state, contact, event, scratch)?;
        }
        Ok(state)
    }

    /// Rescoring in bulk: recomputes every contact from its history, for a changed
    /// model. Results come back in input order.
    ///
    /// # Errors
    ///
    /// The first contact whose history is out of order.
    pub fn rescore<'a>(
        &self,
        contacts: impl IntoIterator<Item = (&'a Contact, &'a [Event])>,
        start: Timestamp,
    ) -> Result<Vec<ContactScores>, ScoreError> {
        let mut scratch = ScoreScratch::default();
        contacts.into_iter().map(|(c, h)| self.recompute_with(c, h, start, &mut scratch)).collect()
    }
}

/// A plain model's value from an instant on, computed as [`model_value`] computes it
/// (the same bits) but from integer spans: per group, the stored value and the
/// nanoseconds from its last write to the start. Only for models whose groups have no
/// window and decay by half-life or not at all.
struct Trajectory<'a> {
    model: &'a ScoreModel,
    groups: SmallVec<[(f64, i64); 4]>,
    fit: f64,
}

impl<'a> Trajectory<'a> {
    fn new(model: &'a ScoreModel, state: &ModelState, since: Timestamp) -> Option<Trajectory<'a>> {
        if !model.combine.is_empty() {
            return None;
        }
        let mut groups = SmallVec::new();
        for (g, cell) in model.groups.iter().zip(&state.groups) {
            if g.window.is_some() || !matches!(g.decay, Decay::None | Decay::HalfLife { .. }) {
                return None;
            }
            let at = cell.updated_at();
            let base = since
                .unix_seconds()
                .checked_sub(at.unix_seconds())?
                .checked_mul(1_000_000_000)?
                .checked_add(i64::from(since.subsec_nanos()) - i64::from(at.subsec_nanos()))?;
            groups.push((cell.stored(), base));
        }
        Some(Trajectory { model, groups, fit: state.fit })
    }

    /// The value `secs` seconds after the start; `None` past the `i64` nanosecond range.
    fn value(&self, secs: i64) -> Option<f64> {
        let offset = secs.checked_mul(1_000_000_000)?;
        let mut spans: SmallVec<[i64; 4]> = SmallVec::new();
        for (_, base) in &self.groups {
            spans.push(base.checked_add(offset)?);
        }
        let raw = self
            .model
            .groups
            .iter()
            .zip(&self.groups)
            .zip(&spans)
            .map(|((g, (stored, _)), &e)| if e <= 0 { *stored } else { stored * g.decay.factor_nanos(e) })
            .sum::<f64>()
            + self.fit;
        Some(clamp(self.model.bounds, raw))
    }
}

/// A rule's id by position, or the adjustment pseudo-rule.
fn rule_id(model: &ScoreModel, rule: u32) -> Option<RuleId> {
    match rule {
        ADJUSTED => Some(RuleId::from(ADJUSTMENT)),
        r => model.rules.get(r as usize).map(|r| r.id.clone()),
    }
}

/// Decisions use exact, portable arithmetic; searches for the instant of a decision may
/// first narrow it down with the platform's faster functions.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Precision {
    Exact,
    Approximate,
}

/// A model's total at `now`: its groups decayed, plus fit points, within its bounds.
fn model_value(model: &ScoreModel, state: &ModelState, now: Timestamp, precision: Precision) -> f64 {
    let raw = (0..model.groups.len()).map(|gi| group_value(model, state, gi, now, precision)).sum::<f64>()
        + state.fit;
    clamp(model.bounds, raw)
}

/// One group's points at `now`: decayed, or for a timeframe group the awards still
/// inside the window (within the group's bounds).
fn group_value(
    model: &ScoreModel,
    state: &ModelState,
    group: usize,
    now: Timestamp,
    precision: Precision,
) -> f64 {
    let g = &model.groups[group];
    match g.window {
        Some(window) => clamp(g.bounds, window_sum(state, group, now, window)),
        None => match precision {
            Precision::Exact => state.groups[group].value_at(now, &g.decay),
            Precision::Approximate => {
                let cell = &state.groups[group];
                cell.stored() * g.decay.factor_approx(cell.updated_at(), now)
            }
        },
    }
}

/// A timeframe group's awards inside its window at `now`, before its bounds.
fn window_sum(state: &ModelState, group: usize, now: Timestamp, window: Duration) -> f64 {
    state
        .awards
        .iter()
        .filter(|a| usize::from(a.group) == group && in_window(a.at, now, window))
        .map(|a| a.points)
        .sum()
}

/// Brings a model's groups to `now` in `values[at..]` (exactly as [`group_value`]), and
/// their decay factors since their last writes in `factors[at..]`.
fn settle(
    model: &ScoreModel,
    state: &ModelState,
    now: Timestamp,
    values: &mut Vec<f64>,
    factors: &mut Vec<f64>,
    at: usize,
) {
    let end = at + model.groups.len();
    if values.len() < end {
        values.resize(end, 0.0);
        factors.resize(end, 1.0);
    }
    for (gi, g) in model.groups.iter().enumerate() {
        let (value, factor) = match g.window {
            Some(window) => (clamp(g.bounds, window_sum(state, gi, now, window)), 1.0),
            None => {
                let cell = &state.groups[gi];
                // `apply` is the stored value times this factor, so the product below
                // has the same bits as `ScoreCell::value_at`.
                let factor = g.decay.apply(1.0, cell.updated_at(), now);
                (cell.stored() * factor, factor)
            }
        };
        values[at + gi] = value;
        factors[at + gi] = factor;
    }
}

/// Awards a rule's points to its group at `now`, within the group's and the model's
/// bounds; `values` holds the model's groups as settled at `now` and is kept current.
/// Returns the change that took effect.
fn award(
    model: &ScoreModel,
    state: &mut ModelState,
    rule: &PointRule,
    index: u32,
    when: Earned,
    values: &mut [f64],
) -> Result<f64, ScoreError> {
    let Earned { now, at: earned } = when;
    let g = rule.group;
    let group = &model.groups[g];
    let bounds = effective_bounds(group.bounds, &group.decay);
    // Points earned before `now` (a late event) arrive as decayed as if they had been
    // credited then; a timeframe award that has already expired arrives as nothing.
    let points = match group.window {
        Some(window) if !in_window(earned, now, window) => 0.0,
        Some(_) => rule.points,
        None if earned < now => rule.points * group.decay.apply(1.0, earned, now),
        None => rule.points,
    };
    // The model's total bounds limit what may be added (points past a 100-point cap are
    // not kept in reserve), then the group's own bounds. Fit points sit on top and the
    // total is clamped when read, so the order of fit changes and events never matters.
    let raw: f64 = values.iter().sum();
    let points = if points > 0.0 {
        model.bounds.cap.map_or(points, |cap| points.min((cap - raw).max(0.0)))
    } else {
        model.bounds.floor.map_or(points, |floor| points.max((floor - raw).min(0.0)))
    };
    match group.window {
        Some(window) => {
            state.awards.retain(|a| usize::from(a.group) != g || in_window(a.at, now, window));
            let current = window_sum(state, g, now, window);
            let applied = clamp(bounds, current + points) - clamp(bounds, current);
            if !applied.is_finite() {
                return Err(ScoreError::NotFinite);
            }
            if applied != 0.0 {
                let group = u16::try_from(g).map_err(|_| ScoreError::NotFinite)?;
                state.awards.push(Award { at: earned, points: applied, rule: index, group });
            }
            values[g] = clamp(group.bounds, current + applied);
            Ok(applied)
        }
        None => {
            let current = values[g];
            let next = clamp(bounds, current + points);
            if !next.is_finite() {
                return Err(ScoreError::NotFinite);
            }
            state.groups[g] = ScoreCell::written(next, now);
            values[g] = next;
            Ok(next - current)
        }
    }
}

/// When points are credited (`now`) and when they were earned (`at`; earlier for a
/// late event).
#[derive(Clone, Copy, Debug)]
struct Earned {
    now: Timestamp,
    at: Timestamp,
}

/// Whether an award earned `at` still counts at `now`: the window is `(now - window, now]`.
fn in_window(at: Timestamp, now: Timestamp, window: Duration) -> bool {
    at <= now && now.checked_sub(window).is_none_or(|start| at > start)
}

/// The first instant after `now` at which a timeframe award expires.
fn next_expiry(model: &ScoreModel, state: &ModelState, now: Timestamp) -> Option<Timestamp> {
    state
        .awards
        .iter()
        .filter_map(|a| model.groups.get(usize::from(a.group))?.window.and_then(|w| a.at.checked_add(w)))
        .filter(|t| *t > now)
        .min()
}

/// Whether a rule may award at `now` under its repeat policy.
fn allowed(state: &ModelState, index: u32, rule: &PointRule, now: Timestamp) -> bool {
    if !rule.policy.needs_memory() {
        return true;
    }
    let memory =
        state.memory.binary_search_by_key(&index, |r| r.rule).ok().map(|pos| &state.memory[pos].memory);
    rule.policy.allows(memory, now)
}

/// Records an award in the rule's repeat-policy memory.
fn remember(state: &mut ModelState, index: u32, rule: &PointRule, now: Timestamp) {
    if !rule.policy.needs_memory() {
        return;
    }
    let pos = match state.memory.binary_search_by_key(&index, |r| r.rule) {
        Ok(p) => p,
        Err(p) => {
            state.memory.insert(p, RuleMemory { rule: index, memory: RepeatMemory::default() });
            p
        }
    };
    rule.policy.record(&mut state.memory[pos].memory, now);
}

/// Feeds the model's value at `now` to its thresholds and bands.
fn observe(model: &ScoreModel, state: &mut ModelState, value: f64, update: &mut ScoreUpdate) {
    for ((name, t), ts) in model.thresholds.iter().zip(state.thresholds.iter_mut()) {
        if let Some(c) = ts.observe(t, value) {
            update.crossings.push((model.id.clone(), name.clone(), c));
        }
    }
    let band = model.bands.iter().rposition(|b| value >= b.from).map(|i| i as u16);
    if band != state.band {
        let name = |b: Option<u16>| b.and_then(|i| model.bands.get(usize::from(i))).map(|b| b.name.clone());
        update.band_changes.push((model.id.clone(), name(state.band), name(band)));
        state.band = band;
    }
}
