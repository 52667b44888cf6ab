//! The expression language: a documented subset of CEL.
//!
//! Pipeline: `lexer` -> `parser` (an [`ast`] with byte spans) -> `check` (names
//! resolved to slots, types checked, diagnostics) -> `compile` (fused predicates) ->
//! `eval`. See `docs/expressions.md` for the language reference.
//!
//! The standalone API compiles an expression over host-declared variables:
//!
//! ```
//! use nurture::{expr::{Activation, Env}, Type, Value};
//! let env = Env::new().with_variable("visits", Type::Int)?;
//! let expr = env.compile("visits >= 3 && visits % 2 == 1")?;
//! let vars = env.bind([("visits", Value::Int(5))])?;
//! assert_eq!(expr.eval(&Activation::new().with_variables(&vars))?, Value::Bool(true));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

pub mod ast;
pub(crate) mod check;
pub(crate) mod compile;
pub(crate) mod eval;
pub(crate) mod ir;
pub(crate) mod lexer;
pub(crate) mod parser;
pub(crate) mod timing;

use std::sync::Arc;

pub use eval::{Activation, EvalError, EvalErrorKind, Variables};

use crate::diagnostic::{Code, CompileError, Diagnostic};
use crate::limits::Limits;
use crate::schema::{FieldSet, Record};
use crate::value::{Type, Value};
use check::Names;
use compile::Pred;

/// Parses an expression into its syntax tree, for tools that inspect expressions.
///
/// # Errors
///
/// A syntax error, an unsupported CEL feature or an exceeded limit, as a diagnostic
/// with its span and the source attached.
pub fn parse(source: &str, limits: &Limits) -> Result<ast::Expr, CompileError> {
    parser::parse(source, limits).map_err(|d| CompileError::new(vec![d.with_source(Arc::from(source))]))
}

/// Declarations for standalone expressions: variable names and types, and limits.
#[derive(Clone, Debug, Default)]
pub struct Env {
    vars: FieldSet,
    limits: Limits,
}

impl Env {
    /// An environment with no variables and default limits.
    pub fn new() -> Env {
        Env::default()
    }

    /// Declares a variable.
    ///
    /// # Errors
    ///
    /// When the name is declared already.
    pub fn with_variable(mut self, name: &str, ty: Type) -> Result<Env, CompileError> {
        self.vars
            .add(name, ty)
            .map_err(|message| CompileError::new(vec![Diagnostic::new(Code::DuplicateId, message)]))?;
        Ok(self)
    }

    /// Replaces the limits.
    pub fn with_limits(mut self, limits: Limits) -> Env {
        self.limits = limits;
        self
    }

    /// Compiles an expression.
    ///
    /// # Errors
    ///
    /// Every problem found, each a [`Diagnostic`] with its span and the source attached.
    pub fn compile(&self, source: &str) -> Result<Expression, CompileError> {
        let names = Names { vars: Some(&self.vars), ..Names::default() };
        compile_with(source, names, &self.limits, "")
    }

    /// Binds values to the declared variables, by name.
    ///
    /// # Errors
    ///
    /// An undeclared name or a value of the wrong type.
    pub fn bind<'n>(
        &self,
        values: impl IntoIterator<Item = (&'n str, Value)>,
    ) -> Result<Variables, crate::schema::RecordError> {
        let mut record = Record::new(self.vars.len());
        for (name, value) in values {
            record.set(&self.vars, name, value)?;
        }
        Ok(Variables::from_record(record))
    }
}

/// What tuning a compiled scorer or program on a sample of events measured and changed
/// (see [`Scorer::tune`](crate::scoring::Scorer::tune) and
/// [`Program::tune`](crate::Program::tune)).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Tuning {
    /// Sample events replayed.
    pub events: usize,
    /// Conditions evaluated on them (the candidates the rule index left).
    pub evaluations: u64,
    /// Distinct conditions evaluated at least once.
    pub conditions: usize,
    /// Of those, the conditions whose `&&` / `||` operands were reordered.
    pub reordered: usize,
}

/// A compiled expression: immutable, `Send + Sync`, cheap to share.
#[derive(Clone, Debug)]
pub struct Expression {
    source: Arc<str>,
    node: ir::Node,
    pred: Option<Pred>,
    ty: Type,
    locals: usize,
    budget: u64,
}

impl Expression {
    /// The expression's static type.
    pub fn result_type(&self) -> &Type {
        &self.ty
    }

    /// The source text.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// Evaluates the expression.
    ///
    /// # Errors
    ///
    /// The CEL run-time error the expression ends in: a missing field, overflow,
    /// division by zero, a failed conversion, and so on.
    pub fn eval(&self, activation: &Activation<'_>) -> Result<Value, EvalError> {
        eval::Evaluator::new(activation, self.locals, self.budget).eval(&self.node)
    }

    /// Evaluates a `bool` expression through its fused-predicate form.
    ///
    /// # Errors
    ///
    /// As [`Expression::eval`], and when the result is not a bool.
    pub fn eval_bool(&self, activation: &Activation<'_>) -> Result<bool, EvalError> {
        match &self.pred {
            Some(pred) => pred.test(activation),
            None => self.eval_bool_slow(activation),
        }
    }

    #[inline(never)]
    fn eval_bool_slow(&self, activation: &Activation<'_>) -> Result<bool, EvalError> {
        match self.eval(activation)? {
            Value::Bool(b) => Ok(b),
            other => Err(EvalError::new(
                EvalErrorKind::NoMatchingOverload,
                format!("a condition that is a {}", other.kind()),
            )),
        }
    }

