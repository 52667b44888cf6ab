//! The compiler: lowers boolean conditions to fused predicates.
//!
//! Most rule conditions are conjunctions of "field op constant" tests. Each such test
//! becomes one [`Pred`] variant that reads its slot and compares in place: no
//! intermediate [`Value`]s, no allocation, no dynamic dispatch. Anything else runs on the
//! general evaluator. Both paths give identical results (differential tests check it).

use std::cmp::Ordering;
use std::sync::Arc;

use crate::expr::eval::{compare, ordering_holds, Activation, EvalError, EvalErrorKind, Evaluator};
use crate::expr::ir::{BinOp, Func, Node, Scope};
use crate::schema::Slot;
use crate::value::{cmp_int_double, Value};

/// A string constant prepared for fast comparison: strings of up to 16 bytes are
/// compared as their length and two machine words, with no loop and no call.
#[derive(Clone, Debug)]
pub(crate) struct Literal {
    text: Arc<str>,
    /// `pack(text)` when the text is at most 16 bytes long.
    packed: Option<(u64, u64)>,
}

impl Literal {
    pub(crate) fn new(text: Arc<str>) -> Literal {
        let packed = pack(text.as_bytes());
        Literal { text, packed }
    }

    pub(crate) fn text(&self) -> &Arc<str> {
        &self.text
    }

    #[inline(always)]
    fn matches(&self, s: &[u8]) -> bool {
        if s.len() != self.text.len() {
            return false;
        }
        match self.packed {
            Some(words) => pack(s) == Some(words),
            None => s == self.text.as_bytes(),
        }
    }
}

/// Two words that, together with the length, identify a string of at most 16 bytes:
/// overlapping loads of its first and last bytes.
#[inline(always)]
fn pack(s: &[u8]) -> Option<(u64, u64)> {
    let n = s.len();
    macro_rules! word {
        ($t:ty, $w:expr, $at:expr) => {{
            let mut buf = [0u8; $w];
            buf.copy_from_slice(&s[$at..$at + $w]);
            u64::from(<$t>::from_le_bytes(buf))
        }};
    }
    Some(match n {
        0 => (0, 0),
        1 => (u64::from(s[0]), 0),
        2..=3 => (word!(u16, 2, 0), word!(u16, 2, n - 2)),
        4..=7 => (word!(u32, 4, 0), word!(u32, 4, n - 4)),
        8..=16 => (word!(u64, 8, 0), word!(u64, 8, n - 8)),
        _ => return None,
    })
}

/// A string test against a constant.
#[derive(Clone, Debug)]
pub(crate) enum StrTest {
    /// A prebuilt substring searcher: `str::contains` rebuilds one on every call.
    Contains(Box<memchr::memmem::Finder<'static>>),
    StartsWith(Box<str>),
    EndsWith(Box<str>),
    Matches(Arc<regex::Regex>),
}

/// A field reference inside a predicate.
#[derive(Clone, Debug)]
pub(crate) struct FieldRef {
    pub(crate) scope: Scope,
    pub(crate) slot: Slot,
    pub(crate) name: Arc<str>,
}

impl FieldRef {
    #[inline(always)]
    fn value<'a>(&self, act: &Activation<'a>) -> Option<&'a Value> {
        match act.scope(self.scope).get(usize::from(self.slot)) {
            Some(Some(v)) => Some(v),
            _ => None,
        }
    }

    fn get<'a>(&self, act: &Activation<'a>) -> Result<&'a Value, EvalError> {
        match act.scope(self.scope).get(usize::from(self.slot)) {
            Some(Some(v)) => Ok(v),
            _ => Err(self.missing()),
        }
    }

    #[cold]
    #[inline(never)]
    fn missing(&self) -> EvalError {
        EvalError::no_such_field(&self.name)
    }
}

/// A compiled boolean condition.
#[derive(Clone, Debug)]
pub(crate) enum Pred {
    Const(bool),
    And(Box<[Pred]>),
    Or(Box<[Pred]>),
    Not(Box<Pred>),
    Has(Scope, Slot),
    BoolField(FieldRef),
    IntCmp(FieldRef, BinOp, i64),
    DoubleCmp(FieldRef, BinOp, f64),
    StrEq(FieldRef, Literal, bool),
    StrIn(FieldRef, Box<[Literal]>),
    Str(FieldRef, StrTest),
    /// Anything else, on the general evaluator.
    General(Box<Node>, General),
}

/// What the general evaluator needs to run a node: its comprehension-variable count and
/// step budget.
#[derive(Clone, Copy, Debug)]
pub(crate) struct General {
    pub(crate) locals: usize,
    pub(crate) budget: u64,
}

