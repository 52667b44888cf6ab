//! The send policy at the engine: every action effect passes
//! [`Engine::emit_action`], a step's sends are decided together at its end in priority
//! order ([`Engine::decide_sends`]), deferred sends are released once their instant comes, and consent and
//! do-not-contact changes from events and actions are kept in the state.

use super::effect::Fnv;
use super::state::DeferredSend;
use super::step::*;
use super::*;
use crate::def::ActionDef;
use crate::policy::{Evaluation, Memberships, Reason, SendDecision, SendRequest, Verdict, MARKETING};
use crate::schema::Event;

/// How many deferred sends one contact may have waiting; more are suppressed
/// ([`Reason::Backlog`]).
pub(crate) const MAX_DEFERRED: usize = 256;

/// A send of the current step waiting for its decision ([`Engine::decide_sends`]).
pub(super) struct PendingSend {
    /// Where its effect is among the step's effects.
    index: usize,
    priority: u32,
    /// When it was first asked for (a released send: when it was first deferred).
    since: crate::time::Timestamp,
    /// Whether it is to be held for approval once the policy lets it go.
    approval: bool,
    /// A released deferred send: the record to put back if it is deferred again.
    released: Option<DeferredSend>,
}

impl PendingSend {
    /// A new send (not a released one) at `index` among the step's effects.
    pub(super) fn new(
        index: usize,
        priority: u32,
        since: crate::time::Timestamp,
        approval: bool,
    ) -> PendingSend {
        PendingSend { index, priority, since, approval, released: None }
    }
}

/// The effect status of a verdict.
fn status_of(verdict: Verdict) -> Status {
    match verdict {
        Verdict::Ready => Status::Ready,
        Verdict::Deferred => Status::Deferred,
        Verdict::Suppressed => Status::Suppressed,
        Verdict::PendingApproval => Status::PendingApproval,
        Verdict::Control => Status::Control,
    }
}

/// Where a change came from, for the consent history.
fn source_of(cause: &Cause) -> String {
    match cause {
        Cause::Event(id) => format!("event {}", id.as_str()),
        Cause::Timeout(at) => format!("timeout {at}"),
        Cause::AttributeChange(at) => format!("attribute change {at}"),
        Cause::Created(at) => format!("created {at}"),
        Cause::Approval { key, at } => format!("approval of {key} at {at}"),
    }
}

/// The parts of a send action the policy reads.
pub(super) fn send_of(action: &ActionDef) -> Option<(crate::def::Channel, String, Option<String>, u32)> {
    match action {
        ActionDef::Send { channel, purpose, campaign, priority, .. } => Some((
            *channel,
            purpose.clone().unwrap_or_else(|| MARKETING.to_string()),
            campaign.clone(),
            priority.unwrap_or(0),
        )),
        _ => None,
    }
}

