//! The checker: resolves names to slots, checks types, and lowers the AST to [`Node`]s,
//! collecting every problem as a [`Diagnostic`] instead of stopping at the first.

use std::sync::Arc;

use crate::diagnostic::{did_you_mean, Code, Diagnostic, Span};
use crate::expr::ast::{BinaryOp, Expr, ExprKind, Literal, UnaryOp};
use crate::expr::eval::compile_regex;
use crate::expr::ir::{BinOp, Comprehension, EventMeta, Func, MacroKind, Node, Scope};
use crate::schema::FieldSet;
use crate::time::{TimeComponent, TimeZone};
use crate::value::{Type, Value};

/// The root names an expression may use, and what they resolve to.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Names<'a> {
    /// `contact.FIELD`
    pub(crate) contact: Option<&'a FieldSet>,
    /// `event.PROPERTY` (and `event.type`, `event.timestamp`, `event.id`)
    pub(crate) event: Option<&'a FieldSet>,
    /// `score.NAME`
    pub(crate) scores: Option<&'a FieldSet>,
    /// `counter.NAME`: windowed event counts.
    pub(crate) counters: Option<&'a FieldSet>,
    /// `segment.NAME`: segment memberships.
    pub(crate) segments: Option<&'a FieldSet>,
    /// Host-declared variables, each a root name.
    pub(crate) vars: Option<&'a FieldSet>,
    /// `now`
    pub(crate) now: bool,
    /// Regular expressions already compiled for this rule set, by pattern: rule sets
    /// repeat patterns, and compiling one is the costliest step of checking.
    pub(crate) regexes: Option<&'a RegexCache>,
}

/// Compiled regular expressions shared by the expressions of one rule set, with the
/// limits on how many distinct patterns, and how many bytes of them, one rule set may
/// compile (each compile can take milliseconds).
#[derive(Debug)]
pub(crate) struct RegexCache {
    /// Each distinct pattern tried, compiled or refused with the reason.
    #[allow(clippy::type_complexity)]
    compiled: std::cell::RefCell<hashbrown::HashMap<String, Result<Arc<regex::Regex>, String>>>,
    bytes: std::cell::Cell<usize>,
    max_patterns: usize,
    max_bytes: usize,
}

impl RegexCache {
    pub(crate) fn new(limits: &crate::limits::Limits) -> RegexCache {
        RegexCache {
            compiled: Default::default(),
            bytes: std::cell::Cell::new(0),
            max_patterns: limits.max_patterns,
            max_bytes: limits.max_pattern_bytes,
        }
    }
}

impl Default for RegexCache {
    fn default() -> RegexCache {
        RegexCache::new(&crate::limits::Limits::default())
    }
}

/// Why a constant pattern was refused.
pub(crate) enum PatternError {
    Invalid(String),
    Limit(String),
}

impl<'a> Names<'a> {
    fn record(&self, name: &str) -> Option<(Scope, &'a FieldSet)> {
        match name {
            "contact" => self.contact.map(|f| (Scope::Contact, f)),
            "event" => self.event.map(|f| (Scope::Event, f)),
            "score" => self.scores.map(|f| (Scope::Score, f)),
            "counter" => self.counters.map(|f| (Scope::Counter, f)),
            "segment" => self.segments.map(|f| (Scope::Segment, f)),
            _ => None,
        }
    }

    fn root_names(&self) -> Vec<&'a str> {
        let mut names = Vec::new();
        if self.contact.is_some() {
            names.push("contact");
        }
        if self.event.is_some() {
            names.push("event");
        }
        if self.scores.is_some() {
            names.push("score");
        }
        if self.counters.is_some() {
            names.push("counter");
        }
        if self.segments.is_some() {
            names.push("segment");
        }
        if self.now {
            names.push("now");
        }
        if let Some(vars) = self.vars {
            names.extend(vars.iter().map(|(n, _)| n));
        }
        names
    }
}

/// The result of checking: the lowered node, its type, and how many comprehension
/// variables it needs at run time.
pub(crate) struct Checked {
    pub(crate) node: Node,
    pub(crate) ty: Type,
    pub(crate) locals: usize,
}

/// Checks `expr` against `names`, appending problems to `diagnostics`.
pub(crate) fn check(expr: &Expr, names: Names<'_>, diagnostics: &mut Vec<Diagnostic>) -> Checked {
    let mut checker = Checker { names, diagnostics, scopes: Vec::new(), next_local: 0 };
    let (node, ty) = checker.check(expr);
    Checked { node, ty, locals: usize::from(checker.next_local) }
}

/// The outcome of resolving `root.field`.
enum FieldLookup {
    /// `root` is not a record name (or is shadowed): select from a value instead.
    NotARecord,
    /// The field exists.
    Found(Scope, u16, Type, Arc<str>),
    /// The record has no such field; a diagnostic was recorded.
    Unknown,
}

struct Checker<'n, 'd> {
    names: Names<'n>,
    diagnostics: &'d mut Vec<Diagnostic>,
    /// Comprehension variables in scope, innermost last.
    scopes: Vec<(String, u16, Type)>,
    next_local: u16,
}

/// Functions nurture knows, for "did you mean".
const KNOWN_FUNCTIONS: &[&str] = &[
    "size",
    "contains",
    "startsWith",
    "endsWith",
    "matches",
    "int",
    "double",
    "string",
    "bool",
    "timestamp",
    "duration",
    "has",
    "all",
    "exists",
    "exists_one",
    "existsOne",
    "map",
    "filter",
    "transformList",
    "transformMap",
    "getFullYear",
    "getMonth",
    "getDate",
    "getDayOfMonth",
    "getDayOfWeek",
    "getDayOfYear",
    "getHours",
    "getMinutes",
    "getSeconds",
    "getMilliseconds",
    "lowerAscii",
    "upperAscii",
    "trim",
];

