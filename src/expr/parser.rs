//! Recursive-descent parser for CEL.
//!
//! The grammar is the CEL specification's, minus the features nurture does not support
//! (those are reported as [`Code::Unsupported`] naming the feature):
//!
//! ```text
//! Expr           = ConditionalOr ["?" ConditionalOr ":" Expr]
//! ConditionalOr  = ConditionalAnd {"||" ConditionalAnd}
//! ConditionalAnd = Relation {"&&" Relation}
//! Relation       = Addition {("<" | "<=" | ">=" | ">" | "==" | "!=" | "in") Addition}
//! Addition       = Multiplication {("+" | "-") Multiplication}
//! Multiplication = Unary {("*" | "/" | "%") Unary}
//! Unary          = Member | "!" {"!"} Member | "-" {"-"} Member
//! Member         = Primary | Member "." IDENT ["(" [ExprList] ")"] | Member "[" Expr "]"
//! Primary        = IDENT ["(" [ExprList] ")"] | "(" Expr ")"
//!                | "[" [ExprList] [","] "]" | "{" [MapInits] [","] "}" | LITERAL
//! ```
//!
//! A single `-` directly before a number literal is folded into the literal, so
//! `-9223372036854775808` is `i64::MIN`; further minus signs stay negations.
//!
//! Hostile input is bounded: the source length is checked before lexing, recursion
//! (parentheses, arguments, list and map elements, indices, conditionals) is limited to
//! [`Limits::max_depth`], and so is the height of the produced tree, which left-leaning
//! loops (`a + a + ...`, `a.b.c...`, `!!!x`) would otherwise grow without recursion.
//! Chains of `&&` or of `||` are the exception: they are built as balanced trees, so
//! up to [`Limits::max_list_len`] operands fit. List and map literals (and argument
//! lists) hold at most [`Limits::max_list_len`] elements.

use crate::diagnostic::{Code, Diagnostic, Span};
use crate::expr::ast::{BinaryOp, Expr, ExprKind, Literal, UnaryOp};
use crate::expr::lexer::{excerpt, Lexer, Token, TokenKind};
use crate::limits::Limits;

type PResult<T> = Result<T, Box<Diagnostic>>;

/// Parses one CEL expression into its syntax tree, or reports the first problem.
///
/// The diagnostic has a code, message, span (when there is a place to point at) and
/// help; the caller attaches the source text and document path.
// The signature is the crate's convention for one diagnostic; the error path is cold.
#[allow(clippy::result_large_err)]
pub(crate) fn parse(source: &str, limits: &Limits) -> Result<Expr, Diagnostic> {
    if source.len() > limits.max_expression_len {
        return Err(Diagnostic::new(
            Code::LimitExceeded,
            format!(
                "expression is {} bytes long, longer than the limit of {} bytes",
                source.len(),
                limits.max_expression_len
            ),
        )
        .with_help("shorten the expression or raise `Limits::max_expression_len`"));
    }
    let run = || -> PResult<Expr> {
        let mut parser = Parser::new(source, limits)?;
        let node = parser.parse_expr()?;
        parser.expect_end()?;
        Ok(node.expr)
    };
    run().map_err(|d| *d)
}

/// An expression with the height of its tree (a leaf has height 1).
struct Node {
    expr: Expr,
    height: usize,
}

impl Node {
    fn span(&self) -> Span {
        self.expr.span
    }
}

fn err(code: Code, message: String, span: Span, help: &str) -> Box<Diagnostic> {
    Box::new(Diagnostic::new(code, message).with_span(span).with_help(help))
}

fn unsupported(message: &str, span: Span, help: &str) -> Box<Diagnostic> {
    err(Code::Unsupported, message.to_string(), span, help)
}

/// Pending operands and operators of [`Parser::parse_binary`]: each operator with its
/// precedence and span.
#[derive(Default)]
struct OpStack {
    operands: Vec<Operand>,
    ops: Vec<(BinaryOp, u8, Span)>,
}

/// A parsed argument list: the arguments, their greatest height, the `)`.
struct Args {
    exprs: Vec<Expr>,
    height: usize,
    close: Span,
}

/// An operand on the operator-precedence stack: a node, or a chain of `&&` or `||`
/// operands (each with the span of the operator before it) not yet built into a tree.
enum Operand {
    Node(Node),
    Chain(BinaryOp, Vec<(Node, Span)>),
}

fn binary_op(kind: &TokenKind<'_>) -> Option<(BinaryOp, u8)> {
    Some(match kind {
        TokenKind::OrOr => (BinaryOp::Or, 1),
        TokenKind::AndAnd => (BinaryOp::And, 2),
        TokenKind::Lt => (BinaryOp::Lt, 3),
        TokenKind::Le => (BinaryOp::Le, 3),
        TokenKind::Gt => (BinaryOp::Gt, 3),
        TokenKind::Ge => (BinaryOp::Ge, 3),
        TokenKind::EqEq => (BinaryOp::Eq, 3),
        TokenKind::Ne => (BinaryOp::Ne, 3),
        TokenKind::In => (BinaryOp::In, 3),
        TokenKind::Plus => (BinaryOp::Add, 4),
        TokenKind::Minus => (BinaryOp::Sub, 4),
        TokenKind::Star => (BinaryOp::Mul, 5),
        TokenKind::Slash => (BinaryOp::Div, 5),
        TokenKind::Percent => (BinaryOp::Rem, 5),
        _ => return None,
    })
}

/// Whether `expr` is a (possibly qualified) name: `a` or `a.b.c`.
fn is_qualified_name(expr: &Expr) -> bool {
    let mut cur = expr;
    loop {
        match &cur.kind {
            ExprKind::Ident(_) => return true,
            ExprKind::Select { operand, .. } => cur = operand,
            _ => return false,
        }
    }
}

struct Parser<'a> {
    src: &'a str,
    lexer: Lexer<'a>,
    /// The current (not yet consumed) token.
    tok: Token<'a>,
    /// Current nesting of `parse_expr` calls.
    depth: usize,
    max_depth: usize,
    max_list_len: usize,
}

impl<'a> Parser<'a> {
    fn new(src: &'a str, limits: &Limits) -> PResult<Parser<'a>> {
        let mut lexer = Lexer::new(src);
        let tok = lexer.next_token()?;
        Ok(Parser {
            src,
            lexer,
            tok,
            depth: 0,
            max_depth: limits.max_depth,
            max_list_len: limits.max_list_len,
        })
    }

    /// Consumes the current token and returns it.
    fn advance(&mut self) -> PResult<Token<'a>> {
        let next = self.lexer.next_token()?;
        Ok(std::mem::replace(&mut self.tok, next))
    }

    fn at(&self, kind: &TokenKind<'_>) -> bool {
        std::mem::discriminant(&self.tok.kind) == std::mem::discriminant(kind)
    }

