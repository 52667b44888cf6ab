//! nurture's lab: fit an explainable points scorecard from a table of outcomes and
//! export it as a nurture rule set, evaluate any rule set against outcomes, replay
//! event histories through programs and compare two of them, and lint rule sets.
//!
//! The lab sits outside the core: the core crate gains no dependency. Everything it
//! measures is measured on the exported document as nurture's own `Scorer` scores it.
#![warn(missing_docs)]

pub mod binning;
pub mod engagement;
pub mod error;
pub mod fit;
pub mod history;
pub mod logit;
pub mod metrics;
pub mod plots;
pub mod report;
pub mod scorecard;
pub mod table;

pub use error::{LabError, Result};
