//! The evaluator: runs checked nodes against an [`Activation`].

use std::borrow::Cow;
use std::cmp::Ordering;
use std::fmt;
use std::sync::Arc;

use smallvec::SmallVec;

pub(crate) use crate::expr::ir::compile_regex;
#[cfg(test)]
use crate::expr::ir::PatternCache;
use crate::expr::ir::{BinOp, Comprehension, EventMeta, Func, MacroKind, Node, Scope};
use crate::schema::{Contact, Event, Record};
use crate::time::{Duration, TimeComponent, TimeZone, Timestamp};
use crate::value::{Map, Value};

/// The inputs an expression reads: contact attributes, the triggering event, score
/// values, declared variables and the current time.
///
/// Building one never copies values; it borrows them.
///
/// ```
/// use nurture::{expr::Activation, Timestamp};
/// let now = Timestamp::from_unix(1_700_000_000, 0)?;
/// let activation = Activation::new().with_now(now);
/// # let _ = activation;
/// # Ok::<(), nurture::TimeError>(())
/// ```
#[derive(Clone, Copy, Debug, Default)]
pub struct Activation<'a> {
    /// Slot records by [`Scope`]: contact, event, scores, variables, counters.
    pub(crate) scopes: [&'a [Option<Value>]; 6],
    pub(crate) event_meta: Option<&'a Event>,
    pub(crate) now: Option<Timestamp>,
}

impl<'a> Activation<'a> {
    /// An activation with nothing bound.
    pub fn new() -> Activation<'a> {
        Activation::default()
    }

    /// Binds `contact`.
    pub fn with_contact(mut self, contact: &'a Contact) -> Activation<'a> {
        self.scopes[Scope::Contact as usize] = contact.attributes().slots();
        self
    }

    /// Binds `event`.
    pub fn with_event(mut self, event: &'a Event) -> Activation<'a> {
        self.scopes[Scope::Event as usize] = event.properties().slots();
        self.event_meta = Some(event);
        self
    }

    /// Binds `score`: values in the order of the schema's score declarations.
    pub fn with_scores(mut self, scores: &'a [Option<Value>]) -> Activation<'a> {
        self.scopes[Scope::Score as usize] = scores;
        self
    }

    /// Binds the variables of a standalone expression.
    pub fn with_variables(mut self, variables: &'a Variables) -> Activation<'a> {
        self.scopes[Scope::Var as usize] = &variables.values;
        self
    }

    /// Binds root variables by slot (the engine's `tags` and `bands`).
    pub(crate) fn with_var_slots(mut self, slots: &'a [Option<Value>]) -> Activation<'a> {
        self.scopes[Scope::Var as usize] = slots;
        self
    }

    /// Binds `counter`: windowed event counts in the order of the schema's counter
    /// declarations (see [`crate::counters::Counters::values`]).
    pub fn with_counters(mut self, counts: &'a [Option<Value>]) -> Activation<'a> {
        self.scopes[Scope::Counter as usize] = counts;
        self
    }

    /// Binds segment memberships (`segment.NAME`), in the schema's segment order.
    pub fn with_segments(mut self, members: &'a [Option<Value>]) -> Activation<'a> {
        self.scopes[Scope::Segment as usize] = members;
        self
    }

    /// Binds `now`.
    pub fn with_now(mut self, now: Timestamp) -> Activation<'a> {
        self.now = Some(now);
        self
    }

    #[inline(always)]
    pub(crate) fn scope(&self, scope: Scope) -> &'a [Option<Value>] {
        self.scopes[scope as usize]
    }
}

/// Values for the variables an [`Env`](crate::expr::Env) declares, by slot.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Variables {
    pub(crate) values: Vec<Option<Value>>,
}

impl Variables {
    pub(crate) fn from_record(record: Record) -> Variables {
        Variables { values: record.slots().to_vec() }
    }
}

/// What went wrong while evaluating; see [`EvalError::kind`].
///
/// One pointer wide, so that `Result<bool, EvalError>` stays small on the hot path; the
/// details live behind the box, which is only allocated when an error happens.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EvalError {
    inner: Box<ErrorInner>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
struct ErrorInner {
    kind: EvalErrorKind,
    detail: Cow<'static, str>,
    name: Option<Arc<str>>,
}

/// The category of an [`EvalError`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum EvalErrorKind {
    /// A field that is absent on this contact or event (test with `has()`).
    NoSuchField,
    /// A map key that is absent.
    NoSuchKey,
    /// An integer result outside the 64-bit range.
    Overflow,
    /// Integer division or remainder by zero.
    DivideByZero,
    /// A list index outside the list.
    IndexOutOfRange,
    /// An operator or function applied to values of kinds it does not accept.
    NoMatchingOverload,
    /// A conversion or parse of a malformed argument.
    InvalidArgument,
    /// A timestamp or duration outside its range.
    OutOfRange,
    /// The evaluation exceeded its step budget (runaway comprehensions).
    BudgetExceeded,
    /// A variable, `now` or the event was not bound in the activation.
    Unbound,
}

impl EvalError {
    #[cold]
    pub(crate) fn new(kind: EvalErrorKind, detail: impl Into<Cow<'static, str>>) -> EvalError {
        EvalError { inner: Box::new(ErrorInner { kind, detail: detail.into(), name: None }) }
    }

    /// A missing field; the name is shared, so building the error never allocates.
    #[cold]
    pub(crate) fn no_such_field(name: &Arc<str>) -> EvalError {
        EvalError {
            inner: Box::new(ErrorInner {
                kind: EvalErrorKind::NoSuchField,
                detail: Cow::Borrowed(""),
                name: Some(name.clone()),
            }),
        }
    }

    fn overload(op: &'static str) -> EvalError {
        EvalError::new(EvalErrorKind::NoMatchingOverload, op)
    }

    /// The category.
    pub fn kind(&self) -> EvalErrorKind {
        self.inner.kind
    }
}

impl fmt::Display for EvalError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ErrorInner { kind, detail, name } = &*self.inner;
        match kind {
            EvalErrorKind::NoSuchField => {
                write!(f, "no such field `{}`", name.as_deref().unwrap_or(detail))
            }
            EvalErrorKind::NoSuchKey => write!(f, "no such key: {}", detail),
            EvalErrorKind::Overflow => write!(f, "integer overflow in {}", detail),
            EvalErrorKind::DivideByZero => write!(f, "{} by zero", detail),
            EvalErrorKind::IndexOutOfRange => write!(f, "index out of range: {}", detail),
            EvalErrorKind::NoMatchingOverload => {
                write!(f, "no matching overload for {}", detail)
            }
            EvalErrorKind::InvalidArgument => write!(f, "invalid argument: {}", detail),
            EvalErrorKind::OutOfRange => write!(f, "out of range: {}", detail),
            EvalErrorKind::BudgetExceeded => {
                write!(f, "evaluation exceeded its budget of {} steps", detail)
            }
            EvalErrorKind::Unbound => write!(f, "`{}` is not bound", detail),
        }
    }
}