    /// A description of the current token for messages: "`)`", "identifier `x`".
    fn describe(&self) -> String {
        let text = self.src.get(self.tok.span.range()).unwrap_or("");
        match &self.tok.kind {
            TokenKind::Eof => "end of input".into(),
            TokenKind::Ident(name) => format!("identifier `{}`", excerpt(name)),
            TokenKind::Reserved(word) => format!("reserved word `{word}`"),
            TokenKind::Int(_) | TokenKind::Double(_) => format!("number `{}`", excerpt(text)),
            TokenKind::Str(_) => "string literal".into(),
            _ => format!("`{}`", excerpt(text)),
        }
    }

    fn unexpected(&self, expected: &str, help: &str) -> Box<Diagnostic> {
        err(Code::Syntax, format!("unexpected {}, expected {expected}", self.describe()), self.tok.span, help)
    }

    fn depth_error(&self, span: Span) -> Box<Diagnostic> {
        err(
            Code::LimitExceeded,
            format!("expression nests deeper than {} levels", self.max_depth),
            span,
            "split the expression or raise `Limits::max_depth`",
        )
    }

    /// Builds a node of height `height`, failing if that is taller than allowed.
    fn node(&self, kind: ExprKind, span: Span, height: usize, at: Span) -> PResult<Node> {
        if height > self.max_depth {
            return Err(self.depth_error(at));
        }
        Ok(Node { expr: Expr { kind, span }, height })
    }

    fn leaf(&self, kind: ExprKind, span: Span) -> PResult<Node> {
        self.node(kind, span, 1, span)
    }

    /// Consumes the closing delimiter `close` of the construct opened at `open`.
    fn close(&mut self, close: &TokenKind<'_>, open: Span, expected: &str) -> PResult<Span> {
        if self.at(close) {
            return Ok(self.advance()?.span);
        }
        let (opener, closer) = match close {
            TokenKind::RParen => ("(", ")"),
            TokenKind::RBracket => ("[", "]"),
            _ => ("{", "}"),
        };
        if self.at(&TokenKind::Eof) {
            return Err(err(
                Code::Syntax,
                format!("unclosed `{opener}`"),
                open,
                &format!("add a matching `{closer}`"),
            ));
        }
        Err(self.unexpected(expected, &format!("close the `{opener}` with `{closer}`")))
    }

    fn expect_end(&mut self) -> PResult<()> {
        match self.tok.kind {
            TokenKind::Eof => Ok(()),
            TokenKind::RParen | TokenKind::RBracket | TokenKind::RBrace => {
                let opener = match self.tok.kind {
                    TokenKind::RParen => "(",
                    TokenKind::RBracket => "[",
                    _ => "{",
                };
                Err(err(
                    Code::Syntax,
                    format!("unmatched {}", self.describe()),
                    self.tok.span,
                    &format!("remove it, or add the `{opener}` it closes"),
                ))
            }
            TokenKind::Question => Err(self.unexpected(
                "an operator or the end of the expression",
                "a conditional's branches cannot themselves be unparenthesised conditionals; \
                 wrap the inner one in parentheses",
            )),
            _ => Err(self.unexpected(
                "an operator or the end of the expression",
                "join the parts with an operator such as `&&`, or remove the extra text",
            )),
        }
    }

    /// `Expr`: the only recursive entry point, so the depth counter bounds recursion.
    ///
    /// The functions on the recursive path keep their stack frames small: building
    /// nodes and reporting errors happen in helpers that are not on the path.
    fn parse_expr(&mut self) -> PResult<Node> {
        self.depth += 1;
        if self.depth > self.max_depth {
            return Err(self.depth_error(self.tok.span));
        }
        let result = self.parse_conditional();
        self.depth -= 1;
        result
    }

    /// `ConditionalOr ["?" ConditionalOr ":" Expr]`.
    fn parse_conditional(&mut self) -> PResult<Node> {
        let cond = self.parse_binary()?;
        if !self.at(&TokenKind::Question) {
            return Ok(cond);
        }
        self.parse_branches(cond)
    }

    /// The `? then : otherwise` after `cond`, at the `?`.
    fn parse_branches(&mut self, cond: Node) -> PResult<Node> {
        let question = self.advance()?.span;
        let then = self.parse_binary()?;
        self.expect_colon()?;
        let otherwise = self.parse_expr()?;
        self.conditional(cond, then, otherwise, question)
    }

    fn expect_colon(&mut self) -> PResult<()> {
        if !self.at(&TokenKind::Colon) {
            return Err(
                self.unexpected("`:`", "a conditional needs both branches: `condition ? then : otherwise`")
            );
        }
        self.advance()?;
        Ok(())
    }

    fn conditional(&self, cond: Node, then: Node, otherwise: Node, at: Span) -> PResult<Node> {
        let height = 1 + cond.height.max(then.height).max(otherwise.height);
        let span = cond.span().to(otherwise.span());
        self.node(
            ExprKind::Conditional {
                cond: Box::new(cond.expr),
                then: Box::new(then.expr),
                otherwise: Box::new(otherwise.expr),
            },
            span,
            height,
            at,
        )
    }

    /// All binary operators, by operator precedence with explicit stacks, so that one
    /// stack frame serves every precedence level. Chains of `&&` (or of `||`) are
    /// gathered and built as balanced trees.
    fn parse_binary(&mut self) -> PResult<Node> {
        let mut stack = OpStack::default();
        loop {
            let operand = self.parse_unary()?;
            stack.operands.push(Operand::Node(operand));
            if !self.shift_operator(&mut stack)? {
                return self.reduce_all(stack);
            }
        }
    }

    /// If the current token is a binary operator, consumes it, reduces the pending
    /// operators that bind at least as tightly (left associativity) and pushes it.
    fn shift_operator(&mut self, stack: &mut OpStack) -> PResult<bool> {
        let Some((op, prec)) = binary_op(&self.tok.kind) else {
            return Ok(false);
        };
        let at = self.advance()?.span;
        while let Some(&(top, top_prec, top_at)) = stack.ops.last() {
            if top_prec < prec {
                break;
            }
            stack.ops.pop();
            self.reduce(&mut stack.operands, top, top_at)?;
        }
        stack.ops.push((op, prec, at));
        Ok(true)
    }

    fn reduce_all(&self, mut stack: OpStack) -> PResult<Node> {
        while let Some((op, _, at)) = stack.ops.pop() {
            self.reduce(&mut stack.operands, op, at)?;
        }
        match stack.operands.pop() {
            Some(operand) if stack.operands.is_empty() => self.finish(operand),
            _ => Err(self.bug()),
        }
    }

    /// An error for a state the parser never reaches.
    fn bug(&self) -> Box<Diagnostic> {
        self.unexpected("an expression", "this is a parser bug; please report it")
    }

