//! The checked, slot-resolved intermediate form the evaluator runs.
//!
//! Every name is resolved to a [`Scope`] and slot, every function to a [`Func`]; no
//! string lookups remain.

use std::sync::Arc;

use crate::schema::Slot;
use crate::time::{TimeComponent, TimeZone};
use crate::value::Value;

/// Where a loaded value lives in an [`Activation`](crate::expr::Activation).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum Scope {
    /// Contact attributes.
    Contact,
    /// The triggering event's properties.
    Event,
    /// Score values.
    Score,
    /// Host-declared variables of a standalone expression.
    Var,
    /// Windowed event counts.
    Counter,
    /// Segment memberships (booleans).
    Segment,
}

/// Fields every event has besides its declared properties.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum EventMeta {
    /// `event.type`
    Type,
    /// `event.timestamp`
    Timestamp,
    /// `event.id`
    Id,
}

/// Arithmetic and comparison operators, dispatched on the operands' kinds at run time:
/// the syntax tree's operators (`&&` and `||` never appear in a binary node; they become
/// n-ary `And` / `Or` nodes).
pub(crate) use crate::expr::ast::BinaryOp as BinOp;

/// Built-in functions.
#[derive(Clone, Debug)]
pub(crate) enum Func {
    Size,
    Contains,
    StartsWith,
    EndsWith,
    /// `matches` with a pattern only known at run time, with this call site's cache of
    /// the patterns it compiled.
    Matches(Arc<PatternCache>),
    /// `matches` with a constant pattern, compiled once.
    MatchesConst(Arc<regex::Regex>),
    ToInt,
    ToDouble,
    ToString,
    ToBool,
    ToTimestamp,
    ToDuration,
    /// A timestamp selector; the zone, when a constant, is parsed once.
    TimestampPart(TimeComponent, Option<TimeZone>),
    /// A timestamp selector with a zone only known at run time.
    TimestampPartDyn(TimeComponent),
    DurationHours,
    DurationMinutes,
    DurationSeconds,
    DurationMillis,
    LowerAscii,
    UpperAscii,
    Trim,
}

/// Comprehension macros.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum MacroKind {
    All,
    Exists,
    ExistsOne,
    /// `map(x, f)` / `transformList(i, v, f)`
    Map,
    /// `filter(x, p)`
    Filter,
    /// `map(x, p, f)` / `transformList(i, v, p, f)`
    FilterMap,
    /// `transformMap(k, v, f)` and with a filter
    TransformMap,
}

/// A node of the checked expression.
#[derive(Clone, Debug)]
pub(crate) enum Node {
    Const(Value),
    Load(Scope, Slot, Arc<str>),
    /// `has(contact.x)`: presence of a record field.
    Has(Scope, Slot),
    EventMeta(EventMeta),
    Now,
    Local(u16),
    /// `m.f` on a map: the value under string key `f`, an error if absent.
    SelectKey(Box<Node>, Arc<str>),
    /// `has(m.f)` on a map.
    HasKey(Box<Node>, Arc<str>),
    Index(Box<Node>, Box<Node>),
    Not(Box<Node>),
    Neg(Box<Node>),
    And(Box<[Node]>),
    Or(Box<[Node]>),
    Cond(Box<Node>, Box<Node>, Box<Node>),
    Binary(BinOp, Box<Node>, Box<Node>),
    Call(Func, Box<[Node]>),
    List(Box<[Node]>),
    Map(Box<[(Node, Node)]>),
    Comprehension(Box<Comprehension>),
}

impl Node {
    /// The node's direct children, in evaluation order.
    pub(crate) fn children(&self) -> impl Iterator<Item = &Node> {
        let mut out: Vec<&Node> = Vec::new();
        match self {
            Node::Const(_)
            | Node::Load(..)
            | Node::Has(..)
            | Node::EventMeta(_)
            | Node::Now
            | Node::Local(_) => {}
            Node::SelectKey(n, _) | Node::HasKey(n, _) | Node::Not(n) | Node::Neg(n) => out.push(n),
            Node::Index(a, b) | Node::Binary(_, a, b) => out.extend([&**a, &**b]),
            Node::Cond(a, b, c) => out.extend([&**a, &**b, &**c]),
            Node::And(items) | Node::Or(items) | Node::Call(_, items) | Node::List(items) => {
                out.extend(items.iter())
            }
            Node::Map(entries) => entries.iter().for_each(|(k, v)| out.extend([k, v])),
            Node::Comprehension(c) => {
                out.extend([&c.range, &c.body]);
                out.extend(c.map.as_ref());
            }
        }
        out.into_iter()
    }
}

/// A macro application.
#[derive(Clone, Debug)]
pub(crate) struct Comprehension {
    pub(crate) kind: MacroKind,
    pub(crate) range: Node,
    /// First variable: the element (lists, one-variable form), index (lists,
    /// two-variable form) or key (maps).
    pub(crate) first: u16,
    /// Second variable of the two-variable forms: the element or map value.
    pub(crate) second: Option<u16>,
    /// The predicate (`all`, `exists`, `exists_one`, `filter`, filter of the
    /// transforms) or the mapped expression (`map`, `transform*` without a filter).
    pub(crate) body: Node,
    /// The mapped expression when `body` is a filter.
    pub(crate) map: Option<Node>,
}

/// Compiles a run-time regular expression with a size bound, so hostile patterns
/// cannot exhaust memory; matching is linear-time by construction of the `regex` crate.
pub(crate) fn compile_regex(pattern: &str) -> Result<regex::Regex, String> {
    regex::RegexBuilder::new(pattern)
        .size_limit(1 << 20)
        .dfa_size_limit(1 << 20)
        .nest_limit(64)
        .build()
        .map_err(|e| e.to_string())
}

/// The patterns one `matches()` call site compiled at run time, most recent last:
/// bounded, so that a contact attribute holding a new pattern on every event cannot grow
/// it, and only a cache (the budget charges every call as a compilation).
#[derive(Debug, Default)]
pub(crate) struct PatternCache {
    entries: std::sync::Mutex<Vec<(Arc<str>, Arc<regex::Regex>)>>,
}

impl PatternCache {
    /// Patterns kept per call site.
    pub(crate) const CAPACITY: usize = 16;

    pub(crate) fn get_or_compile(&self, pattern: &str) -> Result<Arc<regex::Regex>, String> {
        if let Ok(entries) = self.entries.lock() {
            if let Some((_, re)) = entries.iter().find(|(p, _)| &**p == pattern) {
                return Ok(re.clone());
            }
        }
        let re = Arc::new(compile_regex(pattern)?);
        if let Ok(mut entries) = self.entries.lock() {
            if entries.len() >= PatternCache::CAPACITY {
                entries.remove(0);
            }
            entries.push((Arc::from(pattern), re.clone()));
        }
        Ok(re)
    }

    /// How many patterns are cached (for tests).
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.entries.lock().map(|e| e.len()).unwrap_or(0)
    }
}
