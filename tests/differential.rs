//! Differential tests: random well-typed expressions over random inputs give the same
//! value or error from the compiled evaluator (both its general and fused-predicate
//! paths) and from the reference interpreter in `support/reference.rs`.

mod support;

use std::collections::HashMap;

use nurture::expr::{parse, Activation, Env};
use nurture::{Limits, Type, Value};
use proptest::prelude::*;
use support::reference::{same, Reference};

#[derive(Clone, Copy, PartialEq, Debug)]
enum T {
    Int,
    Double,
    Str,
    Bool,
    ListInt,
    ListStr,
}

struct Gen {
    state: u64,
    /// Comprehension variables in scope (all ints).
    locals: Vec<String>,
}

impl Gen {
    fn next(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn pick(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    fn int_literal(&mut self) -> String {
        match self.pick(6) {
            0 => "9223372036854775807".into(),
            1 => "(-9223372036854775808)".into(),
            2 => "0".into(),
            _ => format!("{}", self.pick(21) as i64 - 10),
        }
    }

    fn double_literal(&mut self) -> String {
        match self.pick(5) {
            0 => "0.0".into(),
            1 => "1e308".into(),
            2 => "(-2.5)".into(),
            _ => format!("{}.5", self.pick(10)),
        }
    }

    fn string_literal(&mut self) -> String {
        ["''", "'a'", "'abc'", "'ß'", "'bc'", "'A'"][self.pick(6) as usize].into()
    }

    fn expr(&mut self, ty: T, depth: u32) -> String {
        let leaf = depth == 0 || self.pick(3) == 0;
        match ty {
            T::Int if leaf => match self.pick(4) {
                0 | 1 => self.int_literal(),
                2 if !self.locals.is_empty() => {
                    let i = self.pick(self.locals.len() as u64) as usize;
                    self.locals[i].clone()
                }
                _ => ["i1", "i2"][self.pick(2) as usize].into(),
            },
            T::Int => match self.pick(9) {
                0..=3 => {
                    let op = ["+", "-", "*", "/", "%"][self.pick(5) as usize];
                    format!("({} {op} {})", self.expr(T::Int, depth - 1), self.expr(T::Int, depth - 1))
                }
                4 => format!("(-{})", self.expr(T::Int, depth - 1)),
                5 => {
                    let of = [T::Str, T::ListInt][self.pick(2) as usize];
                    format!("size({})", self.expr(of, depth - 1))
                }
                6 => format!("int({})", self.expr(T::Double, depth - 1)),
                7 => format!(
                    "({} ? {} : {})",
                    self.expr(T::Bool, depth - 1),
                    self.expr(T::Int, depth - 1),
                    self.expr(T::Int, depth - 1)
                ),
                _ => format!("{}[{}]", self.expr(T::ListInt, depth - 1), self.expr(T::Int, depth - 1)),
            },
            T::Double if leaf => match self.pick(3) {
                0 | 1 => self.double_literal(),
                _ => ["d1", "d2"][self.pick(2) as usize].into(),
            },
            T::Double => match self.pick(5) {
                0 | 1 => {
                    let op = ["+", "-", "*", "/"][self.pick(4) as usize];
                    format!("({} {op} {})", self.expr(T::Double, depth - 1), self.expr(T::Double, depth - 1))
                }
                2 => format!("(-{})", self.expr(T::Double, depth - 1)),
                3 => format!("double({})", self.expr(T::Int, depth - 1)),
                _ => format!(
                    "({} ? {} : {})",
                    self.expr(T::Bool, depth - 1),
                    self.expr(T::Double, depth - 1),
                    self.expr(T::Double, depth - 1)
                ),
            },
            T::Str if leaf => match self.pick(2) {
                0 => self.string_literal(),
                _ => ["s1", "s2"][self.pick(2) as usize].into(),
            },
            T::Str => match self.pick(3) {
                0 => format!("({} + {})", self.expr(T::Str, depth - 1), self.expr(T::Str, depth - 1)),
                1 => format!("string({})", self.expr(T::Int, depth - 1)),
                _ => format!(
                    "({} ? {} : {})",
                    self.expr(T::Bool, depth - 1),
                    self.expr(T::Str, depth - 1),
                    self.expr(T::Str, depth - 1)
                ),
            },
            T::Bool if leaf => match self.pick(3) {
                0 => ["true", "false"][self.pick(2) as usize].into(),
                _ => "b1".into(),
            },
            T::Bool => match self.pick(12) {
                0 | 1 => {
                    let op = ["==", "!=", "<", "<=", ">", ">="][self.pick(6) as usize];
                    let (a, b) = match self.pick(4) {
                        0 => (T::Int, T::Int),
                        1 => (T::Double, T::Double),
                        2 => (T::Int, T::Double),
                        _ => (T::Str, T::Str),
                    };
                    format!("({} {op} {})", self.expr(a, depth - 1), self.expr(b, depth - 1))
                }
                2 | 3 => {
                    let op = ["&&", "||"][self.pick(2) as usize];
                    format!("({} {op} {})", self.expr(T::Bool, depth - 1), self.expr(T::Bool, depth - 1))
                }
                4 => format!("!{}", self.expr(T::Bool, depth - 1)),
                5 => format!("({} in {})", self.expr(T::Int, depth - 1), self.expr(T::ListInt, depth - 1)),
                6 => format!("({} in {})", self.expr(T::Str, depth - 1), self.expr(T::ListStr, depth - 1)),
                7 => {
                    let m = ["contains", "startsWith", "endsWith"][self.pick(3) as usize];
                    format!("{}.{m}({})", self.expr(T::Str, depth - 1), self.expr(T::Str, depth - 1))
                }
                8 => {
                    format!("({} == {})", self.expr(T::ListInt, depth - 1), self.expr(T::ListInt, depth - 1))
                }
                9 if self.locals.len() < 2 => {
                    let m = ["all", "exists", "exists_one"][self.pick(3) as usize];
                    let var = format!("x{}", self.locals.len());
                    let range = self.expr(T::ListInt, depth - 1);
                    self.locals.push(var.clone());
                    let body = self.expr(T::Bool, depth - 1);
                    self.locals.pop();
                    format!("{range}.{m}({var}, {body})")
                }
                _ => format!(
                    "({} ? {} : {})",
                    self.expr(T::Bool, depth - 1),
                    self.expr(T::Bool, depth - 1),
                    self.expr(T::Bool, depth - 1)
                ),
            },
            T::ListInt if leaf => match self.pick(3) {
                0 => "li".into(),
                1 => "[]".into(),
                _ => format!("[{}, {}]", self.int_literal(), self.int_literal()),
            },
            T::ListInt => match self.pick(4) {
                0 => format!("({} + {})", self.expr(T::ListInt, depth - 1), self.expr(T::ListInt, depth - 1)),
                1 if self.locals.len() < 2 => {
                    let var = format!("x{}", self.locals.len());
                    let range = self.expr(T::ListInt, depth - 1);
                    self.locals.push(var.clone());
                    let body = self.expr(T::Int, depth - 1);
                    self.locals.pop();
                    format!("{range}.map({var}, {body})")
                }
                2 if self.locals.len() < 2 => {
                    let var = format!("x{}", self.locals.len());
                    let range = self.expr(T::ListInt, depth - 1);
                    self.locals.push(var.clone());
                    let body = self.expr(T::Bool, depth - 1);
                    self.locals.pop();
                    format!("{range}.filter({var}, {body})")
                }
                _ => format!("[{}, {}]", self.expr(T::Int, depth - 1), self.expr(T::Int, depth - 1)),
            },
            T::ListStr => match self.pick(2) {
                0 => "ls".into(),
                _ => format!("[{}, {}]", self.expr(T::Str, depth.saturating_sub(1)), self.string_literal()),
            },
        }
    }
}

fn env() -> Env {
    let decls = [
        ("i1", Type::Int),
        ("i2", Type::Int),
        ("d1", Type::Double),
        ("d2", Type::Double),
        ("s1", Type::String),
        ("s2", Type::String),
        ("b1", Type::Bool),
        ("li", Type::list(Type::Int)),
        ("ls", Type::list(Type::String)),
    ];
    decls.into_iter().fold(Env::new(), |env, (n, t)| env.with_variable(n, t).expect("distinct names"))
}

fn inputs(seed: u64) -> HashMap<String, Value> {
    let mut g = Gen { state: seed ^ 0xDEAD_BEEF, locals: Vec::new() };
    let mut vars = HashMap::new();
    let mut bind = |g: &mut Gen, name: &str, v: Value| {
        // Leave about one variable in twelve unbound, so missing-value errors occur.
        if g.pick(12) != 0 {
            vars.insert(name.to_string(), v);
        }
    };
    for name in ["i1", "i2"] {
        let v = match g.pick(5) {
            0 => i64::MAX,
            1 => i64::MIN,
            _ => g.pick(41) as i64 - 20,
        };
        bind(&mut g, name, Value::Int(v));
    }
    for name in ["d1", "d2"] {
        let v = match g.pick(6) {
            0 => f64::NAN,
            1 => f64::INFINITY,
            2 => -0.0,
            _ => (g.pick(200) as f64 - 100.0) / 8.0,
        };
        bind(&mut g, name, Value::Double(v));
    }
    for name in ["s1", "s2"] {
        let v = ["", "a", "abc", "bcd", "ß", "A"][g.pick(6) as usize];
        bind(&mut g, name, Value::from(v));
    }
    let b = g.pick(2) == 0;
    bind(&mut g, "b1", Value::Bool(b));
    let n = g.pick(4) as usize;
    let li: Vec<Value> = (0..n).map(|_| Value::Int(g.pick(7) as i64 - 3)).collect();
    bind(&mut g, "li", Value::List(li.into()));
    let ls: Vec<Value> = (0..g.pick(3)).map(|_| Value::from(["a", "abc", ""][g.pick(3) as usize])).collect();
    bind(&mut g, "ls", Value::List(ls.into()));
    vars
}

fn check_one(seed: u64, input_seed: u64, ty: T) -> Result<(), TestCaseError> {
    let mut g = Gen { state: seed, locals: Vec::new() };
    let source = g.expr(ty, 4);
    let env = env();
    let compiled = env
        .compile(&source)
        .map_err(|e| TestCaseError::fail(format!("`{source}` failed to compile:\n{}", e.render())))?;
    let vars = inputs(input_seed);
    let bound = env.bind(vars.iter().map(|(k, v)| (k.as_str(), v.clone()))).expect("declared and well-typed");
    let act = Activation::new().with_variables(&bound);
    let ast = parse(&source, &Limits::default()).expect("it compiled, so it parses");
    let expected = Reference::new(&vars).eval(&ast);
    let got = compiled.eval(&act);
    prop_assert!(
        same(&got, &expected),
        "`{source}` with {vars:?}: evaluator {got:?}, reference {expected:?}"
    );
    if ty == T::Bool {
        let fused = compiled.eval_bool(&act).map(Value::Bool);
        prop_assert!(
            same(&fused, &expected),
            "`{source}` with {vars:?}: predicate {fused:?}, reference {expected:?}"
        );
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(3000))]

    #[test]
    fn bool_expressions_agree(seed in any::<u64>(), input in any::<u64>()) {
        check_one(seed, input, T::Bool)?;
    }

    #[test]
    fn int_expressions_agree(seed in any::<u64>(), input in any::<u64>()) {
        check_one(seed, input, T::Int)?;
    }

    #[test]
    fn other_expressions_agree(seed in any::<u64>(), input in any::<u64>(), which in 0..4usize) {
        check_one(seed, input, [T::Double, T::Str, T::ListInt, T::ListStr][which])?;
    }
}