    /// Applies `op` (written at `at`) to the top two operands.
    fn reduce(&self, operands: &mut Vec<Operand>, op: BinaryOp, at: Span) -> PResult<()> {
        let (Some(rhs), Some(lhs)) = (operands.pop(), operands.pop()) else {
            return Err(self.bug());
        };
        let rhs = self.finish(rhs)?;
        let chained = matches!(op, BinaryOp::And | BinaryOp::Or);
        let reduced = match lhs {
            Operand::Chain(chain_op, mut items) if chained && chain_op == op => {
                items.push((rhs, at));
                Operand::Chain(op, items)
            }
            lhs => {
                let lhs = self.finish(lhs)?;
                if chained {
                    let lhs_span = lhs.span();
                    Operand::Chain(op, vec![(lhs, lhs_span), (rhs, at)])
                } else {
                    Operand::Node(self.binary(op, lhs, rhs, at)?)
                }
            }
        };
        if let Operand::Chain(_, items) = &reduced {
            if items.len() > self.max_list_len {
                return Err(err(
                    Code::LimitExceeded,
                    format!("`{}` chain has more than {} operands", op.symbol(), self.max_list_len),
                    at,
                    "split the condition or raise `Limits::max_list_len`",
                ));
            }
        }
        operands.push(reduced);
        Ok(())
    }

    /// The node of an operand, building a chain as a balanced tree: pairwise reduction
    /// keeps the operands' order and gives height `ceil(log2 n)` above the operands.
    fn finish(&self, operand: Operand) -> PResult<Node> {
        let (op, mut items) = match operand {
            Operand::Node(node) => return Ok(node),
            Operand::Chain(op, items) => (op, items),
        };
        while items.len() > 1 {
            let mut next = Vec::with_capacity(items.len().div_ceil(2));
            let mut iter = items.into_iter();
            while let Some((lhs, at)) = iter.next() {
                match iter.next() {
                    Some((rhs, rhs_at)) => next.push((self.binary(op, lhs, rhs, rhs_at)?, at)),
                    None => next.push((lhs, at)),
                }
            }
            items = next;
        }
        match items.pop() {
            Some((node, _)) => Ok(node),
            None => Err(self.bug()),
        }
    }

    fn binary(&self, op: BinaryOp, lhs: Node, rhs: Node, at: Span) -> PResult<Node> {
        let height = 1 + lhs.height.max(rhs.height);
        let span = lhs.span().to(rhs.span());
        self.node(ExprKind::Binary { op, lhs: Box::new(lhs.expr), rhs: Box::new(rhs.expr) }, span, height, at)
    }

    /// `Unary`: operator chains are collected in a loop, not by recursion. A single
    /// minus directly before a number literal is folded into the literal.
    fn parse_unary(&mut self) -> PResult<Node> {
        let op = match self.tok.kind {
            TokenKind::Bang => UnaryOp::Not,
            TokenKind::Minus => UnaryOp::Neg,
            _ => return self.parse_member(None),
        };
        let mut ops = self.unary_ops()?;
        let folded = match (op, &self.tok.kind) {
            (UnaryOp::Neg, TokenKind::Int(_) | TokenKind::Double(_)) => ops.pop(),
            _ => None,
        };
        let operand = self.parse_member(folded)?;
        self.wrap_unary(op, ops, operand)
    }

    /// Consumes a run of the current (unary operator) token, returning their spans.
    fn unary_ops(&mut self) -> PResult<Vec<Span>> {
        let kind = self.tok.kind.clone();
        let mut ops = Vec::new();
        while self.at(&kind) {
            ops.push(self.advance()?.span);
        }
        Ok(ops)
    }

    /// Applies the operators at `ops` (outermost first) to `operand`.
    fn wrap_unary(&self, op: UnaryOp, mut ops: Vec<Span>, mut operand: Node) -> PResult<Node> {
        while let Some(at) = ops.pop() {
            let height = operand.height + 1;
            let span = at.to(operand.span());
            let kind = ExprKind::Unary { op, operand: Box::new(operand.expr) };
            operand = self.node(kind, span, height, at)?;
        }
        Ok(operand)
    }

    /// A number literal at the current token, negated when `minus` is the span of a
    /// minus sign directly before it.
    fn parse_number(&mut self, minus: Option<Span>) -> PResult<Node> {
        let tok = self.advance()?;
        let span = minus.map_or(tok.span, |m| m.to(tok.span));
        let literal = match tok.kind {
            TokenKind::Double(v) => Literal::Double(if minus.is_some() { -v } else { v }),
            TokenKind::Int(v) => {
                let value =
                    if minus.is_some() { 0i64.checked_sub_unsigned(v) } else { i64::try_from(v).ok() };
                match value {
                    Some(v) => Literal::Int(v),
                    None => {
                        let text = self.src.get(span.range()).unwrap_or("");
                        return Err(err(
                            Code::InvalidLiteral,
                            format!("integer literal `{}` is out of range", excerpt(text)),
                            span,
                            "integers must lie between -9223372036854775808 and \
                             9223372036854775807; write a double such as `1e20` for larger \
                             numbers",
                        ));
                    }
                }
            }
            _ => return Err(self.bug()),
        };
        self.leaf(ExprKind::Literal(literal), span)
    }

    /// `Member`; with `minus`, the primary is the number literal it negates.
    fn parse_member(&mut self, minus: Option<Span>) -> PResult<Node> {
        let primary = match minus {
            Some(minus) => self.parse_number(Some(minus)),
            None => self.parse_primary(),
        }?;
        self.parse_suffixes(primary)
    }

    /// The `.field`, `.method(args)` and `[index]` suffixes of a member expression.
    fn parse_suffixes(&mut self, mut node: Node) -> PResult<Node> {
        loop {
            node = match self.tok.kind {
                TokenKind::Dot => self.parse_field(node),
                TokenKind::LBracket => self.parse_index(node),
                _ => return Ok(node),
            }?;
        }
    }

    /// `operand[index]` at the `[`.
    fn parse_index(&mut self, operand: Node) -> PResult<Node> {
        let open = self.advance()?.span;
        self.reject_optional(
            "optional indexing (`a[?b]`) is not supported",
            "remove the `?`; test presence with `b in a` first",
        )?;
        let index = self.parse_expr()?;
        let close = self.close(&TokenKind::RBracket, open, "`]` to close the index")?;
        self.index(operand, index, open, close)
    }

    fn index(&self, operand: Node, index: Node, open: Span, close: Span) -> PResult<Node> {
        let height = 1 + operand.height.max(index.height);
        let span = operand.span().to(close);
        self.node(
            ExprKind::Index { operand: Box::new(operand.expr), index: Box::new(index.expr) },
            span,
            height,
            open,
        )
    }

    /// Fails with Unsupported `message` if the current token is `?`.
    fn reject_optional(&self, message: &str, help: &str) -> PResult<()> {
        if self.at(&TokenKind::Question) {
            return Err(unsupported(message, self.tok.span, help));
        }
        Ok(())
    }

    /// `operand.name` or `operand.name(args)` at the `.`.
    fn parse_field(&mut self, operand: Node) -> PResult<Node> {
        let dot = self.advance()?.span;
        if let TokenKind::QuotedIdent(name) = self.tok.kind {
            let name_span = self.advance()?.span;
            return self.select(operand, name, name_span);
        }
        let (name, name_span) = self.field_name(&operand, dot)?;
        if self.at(&TokenKind::LParen) {
            let args = self.parse_args()?;
            return self.call(Some(operand), name, name_span, args);
        }
        self.select(operand, name, name_span)
    }

