//! The engine: a deterministic, I/O-free state machine. Given a contact's state and an
//! event (or the passage of time) it returns what must happen, as [`Effect`]s in a
//! documented order, and when the contact next needs waking.
//!
//! One event is handled in this order (`docs/engine.md` has the whole lifecycle):
//!
//! 1. **Duplicates.** An event whose id is among the contact's last [`DEDUP_WINDOW`]
//!    events is ignored: the outcome is marked `duplicate` and carries no effects.
//! 2. **Scores.** The event is scored; each threshold crossing and band change becomes an
//!    effect, models in declaration order, thresholds before bands.
//! 3. **Counters and activity.** The event is counted in the windowed counters and
//!    ends the quiet spell of inactivity rules watching its type.
//! 4. **Event rules.** Rules started by this event type whose condition holds (with
//!    `score.NAME`, `counter.NAME`, `segment.NAME`, `tags`, `bands.SCORE` and `stage`
//!    bound) and whose repeat policy allows fire: their actions become effects, rules
//!    in declaration order, actions in the rule's order. Rules whose condition fails to
//!    evaluate give `RuleError` effects.
//! 5. **Cascade.** In rounds: fit rules are re-scored if attributes changed, segments
//!    are re-evaluated (entries and exits become effects), then every rule listening for
//!    this round's changes (threshold and band crossings, attribute changes, segment
//!    entries and exits) fires, in declaration order, if its condition and repeat
//!    policy allow. Their actions can change state again; after [`MAX_CASCADE`] rounds
//!    a `CascadeLimit` effect ends the step.
//! 6. **Wake-up.** `next_wake` is the earliest instant at which time alone can change
//!    something: decay crossing a threshold, a band or a level a segment compares with,
//!    a counted event leaving its window (when there are segments), an inactivity
//!    deadline, or a date or schedule occurrence.
//!
//! [`Engine::handle_timeout`] does steps 2, then the date, schedule and inactivity rules
//! that are due, then 5 and 6.
//!
//! Sends and owner notifications marked `needs_approval` are emitted as
//! [`Status::PendingApproval`] and kept in the state until [`Engine::approve`] or
//! [`Engine::reject`].

mod effect;
mod shard;
mod state;

use std::sync::Arc;

pub use effect::{Cause, Effect, EffectKind, IdempotencyKey, Status};
pub use shard::shard_of;
pub use state::{ContactState, DEDUP_WINDOW, STATE_FORMAT};

use crate::def::{ActionDef, Direction};
use crate::expr::Activation;
use crate::id::ContactId;
use crate::program::{MatchScratch, Program, Rule};
use crate::repeat::RepeatPolicy;
use crate::schema::{Contact, Event};
use crate::scoring::{Crossing, ScoreError, ScoreScratch, ScoreUpdate};
use crate::time::Timestamp;
use crate::trigger::Trigger;
use crate::value::Value;
use effect::key_of;

/// How many rounds of state changes starting further rules one step may run.
pub const MAX_CASCADE: usize = 8;

/// Why the engine refused an input; the state is left unchanged.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum EngineError {
    /// The scorer refused it (an event older than the contact's last change, or a state
    /// of another program's shape).
    #[error("scoring: {0}")]
    Score(#[from] ScoreError),
    /// The event belongs to another contact than the state.
    #[error("the event is for contact `{event}`, the state for `{state}`")]
    WrongContact {
        /// The event's contact.
        event: String,
        /// The state's contact.
        state: String,
    },
    /// The event is older than the contact's last change by more than the engine's
    /// lateness limit ([`Engine::with_max_lateness`]).
    #[error("the event is {late} older than the contact's last change; the limit is {limit}")]
    TooLate {
        /// How late.
        late: String,
        /// The limit.
        limit: String,
    },
    /// A state written by a format this version does not read.
    #[error("state format {0} is not supported (this version writes {STATE_FORMAT})")]
    Format(u32),
}

/// What one step decided.
#[derive(Clone, Debug, Default, PartialEq)]
#[must_use = "the effects must be performed and the wake-up scheduled"]
#[non_exhaustive]
pub struct Outcome {
    /// The effects, in the documented order.
    pub effects: Vec<Effect>,
    /// When to call [`Engine::handle_timeout`] next, if ever.
    pub next_wake: Option<Timestamp>,
    /// The event was a duplicate and was ignored.
    pub duplicate: bool,
    /// The contact with the attributes actions set or cleared, when any did; the host
    /// stores it and passes it with the contact's next event.
    pub contact: Option<Contact>,
}

