//! The abstract syntax tree of an expression, with byte spans into its source.
//!
//! The parser produces it and the checker consumes it; spans are dropped after checking.

use crate::diagnostic::Span;

/// A parsed expression node.
#[derive(Clone, Debug, PartialEq)]
pub struct Expr {
    /// What the node is.
    pub kind: ExprKind,
    /// Where it is in the source.
    pub span: Span,
}

/// A literal constant.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub enum Literal {
    /// `null`.
    Null,
    /// `true` / `false`.
    Bool(bool),
    /// An integer literal (already range-checked, negation folded in by the parser).
    Int(i64),
    /// A floating-point literal.
    Double(f64),
    /// A string literal, escapes decoded.
    String(String),
}

/// Unary operators.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum UnaryOp {
    /// `!x`
    Not,
    /// `-x`
    Neg,
}

/// Binary operators (`&&` and `||` included; they short-circuit and absorb errors).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum BinaryOp {
    /// `||`
    Or,
    /// `&&`
    And,
    /// `==`
    Eq,
    /// `!=`
    Ne,
    /// `<`
    Lt,
    /// `<=`
    Le,
    /// `>`
    Gt,
    /// `>=`
    Ge,
    /// `in`
    In,
    /// `+`
    Add,
    /// `-`
    Sub,
    /// `*`
    Mul,
    /// `/`
    Div,
    /// `%`
    Rem,
}

impl BinaryOp {
    /// The operator as written in source.
    pub fn symbol(self) -> &'static str {
        match self {
            BinaryOp::Or => "||",
            BinaryOp::And => "&&",
            BinaryOp::Eq => "==",
            BinaryOp::Ne => "!=",
            BinaryOp::Lt => "<",
            BinaryOp::Le => "<=",
            BinaryOp::Gt => ">",
            BinaryOp::Ge => ">=",
            BinaryOp::In => "in",
            BinaryOp::Add => "+",
            BinaryOp::Sub => "-",
            BinaryOp::Mul => "*",
            BinaryOp::Div => "/",
            BinaryOp::Rem => "%",
        }
    }
}

/// The kinds of expression node.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub enum ExprKind {
    /// A constant.
    Literal(Literal),
    /// A bare name: a root variable (`contact`, `event`, `now`, a declared variable) or a
    /// comprehension variable.
    Ident(String),
    /// `operand.field`
    Select {
        /// The value selected from.
        operand: Box<Expr>,
        /// The field name.
        field: String,
        /// Span of the field name alone.
        field_span: Span,
    },
    /// `operand[index]`
    Index {
        /// The list or map indexed.
        operand: Box<Expr>,
        /// The index or key.
        index: Box<Expr>,
    },
    /// A function call `f(args)` or a method call `target.f(args)`; macros such as
    /// `has(..)` and `list.all(x, ..)` are calls too and are recognised by the checker.
    Call {
        /// The receiver of a method call.
        target: Option<Box<Expr>>,
        /// The function name.
        function: String,
        /// Span of the function name alone.
        function_span: Span,
        /// The arguments.
        args: Vec<Expr>,
    },
    /// A unary operation.
    Unary {
        /// The operator.
        op: UnaryOp,
        /// The operand.
        operand: Box<Expr>,
    },
    /// A binary operation.
    Binary {
        /// The operator.
        op: BinaryOp,
        /// Left operand.
        lhs: Box<Expr>,
        /// Right operand.
        rhs: Box<Expr>,
    },
    /// `cond ? then : otherwise`
    Conditional {
        /// The condition.
        cond: Box<Expr>,
        /// Value when true.
        then: Box<Expr>,
        /// Value when false.
        otherwise: Box<Expr>,
    },
    /// `[a, b, c]`
    List(Vec<Expr>),
    /// `{k: v, ...}`
    Map(Vec<(Expr, Expr)>),
}
