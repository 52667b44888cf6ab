//! Wake-ups: the earliest instant at which time alone can change something for a
//! contact.

use super::*;
use crate::program::Rule;
use crate::schema::Contact;
use crate::time::Timestamp;
use crate::trigger::Trigger;

impl Engine {
    /// When an inactivity rule's quiet period ends (`None`: not an inactivity rule, or
    /// it already fired in this quiet spell).
    pub(super) fn quiet_deadline(&self, state: &ContactState, rule: &Rule) -> Option<Timestamp> {
        let Trigger::Inactivity { event_type, period } = rule.trigger() else {
            return None;
        };
        if state.quiet.contains(rule.id().as_str()) {
            return None;
        }
        let name = match event_type {
            Some(t) => self.program.schema().event_type(*t)?.name().as_str(),
            None => "*",
        };
        let last = state.last_seen.get(name).copied().unwrap_or(state.since);
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
        // Comparisons of segment conditions with `now` (`within_last`, `now - x > d`).
        if self.program.segments().reads_time() {
            consider(self.program.segments().next_time_change(contact, now));
        }
        // Deferred sends come out at their instant.
        consider(state.deferred.iter().map(|d| d.until).min());
        // Approvals expire.
        consider(self.approval_deadline(state));
        let rules = self.program.rules();
        for rule in self.timed.iter().map(|&i| &rules[i]) {
            consider(self.quiet_deadline(state, rule));
            consider(rule.trigger().occurrence_after(contact, now));
        }
        consider(self.journey_wake(state, contact, now));
        wake
    }
}
