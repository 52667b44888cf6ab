//! One step: an event, an attribute change or a timeout in; effects and the next wake-up
//! out. Each entry point checks the state, runs the pipeline and finishes in one place.

use super::*;
use crate::def::Direction;
use crate::expr::Activation;
use crate::id::ContactId;
use crate::schema::{Contact, Event};
use crate::scoring::ScoreError;
use crate::time::Timestamp;
use crate::trigger::Trigger;
use crate::value::Value;
use effect::key_of;

impl Engine {
    /// Handles one event for the contact whose state this is.
    ///
    /// # Errors
    ///
    /// [`EngineError`] when the event is for another contact, older than the state's
    /// last change, or the state is of another format or program; nothing changes.
    fn handle_event_inner(
        &self,
        state: &mut ContactState,
        contact: &Contact,
        event: &Event,
        scratch: &mut EngineScratch,
    ) -> Result<Outcome, EngineError> {
        // The state was checked against the program by `handle_event`: the ids remain.
        self.check_id(state, event.contact())?;
        self.check_id(state, contact.id())?;
        self.check_contact(contact)?;
        if let Some(late) = state.last.duration_since(event.at()).filter(|d| *d > crate::time::Duration::ZERO)
        {
            if late > self.max_lateness {
                return Err(EngineError::TooLate { late, limit: self.max_lateness });
            }
        }
        // A keyed event (`schema.keys`) whose key was seen is a duplicate too.
        let print = state::fingerprint(event.id());
        let key = self.memory_key(event);
        if state.has_seen_print(event.id(), print)
            || key.is_some_and(|k| super::keyed::seen_key(state, event, k))
        {
            let next_wake = self.wake_after(state, contact, state.last);
            return Ok(Outcome { next_wake, duplicate: true, ..Outcome::default() });
        }
        if let Some(key) = key {
            super::keyed::remember_key(state, event, key);
        }
        // A late event is handled at the contact's last change: nothing is dated back.
        let now = event.at().max(state.last);
        let mut step = Step::new(state, Cause::Event(event.id().clone()), now, contact);
        step.event = Some(event);
        self.release_due(state, &mut step);
        // 2. Scores (first: a refused event changes nothing).
        if let (Some(scorer), Some(scores)) = (self.program.scorer(), state.scores.as_mut()) {
            let update = scorer.handle_event(scores, contact, event, &mut scratch.scoring)?;
            self.score_effects(&mut step, update);
        }
        // Not among the recent ids (checked above): remembered without a second search.
        state.remember_new(print, self.dedup_window);
        // 3. Counters and activity.
        self.program.counters().observe(&mut state.counters, contact, event);
        let type_name = event.type_name().as_str();
        for name in [type_name, "*"] {
            match state.last_seen.get_mut(name) {
                Some(seen) => *seen = (*seen).max(event.at()),
                None => {
                    state.last_seen.insert(name.to_string(), event.at());
                }
            }
        }
        if !state.quiet.is_empty() {
            state.quiet.retain(|id| {
                !self.program.rule_by_id(id).is_some_and(|r| match self.program.rule(r).trigger() {
                    Trigger::Inactivity { event_type: Some(t), .. } => *t == event.event_type(),
                    _ => true,
                })
            });
        }
        // Consent and do-not-contact changes the policy names for this event.
        self.policy_event(state, event, now);
        // 4. Event rules (nothing to prepare when no rule is on this event type).
        // The matched rules, in a buffer the scratch keeps (no allocation per event).
        let mut matched = std::mem::take(&mut scratch.matched);
        matched.clear();
        if self.program.has_event_rules_for(event.event_type()) {
            self.bind_values(state, now, scratch);
            self.member_values(state, &mut scratch.segments);
            // Field by field: the matcher borrows the scratch's match buffers mutably.
            let activation = Activation::new()
                .with_contact(contact)
                .with_event(event)
                .with_now(now)
                .with_counters(&scratch.counts)
                .with_scores(&scratch.scores)
                .with_segments(&scratch.segments)
                .with_var_slots(&scratch.vars);
            let matches = self.program.match_activation(event, &activation, &mut scratch.matching);
            for (rule, error) in matches.errors {
                let rule = self.program.rule(*rule);
                let kind = EffectKind::RuleError { rule: rule.id().clone(), message: error.to_string() };
                step.emit(&[b"error", rule.id().as_str().as_bytes()], kind);
            }
            matched.extend_from_slice(matches.rules);
        }
        for &rule in &matched {
            let rule = self.program.rule(rule);
            if self.allowed(state, rule, now, contact) {
                if let Err(e) = self.fire(state, rule, &mut step) {
                    scratch.matched = matched;
                    return Err(e);
                }
            }
        }
        scratch.matched = matched;
        // 5. Cascade, then the wake-up.
        self.finish(state, step, scratch)
    }