impl std::error::Error for EvalError {}

pub(crate) type EvalResult = Result<Value, EvalError>;

/// Evaluation state: the activation, comprehension variables and the step budget.
pub(crate) struct Evaluator<'a> {
    pub(crate) act: &'a Activation<'a>,
    pub(crate) locals: SmallVec<[Value; 4]>,
    pub(crate) budget: u64,
    limit: u64,
}

impl<'a> Evaluator<'a> {
    /// An evaluator with `locals` comprehension variables and a step budget.
    pub(crate) fn new(act: &'a Activation<'a>, locals: usize, budget: u64) -> Evaluator<'a> {
        Evaluator { act, locals: smallvec::smallvec![Value::Null; locals], budget, limit: budget }
    }

    pub(crate) fn eval(&mut self, node: &Node) -> EvalResult {
        self.step()?;
        match node {
            Node::Const(v) => Ok(v.clone()),
            Node::Load(scope, slot, name) => match self.act.scope(*scope).get(usize::from(*slot)) {
                Some(Some(v)) => Ok(v.clone()),
                _ => Err(EvalError::no_such_field(name)),
            },
            Node::Has(scope, slot) => {
                Ok(Value::Bool(matches!(self.act.scope(*scope).get(usize::from(*slot)), Some(Some(_)))))
            }
            Node::EventMeta(meta) => {
                let event =
                    self.act.event_meta.ok_or_else(|| EvalError::new(EvalErrorKind::Unbound, "event"))?;
                Ok(match meta {
                    EventMeta::Type => Value::string(event.type_name().as_str()),
                    EventMeta::Timestamp => Value::Timestamp(event.at()),
                    EventMeta::Id => Value::string(event.id().as_str()),
                })
            }
            Node::Now => self
                .act
                .now
                .map(Value::Timestamp)
                .ok_or_else(|| EvalError::new(EvalErrorKind::Unbound, "now")),
            Node::Local(i) => Ok(self.locals[usize::from(*i)].clone()),
            Node::SelectKey(operand, key) => {
                let map = self.eval(operand)?;
                self.charge(string_cost(key.len()))?;
                match &map {
                    Value::Map(m) => m
                        .get(&Value::String(key.clone()))
                        .cloned()
                        .ok_or_else(|| EvalError::new(EvalErrorKind::NoSuchKey, format!("{key:?}"))),
                    _ => Err(EvalError::overload("field selection")),
                }
            }
            Node::HasKey(operand, key) => match self.eval(operand)? {
                Value::Map(m) => Ok(Value::Bool(m.contains_key(&Value::String(key.clone())))),
                _ => Err(EvalError::overload("has()")),
            },
            Node::Index(operand, index) => {
                let container = self.eval(operand)?;
                let index = self.eval(index)?;
                if let Value::String(key) = &index {
                    self.charge(string_cost(key.len()))?;
                }
                index_value(&container, &index)
            }
            Node::Not(operand) => match self.eval(operand)? {
                Value::Bool(b) => Ok(Value::Bool(!b)),
                _ => Err(EvalError::overload("!_")),
            },
            Node::Neg(operand) => negate(self.eval(operand)?),
            Node::And(items) => self.logical(items, false).map(Value::Bool),
            Node::Or(items) => self.logical(items, true).map(Value::Bool),
            Node::Cond(cond, then, otherwise) => match self.eval(cond)? {
                Value::Bool(true) => self.eval(then),
                Value::Bool(false) => self.eval(otherwise),
                _ => Err(EvalError::overload("_?_:_")),
            },
            Node::Binary(op, lhs, rhs) => {
                let a = self.eval(lhs)?;
                let b = self.eval(rhs)?;
                self.charge_binary(*op, &a, &b)?;
                binary(*op, &a, &b)
            }
            Node::Call(func, args) => self.call(func, args),
            Node::List(items) => {
                self.charge(count_cost(items.len(), ELEMENT_COST))?;
                let mut out = Vec::with_capacity(items.len());
                for item in items.iter() {
                    out.push(self.eval(item)?);
                }
                Ok(Value::List(out.into()))
            }
            Node::Map(entries) => {
                self.charge(count_cost(entries.len(), ENTRY_COST))?;
                let mut map = Map::new();
                for (k, v) in entries.iter() {
                    let key = self.eval(k)?;
                    let value = self.eval(v)?;
                    if let Value::String(text) = &key {
                        self.charge(string_cost(text.len()))?;
                    }
                    if key.as_key().is_none() {
                        return Err(EvalError::new(
                            EvalErrorKind::InvalidArgument,
                            format!("a {} cannot be a map key", key.kind()),
                        ));
                    }
                    if !map.insert(key.clone(), value) {
                        return Err(EvalError::new(
                            EvalErrorKind::InvalidArgument,
                            format!("duplicate map key {key}"),
                        ));
                    }
                }
                Ok(Value::Map(Arc::new(map)))
            }
            Node::Comprehension(c) => self.comprehension(c),
        }
    }

    /// `&&` (`decisive` false) or `||` (`decisive` true) over several operands: the
    /// decisive value wins over errors, and errors win over the other value.
    pub(crate) fn logical(&mut self, items: &[Node], decisive: bool) -> Result<bool, EvalError> {
        let mut error = None;
        for item in items {
            match self.eval(item) {
                Ok(Value::Bool(b)) if b == decisive => return Ok(decisive),
                Ok(Value::Bool(_)) => {}
                Ok(_) => {
                    let op = if decisive { "_||_" } else { "_&&_" };
                    error = error.or(Some(EvalError::overload(op)));
                }
                Err(e) => error = error.or(Some(e)),
            }
        }
        error.map_or(Ok(!decisive), Err)
    }

    fn call(&mut self, func: &Func, args: &[Node]) -> EvalResult {
        let mut values: SmallVec<[Value; 3]> = SmallVec::new();
        for arg in args {
            values.push(self.eval(arg)?);
        }
        self.charge(call_cost(func, &values))?;
        call_function(func, &values)
    }

    /// Charges one unit: a node evaluated or a comprehension iteration.
    #[inline(always)]
    fn step(&mut self) -> Result<(), EvalError> {
        if self.budget == 0 {
            return Err(self.exceeded());
        }
        self.budget -= 1;
        Ok(())
    }

    /// Charges `units` of work before it is done, so that no operation runs past the
    /// budget.
    #[inline]
    fn charge(&mut self, units: u64) -> Result<(), EvalError> {
        match self.budget.checked_sub(units) {
            Some(left) => {
                self.budget = left;
                Ok(())
            }
            None => {
                self.budget = 0;
                Err(self.exceeded())
            }
        }
    }

    #[cold]
    fn exceeded(&self) -> EvalError {
        EvalError::new(EvalErrorKind::BudgetExceeded, self.limit.to_string())
    }

    /// Charges what a binary operator will do with `a` and `b`: the bytes and elements
    /// it copies, hashes or compares.
    fn charge_binary(&mut self, op: BinOp, a: &Value, b: &Value) -> Result<(), EvalError> {
        let units = match op {
            BinOp::Add => match (a, b) {
                (Value::String(x), Value::String(y)) => string_cost(x.len().saturating_add(y.len())),
                (Value::List(x), Value::List(y)) => count_cost(x.len().saturating_add(y.len()), ELEMENT_COST),
                _ => 0,
            },
            BinOp::In => match b {
                // Every element may be compared with the item.
                Value::List(_) => deep_cost(b, self.budget),
                Value::Map(_) => match a {
                    Value::String(k) => string_cost(k.len()),
                    _ => 0,
                },
                _ => 0,
            },
            BinOp::Eq | BinOp::Ne | BinOp::Lt | BinOp::Le | BinOp::Gt | BinOp::Ge => {
                if is_scalar(a) || is_scalar(b) {
                    match (a, b) {
                        (Value::String(x), Value::String(y)) => string_cost(x.len().min(y.len())),
                        _ => 0,
                    }
                } else {
                    deep_cost(a, self.budget).min(deep_cost(b, self.budget))
                }
            }
            _ => 0,
        };
        self.charge(units)
    }

    fn comprehension(&mut self, c: &Comprehension) -> EvalResult {
        let range = self.eval(&c.range)?;
        match &range {
            Value::List(items) => self.charge(count_cost(items.len(), 2 * ELEMENT_COST))?,
            Value::Map(m) => self.charge(count_cost(m.len(), 2 * ELEMENT_COST))?,
            _ => {}
        }
        // Iterate as (first, second) pairs: lists give (index, element), maps give
        // (key, value). One-variable forms bind the element (lists) or key (maps).
        let pairs: Vec<(Value, Value)> = match &range {
            Value::List(items) => {
                items.iter().enumerate().map(|(i, v)| (Value::Int(i as i64), v.clone())).collect()
            }
            Value::Map(m) => m.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
            _ => return Err(EvalError::overload("a macro over a non-container")),
        };
        let is_list = matches!(range, Value::List(_));
        let mut error: Option<EvalError> = None;
        let mut count = 0usize;
        let mut out_list = Vec::new();
        let mut out_map = Map::new();
        for (first, second) in pairs {
            self.step()?;
            match c.second {
                Some(slot) => {
                    self.locals[usize::from(c.first)] = first;
                    self.locals[usize::from(slot)] = second;
                }
                None => {
                    self.locals[usize::from(c.first)] = if is_list { second } else { first };
                }
            }
            match c.kind {
                MacroKind::All => match self.eval(&c.body) {
                    Ok(Value::Bool(false)) => return Ok(Value::Bool(false)),
                    Ok(Value::Bool(true)) => {}
                    Ok(_) => error = error.or(Some(EvalError::overload("all()"))),
                    Err(e) => error = error.or(Some(e)),
                },
                MacroKind::Exists => match self.eval(&c.body) {
                    Ok(Value::Bool(true)) => return Ok(Value::Bool(true)),
                    Ok(Value::Bool(false)) => {}
                    Ok(_) => error = error.or(Some(EvalError::overload("exists()"))),
                    Err(e) => error = error.or(Some(e)),
                },
                MacroKind::ExistsOne => match self.eval(&c.body)? {
                    Value::Bool(true) => count += 1,
                    Value::Bool(false) => {}
                    _ => return Err(EvalError::overload("exists_one()")),
                },
                MacroKind::Map => {
                    let value = self.eval(&c.body)?;
                    self.charge(ELEMENT_COST)?;
                    out_list.push(value);
                }
                MacroKind::Filter => match self.eval(&c.body)? {
                    Value::Bool(true) => {
                        self.charge(ELEMENT_COST)?;
                        out_list.push(self.locals[usize::from(c.first)].clone());
                    }
                    Value::Bool(false) => {}
                    _ => return Err(EvalError::overload("filter()")),
                },
                MacroKind::FilterMap => match self.eval(&c.body)? {
                    Value::Bool(true) => {
                        let map = c.map.as_ref().ok_or_else(|| EvalError::overload("map()"))?;
                        let value = self.eval(map)?;
                        self.charge(ELEMENT_COST)?;
                        out_list.push(value);
                    }
                    Value::Bool(false) => {}
                    _ => return Err(EvalError::overload("map()")),
                },
                MacroKind::TransformMap => {
                    let key = self.locals[usize::from(c.first)].clone();
                    let keep = match &c.map {
                        Some(_) => match self.eval(&c.body)? {
                            Value::Bool(b) => b,
                            _ => return Err(EvalError::overload("transformMap()")),
                        },
                        None => true,
                    };
                    if keep {
                        let value = self.eval(c.map.as_ref().unwrap_or(&c.body))?;
                        self.charge(ENTRY_COST)?;
                        out_map.insert(key, value);
                    }
                }
            }
        }
        match c.kind {
            MacroKind::All => error.map_or(Ok(Value::Bool(true)), Err),
            MacroKind::Exists => error.map_or(Ok(Value::Bool(false)), Err),
            MacroKind::ExistsOne => Ok(Value::Bool(count == 1)),
            MacroKind::Map | MacroKind::Filter | MacroKind::FilterMap => Ok(Value::List(out_list.into())),
            MacroKind::TransformMap => Ok(Value::Map(Arc::new(out_map))),
        }
    }
}

