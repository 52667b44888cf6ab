//! Events: matching point rules, awarding points under caps and repeat policies, late
//! events credited at their own instant, batches, and manual adjustments.

use super::read::*;
use super::*;
use crate::expr::Activation;
use crate::id::EventTypeIndex;
use crate::schema::{Contact, Event};
use crate::scoring::cell::{ScoreCell, ScoreError};
use crate::scoring::model::{PointRule, ScoreModel, Trigger};
use crate::scoring::state::{Award, ContactScores, ModelState, StoredEntry};
use crate::scoring::wake::Start;
use crate::time::{Duration, Timestamp};
use crate::value::Value;

impl Scorer {
    /// The values `score.NAME` reads at `now`, in schema order (none when no rule reads
    /// a score).
    pub(super) fn bind_scores(&self, state: &ContactScores, now: Timestamp, out: &mut Vec<Option<Value>>) {
        out.clear();
        if self.reads_scores {
            out.extend(
                self.score_models
                    .iter()
                    .map(|model| model.map(|m| Value::Double(self.value_of(state, m, now)))),
            );
        }
    }

    /// Feeds every model's value at `now` to its thresholds and bands, using the group
    /// values an event already settled; then computes and remembers the wake-up.
    pub(super) fn observe_all(&self, state: &mut ContactScores, now: Timestamp, scratch: &mut ScoreScratch) {
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
        // A wake-up remembered from an earlier change stays while no score can fall
        // below its level before it (a change that only raised scores, far from their
        // levels): the exact one is computed at that wake-up, or when a change brings
        // a score near a level.
        let remembered = state.check_from();
        let next = if self.no_exit_before(state, now, remembered) {
            state.remembered_wake()
        } else {
            let next = self.wake_after(state, Start { since: now, above: true });
            state.set_check_from(next.unwrap_or(Timestamp::MAX));
            next
        };
        scratch.update.next_wake = next;
    }

    /// Applies an event: every engagement rule of its type whose condition holds awards
    /// its points (subject to its repeat policy), in rule order; then thresholds and
    /// bands are checked. The update is left in `scratch` and borrowed from it, valid
    /// until the scratch is used again, so a hot loop allocates nothing per event.
    ///
    /// A late event, older than the state's last change, is applied at that last change:
    /// its points are credited as if earned at the event's own instant (decayed since; a
    /// timeframe award keeps its own expiry, or is nothing if already expired) and
    /// counters count it at its own instant; conditions, repeat policies, caps and
    /// thresholds are applied as of the last change, and crossings are reported then.
    /// A host that refuses late events compares [`Event::at`] with
    /// [`ContactScores::last_change`] first (the engine does, with its lateness limit).
    ///
    /// # Errors
    ///
    /// [`ScoreError::ForeignState`] for a state of another scorer's shape,
    /// [`ScoreError::NotFinite`] when the points cannot be represented; the state is left
    /// unchanged.
    pub fn handle_event<'s>(
        &self,
        state: &mut ContactScores,
        contact: &Contact,
        event: &Event,
        scratch: &'s mut ScoreScratch,
    ) -> Result<&'s ScoreUpdate, ScoreError> {
        self.apply_event_at(state, contact, event, scratch)?;
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
            match self.apply_event_at(state, item.contact, item.event, scratch) {
                Ok(()) => sink(i, Ok(&scratch.update)),
                Err(e) => sink(i, Err(e)),
            }
        }
    }

    /// The event step at `max(event instant, last change)`.
    pub(super) fn apply_event_at(
        &self,
        state: &mut ContactScores,
        contact: &Contact,
        event: &Event,
        scratch: &mut ScoreScratch,
    ) -> Result<(), ScoreError> {
        scratch.update.clear();
        let earned = event.at();
        let now = earned.max(state.last_change());
        if !self.fits(state) {
            return Err(ScoreError::ForeignState);
        }
        if !self.counters.is_empty() {
            let counters = state.extra.counters_mut(|| self.counters.new_state());
            self.counters.observe(counters, contact, event);
            self.counters.values(counters, now, &mut scratch.counts);
        }
        // `score.NAME` reads the scores as they stand before this event.
        self.bind_scores(state, now, &mut scratch.scores);
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
            self.indexes[mi].candidates(event, Some(contact.attributes().slots()), &mut scratch.candidates);
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
                    let history = state.extra.history_mut(|| self.new_history());
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
        if changed || state.check_from() <= now {
            self.observe_all(state, now, scratch);
        } else {
            scratch.update.next_wake = state.remembered_wake();
        }
        state.set_last(now);
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
        if self.models.get(model).is_some_and(|m| m.combine.is_empty() && !m.groups.is_empty()) {
            return self.adjust_group(state, model, 0, points, now);
        }
        // A combined model, or one without groups, has no points of its own: only the
        // time moves on (crossings and bands that decay brought are still reported).
        if !points.is_finite() {
            return Err(ScoreError::NotFinite);
        }
        if now < state.last_change() {
            return Err(ScoreError::OutOfOrder);
        }
        if !self.fits(state) {
            return Err(ScoreError::ForeignState);
        }
        let mut scratch = ScoreScratch::default();
        scratch.settled.resize(self.models.len(), false);
        self.observe_all(state, now, &mut scratch);
        state.set_last(now);
        Ok(scratch.update)
    }
}

