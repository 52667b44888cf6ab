//! The cascade: segments re-evaluated, then the rules that listen for a round's
//! changes (crossings, attribute changes, segment entries and exits), round after round
//! up to the limit.

use super::step::*;
use super::*;
use crate::def::Direction;
use crate::expr::Activation;
use crate::program::Rule;
use crate::repeat::RepeatPolicy;
use crate::schema::Contact;
use crate::scoring::{Crossing, ScoreUpdate};
use crate::time::Timestamp;
use crate::trigger::Trigger;
use crate::value::Value;

/// Who performs an action: a rule (and the action's position), or a journey step.
pub(super) enum Performer<'p> {
    Rule { rule: &'p Rule, index: u32 },
    Journey(super::journey::StepAction<'p>),
}

/// Whether a trigger listens for one of a round's changes.
pub(super) fn listens(trigger: &Trigger, changes: &[Change], segment_changes: &[(usize, Direction)]) -> bool {
    match trigger {
        Trigger::Threshold { model, threshold, direction } => changes.iter().any(|c| {
            matches!(c, Change::Crossing { model: m, threshold: t, direction: d } if m == model && t == threshold && d == direction)
        }),
        Trigger::Band { model, band, direction } => changes.iter().any(|c| {
            matches!(c, Change::Band { model: m, band: Some(b), direction: d } if m == model && b == band && d == direction)
        }),
        Trigger::Attribute { field, from, to } => changes.iter().any(|c| {
            matches!(c, Change::Attribute { field: f, from: old, to: new }
                if f == field && from.as_ref().is_none_or(|v| old.as_ref() == Some(v)) && to.as_ref().is_none_or(|v| new.as_ref() == Some(v)))
        }),
        Trigger::Segment { segment, direction } => {
            segment_changes.iter().any(|(s, d)| s == segment && d == direction)
        }
        Trigger::Tag { .. } | Trigger::List { .. } | Trigger::Stage { .. } | Trigger::Owner { .. } => {
            changes.iter().any(|c| listens_to_state(trigger, c))
        }
        _ => false,
    }
}

impl Engine {
    /// Runs the cascade of step 5 until nothing more changes, or [`MAX_CASCADE`] rounds.
    pub(super) fn cascade(
        &self,
        state: &mut ContactState,
        step: &mut Step<'_>,
        scratch: &mut EngineScratch,
    ) -> Result<(), EngineError> {
        for _round in 0..MAX_CASCADE {
            // Nothing changed and no segments to re-check: the usual case, done at once.
            if step.changes.is_empty() && self.program.segments().is_empty() {
                return Ok(());
            }
            let changes = std::mem::take(&mut step.changes);
            // Fit rules see attribute changes.
            if changes.iter().any(|c| matches!(c, Change::Attribute { .. })) {
                if let (Some(scorer), Some(scores)) = (self.program.scorer(), state.scores.as_mut()) {
                    let update = scorer.handle_attributes(scores, &step.contact, step.now)?;
                    self.score_effects(step, &update);
                }
            }
            self.bind_values(state, step.now, scratch);
            // Segments, re-evaluated on the state as it now stands.
            self.evaluate_segments(&step.contact, step.now, scratch);
            self.segment_errors(step, scratch);
            // Memberships updated in place: nothing is allocated unless one changes.
            let mut segment_changes = Vec::new();
            for ((i, segment), value) in self.program.segments().iter().enumerate().zip(&scratch.segments) {
                let is = matches!(value, Some(Value::Bool(true)));
                if state.segments.contains(segment.id()) != is {
                    segment_changes.push((i, if is { Direction::Up } else { Direction::Down }));
                    if is {
                        state.segments.insert(segment.id().to_string());
                    } else {
                        state.segments.remove(segment.id());
                    }
                }
            }
            if changes.is_empty() && segment_changes.is_empty() {
                return Ok(());
            }
            for &(i, direction) in &segment_changes {
                let id =
                    self.program.segments().iter().nth(i).map(|s| s.id().to_string()).unwrap_or_default();
                let dir: &[u8] = if direction == Direction::Up { b"enter" } else { b"exit" };
                let parts: [&[u8]; 3] = [b"segment", id.as_bytes(), dir];
                let effect = step.effect(
                    &parts,
                    Status::Ready,
                    if direction == Direction::Up {
                        EffectKind::SegmentEntered { segment: id.clone() }
                    } else {
                        EffectKind::SegmentExited { segment: id.clone() }
                    },
                );
                step.outcome.effects.push(effect);
            }
            // Rules listening for these changes, in rule order per change.
            let rules = self.program.rules();
            for rule in self.listening.iter().map(|&i| &rules[i]) {
                let listens = listens(rule.trigger(), &changes, &segment_changes);
                if listens && self.holds(rule, scratch, state, step) {
                    self.fire(state, rule, step)?;
                }
            }
            // Journeys entered on these changes (entered after the cascade).
            self.journey_entries(&changes, &segment_changes, step);
        }
        if !step.changes.is_empty() {
            step.emit(&[b"cascade"], EffectKind::CascadeLimit { rounds: MAX_CASCADE as u32 });
            step.changes.clear();
        }
        Ok(())
    }

    /// The state's memberships as values, in the schema's segment order.
    pub(super) fn member_values(&self, state: &ContactState, out: &mut Vec<Option<Value>>) {
        out.clear();
        out.extend(
            self.program.segments().iter().map(|s| Some(Value::Bool(state.segments.contains(s.id())))),
        );
    }

    /// Memberships from evaluated values.
    pub(super) fn members(&self, values: &[Option<Value>]) -> std::collections::BTreeSet<String> {
        self.program
            .segments()
            .iter()
            .zip(values)
            .filter(|(_, v)| matches!(v, Some(Value::Bool(true))))
            .map(|(s, _)| s.id().to_string())
            .collect()
    }

    /// Evaluates every segment into `scratch.segments` (counts and scores bound); the
    /// conditions that failed go to `scratch.segment_errors`.
    pub(super) fn evaluate_segments(&self, contact: &Contact, now: Timestamp, scratch: &mut EngineScratch) {
        let (counts, scores, vars) = (&scratch.counts, &scratch.scores, &scratch.vars);
        self.program.segments().evaluate(
            |condition, members| {
                let activation = Activation::new()
                    .with_contact(contact)
                    .with_now(now)
                    .with_counters(counts)
                    .with_scores(scores)
                    .with_segments(members)
                    .with_var_slots(vars);
                condition.eval_bool(&activation)
            },
            &mut scratch.segments,
            &mut scratch.segment_errors,
        );
    }

    /// Reports the segment conditions that failed in the last evaluation as
    /// `SegmentError` effects, once per segment per step.
    pub(super) fn segment_errors(&self, step: &mut Step<'_>, scratch: &EngineScratch) {
        for (i, error) in &scratch.segment_errors {
            if step.segment_errors.contains(i) {
                continue;
            }
            step.segment_errors.push(*i);
            let id = self.program.segments().iter().nth(*i).map(|s| s.id().to_string()).unwrap_or_default();
            let parts: [&[u8]; 2] = [b"segment-error", id.as_bytes()];
            step.emit(&parts, EffectKind::SegmentError { segment: id.clone(), message: error.to_string() });
        }
    }

    /// Whether a rule not started by an event may fire now: its condition holds and its
    /// repeat policy allows. A condition error becomes a `RuleError` effect.
    pub(super) fn holds(
        &self,
        rule: &Rule,
        scratch: &EngineScratch,
        state: &ContactState,
        step: &mut Step<'_>,
    ) -> bool {
        let now = step.now;
        if !rule.enabled() || !self.allowed(state, rule, now, &step.contact) {
            return false;
        }
        let Some(condition) = rule.condition() else {
            return true;
        };
        let activation = scratch.activation(&step.contact, now);
        let result = condition.eval_bool(&activation);
        match result {
            Ok(holds) => holds,
            Err(error) => {
                let kind = EffectKind::RuleError { rule: rule.id().clone(), message: error.to_string() };
                step.emit(&[b"error", rule.id().as_str().as_bytes()], kind);
                false
            }
        }
    }

    /// Whether a rule's repeat policy lets it fire at `now` (a calendar cap counts in
    /// the contact's zone).
    pub(super) fn allowed(
        &self,
        state: &ContactState,
        rule: &Rule,
        now: Timestamp,
        contact: &Contact,
    ) -> bool {
        RepeatPolicy::new(rule.repeat()).allows_for(state.fired.get(rule.id().as_str()), now, contact)
    }

    /// Fires a rule: its repeat memory, then each action as an effect (state-changing
    /// actions applied, their changes queued for the cascade).
    pub(super) fn fire(
        &self,
        state: &mut ContactState,
        rule: &Rule,
        step: &mut Step<'_>,
    ) -> Result<(), EngineError> {
        // Stop before the effects grow past the limit (one rule adds a bounded number).
        self.check_effects(step)?;
        let now = step.now;
        let policy = RepeatPolicy::new(rule.repeat());
        if policy.needs_memory() {
            policy.record(state.fired.entry(rule.id().as_str().to_string()).or_default(), now);
        }
        for (position, action) in rule.actions().iter().enumerate() {
            let index = u32::try_from(position).unwrap_or(u32::MAX);
            // Computed fields (`expr`, `params`) evaluated now (`engine::computed`).
            let (action, params) = match self.compute(state, rule, position, action, step) {
                Ok(computed) => computed,
                Err(message) => {
                    let kind = EffectKind::RuleError { rule: rule.id().clone(), message };
                    step.emit(&[b"error", rule.id().as_str().as_bytes(), &index.to_le_bytes()], kind);
                    continue;
                }
            };
            self.perform(state, action.as_ref(), params, Performer::Rule { rule, index }, step);
        }
        Ok(())
    }

    /// Performs one action of a rule or a journey step: applies it, then emits its
    /// effect with the send policy's and the approval's decision
    /// ([`Engine::emit_action`]), or an error effect when it cannot apply. The one
    /// path every action takes.
    pub(super) fn perform(
        &self,
        state: &mut ContactState,
        action: &crate::def::ActionDef,
        params: std::collections::BTreeMap<String, serde_json::Value>,
        by: Performer<'_>,
        step: &mut Step<'_>,
    ) {
        // An action held for approval changes nothing until it is approved.
        let applied = if action.needs_approval() { Ok(()) } else { self.apply(state, action, step) };
        if let Err(message) = applied {
            match by {
                Performer::Rule { rule, index } => {
                    let kind = EffectKind::RuleError { rule: rule.id().clone(), message };
                    step.emit(&[b"error", rule.id().as_str().as_bytes(), &index.to_le_bytes()], kind);
                }
                Performer::Journey(j) => {
                    let effect = j.error(step, message);
                    step.outcome.effects.push(effect);
                }
            }
            return;
        }
        let mut effect = match by {
            Performer::Rule { rule, index } => step.effect(
                &[b"action", rule.id().as_str().as_bytes(), &index.to_le_bytes()],
                Status::Ready,
                EffectKind::Action { rule: rule.id().clone(), index, action: action.clone() },
            ),
            Performer::Journey(j) => j.effect(step, Status::Ready, action),
        };
        effect.params = params;
        // The send policy and approvals decide the status (`engine::policy`).
        self.emit_action(state, step, effect);
    }

    /// Threshold crossings and band changes as effects, queued for the cascade.
    pub(super) fn score_effects(&self, step: &mut Step<'_>, update: &ScoreUpdate) {
        let model_of = |score: &crate::id::ScoreId| {
            self.program
                .scorer()
                .and_then(|s| s.models().iter().position(|m| m.id() == score))
                .unwrap_or(usize::MAX)
        };
        for (score, threshold, direction) in &update.crossings {
            let (dir, d): (&[u8], Direction) = match direction {
                Crossing::Up => (b"up", Direction::Up),
                Crossing::Down => (b"down", Direction::Down),
            };
            let kind = EffectKind::ThresholdCrossed {
                score: score.clone(),
                threshold: threshold.clone(),
                direction: *direction,
            };
            step.emit(&[b"threshold", score.as_str().as_bytes(), threshold.as_bytes(), dir], kind);
            step.changes.push(Change::Crossing {
                model: model_of(score),
                threshold: threshold.clone(),
                direction: d,
            });
        }
        for (score, from, to) in &update.band_changes {
            let kind = EffectKind::BandChanged { score: score.clone(), from: from.clone(), to: to.clone() };
            step.emit(&[b"band", score.as_str().as_bytes(), to.as_deref().unwrap_or("").as_bytes()], kind);
            let model = model_of(score);
            step.changes.push(Change::Band { model, band: from.clone(), direction: Direction::Down });
            step.changes.push(Change::Band { model, band: to.clone(), direction: Direction::Up });
        }
    }
}

/// Whether a tag, list, stage or owner trigger listens for a change: `"*"` names any
/// tag (list, stage, owner); entering is added (becoming), leaving is removed (changing
/// away).
fn listens_to_state(trigger: &Trigger, change: &Change) -> bool {
    let named = |want: &str, got: &str| want == "*" || want == got;
    // A change from `from` to `to` enters `want` when it becomes it, leaves it when it
    // was it.
    let moved =
        |want: &str, direction: &Direction, from: &Option<String>, to: &Option<String>| match direction {
            Direction::Up => to.as_deref().is_some_and(|t| named(want, t)),
            Direction::Down => from.as_deref().is_some_and(|f| named(want, f)),
        };
    match (trigger, change) {
        (Trigger::Tag { tag, direction }, Change::Tag { tag: t, added }) => {
            named(tag, t) && *added == (*direction == Direction::Up)
        }
        (Trigger::List { list, direction }, Change::List { list: l, added }) => {
            named(list, l) && *added == (*direction == Direction::Up)
        }
        (Trigger::Stage { stage, direction }, Change::Stage { from, to }) => {
            moved(stage, direction, from, to)
        }
        (Trigger::Owner { owner, direction }, Change::Owner { from, to }) => {
            moved(owner, direction, from, to)
        }
        _ => false,
    }
}

impl Engine {
    /// Holds an effect for approval. Approvals are bounded per contact: past
    /// `Limits::max_pending_approvals` the oldest expires, reported with the rule that
    /// was waiting for it.
    pub(super) fn hold_for_approval(&self, state: &mut ContactState, step: &mut Step<'_>, effect: &Effect) {
        let limit = self.program.limits().max_pending_approvals;
        while !state.pending.is_empty() && state.pending.len() >= limit {
            let expired = state.pending.remove(0);
            let waiting = match &expired.kind {
                EffectKind::Action { rule, .. } => rule.clone(),
                EffectKind::RuleError { rule, .. } => rule.clone(),
                _ => continue,
            };
            let message = format!(
                "approval expired unanswered: more than {limit} effects awaited approval \
                 (Limits::max_pending_approvals); the oldest, key {}, was dropped",
                expired.key
            );
            let kind = EffectKind::RuleError { rule: waiting, message };
            step.emit(&[b"approval-expired", &expired.key.to_string().into_bytes()], kind);
        }
        if limit > 0 {
            state.pending.push(effect.clone());
        }
    }
}