/// Names of CEL types, which CEL also allows as values (`type(x) == int`).
const TYPE_NAMES: &[&str] = &[
    "int",
    "uint",
    "double",
    "string",
    "bool",
    "bytes",
    "list",
    "map",
    "null_type",
    "type",
    "dyn",
    "google",
];

/// Namespaces of CEL extension libraries, none of which nurture includes.
const EXTENSION_NAMESPACES: &[&str] =
    &["math", "optional", "cel", "strings", "base64", "sets", "proto", "encoders"];

/// CEL functions that exist but are outside nurture's subset.
const UNSUPPORTED_FUNCTIONS: &[&str] = &[
    "dyn",
    "type",
    "uint",
    "bytes",
    "split",
    "replace",
    "indexOf",
    "lastIndexOf",
    "substring",
    "join",
    "charAt",
    "format",
    "quote",
    "reverse",
    "greatest",
    "least",
    "optional",
    "of",
    "orValue",
    "hasValue",
    "value",
    "ceil",
    "floor",
    "round",
    "abs",
    "sign",
    "sort",
    "distinct",
    "flatten",
    "range",
    "slice",
    "base64",
    "encode",
    "decode",
    "getTimezone",
    "cel",
    "bind",
    "block",
    "index",
    "sets",
    "math",
    "strings",
];

fn time_component(name: &str) -> Option<TimeComponent> {
    Some(match name {
        "getFullYear" => TimeComponent::FullYear,
        "getMonth" => TimeComponent::Month,
        "getDate" => TimeComponent::Date,
        "getDayOfMonth" => TimeComponent::DayOfMonth,
        "getDayOfWeek" => TimeComponent::DayOfWeek,
        "getDayOfYear" => TimeComponent::DayOfYear,
        "getHours" => TimeComponent::Hours,
        "getMinutes" => TimeComponent::Minutes,
        "getSeconds" => TimeComponent::Seconds,
        "getMilliseconds" => TimeComponent::Milliseconds,
        _ => return None,
    })
}

/// The type two branches or elements share, or `dyn`.
fn unify(a: &Type, b: &Type) -> Type {
    if a == b {
        a.clone()
    } else {
        Type::Dyn
    }
}

fn is_orderable(t: &Type) -> bool {
    matches!(
        t,
        Type::Int | Type::Double | Type::Bool | Type::String | Type::Timestamp | Type::Duration | Type::Dyn
    )
}

/// Whether `==` between the two types can ever be meaningful.
fn equality_comparable(a: &Type, b: &Type) -> bool {
    match (a, b) {
        (Type::Dyn, _) | (_, Type::Dyn) => true,
        (a, b) if a.is_numeric() && b.is_numeric() => true,
        (Type::List(x), Type::List(y)) => equality_comparable(x, y),
        (Type::Map(ka, va), Type::Map(kb, vb)) => equality_comparable(ka, kb) && equality_comparable(va, vb),
        (a, b) => a == b,
    }
}

impl Checker<'_, '_> {
    fn error(&mut self, diagnostic: Diagnostic) -> (Node, Type) {
        self.diagnostics.push(diagnostic);
        (Node::Const(Value::Null), Type::Dyn)
    }

    fn overload(&mut self, span: Span, op: &str, types: &[&Type]) -> (Node, Type) {
        let list: Vec<String> = types.iter().map(|t| t.to_string()).collect();
        let mut d = Diagnostic::new(
            Code::NoMatchingOverload,
            format!("no matching overload for `{op}` applied to ({})", list.join(", ")),
        )
        .with_span(span);
        if types.len() == 2 && types.iter().all(|t| t.is_numeric()) && types[0] != types[1] {
            d = d.with_help(
                "int and double do not mix in arithmetic; convert one side with `double(..)` or `int(..)`",
            );
        }
        self.error(d)
    }