/// Reusable buffers for the engine's calls; one per thread.
#[derive(Clone, Debug, Default)]
pub struct EngineScratch {
    matching: MatchScratch,
    scoring: ScoreScratch,
    counts: Vec<Option<Value>>,
    scores: Vec<Option<Value>>,
    segments: Vec<Option<Value>>,
    vars: Vec<Option<Value>>,
}

/// A compiled program, ready to run contacts through.
#[derive(Clone, Debug)]
pub struct Engine {
    program: Arc<Program>,
    /// Per schema score (`score.NAME`, in declaration order): the model of that id.
    score_models: Vec<Option<usize>>,
    /// The lifecycle stages `set_lifecycle_stage` may name, in order.
    lifecycle: Vec<String>,
    /// How much older than a contact's last change an event may be.
    max_lateness: crate::time::Duration,
    /// Enabled rules started by time (dates, schedules, inactivity), in rule order: the
    /// only ones wake-ups and timeouts look at.
    timed: Vec<usize>,
    /// Enabled rules started by changes (crossings, attributes, segments), in rule
    /// order: the only ones the cascade looks at.
    listening: Vec<usize>,
}

/// How much older than a contact's last change an event may be, by default: 7 days.
pub const DEFAULT_MAX_LATENESS_DAYS: i64 = 7;

/// A change inside one step that can start rules.
#[derive(Clone, Debug)]
enum Change {
    Crossing { model: usize, threshold: String, direction: Direction },
    Band { model: usize, band: Option<String>, direction: Direction },
    Attribute { field: crate::schema::Slot, from: Option<Value>, to: Option<Value> },
}

/// One step's working data.
struct Step<'a> {
    /// The contact's id (the state's).
    id: ContactId,
    /// The keys given so far in this step (before numbering repeats).
    keys: Vec<IdempotencyKey>,
    cause: Cause,
    now: Timestamp,
    contact: std::borrow::Cow<'a, Contact>,
    outcome: Outcome,
    changes: Vec<Change>,
}

impl<'a> Step<'a> {
    fn new(state: &ContactState, cause: Cause, now: Timestamp, contact: &'a Contact) -> Step<'a> {
        Step {
            id: state.contact.clone(),
            keys: Vec::new(),
            cause,
            now,
            contact: std::borrow::Cow::Borrowed(contact),
            outcome: Outcome::default(),
            changes: Vec::new(),
        }
    }

    /// An effect of this step: its key from the contact, the cause and `parts` (what
    /// tells it apart from the step's other effects).
    fn effect(&mut self, parts: &[&[u8]], status: Status, kind: EffectKind) -> Effect {
        // The same effect can happen twice in one step (a rule started again in the
        // cascade): the repeat's number goes into its key, so keys stay unique.
        let mut key = key_of(self.id.as_str(), &self.cause, parts);
        let seen = self.keys.iter().filter(|k| **k == key).count() as u32;
        self.keys.push(key);
        if seen > 0 {
            key = key_of(self.id.as_str(), &self.cause, &[parts, &[b"again", &seen.to_le_bytes()]].concat());
        }
        Effect { key, contact: self.id.clone(), cause: self.cause.clone(), at: self.now, status, kind }
    }

    /// Emits a ready effect.
    fn emit(&mut self, parts: &[&[u8]], kind: EffectKind) {
        let effect = self.effect(parts, Status::Ready, kind);
        self.outcome.effects.push(effect);
    }
}

/// The default lifecycle stages, in order.
pub const LIFECYCLE_STAGES: [&str; 6] = ["subscriber", "lead", "mql", "sql", "opportunity", "customer"];

impl Engine {
    /// An engine for a compiled program.
    pub fn new(program: Arc<Program>) -> Engine {
        let score_models = match program.scorer() {
            Some(scorer) => program
                .condition_names()
                .scores()
                .iter()
                .map(|(name, _)| scorer.models().iter().position(|m| m.id().as_str() == name))
                .collect(),
            None => Vec::new(),
        };
        let of_kind = |timed: bool| {
            program
                .rules()
                .iter()
                .enumerate()
                .filter(|(_, r)| {
                    r.enabled()
                        && r.event_type().is_none()
                        && (timed
                            == (r.trigger().is_calendar()
                                || matches!(r.trigger(), Trigger::Inactivity { .. })))
                })
                .map(|(i, _)| i)
                .collect()
        };
        let (timed, listening) = (of_kind(true), of_kind(false));
        Engine {
            program,
            score_models,
            lifecycle: LIFECYCLE_STAGES.iter().map(|s| s.to_string()).collect(),
            max_lateness: crate::time::Duration::from_days(DEFAULT_MAX_LATENESS_DAYS)
                .unwrap_or(crate::time::Duration::ZERO),
            timed,
            listening,
        }
    }

