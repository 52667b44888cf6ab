//! Structured filters: the all / any / not trees that UIs produce, translated to CEL so
//! that they compile through the same checker and into the same IR as written
//! conditions.
//!
//! Every operator has a fixed meaning on a missing field (see [`FilterOp`]); the
//! translation makes it explicit with `has()`.

use crate::def::{FilterDef, FilterOp, FilterTest};
use crate::diagnostic::{did_you_mean, Code, Diagnostic};
use crate::expr::check::Names;
use crate::limits::Limits;
use crate::value::Type;

/// Translates a filter tree to CEL source, or records why it cannot.
pub(crate) fn to_cel(
    filter: &FilterDef,
    names: &Names<'_>,
    limits: &Limits,
    path: &str,
    diagnostics: &mut Vec<Diagnostic>,
) -> Option<String> {
    translate(filter, names, limits, path, 0, diagnostics)
}

fn translate(
    filter: &FilterDef,
    names: &Names<'_>,
    limits: &Limits,
    path: &str,
    depth: usize,
    diagnostics: &mut Vec<Diagnostic>,
) -> Option<String> {
    if depth > limits.max_filter_depth {
        diagnostics.push(
            Diagnostic::new(
                Code::LimitExceeded,
                format!("filter nests deeper than {} levels", limits.max_filter_depth),
            )
            .with_path(path)
            .with_help("flatten the filter or raise `Limits::max_filter_depth`"),
        );
        return None;
    }
    let group =
        |children: &[FilterDef], key: &str, joiner: &str, empty: &str, diagnostics: &mut Vec<Diagnostic>| {
            let mut parts = Vec::with_capacity(children.len());
            let mut ok = true;
            for (i, child) in children.iter().enumerate() {
                let child_path = format!("{path}/{key}/{i}");
                match translate(child, names, limits, &child_path, depth + 1, diagnostics) {
                    Some(cel) => parts.push(format!("({cel})")),
                    None => ok = false,
                }
            }
            if !ok {
                return None;
            }
            Some(if parts.is_empty() { empty.to_string() } else { parts.join(joiner) })
        };
    match filter {
        FilterDef::All { all } => group(all, "all", " && ", "true", diagnostics),
        FilterDef::Any { any } => group(any, "any", " || ", "false", diagnostics),
        FilterDef::Not { not } => {
            translate(not, names, limits, &format!("{path}/not"), depth + 1, diagnostics)
                .map(|cel| format!("!({cel})"))
        }
        FilterDef::Test(test) => test_to_cel(test, names, path, diagnostics),
    }
}

/// The type of a filter's field, or a diagnostic.
fn field_type(field: &str, names: &Names<'_>, path: &str) -> Result<Type, Box<Diagnostic>> {
    // The engine's `tags`, `lists`, `stage`, `owner` (and `bands`), where the
    // condition may read them.
    if let Some(slot) = names.vars.and_then(|vars| vars.slot(field)) {
        return Ok(names.vars.map_or(Type::Dyn, |vars| vars.ty(slot).clone()));
    }
    let (root, name) = field.split_once('.').unwrap_or((field, ""));
    let fields = match root {
        "contact" => names.contact,
        "event" => names.event,
        "score" => names.scores,
        "counter" => names.counters,
        _ => None,
    };
    let Some(fields) = fields else {
        return Err(Box::new(
            Diagnostic::new(Code::InvalidFilter, format!("`{field}` is not a field reference"))
                .with_path(format!("{path}/field"))
                .with_help(
                    "write `contact.NAME`, `event.NAME`, `score.NAME` or `counter.NAME`; rules and \
                     segments also read `tags`, `lists`, `stage` and `owner`",
                )
                .with_did_you_mean(
                    did_you_mean(root, ["contact", "event", "score", "counter"])
                        .map(|r| format!("{r}.{name}")),
                ),
        ));
    };
    if let Some(slot) = fields.slot(name) {
        return Ok(fields.ty(slot).clone());
    }
    if root == "event" {
        match name {
            "timestamp" => return Ok(Type::Timestamp),
            "type" | "id" => return Ok(Type::String),
            _ => {}
        }
    }
    Err(Box::new(
        Diagnostic::new(Code::UnknownField, format!("no field `{name}` on `{root}`"))
            .with_path(format!("{path}/field"))
            .with_did_you_mean(fields.suggest(name).map(|n| format!("{root}.{n}")))
            .with_help("declare the field in the schema, or check the spelling"),
    ))
}

/// The widest `within_last` window, in days (a century).
const MAX_WINDOW_DAYS: i64 = 36_500;

