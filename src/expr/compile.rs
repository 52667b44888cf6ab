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
    /// An `&&` or `||` whose operands [`Pred::tuned`] reordered by measured
    /// selectivity; it keeps the written order for error reports.
    /// Inline, not boxed: evaluation reads its operands' pointer from the predicate
    /// itself, as for `And` / `Or`, with no extra load (the variant fits in the size
    /// the fused leaves already give `Pred`).
    Ordered(Ordered),
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

/// A reordered `&&` / `||`. CEL's `&&` and `||` are commutative here, errors included
/// (an error is absorbed by a decisive operand on either side), so the order changes
/// only the cost; [`Pred::explain`] walks `written` so that the error reported is the
/// one the first failing operand as written raises, as before tuning.
#[derive(Clone, Debug)]
pub(crate) struct Ordered {
    /// `true` for `||`, `false` for `&&`: the value that decides the group.
    decisive: bool,
    /// The operands in evaluation order.
    items: Box<[Pred]>,
    /// `items[written[k]]` is the `k`-th operand as written.
    written: Box<[u32]>,
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
            // Constant `decisive` arguments, so each loop is specialised as `And`'s and `Or`'s are.
            Pred::Ordered(group) if group.decisive => quick_group(&group.items, true, act),
            Pred::Ordered(group) => quick_group(&group.items, false, act),
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
            Pred::And(items) => explain_group(items.iter(), false, act),
            Pred::Or(items) => explain_group(items.iter(), true, act),
            Pred::Ordered(group) => explain_group(
                group.written.iter().filter_map(|&i| group.items.get(i as usize)),
                group.decisive,
                act,
            ),
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

/// The full outcome of a group whose quick outcome was an error, its operands given in
/// written order: the first error as written is the one reported.
fn explain_group<'p>(
    items: impl Iterator<Item = &'p Pred>,
    decisive: bool,
    act: &Activation<'_>,
) -> Result<bool, EvalError> {
    let mut first = None;
    for item in items {
        match item.test(act) {
            Ok(b) if b == decisive => return Ok(decisive),
            Ok(_) => {}
            Err(e) => first = first.or(Some(e)),
        }
    }
    first.map_or(Ok(!decisive), Err)
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

// ---------------------------------------------------------------------------------------
// Tuning: operand order by measured selectivity.

/// One node's counts over a sample (see [`Tally`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct NodeTally {
    /// Evaluations.
    runs: u64,
    /// Outcomes `true` and `false` (the other runs ended in an error).
    trues: u64,
    falses: u64,
    /// The summed cost estimate of those runs, in [`Pred::leaf_cost`] units.
    cost: u64,
}

/// What a condition did on a sample: per node, in pre-order, how often it was true and
/// false and what it cost. Counts, not clock readings, so that the same condition and
/// sample give the same order on every machine.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Tally {
    nodes: Vec<NodeTally>,
}

impl Tally {
    /// How many times the condition was observed.
    pub(crate) fn runs(&self) -> u64 {
        self.nodes.first().map_or(0, |n| n.runs)
    }
}

/// Cost units per step of the general evaluator, which dispatches on value kinds and
/// may build values, against about 2 for a fused comparison.
const GENERAL_STEP_COST: u64 = 10;

impl Pred {
    /// Evaluates every node of the condition on `act` (every operand, not only those a
    /// short-circuit would reach, so that each is counted) and adds the outcomes and
    /// costs to `tally`.
    pub(crate) fn observe(&self, act: &Activation<'_>, tally: &mut Tally) {
        if tally.nodes.is_empty() {
            tally.nodes.resize(self.node_count(), NodeTally::default());
        }
        self.measure(act, &mut tally.nodes, &mut 0);
    }

