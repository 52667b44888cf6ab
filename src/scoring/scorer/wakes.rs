//! Wake-ups: the next instant at which decay or an expiring window changes what a
//! contact's scores say, and the timeouts that act on it.

use super::*;
use super::{read::*, rescore::*};
use crate::scoring::cell::ScoreError;
use crate::scoring::model::ScoreModel;
use crate::scoring::state::{ContactScores, ModelState};
use crate::scoring::wake::{first_below, Start};
use crate::time::{Duration, Timestamp};

impl Scorer {
    /// Checks thresholds and bands at `now` with decay applied: the crossings decay alone
    /// caused since the last change. Call it at the `next_wake` instant.
    ///
    /// # Errors
    ///
    /// [`ScoreError::OutOfOrder`] when `now` is older than the state's last change.
    pub fn handle_timeout(
        &self,
        state: &mut ContactScores,
        now: Timestamp,
    ) -> Result<ScoreUpdate, ScoreError> {
        if now < state.last_change() {
            return Err(ScoreError::OutOfOrder);
        }
        if !self.fits(state) {
            return Err(ScoreError::ForeignState);
        }
        let mut scratch = ScoreScratch::default();
        self.observe_all(state, now, &mut scratch);
        state.set_last(now);
        Ok(scratch.update)
    }

    /// The first instant after `now` at which decay alone moves a score below a
    /// threshold it is inside, or below the lower bound of its band (or a timeframe
    /// award expires).
    pub fn next_wake(&self, state: &ContactScores, now: Timestamp) -> Option<Timestamp> {
        if !self.fits(state) {
            return None;
        }
        self.wake_after(state, Start { since: now, above: false })
    }

    /// [`Scorer::next_wake`] from `start`.
    pub(super) fn wake_after(&self, state: &ContactScores, start: Start) -> Option<Timestamp> {
        let now = start.since;
        // Timeframe awards expire in steps: wake at the next expiry at the latest, and
        // search decay crossings only up to it (every value is monotone before it).
        let horizon = self.models.iter().zip(&state.models).filter_map(|(m, s)| next_expiry(m, s, now)).min();
        let mut wake = horizon;
        for (mi, (model, ms)) in self.models.iter().zip(&state.models).enumerate() {
            // The value falls through the highest level it is above first.
            let inside = model.thresholds.iter().zip(ms.thresholds()).filter(|(_, ts)| ts.inside());
            // A band is left below its `leave` level (its `from` without hysteresis).
            let band = ms.band.and_then(|b| model.bands.get(usize::from(b))).map(|b| b.leave);
            let Some(target) = inside.map(|((_, t), _)| t.exit).chain(band).reduce(f64::max) else {
                continue;
            };
            // A value never falls below where decay leaves it in the end.
            if target <= self.limit_of(state, mi) {
                continue;
            }
            let at = |secs: i64| Duration::from_secs(secs).ok().and_then(|d| now.checked_add(d));
            let value = |secs: i64, precision| {
                at(secs).map_or(f64::NEG_INFINITY, |t| self.value_with(state, mi, t, precision))
            };
            let fast = |secs| value(secs, Precision::Approximate);
            let guess = self.decay_form(state, mi, now).and_then(|form| form.crossing(target));
            let found = match Trajectory::new(model, ms, now) {
                // Most models: decayed values straight from integer spans.
                Some(path) => first_below(
                    fast,
                    |secs| path.value(secs).unwrap_or_else(|| value(secs, Precision::Exact)),
                    guess,
                    target,
                    start,
                    horizon,
                ),
                None => {
                    first_below(fast, |secs| value(secs, Precision::Exact), guess, target, start, horizon)
                }
            };
            if let Some(at) = found {
                wake = Some(wake.map_or(at, |w| w.min(at)));
            }
        }
        wake
    }

    /// The first whole second after `now` at which decay alone takes a score below
    /// `level` (`None`: it is below already, or never will be before an event).
    pub fn next_below(
        &self,
        state: &ContactScores,
        model: usize,
        level: f64,
        now: Timestamp,
    ) -> Option<Timestamp> {
        if model >= self.models.len() || !self.fits(state) || level <= self.limit_of(state, model) {
            return None;
        }
        let at = |secs: i64| Duration::from_secs(secs).ok().and_then(|d| now.checked_add(d));
        let value = |secs: i64, precision| {
            at(secs).map_or(f64::NEG_INFINITY, |t| self.value_with(state, model, t, precision))
        };
        let guess = self.decay_form(state, model, now).and_then(|form| form.crossing(level));
        let horizon = self.models.iter().zip(&state.models).filter_map(|(m, s)| next_expiry(m, s, now)).min();
        first_below(
            |secs| value(secs, Precision::Approximate),
            |secs| value(secs, Precision::Exact),
            guess,
            level,
            Start { since: now, above: false },
            horizon,
        )
        .or(horizon)
    }
}

/// The first instant after `now` at which a timeframe award expires.
pub(super) fn next_expiry(model: &ScoreModel, state: &ModelState, now: Timestamp) -> Option<Timestamp> {
    state
        .awards()
        .iter()
        .filter_map(|a| model.groups.get(usize::from(a.group))?.window.and_then(|w| a.at.checked_add(w)))
        .filter(|t| *t > now)
        .min()
}