    /// Handles attributes the host changed (a CRM sync, a form the host processed):
    /// `before` is the contact as the state last saw it, `after` as it is now. Fit rules
    /// are re-scored, and every changed field starts the attribute rules listening for
    /// it (then the cascade runs, and segments are re-evaluated), at `now`.
    ///
    /// # Errors
    ///
    /// As [`Engine::handle_event`]: another contact, an instant before the state's last
    /// change, or a state of another format or program; nothing changes.
    fn handle_attribute_change_inner(
        &self,
        state: &mut ContactState,
        before: &Contact,
        after: &Contact,
        now: Timestamp,
        scratch: &mut EngineScratch,
    ) -> Result<Outcome, EngineError> {
        self.check_id(state, before.id())?;
        self.check_id(state, after.id())?;
        self.check_contact(before)?;
        self.check_contact(after)?;
        if now < state.last {
            return Err(ScoreError::OutOfOrder.into());
        }
        let mut step = Step::new(state, Cause::AttributeChange(now), now, after);
        self.release_due(state, &mut step);
        let (old, new) = (before.attributes().slots(), after.attributes().slots());
        for field in 0..old.len().max(new.len()) {
            let (from, to) = (old.get(field).cloned().flatten(), new.get(field).cloned().flatten());
            if from != to {
                step.changes.push(Change::Attribute { field: field as crate::schema::Slot, from, to });
            }
        }
        // The cascade re-scores fit rules for attribute changes, then starts the rules.
        self.finish(state, step, scratch)
    }

    /// Handles the passage of time to `now`: decay crossings, counted events leaving
    /// their windows, segment changes and inactivity deadlines.
    ///
    /// # Errors
    ///
    /// As [`Engine::handle_event`] for an instant before the state's last change.
    fn handle_timeout_inner(
        &self,
        state: &mut ContactState,
        contact: &Contact,
        now: Timestamp,
        scratch: &mut EngineScratch,
    ) -> Result<Outcome, EngineError> {
        self.check_id(state, contact.id())?;
        self.check_contact(contact)?;
        if now < state.last {
            return Err(ScoreError::OutOfOrder.into());
        }
        let mut step = Step::new(state, Cause::Timeout(now), now, contact);
        self.release_due(state, &mut step);
        if let (Some(scorer), Some(scores)) = (self.program.scorer(), state.scores.as_mut()) {
            let update = scorer.handle_timeout(scores, now)?;
            self.score_effects(&mut step, &update);
        }
        // Date and schedule occurrences since the last step, then inactivity deadlines
        // that have come, in rule order.
        let since = state.last;
        let rules = self.program.rules();
        for rule in self.timed.iter().map(|&i| &rules[i]).filter(|r| r.trigger().is_calendar()) {
            // Every missed occurrence fires, up to the most recent `MAX_CATCH_UP`.
            let fired = state.occurred.get(rule.id().as_str()).copied();
            let from = fired.map_or(since, |t| t.max(since));
            for occurrence in missed_occurrences(rule.trigger(), &step.contact, from, now) {
                state.occurred.insert(rule.id().as_str().to_string(), occurrence);
                self.bind_values(state, now, scratch);
                self.member_values(state, &mut scratch.segments);
                if self.holds(rule, scratch, state, &mut step) {
                    self.fire(state, rule, &mut step)?;
                }
            }
        }
        for rule in self.timed.iter().map(|&i| &rules[i]) {
            if let Some(deadline) = self.quiet_deadline(state, rule) {
                if deadline <= now {
                    state.quiet.insert(rule.id().as_str().to_string());
                    self.bind_values(state, now, scratch);
                    self.member_values(state, &mut scratch.segments);
                    if self.holds(rule, scratch, state, &mut step) {
                        self.fire(state, rule, &mut step)?;
                    }
                }
            }
        }
        self.finish(state, step, scratch)
    }