    /// The condition with the operands of every `&&` / `||` ordered by their rank in
    /// `tally`, ascending: cost / (share of runs that decide the group), that is
    /// cost / (1 - pass rate) for `&&` and cost / pass rate for `||`. An operand that
    /// never decided goes last; ties keep the written order. The result gives exactly
    /// the same values and errors. `None` when no operand moves, or when the tally is
    /// empty or not this condition's.
    pub(crate) fn tuned(&self, tally: &Tally) -> Option<Pred> {
        if tally.runs() == 0 || tally.nodes.len() != self.node_count() {
            return None;
        }
        let mut moved = false;
        let tuned = self.reorder(&tally.nodes, &mut 0, &mut moved);
        moved.then_some(tuned)
    }

    /// The operands of a top-level `&&` in written order (the condition itself when it
    /// is not one), tuned or not.
    pub(crate) fn written_conjuncts(&self) -> Vec<&Pred> {
        match self {
            Pred::And(items) => items.iter().collect(),
            Pred::Ordered(group) if !group.decisive => {
                group.written.iter().filter_map(|&i| group.items.get(i as usize)).collect()
            }
            other => vec![other],
        }
    }

    /// Whether this is a reordered group (for tests).
    #[cfg(test)]
    fn is_ordered(&self) -> bool {
        matches!(self, Pred::Ordered(_))
    }

    fn node_count(&self) -> usize {
        1 + match self {
            Pred::And(items) | Pred::Or(items) => items.iter().map(Pred::node_count).sum(),
            Pred::Ordered(group) => group.items.iter().map(Pred::node_count).sum(),
            Pred::Not(inner) => inner.node_count(),
            _ => 0,
        }
    }

    /// The outcome `quick` gives and its cost in the current order, counting every node
    /// (node `*at` is this one, its descendants follow in pre-order).
    fn measure(&self, act: &Activation<'_>, nodes: &mut [NodeTally], at: &mut usize) -> (Tri, u64) {
        let me = *at;
        *at += 1;
        let (outcome, cost) = match self {
            Pred::And(items) => measure_group(items, false, act, nodes, at),
            Pred::Or(items) => measure_group(items, true, act, nodes, at),
            Pred::Ordered(group) => measure_group(&group.items, group.decisive, act, nodes, at),
            Pred::Not(inner) => {
                let (outcome, cost) = inner.measure(act, nodes, at);
                let outcome = match outcome {
                    Tri::True => Tri::False,
                    Tri::False => Tri::True,
                    Tri::Error => Tri::Error,
                };
                (outcome, cost.saturating_add(1))
            }
            leaf => (leaf.quick_leaf(act), leaf.leaf_cost(act)),
        };
        if let Some(node) = nodes.get_mut(me) {
            node.runs = node.runs.saturating_add(1);
            match outcome {
                Tri::True => node.trues = node.trues.saturating_add(1),
                Tri::False => node.falses = node.falses.saturating_add(1),
                Tri::Error => {}
            }
            node.cost = node.cost.saturating_add(cost);
        }
        (outcome, cost)
    }

    /// An estimate of what evaluating a leaf on `act` costs, in units of about one
    /// fused comparison: what the leaf reads and compares, not a clock reading.
    fn leaf_cost(&self, act: &Activation<'_>) -> u64 {
        let text = |f: &FieldRef| match f.value(act) {
            Some(Value::String(s)) => s.len() as u64,
            _ => 0,
        };
        match self {
            Pred::Const(_) | Pred::Has(..) => 1,
            Pred::BoolField(_) | Pred::IntCmp(..) | Pred::DoubleCmp(..) => 2,
            Pred::StrEq(..) => 3,
            Pred::StrIn(f, set) => {
                let compared = match f.value(act) {
                    Some(Value::String(s)) => {
                        set.iter().position(|k| k.matches(s.as_bytes())).map_or(set.len(), |p| p + 1)
                    }
                    _ => 0,
                };
                2 + compared as u64
            }
            Pred::Str(f, test) => match test {
                StrTest::StartsWith(k) | StrTest::EndsWith(k) => 3 + k.len() as u64 / 8,
                StrTest::Contains(_) => 3 + text(f) / 4,
                StrTest::Matches(_) => 40 + text(f),
            },
            Pred::General(node, settings) => {
                let mut evaluator = Evaluator::new(act, settings.locals, settings.budget);
                let _ = evaluator.eval(node);
                let steps = settings.budget.saturating_sub(evaluator.budget);
                4 + steps.saturating_mul(GENERAL_STEP_COST)
            }
            Pred::And(_) | Pred::Or(_) | Pred::Ordered(_) | Pred::Not(_) => 1,
        }
    }

