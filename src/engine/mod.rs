//! The engine: a deterministic, I/O-free state machine. Given a contact's state and an
//! event (or the passage of time) it returns what must happen, as [`Effect`]s in a
//! documented order, and when the contact next needs waking.
//!
//! One event is handled in this order (`docs/engine.md` has the whole lifecycle):
//!
//! 1. **Duplicates.** An event whose id is among the contact's last [`DEDUP_WINDOW`]
//!    events (the engine's window, [`Engine::with_dedup_window`]), or whose key
//!    (`schema.keys`) is among the last [`KEY_WINDOW`] of its type, is ignored: the
//!    outcome is marked `duplicate` and carries no effects.
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
//!    something (or, for the scores after a step that only raised them, the earlier
//!    wake-up remembered from before it, which may find nothing to do): decay crossing a threshold, a band or a level a segment compares with,
//!    a counted event leaving its window (when there are segments), an inactivity
//!    deadline, a date or schedule occurrence, or the instant a segment's comparison
//!    with `now` changes value.
//!
//! [`Engine::handle_timeout`] does steps 2, then the date, schedule and inactivity rules
//! that are due (every missed occurrence, at most the [`MAX_CATCH_UP`] most recent),
//! then 5 and 6. [`Engine::create`] makes a contact's first state as a step: fit scores
//! from zero (crossings reported), then 5 and 6 (segment entries reported).
//!
//! Sends and owner notifications marked `needs_approval` are emitted as
//! [`Status::PendingApproval`] and kept in the state until [`Engine::approve`] or
//! [`Engine::reject`].

mod actions;
mod approval;
mod cascade;
mod computed;
mod effect;
mod journey;
mod keyed;
mod policy;
mod shard;
mod state;
mod step;
mod wake;

use std::sync::Arc;

pub use effect::{Approval, Cause, Effect, EffectKind, ExitReason, IdempotencyKey, KeyParseError, Status};
pub use journey::{ArmTally, Enrolment, Funnel, JourneyFunnel, JourneyLog};
pub use keyed::KEY_WINDOW;
pub use shard::shard_of;
pub use state::{ContactState, DeferredSend, DEDUP_WINDOW, MAX_DEDUP_WINDOW, STATE_FORMAT};
pub use step::MAX_CATCH_UP;

use crate::id::ContactId;
use crate::program::{MatchScratch, Program};
use crate::schema::Contact;
use crate::scoring::{ScoreError, ScoreScratch};
use crate::time::Timestamp;
use crate::trigger::Trigger;
use crate::value::Value;

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
        event: ContactId,
        /// The state's contact.
        state: ContactId,
    },
    /// The event is older than the contact's last change by more than the engine's
    /// lateness limit ([`Engine::with_max_lateness`]).
    #[error("the event is {late} older than the contact's last change; the limit is {limit}")]
    TooLate {
        /// How late.
        late: crate::time::Duration,
        /// The limit.
        limit: crate::time::Duration,
    },
    /// A state written by a format this version does not read.
    #[error("state format {0} is not supported (this version writes {STATE_FORMAT})")]
    Format(u32),
    /// The state was made under another program (other score models, counters or
    /// contact fields, by id and name, not only by shape): carry it over first with
    /// [`Engine::adopt`] (and the contact with [`Engine::adopt_contact`]).
    #[error("the state of contact `{contact}` was made under another program ({what}); adopt it first (Engine::adopt)")]
    OtherProgram {
        /// The contact.
        contact: ContactId,
        /// What differs.
        what: String,
    },
    /// The contact was built against another schema than the program's (its number of
    /// attributes differs): build it with this program's schema, or carry it over with
    /// [`Engine::adopt_contact`].
    #[error(
        "contact `{contact}` has {found} attribute slots; the program's schema has {expected} contact fields"
    )]
    ContactSchema {
        /// The contact.
        contact: ContactId,
        /// The program's contact fields.
        expected: usize,
        /// The contact's slots.
        found: usize,
    },
    /// The step would emit more effects than
    /// [`Limits::max_effects_per_step`](crate::limits::Limits::max_effects_per_step)
    /// allows; it changed nothing.
    #[error(
        "the step would emit more than {limit} effects (Limits::max_effects_per_step); \
         nothing was changed: narrow the rules that fire together or raise the limit"
    )]
    TooManyEffects {
        /// The limit.
        limit: usize,
    },
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
    segment_errors: Vec<(usize, crate::expr::EvalError)>,
    vars: Vec<Option<Value>>,
    /// The rules an event matched, kept between events.
    matched: Vec<crate::program::RuleIndexId>,
}

