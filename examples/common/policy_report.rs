//! The send policy's summary for the quickstart: how every send the rules asked for was
//! decided, from an audit that runs the same events through the engine alone (the engine
//! is deterministic, so its decisions are the ones the host's engine made; the host's
//! delivery only sees the ready ones, and wake-ups' outcomes stay inside the host).

use std::collections::{BTreeMap, HashMap};

use nurture::engine::{Engine, EngineScratch, Outcome};
use nurture::policy::Verdict;
use nurture::{Contact, ContactId, Event, Timestamp};

/// Final decisions on the sends rules asked for.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct PolicyReport {
    /// Sent: ready at once, or when a deferral ended.
    pub ready: u64,
    /// Deferred at least once (by a cap or a send window).
    pub deferred: u64,
    /// Deferrals by what they waited for (`window`, `cap`).
    pub deferred_by: BTreeMap<String, u64>,
    /// Deferred, then ready when their instant came.
    pub released_ready: u64,
    /// Not sent, by reason (at once, or when a deferral ended).
    pub suppressed: BTreeMap<String, u64>,
    /// In the control group: "would have sent".
    pub control: u64,
    /// Held for a person's approval.
    pub pending_approval: u64,
    /// Deferred and still waiting when the run ended.
    pub waiting: u64,
}

impl PolicyReport {
    fn observe(&mut self, outcome: &Outcome) {
        for decision in outcome.effects.iter().filter_map(|e| e.decision.as_ref()) {
            let released = decision.released.is_some();
            match decision.verdict {
                Verdict::Ready => {
                    self.ready += 1;
                    self.released_ready += u64::from(released);
                }
                Verdict::Deferred => {
                    self.deferred += 1;
                    let reason = decision.reason.as_ref().map_or("unknown", |r| r.name());
                    *self.deferred_by.entry(reason.to_string()).or_default() += 1;
                }
                Verdict::Control => self.control += 1,
                Verdict::PendingApproval => self.pending_approval += 1,
                _ => {
                    let reason = decision.reason.as_ref().map_or("unknown", |r| r.name());
                    *self.suppressed.entry(reason.to_string()).or_default() += 1;
                }
            }
        }
    }

    /// Every send asked for, each counted once by its final decision.
    pub fn asked(&self) -> u64 {
        self.ready
            + self.suppressed.values().sum::<u64>()
            + self.control
            + self.pending_approval
            + self.waiting
    }

    /// The `"policy"` object of the final JSON line.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "ready": self.ready,
            "deferred": self.deferred,
            "suppressed": self.suppressed,
            "control": self.control,
            "pending_approval": self.pending_approval,
            "released_ready": self.released_ready,
            "waiting": self.waiting,
        })
    }

    /// The human-readable lines; `delivered` is what the host's delivery counted.
    pub fn print(&self, delivered: u64) {
        println!();
        println!(
            "send policy          {:>10} sends asked for by rules, each by its final decision",
            self.asked()
        );
        let agree =
            if delivered == self.ready { "the host delivered the same" } else { "the host delivered" };
        println!("  ready              {:>10} ({agree} {delivered})", self.ready);
        let by: Vec<String> = self.deferred_by.iter().map(|(r, n)| format!("{r} {n}")).collect();
        println!(
            "  deferred           {:>10} ({}; {} later ready, {} still waiting at the end)",
            self.deferred,
            if by.is_empty() { "none".to_string() } else { by.join(", ") },
            self.released_ready,
            self.waiting
        );
        let reasons: Vec<String> = self.suppressed.iter().map(|(r, n)| format!("{r} {n}")).collect();
        println!(
            "  suppressed         {:>10} ({})",
            self.suppressed.values().sum::<u64>(),
            if reasons.is_empty() { "none".to_string() } else { reasons.join(", ") }
        );
        println!("  control group      {:>10} (would have sent; nothing went out)", self.control);
        if self.pending_approval > 0 {
            println!("  held for approval  {:>10}", self.pending_approval);
        }
    }
}

/// Runs `events` (in time order) through `engine` contact by contact, as the host does:
/// a contact starts at its first event, its wake-ups are handled before each later
/// event and up to `end`, and the attributes actions set are carried forward.
pub fn audit(
    engine: &Engine,
    contact_of: impl Fn(&ContactId) -> Option<Contact>,
    events: &[Event],
    end: Timestamp,
) -> PolicyReport {
    let mut report = PolicyReport::default();
    let mut by_contact: HashMap<&ContactId, Vec<&Event>> = HashMap::new();
    let mut order: Vec<&ContactId> = Vec::new();
    for event in events {
        let list = by_contact.entry(event.contact()).or_default();
        if list.is_empty() {
            order.push(event.contact());
        }
        list.push(event);
    }
    let mut scratch = EngineScratch::default();
    for id in order {
        let (Some(mut contact), Some(list)) = (contact_of(id), by_contact.get(id)) else { continue };
        let Some(first) = list.first() else { continue };
        let mut state = engine.new_state(&contact, first.at());
        let mut wake = engine.wake_after(&state, &contact, first.at());
        let mut step = |outcome: Outcome, contact: &mut Contact, wake: &mut Option<Timestamp>| {
            report.observe(&outcome);
            *wake = outcome.next_wake;
            if let Some(changed) = outcome.contact {
                *contact = changed;
            }
        };
        for event in list {
            while let Some(w) = wake.filter(|w| *w <= event.at()) {
                match engine.handle_timeout(&mut state, &contact, w, &mut scratch) {
                    Ok(outcome) => step(outcome, &mut contact, &mut wake),
                    Err(_) => break,
                }
            }
            if let Ok(outcome) = engine.handle_event(&mut state, &contact, event, &mut scratch) {
                step(outcome, &mut contact, &mut wake);
            }
        }
        while let Some(w) = wake.filter(|w| *w <= end) {
            match engine.handle_timeout(&mut state, &contact, w, &mut scratch) {
                Ok(outcome) => step(outcome, &mut contact, &mut wake),
                Err(_) => break,
            }
        }
        report.waiting += state.deferred().len() as u64;
    }
    report
}