/// Budget units per list element built or copied: a [`Value`] is 32 bytes, so one unit
/// stands for about 8 bytes of memory, like a unit of string.
pub(crate) const ELEMENT_COST: u64 = 4;
/// Budget units per map entry built: a key, a value and an index slot, about 90 bytes.
pub(crate) const ENTRY_COST: u64 = 12;
/// Budget units per compilation of a run-time `matches()` pattern, charged on every
/// call whether or not the pattern was cached, so that results do not depend on what
/// ran before: a compile (or a refusal at the size limit) takes up to about 15 ms, so the
/// default budget allows ten.
pub(crate) const PATTERN_COMPILE_COST: u64 = 1_000_000;

/// Budget units for reading or writing `bytes` of string: one per 8 bytes.
#[inline]
fn string_cost(bytes: usize) -> u64 {
    (bytes / 8) as u64
}

#[inline]
fn count_cost(n: usize, per: u64) -> u64 {
    (n as u64).saturating_mul(per)
}

fn is_scalar(v: &Value) -> bool {
    !matches!(v, Value::List(_) | Value::Map(_))
}

/// The units it takes to walk all of `v` (to compare it, say), counted only up to `cap`
/// (the rest of the budget), so that counting costs no more than what it counts.
fn deep_cost(v: &Value, cap: u64) -> u64 {
    fn walk(v: &Value, total: &mut u64, cap: u64) {
        if *total > cap {
            return;
        }
        match v {
            Value::String(s) => *total = total.saturating_add(string_cost(s.len())),
            Value::List(items) => {
                for item in items.iter() {
                    *total = total.saturating_add(1);
                    walk(item, total, cap);
                    if *total > cap {
                        return;
                    }
                }
            }
            Value::Map(m) => {
                for (k, item) in m.iter() {
                    *total = total.saturating_add(1);
                    walk(k, total, cap);
                    walk(item, total, cap);
                    if *total > cap {
                        return;
                    }
                }
            }
            _ => {}
        }
    }
    let mut total = 0;
    walk(v, &mut total, cap);
    total
}

