//! A deliberately simple reference interpreter for the CEL subset: walks the AST
//! directly, looks names up by string, and implements each operator from the CEL
//! specification independently of the crate's checker and compiler. Differential tests
//! compare the compiled evaluator against it.
#![allow(dead_code)]

use std::collections::HashMap;
use std::sync::Arc;

use nurture::expr::ast::{BinaryOp, Expr, ExprKind, Literal, UnaryOp};
use nurture::Value;

/// Any run-time error; the reference does not classify errors.
#[derive(Debug, Clone, PartialEq)]
pub struct RefError(pub String);

pub type RefResult = Result<Value, RefError>;

/// 2^63, exactly representable as a double.
const TWO_63: f64 = 9_223_372_036_854_775_808u64 as f64;

fn err<T>(msg: impl Into<String>) -> Result<T, RefError> {
    Err(RefError(msg.into()))
}

pub struct Reference<'a> {
    /// Bound variables; a declared but unbound variable is absent here.
    pub vars: &'a HashMap<String, Value>,
    locals: Vec<(String, Value)>,
}

impl<'a> Reference<'a> {
    pub fn new(vars: &'a HashMap<String, Value>) -> Reference<'a> {
        Reference { vars, locals: Vec::new() }
    }

    pub fn eval(&mut self, e: &Expr) -> RefResult {
        match &e.kind {
            ExprKind::Literal(l) => Ok(match l {
                Literal::Null => Value::Null,
                Literal::Bool(b) => Value::Bool(*b),
                Literal::Int(i) => Value::Int(*i),
                Literal::Double(d) => Value::Double(*d),
                Literal::String(s) => Value::string(s),
                _ => return err("a literal the reference does not model"),
            }),
            ExprKind::Ident(name) => {
                if let Some((_, v)) = self.locals.iter().rev().find(|(n, _)| n == name) {
                    return Ok(v.clone());
                }
                self.vars.get(name).cloned().ok_or_else(|| RefError(format!("unbound {name}")))
            }
            ExprKind::Unary { op, operand } => {
                let v = self.eval(operand)?;
                match (op, v) {
                    (UnaryOp::Not, Value::Bool(b)) => Ok(Value::Bool(!b)),
                    (UnaryOp::Neg, Value::Int(i)) => {
                        i.checked_neg().map(Value::Int).ok_or(RefError("overflow".into()))
                    }
                    (UnaryOp::Neg, Value::Double(d)) => Ok(Value::Double(-d)),
                    _ => err("bad unary"),
                }
            }
            ExprKind::Binary { op: BinaryOp::And, lhs, rhs } => {
                let l = self.eval(lhs);
                if matches!(l, Ok(Value::Bool(false))) {
                    return Ok(Value::Bool(false));
                }
                let r = self.eval(rhs);
                match (l, r) {
                    (_, Ok(Value::Bool(false))) => Ok(Value::Bool(false)),
                    (Ok(Value::Bool(true)), Ok(Value::Bool(true))) => Ok(Value::Bool(true)),
                    (Err(e), _) => Err(e),
                    (_, Err(e)) => Err(e),
                    _ => err("bad &&"),
                }
            }
            ExprKind::Binary { op: BinaryOp::Or, lhs, rhs } => {
                let l = self.eval(lhs);
                if matches!(l, Ok(Value::Bool(true))) {
                    return Ok(Value::Bool(true));
                }
                let r = self.eval(rhs);
                match (l, r) {
                    (_, Ok(Value::Bool(true))) => Ok(Value::Bool(true)),
                    (Ok(Value::Bool(false)), Ok(Value::Bool(false))) => Ok(Value::Bool(false)),
                    (Err(e), _) => Err(e),
                    (_, Err(e)) => Err(e),
                    _ => err("bad ||"),
                }
            }
            ExprKind::Binary { op, lhs, rhs } => {
                let a = self.eval(lhs)?;
                let b = self.eval(rhs)?;
                binary(*op, a, b)
            }
            ExprKind::Conditional { cond, then, otherwise } => match self.eval(cond)? {
                Value::Bool(true) => self.eval(then),
                Value::Bool(false) => self.eval(otherwise),
                _ => err("bad ?:"),
            },
            ExprKind::List(items) => {
                let mut out = Vec::new();
                for i in items {
                    out.push(self.eval(i)?);
                }
                Ok(Value::List(out.into()))
            }
            ExprKind::Index { operand, index } => {
                let c = self.eval(operand)?;
                let i = self.eval(index)?;
                match (c, i) {
                    (Value::List(l), Value::Int(i)) => {
                        if i < 0 || i as usize >= l.len() {
                            err("index out of range")
                        } else {
                            Ok(l[i as usize].clone())
                        }
                    }
                    (Value::Map(m), k) => m.get(&k).cloned().ok_or(RefError("no key".into())),
                    _ => err("bad index"),
                }
            }
            ExprKind::Select { operand, field, .. } => match self.eval(operand)? {
                Value::Map(m) => m.get(&Value::string(field)).cloned().ok_or(RefError("no key".into())),
                _ => err("bad select"),
            },
            ExprKind::Map(_) => err("map literals are not generated"),
            ExprKind::Call { target, function, args, .. } => self.call(target.as_deref(), function, args),
            _ => err("an expression the reference does not model"),
        }
    }

    fn call(&mut self, target: Option<&Expr>, f: &str, args: &[Expr]) -> RefResult {
        if let (Some(t), "all" | "exists" | "map" | "filter" | "exists_one") = (target, f) {
            let ExprKind::Ident(var) = &args[0].kind else { return err("bad macro") };
            let Value::List(items) = self.eval(t)? else { return err("macro on non-list") };
            let mut results = Vec::new();
            for item in items.iter() {
                self.locals.push((var.clone(), item.clone()));
                let r = self.eval(&args[1]);
                self.locals.pop();
                results.push((item.clone(), r));
            }
            return match f {
                "all" => {
                    if results.iter().any(|(_, r)| matches!(r, Ok(Value::Bool(false)))) {
                        Ok(Value::Bool(false))
                    } else if let Some((_, Err(e))) = results.iter().find(|(_, r)| r.is_err()) {
                        Err(e.clone())
                    } else if results.iter().all(|(_, r)| matches!(r, Ok(Value::Bool(true)))) {
                        Ok(Value::Bool(true))
                    } else {
                        err("non-bool predicate")
                    }
                }
                "exists" => {
                    if results.iter().any(|(_, r)| matches!(r, Ok(Value::Bool(true)))) {
                        Ok(Value::Bool(true))
                    } else if let Some((_, Err(e))) = results.iter().find(|(_, r)| r.is_err()) {
                        Err(e.clone())
                    } else if results.iter().all(|(_, r)| matches!(r, Ok(Value::Bool(false)))) {
                        Ok(Value::Bool(false))
                    } else {
                        err("non-bool predicate")
                    }
                }
                "exists_one" => {
                    let mut n = 0;
                    for (_, r) in results {
                        match r? {
                            Value::Bool(true) => n += 1,
                            Value::Bool(false) => {}
                            _ => return err("non-bool"),
                        }
                    }
                    Ok(Value::Bool(n == 1))
                }
                "map" => results
                    .into_iter()
                    .map(|(_, r)| r)
                    .collect::<Result<Vec<_>, _>>()
                    .map(|v| Value::List(v.into())),
                _ => {
                    let mut out = Vec::new();
                    for (item, r) in results {
                        match r? {
                            Value::Bool(true) => out.push(item),
                            Value::Bool(false) => {}
                            _ => return err("non-bool"),
                        }
                    }
                    Ok(Value::List(out.into()))
                }
            };
        }
        let mut vals = Vec::new();
        if let Some(t) = target {
            vals.push(self.eval(t)?);
        }
        for a in args {
            vals.push(self.eval(a)?);
        }
        match (f, vals.as_slice()) {
            ("size", [Value::String(s)]) => Ok(Value::Int(s.chars().count() as i64)),
            ("size", [Value::List(l)]) => Ok(Value::Int(l.len() as i64)),
            ("contains", [Value::String(a), Value::String(b)]) => Ok(Value::Bool(a.contains(&**b))),
            ("startsWith", [Value::String(a), Value::String(b)]) => Ok(Value::Bool(a.starts_with(&**b))),
            ("endsWith", [Value::String(a), Value::String(b)]) => Ok(Value::Bool(a.ends_with(&**b))),
            ("int", [Value::Int(i)]) => Ok(Value::Int(*i)),
            ("int", [Value::Double(d)]) => {
                if d.is_finite() && *d > -TWO_63 && *d < TWO_63 {
                    Ok(Value::Int(*d as i64))
                } else {
                    err("range")
                }
            }
            ("double", [Value::Int(i)]) => Ok(Value::Double(*i as f64)),
            ("double", [Value::Double(d)]) => Ok(Value::Double(*d)),
            ("string", [Value::Int(i)]) => Ok(Value::string(i.to_string())),
            ("string", [Value::String(s)]) => Ok(Value::String(Arc::clone(s))),
            _ => err(format!("no overload {f}")),
        }
    }
}

fn num_cmp(a: &Value, b: &Value) -> Option<std::cmp::Ordering> {
    // Exact int/double comparison via i128 when the double is integral and in range.
    match (a, b) {
        (Value::Int(x), Value::Int(y)) => Some(x.cmp(y)),
        (Value::Double(x), Value::Double(y)) => x.partial_cmp(y),
        (Value::Int(x), Value::Double(y)) => int_double(*x, *y),
        (Value::Double(x), Value::Int(y)) => int_double(*y, *x).map(|o| o.reverse()),
        _ => None,
    }
}

fn int_double(x: i64, y: f64) -> Option<std::cmp::Ordering> {
    if y.is_nan() {
        return None;
    }
    if y >= TWO_63 {
        return Some(std::cmp::Ordering::Less);
    }
    if y < -TWO_63 {
        return Some(std::cmp::Ordering::Greater);
    }
    // Compare x with y exactly using i128 and the fractional part.
    let fl = y.floor();
    let fi = fl as i128;
    let xi = x as i128;
    Some(if xi < fi {
        std::cmp::Ordering::Less
    } else if xi > fi {
        std::cmp::Ordering::Greater
    } else if y > fl {
        std::cmp::Ordering::Less
    } else {
        std::cmp::Ordering::Equal
    })
}

fn ref_eq(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::List(x), Value::List(y)) => {
            x.len() == y.len() && x.iter().zip(y.iter()).all(|(p, q)| ref_eq(p, q))
        }
        (Value::String(x), Value::String(y)) => x == y,
        (Value::Bool(x), Value::Bool(y)) => x == y,
        (Value::Null, Value::Null) => true,
        _ => num_cmp(a, b) == Some(std::cmp::Ordering::Equal),
    }
}

