//! Lead scoring: the building blocks of the scoring engine.
//!
//! - [`cell`]: one decaying, capped score value, stored as a value and a timestamp.
//! - [`threshold`]: thresholds with hysteresis and re-arm policies.
//!
//! [`decay`] holds the time arithmetic every score model uses: exponential (half-life)
//! and step decay, applied lazily from a stored value and timestamp, and the exact next
//! instant at which a decaying value crosses a threshold, all computed with arithmetic
//! that gives the same bits on every platform.

pub mod cell;
pub(crate) mod compile;
pub mod decay;
pub mod engine;
pub mod model;
mod state;
pub mod threshold;
mod wake;

pub use crate::repeat::Repeat;
pub use cell::{Bounds, ScoreCell, ScoreError};
pub use decay::{CalendarPeriod, Decay};
pub use engine::{BatchEvent, Explanation, ScoreScratch, ScoreUpdate, Scorer, LEDGER_LEN};
pub use model::{Group, ModelError, PointRule, ScoreModel, Trigger};
pub use state::{ContactScores, LedgerEntry};
pub use threshold::{Crossing, Rearm, Threshold, ThresholdState};
