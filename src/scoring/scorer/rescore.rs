//! Recomputation from scratch: the reference the incremental path must equal, and
//! re-scoring a history under a changed model.

use smallvec::SmallVec;

use super::*;
use crate::schema::{Contact, Event};
use crate::scoring::cell::ScoreError;
use crate::scoring::decay::Decay;
use crate::scoring::model::ScoreModel;
use crate::scoring::state::{ContactScores, ModelState};
use crate::time::Timestamp;

impl Scorer {
    /// Recomputes a contact's scores from its full history (events in time order), as
    /// when a model changes. Fit rules are evaluated against `contact` at `start`.
    ///
    /// # Errors
    ///
    /// [`ScoreError::OutOfOrder`] when the history is not in time order.
    pub fn recompute(
        &self,
        contact: &Contact,
        history: &[Event],
        start: Timestamp,
    ) -> Result<ContactScores, ScoreError> {
        self.recompute_with(contact, history, start, &mut ScoreScratch::default())
    }

    pub(super) fn recompute_with(
        &self,
        contact: &Contact,
        history: &[Event],
        start: Timestamp,
        scratch: &mut ScoreScratch,
    ) -> Result<ContactScores, ScoreError> {
        let mut state = self.new_state(start);
        let _ = self.handle_attributes(&mut state, contact, start)?;
        for event in history {
            if event.at() < state.last_change() {
                return Err(ScoreError::OutOfOrder);
            }
            self.apply_event_at(&mut state, contact, event, scratch)?;
        }
        Ok(state)
    }

    /// Rescoring in bulk: recomputes every contact from its history, for a changed
    /// model. Results come back in input order.
    ///
    /// # Errors
    ///
    /// The first contact whose history is out of order.
    pub fn rescore<'a>(
        &self,
        contacts: impl IntoIterator<Item = (&'a Contact, &'a [Event])>,
        start: Timestamp,
    ) -> Result<Vec<ContactScores>, ScoreError> {
        let mut scratch = ScoreScratch::default();
        contacts.into_iter().map(|(c, h)| self.recompute_with(c, h, start, &mut scratch)).collect()
    }
}

/// A plain model's value from an instant on, computed as [`model_value`] computes it
/// (the same bits) but from integer spans: per group, the stored value and the
/// nanoseconds from its last write to the start. Only for models whose groups have no
/// window and decay by half-life or not at all.
pub(super) struct Trajectory<'a> {
    model: &'a ScoreModel,
    groups: SmallVec<[(f64, i64); 4]>,
    fit: f64,
}

impl<'a> Trajectory<'a> {
    pub(super) fn new(model: &'a ScoreModel, state: &ModelState, since: Timestamp) -> Option<Trajectory<'a>> {
        if !model.combine.is_empty() {
            return None;
        }
        let mut groups = SmallVec::new();
        for (g, cell) in model.groups.iter().zip(state.groups()) {
            if g.window.is_some() || !matches!(g.decay, Decay::None | Decay::HalfLife { .. }) {
                return None;
            }
            let at = cell.updated_at();
            let base = since
                .unix_seconds()
                .checked_sub(at.unix_seconds())?
                .checked_mul(1_000_000_000)?
                .checked_add(i64::from(since.subsec_nanos()) - i64::from(at.subsec_nanos()))?;
            groups.push((cell.stored(), base));
        }
        Some(Trajectory { model, groups, fit: state.fit })
    }

    /// The value `secs` seconds after the start; `None` past the `i64` nanosecond range.
    pub(super) fn value(&self, secs: i64) -> Option<f64> {
        let offset = secs.checked_mul(1_000_000_000)?;
        let mut spans: SmallVec<[i64; 4]> = SmallVec::new();
        for (_, base) in &self.groups {
            spans.push(base.checked_add(offset)?);
        }
        let raw = self
            .model
            .groups
            .iter()
            .zip(&self.groups)
            .zip(&spans)
            .map(|((g, (stored, _)), &e)| if e <= 0 { *stored } else { stored * g.decay.factor_nanos(e) })
            .sum::<f64>()
            + self.fit;
        Some(clamp(self.model.bounds, raw))
    }
}