    /// How much older than a contact's last change an event may be and still be taken
    /// (default [`DEFAULT_MAX_LATENESS_DAYS`] days; zero refuses every late event). A
    /// late event is handled at the contact's last change: its points are credited as
    /// earned at its own instant and decayed since, counters count it at its own
    /// instant, and everything it starts is emitted then, never dated back.
    pub fn with_max_lateness(mut self, limit: crate::time::Duration) -> Engine {
        self.max_lateness = limit;
        self
    }

    /// Replaces the lifecycle stages (in order); `set_lifecycle_stage` actions naming
    /// another stage give a `RuleError` effect instead.
    pub fn with_lifecycle_stages(mut self, stages: impl IntoIterator<Item = impl Into<String>>) -> Engine {
        self.lifecycle = stages.into_iter().map(Into::into).collect();
        self
    }

    /// The program.
    pub fn program(&self) -> &Arc<Program> {
        &self.program
    }

    /// A fresh state for `contact` as of `at`, fit rules evaluated and segments placed
    /// (without effects: a new contact enters its segments silently).
    pub fn new_state(&self, contact: &Contact, at: Timestamp) -> ContactState {
        let scores = self.program.scorer().map(|scorer| {
            let mut scores = scorer.new_state(at);
            // A fresh state is of the scorer's own shape and `at` is its start.
            let _ = scorer.handle_attributes(&mut scores, contact, at);
            scores
        });
        let mut state = ContactState {
            format: STATE_FORMAT,
            contact: contact.id().clone(),
            scores,
            counters: self.program.counters().new_state(),
            tags: Default::default(),
            lists: Default::default(),
            stage: None,
            owner: None,
            seen: Default::default(),
            pending: Vec::new(),
            last: at,
            since: at,
            segments: Default::default(),
            fired: Default::default(),
            last_seen: Default::default(),
            quiet: Default::default(),
            occurred: Default::default(),
            score_models: self.score_ids(),
            counter_count: self.program.condition_names().counters().len(),
        };
        let mut scratch = EngineScratch::default();
        self.bind_values(&state, at, &mut scratch);
        self.evaluate_segments(contact, at, &mut scratch);
        state.segments = self.members(&scratch.segments);
        state
    }

