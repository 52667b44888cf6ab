//! Fit: points from the contact's attributes, re-scored when they change.

use smallvec::SmallVec;

use super::*;
use crate::expr::Activation;
use crate::schema::Contact;
use crate::schema::Slot;
use crate::scoring::cell::ScoreError;
use crate::scoring::model::Trigger;
use crate::scoring::state::{ContactScores, StoredEntry};
use crate::time::Timestamp;

impl Scorer {
    /// Re-evaluates the fit rules against the contact's attributes, as of `now`; call it
    /// when attributes change. Fit points count while their condition holds; they do
    /// not decay.
    ///
    /// # Errors
    ///
    /// [`ScoreError::OutOfOrder`] when `now` is older than the state's last change.
    pub fn handle_attributes(
        &self,
        state: &mut ContactScores,
        contact: &Contact,
        now: Timestamp,
    ) -> Result<ScoreUpdate, ScoreError> {
        self.refit(state, contact, now, |_| true)
    }

    /// Re-evaluates only the fit rules that read one of the `changed` contact fields
    /// (by name); call it when the host writes those attributes.
    ///
    /// # Errors
    ///
    /// [`ScoreError::OutOfOrder`] when `now` is older than the state's last change.
    pub fn handle_attribute_change(
        &self,
        state: &mut ContactScores,
        contact: &Contact,
        changed: &[&str],
        now: Timestamp,
    ) -> Result<ScoreUpdate, ScoreError> {
        let slots: SmallVec<[Slot; 4]> = changed
            .iter()
            .filter_map(|name| self.contact_fields.iter().position(|f| &**f == *name))
            .map(|i| i as Slot)
            .collect();
        self.refit(state, contact, now, |reads: &[Slot]| reads.iter().any(|r| slots.contains(r)))
    }

    /// Re-evaluates the fit rules `select` picks (by the contact fields they read).
    pub(super) fn refit(
        &self,
        state: &mut ContactScores,
        contact: &Contact,
        now: Timestamp,
        select: impl Fn(&[Slot]) -> bool,
    ) -> Result<ScoreUpdate, ScoreError> {
        if now < state.last_change() {
            return Err(ScoreError::OutOfOrder);
        }
        if !self.fits(state) {
            return Err(ScoreError::ForeignState);
        }
        let act = Activation::new().with_contact(contact).with_now(now);
        let mut scratch = ScoreScratch::default();
        for (mi, model) in self.models.iter().enumerate() {
            let ms = &mut state.models[mi];
            for (ri, rule) in model.rules.iter().enumerate() {
                let Trigger::Fit { condition } = &rule.trigger else {
                    continue;
                };
                if !select(&self.fit_reads[mi][ri]) {
                    continue;
                }
                let ri = ri as u32;
                let holds = condition.eval_bool(&act) == Ok(true);
                let delta = match (holds, ms.holds(ri)) {
                    (true, false) => rule.points,
                    (false, true) => -rule.points,
                    _ => continue,
                };
                ms.set_holds(ri, holds);
                if self.ledger_len > 0 {
                    let history = state.extra.history_mut(|| self.new_history());
                    history.models[mi]
                        .push(StoredEntry { rule: ri, delta, at: now, event: None }, self.ledger_len);
                }
                scratch.update.changes.push((model.id.clone(), rule.id.clone(), delta));
            }
            // Summed afresh, in rule order, so the total never drifts.
            ms.fit = ms.holding().filter_map(|ri| model.rules.get(ri as usize)).map(|r| r.points).sum();
        }
        self.observe_all(state, now, &mut scratch);
        state.set_last(now);
        Ok(scratch.update)
    }
}
