//! Thresholds with hysteresis and a re-arm policy: the MQL hand-off, crossed upward at
//! `enter` and downward only below `exit`.

use serde::{Deserialize, Serialize};

pub use crate::def::Rearm;

/// A threshold: enter at or above `enter`, leave below `exit` (`exit <= enter`).
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Threshold {
    /// The value at or above which the threshold is entered.
    pub enter: f64,
    /// The value below which it is left; equal to `enter` for no hysteresis.
    pub exit: f64,
    /// Whether a second upward crossing is reported.
    pub rearm: Rearm,
}

/// A reported crossing.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Crossing {
    /// The value rose to `enter` or above.
    Up,
    /// The value fell below `exit`.
    Down,
}

/// Per-contact memory of a threshold: whether it is inside, and whether it ever
/// reported an upward crossing.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct ThresholdState {
    inside: bool,
    ever_entered: bool,
}

impl ThresholdState {
    /// A state from its two flags.
    pub(crate) fn from_bits(inside: bool, ever_entered: bool) -> ThresholdState {
        ThresholdState { inside, ever_entered }
    }

    /// Whether an upward crossing was ever reported or passed.
    pub(crate) fn ever_entered(&self) -> bool {
        self.ever_entered
    }

    /// Whether the value is currently inside (entered and not yet left).
    pub fn inside(&self) -> bool {
        self.inside
    }

    /// Feeds the current value; returns the crossing it causes, if any. Downward
    /// crossings are always reported; upward ones as the re-arm policy allows (the
    /// state still moves inside when a crossing is not reported).
    pub fn observe(&mut self, threshold: &Threshold, value: f64) -> Option<Crossing> {
        if !self.inside && value >= threshold.enter {
            self.inside = true;
            let report = match threshold.rearm {
                Rearm::Once => !self.ever_entered,
                Rearm::EveryCrossing => true,
            };
            self.ever_entered = true;
            return report.then_some(Crossing::Up);
        }
        if self.inside && value < threshold.exit {
            self.inside = false;
            return Some(Crossing::Down);
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hysteresis_enters_at_80_and_leaves_below_70() {
        let th = Threshold { enter: 80.0, exit: 70.0, rearm: Rearm::EveryCrossing };
        let mut s = ThresholdState::default();
        let seen: Vec<_> =
            [50.0, 80.0, 75.0, 70.0, 69.9, 79.0, 85.0].iter().map(|&v| s.observe(&th, v)).collect();
        use Crossing::*;
        assert_eq!(seen, [None, Some(Up), None, None, Some(Down), None, Some(Up)]);
    }

    #[test]
    fn once_reports_only_the_first_entry() {
        let th = Threshold { enter: 80.0, exit: 70.0, rearm: Rearm::Once };
        let mut s = ThresholdState::default();
        let seen: Vec<_> = [90.0, 10.0, 90.0].iter().map(|&v| s.observe(&th, v)).collect();
        assert_eq!(seen, [Some(Crossing::Up), Some(Crossing::Down), None]);
        assert!(s.inside());
    }
}