    /// Handles one event for the contact whose state this is.
    ///
    /// # Errors
    ///
    /// [`EngineError`] when the event is for another contact, older than the state's
    /// last change, or the state is of another format or program; nothing changes.
    pub fn handle_event(
        &self,
        state: &mut ContactState,
        contact: &Contact,
        event: &Event,
        scratch: &mut EngineScratch,
    ) -> Result<Outcome, EngineError> {
        self.check(state, event.contact())?;
        self.check(state, contact.id())?;
        if let Some(late) = state.last.duration_since(event.at()).filter(|d| *d > crate::time::Duration::ZERO)
        {
            if late > self.max_lateness {
                return Err(EngineError::TooLate {
                    late: late.to_string(),
                    limit: self.max_lateness.to_string(),
                });
            }
        }
        if state.has_seen(event.id()) {
            let next_wake = self.wake_after(state, contact, state.last);
            return Ok(Outcome { next_wake, duplicate: true, ..Outcome::default() });
        }
        // A late event is handled at the contact's last change: nothing is dated back.
        let now = event.at().max(state.last);
        let mut step = Step::new(state, Cause::Event(event.id().clone()), now, contact);
        // 2. Scores (first: a refused event changes nothing).
        if let (Some(scorer), Some(scores)) = (self.program.scorer(), state.scores.as_mut()) {
            let update = scorer.handle_late_event_in(scores, contact, event, &mut scratch.scoring)?;
            self.score_effects(&mut step, update);
        }
        state.remember(event.id());
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
        // 4. Event rules.
        self.bind_values(state, now, scratch);
        self.member_values(state, &mut scratch.segments);
        let matched: Vec<_> = {
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
            matches.rules.to_vec()
        };
        for rule in matched {
            let rule = self.program.rule(rule);
            if self.allowed(state, rule, now) {
                self.fire(state, rule, &mut step)?;
            }
        }
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
    pub fn handle_attribute_change(
        &self,
        state: &mut ContactState,
        before: &Contact,
        after: &Contact,
        now: Timestamp,
        scratch: &mut EngineScratch,
    ) -> Result<Outcome, EngineError> {
        self.check(state, before.id())?;
        self.check(state, after.id())?;
        if now < state.last {
            return Err(ScoreError::OutOfOrder.into());
        }
        let mut step = Step::new(state, Cause::AttributeChange(now), now, after);
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
        let mut step = Step::new(state, Cause::Timeout(now), now, contact);
        if let (Some(scorer), Some(scores)) = (self.program.scorer(), state.scores.as_mut()) {
            let update = scorer.handle_timeout(scores, now)?;
            self.score_effects(&mut step, &update);
        }
        // Date and schedule occurrences since the last step, then inactivity deadlines
        // that have come, in rule order.
        let since = state.last;
        let rules = self.program.rules();
        for rule in self.timed.iter().map(|&i| &rules[i]).filter(|r| r.trigger().is_calendar()) {
            let Some(occurrence) = rule.trigger().occurrence_after(&step.contact, since) else {
                continue;
            };
            let already = state.occurred.get(rule.id().as_str()).is_some_and(|t| *t >= occurrence);
            if occurrence <= now && !already {
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

    fn score_ids(&self) -> Vec<crate::id::ScoreId> {
        self.program.scorer().map(|s| s.models().iter().map(|m| m.id().clone()).collect()).unwrap_or_default()
    }

    /// Whether a state was made under this program's shape (same score models and
    /// counters); if not, [`Engine::adopt`] carries it over.
    pub fn fits(&self, state: &ContactState) -> bool {
        state.format == STATE_FORMAT
            && state.score_models == self.score_ids()
            && state.counter_count == self.program.condition_names().counters().len()
            && match (self.program.scorer(), &state.scores) {
                (Some(scorer), Some(scores)) => scorer.fits(scores),
                (None, None) => true,
                _ => false,
            }
    }

    /// Carries a state made under an earlier program over to this one, by stable ids:
    /// score models still present with an unchanged shape keep their points (others
    /// start at zero, fit rules evaluated); repeat-policy and inactivity memory is kept
    /// for rules still present; tags, lists, stage, owner, duplicates and pending
    /// approvals are kept; counters are kept when their number is unchanged (they are
    /// matched by position); segments are re-evaluated at `now`, silently.
    pub fn adopt(&self, mut state: ContactState, contact: &Contact, now: Timestamp) -> ContactState {
        let at = now.max(state.last);
        state.scores = match (self.program.scorer(), state.scores.take()) {
            (Some(scorer), Some(scores))
                if state.score_models == self.score_ids() && scorer.fits(&scores) =>
            {
                Some(scores)
            }
            (Some(scorer), old) => {
                let mut scores = match old {
                    Some(old) => scorer.adopt(&state.score_models, old, at),
                    None => scorer.new_state(at),
                };
                let _ = scorer.handle_attributes(&mut scores, contact, at);
                Some(scores)
            }
            (None, _) => None,
        };
        state.score_models = self.score_ids();
        let counters = self.program.condition_names().counters().len();
        if state.counter_count != counters {
            state.counters = self.program.counters().new_state();
            state.counter_count = counters;
        }
        let present = |id: &String| self.program.rule_by_id(id).is_some();
        state.fired.retain(|id, _| present(id));
        state.quiet.retain(present);
        state.occurred.retain(|id, _| present(id));
        state.format = STATE_FORMAT;
        let mut scratch = EngineScratch::default();
        self.bind_values(&state, at, &mut scratch);
        self.evaluate_segments(contact, at, &mut scratch);
        state.segments = self.members(&scratch.segments);
        state.last = at;
        state
    }

    /// The segments `contact` is in at `now`, evaluated from scratch on the state's
    /// scores and counters (a full re-evaluation, changing nothing; the incremental
    /// membership in the state equals it once every wake-up up to `now` was handled).
    pub fn segments_at(&self, state: &ContactState, contact: &Contact, now: Timestamp) -> Vec<String> {
        let mut scratch = EngineScratch::default();
        self.bind_values(state, now, &mut scratch);
        self.evaluate_segments(contact, now, &mut scratch);
        self.members(&scratch.segments).into_iter().collect()
    }

    /// Ends a step: the cascade, the step's instant as the state's last change, the
    /// wake-up, and the contact if actions changed it.
    fn finish(
        &self,
        state: &mut ContactState,
        mut step: Step<'_>,
        scratch: &mut EngineScratch,
    ) -> Result<Outcome, EngineError> {
        self.cascade(state, &mut step, scratch)?;
        state.last = step.now;
        let mut outcome = step.outcome;
        outcome.next_wake = self.wake_after(state, &step.contact, step.now);
        if let std::borrow::Cow::Owned(c) = step.contact {
            outcome.contact = Some(c);
        }
        Ok(outcome)
    }

    /// Approves a pending effect: it comes back [`Status::Ready`], to be performed.
    /// `None` when no pending effect has this key.
    pub fn approve(&self, state: &mut ContactState, key: IdempotencyKey) -> Option<Effect> {
        let mut effect = state.take_pending(key)?;
        effect.status = Status::Ready;
        Some(effect)
    }

    /// Rejects a pending effect: it is dropped and returned, for the record.
    pub fn reject(&self, state: &mut ContactState, key: IdempotencyKey) -> Option<Effect> {
        state.take_pending(key)
    }

    fn check(&self, state: &ContactState, contact: &ContactId) -> Result<(), EngineError> {
        if state.format != STATE_FORMAT {
            return Err(EngineError::Format(state.format));
        }
        if contact != &state.contact {
            return Err(EngineError::WrongContact {
                event: contact.as_str().to_string(),
                state: state.contact.as_str().to_string(),
            });
        }
        Ok(())
    }

    /// Counts and scores at `now` into the scratch, for activations.
    fn bind_values(&self, state: &ContactState, now: Timestamp, scratch: &mut EngineScratch) {
        self.program.counters().values(&state.counters, now, &mut scratch.counts);
        scratch.scores.clear();
        let scores = state.scores.as_ref().filter(|_| self.program.reads_scores());
        if let (Some(scorer), Some(scores)) = (self.program.scorer(), scores) {
            for model in &self.score_models {
                scratch.scores.push(model.and_then(|m| scorer.value(scores, m, now)).map(Value::Double));
            }
        }
        // `tags`, `bands.SCORE` and `stage`, only for programs that read them.
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
        }
    }

    /// The state's memberships as values, in the schema's segment order.
    fn member_values(&self, state: &ContactState, out: &mut Vec<Option<Value>>) {
        out.clear();
        out.extend(
            self.program.segments().iter().map(|s| Some(Value::Bool(state.segments.contains(s.id())))),
        );
    }

    /// Memberships from evaluated values.
    fn members(&self, values: &[Option<Value>]) -> std::collections::BTreeSet<String> {
        self.program
            .segments()
            .iter()
            .zip(values)
            .filter(|(_, v)| matches!(v, Some(Value::Bool(true))))
            .map(|(s, _)| s.id().to_string())
            .collect()
    }

    /// Evaluates every segment into `scratch.segments` (counts and scores bound).
    fn evaluate_segments(&self, contact: &Contact, now: Timestamp, scratch: &mut EngineScratch) {
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
                condition.eval_bool(&activation) == Ok(true)
            },
            &mut scratch.segments,
        );
    }

    /// Whether a rule not started by an event may fire now: its condition holds and its
    /// repeat policy allows. A condition error becomes a `RuleError` effect.
    fn holds(&self, rule: &Rule, scratch: &EngineScratch, state: &ContactState, step: &mut Step<'_>) -> bool {
        let now = step.now;
        if !rule.enabled() || !self.allowed(state, rule, now) {
            return false;
        }
        let Some(condition) = rule.condition() else {
            return true;
        };
        let activation = Activation::new()
            .with_contact(&step.contact)
            .with_now(now)
            .with_counters(&scratch.counts)
            .with_scores(&scratch.scores)
            .with_segments(&scratch.segments)
            .with_var_slots(&scratch.vars);
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

    /// Whether a rule's repeat policy lets it fire at `now`.
    fn allowed(&self, state: &ContactState, rule: &Rule, now: Timestamp) -> bool {
        RepeatPolicy::new(rule.repeat()).allows(state.fired.get(rule.id().as_str()), now)
    }

    /// Fires a rule: its repeat memory, then each action as an effect (state-changing
    /// actions applied, their changes queued for the cascade).
    fn fire(&self, state: &mut ContactState, rule: &Rule, step: &mut Step<'_>) -> Result<(), EngineError> {
        let now = step.now;
        let policy = RepeatPolicy::new(rule.repeat());
        if policy.needs_memory() {
            policy.record(state.fired.entry(rule.id().as_str().to_string()).or_default(), now);
        }
        for (index, action) in rule.actions().iter().enumerate() {
            let index = u32::try_from(index).unwrap_or(u32::MAX);
            if let Err(message) = self.apply(state, action, step) {
                let kind = EffectKind::RuleError { rule: rule.id().clone(), message };
                step.emit(&[b"error", rule.id().as_str().as_bytes(), &index.to_le_bytes()], kind);
                continue;
            }
            let status = if needs_approval(action) { Status::PendingApproval } else { Status::Ready };
            let effect = step.effect(
                &[b"action", rule.id().as_str().as_bytes(), &index.to_le_bytes()],
                status,
                EffectKind::Action { rule: rule.id().clone(), index, action: action.clone() },
            );
            if status == Status::PendingApproval {
                state.pending.push(effect.clone());
            }
            step.outcome.effects.push(effect);
        }
        Ok(())
    }

    /// Applies what an action changes inside the engine; queues the changes that can
    /// start rules. `Err` (with why) for an action that cannot apply.
    fn apply(&self, state: &mut ContactState, action: &ActionDef, step: &mut Step<'_>) -> Result<(), String> {
        match action {
            ActionDef::AddTag { tag } => {
                state.tags.insert(tag.clone());
            }
            ActionDef::RemoveTag { tag } => {
                state.tags.remove(tag);
            }
            ActionDef::AddToList { list } => {
                state.lists.insert(list.clone());
            }
            ActionDef::RemoveFromList { list } => {
                state.lists.remove(list);
            }
            ActionDef::SetLifecycleStage { stage } => {
                if !self.lifecycle.iter().any(|s| s == stage) {
                    return Err(format!(
                        "`{stage}` is not a lifecycle stage ({})",
                        self.lifecycle.join(", ")
                    ));
                }
                state.stage = Some(stage.clone());
            }
            ActionDef::AssignOwner { owner } => state.owner = Some(owner.clone()),
            ActionDef::SetAttribute { field, value } => {
                let fields = self.program.schema().contact_fields();
                let slot = fields.slot(field).ok_or_else(|| format!("no contact field `{field}`"))?;
                let value = Value::from_json(value, fields.ty(slot))
                    .ok_or_else(|| format!("the value does not fit `{field}` ({})", fields.ty(slot)))?;
                self.set_attribute(step, slot, Some(value));
            }
            ActionDef::ClearAttribute { field } => {
                let slot = self
                    .program
                    .schema()
                    .contact_fields()
                    .slot(field)
                    .ok_or_else(|| format!("no contact field `{field}`"))?;
                self.set_attribute(step, slot, None);
            }
            ActionDef::AdjustScore { score, points } => {
                let scorer = self.program.scorer().ok_or("the program has no scores")?;
                let model = scorer
                    .models()
                    .iter()
                    .position(|m| m.id().as_str() == score)
                    .ok_or_else(|| format!("no score `{score}`"))?;
                if scorer.models()[model].is_combined() {
                    return Err(format!("`{score}` is a combined score: adjust one of its parts"));
                }
                let scores = state.scores.as_mut().ok_or("the state has no scores")?;
                let update = scorer.adjust(scores, model, *points, step.now).map_err(|e| e.to_string())?;
                self.score_effects(step, &update);
            }
            _ => {}
        }
        Ok(())
    }

    /// Sets an attribute on the step's working contact, queueing the change.
    fn set_attribute(&self, step: &mut Step<'_>, slot: crate::schema::Slot, value: Option<Value>) {
        let from = step.contact.get(slot).cloned();
        if from == value {
            return;
        }
        step.contact.to_mut().put(slot, value.clone());
        step.changes.push(Change::Attribute { field: slot, from, to: value });
    }

    /// Runs the cascade of step 5 until nothing more changes, or [`MAX_CASCADE`] rounds.
    fn cascade(
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
            let members = self.members(&scratch.segments);
            let mut segment_changes = Vec::new();
            for (i, segment) in self.program.segments().iter().enumerate() {
                let (was, is) = (state.segments.contains(segment.id()), members.contains(segment.id()));
                if was != is {
                    segment_changes.push((i, if is { Direction::Up } else { Direction::Down }));
                }
            }
            state.segments = members;
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
                let listens = match rule.trigger() {
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
                    Trigger::Segment { segment, direction } => segment_changes.iter().any(|(s, d)| s == segment && d == direction),
                    _ => false,
                };
                if listens && self.holds(rule, scratch, state, step) {
                    self.fire(state, rule, step)?;
                }
            }
        }
        if !step.changes.is_empty() {
            step.emit(&[b"cascade"], EffectKind::CascadeLimit { rounds: MAX_CASCADE as u32 });
            step.changes.clear();
        }
        Ok(())
    }