    fn check(&mut self, expr: &Expr) -> (Node, Type) {
        match &expr.kind {
            ExprKind::Literal(lit) => match lit {
                Literal::Null => (Node::Const(Value::Null), Type::Null),
                Literal::Bool(b) => (Node::Const(Value::Bool(*b)), Type::Bool),
                Literal::Int(i) => (Node::Const(Value::Int(*i)), Type::Int),
                Literal::Double(d) => (Node::Const(Value::Double(*d)), Type::Double),
                Literal::String(s) => (Node::Const(Value::string(s)), Type::String),
            },
            ExprKind::Ident(name) => self.ident(name, expr.span),
            ExprKind::Select { operand, field, field_span } => {
                self.select(operand, field, *field_span, expr.span)
            }
            ExprKind::Index { operand, index } => {
                let (container, ct) = self.check(operand);
                let (key, kt) = self.check(index);
                let ty = match &ct {
                    Type::List(elem) if matches!(kt, Type::Int | Type::Double | Type::Dyn) => {
                        (**elem).clone()
                    }
                    Type::Map(k, v) if k.accepts(&kt) || (k.is_numeric() && kt.is_numeric()) => (**v).clone(),
                    Type::Dyn => Type::Dyn,
                    _ => return self.overload(expr.span, "_[_]", &[&ct, &kt]),
                };
                (Node::Index(Box::new(container), Box::new(key)), ty)
            }
            ExprKind::Unary { op, operand } => {
                let (node, ty) = self.check(operand);
                match op {
                    UnaryOp::Not if matches!(ty, Type::Bool | Type::Dyn) => {
                        (Node::Not(Box::new(node)), Type::Bool)
                    }
                    UnaryOp::Neg if matches!(ty, Type::Int | Type::Double | Type::Dyn) => {
                        (Node::Neg(Box::new(node)), ty)
                    }
                    UnaryOp::Not => self.overload(expr.span, "!_", &[&ty]),
                    UnaryOp::Neg => self.overload(expr.span, "-_", &[&ty]),
                }
            }
            ExprKind::Binary { op, lhs, rhs } => self.binary(*op, lhs, rhs, expr.span),
            ExprKind::Conditional { cond, then, otherwise } => {
                let (c, ct) = self.check(cond);
                let (t, tt) = self.check(then);
                let (o, ot) = self.check(otherwise);
                if !matches!(ct, Type::Bool | Type::Dyn) {
                    return self.error(
                        Diagnostic::new(
                            Code::TypeMismatch,
                            format!("the condition of `?:` must be a bool, found {ct}"),
                        )
                        .with_span(cond.span),
                    );
                }
                let ty = if tt == ot {
                    tt
                } else if tt == Type::Dyn || ot == Type::Dyn {
                    Type::Dyn
                } else {
                    return self.error(
                        Diagnostic::new(
                            Code::TypeMismatch,
                            format!("the branches of `?:` have different types: {tt} and {ot}"),
                        )
                        .with_span(expr.span)
                        .with_help("make both branches the same type"),
                    );
                };
                (Node::Cond(Box::new(c), Box::new(t), Box::new(o)), ty)
            }
            ExprKind::List(items) => {
                let mut nodes = Vec::with_capacity(items.len());
                let mut elem: Option<Type> = None;
                for item in items {
                    let (n, t) = self.check(item);
                    elem = Some(match elem {
                        None => t,
                        Some(e) => unify(&e, &t),
                    });
                    nodes.push(n);
                }
                let ty = Type::list(elem.unwrap_or(Type::Dyn));
                (fold_constant(Node::List(nodes.into())), ty)
            }
            ExprKind::Map(entries) => {
                let mut nodes = Vec::with_capacity(entries.len());
                let mut key_ty: Option<Type> = None;
                let mut value_ty: Option<Type> = None;
                for (k, v) in entries {
                    let (kn, kt) = self.check(k);
                    let (vn, vt) = self.check(v);
                    if !matches!(kt, Type::Int | Type::String | Type::Bool | Type::Dyn) {
                        self.diagnostics.push(
                            Diagnostic::new(
                                Code::TypeMismatch,
                                format!("a map key must be an int, string or bool, found {kt}"),
                            )
                            .with_span(k.span),
                        );
                    }
                    if let Node::Const(key) = &kn {
                        if nodes.iter().any(|(other, _)| matches!(other, Node::Const(o) if o.cel_eq(key))) {
                            self.diagnostics.push(
                                Diagnostic::new(Code::InvalidLiteral, format!("duplicate map key {key}"))
                                    .with_span(k.span)
                                    .with_help("each key may appear once in a map literal"),
                            );
                        }
                    }
                    key_ty = Some(key_ty.map_or(kt.clone(), |e| unify(&e, &kt)));
                    value_ty = Some(value_ty.map_or(vt.clone(), |e| unify(&e, &vt)));
                    nodes.push((kn, vn));
                }
                let ty = Type::map(key_ty.unwrap_or(Type::Dyn), value_ty.unwrap_or(Type::Dyn));
                (Node::Map(nodes.into()), ty)
            }
            ExprKind::Call { target, function, function_span, args } => {
                self.call(target.as_deref(), function, *function_span, args, expr.span)
            }
        }
    }

    fn ident(&mut self, name: &str, span: Span) -> (Node, Type) {
        if let Some((_, slot, ty)) = self.scopes.iter().rev().find(|(n, _, _)| n == name) {
            return (Node::Local(*slot), ty.clone());
        }
        if let Some(vars) = self.names.vars {
            if let Some(slot) = vars.slot(name) {
                return (Node::Load(Scope::Var, slot, vars.name(slot).clone()), vars.ty(slot).clone());
            }
        }
        if name == "now" && self.names.now {
            return (Node::Now, Type::Timestamp);
        }
        if self.names.record(name).is_some() {
            return self.error(
                Diagnostic::new(Code::Unsupported, format!("`{name}` cannot be used as a whole value"))
                    .with_span(span)
                    .with_help(format!("select one of its fields, as in `{name}.field`")),
            );
        }
        if TYPE_NAMES.contains(&name) {
            return self.error(
                Diagnostic::new(Code::Unsupported, format!("type values such as `{name}` are not supported"))
                    .with_span(span)
                    .with_help("nurture checks types statically; compare values instead of types"),
            );
        }
        let mut candidates = self.names.root_names();
        candidates.extend(self.scopes.iter().map(|(n, _, _)| n.as_str()));
        let suggestion = did_you_mean(name, candidates.iter().copied());
        let mut known: Vec<&str> = self.names.root_names();
        known.truncate(8);
        self.error(
            Diagnostic::new(Code::UnknownName, format!("undeclared reference to `{name}`"))
                .with_span(span)
                .with_help(if known.is_empty() {
                    "no names are declared here".to_string()
                } else {
                    format!("the names available here are: {}", known.join(", "))
                })
                .with_did_you_mean(suggestion),
        )
    }