    /// Consumes the name after `operand.` (the `.` at `dot`).
    fn field_name(&mut self, operand: &Node, dot: Span) -> PResult<(&'a str, Span)> {
        let name = match self.tok.kind {
            TokenKind::Ident(name) => name,
            TokenKind::Question => {
                return Err(unsupported(
                    "optional field selection (`a.?b`) is not supported",
                    dot.to(self.tok.span),
                    "remove the `?`; test presence with `has(a.b)` first",
                ))
            }
            TokenKind::Reserved(word) => {
                return Err(err(
                    Code::Syntax,
                    format!("`{word}` is a reserved word and cannot be used as a field name"),
                    self.tok.span,
                    &format!("to read a map entry with that key, write `[\"{word}\"]`"),
                ))
            }
            _ => {
                let help = match operand.expr.kind {
                    ExprKind::Literal(Literal::Int(_)) if operand.span().end == dot.start => {
                        "a double needs digits after the decimal point, as in `1.0`"
                    }
                    _ => "write a field or method name after the `.`",
                };
                return Err(self.unexpected("a field name after `.`", help));
            }
        };
        Ok((name, self.advance()?.span))
    }

    fn select(&self, operand: Node, name: &str, name_span: Span) -> PResult<Node> {
        if self.at(&TokenKind::LBrace) && is_qualified_name(&operand.expr) {
            return Err(self.message_construction(operand.span().to(self.tok.span)));
        }
        let height = operand.height + 1;
        let span = operand.span().to(name_span);
        self.node(
            ExprKind::Select {
                operand: Box::new(operand.expr),
                field: name.to_string(),
                field_span: name_span,
            },
            span,
            height,
            name_span,
        )
    }

    /// A call of `name` (at `name_span`) on `target`, or a global call without one.
    fn call(&self, target: Option<Node>, name: &str, name_span: Span, args: Args) -> PResult<Node> {
        let (start, target_height, target) = match target {
            Some(t) => (t.expr.span, t.height, Some(Box::new(t.expr))),
            None => (name_span, 0, None),
        };
        self.node(
            ExprKind::Call { target, function: name.to_string(), function_span: name_span, args: args.exprs },
            start.to(args.close),
            1 + target_height.max(args.height),
            name_span,
        )
    }

    fn message_construction(&self, span: Span) -> Box<Diagnostic> {
        unsupported(
            "message construction (`Name{field: value}`) is not supported",
            span,
            "build a map literal instead: `{\"field\": value}`",
        )
    }

    /// Consumes the current token if it is `kind`.
    fn eat(&mut self, kind: &TokenKind<'_>) -> PResult<bool> {
        if !self.at(kind) {
            return Ok(false);
        }
        self.advance()?;
        Ok(true)
    }

    /// Fails if a list, map or argument list already holds the most elements allowed.
    fn check_len(&self, len: usize, what: &str) -> PResult<()> {
        if len < self.max_list_len {
            return Ok(());
        }
        Err(err(
            Code::LimitExceeded,
            format!("{what} has more than {} elements", self.max_list_len),
            self.tok.span,
            "split it or raise `Limits::max_list_len`",
        ))
    }

    /// `( [args] )` at the `(`.
    fn parse_args(&mut self) -> PResult<Args> {
        let open = self.advance()?.span;
        let mut exprs = Vec::new();
        let mut height = 0;
        if !self.at(&TokenKind::RParen) {
            loop {
                self.check_len(exprs.len(), "argument list")?;
                let arg = self.parse_expr()?;
                height = height.max(arg.height);
                exprs.push(arg.expr);
                if !self.eat(&TokenKind::Comma)? {
                    break;
                }
            }
        }
        let close = self.close(&TokenKind::RParen, open, "`,` or `)` in the argument list")?;
        Ok(Args { exprs, height, close })
    }

    fn parse_primary(&mut self) -> PResult<Node> {
        match self.tok.kind {
            TokenKind::Ident(name) => self.parse_ident(name),
            TokenKind::LParen => self.parse_parens(),
            TokenKind::LBracket => self.parse_list(),
            TokenKind::LBrace => self.parse_map(),
            _ => self.parse_leaf(),
        }
    }

    /// A name or a global call, at the name.
    fn parse_ident(&mut self, name: &'a str) -> PResult<Node> {
        let span = self.advance()?.span;
        if self.at(&TokenKind::LParen) {
            let args = self.parse_args()?;
            return self.call(None, name, span, args);
        }
        if self.at(&TokenKind::LBrace) {
            return Err(self.message_construction(span.to(self.tok.span)));
        }
        self.leaf(ExprKind::Ident(name.to_string()), span)
    }

    /// `( Expr )` at the `(`.
    fn parse_parens(&mut self) -> PResult<Node> {
        let open = self.advance()?.span;
        let mut inner = self.parse_expr()?;
        let close = self.close(&TokenKind::RParen, open, "`)`")?;
        // The parentheses belong to the node's text, so parents' spans cover them.
        inner.expr.span = open.to(close);
        Ok(inner)
    }

    /// Literals, and the errors for tokens that cannot start an expression.
    fn parse_leaf(&mut self) -> PResult<Node> {
        let span = self.tok.span;
        let literal = match self.tok.kind {
            TokenKind::Int(_) | TokenKind::Double(_) => return self.parse_number(None),
            TokenKind::True => Literal::Bool(true),
            TokenKind::False => Literal::Bool(false),
            TokenKind::Null => Literal::Null,
            TokenKind::Str(ref mut s) => Literal::String(std::mem::take(s)),
            TokenKind::Reserved(word) => {
                return Err(err(
                    Code::Syntax,
                    format!("`{word}` is a reserved word and cannot be used as a name"),
                    span,
                    "choose another name; CEL reserves this word",
                ))
            }
            TokenKind::Dot => {
                self.advance()?;
                let span = match self.tok.kind {
                    TokenKind::Ident(_) => span.to(self.tok.span),
                    _ => span,
                };
                return Err(unsupported(
                    "qualified (leading-dot) identifiers are not supported",
                    span,
                    "remove the leading `.`",
                ));
            }
            TokenKind::Eof => {
                return Err(self
                    .unexpected("an expression", "complete the expression; something is missing at the end"))
            }
            TokenKind::Minus | TokenKind::Bang => {
                return Err(self.unexpected(
                    "an expression",
                    "CEL does not allow `!` and `-` directly after one another; add \
                     parentheses, as in `!(-x)`",
                ))
            }
            TokenKind::In => {
                return Err(
                    self.unexpected("an expression", "`in` is an operator and cannot be used as a name")
                )
            }
            _ => {
                return Err(self
                    .unexpected("an expression", "write a value, a name or a parenthesised expression here"))
            }
        };
        self.advance()?;
        self.leaf(ExprKind::Literal(literal), span)
    }