/// What a call costs beyond its node: the bytes it reads or writes, and a pattern
/// compilation for a run-time `matches()`.
fn call_cost(func: &Func, args: &[Value]) -> u64 {
    let len = |i: usize| match args.get(i) {
        Some(Value::String(s)) => s.len(),
        _ => 0,
    };
    match func {
        Func::Size | Func::LowerAscii | Func::UpperAscii | Func::Trim | Func::MatchesConst(_) => {
            string_cost(len(0))
        }
        Func::Contains | Func::StartsWith | Func::EndsWith => string_cost(len(0).saturating_add(len(1))),
        Func::Matches(_) => PATTERN_COMPILE_COST.saturating_add(string_cost(len(0).saturating_add(len(1)))),
        Func::ToInt | Func::ToDouble | Func::ToTimestamp | Func::ToDuration | Func::ToBool => {
            string_cost(len(0))
        }
        Func::TimestampPartDyn(_) => string_cost(len(1)),
        _ => 0,
    }
}

pub(crate) fn index_value(container: &Value, index: &Value) -> EvalResult {
    match container {
        Value::List(items) => {
            let i = match index {
                Value::Int(i) => *i,
                Value::Double(d) if d.fract() == 0.0 && d.abs() < 9.0e15 => *d as i64,
                _ => return Err(EvalError::overload("list index")),
            };
            usize::try_from(i)
                .ok()
                .and_then(|i| items.get(i))
                .cloned()
                .ok_or_else(|| EvalError::new(EvalErrorKind::IndexOutOfRange, i.to_string()))
        }
        Value::Map(m) => {
            m.get(index).cloned().ok_or_else(|| EvalError::new(EvalErrorKind::NoSuchKey, index.to_string()))
        }
        _ => Err(EvalError::overload("_[_]")),
    }
}