/// Lowers a boolean-typed node; what does not fuse runs on the general evaluator with
/// `general`'s settings.
pub(crate) fn lower(node: &Node, general: General) -> Pred {
    match node {
        Node::Const(Value::Bool(b)) => Pred::Const(*b),
        Node::And(items) => Pred::And(items.iter().map(|n| lower(n, general)).collect()),
        Node::Or(items) => Pred::Or(items.iter().map(|n| lower(n, general)).collect()),
        Node::Not(inner) => Pred::Not(Box::new(lower(inner, general))),
        Node::Has(scope, slot) => Pred::Has(*scope, *slot),
        Node::Load(scope, slot, name) => Pred::BoolField(field(*scope, *slot, name)),
        Node::Binary(op, lhs, rhs) => {
            lower_binary(*op, lhs, rhs).unwrap_or_else(|| Pred::General(Box::new(node.clone()), general))
        }
        Node::Call(func, args) => {
            lower_call(func, args).unwrap_or_else(|| Pred::General(Box::new(node.clone()), general))
        }
        _ => Pred::General(Box::new(node.clone()), general),
    }
}

fn field(scope: Scope, slot: Slot, name: &Arc<str>) -> FieldRef {
    FieldRef { scope, slot, name: name.clone() }
}

fn flip(op: BinOp) -> BinOp {
    match op {
        BinOp::Lt => BinOp::Gt,
        BinOp::Le => BinOp::Ge,
        BinOp::Gt => BinOp::Lt,
        BinOp::Ge => BinOp::Le,
        other => other,
    }
}

fn lower_binary(op: BinOp, lhs: &Node, rhs: &Node) -> Option<Pred> {
    let (f, op, k) = match (lhs, rhs) {
        (Node::Load(s, slot, name), Node::Const(k)) => (field(*s, *slot, name), op, k),
        (Node::Const(k), Node::Load(s, slot, name)) if op != BinOp::In => {
            (field(*s, *slot, name), flip(op), k)
        }
        _ => return None,
    };
    match (op, k) {
        (BinOp::Eq | BinOp::Ne, Value::String(s)) => {
            Some(Pred::StrEq(f, Literal::new(s.clone()), op == BinOp::Eq))
        }
        (BinOp::In, Value::List(items)) => {
            let strings: Option<Vec<Arc<str>>> = items
                .iter()
                .map(|v| match v {
                    Value::String(s) => Some(s.clone()),
                    _ => None,
                })
                .collect();
            strings.map(|s| Pred::StrIn(f, s.into_iter().map(Literal::new).collect()))
        }
        (BinOp::In, _) => None,
        (_, Value::Int(k)) => Some(Pred::IntCmp(f, op, *k)),
        (_, Value::Double(k)) => Some(Pred::DoubleCmp(f, op, *k)),
        _ => None,
    }
}

fn lower_call(func: &Func, args: &[Node]) -> Option<Pred> {
    match (func, args) {
        (Func::MatchesConst(re), [Node::Load(s, slot, name)]) => {
            Some(Pred::Str(field(*s, *slot, name), StrTest::Matches(re.clone())))
        }
        (
            Func::Contains | Func::StartsWith | Func::EndsWith,
            [Node::Load(s, slot, name), Node::Const(Value::String(k))],
        ) => {
            let test = match func {
                Func::Contains => {
                    StrTest::Contains(Box::new(memchr::memmem::Finder::new(k.as_bytes()).into_owned()))
                }
                Func::StartsWith => StrTest::StartsWith(Box::from(&**k)),
                _ => StrTest::EndsWith(Box::from(&**k)),
            };
            Some(Pred::Str(field(*s, *slot, name), test))
        }
        _ => None,
    }
}

#[cold]
#[inline(never)]
fn not_bool(op: &'static str) -> EvalError {
    EvalError::new(EvalErrorKind::NoMatchingOverload, op)
}

/// A condition's outcome without the error's details, small enough for registers. When
/// it is `Error`, [`Pred::explain`] recomputes the condition to build the error.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Tri {
    False,
    True,
    Error,
}

impl From<bool> for Tri {
    #[inline(always)]
    fn from(b: bool) -> Tri {
        if b {
            Tri::True
        } else {
            Tri::False
        }
    }
}

impl From<Result<bool, EvalError>> for Tri {
    #[inline(always)]
    fn from(r: Result<bool, EvalError>) -> Tri {
        match r {
            Ok(b) => Tri::from(b),
            Err(_) => Tri::Error,
        }
    }
}

