//! The human in the loop: effects held for approval expire after the policy's
//! `approval_expires` (an effect says so), and an approval re-checks the rule's
//! condition and, for a send, the send policy at the instant of approval, recording the
//! approver, their note and their edits on the effect.

use super::step::*;
use super::*;
use crate::def::ActionDef;
use crate::expr::Activation;
use crate::policy::{Reason, SendDecision, SendRequest, Verdict, MARKETING};

impl Engine {
    /// When the oldest held effect expires (`None`: none held, or no expiry).
    pub(super) fn approval_deadline(&self, state: &ContactState) -> Option<Timestamp> {
        let expires = self.program.policy()?.approval_expires()?;
        state.pending.iter().filter_map(|e| e.at.checked_add(expires)).min()
    }

    /// Held effects whose time ran out come out suppressed, with reason
    /// `approval_expired`, once each.
    pub(super) fn expire_approvals(&self, state: &mut ContactState, step: &mut Step<'_>) {
        let Some(expires) = self.program.policy().and_then(|p| p.approval_expires()) else { return };
        let now = step.now;
        let due = |e: &Effect| e.at.checked_add(expires).is_some_and(|t| t <= now);
        if !state.pending.iter().any(due) {
            return;
        }
        let (expired, waiting): (Vec<Effect>, Vec<Effect>) =
            std::mem::take(&mut state.pending).into_iter().partition(due);
        state.pending = waiting;
        for mut effect in expired {
            let at = effect.at.checked_add(expires).unwrap_or(now);
            let purpose = match effect.kind.action() {
                Some(ActionDef::Send { purpose, .. }) => {
                    purpose.clone().unwrap_or_else(|| MARKETING.to_string())
                }
                _ => "notification".to_string(),
            };
            let mut decision = effect
                .decision
                .take()
                .unwrap_or_else(|| SendDecision::new(Verdict::Suppressed, &purpose, false));
            decision.verdict = Verdict::Suppressed;
            decision.until = None;
            decision.reason = Some(Reason::ApprovalExpired { at });
            effect.key = {
                let mut expired = crate::hash::SipHasher128::keys();
                expired.part(b"expired").part(&effect.key.0.to_le_bytes());
                IdempotencyKey(expired.finish())
            };
            effect.cause = step.cause.clone();
            effect.at = now;
            effect.status = Status::Suppressed;
            effect.decision = Some(decision);
            step.outcome.effects.push(effect);
        }
    }

    /// Approves a held effect at `now` with the approver, a note and edits to a send's
    /// `params`. The rule's condition is evaluated again over the contact as it is now
    /// (a condition that cannot be evaluated without the original event is taken as
    /// holding); a send is decided again by the send policy, so it can come back ready,
    /// deferred, suppressed or "would have sent". `Ok(None)` when no held effect has
    /// this key (already decided, rejected or expired).
    ///
    /// # Errors
    ///
    /// As [`Engine::handle_timeout`]: another contact, an instant before the state's
    /// last change, or a state of another format; nothing changes.
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
    /// let sent = engine.approve_with(&mut state, &contact, held.effects[0].key, approval, later, &mut scratch)?.unwrap();
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
    ) -> Result<Option<Effect>, EngineError> {
        self.check(state, contact.id())?;
        if now < state.last {
            return Err(crate::scoring::ScoreError::OutOfOrder.into());
        }
        // Expired ones first: an approval after the deadline finds nothing.
        let mut step = Step::new(state, Cause::Timeout(now), now, contact);
        self.expire_approvals(state, &mut step);
        let Some(mut effect) = state.take_pending(key) else {
            return Ok(None);
        };
        effect.params.extend(approval.params.clone());
        effect.approval = Some(approval);
        effect.status = Status::Ready;
        let Some(action) = effect.kind.action() else {
            return Ok(Some(effect));
        };
        // A rule's condition is checked again; a journey step's action has none of its
        // own (the journey's exits are checked at every step of the contact).
        let rule = match &effect.kind {
            EffectKind::Action { rule, .. } => self.program.rule_by_id(rule.as_str()),
            _ => None,
        };
        let holds = match rule.map(|r| self.program.rule(r)) {
            Some(rule) => match rule.condition() {
                Some(condition) => {
                    self.bind_values(state, now, scratch);
                    self.member_values(state, &mut scratch.segments);
                    let activation = Activation::new()
                        .with_contact(contact)
                        .with_now(now)
                        .with_counters(&scratch.counts)
                        .with_scores(&scratch.scores)
                        .with_segments(&scratch.segments)
                        .with_var_slots(&scratch.vars);
                    condition.eval_bool(&activation) != Ok(false)
                }
                None => true,
            },
            None => true,
        };
        let send = match action {
            ActionDef::Send { channel, purpose, campaign, .. } => {
                Some((*channel, purpose.clone().unwrap_or_else(|| MARKETING.to_string()), campaign.clone()))
            }
            _ => None,
        };
        if !holds {
            let purpose = send.as_ref().map_or("notification".to_string(), |s| s.1.clone());
            let mut decision = SendDecision::new(Verdict::Suppressed, &purpose, false);
            decision.reason = Some(Reason::ConditionFailed);
            effect.status = Status::Suppressed;
            effect.decision = Some(decision);
            return Ok(Some(effect));
        }
        if let Some((channel, purpose, campaign)) = send {
            let request = SendRequest { channel, purpose: &purpose, campaign: campaign.as_deref() };
            let decision = self.decide_send(state, contact, &request, false, now, now);
            effect.status = match decision.verdict {
                Verdict::Deferred => Status::Deferred,
                Verdict::Suppressed => Status::Suppressed,
                Verdict::Control => Status::Control,
                _ => Status::Ready,
            };
            if let (Verdict::Deferred, Some(until)) = (decision.verdict, decision.until) {
                let waiting = super::state::DeferredSend {
                    effect: Effect { decision: Some(decision.clone()), ..effect.clone() },
                    until,
                    since: now,
                    priority: 0,
                };
                state.deferred.push(waiting);
            }
            effect.decision = Some(decision);
        }
        Ok(Some(effect))
    }
}