    /// [`Pred::tuned`] from node `*at` on; sets `moved` when an operand moves.
    fn reorder(&self, nodes: &[NodeTally], at: &mut usize, moved: &mut bool) -> Pred {
        *at += 1;
        let (items, decisive, written): (&[Pred], bool, Option<&[u32]>) = match self {
            Pred::And(items) => (items, false, None),
            Pred::Or(items) => (items, true, None),
            Pred::Ordered(group) => (&group.items, group.decisive, Some(&group.written)),
            Pred::Not(inner) => return Pred::Not(Box::new(inner.reorder(nodes, at, moved))),
            leaf => return leaf.clone(),
        };
        // Each operand's written position, its tuned form and its counts.
        let mut position: Vec<u32> = (0..items.len() as u32).collect();
        if let Some(written) = written {
            for (k, &i) in written.iter().enumerate() {
                if let Some(p) = position.get_mut(i as usize) {
                    *p = k as u32;
                }
            }
        }
        let mut operands: Vec<(u32, Pred, NodeTally)> = items
            .iter()
            .zip(position)
            .map(|(item, pos)| {
                let tally = nodes.get(*at).copied().unwrap_or_default();
                (pos, item.reorder(nodes, at, moved), tally)
            })
            .collect();
        let before: Vec<u32> = operands.iter().map(|(pos, _, _)| *pos).collect();
        let decided = |t: &NodeTally| if decisive { t.trues } else { t.falses };
        // Ascending cost / decided, compared exactly by cross-multiplication; an
        // operand that never decided ranks last; ties by written position.
        operands.sort_by(|(pa, _, a), (pb, _, b)| {
            let rank = match (decided(a), decided(b)) {
                (0, 0) => Ordering::Equal,
                (0, _) => Ordering::Greater,
                (_, 0) => Ordering::Less,
                (da, db) => (u128::from(a.cost) * u128::from(db)).cmp(&(u128::from(b.cost) * u128::from(da))),
            };
            rank.then(pa.cmp(pb))
        });
        if operands.iter().map(|(pos, _, _)| *pos).ne(before) {
            *moved = true;
        }
        let mut written = vec![0u32; operands.len()];
        for (i, (pos, _, _)) in operands.iter().enumerate() {
            if let Some(w) = written.get_mut(*pos as usize) {
                *w = i as u32;
            }
        }
        let identity = written.iter().enumerate().all(|(k, &i)| k == i as usize);
        let items: Box<[Pred]> = operands.into_iter().map(|(_, item, _)| item).collect();
        match (identity, decisive) {
            (true, false) => Pred::And(items),
            (true, true) => Pred::Or(items),
            (false, _) => Pred::Ordered(Ordered { decisive, items, written: written.into() }),
        }
    }
}

