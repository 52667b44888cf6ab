//! Tokens of CEL source text.
//!
//! The [`Lexer`] produces [`Token`]s on demand, one at a time, so that the parser reports
//! the first problem in source order whether it is lexical or grammatical. Literals are
//! decoded here: integers to their magnitude (the parser applies the sign and the range
//! check), doubles to `f64`, strings with their escapes resolved. Features of full CEL
//! that nurture does not support (unsigned and bytes literals) are
//! reported as [`Code::Unsupported`].
//!
//! The lexer never panics: it works on bytes, only slices the source at ASCII
//! positions (which are always character boundaries), and runs in linear time.

use crate::diagnostic::{Code, Diagnostic, Span};

/// The words CEL reserves for embedding languages; they cannot be used as names.
pub(crate) const RESERVED: &[&str] = &[
    "as",
    "break",
    "const",
    "continue",
    "else",
    "for",
    "function",
    "if",
    "import",
    "let",
    "loop",
    "package",
    "namespace",
    "return",
    "var",
    "void",
    "while",
];

/// What a token is.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum TokenKind<'a> {
    /// A name that is not a keyword or reserved word.
    Ident(&'a str),
    /// A backtick-quoted field name, without the backticks.
    QuotedIdent(&'a str),
    /// A reserved word (see [`RESERVED`]); never valid in an expression.
    Reserved(&'a str),
    /// An integer literal's magnitude, decimal or hexadecimal; the sign and the `i64`
    /// range check are applied by the parser.
    Int(u64),
    /// A double literal (always finite and non-negative).
    Double(f64),
    /// A string literal with its escapes decoded.
    Str(String),
    /// `true`
    True,
    /// `false`
    False,
    /// `null`
    Null,
    /// `in`
    In,
    /// `(`
    LParen,
    /// `)`
    RParen,
    /// `[`
    LBracket,
    /// `]`
    RBracket,
    /// `{`
    LBrace,
    /// `}`
    RBrace,
    /// `.`
    Dot,
    /// `,`
    Comma,
    /// `:`
    Colon,
    /// `?`
    Question,
    /// `+`
    Plus,
    /// `-`
    Minus,
    /// `*`
    Star,
    /// `/`
    Slash,
    /// `%`
    Percent,
    /// `!`
    Bang,
    /// `<`
    Lt,
    /// `<=`
    Le,
    /// `>`
    Gt,
    /// `>=`
    Ge,
    /// `==`
    EqEq,
    /// `!=`
    Ne,
    /// `&&`
    AndAnd,
    /// `||`
    OrOr,
    /// The end of the source.
    Eof,
}

/// A token and the bytes of source it covers.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Token<'a> {
    /// What the token is.
    pub(crate) kind: TokenKind<'a>,
    /// Where it is.
    pub(crate) span: Span,
}

/// Splits CEL source text into tokens, skipping whitespace and `//` comments.
pub(crate) struct Lexer<'a> {
    src: &'a str,
    pos: usize,
}

/// The longest excerpt of source quoted in a message.
const QUOTE_MAX: usize = 32;

/// Quotes a piece of source for a message: shortened if long, control characters
/// escaped so the message stays on one line.
pub(crate) fn excerpt(text: &str) -> String {
    let mut chars = text.chars();
    let mut head = String::new();
    for c in chars.by_ref().take(QUOTE_MAX) {
        if c.is_control() {
            head.extend(c.escape_debug());
        } else {
            head.push(c);
        }
    }
    if chars.next().is_some() {
        format!("{head}...")
    } else {
        head
    }
}

fn err(code: Code, message: String, span: Span, help: &str) -> Box<Diagnostic> {
    Box::new(Diagnostic::new(code, message).with_span(span).with_help(help))
}

fn is_ident_start(b: u8) -> bool {
    b.is_ascii_alphabetic() || b == b'_'
}

fn is_ident_continue(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_'
}

fn is_quote(b: Option<&u8>) -> bool {
    matches!(b, Some(b'"' | b'\''))
}

impl<'a> Lexer<'a> {
    /// A lexer at the start of `src`.
    pub(crate) fn new(src: &'a str) -> Lexer<'a> {
        Lexer { src, pos: 0 }
    }

    fn byte(&self, at: usize) -> Option<u8> {
        self.src.as_bytes().get(at).copied()
    }

    /// The source text in `start..end`, or `""` if that is not a valid slice.
    fn text(&self, start: usize, end: usize) -> &'a str {
        self.src.get(start..end).unwrap_or("")
    }