/// Brings a model's groups to `now` in `values[at..]` (exactly as [`group_value`]), and
/// their decay factors since their last writes in `factors[at..]`.
pub(super) fn settle(
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
                let cell = state.group(gi);
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
pub(super) fn award(
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
            state.retain_awards(|a| usize::from(a.group) != g || in_window(a.at, now, window));
            let current = window_sum(state, g, now, window);
            let applied = clamp(bounds, current + points) - clamp(bounds, current);
            if !applied.is_finite() {
                return Err(ScoreError::NotFinite);
            }
            if applied != 0.0 {
                let group = u16::try_from(g).map_err(|_| ScoreError::NotFinite)?;
                let awards = state.awards_mut();
                awards.push(Award { at: earned, points: applied, rule: index, group });
                bound_awards(awards, group);
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
            state.set_group(g, ScoreCell::written(next, now));
            values[g] = next;
            Ok(next - current)
        }
    }
}

/// When points are credited (`now`) and when they were earned (`at`; earlier for a
/// late event).
#[derive(Clone, Copy, Debug)]
pub(super) struct Earned {
    now: Timestamp,
    at: Timestamp,
}

impl Scorer {
    /// [`Scorer::adjust`] into the group at position `group` of the model (its
    /// declaration order; [`Scorer::group_index`] finds it by id): the points are held,
    /// capped and decayed by that group.
    ///
    /// # Errors
    ///
    /// As [`Scorer::adjust`]; [`ScoreError::ForeignState`] also for a group the model
    /// does not have. Nothing changes.
    pub fn adjust_group(
        &self,
        state: &mut ContactScores,
        model: usize,
        group: usize,
        points: f64,
        now: Timestamp,
    ) -> Result<ScoreUpdate, ScoreError> {
        if !points.is_finite() {
            return Err(ScoreError::NotFinite);
        }
        if now < state.last_change() {
            return Err(ScoreError::OutOfOrder);
        }
        let Some(m) = self.models.get(model).filter(|m| m.combine.is_empty() && group < m.groups.len())
        else {
            return Err(ScoreError::ForeignState);
        };
        if !self.fits(state) {
            return Err(ScoreError::ForeignState);
        }
        let mut scratch = ScoreScratch::default();
        scratch.settled.resize(self.models.len(), false);
        let at = self.group_offsets[model];
        settle(m, &state.models[model], now, &mut scratch.values, &mut scratch.factors, at);
        scratch.settled[model] = true;
        let mut rule = PointRule::on_event(ADJUSTMENT, EventTypeIndex(0), None, points);
        rule.group = group;
        let values = &mut scratch.values[at..at + m.groups.len()];
        let delta = award(m, &mut state.models[model], &rule, ADJUSTED, Earned { now, at: now }, values)?;
        if self.ledger_len > 0 {
            let history = state.extra.history_mut(|| self.new_history());
            let h = &mut history.models[model];
            let factor = scratch.factors[at + group];
            if factor != 1.0 {
                h.decay_group(group, factor);
            }
            if m.groups[group].window.is_none() {
                h.contribute(ADJUSTED, group, delta);
            }
            h.push(StoredEntry { rule: ADJUSTED, delta, at: now, event: None }, self.ledger_len);
        }
        self.observe_all(state, now, &mut scratch);
        state.set_last(now);
        Ok(scratch.update)
    }