/// "a string", "an int", "an object".
fn with_article(noun: &str) -> String {
    let article = if noun.starts_with(['a', 'e', 'i', 'o', 'u']) { "an" } else { "a" };
    format!("{article} {noun}")
}

/// A CEL string literal for any text.
pub(crate) fn string_literal(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c.is_control() => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// A CEL literal for a JSON value, shaped by the field's type.
fn literal(value: &serde_json::Value, ty: &Type) -> Result<String, String> {
    use serde_json::Value as J;
    match (value, ty) {
        (J::String(s), Type::Timestamp) => Ok(format!("timestamp({})", string_literal(s))),
        (J::String(s), Type::Duration) => Ok(format!("duration({})", string_literal(s))),
        (J::String(s), Type::String | Type::Dyn) => Ok(string_literal(s)),
        (J::Bool(b), Type::Bool | Type::Dyn) => Ok(b.to_string()),
        (J::Number(n), Type::Int | Type::Double | Type::Dyn) => {
            if let Some(i) = n.as_i64() {
                Ok(if *ty == Type::Double { format!("{i}.0") } else { i.to_string() })
            } else if let Some(f) = n.as_f64().filter(|f| f.is_finite()) {
                Ok(format!("{f:?}"))
            } else {
                Err(format!("the number {n} is out of range"))
            }
        }
        (J::Null, _) => Ok("null".to_string()),
        (J::Array(items), Type::List(elem)) => {
            let parts: Result<Vec<String>, String> = items.iter().map(|v| literal(v, elem)).collect();
            Ok(format!("[{}]", parts?.join(", ")))
        }
        (other, ty) => Err(format!(
            "{} cannot be compared with {} field",
            with_article(json_kind(other)),
            with_article(&ty.to_string())
        )),
    }
}

fn json_kind(v: &serde_json::Value) -> &'static str {
    match v {
        serde_json::Value::Null => "null",
        serde_json::Value::Bool(_) => "bool",
        serde_json::Value::Number(_) => "number",
        serde_json::Value::String(_) => "string",
        serde_json::Value::Array(_) => "list",
        serde_json::Value::Object(_) => "object",
    }
}

