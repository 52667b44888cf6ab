//! When a condition that reads `now` can change its value with nothing else changing:
//! a time-dependency analysis of a compiled condition.
//!
//! Every comparison whose sides are `now` shifted by a time-invariant span (or
//! time-invariant values) is a *time atom*: `now - contact.signed_up > duration('14d')`,
//! `contact.seen >= now - duration('36h')`, `contact.trial_end < now`. Such a comparison
//! is a monotone function of time, so it changes value at most once, at an instant
//! computed exactly from its sides' values (to the nanosecond, strict and non-strict
//! comparisons told apart). The next instant at which the whole condition can change is
//! the earliest such instant of any of its atoms: conservative (an atom masked by an
//! `&&` whose other side is false changes nothing) but exact (no change is missed and
//! none is seen late). A wake-up at a candidate that changes nothing simply computes
//! the next candidate.
//!
//! A use of `now` outside such a comparison (a timestamp accessor such as
//! `now.getHours()`, a comparison inside a comprehension over its variable, a side that
//! reads scores or counters) makes the analysis *incomplete*: the condition is still
//! evaluated correctly at every step, but time alone does not wake it up.

use crate::expr::eval::{Activation, Evaluator};
use crate::expr::ir::{BinOp, Node, Scope};
use crate::expr::Expression;
use crate::time::Timestamp;
use crate::value::Value;

/// One comparison that moves with `now`: `left op right`, where `left - right` grows
/// (`rising`) or shrinks with time at the rate of the clock.
#[derive(Clone, Debug)]
struct TimeAtom {
    op: BinOp,
    left: Node,
    right: Node,
    rising: bool,
}

/// What the analysis found in one condition.
#[derive(Clone, Debug)]
pub(crate) struct TimeDeps {
    atoms: Vec<TimeAtom>,
    complete: bool,
}

impl Default for TimeDeps {
    /// No condition: nothing moves with time.
    fn default() -> TimeDeps {
        TimeDeps { atoms: Vec::new(), complete: true }
    }
}

impl TimeDeps {
    /// Whether the condition has comparisons that move with `now`.
    pub(crate) fn is_empty(&self) -> bool {
        self.atoms.is_empty()
    }

    /// Whether every use of `now` was understood (else time alone may change the
    /// condition at instants the analysis does not see).
    pub(crate) fn is_complete(&self) -> bool {
        self.complete
    }
}

impl Expression {
    /// The condition's time atoms.
    pub(crate) fn time_deps(&self) -> TimeDeps {
        let mut deps = TimeDeps::default();
        walk(&self.node, &mut deps);
        deps
    }

    /// The first instant strictly after `now` at which one of `deps`' comparisons (of
    /// this expression) changes value, with the sides evaluated in `activation` (which
    /// binds `now` and the contact). A side that fails to evaluate contributes nothing.
    pub(crate) fn next_time_change(
        &self,
        deps: &TimeDeps,
        activation: &Activation<'_>,
        now: Timestamp,
    ) -> Option<Timestamp> {
        // In nanoseconds since the epoch: only the answer becomes a `Timestamp`, so the
        // search does no 128-bit division per comparison.
        let now_nanos = now.unix_nanos();
        let mut next: Option<i128> = None;
        for atom in &deps.atoms {
            let side = |node: &Node| Evaluator::new(activation, self.locals, self.budget).eval(node);
            let (Ok(left), Ok(right)) = (side(&atom.left), side(&atom.right)) else {
                continue;
            };
            // `left - right` now.
            let gap = match (&left, &right) {
                (Value::Timestamp(l), Value::Timestamp(r)) => l.unix_nanos() - r.unix_nanos(),
                (Value::Duration(l), Value::Duration(r)) => l.as_nanos() - r.as_nanos(),
                _ => continue,
            };
            // The instant where `left - right` is zero (both far within `i128`).
            let zero = if atom.rising { now_nanos - gap } else { now_nanos + gap };
            // Rising: `<` and `>=` flip at the zero, `<=` and `>` just after it; falling,
            // the other way round; `==` and `!=` flip at both.
            let (at_zero, just_after) = match (atom.op, atom.rising) {
                (BinOp::Lt | BinOp::Ge, true) | (BinOp::Le | BinOp::Gt, false) => (true, false),
                (BinOp::Le | BinOp::Gt, true) | (BinOp::Lt | BinOp::Ge, false) => (false, true),
                _ => (true, true),
            };
            for t in [at_zero.then_some(zero), just_after.then_some(zero + 1)].into_iter().flatten() {
                if t > now_nanos && next.is_none_or(|n| t < n) {
                    next = Some(t);
                }
            }
        }
        // An instant beyond the timestamp range never comes.
        next.and_then(|t| Timestamp::from_unix_nanos(t).ok())
    }
}