    /// Ends a step: the cascade, the journeys, the step's sends decided together, the
    /// step's instant as the state's last change, the wake-up, and the contact if
    /// actions changed it.
    pub(super) fn finish(
        &self,
        state: &mut ContactState,
        mut step: Step<'_>,
        scratch: &mut EngineScratch,
    ) -> Result<Outcome, EngineError> {
        self.cascade(state, &mut step, scratch)?;
        self.run_journeys(state, &mut step, scratch)?;
        self.decide_sends(state, &mut step);
        self.check_effects(&step)?;
        state.last = step.now;
        state.steps = state.steps.wrapping_add(1);
        if !Arc::ptr_eq(&state.fields, &self.fields) {
            // A format-1 state records the fields of the program it ran under now; a
            // loaded one (equal fields, checked) shares the engine's list from now on.
            state.fields.clone_from(&self.fields);
        }
        let mut outcome = step.outcome;
        outcome.next_wake = self.wake_after(state, &step.contact, step.now);
        if let std::borrow::Cow::Owned(c) = step.contact {
            outcome.contact = Some(c);
        }
        Ok(outcome)
    }

    /// Fails the step once it holds more effects than the limit allows.
    pub(super) fn check_effects(&self, step: &Step<'_>) -> Result<(), EngineError> {
        let limit = self.program.limits().max_effects_per_step;
        if step.outcome.effects.len() > limit {
            return Err(EngineError::TooManyEffects { limit });
        }
        Ok(())
    }

    /// The state is of this format, this contact and this program (score models by
    /// id, counters, contact fields by name, score state shape).
    pub(super) fn check(&self, state: &ContactState, contact: &ContactId) -> Result<(), EngineError> {
        if state.format != STATE_FORMAT {
            return Err(EngineError::Format(state.format));
        }
        if contact != &state.contact {
            return Err(EngineError::WrongContact { event: contact.clone(), state: state.contact.clone() });
        }
        if let Some(what) = self.misfit(state) {
            return Err(EngineError::OtherProgram { contact: state.contact.clone(), what });
        }
        Ok(())
    }

    /// The state is this contact's (the rest of [`Engine::check`] done already).
    pub(super) fn check_id(&self, state: &ContactState, contact: &ContactId) -> Result<(), EngineError> {
        if contact != &state.contact {
            return Err(EngineError::WrongContact { event: contact.clone(), state: state.contact.clone() });
        }
        Ok(())
    }

    /// The contact has as many attribute slots as the schema has contact fields.
    pub(super) fn check_contact(&self, contact: &Contact) -> Result<(), EngineError> {
        let (expected, found) =
            (self.program.schema().contact_fields().len(), contact.attributes().slots().len());
        if expected != found {
            return Err(EngineError::ContactSchema { contact: contact.id().clone(), expected, found });
        }
        Ok(())
    }