impl Engine {
    /// Whether a contact is in the policy's global control group: a stable hash of the
    /// group's salt and the contact id, below the group's share (`false` without a
    /// control group). The same on every machine and every run.
    ///
    /// ```
    /// use std::sync::Arc;
    /// use nurture::engine::Engine;
    /// use nurture::id::ContactId;
    /// use nurture::Program;
    ///
    /// let program = Program::from_json(r#"{"version": 1, "schema": {},
    ///   "policy": {"control_group": {"percent": 10}}}"#)?;
    /// let engine = Engine::new(Arc::new(program));
    /// let members = (0..10_000).filter(|i| engine.in_control_group(&ContactId::from(format!("c{i}").as_str()))).count();
    /// assert!((900..1100).contains(&members), "{members}");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn in_control_group(&self, contact: &crate::id::ContactId) -> bool {
        let Some((basis_points, salt)) = self.program.policy().and_then(|p| p.control_group()) else {
            return false;
        };
        let hash =
            Fnv::new().bytes(b"control").bytes(salt.as_bytes()).bytes(contact.as_str().as_bytes()).finish();
        hash % 10_000 < u64::from(basis_points)
    }

    /// The decision on one send at `now`, first asked at `since`. A send that goes out
    /// (ready, held for approval, or "would have sent" in the control group) is
    /// remembered for the caps.
    pub(super) fn decide_send(
        &self,
        state: &mut ContactState,
        contact: &crate::schema::Contact,
        send: &SendRequest<'_>,
        approval: bool,
        now: crate::time::Timestamp,
        since: crate::time::Timestamp,
    ) -> SendDecision {
        let transactional = send.transactional();
        let mut decision = SendDecision::new(Verdict::Ready, send.purpose, transactional);
        let Some(policy) = self.program.policy() else {
            if approval {
                decision.verdict = Verdict::PendingApproval;
            }
            return decision;
        };
        let members = Memberships { lists: &state.lists, segments: &state.segments };
        match policy.evaluate(send, &state.policy, members, policy.zone_of(contact), now, since) {
            Evaluation::Suppressed(reason) => {
                decision.verdict = Verdict::Suppressed;
                decision.reason = Some(reason);
            }
            Evaluation::Deferred { until, reason } => {
                decision.verdict = Verdict::Deferred;
                decision.until = Some(until);
                decision.reason = Some(reason);
            }
            _ => {
                if !transactional && self.in_control_group(&state.contact) {
                    decision.verdict = Verdict::Control;
                    decision.reason = Some(Reason::ControlGroup);
                } else if approval {
                    decision.verdict = Verdict::PendingApproval;
                }
                policy.record_send(&mut state.policy, send, now);
            }
        }
        decision
    }

    /// Emits an action's effect: the one place every action effect passes. Owner
    /// notifications and other actions marked `needs_approval` are held for approval
    /// at once; a send waits in the step for the send policy's decision, which
    /// [`Engine::decide_sends`] makes at the end of the step for all of them together.
    pub(super) fn emit_action(&self, state: &mut ContactState, step: &mut Step<'_>, mut effect: Effect) {
        let Some(action) = effect.kind.action() else {
            step.outcome.effects.push(effect);
            return;
        };
        let approval = action.needs_approval();
        match send_of(action) {
            None => {
                if approval {
                    effect.status = Status::PendingApproval;
                    self.hold_for_approval(state, step, &effect);
                }
            }
            Some((_, _, _, priority)) => {
                step.sends.push(PendingSend::new(step.outcome.effects.len(), priority, step.now, approval));
            }
        }
        step.outcome.effects.push(effect);
    }

    /// Decides the step's sends at the end of the step, on the consent, suppressions
    /// and caps as the step leaves them: higher priority first, so that when caps leave
    /// room for fewer sends than the step wants, the higher-priority ones go; among
    /// equal priorities, in the order they were emitted (released deferred sends
    /// first). The effects keep their places in the step's order. A send that goes out
    /// (ready, held for approval, or "would have sent") is remembered for the caps; a
    /// released send deferred again goes back to waiting without an effect.
    pub(super) fn decide_sends(&self, state: &mut ContactState, step: &mut Step<'_>) {
        if step.sends.is_empty() {
            return;
        }
        let mut sends = std::mem::take(&mut step.sends);
        // Stable: equal priorities keep their emission order.
        sends.sort_by_key(|s| std::cmp::Reverse(s.priority));
        let mut dropped = Vec::new();
        for pending in sends {
            let Some(effect) = step.outcome.effects.get(pending.index) else { continue };
            let Some((channel, purpose, campaign, _)) = effect.kind.action().and_then(send_of) else {
                continue;
            };
            let send = SendRequest { channel, purpose: &purpose, campaign: campaign.as_deref() };
            let mut decision =
                self.decide_send(state, &step.contact, &send, pending.approval, step.now, pending.since);
            if let Some(mut waiting) = pending.released {
                if let (Verdict::Deferred, Some(until)) = (decision.verdict, decision.until) {
                    waiting.until = until;
                    state.deferred.push(waiting);
                    dropped.push(pending.index);
                    continue;
                }
                decision.released = Some(waiting.effect.key.to_string());
            } else if decision.verdict == Verdict::Deferred && state.deferred.len() >= MAX_DEFERRED {
                decision.verdict = Verdict::Suppressed;
                decision.until = None;
                decision.reason = Some(Reason::Backlog { limit: MAX_DEFERRED as u32 });
            }
            let status = status_of(decision.verdict);
            let until = decision.until.filter(|_| decision.verdict == Verdict::Deferred);
            let Some(effect) = step.outcome.effects.get_mut(pending.index) else { continue };
            effect.status = status;
            effect.decision = Some(decision);
            let effect = effect.clone();
            if let Some(until) = until {
                state.deferred.push(DeferredSend {
                    effect,
                    until,
                    since: pending.since,
                    priority: pending.priority,
                });
            } else if status == Status::PendingApproval {
                self.hold_for_approval(state, step, &effect);
            }
        }
        // Released sends deferred again leave no effect (indices descending).
        dropped.sort_unstable();
        for index in dropped.into_iter().rev() {
            step.outcome.effects.remove(index);
        }
    }

    /// Releases the deferred sends whose instant has come, to be decided again at the
    /// end of the step with its other sends ([`Engine::decide_sends`]): among those due,
    /// the earliest instant first, then higher priority, then the order they were
    /// deferred. Each is emitted keyed from the deferred effect's key.
    pub(super) fn release_due(&self, state: &mut ContactState, step: &mut Step<'_>) {
        self.expire_approvals(state, step);
        let now = step.now;
        if state.deferred.iter().all(|d| d.until > now) {
            return;
        }
        let (mut due, waiting): (Vec<DeferredSend>, Vec<DeferredSend>) =
            std::mem::take(&mut state.deferred).into_iter().partition(|d| d.until <= now);
        state.deferred = waiting;
        due.sort_by(|a, b| {
            a.until
                .cmp(&b.until)
                .then(b.priority.cmp(&a.priority))
                .then(a.since.cmp(&b.since))
                .then(a.effect.key.cmp(&b.effect.key))
        });
        for waiting in due {
            let Some(action) = waiting.effect.kind.action() else { continue };
            if send_of(action).is_none() {
                continue;
            }
            // A send deferred after its approval is not held again.
            let approval = action.needs_approval() && waiting.effect.approval.is_none();
            let mut effect = waiting.effect.clone();
            let mut release = crate::hash::SipHasher128::keys();
            release.part(b"release").part(&waiting.effect.key.0.to_le_bytes());
            effect.key = IdempotencyKey(release.finish());
            effect.cause = step.cause.clone();
            effect.at = now;
            step.sends.push(PendingSend {
                index: step.outcome.effects.len(),
                priority: waiting.priority,
                since: waiting.since,
                approval,
                released: Some(waiting),
            });
            step.outcome.effects.push(effect);
        }
    }

    /// Consent and do-not-contact changes the policy names for this event's type.
    pub(super) fn policy_event(&self, state: &mut ContactState, event: &Event, now: crate::time::Timestamp) {
        let Some(policy) = self.program.policy() else { return };
        let source = || format!("event {} {}", event.type_name().as_str(), event.id().as_str());
        for e in policy.consent_events.iter().filter(|e| e.event_type == event.event_type()) {
            state.policy.set_consent(e.channel, &e.purpose, e.status, now, &source());
        }
        for e in policy.dnc_events.iter().filter(|e| e.event_type == event.event_type()) {
            state.policy.mark_do_not_contact(e.channel, e.reason, now, &source());
        }
    }

    /// Applies `set_consent`, `do_not_contact` and `clear_do_not_contact` actions.
    pub(super) fn apply_policy_action(&self, state: &mut ContactState, action: &ActionDef, step: &Step<'_>) {
        let source = format!("action, {}", source_of(&step.cause));
        match action {
            ActionDef::SetConsent { channel, purpose, status, .. } => {
                let purpose = purpose.as_deref().unwrap_or(MARKETING);
                state.policy.set_consent(*channel, purpose, *status, step.now, &source);
            }
            ActionDef::DoNotContact { channel, reason, .. } => {
                state.policy.mark_do_not_contact(*channel, *reason, step.now, &source);
            }
            ActionDef::ClearDoNotContact { channel, .. } => {
                state.policy.clear_do_not_contact(*channel, step.now, &source);
            }
            _ => {}
        }
    }
}