    fn parse_list(&mut self) -> PResult<Node> {
        let open = self.advance()?.span;
        let mut elems = Vec::new();
        let mut height = 0;
        if !self.eat(&TokenKind::Comma)? {
            while !self.at(&TokenKind::RBracket) {
                self.reject_optional("optional list elements (`[?x]`) are not supported", "remove the `?`")?;
                self.check_len(elems.len(), "list literal")?;
                let elem = self.parse_expr()?;
                height = height.max(elem.height);
                elems.push(elem.expr);
                if !self.eat(&TokenKind::Comma)? {
                    break;
                }
            }
        }
        let close = self.close(&TokenKind::RBracket, open, "`,` or `]` in the list")?;
        self.node(ExprKind::List(elems), open.to(close), 1 + height, open)
    }

    fn parse_map(&mut self) -> PResult<Node> {
        let open = self.advance()?.span;
        let mut entries = Vec::new();
        let mut height = 0;
        if !self.eat(&TokenKind::Comma)? {
            while !self.at(&TokenKind::RBrace) {
                self.reject_optional(
                    "optional map entries (`{?key: value}`) are not supported",
                    "remove the `?`",
                )?;
                self.check_len(entries.len(), "map literal")?;
                let key = self.parse_expr()?;
                self.expect_entry_colon()?;
                let value = self.parse_expr()?;
                height = height.max(key.height).max(value.height);
                entries.push((key.expr, value.expr));
                if !self.eat(&TokenKind::Comma)? {
                    break;
                }
            }
        }
        let close = self.close(&TokenKind::RBrace, open, "`,` or `}` in the map")?;
        self.node(ExprKind::Map(entries), open.to(close), 1 + height, open)
    }

