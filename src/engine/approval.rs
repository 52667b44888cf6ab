//! The human in the loop: any action marked `needs_approval` is held (it changes
//! nothing) until a person approves or rejects it, or until the policy's
//! `approval_expires` passes (an effect says so). An approval is a step of its own: the
//! rule's condition is checked again, a send is decided again by the send policy, any
//! other action takes effect then, with what it causes (tag, list, stage, owner,
//! attribute and score triggers, segments, journeys), and the approver, their note and
//! their edits are recorded on the effect.

use super::policy::{send_of, PendingSend};
use super::step::*;
use super::*;
use crate::def::ActionDef;
use crate::policy::{Reason, SendDecision, Verdict, MARKETING};

/// What a held effect is for, in its decision: a send's purpose, `notification` for an
/// owner notification, `action` for the others.
fn held_purpose(action: Option<&ActionDef>) -> String {
    match action {
        Some(ActionDef::Send { purpose, .. }) => purpose.clone().unwrap_or_else(|| MARKETING.to_string()),
        Some(ActionDef::NotifyOwner { .. }) => "notification".to_string(),
        _ => "action".to_string(),
    }
}

/// Marks an effect suppressed for `reason`.
fn suppress(effect: &mut Effect, reason: Reason) {
    let mut decision = effect.decision.take().unwrap_or_else(|| {
        SendDecision::new(Verdict::Suppressed, &held_purpose(effect.kind.action()), false)
    });
    decision.verdict = Verdict::Suppressed;
    decision.until = None;
    decision.reason = Some(reason);
    effect.status = Status::Suppressed;
    effect.decision = Some(decision);
}

impl Engine {
    /// When the oldest held effect expires (`None`: none held, or no expiry).
    pub(super) fn approval_deadline(&self, state: &ContactState) -> Option<Timestamp> {
        let expires = self.program.policy()?.approval_expires()?;
        state.pending.iter().filter_map(|e| e.at.checked_add(expires)).min()
    }

    /// Whether a held effect's time ran out by `now`.
    fn expired(&self, effect: &Effect, now: Timestamp) -> bool {
        let expires = self.program.policy().and_then(|p| p.approval_expires());
        expires.and_then(|x| effect.at.checked_add(x)).is_some_and(|t| t <= now)
    }

    /// Held effects whose time ran out come out suppressed, with reason
    /// `approval_expired`, once each.
    pub(super) fn expire_approvals(&self, state: &mut ContactState, step: &mut Step<'_>) {
        let Some(expires) = self.program.policy().and_then(|p| p.approval_expires()) else { return };
        let now = step.now;
        if !state.pending.iter().any(|e| self.expired(e, now)) {
            return;
        }
        let (expired, waiting): (Vec<Effect>, Vec<Effect>) =
            std::mem::take(&mut state.pending).into_iter().partition(|e| self.expired(e, now));
        state.pending = waiting;
        for mut effect in expired {
            let at = effect.at.checked_add(expires).unwrap_or(now);
            suppress(&mut effect, Reason::ApprovalExpired { at });
            effect.key = {
                let mut expired = crate::hash::SipHasher128::keys();
                expired.part(b"expired").part(&effect.key.0.to_le_bytes());
                IdempotencyKey(expired.finish())
            };
            effect.cause = step.cause.clone();
            effect.at = now;
            step.outcome.effects.push(effect);
        }
    }

