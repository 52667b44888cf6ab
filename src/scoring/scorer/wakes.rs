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
            let Some(target) = exit_level(model, ms) else {
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

    /// Whether decay alone moves no score below a level it is inside before `wake`, a
    /// wake-up remembered from an earlier change: then it is still a safe lower bound
    /// for the next crossing after the change at `now`, and the change need not pay for
    /// computing the exact one. Scores only fall between events (decaying balances stay
    /// non-negative, combined weights are non-negative, timeframe awards only expire),
    /// so one exact value a second before `wake` answers for every instant before it;
    /// it is the value [`Scorer::handle_timeout`] would compare there, so no crossing is
    /// found a second later than the exact wake-up would have found it.
    pub(super) fn no_exit_before(&self, state: &ContactScores, now: Timestamp, wake: Timestamp) -> bool {
        if wake <= now {
            return false;
        }
        // No wake-up remembered: only a score that never falls to its level keeps it so.
        let probe = match wake {
            Timestamp::MAX => None,
            w => match w.checked_sub(Duration::from_secs(1).unwrap_or(Duration::ZERO)) {
                Some(p) if p > now => Some(p),
                // Within a second of `now`: the exact search starts a second later.
                _ => return true,
            },
        };
        self.models.iter().zip(&state.models).enumerate().all(|(mi, (model, ms))| {
            let Some(target) = exit_level(model, ms) else {
                return true;
            };
            match probe {
                Some(at) => self.value_with(state, mi, at, Precision::Exact) >= target,
                None => target <= self.limit_of(state, mi),
            }
        })
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

/// The level below which a model's value next changes something as it falls: the
/// highest exit of a threshold it is inside, or its band's `leave` level (its `from`
/// without hysteresis), whichever is higher; `None` when it is inside nothing.
fn exit_level(model: &ScoreModel, state: &ModelState) -> Option<f64> {
    let inside = model.thresholds.iter().zip(state.thresholds()).filter(|(_, ts)| ts.inside());
    let band = state.band.and_then(|b| model.bands.get(usize::from(b))).map(|b| b.leave);
    inside.map(|((_, t), _)| t.exit).chain(band).reduce(f64::max)
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
