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
    StrEq(FieldRef, Arc<str>, bool),
    StrIn(FieldRef, Box<[Arc<str>]>),
    Str(FieldRef, StrTest),
    /// Anything else, on the general evaluator.
    General(Box<Node>, usize),
}

/// Lowers a boolean-typed node; `locals` is the comprehension-variable count the general
/// evaluator needs.
pub(crate) fn lower(node: &Node, locals: usize) -> Pred {
    match node {
        Node::Const(Value::Bool(b)) => Pred::Const(*b),
        Node::And(items) => Pred::And(items.iter().map(|n| lower(n, locals)).collect()),
        Node::Or(items) => Pred::Or(items.iter().map(|n| lower(n, locals)).collect()),
        Node::Not(inner) => Pred::Not(Box::new(lower(inner, locals))),
        Node::Has(scope, slot) => Pred::Has(*scope, *slot),
        Node::Load(scope, slot, name) => Pred::BoolField(field(*scope, *slot, name)),
        Node::Binary(op, lhs, rhs) => {
            lower_binary(*op, lhs, rhs).unwrap_or_else(|| Pred::General(Box::new(node.clone()), locals))
        }
        Node::Call(func, args) => {
            lower_call(func, args).unwrap_or_else(|| Pred::General(Box::new(node.clone()), locals))
        }
        _ => Pred::General(Box::new(node.clone()), locals),
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
        (BinOp::Eq | BinOp::Ne, Value::String(s)) => Some(Pred::StrEq(f, s.clone(), op == BinOp::Eq)),
        (BinOp::In, Value::List(items)) => {
            let strings: Option<Vec<Arc<str>>> = items
                .iter()
                .map(|v| match v {
                    Value::String(s) => Some(s.clone()),
                    _ => None,
                })
                .collect();
            strings.map(|s| Pred::StrIn(f, s.into()))
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
                Func::Contains => StrTest::Contains(Box::new(memchr::memmem::Finder::new(k.as_bytes()).into_owned())),
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

impl Pred {
    /// Evaluates the condition with CEL semantics: `&&` / `||` absorb an error when
    /// another operand decides the result.
    pub(crate) fn test(&self, act: &Activation<'_>) -> Result<bool, EvalError> {
        match self {
            Pred::And(items) => {
                for (i, item) in items.iter().enumerate() {
                    match item.test_leaf(act) {
                        Ok(true) => {}
                        Ok(false) => return Ok(false),
                        Err(e) => return absorb(&items[i + 1..], e, false, act),
                    }
                }
                Ok(true)
            }
            Pred::Or(items) => {
                for (i, item) in items.iter().enumerate() {
                    match item.test_leaf(act) {
                        Ok(false) => {}
                        Ok(true) => return Ok(true),
                        Err(e) => return absorb(&items[i + 1..], e, true, act),
                    }
                }
                Ok(false)
            }
            Pred::Not(inner) => inner.test(act).map(|b| !b),
            leaf => leaf.test_leaf(act),
        }
    }

    /// Leaves inline into the `&&` / `||` loops; groups recurse through [`Pred::test`].
    #[inline(always)]
    fn test_leaf(&self, act: &Activation<'_>) -> Result<bool, EvalError> {
        match self {
            Pred::StrEq(f, k, eq) => match f.get(act)? {
                Value::String(s) => Ok(bytes_eq(s.as_bytes(), k.as_bytes()) == *eq),
                other => Ok(cold_eq(other, k) == *eq),
            },
            Pred::IntCmp(f, op, k) => match f.get(act)? {
                Value::Int(v) => Ok(int_op(*op, v.cmp(k))),
                Value::Double(v) => Ok(match cmp_int_double(*k, *v) {
                    Some(ord) => int_op(*op, ord.reverse()),
                    None => *op == BinOp::Ne,
                }),
                other => general_cmp(*op, other, &Value::Int(*k)),
            },
            Pred::StrIn(f, set) => match f.get(act)? {
                Value::String(s) => {
                    let s = s.as_bytes();
                    Ok(set.iter().any(|k| bytes_eq(s, k.as_bytes())))
                }
                _ => Ok(false),
            },
            Pred::Str(f, test) => match f.get(act)? {
                Value::String(s) => Ok(match test {
                    StrTest::Contains(finder) => contains(s.as_bytes(), finder),
                    StrTest::StartsWith(k) => s.as_bytes().starts_with(k.as_bytes()),
                    StrTest::EndsWith(k) => s.as_bytes().ends_with(k.as_bytes()),
                    StrTest::Matches(re) => regex_match(re, s),
                }),
                _ => Err(not_bool("a string function")),
            },
            Pred::DoubleCmp(f, op, k) => match f.get(act)? {
                Value::Double(v) => Ok(match v.partial_cmp(k) {
                    Some(ord) => int_op(*op, ord),
                    None => *op == BinOp::Ne,
                }),
                other => general_cmp(*op, other, &Value::Double(*k)),
            },
            Pred::BoolField(f) => match f.get(act)? {
                Value::Bool(b) => Ok(*b),
                _ => Err(not_bool("a condition")),
            },
            Pred::Has(scope, slot) => {
                Ok(matches!(act.scope(*scope).get(usize::from(*slot)), Some(Some(_))))
            }
            Pred::Const(b) => Ok(*b),
            Pred::General(node, locals) => general(node, *locals, act),
            group => group.test(act),
        }
    }
}

/// The rest of an `&&` (`decisive` false) or `||` (`decisive` true) after an operand
/// failed: a decisive operand still decides, otherwise the first error stands. Kept out
/// of line so the common path stays small.
#[cold]
#[inline(never)]
fn absorb(rest: &[Pred], first: EvalError, decisive: bool, act: &Activation<'_>) -> Result<bool, EvalError> {
    for item in rest {
        if item.test(act) == Ok(decisive) {
            return Ok(decisive);
        }
    }
    Err(first)
}

#[inline(never)]
fn general(node: &Node, locals: usize, act: &Activation<'_>) -> Result<bool, EvalError> {
    match Evaluator::new(act, locals).eval(node)? {
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
