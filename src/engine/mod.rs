//! The engine: a deterministic, I/O-free state machine. Given a contact's state and an
//! event (or the passage of time) it returns what must happen, as [`Effect`]s in a
//! documented order, and when the contact next needs waking.
//!
//! One event is handled in this order:
//!
//! 1. **Duplicates.** An event whose id is among the contact's last [`DEDUP_WINDOW`]
//!    events is ignored: the outcome is marked `duplicate` and carries no effects.
//! 2. **Scores.** The event is scored; each threshold crossing and band change becomes an
//!    effect, models in declaration order, thresholds before bands.
//! 3. **Rules.** The event is counted in the windowed counters, then matched against the
//!    rules with `score.NAME` bound to the scores after step 2. Each matched rule's
//!    actions become effects, rules in declaration order and actions in the rule's
//!    order. Tags, lists, the lifecycle stage and the owner change in the state as their
//!    actions are emitted. Rules whose condition fails to evaluate come last, as
//!    `RuleError` effects.
//! 4. **Wake-up.** `next_wake` is when decay alone can next move a score across a
//!    threshold or band; the host calls [`Engine::handle_timeout`] then.
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

use crate::def::ActionDef;
use crate::expr::Activation;
use crate::id::ContactId;
use crate::program::{MatchScratch, Program};
use crate::schema::{Contact, Event};
use crate::scoring::{ScoreError, ScoreScratch, ScoreUpdate};
use crate::time::Timestamp;
use crate::value::Value;
use effect::key_of;

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
}

/// Reusable buffers for the engine's calls; one per thread.
#[derive(Clone, Debug, Default)]
pub struct EngineScratch {
    matching: MatchScratch,
    scoring: ScoreScratch,
    counts: Vec<Option<Value>>,
    scores: Vec<Option<Value>>,
}

/// A compiled program, ready to run contacts through.
#[derive(Clone, Debug)]
pub struct Engine {
    program: Arc<Program>,
    /// Per schema score (`score.NAME`, in declaration order): the model of that id.
    score_models: Vec<Option<usize>>,
}

impl Engine {
    /// An engine for a compiled program.
    pub fn new(program: Arc<Program>) -> Engine {
        let score_models = match program.scorer() {
            Some(scorer) => program
                .schema()
                .scores()
                .iter()
                .map(|(name, _)| scorer.models().iter().position(|m| m.id().as_str() == name))
                .collect(),
            None => Vec::new(),
        };
        Engine { program, score_models }
    }

    /// The program.
    pub fn program(&self) -> &Arc<Program> {
        &self.program
    }

    /// A fresh state for `contact` as of `at`, fit rules evaluated.
    pub fn new_state(&self, contact: &Contact, at: Timestamp) -> ContactState {
        let scores = self.program.scorer().map(|scorer| {
            let mut scores = scorer.new_state(at);
            // A fresh state is of the scorer's own shape and `at` is its start.
            let _ = scorer.handle_attributes(&mut scores, contact, at);
            scores
        });
        ContactState {
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
        }
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
        if event.at() < state.last {
            return Err(ScoreError::OutOfOrder.into());
        }
        if state.seen.contains(event.id()) {
            let next_wake = state.scores.as_ref().and_then(|s| self.scorer_wake(s));
            return Ok(Outcome { effects: Vec::new(), next_wake, duplicate: true });
        }
        let now = event.at();
        let cause = Cause::Event(event.id().clone());
        let mut outcome = Outcome::default();
        // 2. Scores (checked first: a refused event changes nothing).
        if let (Some(scorer), Some(scores)) = (self.program.scorer(), state.scores.as_mut()) {
            let update = scorer.handle_event_in(scores, contact, event, &mut scratch.scoring)?;
            self.score_effects(state.contact.as_str(), &cause, now, update, &mut outcome);
        }
        state.remember(event.id());
        // 3. Rules, with the scores as they now stand.
        let counters = self.program.counters();
        counters.observe(&mut state.counters, contact, event);
        counters.values(&state.counters, now, &mut scratch.counts);
        scratch.scores.clear();
        if let (Some(scorer), Some(scores)) = (self.program.scorer(), state.scores.as_ref()) {
            for model in &self.score_models {
                scratch.scores.push(model.and_then(|m| scorer.value(scores, m, now)).map(Value::Double));
            }
        }
        let activation = Activation::new()
            .with_contact(contact)
            .with_event(event)
            .with_now(now)
            .with_counters(&scratch.counts)
            .with_scores(&scratch.scores);
        let matches = self.program.match_activation(event, &activation, &mut scratch.matching);
        for &rule in matches.rules {
            let rule = self.program.rule(rule);
            for (index, action) in rule.actions().iter().enumerate() {
                let index = u32::try_from(index).unwrap_or(u32::MAX);
                let key = key_of(
                    state.contact.as_str(),
                    &cause,
                    &[b"action", rule.id().as_str().as_bytes(), &index.to_le_bytes()],
                );
                let status = if needs_approval(action) { Status::PendingApproval } else { Status::Ready };
                apply_to_state(state, action);
                let effect = Effect {
                    key,
                    cause: cause.clone(),
                    at: now,
                    status,
                    kind: EffectKind::Action { rule: rule.id().clone(), index, action: action.clone() },
                };
                if status == Status::PendingApproval {
                    state.pending.push(effect.clone());
                }
                outcome.effects.push(effect);
            }
        }
        for (rule, error) in matches.errors {
            let rule = self.program.rule(*rule);
            outcome.effects.push(Effect {
                key: key_of(state.contact.as_str(), &cause, &[b"error", rule.id().as_str().as_bytes()]),
                cause: cause.clone(),
                at: now,
                status: Status::Ready,
                kind: EffectKind::RuleError { rule: rule.id().clone(), message: error.to_string() },
            });
        }
        state.last = now;
        Ok(outcome)
    }