    /// The position of the group with id `group` in a model (`None`: no such model or
    /// group). A model declared without groups has one, `"default"`.
    pub fn group_index(&self, model: usize, group: &str) -> Option<usize> {
        self.models.get(model)?.groups.iter().position(|g| g.name == group)
    }
}

/// Whether an award earned `at` still counts at `now`: the window is `(now - window, now]`.
pub(super) fn in_window(at: Timestamp, now: Timestamp, window: Duration) -> bool {
    at <= now && now.checked_sub(window).is_none_or(|start| at > start)
}

/// Whether a rule may award at `now` under its repeat policy.
pub(super) fn allowed(state: &ModelState, index: u32, rule: &PointRule, now: Timestamp) -> bool {
    if !rule.policy.needs_memory() {
        return true;
    }
    state.rules.allows(index, &rule.policy, now)
}

/// Records an award in the rule's repeat-policy memory.
pub(super) fn remember(state: &mut ModelState, index: u32, rule: &PointRule, now: Timestamp) {
    if !rule.policy.needs_memory() {
        return;
    }
    state.rules.record(index, &rule.policy, now);
}

/// Feeds the model's value at `now` to its thresholds and bands.
pub(super) fn observe(model: &ScoreModel, state: &mut ModelState, value: f64, update: &mut ScoreUpdate) {
    for (i, (name, t)) in model.thresholds.iter().enumerate().take(state.threshold_count()) {
        let before = state.threshold(i);
        let mut ts = before;
        let crossing = ts.observe(t, value);
        if ts != before {
            state.set_threshold(i, ts);
        }
        if let Some(c) = crossing {
            update.crossings.push((model.id.clone(), name.clone(), c));
        }
    }
    let band = model.band_after(state.band, value);
    if band != state.band {
        let name = |b: Option<u16>| b.and_then(|i| model.bands.get(usize::from(i))).map(|b| b.name.clone());
        update.band_changes.push((model.id.clone(), name(state.band), name(band)));
        state.band = band;
    }
}

/// Keeps at most [`MAX_TIMEFRAME_AWARDS`](crate::limits::MAX_TIMEFRAME_AWARDS) awards of
/// `group`: the two oldest merge into one at the later instant (points kept, expiring
/// with the later of the two).
fn bound_awards(awards: &mut Vec<Award>, group: u16) {
    let mut of_group = awards.iter().filter(|a| a.group == group).count();
    while of_group > crate::limits::MAX_TIMEFRAME_AWARDS {
        let mut oldest = awards.iter().enumerate().filter(|(_, a)| a.group == group);
        let (Some((i, _)), Some((j, _))) = (oldest.next(), oldest.next()) else {
            return;
        };
        let (a, b) = (awards[i], awards[j]);
        let (earlier, later) = if a.at <= b.at { (a, b) } else { (b, a) };
        awards[j] = Award { at: later.at, points: earlier.points + later.points, rule: later.rule, group };
        awards.remove(i);
        of_group -= 1;
    }
}