impl EngineScratch {
    /// An activation for `contact` at `now` over what `Engine::bind_values` and
    /// `Engine::member_values` bound here: counters, scores, segments and the engine's
    /// variables. Every condition the engine evaluates reads through one.
    pub(super) fn activation<'a>(
        &'a self,
        contact: &'a Contact,
        now: Timestamp,
    ) -> crate::expr::Activation<'a> {
        crate::expr::Activation::new()
            .with_contact(contact)
            .with_now(now)
            .with_counters(&self.counts)
            .with_scores(&self.scores)
            .with_segments(&self.segments)
            .with_var_slots(&self.vars)
    }
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
    /// How many recent event ids a contact remembers to recognise duplicates.
    dedup_window: usize,
    /// The schema's contact field names, in slot order (recorded in states, shared).
    fields: Arc<[String]>,
    /// The score models' ids, in order (recorded in states).
    model_ids: Vec<crate::id::ScoreId>,
    /// Whether no step can emit more effects than `Limits::max_effects_per_step`
    /// ([`effects_always_fit`]): then the effects limit cannot fail a step midway.
    effects_always_fit: bool,
}

/// Whether no step of `program` can emit more than `Limits::max_effects_per_step`
/// effects, by a generous bound: each rule fires at most once per cascade round (every
/// action or its error, plus one more), each segment is entered, left or in error, each
/// threshold and band crosses, in each of the `MAX_CASCADE + 1` rounds; plus every
/// deferred send and every expiring approval. A program with journeys is not bounded
/// here (a journey step runs the cascade again), so its steps keep the copy that makes
/// them all or nothing.
fn effects_always_fit(program: &Program) -> bool {
    if !program.journeys().is_empty() {
        return false;
    }
    let mut per_round: u64 = 0;
    for rule in program.rules() {
        per_round = per_round.saturating_add(rule.actions().len() as u64 + 2);
    }
    per_round = per_round.saturating_add(3 * program.segments().len() as u64);
    if let Some(scorer) = program.scorer() {
        for model in scorer.models() {
            per_round = per_round.saturating_add(2 * (model.thresholds.len() + model.bands.len()) as u64 + 2);
        }
    }
    let limits = program.limits();
    let bound = per_round
        .saturating_mul(MAX_CASCADE as u64 + 1)
        .saturating_add(policy::MAX_DEFERRED as u64)
        .saturating_add(limits.max_pending_approvals as u64)
        .saturating_add(16);
    bound <= limits.max_effects_per_step as u64
}