    /// The contact fields (slots) the expression reads or tests with `has()`.
    pub(crate) fn contact_reads(&self) -> Vec<crate::schema::Slot> {
        self.reads(ir::Scope::Contact)
    }

    /// Whether the expression reads a root variable (the engine's `tags` or `bands`).
    pub(crate) fn reads_vars(&self) -> bool {
        !self.reads(ir::Scope::Var).is_empty()
    }

    /// The counters (slots) the expression reads.
    pub(crate) fn counter_reads(&self) -> Vec<crate::schema::Slot> {
        self.reads(ir::Scope::Counter)
    }

    /// Whether the expression reads a score (`score.NAME`).
    pub(crate) fn reads_any_score(&self) -> bool {
        !self.reads(ir::Scope::Score).is_empty()
    }

    /// The segments (slots) the expression reads.
    pub(crate) fn segment_reads(&self) -> Vec<crate::schema::Slot> {
        self.reads(ir::Scope::Segment)
    }

    /// Score levels the expression compares a score with (`score.X >= 50.0` and the
    /// like, either way round): (score slot, level). What decay can make true or false
    /// without an event.
    pub(crate) fn score_levels(&self) -> Vec<(crate::schema::Slot, f64)> {
        fn walk(node: &ir::Node, out: &mut Vec<(crate::schema::Slot, f64)>) {
            use ir::Node;
            if let Node::Binary(_, a, b) = node {
                for (x, y) in [(a, b), (b, a)] {
                    if let (Node::Load(ir::Scope::Score, slot, _), Node::Const(v)) = (&**x, &**y) {
                        let level = match v {
                            Value::Int(i) => *i as f64,
                            Value::Double(d) => *d,
                            _ => continue,
                        };
                        out.push((*slot, level));
                    }
                }
            }
            node.children().for_each(|n| walk(n, out));
        }
        let mut out = Vec::new();
        walk(&self.node, &mut out);
        out.sort_by(|a, b| a.0.cmp(&b.0).then(a.1.total_cmp(&b.1)));
        out.dedup();
        out
    }

    /// Whether the expression reads any score (`score.NAME`).
    pub(crate) fn reads_scores(&self) -> bool {
        !self.reads(ir::Scope::Score).is_empty()
    }

    /// The slots of `scope` the expression reads or tests with `has()`.
    fn reads(&self, scope: ir::Scope) -> Vec<crate::schema::Slot> {
        fn walk(node: &ir::Node, scope: ir::Scope, out: &mut Vec<crate::schema::Slot>) {
            match node {
                ir::Node::Load(s, slot, _) | ir::Node::Has(s, slot) if *s == scope => out.push(*slot),
                _ => node.children().for_each(|n| walk(n, scope, out)),
            }
        }
        let mut out = Vec::new();
        walk(&self.node, scope, &mut out);
        out.sort_unstable();
        out.dedup();
        out
    }

    pub(crate) fn pred(&self) -> Option<&Pred> {
        self.pred.as_ref()
    }

    /// The same expression evaluated through `pred` (a tuned form of its own).
    pub(crate) fn with_pred(&self, pred: Pred) -> Expression {
        Expression { pred: Some(pred), ..self.clone() }
    }
}

/// Parses, checks and compiles `source` against `names`. Diagnostics get `path`.
pub(crate) fn compile_with(
    source: &str,
    names: Names<'_>,
    limits: &Limits,
    path: &str,
) -> Result<Expression, CompileError> {
    let source: Arc<str> = Arc::from(source);
    let finish = |d: Diagnostic| d.with_source(source.clone()).with_path(path);
    let ast = parser::parse(&source, limits).map_err(|d| CompileError::new(vec![finish(d)]))?;
    let mut diagnostics = Vec::new();
    let checked = check::check(&ast, names, &mut diagnostics);
    if !diagnostics.is_empty() {
        return Err(CompileError::new(diagnostics.into_iter().map(finish).collect()));
    }
    let budget = limits.max_eval_steps;
    let general = compile::General { locals: checked.locals, budget };
    let pred = matches!(checked.ty, Type::Bool | Type::Dyn).then(|| compile::lower(&checked.node, general));
    Ok(Expression { source, node: checked.node, pred, ty: checked.ty, locals: checked.locals, budget })
}

impl Value {
    /// The most precise static type describing this value: lists and maps whose
    /// elements differ in type get `dyn` elements.
    pub fn infer_type(&self) -> Type {
        fn join(acc: Option<Type>, t: Type) -> Option<Type> {
            Some(match acc {
                None => t,
                Some(a) if a == t => a,
                Some(_) => Type::Dyn,
            })
        }
        match self {
            Value::Null => Type::Null,
            Value::Bool(_) => Type::Bool,
            Value::Int(_) => Type::Int,
            Value::Double(_) => Type::Double,
            Value::String(_) => Type::String,
            Value::Timestamp(_) => Type::Timestamp,
            Value::Duration(_) => Type::Duration,
            Value::List(items) => {
                Type::list(items.iter().fold(None, |acc, v| join(acc, v.infer_type())).unwrap_or(Type::Dyn))
            }
            Value::Map(map) => {
                let k = map.iter().fold(None, |acc, (k, _)| join(acc, k.infer_type()));
                let v = map.iter().fold(None, |acc, (_, v)| join(acc, v.infer_type()));
                Type::map(k.unwrap_or(Type::Dyn), v.unwrap_or(Type::Dyn))
            }
        }
    }
}