    /// Resolves `root.field` when `root` is a record name not shadowed by a local.
    fn record_field(&mut self, operand: &Expr, field: &str, field_span: Span) -> FieldLookup {
        let ExprKind::Ident(root) = &operand.kind else {
            return FieldLookup::NotARecord;
        };
        if self.scopes.iter().any(|(n, _, _)| n == root) {
            return FieldLookup::NotARecord;
        }
        if self.names.vars.is_some_and(|v| v.slot(root).is_some()) {
            return FieldLookup::NotARecord;
        }
        let Some((scope, fields)) = self.names.record(root) else {
            return FieldLookup::NotARecord;
        };
        match fields.slot(field) {
            Some(slot) => FieldLookup::Found(scope, slot, fields.ty(slot).clone(), fields.name(slot).clone()),
            None => {
                let what = match scope {
                    Scope::Contact => "contacts have".to_string(),
                    Scope::Event => "this event type has".to_string(),
                    _ => "there is".to_string(),
                };
                let mut d = Diagnostic::new(
                    Code::UnknownField,
                    format!("no field `{field}` on `{root}`: {what} no such field"),
                )
                .with_span(field_span)
                .with_did_you_mean(fields.suggest(field));
                if scope == Scope::Event {
                    d = d.with_help("declare the property under the event type in the schema, or check the rule's event type");
                } else {
                    d = d.with_help(format!("declare `{field}` in the schema, or check the spelling"));
                }
                self.diagnostics.push(d);
                FieldLookup::Unknown
            }
        }
    }

    fn event_meta(&self, operand: &Expr, field: &str) -> Option<(EventMeta, Type)> {
        let ExprKind::Ident(root) = &operand.kind else {
            return None;
        };
        let fields = self.names.event?;
        if root != "event" || fields.slot(field).is_some() || self.scopes.iter().any(|(n, _, _)| n == root) {
            return None;
        }
        match field {
            "type" => Some((EventMeta::Type, Type::String)),
            "timestamp" => Some((EventMeta::Timestamp, Type::Timestamp)),
            "id" => Some((EventMeta::Id, Type::String)),
            _ => None,
        }
    }

    fn select(&mut self, operand: &Expr, field: &str, field_span: Span, span: Span) -> (Node, Type) {
        if let Some((meta, ty)) = self.event_meta(operand, field) {
            return (Node::EventMeta(meta), ty);
        }
        match self.record_field(operand, field, field_span) {
            FieldLookup::Found(scope, slot, ty, name) => return (Node::Load(scope, slot, name), ty),
            FieldLookup::Unknown => return (Node::Const(Value::Null), Type::Dyn),
            FieldLookup::NotARecord => {}
        }
        let (node, ty) = self.check(operand);
        match &ty {
            Type::Map(k, v) if matches!(**k, Type::String | Type::Dyn) => {
                (Node::SelectKey(Box::new(node), Arc::from(field)), (**v).clone())
            }
            Type::Dyn => (Node::SelectKey(Box::new(node), Arc::from(field)), Type::Dyn),
            _ => self.error(
                Diagnostic::new(Code::NoMatchingOverload, format!("a value of type {ty} has no fields"))
                    .with_span(span)
                    .with_help(
                        "field selection applies to maps with string keys and to `contact`, `event`, `score`",
                    ),
            ),
        }
    }

    fn binary(&mut self, op: BinaryOp, lhs: &Expr, rhs: &Expr, span: Span) -> (Node, Type) {
        if matches!(op, BinaryOp::And | BinaryOp::Or) {
            // Flatten chains of the same operator into one n-ary node.
            let mut operands = Vec::new();
            collect_chain(op, lhs, &mut operands);
            collect_chain(op, rhs, &mut operands);
            let mut nodes = Vec::with_capacity(operands.len());
            for operand in operands {
                let (n, t) = self.check(operand);
                if !matches!(t, Type::Bool | Type::Dyn) {
                    self.diagnostics.push(
                        Diagnostic::new(
                            Code::TypeMismatch,
                            format!("the operands of `{}` must be bools, found {t}", op.symbol()),
                        )
                        .with_span(operand.span),
                    );
                }
                nodes.push(n);
            }
            let node = if op == BinaryOp::And { Node::And(nodes.into()) } else { Node::Or(nodes.into()) };
            return (node, Type::Bool);
        }
        let (l, lt) = self.check(lhs);
        let (r, rt) = self.check(rhs);
        let bin = |o: BinOp| Node::Binary(o, Box::new(l.clone()), Box::new(r.clone()));
        let sym = op.symbol();
        let ty = match op {
            BinaryOp::Eq | BinaryOp::Ne => {
                if !equality_comparable(&lt, &rt) {
                    return self.overload(span, sym, &[&lt, &rt]);
                }
                return (bin(op), Type::Bool);
            }
            BinaryOp::Lt | BinaryOp::Le | BinaryOp::Gt | BinaryOp::Ge => {
                let ok = is_orderable(&lt)
                    && is_orderable(&rt)
                    && (lt == rt
                        || lt == Type::Dyn
                        || rt == Type::Dyn
                        || (lt.is_numeric() && rt.is_numeric()));
                if !ok {
                    return self.overload(span, sym, &[&lt, &rt]);
                }
                return (bin(op), Type::Bool);
            }
            BinaryOp::In => {
                let ok = match &rt {
                    Type::List(e) => equality_comparable(&lt, e),
                    Type::Map(k, _) => equality_comparable(&lt, k),
                    Type::Dyn => true,
                    _ => false,
                };
                if !ok {
                    return self.overload(span, sym, &[&lt, &rt]);
                }
                return (bin(op), Type::Bool);
            }
            BinaryOp::Add => match (&lt, &rt) {
                (Type::Int, Type::Int) => Type::Int,
                (Type::Double, Type::Double) => Type::Double,
                (Type::String, Type::String) => Type::String,
                (Type::List(a), Type::List(b)) => Type::list(if a == b {
                    (**a).clone()
                } else if **a == Type::Dyn || **b == Type::Dyn {
                    // An empty list literal is list(dyn); keep the other side's type.
                    if **a == Type::Dyn {
                        (**b).clone()
                    } else {
                        (**a).clone()
                    }
                } else {
                    Type::Dyn
                }),
                (Type::Timestamp, Type::Duration) | (Type::Duration, Type::Timestamp) => Type::Timestamp,
                (Type::Duration, Type::Duration) => Type::Duration,
                (Type::Dyn, other) | (other, Type::Dyn)
                    if matches!(
                        other,
                        Type::Dyn
                            | Type::Int
                            | Type::Double
                            | Type::String
                            | Type::List(_)
                            | Type::Timestamp
                            | Type::Duration
                    ) =>
                {
                    Type::Dyn
                }
                _ => return self.overload(span, sym, &[&lt, &rt]),
            },
            BinaryOp::Sub => match (&lt, &rt) {
                (Type::Int, Type::Int) => Type::Int,
                (Type::Double, Type::Double) => Type::Double,
                (Type::Timestamp, Type::Timestamp) => Type::Duration,
                (Type::Timestamp, Type::Duration) => Type::Timestamp,
                (Type::Duration, Type::Duration) => Type::Duration,
                (Type::Dyn, other) | (other, Type::Dyn)
                    if matches!(
                        other,
                        Type::Dyn | Type::Int | Type::Double | Type::Timestamp | Type::Duration
                    ) =>
                {
                    Type::Dyn
                }
                _ => return self.overload(span, sym, &[&lt, &rt]),
            },
            BinaryOp::Mul | BinaryOp::Div => match (&lt, &rt) {
                (Type::Int, Type::Int) => Type::Int,
                (Type::Double, Type::Double) => Type::Double,
                (Type::Dyn, other) | (other, Type::Dyn)
                    if matches!(other, Type::Dyn | Type::Int | Type::Double) =>
                {
                    Type::Dyn
                }
                _ => return self.overload(span, sym, &[&lt, &rt]),
            },
            BinaryOp::Rem => match (&lt, &rt) {
                (Type::Int, Type::Int) => Type::Int,
                (Type::Dyn, other) | (other, Type::Dyn) if matches!(other, Type::Dyn | Type::Int) => {
                    Type::Dyn
                }
                _ => return self.overload(span, sym, &[&lt, &rt]),
            },
            // Handled above; listed so the match stays exhaustive.
            BinaryOp::And | BinaryOp::Or => Type::Bool,
        };
        (bin(op), ty)
    }