    fn expect_entry_colon(&mut self) -> PResult<()> {
        if !self.eat(&TokenKind::Colon)? {
            return Err(self.unexpected("`:` after the map key", "write map entries as `key: value`"));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn limits() -> Limits {
        Limits::default()
    }

    /// The tree as an s-expression, for compact assertions.
    fn sexp(e: &Expr) -> String {
        match &e.kind {
            ExprKind::Literal(Literal::Null) => "null".into(),
            ExprKind::Literal(Literal::Bool(b)) => b.to_string(),
            ExprKind::Literal(Literal::Int(i)) => i.to_string(),
            ExprKind::Literal(Literal::Double(d)) => format!("{d:?}"),
            ExprKind::Literal(Literal::String(s)) => format!("{s:?}"),
            ExprKind::Ident(name) => name.clone(),
            ExprKind::Select { operand, field, .. } => format!("(. {} {field})", sexp(operand)),
            ExprKind::Index { operand, index } => format!("([] {} {})", sexp(operand), sexp(index)),
            ExprKind::Call { target, function, args, .. } => {
                let mut out = match target {
                    Some(t) => format!("(.{function} {}", sexp(t)),
                    None => format!("({function}"),
                };
                for a in args {
                    out.push(' ');
                    out.push_str(&sexp(a));
                }
                out.push(')');
                out
            }
            ExprKind::Unary { op: UnaryOp::Not, operand } => format!("(! {})", sexp(operand)),
            ExprKind::Unary { op: UnaryOp::Neg, operand } => format!("(- {})", sexp(operand)),
            ExprKind::Binary { op, lhs, rhs } => {
                format!("({} {} {})", op.symbol(), sexp(lhs), sexp(rhs))
            }
            ExprKind::Conditional { cond, then, otherwise } => {
                format!("(? {} {} {})", sexp(cond), sexp(then), sexp(otherwise))
            }
            ExprKind::List(items) => {
                format!("[{}]", items.iter().map(sexp).collect::<Vec<_>>().join(" "))
            }
            ExprKind::Map(entries) => format!(
                "{{{}}}",
                entries
                    .iter()
                    .map(|(k, v)| format!("{}: {}", sexp(k), sexp(v)))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        }
    }

    fn children(e: &Expr) -> Vec<&Expr> {
        match &e.kind {
            ExprKind::Literal(_) | ExprKind::Ident(_) => vec![],
            ExprKind::Select { operand, .. } => vec![operand],
            ExprKind::Index { operand, index } => vec![operand, index],
            ExprKind::Call { target, args, .. } => target.iter().map(|t| &**t).chain(args).collect(),
            ExprKind::Unary { operand, .. } => vec![operand],
            ExprKind::Binary { lhs, rhs, .. } => vec![lhs, rhs],
            ExprKind::Conditional { cond, then, otherwise } => vec![cond, then, otherwise],
            ExprKind::List(items) => items.iter().collect(),
            ExprKind::Map(entries) => entries.iter().flat_map(|(k, v)| [k, v]).collect(),
        }
    }

    /// Tree height; also checks that every span lies in the source, on character
    /// boundaries, and contains its children's spans.
    fn check_tree(e: &Expr, src: &str) -> usize {
        assert!(src.get(e.span.range()).is_some(), "span {:?} not in source", e.span);
        let mut h = 0;
        for c in children(e) {
            assert!(e.span.start <= c.span.start && c.span.end <= e.span.end, "{src:?}");
            h = h.max(check_tree(c, src));
        }
        h + 1
    }

    fn ok(src: &str) -> String {
        let e = parse(src, &limits()).unwrap_or_else(|d| panic!("{src:?}: {d:?}"));
        check_tree(&e, src);
        sexp(&e)
    }

    fn fail(src: &str) -> Diagnostic {
        match parse(src, &limits()) {
            Ok(e) => panic!("{src:?} parsed as {}", sexp(&e)),
            Err(d) => d,
        }
    }

    fn fail_code(src: &str, code: Code, needle: &str) -> Diagnostic {
        let d = fail(src);
        assert_eq!(d.code, code, "{src:?}: {d:?}");
        assert!(d.message.contains(needle), "{src:?}: {:?} lacks {needle:?}", d.message);
        assert!(d.help.is_some(), "{src:?}: no help");
        assert!(d.span.is_some(), "{src:?}: no span");
        assert!(!d.message.contains('\n'));
        d
    }

    fn spanned<'s>(src: &'s str, d: &Diagnostic) -> &'s str {
        &src[d.span.expect("span").range()]
    }

    #[test]
    fn precedence_and_associativity() {
        assert_eq!(ok("1 + 2 * 3"), "(+ 1 (* 2 3))");
        assert_eq!(ok("(1 + 2) * 3"), "(* (+ 1 2) 3)");
        assert_eq!(ok("a - b - c"), "(- (- a b) c)");
        assert_eq!(ok("a / b % c * d"), "(* (% (/ a b) c) d)");
        assert_eq!(ok("a < b == c"), "(== (< a b) c)");
        assert_eq!(ok("a in b != c"), "(!= (in a b) c)");
        assert_eq!(ok("a + 1 >= b * 2"), "(>= (+ a 1) (* b 2))");
        assert_eq!(ok("a || b && c"), "(|| a (&& b c))");
        assert_eq!(ok("a && b || c && d"), "(|| (&& a b) (&& c d))");
        assert_eq!(ok("a ? b : c ? d : e"), "(? a b (? c d e))");
        assert_eq!(ok("a || b ? c + 1 : d"), "(? (|| a b) (+ c 1) d)");
        assert_eq!(ok("!a && -b < c"), "(&& (! a) (< (- b) c))");
        assert_eq!(ok("!!a"), "(! (! a))");
        assert_eq!(ok("--a"), "(- (- a))");
        assert_eq!(ok("-a.b"), "(- (. a b))");
        assert_eq!(ok("a.b[1].c"), "(. ([] (. a b) 1) c)");
        assert_eq!(ok("a &&\n b // comment\n && c"), "(&& (&& a b) c)");
    }

    #[test]
    fn and_or_chains_are_balanced() {
        assert_eq!(ok("a && b && c && d"), "(&& (&& a b) (&& c d))");
        assert_eq!(ok("a || b || c"), "(|| (|| a b) c)");
        assert_eq!(ok("a || b || c || d || e"), "(|| (|| (|| a b) (|| c d)) e)");
        let src = vec!["a"; 1000].join(" && ");
        let e = parse(&src, &limits()).expect("long && chain");
        assert!(check_tree(&e, &src) <= 11);
        assert_eq!(e.span, Span::new(0, src.len()));
        let src = vec!["x > 1"; 1000].join(" || ");
        assert!(parse(&src, &limits()).is_ok());
    }

    #[test]
    fn calls_and_macros() {
        assert_eq!(ok("f()"), "(f)");
        assert_eq!(ok("f(x, 1)"), "(f x 1)");
        assert_eq!(ok("a.f(x)"), "(.f a x)");
        assert_eq!(ok("a.b.f()"), "(.f (. a b))");
        assert_eq!(ok("has(a.b)"), "(has (. a b))");
        assert_eq!(ok("list.all(x, x > 1)"), "(.all list x (> x 1))");
        assert_eq!(ok("m.exists_one(k, v, k == v)"), "(.exists_one m k v (== k v))");
        assert_eq!(ok("a.map(x, x * 2).size()"), "(.size (.map a x (* x 2)))");
        assert_eq!(ok("'abc'.size()"), "(.size \"abc\")");
        assert_eq!(ok("f(x)[0]"), "([] (f x) 0)");
        let e = parse("aa.fn(x)", &limits()).expect("parses");
        match e.kind {
            ExprKind::Call { function_span, .. } => assert_eq!(function_span, Span::new(3, 5)),
            other => panic!("{other:?}"),
        }
        assert_eq!(e.span, Span::new(0, 8));
    }

    #[test]
    fn literals() {
        assert_eq!(ok("0"), "0");
        assert_eq!(ok("123"), "123");
        assert_eq!(ok("0x1F"), "31");
        assert_eq!(ok("0XfF"), "255");
        assert_eq!(ok("-0x10"), "-16");
        assert_eq!(ok("9223372036854775807"), "9223372036854775807");
        assert_eq!(ok("-9223372036854775808"), "-9223372036854775808");
        assert_eq!(ok("-0x8000000000000000"), "-9223372036854775808");
        assert_eq!(ok("-(-9223372036854775808)"), "(- -9223372036854775808)");
        assert_eq!(ok("--9223372036854775807"), "(- -9223372036854775807)");
        assert_eq!(ok("- 5"), "-5");
        assert_eq!(ok("a - 5"), "(- a 5)");
        assert_eq!(ok("a - -5"), "(- a -5)");
        assert_eq!(ok("1.5"), "1.5");
        assert_eq!(ok("1e10"), "10000000000.0");
        assert_eq!(ok(".5"), "0.5");
        assert_eq!(ok("0e+0"), "0.0");
        assert_eq!(ok("2.5E-1"), "0.25");
        assert_eq!(ok("-2.3e+1"), "-23.0");
        assert_eq!(ok("-.5"), "-0.5");
        assert_eq!(ok("true"), "true");
        assert_eq!(ok("false"), "false");
        assert_eq!(ok("null"), "null");
        assert_eq!(ok("[]"), "[]");
        assert_eq!(ok("[1, 'a',]"), "[1 \"a\"]");
        assert_eq!(ok("[,]"), "[]");
        assert_eq!(ok("{}"), "{}");
        assert_eq!(ok("{'a': 1, 2: [x],}"), "{\"a\": 1, 2: [x]}");
        assert_eq!(ok("1.e"), "(. 1 e)");
        let e = parse("-1", &limits()).expect("parses");
        assert_eq!(e.span, Span::new(0, 2));
    }

    #[test]
    fn strings_and_escapes() {
        assert_eq!(ok(r#""abc""#), "\"abc\"");
        assert_eq!(ok(r#"'a"b'"#), "\"a\\\"b\"");
        assert_eq!(ok(r#""""a"b""c""""#), "\"a\\\"b\\\"\\\"c\"");
        assert_eq!(ok("'''x''x'''"), "\"x''x\"");
        assert_eq!(ok("'''line\nbreak'''"), "\"line\\nbreak\"");
        assert_eq!(ok(r#"r"\\""#), "\"\\\\\\\\\"");
        assert_eq!(ok(r"R'\d+\n'"), "\"\\\\d+\\\\n\"");
        assert_eq!(ok(r"r'''a\'''"), "\"a\\\\\"");
        assert_eq!(ok("'héllo ✓'"), "\"héllo ✓\"");
        let decoded = |src: &str| match parse(src, &limits()).expect("parses").kind {
            ExprKind::Literal(Literal::String(s)) => s,
            other => panic!("{other:?}"),
        };
        assert_eq!(decoded(r#""\a\b\f\n\r\t\v\\\'\"\`\?""#), "\u{7}\u{8}\u{c}\n\r\t\u{b}\\'\"`?");
        assert_eq!(decoded(r#""\101\377\000""#), "A\u{ff}\0");
        assert_eq!(decoded(r#""\x41\XfF""#), "A\u{ff}");
        assert_eq!(decoded(r#""\u00e9\U0001F600""#), "é😀");
        assert_eq!(decoded(r#"'''\n'''"#), "\n");
        assert_eq!(decoded(r#""é\u00e9é""#), "ééé");
        assert_eq!(decoded(r#""""""""#), "");
        assert_eq!(decoded(r#""""#), "");
    }

    #[test]
    fn spans() {
        let src = "  a.bcd + f(x) ";
        let e = parse(src, &limits()).expect("parses");
        assert_eq!(e.span, Span::new(2, 14));
        let ExprKind::Binary { lhs, rhs, .. } = &e.kind else { panic!() };
        assert_eq!(&src[lhs.span.range()], "a.bcd");
        assert_eq!(&src[rhs.span.range()], "f(x)");
        let ExprKind::Select { field_span, .. } = &lhs.kind else { panic!() };
        assert_eq!(&src[field_span.range()], "bcd");
        let src = "(a + b) * c";
        let e = parse(src, &limits()).expect("parses");
        assert_eq!(e.span, Span::new(0, src.len()));
        let src = "x ? [1] : {'k': m[0]}";
        assert_eq!(parse(src, &limits()).expect("parses").span, Span::new(0, src.len()));
    }

    #[test]
    fn syntax_errors() {
        let d = fail_code("f(1))", Code::Syntax, "unmatched `)`");
        assert_eq!(d.span, Some(Span::new(4, 5)));
        let d = fail_code("(1 + )", Code::Syntax, "unexpected `)`, expected an expression");
        assert_eq!(d.span, Some(Span::new(5, 6)));
        fail_code("1 +", Code::Syntax, "unexpected end of input, expected an expression");
        let d = fail_code("(1 + 2", Code::Syntax, "unclosed `(`");
        assert_eq!(d.span, Some(Span::new(0, 1)));
        fail_code("[1, 2", Code::Syntax, "unclosed `[`");
        fail_code("{1: 2", Code::Syntax, "unclosed `{`");
        fail_code("[1 2]", Code::Syntax, "expected `,` or `]`");
        fail_code("{1 2}", Code::Syntax, "expected `:`");
        fail_code("f(a,)", Code::Syntax, "unexpected `)`");
        fail_code("a b", Code::Syntax, "unexpected identifier `b`");
        fail_code("a ? b", Code::Syntax, "expected `:`");
        fail_code("a ? b ? c : d : e", Code::Syntax, "expected `:`");
        fail_code("a.", Code::Syntax, "expected a field name");
        let d = fail_code("1.", Code::Syntax, "expected a field name");
        assert!(d.help.as_deref().is_some_and(|h| h.contains("1.0")));
        fail_code("a = 1", Code::Syntax, "`=`");
        fail_code("a & b", Code::Syntax, "`&`");
        fail_code("a | b", Code::Syntax, "`|`");
        fail_code("!-a", Code::Syntax, "unexpected `-`");
        fail_code("a # b", Code::Syntax, "unexpected character `#`");
        fail_code("a é", Code::Syntax, "unexpected character `é`");
        fail_code("", Code::Syntax, "unexpected end of input");
        fail_code("// only a comment", Code::Syntax, "unexpected end of input");
        fail_code("in", Code::Syntax, "unexpected `in`");
        fail_code("a.in", Code::Syntax, "expected a field name");
        let src = "\"abc";
        let d = fail_code(src, Code::Syntax, "unterminated string literal");
        assert_eq!(spanned(src, &d), "\"");
        fail_code("'ab\ncd'", Code::Syntax, "unterminated string literal");
        fail_code("'''abc''", Code::Syntax, "unterminated string literal");
        fail_code("r'abc", Code::Syntax, "unterminated string literal");
        fail_code("'abc\\", Code::Syntax, "unterminated string literal");
    }

    #[test]
    fn reserved_words() {
        for word in crate::expr::lexer::RESERVED {
            let d = fail_code(word, Code::Syntax, "reserved word");
            assert!(d.message.contains(word));
            fail_code(&format!("a.{word}"), Code::Syntax, "reserved word");
            fail_code(&format!("{word}(1)"), Code::Syntax, "reserved word");
        }
        assert_eq!(ok("iffy + form + in_x"), "(+ (+ iffy form) in_x)");
    }

    #[test]
    fn invalid_literals() {
        let src = "9223372036854775808";
        let d = fail_code(src, Code::InvalidLiteral, "out of range");
        assert_eq!(spanned(src, &d), src);
        fail_code("-9223372036854775809", Code::InvalidLiteral, "out of range");
        fail_code("99999999999999999999999", Code::InvalidLiteral, "out of range");
        fail_code("0x8000000000000000", Code::InvalidLiteral, "out of range");
        fail_code("0x1FFFFFFFFFFFFFFFF", Code::InvalidLiteral, "out of range");
        fail_code("0x", Code::InvalidLiteral, "no digits");
        fail_code("1e", Code::InvalidLiteral, "exponent");
        fail_code("1e+", Code::InvalidLiteral, "exponent");
        fail_code("1e999", Code::InvalidLiteral, "out of range");
        let src = r#"'a\qb'"#;
        let d = fail_code(src, Code::InvalidLiteral, "invalid escape sequence `\\q`");
        assert_eq!(spanned(src, &d), "\\q");
        fail_code(r#""\x4""#, Code::InvalidLiteral, "invalid escape sequence");
        fail_code(r#""\u12""#, Code::InvalidLiteral, "invalid escape sequence");
        fail_code(r#""\400""#, Code::InvalidLiteral, "invalid escape sequence");
        fail_code(r#""\08""#, Code::InvalidLiteral, "invalid escape sequence");
        fail_code(r#""\8""#, Code::InvalidLiteral, "invalid escape sequence");
        fail_code(r#""\é""#, Code::InvalidLiteral, "invalid escape sequence");
        fail_code(r#""\uD800""#, Code::InvalidLiteral, "not a valid unicode code point");
        fail_code(r#""\U00110000""#, Code::InvalidLiteral, "not a valid unicode code point");
    }

    #[test]
    fn unsupported_features() {
        let cases = [
            ("1u", "unsigned integer"),
            ("0x1U", "unsigned integer"),
            ("b'abc'", "bytes literals"),
            ("B\"abc\"", "bytes literals"),
            ("br'abc'", "bytes literals"),
            ("Foo{a: 1}", "message construction"),
            ("a.b.Foo{}", "message construction"),
            (".Foo{}", "qualified (leading-dot) identifiers are not supported"),
            (".x", "qualified (leading-dot) identifiers are not supported"),
            ("a.?b", "optional field selection"),
            ("a[?b]", "optional indexing"),
            ("[?a]", "optional list elements"),
            ("[1, ?a]", "optional list elements"),
            ("{?k: v}", "optional map entries"),
        ];
        for (src, needle) in cases {
            fail_code(src, Code::Unsupported, needle);
        }
        let src = "x + b'abc'";
        let d = fail(src);
        assert_eq!(spanned(src, &d), "b'abc'");
    }

    #[test]
    fn backtick_quoted_field_names() {
        let e = parse("m.`content-type`", &Limits::default()).expect("valid");
        match e.kind {
            ExprKind::Select { field, .. } => assert_eq!(field, "content-type"),
            other => panic!("expected a select, got {other:?}"),
        }
        for bad in ["m.``", "m.`a", "m.`a\nb`", "`a`", "m.`a`()"] {
            assert!(parse(bad, &Limits::default()).is_err(), "{bad}");
        }
    }

    #[test]
    fn first_error_in_source_order() {
        // The syntax error comes before the bad literal.
        let d = fail("a b '\\q'");
        assert_eq!(d.code, Code::Syntax);
        let d = fail("'\\q' )");
        assert_eq!(d.code, Code::InvalidLiteral);
    }

    fn roomy() -> Limits {
        Limits { max_expression_len: 20_000_000, ..Limits::default() }
    }

    fn assert_depth_error(result: Result<Expr, Diagnostic>) {
        let d = result.expect_err("too deep");
        assert_eq!(d.code, Code::LimitExceeded, "{d:?}");
        assert_eq!(d.message, "expression nests deeper than 128 levels");
        assert_eq!(d.help.as_deref(), Some("split the expression or raise `Limits::max_depth`"));
        assert!(d.span.is_some());
    }

    #[test]
    fn deep_parentheses_are_rejected() {
        let n = 100_000;
        let src = format!("{}1{}", "(".repeat(n), ")".repeat(n));
        assert_depth_error(parse(&src, &roomy()));
        let d = parse(&src, &limits()).expect_err("too long");
        assert_eq!(d.code, Code::LimitExceeded);
        // Within the limit is fine.
        let src = format!("{}1{}", "(".repeat(100), ")".repeat(100));
        assert_eq!(ok(&src), "1");
    }

    #[test]
    fn deep_trees_are_rejected() {
        let src = vec!["1"; 100_000].join(" + ");
        assert_depth_error(parse(&src, &roomy()));
        assert_eq!(parse(&src, &limits()).expect_err("too long").code, Code::LimitExceeded);
        for src in [
            format!("{}x", "!".repeat(100_000)),
            format!("{}x", "-".repeat(100_000)),
            format!("x{}", ".y".repeat(100_000)),
            format!("x{}", "[0]".repeat(100_000)),
            format!("x{}", ".f()".repeat(100_000)),
            format!("{}1{}", "[".repeat(100_000), "]".repeat(100_000)),
            format!("{}1{}", "f(".repeat(100_000), ")".repeat(100_000)),
            format!("{}1{}", "{1:".repeat(100_000), "}".repeat(100_000)),
            format!("{}1{}", "x[".repeat(100_000), "]".repeat(100_000)),
            format!("{}1", "a ? 1 : ".repeat(100_000)),
            format!("{}1", "a == ".repeat(100_000)),
            format!("{}1", "1 * (".repeat(100_000)),
        ] {
            assert_depth_error(parse(&src, &roomy()));
        }
        // Just within the limits.
        assert!(parse(&vec!["1"; 128].join(" + "), &limits()).is_ok());
        assert!(parse(&vec!["1"; 129].join(" + "), &limits()).is_err());
        let small = Limits { max_depth: 3, ..Limits::default() };
        assert!(parse("a.b.c", &small).is_ok());
        assert!(parse("a.b.c.d", &small).is_err());
        assert!(parse("((a))", &small).is_ok());
        assert!(parse("(((a)))", &small).is_err());
    }

    #[test]
    fn long_chains_and_literals() {
        let n = 10_000;
        assert!(parse(&vec!["a"; n].join(" && "), &limits()).is_ok());
        let d = parse(&vec!["a"; n + 1].join(" || "), &limits()).expect_err("too many");
        assert_eq!(d.code, Code::LimitExceeded);
        assert!(d.message.contains("`||` chain has more than 10000 operands"), "{d:?}");
        assert!(parse(&format!("[{}]", vec!["1"; n].join(",")), &limits()).is_ok());
        let d = parse(&format!("[{}]", vec!["1"; n + 1].join(",")), &limits()).expect_err("long");
        assert_eq!(d.code, Code::LimitExceeded);
        assert!(d.message.contains("list literal has more than 10000 elements"));
        let d = parse(&format!("{{{}}}", vec!["1:1"; n + 1].join(",")), &roomy()).expect_err("");
        assert_eq!(d.code, Code::LimitExceeded);
        assert!(d.message.contains("map literal has more than 10000 elements"));
        let d = parse(&format!("f({})", vec!["1"; n + 1].join(",")), &roomy()).expect_err("");
        assert_eq!(d.code, Code::LimitExceeded);
    }

    #[test]
    fn huge_string_is_rejected_before_lexing() {
        let src = format!("'{}'", "a".repeat(10 << 20));
        let start = std::time::Instant::now();
        let d = parse(&src, &limits()).expect_err("too long");
        assert!(start.elapsed() < std::time::Duration::from_millis(100));
        assert_eq!(d.code, Code::LimitExceeded);
        assert!(d.message.contains("longer than the limit of 100000 bytes"));
        assert_eq!(d.help.as_deref(), Some("shorten the expression or raise `Limits::max_expression_len`"));
    }

    #[test]
    fn worst_case_nesting_fits_a_small_stack() {
        // Every level passes through every kind of recursive construct.
        let unit = "a || b ? c : d && e == f + g * x.f(y[-(";
        for units in [20, 42, 127] {
            let src = format!("{}1{}", unit.repeat(units), ")])".repeat(units));
            let handle = std::thread::Builder::new()
                .stack_size(1 << 20)
                .spawn(move || parse(&src, &Limits::default()).map(|_| ()).map_err(|d| d.code))
                .expect("spawn");
            let result = handle.join().expect("no stack overflow");
            assert_eq!(result, Err(Code::LimitExceeded));
        }
    }

    const TOKENS: &[&str] = &[
        "a",
        "b",
        "has",
        "f",
        "size",
        "1",
        "0x1F",
        "-",
        "9223372036854775808",
        "1.5",
        "1e3",
        ".5",
        "'s'",
        "\"d\"",
        "'''t'''",
        "r'x'",
        "b'x'",
        "1u",
        "'\\x41'",
        "'\\u",
        "'",
        "\"",
        "true",
        "false",
        "null",
        "in",
        "if",
        "(",
        ")",
        "[",
        "]",
        "{",
        "}",
        ".",
        ",",
        ":",
        "?",
        "+",
        "*",
        "/",
        "%",
        "!",
        "<",
        "<=",
        ">",
        ">=",
        "==",
        "!=",
        "&&",
        "||",
        "=",
        " ",
        "\n",
        "//c\n",
        ".?",
        "[?",
        "é",
        "\\",
        "`",
    ];

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        #[test]
        fn arbitrary_text_never_panics(src in "\\PC{0,64}") {
            if let Ok(e) = parse(&src, &limits()) {
                check_tree(&e, &src);
            }
        }

        #[test]
        fn token_soup_never_panics(
            tokens in proptest::collection::vec(proptest::sample::select(TOKENS), 0..48),
            depth in 1usize..12,
        ) {
            let src = tokens.concat();
            let small = Limits { max_depth: depth, max_list_len: 4, ..Limits::default() };
            for limits in [limits(), small] {
                match parse(&src, &limits) {
                    Ok(e) => prop_assert!(check_tree(&e, &src) <= limits.max_depth),
                    Err(d) => {
                        prop_assert!(!d.message.contains('\n'));
                        if let Some(span) = d.span {
                            prop_assert!(src.get(span.range()).is_some(), "{:?} {:?}", src, d);
                        }
                    }
                }
            }
        }

        #[test]
        fn printed_numbers_round_trip(n in any::<i64>()) {
            prop_assert_eq!(ok(&n.to_string()), n.to_string());
        }
    }
}