    /// Counts and scores at `now` into the scratch, for activations.
    pub(super) fn bind_values(&self, state: &ContactState, now: Timestamp, scratch: &mut EngineScratch) {
        self.program.counters().values(&state.counters, now, &mut scratch.counts);
        scratch.scores.clear();
        let scores = state.scores.as_ref().filter(|_| self.program.reads_scores());
        if let (Some(scorer), Some(scores)) = (self.program.scorer(), scores) {
            for model in &self.score_models {
                scratch.scores.push(model.and_then(|m| scorer.value(scores, m, now)).map(Value::Double));
            }
        }
        // `tags`, `bands.SCORE`, `stage`, `lists` and `owner`, in the order of
        // `ConditionNames`' engine names, only for programs that read them.
        scratch.vars.clear();
        if self.program.reads_engine_vars() {
            let tags = Value::list(state.tags.iter().map(|t| Value::from(t.as_str())));
            let mut bands = crate::value::Map::new();
            if let (Some(scorer), Some(scores)) = (self.program.scorer(), state.scores.as_ref()) {
                for (m, model) in scorer.models().iter().enumerate() {
                    if let Some(band) = scorer.band(scores, m, now) {
                        bands.insert(Value::from(model.id().as_str()), Value::from(band));
                    }
                }
            }
            scratch.vars.push(Some(tags));
            scratch.vars.push(Some(Value::Map(std::sync::Arc::new(bands))));
            // The lifecycle stage; empty before an action sets one.
            scratch.vars.push(Some(Value::from(state.stage.as_deref().unwrap_or(""))));
            // The static lists, and the owner (empty before one is assigned).
            scratch.vars.push(Some(Value::list(state.lists.iter().map(|l| Value::from(l.as_str())))));
            scratch.vars.push(Some(Value::from(state.owner.as_deref().unwrap_or(""))));
            debug_assert_eq!(scratch.vars.len(), ENGINE_VARS);
        }
    }
}

/// How many engine variables `bind_values` binds (`tags`, `bands`, `stage`, `lists`,
/// `owner`); a journey condition's `journey` takes the next slot.
pub(super) const ENGINE_VARS: usize = 5;

impl Engine {
    /// Handles one event for the contact whose state this is.
    ///
    /// A step is all or nothing: when it fails, `state` is left exactly as it was.
    ///
    /// # Errors
    ///
    /// [`EngineError`] when the event is for another contact, older than the state's
    /// last change, or the state is of another format or program, or a score cannot be
    /// computed; nothing changes.
    pub fn handle_event(
        &self,
        state: &mut ContactState,
        contact: &Contact,
        event: &Event,
        scratch: &mut EngineScratch,
    ) -> Result<Outcome, EngineError> {
        self.check(state, event.contact())?;
        let safe = self.cannot_fail_midway(state);
        atomically(safe, state, |state| self.handle_event_inner(state, contact, event, scratch))
    }

    /// Handles attributes the host changed (a CRM sync, a form the host processed):
    /// `before` is the contact as the state last saw it, `after` as it is now. Fit rules
    /// are re-scored, and every changed field starts the attribute rules listening for
    /// it (then the cascade runs, and segments are re-evaluated), at `now`.
    ///
    /// # Errors
    ///
    /// As [`Engine::handle_event`]: another contact, an instant before the state's last
    /// change, or a state of another format or program; nothing changes.
    pub fn handle_attribute_change(
        &self,
        state: &mut ContactState,
        before: &Contact,
        after: &Contact,
        now: Timestamp,
        scratch: &mut EngineScratch,
    ) -> Result<Outcome, EngineError> {
        self.check(state, before.id())?;
        let safe = self.cannot_fail_midway(state);
        atomically(safe, state, |state| {
            self.handle_attribute_change_inner(state, before, after, now, scratch)
        })
    }

    /// Handles the passage of time to `now`: decay crossings, counted events leaving
    /// their windows, segment changes and inactivity deadlines.
    ///
    /// # Errors
    ///
    /// As [`Engine::handle_event`] for an instant before the state's last change;
    /// nothing changes.
    pub fn handle_timeout(
        &self,
        state: &mut ContactState,
        contact: &Contact,
        now: Timestamp,
        scratch: &mut EngineScratch,
    ) -> Result<Outcome, EngineError> {
        self.check(state, contact.id())?;
        if now < state.last {
            return Err(ScoreError::OutOfOrder.into());
        }
        let safe = self.cannot_fail_midway(state);
        atomically(safe, state, |state| self.handle_timeout_inner(state, contact, now, scratch))
    }

