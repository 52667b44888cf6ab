//! Tuning: the operands of every engagement rule's `&&` / `||` ordered by how they
//! behaved on a sample of the host's events.

use std::collections::HashMap;

use super::*;
use crate::expr::compile::Tally;
use crate::expr::{Activation, Tuning};
use crate::id::ContactId;

impl Scorer {
    /// Reorders the operands of every engagement rule's `&&` and `||` by their measured
    /// selectivity on `sample`, so that the operand most likely to decide a group, per
    /// unit of cost, is evaluated first. Scores, crossings, wake-ups and errors stay
    /// exactly the same: `&&` and `||` are commutative here, errors included, and the
    /// rule index is not changed.
    ///
    /// The sample is replayed in the order given on throwaway states (one per contact,
    /// fresh at its first event, fit rules evaluated), so that counters and `score.NAME`
    /// read what they would in production; conditions are observed on the candidates
    /// the rule index leaves, as matching evaluates them. Each operand's pass rate and
    /// an estimate of its cost (from what it reads and compares, not from a clock) are
    /// counted, and each group's operands are sorted by cost / (1 - pass rate) for `&&`
    /// and cost / pass rate for `||`, ties in written order. The same scorer and sample
    /// give the same order on every machine. A condition the sample never reached keeps
    /// its order, so an empty sample changes nothing.
    ///
    /// Tuning again on another sample starts from the measured order and can undo it.
    ///
    /// ```
    /// use nurture::condition::ConditionNames;
    /// use nurture::scoring::{PointRule, ScoreModel, ScoreScratch, Scorer};
    /// use nurture::{Schema, Timestamp, Type};
    ///
    /// let schema = Schema::builder()
    ///     .event_type("page_visit", [("url", Type::String), ("seconds", Type::Int)])
    ///     .build()?;
    /// let visit = schema.event_type_index("page_visit").expect("declared");
    /// // As written, the time-on-page test (which rarely fails) comes first.
    /// let condition = ConditionNames::default()
    ///     .compile(&schema, Some("page_visit"), "event.seconds >= 5 && event.url == '/pricing'")?;
    /// let model = ScoreModel::new("engagement")
    ///     .with_rule(PointRule::on_event("pricing", visit, Some(condition), 10.0));
    /// let mut scorer = Scorer::new(vec![model], schema.event_types().count())?;
    ///
    /// let contact = schema.contact("c1").build();
    /// let at = Timestamp::from_unix(1_700_000_000, 0)?;
    /// let events = (0..20)
    ///     .map(|i| {
    ///         let url = if i % 10 == 0 { "/pricing" } else { "/blog" };
    ///         Ok(schema.event(format!("e{i}"), "c1", "page_visit", at)?.set("url", url)?.set("seconds", 60)?.build())
    ///     })
    ///     .collect::<Result<Vec<_>, Box<dyn std::error::Error>>>()?;
    ///
    /// let tuning = scorer.tune(events.iter().map(|e| (&contact, e)));
    /// assert_eq!((tuning.events, tuning.conditions, tuning.reordered), (20, 1, 1));
    ///
    /// // Scoring is unchanged, only cheaper.
    /// let mut state = scorer.new_state(at);
    /// let mut scratch = ScoreScratch::default();
    /// let update = scorer.handle_event(&mut state, &contact, &events[0], &mut scratch)?;
    /// assert_eq!(update.changes.len(), 1);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn tune<'a>(&mut self, sample: impl IntoIterator<Item = (&'a Contact, &'a Event)>) -> Tuning {
        let mut tallies: Vec<Vec<Tally>> =
            self.models.iter().map(|m| vec![Tally::default(); m.rules.len()]).collect();
        let mut tuning = Tuning::default();
        let mut states: HashMap<ContactId, ContactScores> = HashMap::new();
        let mut scratch = ScoreScratch::default();
        let mut probe = ScoreScratch::default();
        for (contact, event) in sample {
            tuning.events += 1;
            let state = states.entry(contact.id().clone()).or_insert_with(|| {
                let mut state = self.new_state(event.at());
                let _ = self.handle_attributes(&mut state, contact, event.at());
                state
            });
            tuning.evaluations += self.observe_conditions(state, contact, event, &mut probe, &mut tallies);
            // Then the event as scoring applies it, so that later events see its effects.
            let _ = self.apply_event_at(state, contact, event, &mut scratch);
        }
        for (mi, model) in self.models.iter_mut().enumerate() {
            for (rule, tally) in model.rules.iter_mut().zip(&tallies[mi]) {
                let Trigger::Event { condition: Some(condition), .. } = &mut rule.trigger else {
                    continue;
                };
                let Some(pred) = condition.pred() else {
                    continue;
                };
                if tally.runs() == 0 {
                    continue;
                }
                tuning.conditions += 1;
                if let Some(tuned) = pred.tuned(tally) {
                    tuning.reordered += 1;
                    *condition = condition.with_pred(tuned);
                }
            }
        }
        tuning
    }

    /// Evaluates the conditions of the event's candidate rules as
    /// [`Scorer::handle_event`] would see them before applying it (counters including
    /// the event, scores before it) and counts their operands in `tallies`. Returns how
    /// many conditions were evaluated. `state` is not changed.
    fn observe_conditions(
        &self,
        state: &ContactScores,
        contact: &Contact,
        event: &Event,
        scratch: &mut ScoreScratch,
        tallies: &mut [Vec<Tally>],
    ) -> u64 {
        if !self.fits(state) {
            return 0;
        }
        let now = event.at().max(state.last_change());
        scratch.counts.clear();
        if !self.counters.is_empty() {
            let mut counters = state.extra.counters().cloned().unwrap_or_else(|| self.counters.new_state());
            self.counters.observe(&mut counters, contact, event);
            self.counters.values(&counters, now, &mut scratch.counts);
        }
        self.bind_scores(state, now, &mut scratch.scores);
        let act = Activation::new()
            .with_contact(contact)
            .with_event(event)
            .with_now(now)
            .with_counters(&scratch.counts)
            .with_scores(&scratch.scores);
        let mut evaluated = 0;
        for (mi, model) in self.models.iter().enumerate() {
            self.indexes[mi].candidates(event, Some(contact.attributes().slots()), &mut scratch.candidates);
            for &ri in &scratch.candidates {
                let Some(rule) = model.rules.get(ri as usize) else {
                    continue;
                };
                let Trigger::Event { condition: Some(condition), .. } = &rule.trigger else {
                    continue;
                };
                if let (Some(pred), Some(tally)) =
                    (condition.pred(), tallies.get_mut(mi).and_then(|t| t.get_mut(ri as usize)))
                {
                    pred.observe(&act, tally);
                    evaluated += 1;
                }
            }
        }
        evaluated
    }
}