impl Pred {
    /// Evaluates the condition with CEL semantics: `&&` / `||` absorb an error when
    /// another operand decides the result.
    pub(crate) fn test(&self, act: &Activation<'_>) -> Result<bool, EvalError> {
        match self.quick(act) {
            Tri::True => Ok(true),
            Tri::False => Ok(false),
            Tri::Error => self.explain(act),
        }
    }

    /// The outcome, with `&&` / `||` absorbing errors, and no error built.
    #[inline]
    fn quick(&self, act: &Activation<'_>) -> Tri {
        match self {
            Pred::And(items) => quick_group(items, false, act),
            Pred::Or(items) => quick_group(items, true, act),
            Pred::Not(inner) => match inner.quick(act) {
                Tri::True => Tri::False,
                Tri::False => Tri::True,
                Tri::Error => Tri::Error,
            },
            leaf => leaf.quick_leaf(act),
        }
    }

    /// Leaves, inlined into the `&&` / `||` loops; groups recurse through `quick`.
    #[inline(always)]
    fn quick_leaf(&self, act: &Activation<'_>) -> Tri {
        match self {
            Pred::StrEq(f, k, eq) => match f.value(act) {
                Some(Value::String(s)) => Tri::from(k.matches(s.as_bytes()) == *eq),
                Some(other) => Tri::from(cold_eq(other, k.text()) == *eq),
                None => Tri::Error,
            },
            Pred::IntCmp(f, op, k) => match f.value(act) {
                Some(Value::Int(v)) => Tri::from(int_op(*op, v.cmp(k))),
                Some(other) => Tri::from(int_cmp_other(*op, other, *k)),
                None => Tri::Error,
            },
            Pred::StrIn(f, set) => match f.value(act) {
                Some(Value::String(s)) => {
                    let s = s.as_bytes();
                    let packed = pack(s);
                    Tri::from(set.iter().any(|k| match (k.packed, packed) {
                        (Some(a), Some(b)) => s.len() == k.text.len() && a == b,
                        _ => k.matches(s),
                    }))
                }
                Some(_) => Tri::False,
                None => Tri::Error,
            },
            Pred::Str(f, test) => match f.value(act) {
                Some(Value::String(s)) => Tri::from(match test {
                    StrTest::Contains(finder) => contains(s.as_bytes(), finder),
                    StrTest::StartsWith(k) => s.as_bytes().starts_with(k.as_bytes()),
                    StrTest::EndsWith(k) => s.as_bytes().ends_with(k.as_bytes()),
                    StrTest::Matches(re) => regex_match(re, s),
                }),
                _ => Tri::Error,
            },
            Pred::DoubleCmp(f, op, k) => match f.value(act) {
                Some(Value::Double(v)) => Tri::from(match v.partial_cmp(k) {
                    Some(ord) => int_op(*op, ord),
                    None => *op == BinOp::Ne,
                }),
                Some(other) => Tri::from(general_cmp(*op, other, &Value::Double(*k))),
                None => Tri::Error,
            },
            Pred::BoolField(f) => match f.value(act) {
                Some(Value::Bool(b)) => Tri::from(*b),
                _ => Tri::Error,
            },
            Pred::Has(scope, slot) => {
                Tri::from(matches!(act.scope(*scope).get(usize::from(*slot)), Some(Some(_))))
            }
            Pred::Const(b) => Tri::from(*b),
            Pred::General(node, settings) => Tri::from(general(node, *settings, act)),
            group => group.quick(act),
        }
    }

    /// Recomputes a condition whose quick outcome was an error, with full detail. Gives
    /// the same outcome as `quick`, and the error the first failing operand raised.
    #[cold]
    #[inline(never)]
    fn explain(&self, act: &Activation<'_>) -> Result<bool, EvalError> {
        match self {
            Pred::And(items) | Pred::Or(items) => {
                let decisive = matches!(self, Pred::Or(_));
                let mut first = None;
                for item in items.iter() {
                    match item.test(act) {
                        Ok(b) if b == decisive => return Ok(decisive),
                        Ok(_) => {}
                        Err(e) => first = first.or(Some(e)),
                    }
                }
                first.map_or(Ok(!decisive), Err)
            }
            Pred::Not(inner) => inner.test(act).map(|b| !b),
            Pred::StrEq(f, k, eq) => match f.get(act)? {
                Value::String(s) => Ok(k.matches(s.as_bytes()) == *eq),
                other => Ok(cold_eq(other, k.text()) == *eq),
            },
            Pred::IntCmp(f, op, k) => int_cmp_other(*op, f.get(act)?, *k),
            Pred::StrIn(f, set) => match f.get(act)? {
                Value::String(s) => Ok(set.iter().any(|k| k.matches(s.as_bytes()))),
                _ => Ok(false),
            },
            Pred::Str(f, _) => match f.get(act)? {
                Value::String(_) => Ok(self.quick_leaf(act) == Tri::True),
                _ => Err(not_bool("a string function")),
            },
            Pred::DoubleCmp(f, op, k) => general_cmp(*op, f.get(act)?, &Value::Double(*k)),
            Pred::BoolField(f) => match f.get(act)? {
                Value::Bool(b) => Ok(*b),
                _ => Err(not_bool("a condition")),
            },
            Pred::Has(..) | Pred::Const(_) => Ok(self.quick_leaf(act) == Tri::True),
            Pred::General(node, settings) => general(node, *settings, act),
        }
    }
}

