//! nurture: the rules-and-scoring core of a marketing-automation platform, as an
//! embeddable, deterministic, I/O-free library.
//!
//! A host declares a [`Schema`] (contact fields, event types and their properties),
//! writes rules whose conditions are [CEL] expressions or structured filters, and feeds
//! nurture events; nurture tells which rules match. It never reads the clock (time is
//! always an argument), never touches a disk or a socket, and gives the same answer in
//! the same order on every machine.
//!
//! ```
//! use nurture::{MatchScratch, Program, Timestamp};
//!
//! let program = Program::from_json(r#"{
//!   "version": 1,
//!   "schema": {
//!     "contact": {"company_size": "int"},
//!     "events": {"page_visit": {"url": "string"}}
//!   },
//!   "rules": [{
//!     "id": "enterprise-pricing",
//!     "on": "page_visit",
//!     "when": "event.url == '/pricing' && contact.company_size >= 1000"
//!   }]
//! }"#)?;
//! let schema = program.schema();
//! let now = Timestamp::from_unix(1_767_225_600, 0)?;
//! let contact = schema.contact("c1").set("company_size", 5000)?.build();
//! let event = schema.event("e1", "c1", "page_visit", now)?.set("url", "/pricing")?.build();
//!
//! let mut scratch = MatchScratch::default();
//! let matched = program.match_event(&contact, &event, now, &mut scratch);
//! assert_eq!(matched.rules.len(), 1);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # The pipeline
//!
//! Like `regex`, nurture moves in one direction, one module per stage:
//!
//! 1. [`def`]: the rule-set document as serde data (JSON, TOML, or any serde format).
//! 2. [`expr::parse`]: CEL text to an [`expr::ast`] with byte spans, under [`Limits`].
//! 3. checking: names resolved to slots of the [`Schema`], types checked, every problem
//!    collected as a [`Diagnostic`] ([`CompileError`] holds them all).
//! 4. compiling: conditions lowered to fused predicates; rules indexed by event type and
//!    by hashed equality tests ([`Program`]).
//! 5. matching: [`Program::match_event`] with a reusable [`MatchScratch`].
//!
//! # API themes
//!
//! - **Compile once, share, evaluate many times.** [`Program`] and
//!   [`expr::Expression`] are immutable and `Send + Sync`; put them behind an `Arc`.
//!   Per-thread scratch space ([`MatchScratch`]) keeps the hot path allocation-free.
//! - **Names resolve at compile time.** Contacts and events are slot-indexed records
//!   built against the schema ([`Schema::contact`], [`Schema::event`]); evaluation never
//!   looks a name up.
//! - **Every mistake at once.** Compiling a document reports all problems with stable
//!   [`Code`]s, JSON-pointer paths, spans, help and suggestions;
//!   [`Diagnostic::render`] shows them with a caret under the problem.
//! - **Errors are values, not panics.** A condition that reads a missing field ends in an
//!   [`expr::EvalError`]; the rule does not fire and the error is reported in
//!   [`Matches::errors`].
//! - **Time is an argument.** `now` and event timestamps come from the host.
//!
//! The design documents live in [`guide`]: the architecture, the rule-set format,
//! expressions, scoring, the engine and host integration, with examples that run.
//!
//! [CEL]: https://github.com/google/cel-spec
#![warn(missing_docs)]

pub mod condition;
pub mod counters;
pub mod def;
pub mod diagnostic;
mod document;
pub mod engine;
pub mod expr;
mod filter;
mod graph;
pub mod guide;
mod hash;
pub mod host;
pub mod id;
mod index;
pub mod journey;
pub mod limits;
pub mod lint;
pub mod policy;
pub mod program;
mod repeat;
pub mod schema;
pub mod scoring;
pub mod segment;
pub mod time;
mod trigger;
pub mod value;

pub use diagnostic::{Code, CompileError, Diagnostic, Span};
pub use id::{ContactId, EventId, EventTypeIndex, EventTypeName, RuleId, ScoreId};
pub use limits::Limits;
pub use program::{MatchScratch, Matches, Program, Rule, RuleIndexId};
pub use schema::{Contact, Event, RecordError, Schema};
pub use time::{Duration, TimeError, TimeZone, Timestamp};
pub use value::{Kind, Map, Type, Value};

/// Compiled programs, engines, scorers and states are shared across threads; the
/// runtime moves to a worker thread when its store and delivery can.
const _: () = {
    const fn send_sync<T: Send + Sync>() {}
    send_sync::<Program>();
    send_sync::<engine::Engine>();
    send_sync::<engine::ContactState>();
    send_sync::<engine::Effect>();
    send_sync::<scoring::Scorer>();
    send_sync::<scoring::ContactScores>();
    send_sync::<Schema>();
    send_sync::<expr::Expression>();
    send_sync::<CompileError>();
    send_sync::<engine::EngineError>();
    send_sync::<host::StoreError>();
    send_sync::<host::RuntimeError>();
    send_sync::<host::Runtime<host::MemoryStore, host::RecordingDelivery>>();
};

/// The README's example, compiled and run as a test.
#[doc = include_str!("../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;
