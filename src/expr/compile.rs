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
    #[inline]
    fn get<'a>(&self, act: &Activation<'a>) -> Result<&'a Value, EvalError> {
        match act.scope(self.scope).get(usize::from(self.slot)) {
            Some(Some(v)) => Ok(v),
            _ => Err(EvalError::no_such_field(&self.name)),
        }
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

fn not_bool(op: &'static str) -> EvalError {
    EvalError::new(EvalErrorKind::NoMatchingOverload, op)
}

impl Pred {
    /// Evaluates the condition with CEL semantics: `&&` / `||` absorb an error when
    /// another operand decides the result.
    pub(crate) fn test(&self, act: &Activation<'_>) -> Result<bool, EvalError> {
        match self {
            Pred::Const(b) => Ok(*b),
            Pred::And(items) => {
                let mut error = None;
                for item in items.iter() {
                    match item.test(act) {
                        Ok(false) => return Ok(false),
                        Ok(true) => {}
                        Err(e) => {
                            if error.is_none() {
                                error = Some(e);
                            }
                        }
                    }
                }
                error.map_or(Ok(true), Err)
            }
            Pred::Or(items) => {
                let mut error = None;
                for item in items.iter() {
                    match item.test(act) {
                        Ok(true) => return Ok(true),
                        Ok(false) => {}
                        Err(e) => {
                            if error.is_none() {
                                error = Some(e);
                            }
                        }
                    }
                }
                error.map_or(Ok(false), Err)
            }
            Pred::Not(inner) => inner.test(act).map(|b| !b),
            Pred::Has(scope, slot) => Ok(matches!(act.scope(*scope).get(usize::from(*slot)), Some(Some(_)))),
            Pred::BoolField(f) => match f.get(act)? {
                Value::Bool(b) => Ok(*b),
                _ => Err(not_bool("a condition")),
            },
            Pred::IntCmp(f, op, k) => match f.get(act)? {
                Value::Int(v) => Ok(int_op(*op, v.cmp(k))),
                Value::Double(v) => Ok(match cmp_int_double(*k, *v) {
                    Some(ord) => int_op(*op, ord.reverse()),
                    None => *op == BinOp::Ne,
                }),
                other => general_cmp(*op, other, &Value::Int(*k)),
            },
            Pred::DoubleCmp(f, op, k) => match f.get(act)? {
                Value::Double(v) => Ok(match v.partial_cmp(k) {
                    Some(ord) => int_op(*op, ord),
                    None => *op == BinOp::Ne,
                }),
                other => general_cmp(*op, other, &Value::Double(*k)),
            },
            Pred::StrEq(f, k, eq) => match f.get(act)? {
                Value::String(s) => Ok((s.len() == k.len() && **s == **k) == *eq),
                other => Ok(other.cel_eq(&Value::String(k.clone())) == *eq),
            },
            Pred::StrIn(f, set) => match f.get(act)? {
                Value::String(s) => Ok(set.iter().any(|k| **k == **s)),
                _ => Ok(false),
            },
            Pred::Str(f, test) => match f.get(act)? {
                Value::String(s) => Ok(match test {
                    StrTest::Contains(finder) => finder.find(s.as_bytes()).is_some(),
                    StrTest::StartsWith(k) => s.starts_with(&**k),
                    StrTest::EndsWith(k) => s.ends_with(&**k),
                    StrTest::Matches(re) => re.is_match(s),
                }),
                _ => Err(not_bool("a string function")),
            },
            Pred::General(node, locals) => match Evaluator::new(act, *locals).eval(node)? {
                Value::Bool(b) => Ok(b),
                _ => Err(not_bool("a condition")),
            },
        }
    }
}

#[inline]
fn int_op(op: BinOp, ord: Ordering) -> bool {
    match op {
        BinOp::Eq => ord == Ordering::Equal,
        BinOp::Ne => ord != Ordering::Equal,
        other => ordering_holds(other, ord),
    }
}

fn general_cmp(op: BinOp, a: &Value, b: &Value) -> Result<bool, EvalError> {
    match op {
        BinOp::Eq => Ok(a.cel_eq(b)),
        BinOp::Ne => Ok(!a.cel_eq(b)),
        other => compare(other, a, b),
    }
}