/// How much older than a contact's last change an event may be, by default: 7 days.
pub const DEFAULT_MAX_LATENESS_DAYS: i64 = 7;

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
        let fields = program.schema().contact_fields().iter().map(|(name, _)| name.to_string()).collect();
        let model_ids =
            program.scorer().map(|s| s.models().iter().map(|m| m.id().clone()).collect()).unwrap_or_default();
        Engine {
            score_models,
            lifecycle: LIFECYCLE_STAGES.iter().map(|s| s.to_string()).collect(),
            max_lateness: crate::time::Duration::from_days(DEFAULT_MAX_LATENESS_DAYS)
                .unwrap_or(crate::time::Duration::ZERO),
            timed,
            listening,
            dedup_window: DEDUP_WINDOW,
            fields,
            model_ids,
            effects_always_fit: effects_always_fit(&program),
            program,
        }
    }

    /// How many recent event ids each contact remembers to recognise a redelivered
    /// event as a duplicate (default [`DEDUP_WINDOW`], 64; clamped to
    /// 1..=[`MAX_DEDUP_WINDOW`]). The guarantee: an event is ignored as a duplicate when
    /// its id is among the last `window` distinct event ids the contact handled; one
    /// redelivered after more than that is handled again, and its effects carry the same
    /// idempotency keys as the first time, so a receiver that de-duplicates by key
    /// still performs them once (`docs/engine.md`, "Idempotency keys and duplicates").
    /// Each remembered id costs 16 bytes in memory and 34 in the state's JSON; a
    /// smaller window than a state holds forgets the oldest ids at its next event.
    ///
    /// ```
    /// use std::sync::Arc;
    /// use nurture::engine::{Engine, EngineScratch};
    /// use nurture::{Program, Timestamp};
    ///
    /// let program = Program::from_json(r#"{"version": 1, "schema": {"events": {"visit": {}}}}"#)?;
    /// let engine = Engine::new(Arc::new(program)).with_dedup_window(2);
    /// assert_eq!(engine.dedup_window(), 2);
    /// let schema = engine.program().schema();
    /// let t = Timestamp::from_unix(1_767_225_600, 0)?;
    /// let contact = schema.contact("c1").build();
    /// let mut state = engine.new_state(&contact, t);
    /// let mut scratch = EngineScratch::default();
    /// for id in ["e1", "e2", "e3"] {
    ///     let event = schema.event(id, "c1", "visit", t)?.build();
    ///     assert!(!engine.handle_event(&mut state, &contact, &event, &mut scratch)?.duplicate);
    /// }
    /// // `e3` and `e2` are remembered; `e1` has left the window of 2.
    /// let again = |id| schema.event(id, "c1", "visit", t).map(|e| e.build());
    /// assert!(engine.handle_event(&mut state, &contact, &again("e3")?, &mut scratch)?.duplicate);
    /// assert!(!engine.handle_event(&mut state, &contact, &again("e1")?, &mut scratch)?.duplicate);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn with_dedup_window(mut self, window: usize) -> Engine {
        self.dedup_window = window.clamp(1, MAX_DEDUP_WINDOW);
        self
    }

    /// The duplicate window ([`Engine::with_dedup_window`]).
    pub fn dedup_window(&self) -> usize {
        self.dedup_window
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

    /// A contact's score in the model with id `model` at `now`, decay applied; `None`
    /// when the program has no such model.
    ///
    /// ```
    /// use std::sync::Arc;
    /// use nurture::engine::{Engine, EngineScratch};
    /// use nurture::{Program, Timestamp};
    ///
    /// let program = Program::from_json(r#"{"version": 1,
    ///   "schema": {"events": {"page_visit": {}}},
    ///   "scoring": {"models": [{"id": "engagement",
    ///     "rules": [{"id": "visit", "on": "page_visit", "points": 5}]}]}}"#)?;
    /// let engine = Engine::new(Arc::new(program));
    /// let schema = engine.program().schema();
    /// let now = Timestamp::from_unix(1_767_225_600, 0)?;
    /// let contact = schema.contact("c1").build();
    /// let mut state = engine.new_state(&contact, now);
    /// let visit = schema.event("e1", "c1", "page_visit", now)?.build();
    /// let _ = engine.handle_event(&mut state, &contact, &visit, &mut EngineScratch::default())?;
    /// assert_eq!(engine.score(&state, "engagement", now), Some(5.0));
    /// assert_eq!(engine.score(&state, "fit", now), None);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn score(&self, state: &ContactState, model: &str, now: Timestamp) -> Option<f64> {
        let scorer = self.program.scorer()?;
        scorer.value(state.scores()?, scorer.model_index(model)?, now)
    }

    /// The band a contact's score in the model with id `model` is in at `now`.
    pub fn band<'s>(&'s self, state: &ContactState, model: &str, now: Timestamp) -> Option<&'s str> {
        let scorer = self.program.scorer()?;
        scorer.band(state.scores()?, scorer.model_index(model)?, now)
    }

    /// A fresh state for `contact` as of `at`, fit rules evaluated and segments placed
    /// (without effects: a new contact enters its segments silently, and a fit score
    /// already above a threshold reports no crossing). [`Engine::create`] is the same
    /// as a step, with the effects.
    pub fn new_state(&self, contact: &Contact, at: Timestamp) -> ContactState {
        let mut state = self.empty_state(contact, at);
        if let (Some(scorer), Some(scores)) = (self.program.scorer(), state.scores.as_mut()) {
            // A fresh state is of the scorer's own shape and `at` is its start.
            let _ = scorer.handle_attributes(scores, contact, at);
        }
        let mut scratch = EngineScratch::default();
        self.bind_values(&state, at, &mut scratch);
        self.evaluate_segments(contact, at, &mut scratch);
        state.segments = self.members(&scratch.segments);
        state
    }

    /// Creates a contact's state at `at` as a step of its own, with its effects: fit
    /// rules are scored from zero, so a contact created above a threshold (or in a band)
    /// reports the crossing and starts the threshold and band rules listening for it;
    /// segments are evaluated from none, so each segment the contact is in gives a
    /// `SegmentEntered` effect and starts its segment rules; the cascade then runs as
    /// after an event. Attribute rules do not fire: a contact created with a field set
    /// has not changed it (a host that wants them calls
    /// [`Engine::handle_attribute_change`] from an empty contact instead). The
    /// effects' cause is [`Cause::Created`]. The state equals what
    /// [`Engine::new_state`] gives, plus what the fired rules changed.
    ///
    /// ```
    /// use std::sync::Arc;
    /// use nurture::engine::{EffectKind, Engine, EngineScratch};
    /// use nurture::{Program, Timestamp};
    ///
    /// let program = Program::from_json(r#"{"version": 1,
    ///   "schema": {"contact": {"title": "string"}, "events": {}},
    ///   "scoring": {"models": [{"id": "fit",
    ///     "rules": [{"id": "vp", "fit": "contact.title == 'VP'", "points": 60}],
    ///     "thresholds": [{"id": "mql", "enter": 50}]}]},
    ///   "rules": [{"id": "handoff", "on": {"score": "fit", "threshold": "mql"},
    ///              "actions": [{"type": "add_tag", "tag": "mql"}]}]}"#)?;
    /// let engine = Engine::new(Arc::new(program));
    /// let now = Timestamp::from_unix(1_767_225_600, 0)?;
    /// let contact = engine.program().schema().contact("c1").set("title", "VP")?.build();
    /// let (state, outcome) = engine.create(&contact, now, &mut EngineScratch::default())?;
    /// assert!(state.has_tag("mql"));
    /// assert!(matches!(outcome.effects[0].kind, EffectKind::ThresholdCrossed { .. }));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Errors
    ///
    /// [`EngineError::Score`] when the fit points cannot be computed.
    pub fn create(
        &self,
        contact: &Contact,
        at: Timestamp,
        scratch: &mut EngineScratch,
    ) -> Result<(ContactState, Outcome), EngineError> {
        let mut state = self.empty_state(contact, at);
        let mut step = step::Step::new(&state, Cause::Created(at), at, contact);
        if let (Some(scorer), Some(scores)) = (self.program.scorer(), state.scores.as_mut()) {
            let update = scorer.handle_attributes(scores, contact, at)?;
            self.score_effects(&mut step, &update);
        }
        // The cascade evaluates segments from none: every membership is an entry.
        let outcome = self.finish(&mut state, step, scratch)?;
        Ok((state, outcome))
    }

    /// A state with nothing scored and no segments.
    fn empty_state(&self, contact: &Contact, at: Timestamp) -> ContactState {
        ContactState {
            format: STATE_FORMAT,
            contact: contact.id().clone(),
            scores: self.program.scorer().map(|scorer| scorer.new_state(at)),
            counters: self.program.counters().new_state(),
            tags: Default::default(),
            lists: Default::default(),
            stage: None,
            owner: None,
            seen: Default::default(),
            seen_fnv64: Default::default(),
            steps: 0,
            fields: self.fields.clone(),
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
            keyed: Default::default(),
            policy: Default::default(),
            deferred: Vec::new(),
            journeys: Vec::new(),
            journey_log: Default::default(),
        }
    }

    fn score_ids(&self) -> Vec<crate::id::ScoreId> {
        self.model_ids.clone()
    }

    /// Whether a state was made under this program (same score models by id and shape,
    /// same number of counters, same contact fields by name and order); if not,
    /// [`Engine::adopt`] carries it over. A format-1 state, which did not record its
    /// contact fields, is taken to match this program's.
    pub fn fits(&self, state: &ContactState) -> bool {
        self.misfit(state).is_none()
    }

    /// What keeps a state from fitting this program, if anything.
    /// Whether the state recorded this program's contact fields: the same shared list
    /// (states this engine made or adopted), or an equal one (a state loaded from a
    /// snapshot).
    fn same_fields(&self, state: &ContactState) -> bool {
        Arc::ptr_eq(&state.fields, &self.fields) || state.fields == self.fields
    }

    fn misfit(&self, state: &ContactState) -> Option<String> {
        if state.format != STATE_FORMAT {
            return Some(format!("state format {}", state.format));
        }
        if state.score_models != self.model_ids {
            let ids = |v: &[crate::id::ScoreId]| v.iter().map(|m| m.as_str()).collect::<Vec<_>>().join(", ");
            return Some(format!(
                "score models [{}], the program's [{}]",
                ids(&state.score_models),
                ids(&self.model_ids)
            ));
        }
        let counters = self.program.condition_names().counters().len();
        if state.counter_count != counters {
            return Some(format!("{} counters, the program's {counters}", state.counter_count));
        }
        if !state.fields.is_empty() && !self.same_fields(state) {
            return Some(format!(
                "contact fields [{}], the program's [{}]",
                state.fields.join(", "),
                self.fields.join(", ")
            ));
        }
        let fits = match (self.program.scorer(), &state.scores) {
            (Some(scorer), Some(scores)) => scorer.fits(scores),
            (None, None) => true,
            _ => false,
        };
        (!fits).then(|| "score state of another shape".to_string())
    }

    /// Carries a contact built under the program a state last ran with over to this
    /// program's schema: attributes are matched by field name (recorded in the state),
    /// never by position; a field this schema no longer has, or whose type changed
    /// (an `int` is still accepted for a `double`), is dropped. A contact already of
    /// this schema (the state fits) comes back as it is. Call it before
    /// [`Engine::adopt`], which takes the contact as this program sees it.
    ///
    /// ```
    /// use std::sync::Arc;
    /// use nurture::engine::Engine;
    /// use nurture::{Program, Timestamp, Value};
    ///
    /// let old = Engine::new(Arc::new(Program::from_json(r#"{"version": 1,
    ///   "schema": {"contact": {"plan": "string", "seats": "int"}}}"#)?));
    /// // `age` sorts before `plan`: by position, `plan` would now read `age`'s slot.
    /// let new = Engine::new(Arc::new(Program::from_json(r#"{"version": 1,
    ///   "schema": {"contact": {"age": "int", "plan": "string"}}}"#)?));
    /// let t = Timestamp::from_unix(1_767_225_600, 0)?;
    /// let contact = old.program().schema().contact("c1").set("plan", "pro")?.set("seats", 5000)?.build();
    /// let state = old.new_state(&contact, t);
    /// let moved = new.adopt_contact(&state, &contact);
    /// let schema = new.program().schema();
    /// assert_eq!(schema.attribute(&moved, "plan"), Some(&Value::from("pro")));
    /// assert_eq!(schema.attribute(&moved, "age"), None);
    /// let state = new.adopt(state, &moved, t);
    /// assert!(new.fits(&state));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn adopt_contact(&self, state: &ContactState, contact: &Contact) -> Contact {
        let schema = self.program.schema();
        let fields = schema.contact_fields();
        // A format-1 state did not record its fields: taken to match this program's.
        if state.fields.is_empty() || self.same_fields(state) {
            return contact.clone();
        }
        let mut moved = schema.contact(contact.id().clone()).build();
        for (name, value) in state.fields.iter().zip(contact.attributes().slots()) {
            let (Some(value), Some(slot)) = (value, fields.slot(name)) else {
                continue;
            };
            let ty = fields.ty(slot);
            let value = match value {
                Value::Int(i) if *ty == crate::value::Type::Double => Value::Double(*i as f64),
                v if v.has_type(ty) => v.clone(),
                _ => continue,
            };
            moved.put(slot, Some(value));
        }
        moved
    }

    /// Carries a state made under an earlier program over to this one, by stable ids
    /// (`contact` as this program sees it: [`Engine::adopt_contact`]):
    /// score models still present with an unchanged shape keep their points (others
    /// start at zero, fit rules evaluated); repeat-policy and inactivity memory is kept
    /// for rules still present; tags, lists, stage, owner, duplicates and pending
    /// approvals are kept; counters are kept when their number is unchanged (they are
    /// matched by position); segments are re-evaluated at `now`, silently. Journey
    /// enrolments on a version the program still has stay on it; those on a version it
    /// no longer has follow the current version's `upgrade` policy: `move` puts them
    /// on the step with the same id, `exit` and `finish` (whose version was not kept)
    /// end them with reason `superseded` at the contact's next step.
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
        state.fields.clone_from(&self.fields);
        let counters = self.program.condition_names().counters().len();
        if state.counter_count != counters {
            state.counters = self.program.counters().new_state();
            state.counter_count = counters;
        }
        let present = |id: &String| self.program.rule_by_id(id).is_some();
        state.fired.retain(|id, _| present(id));
        state.quiet.retain(present);
        state.occurred.retain(|id, _| present(id));
        self.adopt_journeys(&mut state);
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

    /// Rejects a pending effect: it is dropped and returned, for the record.
    #[must_use = "the effect must be delivered (or recorded as rejected)"]
    pub fn reject(&self, state: &mut ContactState, key: IdempotencyKey) -> Option<Effect> {
        state.take_pending(key)
    }
}