    /// Whether no step on `state` can fail after changing it (see
    /// `Scorer::cannot_fail_midway`) and the program cannot reach the effects limit
    /// (`effects_always_fit`): everything else a step does after its checks cannot fail
    /// (action errors become effects).
    fn cannot_fail_midway(&self, state: &ContactState) -> bool {
        // The effects limit fails a step midway unless the program cannot reach it.
        if !self.effects_always_fit {
            return false;
        }
        match (self.program.scorer(), state.scores.as_ref()) {
            (Some(scorer), Some(scores)) => scorer.cannot_fail_midway(scores),
            _ => true,
        }
    }
}

/// Runs a step on `state`, restoring it as it was when the step fails: a step is all
/// or nothing (a failed event keeps no counter hit and no points of earlier rules).
/// When the step is `safe` (it can only fail before it changes anything, see
/// `Engine::cannot_fail_midway`) no copy is taken; otherwise the state is copied first
/// and restored on failure (`docs/decisions.md`, "Bounded points and caps, and
/// all-or-nothing steps"). Builds with debug assertions (the tests) always copy, and
/// check that a safe step that failed changed nothing.
fn atomically<T>(
    safe: bool,
    state: &mut ContactState,
    step: impl FnOnce(&mut ContactState) -> Result<T, EngineError>,
) -> Result<T, EngineError> {
    if safe && !cfg!(debug_assertions) {
        return step(state);
    }
    let saved = state.clone();
    let result = step(state);
    if result.is_err() {
        debug_assert!(!safe || *state == saved, "a step judged safe failed after changing the state");
        *state = saved;
    }
    result
}

/// A change inside one step that can start rules.
#[derive(Clone, Debug)]
pub(super) enum Change {
    Crossing {
        model: usize,
        threshold: String,
        direction: Direction,
    },
    Band {
        model: usize,
        band: Option<String>,
        direction: Direction,
    },
    Attribute {
        field: crate::schema::Slot,
        from: Option<Value>,
        to: Option<Value>,
    },
    /// A tag added (`true`) or removed.
    Tag {
        tag: String,
        added: bool,
    },
    /// A list joined (`true`) or left.
    List {
        list: String,
        added: bool,
    },
    Stage {
        from: Option<String>,
        to: Option<String>,
    },
    Owner {
        from: Option<String>,
        to: Option<String>,
    },
}

/// How often each key was given so far in a step. Most steps give a handful of effects:
/// those are counted in a small inline list (no allocation); past it, in a map, so
/// that a step's cost stays linear in its effects.
#[derive(Default)]
pub(super) struct KeyCounts {
    few: smallvec::SmallVec<[(IdempotencyKey, u32); 8]>,
    many: Option<hashbrown::HashMap<IdempotencyKey, u32>>,
}

impl KeyCounts {
    /// Counts one more use of `key`; returns how often it was given before.
    fn count(&mut self, key: IdempotencyKey) -> u32 {
        if let Some(many) = &mut self.many {
            let seen = many.entry(key).or_insert(0);
            let before = *seen;
            *seen = seen.saturating_add(1);
            return before;
        }
        if let Some((_, seen)) = self.few.iter_mut().find(|(k, _)| *k == key) {
            let before = *seen;
            *seen = seen.saturating_add(1);
            return before;
        }
        if self.few.len() < self.few.inline_size() {
            self.few.push((key, 1));
        } else {
            let mut many: hashbrown::HashMap<IdempotencyKey, u32> = self.few.drain(..).collect();
            many.insert(key, 1);
            self.many = Some(many);
        }
        0
    }
}

