//! Lead scoring: the building blocks of the scoring engine.
//!
//! - [`Scorer`]: incremental scoring of events, attribute changes and timeouts.
//! - [`ScoreModel`], [`PointRule`], [`Group`]: the models, from Rust or the document.
//! - [`Threshold`] with [`Rearm`], and bands: hysteresis and re-arm policies.
//!
//! [`decay`] holds the time arithmetic every score model uses: exponential (half-life)
//! and step decay, applied lazily from a stored value and timestamp, and the exact next
//! instant at which a decaying value crosses a threshold, all computed with arithmetic
//! that gives the same bits on every platform.

pub(crate) mod cell;
pub(crate) mod compile;
pub mod decay;
pub mod model;
pub mod scorer;
mod state;
mod thin;
pub(crate) mod threshold;
mod wake;

pub use crate::repeat::Repeat;
pub use cell::{Bounds, ScoreError};
pub use decay::{CalendarPeriod, Decay};
pub use model::{Group, ModelError, PointRule, ScoreModel, Trigger};
pub use scorer::{BatchEvent, Explanation, ScoreScratch, ScoreUpdate, Scorer, LEDGER_LEN};
pub use state::{ContactScores, LedgerEntry};
pub use threshold::{Crossing, Rearm, Threshold};