fn walk(node: &Node, deps: &mut TimeDeps) {
    match node {
        Node::Now => deps.complete = false,
        Node::Binary(op @ (BinOp::Lt | BinOp::Le | BinOp::Gt | BinOp::Ge | BinOp::Eq | BinOp::Ne), a, b)
            if reads_now(a) || reads_now(b) =>
        {
            match (slope(a), slope(b)) {
                (Some(sa), Some(sb)) if stable(a) && stable(b) => match sa - sb {
                    // `now - x < now - y`: the same at every instant.
                    0 => {}
                    s @ (1 | -1) => {
                        deps.atoms.push(TimeAtom { op: *op, left: fold(a), right: fold(b), rising: s == 1 })
                    }
                    _ => deps.complete = false,
                },
                _ => deps.complete = false,
            }
        }
        _ => node.children().for_each(|n| walk(n, deps)),
    }
}

/// Whether a node reads `now`.
fn reads_now(node: &Node) -> bool {
    matches!(node, Node::Now) || node.children().any(reads_now)
}

/// How a value moves with `now`: 0 (not at all), 1 (with the clock), -1 (against it);
/// `None` when it is not `now` shifted by a span.
fn slope(node: &Node) -> Option<i8> {
    if !reads_now(node) {
        return Some(0);
    }
    let s = match node {
        Node::Now => 1,
        Node::Binary(BinOp::Add, a, b) => slope(a)? + slope(b)?,
        Node::Binary(BinOp::Sub, a, b) => slope(a)? - slope(b)?,
        Node::Neg(a) => -slope(a)?,
        _ => return None,
    };
    (-1..=1).contains(&s).then_some(s)
}

/// Whether a side keeps its value between two steps but for `now`: it reads no score,
/// counter, segment, event, engine variable or comprehension variable.
fn stable(node: &Node) -> bool {
    let own = match node {
        Node::Load(scope, ..) | Node::Has(scope, _) => *scope == Scope::Contact,
        Node::EventMeta(_) | Node::Local(_) | Node::Comprehension(_) => false,
        _ => true,
    };
    own && node.children().all(stable)
}

/// A side with its constant parts evaluated once (`duration('14d')` parsed here, not
/// at every wake-up computation).
fn fold(node: &Node) -> Node {
    if constant(node) {
        let empty = Activation::new();
        if let Ok(value) = Evaluator::new(&empty, 0, CONSTANT_BUDGET).eval(node) {
            return Node::Const(value);
        }
    }
    match node {
        Node::Binary(op, a, b) => Node::Binary(*op, Box::new(fold(a)), Box::new(fold(b))),
        Node::Neg(a) => Node::Neg(Box::new(fold(a))),
        other => other.clone(),
    }
}

/// Steps allowed to evaluate one constant part of a side.
const CONSTANT_BUDGET: u64 = 10_000;

/// Whether a node reads nothing: no field, no `now`, no variable.
fn constant(node: &Node) -> bool {
    !matches!(
        node,
        Node::Load(..)
            | Node::Has(..)
            | Node::Now
            | Node::EventMeta(_)
            | Node::Local(_)
            | Node::Comprehension(_)
    ) && node.children().all(constant)
}