fn negate(v: Value) -> EvalResult {
    match v {
        Value::Int(i) => {
            i.checked_neg().map(Value::Int).ok_or_else(|| EvalError::new(EvalErrorKind::Overflow, "negation"))
        }
        Value::Double(d) => Ok(Value::Double(-d)),
        _ => Err(EvalError::overload("-_")),
    }
}

fn overflow(op: &'static str) -> EvalError {
    EvalError::new(EvalErrorKind::Overflow, op)
}

fn time_range() -> EvalError {
    EvalError::new(EvalErrorKind::OutOfRange, "timestamp or duration arithmetic")
}

pub(crate) fn binary(op: BinOp, a: &Value, b: &Value) -> EvalResult {
    use Value::{Double, Duration as Dur, Int, List, String as Str, Timestamp as Ts};
    match op {
        BinOp::Eq => Ok(Value::Bool(a.cel_eq(b))),
        BinOp::Ne => Ok(Value::Bool(!a.cel_eq(b))),
        BinOp::Lt | BinOp::Le | BinOp::Gt | BinOp::Ge => compare(op, a, b).map(Value::Bool),
        BinOp::In => contains(b, a).map(Value::Bool),
        BinOp::Add => match (a, b) {
            (Int(x), Int(y)) => x.checked_add(*y).map(Int).ok_or_else(|| overflow("addition")),
            (Double(x), Double(y)) => Ok(Double(x + y)),
            (Str(x), Str(y)) => {
                let mut s = String::with_capacity(x.len() + y.len());
                s.push_str(x);
                s.push_str(y);
                Ok(Value::from(s))
            }
            (List(x), List(y)) => Ok(List(x.iter().chain(y.iter()).cloned().collect())),
            (Ts(t), Dur(d)) | (Dur(d), Ts(t)) => t.checked_add(*d).map(Ts).ok_or_else(time_range),
            (Dur(x), Dur(y)) => {
                Duration::from_nanos(x.as_nanos() + y.as_nanos()).map(Dur).map_err(|_| time_range())
            }
            _ => Err(EvalError::overload("_+_")),
        },
        BinOp::Sub => match (a, b) {
            (Int(x), Int(y)) => x.checked_sub(*y).map(Int).ok_or_else(|| overflow("subtraction")),
            (Double(x), Double(y)) => Ok(Double(x - y)),
            (Ts(t), Dur(d)) => t.checked_sub(*d).map(Ts).ok_or_else(time_range),
            // CEL implementations compute instant differences in 64-bit nanoseconds
            // (about ±292 years); the conformance suite expects larger ones to fail.
            (Ts(x), Ts(y)) => x
                .duration_since(*y)
                .filter(|d| i64::try_from(d.as_nanos()).is_ok())
                .map(Dur)
                .ok_or_else(time_range),
            (Dur(x), Dur(y)) => {
                Duration::from_nanos(x.as_nanos() - y.as_nanos()).map(Dur).map_err(|_| time_range())
            }
            _ => Err(EvalError::overload("_-_")),
        },
        BinOp::Mul => match (a, b) {
            (Int(x), Int(y)) => x.checked_mul(*y).map(Int).ok_or_else(|| overflow("multiplication")),
            (Double(x), Double(y)) => Ok(Double(x * y)),
            _ => Err(EvalError::overload("_*_")),
        },
        BinOp::Div => match (a, b) {
            (Int(_), Int(0)) => Err(EvalError::new(EvalErrorKind::DivideByZero, "division")),
            (Int(x), Int(y)) => x.checked_div(*y).map(Int).ok_or_else(|| overflow("division")),
            (Double(x), Double(y)) => Ok(Double(x / y)),
            _ => Err(EvalError::overload("_/_")),
        },
        BinOp::Rem => match (a, b) {
            (Int(_), Int(0)) => Err(EvalError::new(EvalErrorKind::DivideByZero, "modulus")),
            (Int(x), Int(y)) => x.checked_rem(*y).map(Int).ok_or_else(|| overflow("modulus")),
            _ => Err(EvalError::overload("_%_")),
        },
        // The checker turns these into n-ary `And` / `Or` nodes; they never get here.
        BinOp::And | BinOp::Or => Err(EvalError::overload("a logical operator on values")),
    }
}