    fn call(
        &mut self,
        target: Option<&Expr>,
        function: &str,
        function_span: Span,
        args: &[Expr],
        span: Span,
    ) -> (Node, Type) {
        if let Some(kind) = macro_kind(function, target.is_some(), args.len()) {
            if let Some(target) = target {
                return self.comprehension(kind, function, target, args, span);
            }
        }
        if function == "has" && target.is_none() {
            return self.has(args, span);
        }
        if let Some(Expr { kind: ExprKind::Ident(namespace), .. }) = target {
            let shadowed = self.scopes.iter().any(|(n, _, _)| n == namespace)
                || self.names.vars.is_some_and(|v| v.slot(namespace).is_some());
            if EXTENSION_NAMESPACES.contains(&namespace.as_str()) && !shadowed {
                return self.error(
                    Diagnostic::new(
                        Code::Unsupported,
                        format!("the CEL extension function `{namespace}.{function}` is outside the subset nurture supports"),
                    )
                    .with_span(span)
                    .with_help("see docs/expressions.md for the supported functions"),
                );
            }
        }
        // Check the receiver and arguments first so that errors inside them are reported.
        let recv = target.map(|t| self.check(t));
        let mut checked: Vec<(Node, Type)> = args.iter().map(|a| self.check(a)).collect();
        let arity = args.len();
        let recv_ty = recv.as_ref().map(|(_, t)| t.clone());
        // Gather (receiver, args...) into one list; method and global forms unify.
        let mut all: Vec<(Node, Type)> = Vec::new();
        if let Some(r) = recv.clone() {
            all.push(r);
        }
        all.append(&mut checked);
        let types: Vec<Type> = all.iter().map(|(_, t)| t.clone()).collect();
        let nodes = |all: Vec<(Node, Type)>| -> Box<[Node]> { all.into_iter().map(|(n, _)| n).collect() };
        let is_str = |t: &Type| matches!(t, Type::String | Type::Dyn);
        let type_refs: Vec<&Type> = types.iter().collect();
        let sig = if target.is_some() {
            format!("{}.{function}", recv_ty.clone().unwrap_or(Type::Dyn))
        } else {
            function.to_string()
        };
        match function {
            "size" if types.len() == 1 => {
                if matches!(types[0], Type::String | Type::List(_) | Type::Map(..) | Type::Dyn) {
                    return (Node::Call(Func::Size, nodes(all)), Type::Int);
                }
                self.overload(span, "size", &type_refs)
            }
            "contains" | "startsWith" | "endsWith" | "matches"
                if target.is_some() && arity == 1
                    || (function == "matches" && target.is_none() && arity == 2) =>
            {
                if !(is_str(&types[0]) && is_str(&types[1])) {
                    return self.overload(span, function, &type_refs);
                }
                let func = match function {
                    "contains" => Func::Contains,
                    "startsWith" => Func::StartsWith,
                    "endsWith" => Func::EndsWith,
                    _ => match &all[1].0 {
                        Node::Const(Value::String(pattern)) => match self.regex(pattern) {
                            Ok(re) => Func::MatchesConst(re),
                            Err(PatternError::Limit(message)) => {
                                let arg_span = if target.is_some() { args[0].span } else { args[1].span };
                                return self.error(
                                    Diagnostic::new(Code::LimitExceeded, message).with_span(arg_span).with_help(
                                        "reuse patterns, or raise `Limits::max_patterns` / `Limits::max_pattern_bytes`",
                                    ),
                                );
                            }
                            Err(PatternError::Invalid(e)) => {
                                let arg_span = if target.is_some() { args[0].span } else { args[1].span };
                                let first = e.lines().last().unwrap_or("invalid pattern").trim().to_string();
                                return self.error(
                                    Diagnostic::new(Code::InvalidLiteral, format!("invalid regular expression: {first}"))
                                        .with_span(arg_span)
                                        .with_help("patterns use RE2 syntax; backreferences and look-around are not available"),
                                );
                            }
                        },
                        _ => Func::Matches(Arc::default()),
                    },
                };
                if let Func::MatchesConst(_) = func {
                    all.truncate(1);
                }
                (Node::Call(func, nodes(all)), Type::Bool)
            }
            "lowerAscii" | "upperAscii" | "trim" if target.is_some() && arity == 0 => {
                if !is_str(&types[0]) {
                    return self.overload(span, function, &type_refs);
                }
                let func = match function {
                    "lowerAscii" => Func::LowerAscii,
                    "upperAscii" => Func::UpperAscii,
                    _ => Func::Trim,
                };
                (Node::Call(func, nodes(all)), Type::String)
            }
            "int" | "double" | "string" | "bool" | "timestamp" | "duration"
                if target.is_none() && arity == 1 =>
            {
                let t = &types[0];
                let (func, result, ok) = match function {
                    "int" => (
                        Func::ToInt,
                        Type::Int,
                        matches!(t, Type::Int | Type::Double | Type::String | Type::Timestamp | Type::Dyn),
                    ),
                    "double" => (
                        Func::ToDouble,
                        Type::Double,
                        matches!(t, Type::Int | Type::Double | Type::String | Type::Dyn),
                    ),
                    "string" => (
                        Func::ToString,
                        Type::String,
                        matches!(
                            t,
                            Type::Int
                                | Type::Double
                                | Type::String
                                | Type::Bool
                                | Type::Timestamp
                                | Type::Duration
                                | Type::Dyn
                        ),
                    ),
                    "bool" => (Func::ToBool, Type::Bool, matches!(t, Type::Bool | Type::String | Type::Dyn)),
                    "timestamp" => (
                        Func::ToTimestamp,
                        Type::Timestamp,
                        matches!(t, Type::Timestamp | Type::String | Type::Int | Type::Dyn),
                    ),
                    _ => (
                        Func::ToDuration,
                        Type::Duration,
                        matches!(t, Type::Duration | Type::String | Type::Dyn),
                    ),
                };
                if !ok {
                    return self.overload(span, function, &type_refs);
                }
                let node = Node::Call(func, nodes(all));
                // Fold conversions of literals: constants at run time, and malformed timestamp
                // and duration literals surface at compile time.
                (self.fold_call(node, span), result)
            }
            name if time_component(name).is_some() && target.is_some() && arity <= 1 => {
                let component = time_component(name).unwrap_or(TimeComponent::Seconds);
                let recv_t = &types[0];
                let duration_ok = matches!(
                    component,
                    TimeComponent::Hours
                        | TimeComponent::Minutes
                        | TimeComponent::Seconds
                        | TimeComponent::Milliseconds
                );
                match (recv_t, arity) {
                    (Type::Timestamp | Type::Dyn, 0) => {
                        (Node::Call(Func::TimestampPart(component, None), nodes(all)), Type::Int)
                    }
                    (Type::Timestamp | Type::Dyn, 1) if is_str(&types[1]) => {
                        if let Node::Const(Value::String(tz)) = &all[1].0 {
                            match TimeZone::parse(tz) {
                                Ok(zone) => {
                                    all.truncate(1);
                                    (Node::Call(Func::TimestampPart(component, Some(zone)), nodes(all)), Type::Int)
                                }
                                Err(_) => self.error(
                                    Diagnostic::new(Code::InvalidLiteral, format!("unknown time zone `{tz}`"))
                                        .with_span(args[0].span)
                                        .with_help("use an IANA name such as `Europe/Paris` or an offset such as `+05:30`"),
                                ),
                            }
                        } else {
                            (Node::Call(Func::TimestampPartDyn(component), nodes(all)), Type::Int)
                        }
                    }
                    (Type::Duration, 0) if duration_ok => {
                        let func = match component {
                            TimeComponent::Hours => Func::DurationHours,
                            TimeComponent::Minutes => Func::DurationMinutes,
                            TimeComponent::Seconds => Func::DurationSeconds,
                            _ => Func::DurationMillis,
                        };
                        (Node::Call(func, nodes(all)), Type::Int)
                    }
                    _ => self.overload(span, &sig, &type_refs),
                }
            }
            _ => {
                let known = KNOWN_FUNCTIONS.contains(&function) || (function == "has" && target.is_some());
                if known {
                    let form = if target.is_some() { "method" } else { "function" };
                    return self.error(
                        Diagnostic::new(
                            Code::NoMatchingOverload,
                            format!("no matching overload for {form} `{function}` with {arity} argument(s) of types ({})", type_refs.iter().map(|t| t.to_string()).collect::<Vec<_>>().join(", ")),
                        )
                        .with_span(function_span)
                        .with_help("see docs/expressions.md for the supported forms"),
                    );
                }
                if UNSUPPORTED_FUNCTIONS.contains(&function) {
                    return self.error(
                        Diagnostic::new(
                            Code::Unsupported,
                            format!("the CEL function `{function}` is outside the subset nurture supports"),
                        )
                        .with_span(function_span)
                        .with_help("see docs/expressions.md for the supported functions"),
                    );
                }
                self.error(
                    Diagnostic::new(Code::UnknownFunction, format!("unknown function `{function}`"))
                        .with_span(function_span)
                        .with_did_you_mean(did_you_mean(function, KNOWN_FUNCTIONS.iter().copied()))
                        .with_help("see docs/expressions.md for the supported functions"),
                )
            }
        }
    }

