//! The guides: the documents in `docs/`, part of the crate documentation so that every
//! Rust example in them is compiled and run as a doctest, as `jiff` does. Read them in
//! this order: the architecture, the rule-set format, expressions, scoring, the engine,
//! the send policy, then integrating a host; the decisions and performance records
//! explain the choices and the figures.

#[doc = include_str!("../docs/architecture.md")]
pub mod architecture {}

#[doc = include_str!("../docs/rule-sets.md")]
pub mod rule_sets {}

#[doc = include_str!("../docs/expressions.md")]
pub mod expressions {}

#[doc = include_str!("../docs/scoring.md")]
pub mod scoring {}

#[doc = include_str!("../docs/engine.md")]
pub mod engine {}

#[doc = include_str!("../docs/send-policy.md")]
pub mod send_policy {}

#[doc = include_str!("../docs/journeys.md")]
pub mod journeys {}

#[doc = include_str!("../docs/integration.md")]
pub mod integration {}

#[doc = include_str!("../docs/decisions.md")]
pub mod decisions {}

#[doc = include_str!("../docs/performance.md")]
pub mod performance {}

#[doc = include_str!("../docs/experiments.md")]
pub mod experiments {}