/// Ordering comparison; NaN makes every comparison false, mismatched kinds are errors.
pub(crate) fn compare(op: BinOp, a: &Value, b: &Value) -> Result<bool, EvalError> {
    match a.cel_cmp(b) {
        Some(ord) => Ok(ordering_holds(op, ord)),
        None => {
            let numeric = |v: &Value| matches!(v, Value::Int(_) | Value::Double(_));
            if numeric(a) && numeric(b) {
                Ok(false)
            } else {
                Err(EvalError::overload("an ordering comparison"))
            }
        }
    }
}

#[inline]
pub(crate) fn ordering_holds(op: BinOp, ord: Ordering) -> bool {
    match op {
        BinOp::Lt => ord == Ordering::Less,
        BinOp::Le => ord != Ordering::Greater,
        BinOp::Gt => ord == Ordering::Greater,
        BinOp::Ge => ord != Ordering::Less,
        BinOp::Eq => ord == Ordering::Equal,
        _ => ord != Ordering::Equal,
    }
}

fn contains(container: &Value, item: &Value) -> Result<bool, EvalError> {
    match container {
        Value::List(items) => Ok(items.iter().any(|v| v.cel_eq(item))),
        Value::Map(m) => Ok(m.contains_key(item)),
        _ => Err(EvalError::overload("_in_")),
    }
}

