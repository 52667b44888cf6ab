//! Reading a contact's scores at an instant: values with decay applied, bands, the
//! score matrix, and what decay and caps leave of each group.

use super::events::*;
use super::*;
use crate::scoring::decay::Decay;
use crate::scoring::model::ScoreModel;
use crate::scoring::state::{ContactScores, ModelState};
use crate::scoring::wake::DecayForm;
use crate::time::{Duration, Timestamp};

impl Scorer {
    /// The position of the model with id `id`, for the methods that take a model
    /// position.
    pub fn model_index(&self, id: &str) -> Option<usize> {
        self.models.iter().position(|m| m.id.as_str() == id)
    }

    /// A score's value at `now`, decay applied.
    pub fn value(&self, state: &ContactScores, model: usize, now: Timestamp) -> Option<f64> {
        (model < self.models.len() && self.fits(state)).then(|| self.value_of(state, model, now))
    }

    /// A model's value: its own points, or the weighted sum of the models it combines.
    pub(super) fn value_of(&self, state: &ContactScores, model: usize, now: Timestamp) -> f64 {
        self.value_with(state, model, now, Precision::Exact)
    }

    /// [`Scorer::value_of`], exactly or (for searches) approximately.
    pub(super) fn value_with(
        &self,
        state: &ContactScores,
        model: usize,
        now: Timestamp,
        precision: Precision,
    ) -> f64 {
        let m = &self.models[model];
        if m.combine.is_empty() {
            model_value(m, &state.models[model], now, precision)
        } else {
            let sum: f64 =
                m.combine.iter().map(|(part, w)| w * self.value_with(state, *part, now, precision)).sum();
            clamp(m.bounds, sum)
        }
    }

    /// The name of the band a score is in at `now`, if any: the band observing the
    /// score now would place it in, from the band the state remembers (which matters
    /// for bands with hysteresis).
    pub fn band(&self, state: &ContactScores, model: usize, now: Timestamp) -> Option<&str> {
        let value = self.value(state, model, now)?;
        let m = &self.models[model];
        let band = m.band_after(state.models.get(model)?.band, value)?;
        m.bands.get(usize::from(band)).map(|b| b.name.as_str())
    }

    /// A fit-by-engagement matrix cell, such as `A1`: the band of the `row` model (fit
    /// grades A to D) followed by the band of the `column` model (engagement 1 to 4).
    pub fn matrix(&self, state: &ContactScores, row: usize, column: usize, now: Timestamp) -> Option<String> {
        Some(format!("{}{}", self.band(state, row, now)?, self.band(state, column, now)?))
    }

    /// The model's raw value from `now` on as a constant plus half-life terms; `None`
    /// when a group decays in steps.
    pub(super) fn decay_form(
        &self,
        state: &ContactScores,
        model: usize,
        now: Timestamp,
    ) -> Option<DecayForm> {
        let m = &self.models[model];
        let mut form = DecayForm::default();
        if !m.combine.is_empty() {
            for (part, w) in &m.combine {
                form.add_scaled(&self.decay_form(state, *part, now)?, *w);
            }
            return Some(form);
        }
        let s = &state.models[model];
        for (gi, g) in m.groups.iter().enumerate() {
            // Only an estimate is made from the form: the fast functions do.
            let v = group_value(m, s, gi, now, Precision::Approximate);
            match g.decay {
                _ if g.window.is_some() => form.constant += v,
                Decay::None => form.constant += v,
                Decay::HalfLife { half_life } => form.add_term(v, half_life.as_secs_f64()),
                _ => return None,
            }
        }
        form.constant += s.fit;
        Some(form)
    }

    /// Where a model's value ends up if no event ever comes: decaying and timeframe
    /// points gone, the rest (fit, non-decaying groups) kept.
    pub(super) fn limit_of(&self, state: &ContactScores, model: usize) -> f64 {
        let m = &self.models[model];
        if !m.combine.is_empty() {
            let sum: f64 = m.combine.iter().map(|(part, w)| w * self.limit_of(state, *part)).sum();
            return clamp(m.bounds, sum);
        }
        let s = &state.models[model];
        let kept: f64 = m
            .groups
            .iter()
            .zip(s.groups())
            .map(|(g, c)| if g.window.is_none() && matches!(g.decay, Decay::None) { c.stored() } else { 0.0 })
            .sum();
        clamp(m.bounds, kept + s.fit)
    }
}

/// Decisions use exact, portable arithmetic; searches for the instant of a decision may
/// first narrow it down with the platform's faster functions.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Precision {
    Exact,
    Approximate,
}

/// A model's total at `now`: its groups decayed, plus fit points, within its bounds.
pub(super) fn model_value(
    model: &ScoreModel,
    state: &ModelState,
    now: Timestamp,
    precision: Precision,
) -> f64 {
    let raw = (0..model.groups.len()).map(|gi| group_value(model, state, gi, now, precision)).sum::<f64>()
        + state.fit;
    clamp(model.bounds, raw)
}

/// One group's points at `now`: decayed, or for a timeframe group the awards still
/// inside the window (within the group's bounds).
pub(super) fn group_value(
    model: &ScoreModel,
    state: &ModelState,
    group: usize,
    now: Timestamp,
    precision: Precision,
) -> f64 {
    let g = &model.groups[group];
    match g.window {
        Some(window) => clamp(g.bounds, window_sum(state, group, now, window)),
        None => match precision {
            Precision::Exact => state.group(group).value_at(now, &g.decay),
            Precision::Approximate => {
                let cell = state.group(group);
                cell.stored() * g.decay.factor_approx(cell.updated_at(), now)
            }
        },
    }
}

/// A timeframe group's awards inside its window at `now`, before its bounds.
pub(super) fn window_sum(state: &ModelState, group: usize, now: Timestamp, window: Duration) -> f64 {
    state
        .awards()
        .iter()
        .filter(|a| usize::from(a.group) == group && in_window(a.at, now, window))
        .map(|a| a.points)
        .sum()
}
