//! One decaying, capped score value: stored as a value and the instant it was last
//! written, decayed lazily when read or updated.

use serde::{Deserialize, Serialize};

use crate::scoring::decay::Decay;
use crate::time::{Instant12, Timestamp};

/// Bounds a score (or a group's points) may not leave.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Bounds {
    /// The lowest value; `None` for unbounded below.
    pub floor: Option<f64>,
    /// The highest value (HubSpot's 100-point limit is one example); `None` for
    /// unbounded above.
    pub cap: Option<f64>,
}

impl Bounds {
    /// No bounds.
    pub const NONE: Bounds = Bounds { floor: None, cap: None };

    #[cfg(test)]
    fn clamp(&self, v: f64) -> f64 {
        let v = self.cap.map_or(v, |c| v.min(c));
        self.floor.map_or(v, |f| v.max(f))
    }
}

/// Why a score change was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ScoreError {
    /// Points that are NaN or infinite.
    #[error("points must be a finite number")]
    NotFinite,
    /// A change dated before the score's last change; scores move forward in time.
    #[error("a score change is dated before the score's last change")]
    OutOfOrder,
    /// A state that was not made by this scorer's models (for example one restored
    /// from a snapshot of a different model); it is left unchanged.
    #[error("the state does not fit this scorer's models")]
    ForeignState,
    /// A batch event names a state outside the slice of states.
    #[error("a batch event names a state index outside the slice of states")]
    NoSuchState,
}

/// A score value and the instant it was last written; decay is applied when it is read
/// ([`ScoreCell::value_at`]), never stored.
///
/// Packed to 20 bytes (aligned to 4): a contact's state holds one per group.
#[derive(Clone, Copy, Debug)]
#[repr(C, packed(4))]
pub(crate) struct ScoreCell {
    value: f64,
    at: Instant12,
}

/// Equal when the values have the same bits and the instants are equal.
impl PartialEq for ScoreCell {
    fn eq(&self, other: &ScoreCell) -> bool {
        let (a, b) = (self.value, other.value);
        a == b && { self.at } == { other.at }
    }
}

impl ScoreCell {
    /// A zero score as of `at`.
    pub fn new(at: Timestamp) -> ScoreCell {
        ScoreCell { value: 0.0, at: Instant12::new(at) }
    }

    /// A value written at `at` (the caller has decayed and bounded it).
    pub(crate) fn written(value: f64, at: Timestamp) -> ScoreCell {
        ScoreCell { value, at: Instant12::new(at) }
    }

    /// The value as stored, without decay.
    #[inline]
    pub fn stored(&self) -> f64 {
        self.value
    }

    /// When the value was last written.
    #[inline]
    pub fn updated_at(&self) -> Timestamp {
        { self.at }.get()
    }

    /// The value at `now`, decayed since the last write: decay scales the value toward
    /// zero, whatever its sign (score models keep decaying balances non-negative, so a
    /// score never rises by decay).
    pub fn value_at(&self, now: Timestamp, decay: &Decay) -> f64 {
        decay.apply(self.stored(), self.updated_at(), now)
    }

    /// Decays to `now`, adds `points`, and clamps into `bounds`. Returns the change that
    /// took effect (smaller than `points` when a bound was hit).
    ///
    /// # Errors
    ///
    /// [`ScoreError::NotFinite`] for NaN or infinite points, and
    /// [`ScoreError::OutOfOrder`] when `now` is before the last write. The score is left
    /// unchanged.
    #[cfg(test)]
    pub fn add(
        &mut self,
        points: f64,
        now: Timestamp,
        decay: &Decay,
        bounds: Bounds,
    ) -> Result<f64, ScoreError> {
        if !points.is_finite() {
            return Err(ScoreError::NotFinite);
        }
        if now < self.updated_at() {
            return Err(ScoreError::OutOfOrder);
        }
        let current = self.value_at(now, decay);
        let next = bounds.clamp(current + points);
        *self = ScoreCell::written(next, now);
        Ok(next - current)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::time::Duration;
    use proptest::prelude::*;

    fn t(secs: i64) -> Timestamp {
        Timestamp::from_unix(1_700_000_000 + secs, 0).unwrap()
    }

    #[test]
    fn caps_limit_and_report_the_applied_change() {
        let mut s = ScoreCell::new(t(0));
        let bounds = Bounds { floor: Some(0.0), cap: Some(100.0) };
        assert_eq!(s.add(70.0, t(0), &Decay::None, bounds), Ok(70.0));
        assert_eq!(s.add(50.0, t(1), &Decay::None, bounds), Ok(30.0));
        assert_eq!(s.add(-500.0, t(2), &Decay::None, bounds), Ok(-100.0));
        assert_eq!(s.stored(), 0.0);
    }

    #[test]
    fn bad_input_changes_nothing() {
        let mut s = ScoreCell::new(t(10));
        assert_eq!(s.add(f64::NAN, t(10), &Decay::None, Bounds::NONE), Err(ScoreError::NotFinite));
        assert_eq!(s.add(f64::INFINITY, t(10), &Decay::None, Bounds::NONE), Err(ScoreError::NotFinite));
        assert_eq!(s.add(1.0, t(5), &Decay::None, Bounds::NONE), Err(ScoreError::OutOfOrder));
        assert_eq!(s, ScoreCell::new(t(10)));
    }

    proptest! {
        #[test]
        fn bounded_scores_stay_in_bounds(
            changes in prop::collection::vec((-200.0f64..200.0, 0i64..1_000_000), 0..50),
            half_life in 1i64..10_000_000,
        ) {
            let decay = Decay::HalfLife { half_life: Duration::from_secs(half_life).unwrap() };
            let bounds = Bounds { floor: Some(-50.0), cap: Some(100.0) };
            let mut s = ScoreCell::new(t(0));
            let mut now = 0;
            for (points, gap) in changes {
                now += gap;
                s.add(points, t(now), &decay, bounds).unwrap();
                let v = s.value_at(t(now), &decay);
                prop_assert!(v.is_finite() && (-50.0..=100.0).contains(&v), "{v}");
                prop_assert!(s.value_at(t(now + gap + 1), &decay).abs() <= v.abs());
            }
        }
    }
}