    /// When an inactivity rule's quiet period ends (`None`: not an inactivity rule, or
    /// it already fired in this quiet spell).
    fn quiet_deadline(&self, state: &ContactState, rule: &Rule) -> Option<Timestamp> {
        let Trigger::Inactivity { event_type, period } = rule.trigger() else {
            return None;
        };
        if state.quiet.contains(rule.id().as_str()) {
            return None;
        }
        let name = match event_type {
            Some(t) => self.program.schema().event_type(*t)?.name().as_str().to_string(),
            None => "*".to_string(),
        };
        let last = state.last_seen.get(&name).copied().unwrap_or(state.since);
        last.checked_add(*period)
    }

    /// The first instant after `now` at which time alone can change something for this
    /// contact (what every outcome's `next_wake` reports, step 6); for a host scheduling
    /// a contact it has just added or restored.
    pub fn wake_after(&self, state: &ContactState, contact: &Contact, now: Timestamp) -> Option<Timestamp> {
        let mut wake: Option<Timestamp> = None;
        let mut consider = |t: Option<Timestamp>| {
            if let Some(t) = t.filter(|t| *t > now) {
                wake = Some(wake.map_or(t, |w| w.min(t)));
            }
        };
        if let (Some(scorer), Some(scores)) = (self.program.scorer(), state.scores.as_ref()) {
            // The scorer remembers its wake-up from its last change; only a due one (a
            // fresh or adopted state) is computed afresh.
            match scores.remembered_wake() {
                Some(w) if w <= now => consider(scorer.next_wake(scores, now)),
                w => consider(w),
            }
            for (model, level) in self.program.segments().levels() {
                consider(scorer.next_below(scores, model, level, now));
            }
        }
        // Only counters a segment reads can change a membership as they fall.
        let watched = self.program.segments().counters();
        if !watched.is_empty() {
            let next = self.program.counters().next_change_of(&state.counters, now, |i| {
                watched.binary_search(&(i as crate::schema::Slot)).is_ok()
            });
            consider(next);
        }
        let rules = self.program.rules();
        for rule in self.timed.iter().map(|&i| &rules[i]) {
            consider(self.quiet_deadline(state, rule));
            consider(rule.trigger().occurrence_after(contact, now));
        }
        wake
    }

    /// Threshold crossings and band changes as effects, queued for the cascade.
    fn score_effects(&self, step: &mut Step<'_>, update: &ScoreUpdate) {
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

fn needs_approval(action: &ActionDef) -> bool {
    matches!(
        action,
        ActionDef::Send { needs_approval: true, .. } | ActionDef::NotifyOwner { needs_approval: true, .. }
    )
}