/// [`Pred::measure`] for a group: every operand is measured; the cost is that of the
/// operands `quick` evaluates, in the current order, until one decides.
fn measure_group(
    items: &[Pred],
    decisive: bool,
    act: &Activation<'_>,
    nodes: &mut [NodeTally],
    at: &mut usize,
) -> (Tri, u64) {
    let mut failed = false;
    let mut decided = None;
    let mut cost = 1u64;
    for item in items {
        let (outcome, c) = item.measure(act, nodes, at);
        if decided.is_none() {
            cost = cost.saturating_add(c);
        }
        match outcome {
            Tri::Error => failed = true,
            outcome if (outcome == Tri::True) == decisive => {
                decided.get_or_insert(outcome);
            }
            _ => {}
        }
    }
    let outcome = decided.unwrap_or(if failed { Tri::Error } else { Tri::from(!decisive) });
    (outcome, cost)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::expr::{Env, Variables};
    use crate::value::Type;
    use proptest::prelude::*;

    fn env() -> Env {
        Env::new()
            .with_variable("a", Type::Int)
            .and_then(|e| e.with_variable("b", Type::Int))
            .and_then(|e| e.with_variable("s", Type::String))
            .and_then(|e| e.with_variable("d", Type::Dyn))
            .expect("distinct names")
    }

    fn pred(source: &str) -> Pred {
        let expr = env().compile(source).unwrap_or_else(|e| panic!("{source}: {e}"));
        expr.pred().cloned().expect("a bool condition")
    }

    /// Bindings: `None` leaves the variable unbound (reading it is an error).
    fn vars(a: Option<i64>, b: Option<i64>, s: Option<&str>, d: Option<Value>) -> Variables {
        let mut values = Vec::new();
        values.extend(a.map(|v| ("a", Value::Int(v))));
        values.extend(b.map(|v| ("b", Value::Int(v))));
        values.extend(s.map(|v| ("s", Value::from(v))));
        values.extend(d.map(|v| ("d", v)));
        env().bind(values).expect("well-typed")
    }

    fn tally(p: &Pred, sample: &[Variables]) -> Tally {
        let mut tally = Tally::default();
        for v in sample {
            p.observe(&Activation::new().with_variables(v), &mut tally);
        }
        tally
    }

    /// The variable each operand reads (`a` 0, `b` 1, `s` 2, `d` 3), in evaluation order.
    fn operands(p: &Pred) -> Vec<usize> {
        let items = match p {
            Pred::And(items) | Pred::Or(items) => items,
            Pred::Ordered(group) => &group.items,
            _ => return Vec::new(),
        };
        items
            .iter()
            .map(|i| match i {
                Pred::StrEq(f, ..) | Pred::IntCmp(f, ..) | Pred::Str(f, _) => usize::from(f.slot),
                _ => usize::MAX,
            })
            .collect()
    }

    #[test]
    fn a_reordered_group_does_not_make_predicates_larger() {
        let leaf = std::mem::size_of::<FieldRef>() + std::mem::size_of::<Literal>();
        assert!(std::mem::size_of::<Ordered>() <= leaf, "{} > {leaf}", std::mem::size_of::<Ordered>());
    }

    #[test]
    fn the_most_selective_later_operand_moves_first() {
        let p = pred("a >= 0 && b == 7 && s == 'x'");
        // `a >= 0` always holds, `b == 7` fails half the time, `s == 'x'` nine times in ten.
        let sample: Vec<Variables> = (0..20)
            .map(|i| {
                vars(
                    Some(1),
                    Some(if i % 2 == 0 { 7 } else { 8 }),
                    Some(if i == 0 { "x" } else { "y" }),
                    None,
                )
            })
            .collect();
        let tuned = p.tuned(&tally(&p, &sample)).expect("reordered");
        assert!(tuned.is_ordered());
        assert_eq!(operands(&tuned), [2, 1, 0]);
        // The written order is kept for errors and for the index.
        let written: Vec<String> = tuned.written_conjuncts().iter().map(|c| format!("{c:?}")).collect();
        let original: Vec<String> = p.written_conjuncts().iter().map(|c| format!("{c:?}")).collect();
        assert_eq!(written, original);
    }

    #[test]
    fn or_puts_the_operand_most_often_true_first() {
        let p = pred("a == 1 || b == 2");
        let sample: Vec<Variables> =
            (0..10).map(|i| vars(Some(0), Some(if i < 8 { 2 } else { 0 }), None, None)).collect();
        let tuned = p.tuned(&tally(&p, &sample)).expect("reordered");
        assert_eq!(operands(&tuned), [1, 0]);
    }

    #[test]
    fn no_sample_no_change_and_ties_keep_the_written_order() {
        let p = pred("a > 1 && b > 1");
        assert!(p.tuned(&Tally::default()).is_none());
        // Both always hold (never decide): equal ranks, written order, nothing moves.
        let sample = vec![vars(Some(5), Some(5), None, None); 4];
        assert!(p.tuned(&tally(&p, &sample)).is_none());
        // A tally of another condition is refused.
        let other = pred("a > 1 && b > 1 && s == 'x'");
        assert!(p.tuned(&tally(&other, &[vars(Some(0), None, None, None)])).is_none());
    }

    #[test]
    fn errors_are_reported_as_written_after_reordering() {
        // Both operands fail when `a` and `b` are unbound; as written, `a`'s error wins.
        let p = pred("a > 1 && b > 1");
        let sample: Vec<Variables> = (0..10).map(|_| vars(Some(5), Some(0), None, None)).collect();
        let tuned = p.tuned(&tally(&p, &sample)).expect("`b > 1` decides: it moves first");
        let unbound = vars(None, None, None, None);
        let act = Activation::new().with_variables(&unbound);
        let before = p.test(&act);
        assert!(before.as_ref().is_err_and(|e| e.to_string().contains('a')), "{before:?}");
        assert_eq!(tuned.test(&act), before);
    }

    #[test]
    fn cost_breaks_even_selectivity() {
        // Both fail every time; the pattern costs more than the int test.
        let p = pred("s.matches('^zz+q') && a == 3");
        let sample: Vec<Variables> =
            (0..5).map(|_| vars(Some(0), None, Some("a long string"), None)).collect();
        let tuned = p.tuned(&tally(&p, &sample)).expect("reordered");
        assert_eq!(operands(&tuned), [0, 2]);
    }

    const ATOMS: &[&str] = &[
        "a > 2",
        "a == 1",
        "b < 3",
        "b != 0",
        "s == 'x'",
        "s.startsWith('x')",
        "s.endsWith('y')",
        "s in ['x', 'yy', 'xy']",
        "s.contains('y')",
        "s.matches('^x+y?$')",
        "10 / a > 2",
        "a + b > 3",
        "d > 2",
        "d == 'x'",
        "d",
        "true",
        "false",
    ];

    fn expression() -> impl Strategy<Value = String> {
        let leaf = (0..ATOMS.len()).prop_map(|i| ATOMS[i].to_string());
        leaf.prop_recursive(3, 24, 4, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 2..5).prop_map(|v| format!("({})", v.join(" && "))),
                prop::collection::vec(inner.clone(), 2..5).prop_map(|v| format!("({})", v.join(" || "))),
                inner.prop_map(|e| format!("!({e})")),
            ]
        })
    }

    fn binding() -> impl Strategy<Value = Variables> {
        let int = prop::option::weighted(0.85, -1i64..5);
        let text =
            prop::option::weighted(0.85, prop::sample::select(vec!["x", "y", "xy", "xxy", "yy", "", "q"]));
        let dynamic = prop::option::weighted(
            0.8,
            prop_oneof![
                (-2i64..5).prop_map(Value::Int),
                prop::sample::select(vec!["x", "y"]).prop_map(Value::from),
                any::<bool>().prop_map(Value::Bool),
                Just(Value::Double(2.5)),
            ],
        );
        (int.clone(), int, text, dynamic).prop_map(|(a, b, s, d)| vars(a, b, s, d))
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(300))]

        /// A condition tuned on any sample (and tuned again on another) gives exactly
        /// the untuned outcome, errors included, on any bindings.
        #[test]
        fn tuning_never_changes_an_outcome(
            source in expression(),
            first in prop::collection::vec(binding(), 0..12),
            second in prop::collection::vec(binding(), 0..12),
            checks in prop::collection::vec(binding(), 1..24),
        ) {
            let p = pred(&source);
            let once = p.tuned(&tally(&p, &first)).unwrap_or_else(|| p.clone());
            let twice = once.tuned(&tally(&once, &second)).unwrap_or_else(|| once.clone());
            for v in &checks {
                let act = Activation::new().with_variables(v);
                let expected = p.test(&act);
                prop_assert_eq!(&once.test(&act), &expected, "{} once", source);
                prop_assert_eq!(&twice.test(&act), &expected, "{} twice", source);
            }
        }
    }
}