fn string_arg(v: &Value) -> Result<&str, EvalError> {
    match v {
        Value::String(s) => Ok(s),
        _ => Err(EvalError::overload("a string function")),
    }
}

fn invalid(detail: String) -> EvalError {
    EvalError::new(EvalErrorKind::InvalidArgument, detail)
}

pub(crate) fn call_function(func: &Func, args: &[Value]) -> EvalResult {
    let arg = |i: usize| args.get(i).ok_or_else(|| EvalError::overload("a call with too few arguments"));
    match func {
        Func::Size => match arg(0)? {
            Value::String(s) => Ok(Value::Int(s.chars().count() as i64)),
            Value::List(l) => Ok(Value::Int(l.len() as i64)),
            Value::Map(m) => Ok(Value::Int(m.len() as i64)),
            _ => Err(EvalError::overload("size()")),
        },
        Func::Contains => Ok(Value::Bool(string_arg(arg(0)?)?.contains(string_arg(arg(1)?)?))),
        Func::StartsWith => Ok(Value::Bool(string_arg(arg(0)?)?.starts_with(string_arg(arg(1)?)?))),
        Func::EndsWith => Ok(Value::Bool(string_arg(arg(0)?)?.ends_with(string_arg(arg(1)?)?))),
        Func::Matches(cache) => {
            let re = cache.get_or_compile(string_arg(arg(1)?)?).map_err(invalid)?;
            Ok(Value::Bool(re.is_match(string_arg(arg(0)?)?)))
        }
        Func::MatchesConst(re) => Ok(Value::Bool(re.is_match(string_arg(arg(0)?)?))),
        Func::LowerAscii => Ok(Value::from(string_arg(arg(0)?)?.to_ascii_lowercase())),
        Func::UpperAscii => Ok(Value::from(string_arg(arg(0)?)?.to_ascii_uppercase())),
        Func::Trim => Ok(Value::from(string_arg(arg(0)?)?.trim())),
        Func::ToInt => to_int(arg(0)?),
        Func::ToDouble => match arg(0)? {
            Value::Int(i) => Ok(Value::Double(*i as f64)),
            Value::Double(d) => Ok(Value::Double(*d)),
            Value::String(s) => s
                .parse::<f64>()
                .map(Value::Double)
                .map_err(|_| invalid(format!("cannot convert {s:?} to double"))),
            _ => Err(EvalError::overload("double()")),
        },
        Func::ToString => match arg(0)? {
            Value::String(s) => Ok(Value::String(s.clone())),
            Value::Int(i) => Ok(Value::from(i.to_string())),
            Value::Double(d) => Ok(Value::from(format_double(*d))),
            Value::Bool(b) => Ok(Value::from(b.to_string())),
            Value::Timestamp(t) => Ok(Value::from(t.to_string())),
            Value::Duration(d) => Ok(Value::from(d.to_string())),
            _ => Err(EvalError::overload("string()")),
        },
        Func::ToBool => match arg(0)? {
            Value::Bool(b) => Ok(Value::Bool(*b)),
            Value::String(s) => match &**s {
                "1" | "t" | "T" | "true" | "TRUE" | "True" => Ok(Value::Bool(true)),
                "0" | "f" | "F" | "false" | "FALSE" | "False" => Ok(Value::Bool(false)),
                other => Err(invalid(format!("cannot convert {other:?} to bool"))),
            },
            _ => Err(EvalError::overload("bool()")),
        },
        Func::ToTimestamp => match arg(0)? {
            Value::Timestamp(t) => Ok(Value::Timestamp(*t)),
            Value::String(s) => Timestamp::parse(s).map(Value::Timestamp).map_err(|e| invalid(e.to_string())),
            Value::Int(i) => Timestamp::from_unix(*i, 0)
                .map(Value::Timestamp)
                .map_err(|_| EvalError::new(EvalErrorKind::OutOfRange, "timestamp")),
            _ => Err(EvalError::overload("timestamp()")),
        },
        Func::ToDuration => match arg(0)? {
            Value::Duration(d) => Ok(Value::Duration(*d)),
            Value::String(s) => Duration::parse(s).map(Value::Duration).map_err(|e| invalid(e.to_string())),
            _ => Err(EvalError::overload("duration()")),
        },
        Func::TimestampPart(component, tz) => match arg(0)? {
            Value::Timestamp(t) => Ok(Value::Int(t.component(*component, *tz))),
            Value::Duration(d) => duration_part(*d, *component),
            _ => Err(EvalError::overload("a timestamp selector")),
        },
        Func::TimestampPartDyn(component) => {
            let tz = TimeZone::parse(string_arg(arg(1)?)?).map_err(|e| invalid(e.to_string()))?;
            match arg(0)? {
                Value::Timestamp(t) => Ok(Value::Int(t.component(*component, Some(tz)))),
                _ => Err(EvalError::overload("a timestamp selector")),
            }
        }
        Func::DurationHours => dur(arg(0)?, TimeComponent::Hours),
        Func::DurationMinutes => dur(arg(0)?, TimeComponent::Minutes),
        Func::DurationSeconds => dur(arg(0)?, TimeComponent::Seconds),
        Func::DurationMillis => dur(arg(0)?, TimeComponent::Milliseconds),
    }
}