/// `&&` (`decisive` false) or `||` (`decisive` true) over operands: the decisive value
/// on any side wins, otherwise an error on any side, otherwise the other value.
#[inline(always)]
fn quick_group(items: &[Pred], decisive: bool, act: &Activation<'_>) -> Tri {
    let mut failed = false;
    for item in items {
        match item.quick_leaf(act) {
            Tri::Error => failed = true,
            outcome if (outcome == Tri::True) == decisive => return outcome,
            _ => {}
        }
    }
    if failed {
        Tri::Error
    } else {
        Tri::from(!decisive)
    }
}

/// An int constant compared with a value that is not an int.
#[inline(never)]
fn int_cmp_other(op: BinOp, value: &Value, k: i64) -> Result<bool, EvalError> {
    match value {
        Value::Int(v) => Ok(int_op(op, v.cmp(&k))),
        Value::Double(v) => Ok(match cmp_int_double(k, *v) {
            Some(ord) => int_op(op, ord.reverse()),
            None => op == BinOp::Ne,
        }),
        other => general_cmp(op, other, &Value::Int(k)),
    }
}

#[inline(never)]
fn general(node: &Node, general: General, act: &Activation<'_>) -> Result<bool, EvalError> {
    match Evaluator::new(act, general.locals, general.budget).eval(node)? {
        Value::Bool(b) => Ok(b),
        _ => Err(not_bool("a condition")),
    }
}

/// Byte equality tuned for the short strings rules compare (URLs, codes, countries):
/// lengths first, then overlapping word loads, with no call into `memcmp`.
#[inline(always)]
fn bytes_eq(a: &[u8], b: &[u8]) -> bool {
    let n = a.len();
    if n != b.len() {
        return false;
    }
    // Overlapping loads of the first and last `W` bytes cover any length in W..=2W.
    macro_rules! overlapping {
        ($t:ty, $w:expr) => {{
            let load = |s: &[u8], at: usize| {
                let mut buf = [0u8; $w];
                buf.copy_from_slice(&s[at..at + $w]);
                <$t>::from_ne_bytes(buf)
            };
            load(a, 0) == load(b, 0) && load(a, n - $w) == load(b, n - $w)
        }};
    }
    match n {
        0 => true,
        1 => a[0] == b[0],
        2..=3 => overlapping!(u16, 2),
        4..=7 => overlapping!(u32, 4),
        8..=16 => overlapping!(u64, 8),
        _ => a == b,
    }
}

/// Substring search: a first-byte scan for short haystacks, the prebuilt vectorised
/// searcher for long ones.
#[inline(always)]
fn contains(haystack: &[u8], finder: &memchr::memmem::Finder<'_>) -> bool {
    if haystack.len() >= 64 {
        return finder.find(haystack).is_some();
    }
    let needle = finder.needle();
    let Some(&first) = needle.first() else {
        return true;
    };
    let Some(last_start) = haystack.len().checked_sub(needle.len()) else {
        return false;
    };
    let mut i = 0;
    while i <= last_start {
        if haystack[i] == first && bytes_eq(&haystack[i..i + needle.len()], needle) {
            return true;
        }
        i += 1;
    }
    false
}

#[inline]
fn int_op(op: BinOp, ord: Ordering) -> bool {
    match op {
        BinOp::Eq => ord == Ordering::Equal,
        BinOp::Ne => ord != Ordering::Equal,
        other => ordering_holds(other, ord),
    }
}

#[cold]
#[inline(never)]
fn cold_eq(a: &Value, k: &Arc<str>) -> bool {
    a.cel_eq(&Value::String(k.clone()))
}

#[inline(never)]
fn regex_match(re: &regex::Regex, s: &str) -> bool {
    re.is_match(s)
}

#[cold]
#[inline(never)]
fn general_cmp(op: BinOp, a: &Value, b: &Value) -> Result<bool, EvalError> {
    match op {
        BinOp::Eq => Ok(a.cel_eq(b)),
        BinOp::Ne => Ok(!a.cel_eq(b)),
        other => compare(other, a, b),
    }
}