fn binary(op: BinaryOp, a: Value, b: Value) -> RefResult {
    use std::cmp::Ordering::*;
    let ord = |a: &Value, b: &Value| -> Result<Option<std::cmp::Ordering>, RefError> {
        match (a, b) {
            (Value::String(x), Value::String(y)) => Ok(Some(x.cmp(y))),
            (Value::Bool(x), Value::Bool(y)) => Ok(Some(x.cmp(y))),
            (Value::Int(_) | Value::Double(_), Value::Int(_) | Value::Double(_)) => Ok(num_cmp(a, b)),
            _ => err("bad comparison"),
        }
    };
    match op {
        BinaryOp::Eq => Ok(Value::Bool(ref_eq(&a, &b))),
        BinaryOp::Ne => Ok(Value::Bool(!ref_eq(&a, &b))),
        BinaryOp::Lt => Ok(Value::Bool(ord(&a, &b)? == Some(Less))),
        BinaryOp::Le => Ok(Value::Bool(matches!(ord(&a, &b)?, Some(Less | Equal)))),
        BinaryOp::Gt => Ok(Value::Bool(ord(&a, &b)? == Some(Greater))),
        BinaryOp::Ge => Ok(Value::Bool(matches!(ord(&a, &b)?, Some(Greater | Equal)))),
        BinaryOp::In => match b {
            Value::List(l) => Ok(Value::Bool(l.iter().any(|x| ref_eq(x, &a)))),
            _ => err("bad in"),
        },
        BinaryOp::Add => match (a, b) {
            (Value::Int(x), Value::Int(y)) => {
                x.checked_add(y).map(Value::Int).ok_or(RefError("overflow".into()))
            }
            (Value::Double(x), Value::Double(y)) => Ok(Value::Double(x + y)),
            (Value::String(x), Value::String(y)) => Ok(Value::string(format!("{x}{y}"))),
            (Value::List(x), Value::List(y)) => Ok(Value::List(x.iter().chain(y.iter()).cloned().collect())),
            _ => err("bad +"),
        },
        BinaryOp::Sub => match (a, b) {
            (Value::Int(x), Value::Int(y)) => {
                x.checked_sub(y).map(Value::Int).ok_or(RefError("overflow".into()))
            }
            (Value::Double(x), Value::Double(y)) => Ok(Value::Double(x - y)),
            _ => err("bad -"),
        },
        BinaryOp::Mul => match (a, b) {
            (Value::Int(x), Value::Int(y)) => {
                x.checked_mul(y).map(Value::Int).ok_or(RefError("overflow".into()))
            }
            (Value::Double(x), Value::Double(y)) => Ok(Value::Double(x * y)),
            _ => err("bad *"),
        },
        BinaryOp::Div => match (a, b) {
            (Value::Int(_), Value::Int(0)) => err("div by zero"),
            (Value::Int(x), Value::Int(y)) => {
                x.checked_div(y).map(Value::Int).ok_or(RefError("overflow".into()))
            }
            (Value::Double(x), Value::Double(y)) => Ok(Value::Double(x / y)),
            _ => err("bad /"),
        },
        BinaryOp::Rem => match (a, b) {
            (Value::Int(_), Value::Int(0)) => err("mod by zero"),
            (Value::Int(x), Value::Int(y)) => {
                x.checked_rem(y).map(Value::Int).ok_or(RefError("overflow".into()))
            }
            _ => err("bad %"),
        },
        BinaryOp::And | BinaryOp::Or => err("handled elsewhere"),
        _ => err("an operator the reference does not model"),
    }
}

/// Results agree: both errors, or equal values (NaN equals NaN here, and -0.0 equals 0.0).
pub fn same(a: &Result<Value, impl std::fmt::Debug>, b: &RefResult) -> bool {
    match (a, b) {
        (Err(_), Err(_)) => true,
        (Ok(x), Ok(y)) => identical(x, y),
        _ => false,
    }
}

fn identical(x: &Value, y: &Value) -> bool {
    match (x, y) {
        (Value::Double(a), Value::Double(b)) => (a.is_nan() && b.is_nan()) || a == b,
        (Value::Int(a), Value::Int(b)) => a == b,
        (Value::List(a), Value::List(b)) => {
            a.len() == b.len() && a.iter().zip(b.iter()).all(|(p, q)| identical(p, q))
        }
        (a, b) => a.kind() == b.kind() && a == b,
    }
}