    /// Evaluates a call on constant arguments at compile time; an error becomes a
    /// diagnostic (for example `timestamp('not a time')`).
    fn fold_call(&mut self, node: Node, span: Span) -> Node {
        let Node::Call(func, args) = &node else {
            return node;
        };
        let consts: Option<Vec<Value>> = args
            .iter()
            .map(|a| match a {
                Node::Const(v) => Some(v.clone()),
                _ => None,
            })
            .collect();
        let Some(consts) = consts else {
            return node;
        };
        match crate::expr::eval::call_function(func, &consts) {
            Ok(v) => Node::Const(v),
            // Numeric conversions that fail stay run-time errors, as CEL defines them
            // (they may sit in a branch that never runs); a malformed timestamp or
            // duration literal is a mistake in the rule, reported now.
            Err(_) if !matches!(func, Func::ToTimestamp | Func::ToDuration) => node,
            Err(e) => {
                self.diagnostics.push(
                    Diagnostic::new(Code::InvalidLiteral, format!("this conversion always fails: {e}"))
                        .with_span(span),
                );
                node
            }
        }
    }

    fn has(&mut self, args: &[Expr], span: Span) -> (Node, Type) {
        let [arg] = args else {
            return self.error(
                Diagnostic::new(Code::NoMatchingOverload, "`has` takes exactly one argument")
                    .with_span(span)
                    .with_help("write `has(contact.field)` or `has(map.key)`"),
            );
        };
        let ExprKind::Select { operand, field, field_span } = &arg.kind else {
            return self.error(
                Diagnostic::new(Code::NoMatchingOverload, "the argument of `has` must be a field selection")
                    .with_span(arg.span)
                    .with_help("write `has(contact.field)` or `has(map.key)`"),
            );
        };
        if self.event_meta(operand, field).is_some() {
            return (Node::Const(Value::Bool(true)), Type::Bool);
        }
        match self.record_field(operand, field, *field_span) {
            FieldLookup::Found(scope, slot, _, _) => return (Node::Has(scope, slot), Type::Bool),
            FieldLookup::Unknown => return (Node::Const(Value::Null), Type::Bool),
            FieldLookup::NotARecord => {}
        }
        let (node, ty) = self.check(operand);
        match ty {
            Type::Map(..) | Type::Dyn => {
                (Node::HasKey(Box::new(node), Arc::from(field.as_str())), Type::Bool)
            }
            other => self.error(
                Diagnostic::new(Code::NoMatchingOverload, format!("`has` cannot test a field of a {other}"))
                    .with_span(arg.span),
            ),
        }
    }