    /// Approves a held effect at `now` with the approver, a note and edits to a send's
    /// `params`, as a step of its own. The rule's condition is evaluated again over the
    /// contact as it is now (a condition that cannot be evaluated without the original
    /// event is taken as holding); a send is decided again by the send policy, so it
    /// can come back ready, deferred, suppressed or "would have sent"; any other action
    /// takes effect now, and what it causes follows in the same step.
    ///
    /// The outcome's first effect is the approved one (same key as when it was held);
    /// the effects it caused, held effects that expired and deferred sends that came due
    /// follow. `Ok(None)` when no held effect has this key (already decided, rejected or
    /// expired); nothing changes then.
    ///
    /// # Errors
    ///
    /// As [`Engine::handle_timeout`]: another contact, an instant before the state's
    /// last change, a state of another format, or a step past the effects limit;
    /// nothing changes.
    ///
    /// ```
    /// use std::sync::Arc;
    /// use nurture::engine::{Approval, Engine, EngineScratch, Status};
    /// use nurture::{Program, Timestamp};
    ///
    /// let program = Program::from_json(r#"{"version": 1,
    ///   "schema": {"events": {"demo": {}}},
    ///   "rules": [{"id": "r", "on": "demo", "actions": [{"type": "send", "channel": "email",
    ///     "template": "t", "needs_approval": true, "params": {"offer": "'10%'"}}]}],
    ///   "policy": {"channels": [{"channel": "email", "consent": "opt_out"}]}}"#)?;
    /// let engine = Engine::new(Arc::new(program));
    /// let schema = engine.program().schema();
    /// let t0 = Timestamp::from_unix(1_767_225_600, 0)?;
    /// let contact = schema.contact("c1").build();
    /// let mut state = engine.new_state(&contact, t0);
    /// let mut scratch = EngineScratch::default();
    /// let demo = schema.event("e1", "c1", "demo", t0)?.build();
    /// let held = engine.handle_event(&mut state, &contact, &demo, &mut scratch)?;
    /// assert_eq!(held.effects[0].status, Status::PendingApproval);
    /// let approval = Approval::by("ana").with_note("bigger offer").with_param("offer", "15%");
    /// let later = Timestamp::from_unix(1_767_229_200, 0)?;
    /// let outcome = engine.approve_with(&mut state, &contact, held.effects[0].key, approval, later, &mut scratch)?.unwrap();
    /// let sent = &outcome.effects[0];
    /// assert_eq!(sent.status, Status::Ready);
    /// assert_eq!(sent.params["offer"], "15%");
    /// assert_eq!(sent.approval.as_ref().unwrap().approver, "ana");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn approve_with(
        &self,
        state: &mut ContactState,
        contact: &crate::schema::Contact,
        key: IdempotencyKey,
        approval: Approval,
        now: Timestamp,
        scratch: &mut EngineScratch,
    ) -> Result<Option<Outcome>, EngineError> {
        self.check(state, contact.id())?;
        self.check_contact(contact)?;
        if now < state.last {
            return Err(crate::scoring::ScoreError::OutOfOrder.into());
        }
        if !state.pending.iter().any(|e| e.key == key && !self.expired(e, now)) {
            return Ok(None);
        }
        // Rare, and the cascade can fail midway: always all or nothing by copy.
        let saved = state.clone();
        let result = self.approval_step(state, contact, key, approval, now, scratch);
        if result.is_err() {
            *state = saved;
        }
        result.map(Some)
    }

    /// Approves a held effect at `now` with no approver named: as
    /// [`Engine::approve_with`] with [`Approval::default`].
    ///
    /// # Errors
    ///
    /// As [`Engine::approve_with`].
    pub fn approve(
        &self,
        state: &mut ContactState,
        contact: &crate::schema::Contact,
        key: IdempotencyKey,
        now: Timestamp,
        scratch: &mut EngineScratch,
    ) -> Result<Option<Outcome>, EngineError> {
        self.approve_with(state, contact, key, Approval::default(), now, scratch)
    }

    /// The approval step (the held effect is there and has not expired).
    fn approval_step(
        &self,
        state: &mut ContactState,
        contact: &crate::schema::Contact,
        key: IdempotencyKey,
        approval: Approval,
        now: Timestamp,
        scratch: &mut EngineScratch,
    ) -> Result<Outcome, EngineError> {
        let mut step = Step::new(state, Cause::Approval { key, at: now }, now, contact);
        let Some(mut effect) = state.take_pending(key) else {
            return self.finish(state, step, scratch);
        };
        effect.params.extend(approval.params.clone());
        effect.approval = Some(approval);
        effect.status = Status::Ready;
        let action = effect.kind.action().cloned();
        let holds = self.still_holds(state, contact, &effect, now, scratch);
        let index = step.outcome.effects.len();
        match action {
            _ if !holds => suppress(&mut effect, Reason::ConditionFailed),
            Some(action) => match send_of(&action) {
                // Decided with the step's other sends, at its end.
                Some((_, _, _, priority)) => {
                    step.sends.push(PendingSend::new(index, priority, now, false));
                }
                None => {
                    if let Err(message) = self.apply(state, &action, &mut step) {
                        suppress(&mut effect, Reason::NotApplied { message });
                    }
                }
            },
            None => {}
        }
        step.outcome.effects.push(effect);
        self.release_due(state, &mut step);
        self.finish(state, step, scratch)
    }

    /// Whether the condition of the rule behind a held effect holds at `now`: a rule
    /// without a condition, a journey step's action (the journey's exits are checked
    /// at every step of the contact) and a condition that needs the original event
    /// count as holding.
    fn still_holds(
        &self,
        state: &ContactState,
        contact: &crate::schema::Contact,
        effect: &Effect,
        now: Timestamp,
        scratch: &mut EngineScratch,
    ) -> bool {
        let EffectKind::Action { rule, .. } = &effect.kind else { return true };
        let Some(rule) = self.program.rule_by_id(rule.as_str()) else { return true };
        let Some(condition) = self.program.rule(rule).condition() else { return true };
        self.bind_values(state, now, scratch);
        self.member_values(state, &mut scratch.segments);
        let activation = scratch.activation(contact, now);
        condition.eval_bool(&activation) != Ok(false)
    }
}