fn test_to_cel(
    test: &FilterTest,
    names: &Names<'_>,
    path: &str,
    diagnostics: &mut Vec<Diagnostic>,
) -> Option<String> {
    let ty = match field_type(&test.field, names, path) {
        Ok(ty) => ty,
        Err(d) => {
            diagnostics.push(*d);
            return None;
        }
    };
    let op = test.op;
    let invalid = |message: String, help: &str| {
        Diagnostic::new(Code::InvalidFilter, message)
            .with_path(format!("{path}/value"))
            .with_help(help.to_string())
    };
    let f = &test.field;
    let needs_value = !matches!(op, FilterOp::IsEmpty | FilterOp::IsNotEmpty);
    let value = match (&test.value, needs_value) {
        (Some(v), true) => v,
        (None, true) => {
            diagnostics.push(invalid(
                format!("`{}` needs a non-null `value`", op.name()),
                "add a `value` key; to test for a missing field use `is_empty`",
            ));
            return None;
        }
        (Some(_), false) => {
            diagnostics.push(invalid(format!("`{}` takes no `value`", op.name()), "remove the `value` key"));
            return None;
        }
        (None, false) => &serde_json::Value::Null,
    };
    let lit = |v: &serde_json::Value, t: &Type, diagnostics: &mut Vec<Diagnostic>| match literal(v, t) {
        Ok(l) => Some(l),
        Err(message) => {
            diagnostics.push(invalid(message, "give a value of the field's type"));
            None
        }
    };
    let require = |ok: bool, what: &str, diagnostics: &mut Vec<Diagnostic>| {
        if !ok {
            diagnostics.push(
                Diagnostic::new(
                    Code::InvalidFilter,
                    format!("`{}` applies to {what} fields; `{f}` is {ty}", op.name()),
                )
                .with_path(format!("{path}/op")),
            );
        }
        ok
    };
    // The engine's values are always bound where they can be read.
    let present = if f.contains('.') { format!("has({f})") } else { "true".to_string() };
    let cel = match op {
        FilterOp::Equals => format!("{present} && {f} == {}", lit(value, &ty, diagnostics)?),
        FilterOp::NotEquals => format!("!{present} || {f} != {}", lit(value, &ty, diagnostics)?),
        FilterOp::Gt | FilterOp::Gte | FilterOp::Lt | FilterOp::Lte => {
            let sym = match op {
                FilterOp::Gt => ">",
                FilterOp::Gte => ">=",
                FilterOp::Lt => "<",
                _ => "<=",
            };
            format!("{present} && {f} {sym} {}", lit(value, &ty, diagnostics)?)
        }
        FilterOp::Between => {
            let Some([low, high]) = value.as_array().and_then(|a| <&[_; 2]>::try_from(a.as_slice()).ok())
            else {
                diagnostics
                    .push(invalid("`between` needs `[low, high]`".into(), "give a list of two values"));
                return None;
            };
            let low = lit(low, &ty, diagnostics);
            let high = lit(high, &ty, diagnostics);
            format!("{present} && {f} >= {} && {f} <= {}", low?, high?)
        }
        FilterOp::In | FilterOp::NotIn => {
            let Some(items) = value.as_array() else {
                diagnostics.push(invalid(format!("`{}` needs a list of values", op.name()), "give a list"));
                return None;
            };
            let mut parts = Vec::with_capacity(items.len());
            for item in items {
                parts.push(lit(item, &ty, diagnostics)?);
            }
            let list = format!("[{}]", parts.join(", "));
            if op == FilterOp::In {
                format!("{present} && {f} in {list}")
            } else {
                format!("!{present} || !({f} in {list})")
            }
        }
        FilterOp::IsEmpty | FilterOp::IsNotEmpty => {
            let empty = match ty {
                Type::String => Some(format!("{f} == \"\"")),
                Type::List(_) | Type::Map(..) => Some(format!("size({f}) == 0")),
                _ => None,
            };
            match (op, empty) {
                (FilterOp::IsEmpty, Some(e)) => format!("!{present} || {e}"),
                (FilterOp::IsEmpty, None) => format!("!{present}"),
                (_, Some(e)) => format!("{present} && !({e})"),
                (_, None) => present,
            }
        }
        FilterOp::Contains => match &ty {
            Type::String => format!("{present} && {f}.contains({})", lit(value, &ty, diagnostics)?),
            Type::List(elem) => format!("{present} && {} in {f}", lit(value, elem, diagnostics)?),
            _ => {
                require(false, "string or list", diagnostics);
                return None;
            }
        },
        FilterOp::StartsWith | FilterOp::EndsWith | FilterOp::Matches => {
            if !require(ty == Type::String, "string", diagnostics) {
                return None;
            }
            let method = match op {
                FilterOp::StartsWith => "startsWith",
                FilterOp::EndsWith => "endsWith",
                _ => "matches",
            };
            format!("{present} && {f}.{method}({})", lit(value, &ty, diagnostics)?)
        }
        FilterOp::WithinLast => {
            if !require(ty == Type::Timestamp, "timestamp", diagnostics) {
                return None;
            }
            let window = match value {
                serde_json::Value::Number(n) => {
                    match n.as_i64().filter(|d| (0..=MAX_WINDOW_DAYS).contains(d)) {
                        Some(days) => format!("duration(\"{}s\")", days * 86_400),
                        None => {
                            diagnostics.push(invalid(
                                format!("{n} is not a whole number of days from 0 to {MAX_WINDOW_DAYS}"),
                                "give days as a non-negative integer, or a duration such as \"36h\"",
                            ));
                            return None;
                        }
                    }
                }
                serde_json::Value::String(s) => match crate::time::Duration::parse(s) {
                    Ok(d)
                        if !d.is_negative()
                            && d.as_nanos() <= i128::from(MAX_WINDOW_DAYS) * 86_400 * 1_000_000_000 =>
                    {
                        format!("duration({})", string_literal(s))
                    }
                    _ => {
                        diagnostics.push(invalid(
                            format!("{s:?} is not a duration from 0 to {MAX_WINDOW_DAYS} days"),
                            "give a duration such as \"36h\" or \"90m\", or a number of days",
                        ));
                        return None;
                    }
                },
                other => {
                    diagnostics.push(invalid(
                        format!("{} is not a window", with_article(json_kind(other))),
                        "give days as an integer, or a duration such as \"36h\"",
                    ));
                    return None;
                }
            };
            // `f >= now - window` rather than `now - f <= window`: the difference of two
            // far-apart instants is a range error, the shifted bound is not.
            format!("{present} && {f} <= now && {f} >= now - {window}")
        }
        FilterOp::Before | FilterOp::After => {
            if !require(ty == Type::Timestamp, "timestamp", diagnostics) {
                return None;
            }
            let sym = if op == FilterOp::Before { "<" } else { ">" };
            format!("{present} && {f} {sym} {}", lit(value, &ty, diagnostics)?)
        }
    };
    Some(cel)
}