    fn comprehension(
        &mut self,
        kind: MacroShape,
        function: &str,
        target: &Expr,
        args: &[Expr],
        span: Span,
    ) -> (Node, Type) {
        let (range, range_ty) = self.check(target);
        let vars: Vec<&Expr> = args.iter().take(kind.vars).collect();
        let mut var_names = Vec::new();
        for v in &vars {
            match &v.kind {
                ExprKind::Ident(name) => var_names.push(name.clone()),
                _ => {
                    return self.error(
                        Diagnostic::new(
                            Code::Syntax,
                            format!("the first argument(s) of `{function}` must be variable names"),
                        )
                        .with_span(v.span)
                        .with_help(format!("write it as `list.{function}(x, <expression using x>)`")),
                    )
                }
            }
        }
        let (first_ty, second_ty, is_map) = match &range_ty {
            Type::List(e) => {
                if kind.vars == 2 {
                    (Type::Int, (**e).clone(), false)
                } else {
                    ((**e).clone(), Type::Dyn, false)
                }
            }
            Type::Map(k, v) => ((**k).clone(), (**v).clone(), true),
            Type::Dyn => (Type::Dyn, Type::Dyn, false),
            other => {
                return self.error(
                    Diagnostic::new(
                        Code::NoMatchingOverload,
                        format!("`{function}` applies to lists and maps, not to a {other}"),
                    )
                    .with_span(span),
                )
            }
        };
        let first = self.alloc_local();
        let second = if kind.vars == 2 { self.alloc_local() } else { None };
        let (Some(first), Some(first_name)) = (first, var_names.first()) else {
            return self.error(
                Diagnostic::new(Code::LimitExceeded, "too many comprehension variables").with_span(span),
            );
        };
        if kind.vars == 2 && second.is_none() {
            return self.error(
                Diagnostic::new(Code::LimitExceeded, "too many comprehension variables").with_span(span),
            );
        }
        let depth = self.scopes.len();
        self.scopes.push((first_name.clone(), first, first_ty.clone()));
        if let (Some(slot), Some(name)) = (second, var_names.get(1)) {
            self.scopes.push((name.clone(), slot, second_ty.clone()));
        }
        let rest = &args[kind.vars..];
        let checked: Vec<(Node, Type)> = rest.iter().map(|a| self.check(a)).collect();
        self.scopes.truncate(depth);
        let bool_body = |t: &Type| matches!(t, Type::Bool | Type::Dyn);
        let mut nodes = checked.into_iter();
        let (body, body_ty) = nodes.next().unwrap_or((Node::Const(Value::Null), Type::Dyn));
        let map = nodes.next();
        let (macro_kind, ty) = match kind.kind {
            MacroKind::All | MacroKind::Exists | MacroKind::ExistsOne => {
                if !bool_body(&body_ty) {
                    return self.error(
                        Diagnostic::new(
                            Code::TypeMismatch,
                            format!("the predicate of `{function}` must be a bool, found {body_ty}"),
                        )
                        .with_span(rest[0].span),
                    );
                }
                (kind.kind, Type::Bool)
            }
            MacroKind::Filter => {
                if !bool_body(&body_ty) {
                    return self.error(
                        Diagnostic::new(
                            Code::TypeMismatch,
                            format!("the predicate of `filter` must be a bool, found {body_ty}"),
                        )
                        .with_span(rest[0].span),
                    );
                }
                let elem = if kind.vars == 1 { first_ty.clone() } else { second_ty.clone() };
                (MacroKind::Filter, Type::list(elem))
            }
            MacroKind::Map | MacroKind::FilterMap => match &map {
                Some((_, map_ty)) => {
                    if !bool_body(&body_ty) {
                        return self.error(
                            Diagnostic::new(
                                Code::TypeMismatch,
                                format!("the filter of `{function}` must be a bool, found {body_ty}"),
                            )
                            .with_span(rest[0].span),
                        );
                    }
                    (MacroKind::FilterMap, Type::list(map_ty.clone()))
                }
                None => (MacroKind::Map, Type::list(body_ty.clone())),
            },
            MacroKind::TransformMap => {
                if map.is_some() && !bool_body(&body_ty) {
                    return self.error(
                        Diagnostic::new(
                            Code::TypeMismatch,
                            format!("the filter of `{function}` must be a bool, found {body_ty}"),
                        )
                        .with_span(rest[0].span),
                    );
                }
                let value_ty = map.as_ref().map_or(body_ty.clone(), |(_, t)| t.clone());
                let key_ty = if is_map {
                    first_ty.clone()
                } else if range_ty == Type::Dyn {
                    Type::Dyn
                } else {
                    Type::Int
                };
                (MacroKind::TransformMap, Type::map(key_ty, value_ty))
            }
        };
        // `filter` on a map yields keys; the evaluator binds the key to the first slot.
        let node = Node::Comprehension(Box::new(Comprehension {
            kind: macro_kind,
            range,
            first,
            second,
            body,
            map: map.map(|(n, _)| n),
        }));
        (node, ty)
    }