/// One step's working data.
pub(super) struct Step<'a> {
    /// The contact's id (the state's).
    pub(super) id: ContactId,
    /// How often each key was given so far in this step (before numbering repeats):
    /// a lookup per effect, so that a step's cost stays linear in its effects.
    pub(super) keys: KeyCounts,
    /// The state's step number (part of the keys of attribute changes and timeouts).
    pub(super) number: u64,
    pub(super) cause: Cause,
    pub(super) now: Timestamp,
    pub(super) contact: std::borrow::Cow<'a, Contact>,
    /// The event being handled, for actions that compute values from it.
    pub(super) event: Option<&'a Event>,
    pub(super) outcome: Outcome,
    pub(super) changes: Vec<Change>,
    /// Segments whose condition error was reported in this step (by position).
    pub(super) segment_errors: Vec<usize>,
    /// Journey entries and removals asked for during the step.
    pub(super) journeys: super::journey::JourneyQueue,
    /// Sends waiting for the policy's decision at the end of the step.
    pub(super) sends: Vec<super::policy::PendingSend>,
}

impl<'a> Step<'a> {
    pub(super) fn new(state: &ContactState, cause: Cause, now: Timestamp, contact: &'a Contact) -> Step<'a> {
        Step {
            id: state.contact.clone(),
            keys: KeyCounts::default(),
            number: state.steps,
            cause,
            now,
            contact: std::borrow::Cow::Borrowed(contact),
            event: None,
            outcome: Outcome::default(),
            changes: Vec::new(),
            segment_errors: Vec::new(),
            journeys: Default::default(),
            sends: Vec::new(),
        }
    }

    /// An effect of this step: its key from the contact, the cause and `parts` (what
    /// tells it apart from the step's other effects).
    pub(super) fn effect(&mut self, parts: &[&[u8]], status: Status, kind: EffectKind) -> Effect {
        // The same effect can happen twice in one step (a rule started again in the
        // cascade): the repeat's number goes into its key, so keys stay unique.
        let mut key = key_of(self.id.as_str(), &self.cause, self.number, parts);
        let again = self.keys.count(key);
        if again > 0 {
            key = key_of(
                self.id.as_str(),
                &self.cause,
                self.number,
                &[parts, &[b"again", &again.to_le_bytes()]].concat(),
            );
        }
        Effect {
            key,
            contact: self.id.clone(),
            cause: self.cause.clone(),
            at: self.now,
            status,
            kind,
            decision: None,
            params: Default::default(),
            approval: None,
        }
    }

    /// Emits a ready effect.
    pub(super) fn emit(&mut self, parts: &[&[u8]], kind: EffectKind) {
        let effect = self.effect(parts, Status::Ready, kind);
        self.outcome.effects.push(effect);
    }
}

/// How many missed occurrences of one date or schedule rule a timeout fires at most:
/// the most recent ones, oldest first (`docs/engine.md`, "Catching up").
pub const MAX_CATCH_UP: usize = 8;

/// The occurrences of a calendar trigger in `(after, now]`, the most recent
/// [`MAX_CATCH_UP`] of them, oldest first. The search starts no earlier than
/// `MAX_CATCH_UP` years before `now` (enough for that many occurrences of any yearly,
/// monthly, weekly or daily trigger), so its cost is bounded however long the gap.
fn missed_occurrences(
    trigger: &Trigger,
    contact: &Contact,
    after: Timestamp,
    now: Timestamp,
) -> Vec<Timestamp> {
    let span =
        crate::time::Duration::from_days(366 * MAX_CATCH_UP as i64).unwrap_or(crate::time::Duration::ZERO);
    let mut cursor = match now.checked_sub(span) {
        Some(start) if start > after => start,
        _ => after,
    };
    let mut found = std::collections::VecDeque::with_capacity(MAX_CATCH_UP + 1);
    while let Some(t) = trigger.occurrence_after(contact, cursor).filter(|t| *t <= now) {
        found.push_back(t);
        if found.len() > MAX_CATCH_UP {
            found.pop_front();
        }
        cursor = t;
    }
    found.into()
}
