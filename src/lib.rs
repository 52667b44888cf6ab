//! nurture: an embeddable, deterministic, I/O-free marketing-automation engine.

#![warn(missing_docs)]

pub mod diagnostic;
pub mod expr;
pub mod id;
pub mod limits;
pub mod time;
pub mod value;

pub use diagnostic::{Code, CompileError, Diagnostic, Span};
pub use id::{ContactId, EventId, EventTypeIndex, EventTypeName, RuleId, ScoreId};
pub use limits::Limits;
pub use time::{Duration, TimeError, Timestamp};
pub use value::{Kind, Map, Type, Value};
pub mod schema;
pub use schema::{Contact, Event, RecordError, Schema};
pub mod def;
mod document;
mod filter;
mod index;
pub mod program;
pub use program::{MatchScratch, Matches, Program, Rule, RuleIndexId};