    fn skip_trivia(&mut self) {
        loop {
            match self.byte(self.pos) {
                Some(b' ' | b'\t' | b'\n' | b'\r' | 0x0C) => self.pos += 1,
                Some(b'/') if self.byte(self.pos + 1) == Some(b'/') => {
                    self.pos += 2;
                    while let Some(b) = self.byte(self.pos) {
                        if b == b'\n' || b == b'\r' {
                            break;
                        }
                        self.pos += 1;
                    }
                }
                _ => return,
            }
        }
    }

    /// The next token; [`TokenKind::Eof`] at the end (repeatedly). A lexical error
    /// (malformed literal, stray character, unsupported literal form) is returned as a
    /// diagnostic pointing at the offending text.
    pub(crate) fn next_token(&mut self) -> Result<Token<'a>, Box<Diagnostic>> {
        self.skip_trivia();
        let start = self.pos;
        let Some(b) = self.byte(start) else {
            return Ok(Token { kind: TokenKind::Eof, span: Span::new(start, start) });
        };
        let next = self.byte(start + 1);
        let (kind, len) = match b {
            b'(' => (TokenKind::LParen, 1),
            b')' => (TokenKind::RParen, 1),
            b'[' => (TokenKind::LBracket, 1),
            b']' => (TokenKind::RBracket, 1),
            b'{' => (TokenKind::LBrace, 1),
            b'}' => (TokenKind::RBrace, 1),
            b',' => (TokenKind::Comma, 1),
            b':' => (TokenKind::Colon, 1),
            b'?' => (TokenKind::Question, 1),
            b'+' => (TokenKind::Plus, 1),
            b'-' => (TokenKind::Minus, 1),
            b'*' => (TokenKind::Star, 1),
            b'/' => (TokenKind::Slash, 1),
            b'%' => (TokenKind::Percent, 1),
            b'.' if next.is_some_and(|n| n.is_ascii_digit()) => return self.number(start),
            b'.' => (TokenKind::Dot, 1),
            b'0'..=b'9' => return self.number(start),
            b'!' if next == Some(b'=') => (TokenKind::Ne, 2),
            b'!' => (TokenKind::Bang, 1),
            b'<' if next == Some(b'=') => (TokenKind::Le, 2),
            b'<' => (TokenKind::Lt, 1),
            b'>' if next == Some(b'=') => (TokenKind::Ge, 2),
            b'>' => (TokenKind::Gt, 1),
            b'=' if next == Some(b'=') => (TokenKind::EqEq, 2),
            b'=' => {
                return Err(err(
                    Code::Syntax,
                    "unexpected `=`, expected `==`".into(),
                    Span::new(start, start + 1),
                    "CEL has no assignment; write `==` to compare values",
                ))
            }
            b'&' if next == Some(b'&') => (TokenKind::AndAnd, 2),
            b'&' => {
                return Err(err(
                    Code::Syntax,
                    "unexpected `&`, expected `&&`".into(),
                    Span::new(start, start + 1),
                    "write `&&` for logical and",
                ))
            }
            b'|' if next == Some(b'|') => (TokenKind::OrOr, 2),
            b'|' => {
                return Err(err(
                    Code::Syntax,
                    "unexpected `|`, expected `||`".into(),
                    Span::new(start, start + 1),
                    "write `||` for logical or",
                ))
            }
            b'"' | b'\'' => return self.string(start, start, false),
            b'r' | b'R' if is_quote(self.src.as_bytes().get(start + 1)) => {
                return self.string(start, start + 1, true)
            }
            b'b' | b'B'
                if is_quote(self.src.as_bytes().get(start + 1))
                    || (matches!(next, Some(b'r' | b'R'))
                        && is_quote(self.src.as_bytes().get(start + 2))) =>
            {
                return self.bytes_literal(start)
            }
            b if is_ident_start(b) => return Ok(self.word(start)),
            b'`' => return self.quoted_ident(start),
            _ => return Err(self.stray_char(start)),
        };
        self.pos = start + len;
        Ok(Token { kind, span: Span::new(start, start + len) })
    }

    /// A backtick-quoted field name (CEL allows letters, digits, `_`, `.`, `-`, `/` and
    /// spaces inside), valid only after `.`.
    fn quoted_ident(&mut self, start: usize) -> Result<Token<'a>, Box<Diagnostic>> {
        let rest = self.src.as_bytes().get(start + 1..).unwrap_or_default();
        let len = rest.iter().position(|&b| b == b'`');
        let valid = |b: &u8| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-' | b'/' | b' ');
        match len {
            Some(n) if n > 0 && rest[..n].iter().all(valid) => {
                let name = &self.src[start + 1..start + 1 + n];
                self.pos = start + n + 2;
                Ok(Token { kind: TokenKind::QuotedIdent(name), span: Span::new(start, start + n + 2) })
            }
            _ => Err(err(
                Code::Syntax,
                "malformed backtick-quoted name".into(),
                Span::new(start, start + 1),
                "quoted names hold letters, digits, `_`, `.`, `-`, `/` and spaces, between backticks",
            )),
        }
    }

    fn stray_char(&self, start: usize) -> Box<Diagnostic> {
        let ch = self.src.get(start..).and_then(|s| s.chars().next()).unwrap_or('\u{FFFD}');
        let help = match ch {
            ';' => "CEL expressions are single expressions; remove the `;`",
            '\\' => "backslashes are only allowed inside string literals",
            '#' => "CEL comments start with `//`",
            '\'' | '"' => "close the string literal",
            c if c.is_whitespace() => "only spaces, tabs, form feeds and line breaks may separate tokens",
            _ => "remove the character, or put it inside a string literal",
        };
        err(
            Code::Syntax,
            format!("unexpected character `{}`", ch.escape_debug()),
            Span::new(start, start + ch.len_utf8()),
            help,
        )
    }

    fn word(&mut self, start: usize) -> Token<'a> {
        let mut end = start;
        while self.byte(end).is_some_and(is_ident_continue) {
            end += 1;
        }
        self.pos = end;
        let text = self.text(start, end);
        let kind = match text {
            "true" => TokenKind::True,
            "false" => TokenKind::False,
            "null" => TokenKind::Null,
            "in" => TokenKind::In,
            w if RESERVED.contains(&w) => TokenKind::Reserved(w),
            w => TokenKind::Ident(w),
        };
        Token { kind, span: Span::new(start, end) }
    }

    fn digits_end(&self, mut at: usize, pred: fn(&u8) -> bool) -> usize {
        while self.src.as_bytes().get(at).is_some_and(pred) {
            at += 1;
        }
        at
    }

    fn number(&mut self, start: usize) -> Result<Token<'a>, Box<Diagnostic>> {
        let out_of_range = |this: &Self, end: usize| {
            err(
                Code::InvalidLiteral,
                format!("integer literal `{}` is out of range", excerpt(this.text(start, end))),
                Span::new(start, end),
                "integers must lie between -9223372036854775808 and 9223372036854775807; \
                 write a double such as `1e20` for larger numbers",
            )
        };
        if self.byte(start) == Some(b'0') && matches!(self.byte(start + 1), Some(b'x' | b'X')) {
            let digits = start + 2;
            let end = self.digits_end(digits, u8::is_ascii_hexdigit);
            if end == digits {
                return Err(err(
                    Code::InvalidLiteral,
                    "hexadecimal literal has no digits".into(),
                    Span::new(start, end),
                    "write hexadecimal digits after `0x`, as in `0x1F`",
                ));
            }
            self.reject_unsigned(start, end)?;
            let mut value: u64 = 0;
            for &d in self.src.as_bytes().get(digits..end).unwrap_or_default() {
                let digit = u64::from(char::from(d).to_digit(16).unwrap_or(0));
                value = match value.checked_mul(16).and_then(|v| v.checked_add(digit)) {
                    Some(v) => v,
                    None => return Err(out_of_range(self, end)),
                };
            }
            self.pos = end;
            return Ok(Token { kind: TokenKind::Int(value), span: Span::new(start, end) });
        }
        let int_end = self.digits_end(start, u8::is_ascii_digit);
        let mut end = int_end;
        let mut is_double = false;
        if self.byte(end) == Some(b'.') && self.byte(end + 1).is_some_and(|b| b.is_ascii_digit()) {
            end = self.digits_end(end + 1, u8::is_ascii_digit);
            is_double = true;
        }
        if matches!(self.byte(end), Some(b'e' | b'E')) {
            let mut exp = end + 1;
            if matches!(self.byte(exp), Some(b'+' | b'-')) {
                exp += 1;
            }
            let exp_end = self.digits_end(exp, u8::is_ascii_digit);
            if exp_end == exp {
                return Err(err(
                    Code::InvalidLiteral,
                    "exponent of a double literal has no digits".into(),
                    Span::new(start, exp),
                    "write digits after the `e`, as in `1e10` or `2.5e-3`",
                ));
            }
            end = exp_end;
            is_double = true;
        }
        self.pos = end;
        let text = self.text(start, end);
        if is_double {
            return match text.parse::<f64>() {
                Ok(v) if v.is_finite() => {
                    Ok(Token { kind: TokenKind::Double(v), span: Span::new(start, end) })
                }
                _ => Err(err(
                    Code::InvalidLiteral,
                    format!("double literal `{}` is out of range", excerpt(text)),
                    Span::new(start, end),
                    "doubles must be finite; use a smaller exponent",
                )),
            };
        }
        self.reject_unsigned(start, end)?;
        let mut value: u64 = 0;
        for &d in text.as_bytes() {
            value = match value.checked_mul(10).and_then(|v| v.checked_add(u64::from(d - b'0'))) {
                Some(v) => v,
                None => return Err(out_of_range(self, end)),
            };
        }
        Ok(Token { kind: TokenKind::Int(value), span: Span::new(start, end) })
    }

    fn reject_unsigned(&self, start: usize, end: usize) -> Result<(), Box<Diagnostic>> {
        if matches!(self.byte(end), Some(b'u' | b'U')) {
            return Err(err(
                Code::Unsupported,
                "unsigned integer literals are not supported".into(),
                Span::new(start, end + 1),
                "remove the `u` suffix; nurture has signed 64-bit integers only",
            ));
        }
        Ok(())
    }

    fn bytes_literal(&mut self, start: usize) -> Result<Token<'a>, Box<Diagnostic>> {
        let raw = matches!(self.byte(start + 1), Some(b'r' | b'R'));
        let quote = if raw { start + 2 } else { start + 1 };
        let span = match self.string(start, quote, raw) {
            Ok(tok) => tok.span,
            Err(_) => Span::new(start, quote + 1),
        };
        Err(err(
            Code::Unsupported,
            "bytes literals are not supported".into(),
            span,
            "remove the `b` prefix to write a string literal",
        ))
    }

    /// Lexes a string literal whose (optional) prefix starts at `start` and whose
    /// opening quote is at `quote`.
    fn string(&mut self, start: usize, quote: usize, raw: bool) -> Result<Token<'a>, Box<Diagnostic>> {
        let bytes = self.src.as_bytes();
        let q = bytes.get(quote).copied().unwrap_or(b'"');
        let triple = bytes.get(quote + 1) == Some(&q) && bytes.get(quote + 2) == Some(&q);
        let open_len = if triple { 3 } else { 1 };
        let open_span = Span::new(start, quote + open_len);
        let delim = if triple {
            if q == b'"' {
                "\"\"\""
            } else {
                "'''"
            }
        } else if q == b'"' {
            "\""
        } else {
            "'"
        };
        let mut out = String::new();
        let mut i = quote + open_len;
        let mut run = i;
        loop {
            match bytes.get(i).copied() {
                None => {
                    return Err(err(
                        Code::Syntax,
                        "unterminated string literal".into(),
                        open_span,
                        &format!("close the string with `{delim}`"),
                    ))
                }
                Some(b)
                    if b == q
                        && (!triple || (bytes.get(i + 1) == Some(&q) && bytes.get(i + 2) == Some(&q))) =>
                {
                    out.push_str(self.text(run, i));
                    let end = i + open_len;
                    self.pos = end;
                    return Ok(Token { kind: TokenKind::Str(out), span: Span::new(start, end) });
                }
                Some(b'\n' | b'\r') if !triple => {
                    return Err(err(
                        Code::Syntax,
                        "unterminated string literal".into(),
                        open_span,
                        &format!(
                            "close the string with `{delim}` before the end of the line, or use \
                             a triple-quoted string (`'''...'''`) for text with line breaks"
                        ),
                    ))
                }
                Some(b'\\') if !raw => {
                    out.push_str(self.text(run, i));
                    let (ch, len) = self.escape(i, open_span, delim)?;
                    out.push(ch);
                    i += len;
                    run = i;
                }
                Some(_) => i += 1,
            }
        }
    }

    /// Decodes the escape sequence whose backslash is at `at`: the character and the
    /// length of the sequence in bytes.
    fn escape(&self, at: usize, open_span: Span, delim: &str) -> Result<(char, usize), Box<Diagnostic>> {
        let Some(kind) = self.src.get(at + 1..).and_then(|s| s.chars().next()) else {
            return Err(err(
                Code::Syntax,
                "unterminated string literal".into(),
                open_span,
                &format!("close the string with `{delim}`"),
            ));
        };
        let simple = match kind {
            'a' => Some('\u{07}'),
            'b' => Some('\u{08}'),
            'f' => Some('\u{0C}'),
            'n' => Some('\n'),
            'r' => Some('\r'),
            't' => Some('\t'),
            'v' => Some('\u{0B}'),
            '\\' | '\'' | '"' | '`' | '?' => Some(kind),
            _ => None,
        };
        if let Some(ch) = simple {
            return Ok((ch, 2));
        }
        let (digits, radix, len) = match kind {
            'x' | 'X' => (2, 16, 4),
            'u' => (4, 16, 6),
            'U' => (8, 16, 10),
            '0'..='3' => (3, 8, 4),
            _ => {
                return Err(err(
                    Code::InvalidLiteral,
                    format!("invalid escape sequence `\\{}`", kind.escape_debug()),
                    Span::new(at, at + 1 + kind.len_utf8()),
                    "valid escapes are \\a \\b \\f \\n \\r \\t \\v \\\\ \\' \\\" \\` \\?, \\ooo, \
                     \\xHH, \\uHHHH and \\UHHHHHHHH; write `\\\\` for a backslash or use a raw \
                     string (`r\"...\"`)",
                ))
            }
        };
        let first = if radix == 8 { at + 1 } else { at + 2 };
        let end = first + digits;
        let text = self.src.as_bytes().get(first..end);
        let valid = text.is_some_and(|t| t.iter().all(|&d| char::from(d).is_digit(radix)));
        let shown_end = self.digits_end(at + 2, u8::is_ascii_alphanumeric).min(end).max(at + 2);
        let shown = self.text(at, shown_end);
        if !valid {
            let what = if radix == 8 {
                "an octal escape needs three octal digits from `\\000` to `\\377`".to_string()
            } else {
                format!("a `\\{kind}` escape needs {digits} hexadecimal digits")
            };
            return Err(err(
                Code::InvalidLiteral,
                format!("invalid escape sequence `{}`", excerpt(shown)),
                Span::new(at, shown_end),
                &what,
            ));
        }
        let mut value: u32 = 0;
        for &d in text.unwrap_or_default() {
            value = value * radix + char::from(d).to_digit(radix).unwrap_or(0);
        }
        match char::from_u32(value) {
            Some(ch) => Ok((ch, len)),
            None => Err(err(
                Code::InvalidLiteral,
                format!("escape sequence `{}` is not a valid unicode code point", excerpt(shown)),
                Span::new(at, end),
                "surrogates (U+D800 to U+DFFF) and values above U+10FFFF are not characters; \
                 write characters outside the basic plane as `\\UHHHHHHHH`",
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kinds(src: &str) -> Vec<TokenKind<'_>> {
        let mut lexer = Lexer::new(src);
        let mut out = Vec::new();
        loop {
            let tok = lexer.next_token().expect("lexes");
            if tok.kind == TokenKind::Eof {
                return out;
            }
            out.push(tok.kind);
        }
    }

    #[test]
    fn tokens() {
        use TokenKind::*;
        assert_eq!(
            kinds("a.b(1, 2.5) // c\n<= >= != == && || !x in [] {} ? : - + * / % .5 0x1F"),
            vec![
                Ident("a"),
                Dot,
                Ident("b"),
                LParen,
                Int(1),
                Comma,
                Double(2.5),
                RParen,
                Le,
                Ge,
                Ne,
                EqEq,
                AndAnd,
                OrOr,
                Bang,
                Ident("x"),
                In,
                LBracket,
                RBracket,
                LBrace,
                RBrace,
                Question,
                Colon,
                Minus,
                Plus,
                Star,
                Slash,
                Percent,
                Double(0.5),
                Int(31),
            ]
        );
        assert_eq!(kinds("1.e"), vec![Int(1), Dot, Ident("e")]);
        assert_eq!(kinds("if while"), vec![Reserved("if"), Reserved("while")]);
        assert_eq!(kinds("r'\\n' R\"\"\"a\"b\"\"\""), vec![Str("\\n".into()), Str("a\"b".into())]);
    }
}
