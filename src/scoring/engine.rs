//! Incremental scoring: per-contact state, events applied one at a time, decay-driven
//! crossings found by timeouts, explanations and recomputation from history.

use std::collections::VecDeque;

use serde::{Deserialize, Serialize};
use smallvec::SmallVec;

use crate::counters::{CounterState, Counters};
use crate::expr::{Activation, Expression};
use crate::id::{EventId, EventTypeIndex, RuleId, ScoreId};
use crate::index::{IndexEntry, RuleIndex};
use crate::schema::Slot;
use crate::schema::{Contact, Event};
use crate::scoring::cell::{Bounds, ScoreCell, ScoreError};
use crate::scoring::decay::Decay;
use crate::scoring::model::{ModelError, Repeat, ScoreModel, Trigger};
use crate::scoring::threshold::{Crossing, ThresholdState};
use crate::time::{Duration, Timestamp};
use crate::value::Value;

/// How many recent changes each contact's ledger keeps per model.
pub const LEDGER_LEN: usize = 32;

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
}

/// Reusable buffers for [`Scorer::handle_event_with`]; one per thread.
#[derive(Clone, Debug, Default)]
pub struct ScoreScratch {
    candidates: Vec<u32>,
    counts: Vec<Option<Value>>,
    scores: Vec<Option<Value>>,
}

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

/// One model's state for one contact.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ModelState {
    groups: SmallVec<[ScoreCell; 2]>,
    fit: f64,
    /// The fit rules that currently hold, by position.
    fit_holds: SmallVec<[u32; 4]>,
    thresholds: SmallVec<[ThresholdState; 2]>,
    band: Option<u16>,
    /// Per rule that has awarded points: recent award times (for repeat policies) and
    /// its decayed contribution (for explanations). Sorted by rule.
    rules: Vec<RuleState>,
    ledger: VecDeque<LedgerEntry>,
    /// Per timeframe group: the awards still inside its window (empty otherwise).
    awards: Vec<Vec<Award>>,
}