fn dur(v: &Value, c: TimeComponent) -> EvalResult {
    match v {
        Value::Duration(d) => duration_part(*d, c),
        _ => Err(EvalError::overload("a duration selector")),
    }
}

fn duration_part(d: Duration, c: TimeComponent) -> EvalResult {
    Ok(Value::Int(match c {
        TimeComponent::Hours => d.hours(),
        TimeComponent::Minutes => d.minutes(),
        TimeComponent::Seconds => d.seconds(),
        TimeComponent::Milliseconds => d.milliseconds_part(),
        _ => return Err(EvalError::overload("a duration selector")),
    }))
}

fn to_int(v: &Value) -> EvalResult {
    match v {
        Value::Int(i) => Ok(Value::Int(*i)),
        Value::Double(d) => {
            // Both bounds exclusive: -2^63 and 2^63 are where CEL's range checks fall.
            if d.is_finite() && *d > i64::MIN as f64 && *d < -(i64::MIN as f64) {
                Ok(Value::Int(d.trunc() as i64))
            } else {
                Err(EvalError::new(EvalErrorKind::OutOfRange, "int() of a double"))
            }
        }
        Value::String(s) => {
            s.parse::<i64>().map(Value::Int).map_err(|_| invalid(format!("cannot convert {s:?} to int")))
        }
        Value::Timestamp(t) => Ok(Value::Int(t.unix_seconds())),
        _ => Err(EvalError::overload("int()")),
    }
}

/// Formats a double the way CEL does (Go's `strconv.FormatFloat(d, 'g', -1, 64)`):
/// the shortest digits that round-trip, in exponent form below 1e-4 or from 1e6.
pub(crate) fn format_double(d: f64) -> String {
    if d.is_nan() {
        return "NaN".into();
    }
    if d.is_infinite() {
        return if d > 0.0 { "+Inf".into() } else { "-Inf".into() };
    }
    if d == 0.0 {
        return if d.is_sign_negative() { "-0".into() } else { "0".into() };
    }
    let sci = format!("{d:e}");
    let (mantissa, exp) = sci.split_once('e').unwrap_or((&sci, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    if !(-4..6).contains(&exp) {
        let sign = if exp < 0 { '-' } else { '+' };
        format!("{mantissa}e{sign}{:02}", exp.abs())
    } else {
        format!("{d}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_format_like_cel() {
        assert_eq!(format_double(123.456), "123.456");
        assert_eq!(format_double(-4.5e-3), "-0.0045");
        assert_eq!(format_double(1e21), "1e+21");
        assert_eq!(format_double(1e6), "1e+06");
        assert_eq!(format_double(123456.0), "123456");
        assert_eq!(format_double(1234567.0), "1.234567e+06");
        assert_eq!(format_double(1.5e-5), "1.5e-05");
        assert_eq!(format_double(100.0), "100");
        assert_eq!(format_double(-0.0), "-0");
    }

    #[test]
    fn the_pattern_cache_is_bounded_and_reuses_compiled_patterns() {
        let cache = PatternCache::default();
        let first = cache.get_or_compile("^a+$").unwrap();
        let again = cache.get_or_compile("^a+$").unwrap();
        assert!(Arc::ptr_eq(&first, &again));
        for i in 0..100 {
            cache.get_or_compile(&format!("^a{{{i}}}$")).unwrap();
        }
        assert_eq!(cache.len(), PatternCache::CAPACITY);
        assert!(cache.get_or_compile("(").is_err());
    }

    #[test]
    fn deep_cost_stops_at_its_cap() {
        let inner = Value::List((0..1000).map(Value::Int).collect::<Vec<_>>().into());
        let outer = Value::List(vec![inner; 1000].into());
        assert_eq!(deep_cost(&outer, u64::MAX), 1000 + 1000 * 1000);
        assert!(deep_cost(&outer, 5000) <= 5000 + 1001);
    }
}