    /// A compiled pattern, from the rule set's cache when it has one.
    fn regex(&self, pattern: &str) -> Result<Arc<regex::Regex>, PatternError> {
        let Some(cache) = self.names.regexes else {
            return compile_regex(pattern).map(Arc::new).map_err(PatternError::Invalid);
        };
        if let Some(result) = cache.compiled.borrow().get(pattern) {
            return result.clone().map_err(PatternError::Invalid);
        }
        // Every distinct pattern tried counts, refused ones too: a pattern past the size
        // limit costs as much to refuse as the largest one accepted.
        let count = cache.compiled.borrow().len();
        let bytes = cache.bytes.get().saturating_add(pattern.len());
        if count >= cache.max_patterns {
            return Err(PatternError::Limit(format!(
                "more than {} distinct regular expressions in one rule set",
                cache.max_patterns
            )));
        }
        if bytes > cache.max_bytes {
            return Err(PatternError::Limit(format!(
                "regular expressions of more than {} bytes in one rule set",
                cache.max_bytes
            )));
        }
        let result = compile_regex(pattern).map(Arc::new);
        cache.bytes.set(bytes);
        cache.compiled.borrow_mut().insert(pattern.to_string(), result.clone());
        result.map_err(PatternError::Invalid)
    }

    fn alloc_local(&mut self) -> Option<u16> {
        let slot = self.next_local;
        self.next_local = self.next_local.checked_add(1)?;
        Some(slot)
    }
}

fn collect_chain<'e>(op: BinaryOp, expr: &'e Expr, out: &mut Vec<&'e Expr>) {
    // Iterative over the right spine, recursive only over balanced subtrees.
    let mut stack = vec![expr];
    while let Some(e) = stack.pop() {
        match &e.kind {
            ExprKind::Binary { op: inner, lhs, rhs } if *inner == op => {
                stack.push(rhs);
                stack.push(lhs);
            }
            _ => out.push(e),
        }
    }
}

/// A list literal of constants becomes one constant list.
fn fold_constant(node: Node) -> Node {
    if let Node::List(items) = &node {
        if items.iter().all(|n| matches!(n, Node::Const(_))) {
            let values: Vec<Value> = items
                .iter()
                .map(|n| match n {
                    Node::Const(v) => v.clone(),
                    _ => Value::Null,
                })
                .collect();
            return Node::Const(Value::List(values.into()));
        }
    }
    node
}

#[derive(Clone, Copy)]
struct MacroShape {
    kind: MacroKind,
    vars: usize,
}

fn macro_kind(function: &str, method: bool, args: usize) -> Option<MacroShape> {
    if !method {
        return None;
    }
    let shape = |kind, vars| Some(MacroShape { kind, vars });
    match (function, args) {
        ("all", 2) => shape(MacroKind::All, 1),
        ("all", 3) => shape(MacroKind::All, 2),
        ("exists", 2) => shape(MacroKind::Exists, 1),
        ("exists", 3) => shape(MacroKind::Exists, 2),
        ("exists_one", 2) | ("existsOne", 2) => shape(MacroKind::ExistsOne, 1),
        ("exists_one", 3) | ("existsOne", 3) => shape(MacroKind::ExistsOne, 2),
        ("map", 2) => shape(MacroKind::Map, 1),
        ("map", 3) => shape(MacroKind::FilterMap, 1),
        ("filter", 2) => shape(MacroKind::Filter, 1),
        ("transformList", 3) => shape(MacroKind::Map, 2),
        ("transformList", 4) => shape(MacroKind::FilterMap, 2),
        ("transformMap", 3) | ("transformMap", 4) => shape(MacroKind::TransformMap, 2),
        _ => None,
    }
}