/// Points a rule earned in a timeframe group, expiring one window later.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
struct Award {
    at: Timestamp,
    points: f64,
    rule: u32,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
struct RuleState {
    rule: u32,
    awards: SmallVec<[Timestamp; 2]>,
    ever: bool,
    contribution: ScoreCell,
}

/// A contact's scores under a [`Scorer`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ContactScores {
    models: Vec<ModelState>,
    counters: CounterState,
    last: Timestamp,
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
    /// Each rule's contribution: (rule, points).
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
        Ok(Scorer {
            models,
            indexes,
            counters: Counters::default(),
            fit_reads,
            contact_fields: Vec::new(),
            score_models: Vec::new(),
            reads_scores,
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
        self.score_models = schema
            .scores()
            .iter()
            .map(|(name, _)| self.models.iter().position(|m| m.id.as_str() == name))
            .collect();
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
                    rules: Vec::new(),
                    ledger: VecDeque::new(),
                    awards: m.groups.iter().map(|_| Vec::new()).collect(),
                })
                .collect(),
            counters: self.counters.new_state(),
            last: at,
        }
    }

    /// A score's value at `now`, decay applied.
    pub fn value(&self, state: &ContactScores, model: usize, now: Timestamp) -> Option<f64> {
        (model < self.models.len() && model < state.models.len()).then(|| self.value_of(state, model, now))
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

    /// The model's value from `now` on as `constant + decaying · 2^(-t / half_life)`, when
    /// every decaying part shares one half-life (`None` otherwise).
    fn linear_form(&self, state: &ContactScores, model: usize, now: Timestamp) -> Option<LinearForm> {
        let m = &self.models[model];
        let mut form = LinearForm { constant: 0.0, decaying: 0.0, half_life: None };
        if !m.combine.is_empty() {
            for (part, w) in &m.combine {
                let f = self.linear_form(state, *part, now)?;
                form.merge(f.scaled(*w))?;
            }
            return Some(form);
        }
        let s = &state.models[model];
        for (gi, g) in m.groups.iter().enumerate() {
            let v = group_value(m, s, gi, now, Precision::Exact);
            let f = match g.decay {
                _ if g.window.is_some() => LinearForm { constant: v, decaying: 0.0, half_life: None },
                Decay::None => LinearForm { constant: v, decaying: 0.0, half_life: None },
                Decay::HalfLife { half_life } => {
                    LinearForm { constant: 0.0, decaying: v, half_life: Some(half_life.as_secs_f64()) }
                }
                _ => return None,
            };
            form.merge(f)?;
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

    /// Feeds every model's current value to its thresholds and bands.
    fn observe_all(&self, state: &mut ContactScores, now: Timestamp, update: &mut ScoreUpdate) {
        for mi in 0..self.models.len() {
            let value = self.value_of(state, mi, now);
            observe(&self.models[mi], &mut state.models[mi], value, update);
        }
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

    /// [`Scorer::handle_event`] with reusable buffers, for hot loops.
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
        let now = event.at();
        if now < state.last {
            return Err(ScoreError::OutOfOrder);
        }
        self.counters.observe(&mut state.counters, contact, event);
        self.counters.values(&state.counters, now, &mut scratch.counts);
        // `score.NAME` reads the scores as they stand before this event.
        scratch.scores.clear();
        if self.reads_scores {
            for model in &self.score_models {
                scratch.scores.push(model.map(|m| Value::Double(self.value_of(state, m, now))));
            }
        }
        let act = Activation::new()
            .with_contact(contact)
            .with_event(event)
            .with_now(now)
            .with_counters(&scratch.counts)
            .with_scores(&scratch.scores);
        let mut update = ScoreUpdate::default();
        for (mi, model) in self.models.iter().enumerate() {
            self.indexes[mi].candidates(event, &mut scratch.candidates);
            let ms = &mut state.models[mi];
            for &ri in &scratch.candidates {
                let rule = &model.rules[ri as usize];
                let Trigger::Event { condition, .. } = &rule.trigger else {
                    continue;
                };
                let holds = condition.as_ref().map_or(Ok(true), |c| c.eval_bool(&act));
                if holds != Ok(true) || !allowed(ms, ri, rule.repeat, rule.min_interval, now) {
                    continue;
                }
                let group = &model.groups[rule.group];
                let bounds = effective_bounds(group.bounds, &group.decay);
                // The model's total bounds limit what may be added (points past a
                // 100-point cap are not kept in reserve), then the group's own bounds.
                let points = within_total(model, ms, now, rule.points);
                let delta = match group.window {
                    Some(window) => add_windowed(ms, rule.group, ri, points, now, window, bounds),
                    None => ms.groups[rule.group].add(points, now, &group.decay, bounds)?,
                };
                record(model, ms, ri, delta, now, Some(event.id().clone()));
                update.changes.push((model.id.clone(), rule.id.clone(), delta));
            }
        }
        self.observe_all(state, now, &mut update);
        state.last = now;
        update.next_wake = self.next_wake(state, now);
        Ok(update)
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
        let act = Activation::new().with_contact(contact).with_now(now);
        let mut update = ScoreUpdate::default();
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
                push_ledger(ms, LedgerEntry { rule: rule.id.clone(), delta, at: now, event: None });
                update.changes.push((model.id.clone(), rule.id.clone(), delta));
            }
            // Summed afresh, in rule order, so the total never drifts.
            ms.fit = ms.fit_holds.iter().map(|&ri| model.rules[ri as usize].points).sum();
        }
        self.observe_all(state, now, &mut update);
        state.last = now;
        update.next_wake = self.next_wake(state, now);
        Ok(update)
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
        let mut update = ScoreUpdate::default();
        self.observe_all(state, now, &mut update);
        state.last = now;
        update.next_wake = self.next_wake(state, now);
        Ok(update)
    }

    /// The first instant after `now` at which decay alone moves a score below a
    /// threshold it is inside, or below the lower bound of its band.
    pub fn next_wake(&self, state: &ContactScores, now: Timestamp) -> Option<Timestamp> {
        let mut wake: Option<Timestamp> = None;
        // Timeframe awards expire in steps: wake at the next expiry at the latest, and
        // search decay crossings only up to it (every value is monotone before it).
        let horizon = self.models.iter().zip(&state.models).filter_map(|(m, s)| next_expiry(m, s, now)).min();
        for (mi, (model, ms)) in self.models.iter().zip(&state.models).enumerate() {
            let mut targets: SmallVec<[f64; 4]> = SmallVec::new();
            for ((_, t), ts) in model.thresholds.iter().zip(&ms.thresholds) {
                if ts.inside() {
                    targets.push(t.exit);
                }
            }
            if let Some(b) = ms.band.and_then(|b| model.bands.get(usize::from(b))) {
                targets.push(b.from);
            }
            // A value never falls below where decay leaves it in the end: skip targets
            // at or under that, which would otherwise be searched for nothing.
            let floor = self.limit_of(state, mi);
            for target in targets.into_iter().filter(|t| *t > floor) {
                let fast = |t| self.value_with(state, mi, t, Precision::Approximate);
                let exact = |t| self.value_with(state, mi, t, Precision::Exact);
                // Most models are a constant plus points under one half-life: solve for
                // the instant directly, then settle it exactly.
                let guess = self.linear_form(state, mi, now).and_then(|form| form.crossing(target));
                if let Some(at) = first_below(fast, exact, guess, target, now, horizon) {
                    wake = Some(wake.map_or(at, |w| w.min(at)));
                }
            }
        }
        if let Some(h) = horizon {
            wake = Some(wake.map_or(h, |w| w.min(h)));
        }
        wake
    }

    /// A score broken down by group and rule at `now`, with the recent ledger.
    pub fn explain(&self, state: &ContactScores, model: usize, now: Timestamp) -> Option<Explanation> {
        let m = self.models.get(model)?;
        let s = state.models.get(model)?;
        Some(Explanation {
            score: m.id.clone(),
            value: self.value_of(state, model, now),
            groups: m
                .groups
                .iter()
                .enumerate()
                .map(|(gi, g)| (g.name.clone(), group_value(m, s, gi, now, Precision::Exact)))
                .collect(),
            rules: s
                .rules
                .iter()
                .map(|r| {
                    let rule = &m.rules[r.rule as usize];
                    let group = &m.groups[rule.group];
                    let points = match group.window {
                        Some(window) => s.awards[rule.group]
                            .iter()
                            .filter(|a| a.rule == r.rule && in_window(a.at, now, window))
                            .map(|a| a.points)
                            .sum(),
                        None => r.contribution.value_at(now, &group.decay),
                    };
                    (rule.id.clone(), points)
                })
                .collect(),
            fit: s.fit,
            ledger: s.ledger.iter().cloned().collect(),
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
        let mut state = self.new_state(start);
        self.handle_attributes(&mut state, contact, start)?;
        for event in history {
            self.handle_event(&mut state, contact, event)?;
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
        contacts.into_iter().map(|(c, h)| self.recompute(c, h, start)).collect()
    }
}

/// A model's total at `now`: its groups decayed, plus fit points, within its bounds.
/// A value of the form `constant + decaying · 2^(-t / half_life)`.
#[derive(Clone, Copy, Debug)]
struct LinearForm {
    constant: f64,
    decaying: f64,
    half_life: Option<f64>,
}

impl LinearForm {
    fn scaled(self, w: f64) -> LinearForm {
        LinearForm { constant: self.constant * w, decaying: self.decaying * w, ..self }
    }

    /// Adds another form; `None` when their half-lives differ.
    fn merge(&mut self, other: LinearForm) -> Option<()> {
        match (self.half_life, other.half_life) {
            (Some(a), Some(b)) if a != b && other.decaying != 0.0 && self.decaying != 0.0 => return None,
            (None, Some(_)) => self.half_life = other.half_life,
            _ => {}
        }
        self.constant += other.constant;
        self.decaying += other.decaying;
        Some(())
    }

    /// Seconds from now until the value falls below `target`, estimated with the
    /// platform's `log2` (settled exactly by the caller).
    fn crossing(self, target: f64) -> Option<i64> {
        let h = self.half_life?;
        let excess = target - self.constant;
        if excess <= 0.0 || self.decaying <= excess {
            return None;
        }
        let t = h * (self.decaying / excess).log2();
        (0.0..4.0e11).contains(&t).then(|| t.ceil() as i64)
    }
}

/// Decisions use exact, portable arithmetic; searches for the instant of a decision may
/// first narrow it down with the platform's faster functions.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Precision {
    Exact,
    Approximate,
}

fn model_value(model: &ScoreModel, state: &ModelState, now: Timestamp, precision: Precision) -> f64 {
    clamp(model.bounds, raw_value(model, state, now, precision))
}

/// The groups' points plus fit points, before the model's bounds.
fn raw_value(model: &ScoreModel, state: &ModelState, now: Timestamp, precision: Precision) -> f64 {
    (0..model.groups.len()).map(|gi| group_value(model, state, gi, now, precision)).sum::<f64>() + state.fit
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
        Some(window) => {
            let sum: f64 =
                state.awards[group].iter().filter(|a| in_window(a.at, now, window)).map(|a| a.points).sum();
            clamp(g.bounds, sum)
        }
        None => match precision {
            Precision::Exact => state.groups[group].value_at(now, &g.decay),
            Precision::Approximate => {
                let cell = &state.groups[group];
                cell.stored() * g.decay.factor_approx(cell.updated_at(), now)
            }
        },
    }
}

/// Whether an award earned `at` still counts at `now`: the window is `(now - window, now]`.
fn in_window(at: Timestamp, now: Timestamp, window: Duration) -> bool {
    at <= now && now.checked_sub(window).is_none_or(|start| at > start)
}

/// Adds points to a timeframe group; returns the change that took effect.
fn add_windowed(
    state: &mut ModelState,
    group: usize,
    rule: u32,
    points: f64,
    now: Timestamp,
    window: Duration,
    bounds: Bounds,
) -> f64 {
    let awards = &mut state.awards[group];
    awards.retain(|a| in_window(a.at, now, window));
    let current: f64 = awards.iter().map(|a| a.points).sum();
    let applied = clamp(bounds, current + points) - clamp(bounds, current);
    if applied != 0.0 {
        awards.push(Award { at: now, points: applied, rule });
    }
    applied
}

/// The first instant after `now` at which a timeframe award expires.
fn next_expiry(model: &ScoreModel, state: &ModelState, now: Timestamp) -> Option<Timestamp> {
    model
        .groups
        .iter()
        .zip(&state.awards)
        .filter_map(|(g, awards)| {
            let window = g.window?;
            awards.iter().filter_map(|a| a.at.checked_add(window)).filter(|t| *t > now).min()
        })
        .min()
}

/// The part of `points` the model's total bounds let through at `now`.
fn within_total(model: &ScoreModel, state: &ModelState, now: Timestamp, points: f64) -> f64 {
    // Fit points sit on top and the total is clamped when read, so that the order of
    // fit changes and events never changes a score.
    let raw = raw_value(model, state, now, Precision::Exact) - state.fit;
    if points > 0.0 {
        model.bounds.cap.map_or(points, |cap| points.min((cap - raw).max(0.0)))
    } else {
        model.bounds.floor.map_or(points, |floor| points.max((floor - raw).min(0.0)))
    }
}

/// Whether a rule may award at `now` under its repeat policy and minimum interval.
fn allowed(
    state: &ModelState,
    rule: u32,
    repeat: Repeat,
    min_interval: Option<Duration>,
    now: Timestamp,
) -> bool {
    let Ok(pos) = state.rules.binary_search_by_key(&rule, |r| r.rule) else {
        return true;
    };
    let r = &state.rules[pos];
    if let (Some(gap), Some(last)) = (min_interval, r.awards.last()) {
        if now.duration_since(*last).is_some_and(|d| d < gap) {
            return false;
        }
    }
    match repeat {
        Repeat::EveryTime => true,
        Repeat::Once => !r.ever,
        Repeat::AtMost { max, per } => {
            let recent = r.awards.iter().filter(|t| now.duration_since(**t).is_some_and(|d| d < per)).count();
            recent < max as usize
        }
    }
}

/// Records an award: repeat-policy memory, the rule's contribution, the ledger.
fn record(
    model: &ScoreModel,
    state: &mut ModelState,
    rule: u32,
    delta: f64,
    now: Timestamp,
    event: Option<EventId>,
) {
    let point_rule = &model.rules[rule as usize];
    let group = point_rule.group;
    let decay = &model.groups[group].decay;
    // Bring every contribution in the group to `now`, as the group itself just was:
    // their sum then decays exactly like the group, whatever the decay (step decay
    // counts periods from the last write).
    for r in state.rules.iter_mut() {
        if model.rules[r.rule as usize].group == group {
            let v = r.contribution.value_at(now, decay);
            r.contribution = ScoreCell::new(now);
            let _ = r.contribution.add(v, now, &Decay::None, Bounds::NONE);
        }
    }
    let keep = match point_rule.repeat {
        Repeat::AtMost { max, .. } => (max as usize).max(1),
        Repeat::EveryTime | Repeat::Once => 1,
    };
    let id = point_rule.id.clone();
    let pos = match state.rules.binary_search_by_key(&rule, |r| r.rule) {
        Ok(p) => p,
        Err(p) => {
            state.rules.insert(
                p,
                RuleState { rule, awards: SmallVec::new(), ever: false, contribution: ScoreCell::new(now) },
            );
            p
        }
    };
    let r = &mut state.rules[pos];
    r.ever = true;
    r.awards.push(now);
    // Keep only what the repeat policy can still need: the last `max` instants for
    // "at most max per window", the last one for the minimum interval.
    if r.awards.len() > keep {
        r.awards.drain(..r.awards.len() - keep);
    }
    let _ = r.contribution.add(delta, now, decay, Bounds::NONE);
    push_ledger(state, LedgerEntry { rule: id, delta, at: now, event });
}

fn push_ledger(state: &mut ModelState, entry: LedgerEntry) {
    if state.ledger.len() == LEDGER_LEN {
        state.ledger.pop_front();
    }
    state.ledger.push_back(entry);
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

/// The first whole second after `since` at which the non-increasing `exact` value is
/// below `target`, searched no further than `horizon` (`None`: not before then, or
/// never). `fast` approximates `exact` cheaply and narrows the search; the answer is
/// then settled with `exact` alone, so it is the same on every platform.
fn first_below(
    fast: impl Fn(Timestamp) -> f64,
    exact: impl Fn(Timestamp) -> f64,
    guess: Option<i64>,
    target: f64,
    since: Timestamp,
    horizon: Option<Timestamp>,
) -> Option<Timestamp> {
    let at = |secs: i64| Duration::from_secs(secs).ok().and_then(|d| since.checked_add(d));
    let limit = horizon.and_then(|h| h.duration_since(since)).map(|d| d.seconds()).unwrap_or(400_000_000_000);
    let exact_below = |secs: i64| at(secs).is_none_or(|t| exact(t) < target);
    if exact_below(0) {
        return None;
    }
    let fast_below = |secs: i64| at(secs).is_none_or(|t| fast(t) < target);
    let guess = match guess {
        Some(g) => g.clamp(1, limit),
        None => {
            // Narrow down with the fast function: exponential search, then bisection.
            let mut hi: i64 = 1;
            while !fast_below(hi) {
                if hi >= limit {
                    break;
                }
                hi = hi.saturating_mul(2).min(limit);
            }
            let mut lo = 0;
            while hi - lo > 1 {
                let mid = lo + (hi - lo) / 2;
                if fast_below(mid) {
                    hi = mid;
                } else {
                    lo = mid;
                }
            }
            hi
        }
    };
    // Settle with the exact function around the estimate: widen a bracket until it holds
    // the crossing, then bisect.
    let (mut lo, mut hi) = (guess - 1, guess);
    let mut step = 1i64;
    while lo > 0 && exact_below(lo) {
        hi = lo;
        step = step.saturating_mul(2);
        lo = (guess - step).max(0);
    }
    let mut step = 1i64;
    while !exact_below(hi) {
        if hi >= limit {
            return None;
        }
        lo = hi;
        step = step.saturating_mul(2);
        hi = guess.saturating_add(step).min(limit);
    }
    while hi - lo > 1 {
        let mid = lo + (hi - lo) / 2;
        if exact_below(mid) {
            hi = mid;
        } else {
            lo = mid;
        }
    }
    at(hi)
}