    /// Handles the passage of time to `now`: the crossings decay alone caused.
    ///
    /// # Errors
    ///
    /// As [`Engine::handle_event`] for an instant before the state's last change.
    pub fn handle_timeout(&self, state: &mut ContactState, now: Timestamp) -> Result<Outcome, EngineError> {
        if state.format != STATE_FORMAT {
            return Err(EngineError::Format(state.format));
        }
        if now < state.last {
            return Err(ScoreError::OutOfOrder.into());
        }
        let cause = Cause::Timeout(now);
        let mut outcome = Outcome::default();
        if let (Some(scorer), Some(scores)) = (self.program.scorer(), state.scores.as_mut()) {
            let update = scorer.handle_timeout(scores, now)?;
            self.score_effects(state.contact.as_str(), &cause, now, &update, &mut outcome);
        }
        state.last = now;
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

    fn scorer_wake(&self, scores: &crate::scoring::ContactScores) -> Option<Timestamp> {
        let scorer = self.program.scorer()?;
        scorer.next_wake(scores, scores.last_change())
    }

    /// Threshold crossings and band changes as effects; the wake-up into the outcome.
    fn score_effects(
        &self,
        contact: &str,
        cause: &Cause,
        at: Timestamp,
        update: &ScoreUpdate,
        outcome: &mut Outcome,
    ) {
        for (score, threshold, direction) in &update.crossings {
            let dir: &[u8] = match direction {
                crate::scoring::Crossing::Up => b"up",
                crate::scoring::Crossing::Down => b"down",
            };
            outcome.effects.push(Effect {
                key: key_of(
                    contact,
                    cause,
                    &[b"threshold", score.as_str().as_bytes(), threshold.as_bytes(), dir],
                ),
                cause: cause.clone(),
                at,
                status: Status::Ready,
                kind: EffectKind::ThresholdCrossed {
                    score: score.clone(),
                    threshold: threshold.clone(),
                    direction: *direction,
                },
            });
        }
        for (score, from, to) in &update.band_changes {
            outcome.effects.push(Effect {
                key: key_of(
                    contact,
                    cause,
                    &[b"band", score.as_str().as_bytes(), to.as_deref().unwrap_or("").as_bytes()],
                ),
                cause: cause.clone(),
                at,
                status: Status::Ready,
                kind: EffectKind::BandChanged { score: score.clone(), from: from.clone(), to: to.clone() },
            });
        }
        outcome.next_wake = update.next_wake;
    }
}

fn needs_approval(action: &ActionDef) -> bool {
    matches!(
        action,
        ActionDef::Send { needs_approval: true, .. } | ActionDef::NotifyOwner { needs_approval: true, .. }
    )
}

/// The state an action changes inside the engine (the host mirrors it from the effect).
fn apply_to_state(state: &mut ContactState, action: &ActionDef) {
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
        ActionDef::SetLifecycleStage { stage } => state.stage = Some(stage.clone()),
        ActionDef::AssignOwner { owner } => state.owner = Some(owner.clone()),
        _ => {}
    }
}
