//! Cross-engine benchmark: the same rules evaluated by nurture, a hand-written Rust
//! closure ("native"), cel-rust, rhai, zen-expression and evalexpr.
//!
//! ```text
//! cargo run --release --manifest-path benches/peers/Cargo.toml -- --json
//! ```
//!
//! Options: `--json` (print the summary object as the last line), `--sample-ms N`
//! (length of one timed sample, default 1000), `--reps N` (samples per measurement,
//! default 5; the median is reported).
//!
//! See README.md for what is measured.

mod gen;

use std::collections::HashMap;
use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use gen::{Cond, Input, Op, RuleSpec, Syntax, CONTACT, EVENT_TYPES, F, V};

// ---------------------------------------------------------------------------------
// Engines behind one small interface. Everything an engine needs per input is built
// by `prepare` (outside the timed loop); `eval` is the only thing timed.
// ---------------------------------------------------------------------------------

trait Engine {
    const NAME: &'static str;
    type Compiled;
    type Prepared;
    /// The rule's source text for this engine (for messages).
    fn source(rule: &RuleSpec) -> String;
    fn compile(&mut self, rule: &RuleSpec) -> Result<Self::Compiled, String>;
    fn prepare(&mut self, input: &Input) -> Self::Prepared;
    fn eval(&mut self, rule: &Self::Compiled, input: &mut Self::Prepared) -> Result<bool, String>;
}

// --- native: plain structs and closures ------------------------------------------

/// The contact as a host would model it in Rust.
#[derive(Clone, Debug)]
struct NContact {
    job_title: String,
    seniority: String,
    country: String,
    industry: String,
    lifecycle_stage: String,
    company_size: i64,
    visits: i64,
    annual_revenue: f64,
    fit_score: f64,
}

/// An event's four properties (discriminator string, second string,
/// int, double), whatever the type calls them.
#[derive(Clone, Debug)]
struct NEvent {
    p0: String,
    p1: String,
    p2: i64,
    p3: f64,
}

fn to_native(input: &Input) -> (NContact, NEvent) {
    let c = &input.contact.0;
    let e = &input.event.props;
    (
        NContact {
            job_title: c[0].s().to_string(),
            seniority: c[1].s().to_string(),
            country: c[2].s().to_string(),
            industry: c[3].s().to_string(),
            lifecycle_stage: c[4].s().to_string(),
            company_size: c[5].i(),
            visits: c[6].i(),
            annual_revenue: c[7].d(),
            fit_score: c[8].d(),
        },
        NEvent { p0: e[0].s().to_string(), p1: e[1].s().to_string(), p2: e[2].i(), p3: e[3].d() },
    )
}

/// rule4, written by hand.
#[inline(never)]
fn rule4_native(c: &NContact, e: &NEvent) -> bool {
    e.p0 == "/pricing"
        && c.company_size >= 100
        && matches!(c.country.as_str(), "US" | "CA" | "GB")
        && c.job_title.contains("VP")
}

type NFn = Box<dyn Fn(&NContact, &NEvent) -> bool>;

fn str_leaf<A>(get: A, cond: &Cond) -> NFn
where
    A: for<'a> Fn(&'a NContact, &'a NEvent) -> &'a str + 'static,
{
    match cond {
        Cond::Cmp(_, Op::Eq, v) => {
            let k = v.s().to_string();
            Box::new(move |c, e| get(c, e) == k)
        }
        Cond::Cmp(_, Op::Ne, v) => {
            let k = v.s().to_string();
            Box::new(move |c, e| get(c, e) != k)
        }
        Cond::In(_, items) => {
            let items = items.clone();
            Box::new(move |c, e| {
                let x = get(c, e);
                items.iter().any(|s| s == x)
            })
        }
        Cond::Contains(_, s) => {
            let s = s.clone();
            Box::new(move |c, e| get(c, e).contains(s.as_str()))
        }
        Cond::StartsWith(_, s) => {
            let s = s.clone();
            Box::new(move |c, e| get(c, e).starts_with(s.as_str()))
        }
        other => panic!("not a string test: {other:?}"),
    }
}

macro_rules! num_leaf {
    ($get:expr, $op:expr, $k:expr) => {{
        let get = $get;
        let k = $k;
        match $op {
            Op::Eq => Box::new(move |c: &NContact, e: &NEvent| get(c, e) == k) as NFn,
            Op::Ne => Box::new(move |c: &NContact, e: &NEvent| get(c, e) != k),
            Op::Lt => Box::new(move |c: &NContact, e: &NEvent| get(c, e) < k),
            Op::Le => Box::new(move |c: &NContact, e: &NEvent| get(c, e) <= k),
            Op::Gt => Box::new(move |c: &NContact, e: &NEvent| get(c, e) > k),
            Op::Ge => Box::new(move |c: &NContact, e: &NEvent| get(c, e) >= k),
        }
    }};
}

/// Builds the closure a Rust programmer would write for a generated rule: one
/// specialised closure per test, combined with `&&` / `||`.
fn native_compile(cond: &Cond) -> NFn {
    match cond {
        Cond::And(items) => {
            let parts: Vec<NFn> = items.iter().map(native_compile).collect();
            Box::new(move |c, e| parts.iter().all(|p| p(c, e)))
        }
        Cond::Or(items) => {
            let parts: Vec<NFn> = items.iter().map(native_compile).collect();
            Box::new(move |c, e| parts.iter().any(|p| p(c, e)))
        }
        Cond::Cmp(F::C(5), op, v) => num_leaf!(|c: &NContact, _: &NEvent| c.company_size, *op, v.i()),
        Cond::Cmp(F::C(6), op, v) => num_leaf!(|c: &NContact, _: &NEvent| c.visits, *op, v.i()),
        Cond::Cmp(F::C(7), op, v) => num_leaf!(|c: &NContact, _: &NEvent| c.annual_revenue, *op, v.d()),
        Cond::Cmp(F::C(8), op, v) => num_leaf!(|c: &NContact, _: &NEvent| c.fit_score, *op, v.d()),
        Cond::Cmp(F::E(2), op, v) => num_leaf!(|_: &NContact, e: &NEvent| e.p2, *op, v.i()),
        Cond::Cmp(F::E(3), op, v) => num_leaf!(|_: &NContact, e: &NEvent| e.p3, *op, v.d()),
        Cond::Cmp(f, _, _) | Cond::In(f, _) | Cond::Contains(f, _) | Cond::StartsWith(f, _) => match f {
            F::C(0) => str_leaf(|c, _| c.job_title.as_str(), cond),
            F::C(1) => str_leaf(|c, _| c.seniority.as_str(), cond),
            F::C(2) => str_leaf(|c, _| c.country.as_str(), cond),
            F::C(3) => str_leaf(|c, _| c.industry.as_str(), cond),
            F::C(4) => str_leaf(|c, _| c.lifecycle_stage.as_str(), cond),
            F::E(0) => str_leaf(|_, e| e.p0.as_str(), cond),
            F::E(1) => str_leaf(|_, e| e.p1.as_str(), cond),
            other => panic!("not a string field: {other:?}"),
        },
    }
}

/// The rules200 rules as plain Rust functions, written by build.rs from the same
/// generator: what a programmer would write by hand.
mod native_rules {
    use super::{NContact, NEvent};
    include!(concat!(env!("OUT_DIR"), "/native_rules.rs"));
}

type NativeFn = fn(&NContact, &NEvent) -> bool;

/// "native": the hand-written functions, looked up by rule id.
struct Native;

impl Engine for Native {
    const NAME: &'static str = "native";
    type Compiled = NativeFn;
    type Prepared = (NContact, NEvent);
    fn source(rule: &RuleSpec) -> String {
        format!("fn {{ {} }}", gen::emit_rust(&rule.cond))
    }
    fn compile(&mut self, rule: &RuleSpec) -> Result<NativeFn, String> {
        let cel = gen::emit(&rule.cond, rule.ty, Syntax::Cel);
        match native_rules::RULES.iter().find(|(id, _, _)| *id == rule.id) {
            Some((_, src, f)) if *src == cel => Ok(*f),
            Some((_, src, _)) => Err(format!("build.rs wrote `{src}` for this rule; stale build?")),
            None => Err("no native function for this rule".into()),
        }
    }
    fn prepare(&mut self, input: &Input) -> (NContact, NEvent) {
        to_native(input)
    }
    #[inline]
    fn eval(&mut self, rule: &NativeFn, input: &mut (NContact, NEvent)) -> Result<bool, String> {
        Ok(rule(&input.0, &input.1))
    }
}

/// For information: closures composed at run time from the condition tree (what a
/// host without code generation could do).
struct NativeDyn;

impl Engine for NativeDyn {
    const NAME: &'static str = "native (closures built at run time)";
    type Compiled = NFn;
    type Prepared = (NContact, NEvent);
    fn source(rule: &RuleSpec) -> String {
        format!("closure tree for {}", gen::emit(&rule.cond, rule.ty, Syntax::Cel))
    }
    fn compile(&mut self, rule: &RuleSpec) -> Result<NFn, String> {
        Ok(native_compile(&rule.cond))
    }
    fn prepare(&mut self, input: &Input) -> (NContact, NEvent) {
        to_native(input)
    }
    #[inline]
    fn eval(&mut self, rule: &NFn, input: &mut (NContact, NEvent)) -> Result<bool, String> {
        Ok(rule(&input.0, &input.1))
    }
}

// --- cel-rust ----------------------------------------------------------------------

struct Cel {
    env: Arc<cel::Env>,
}

impl Engine for Cel {
    const NAME: &'static str = "cel";
    type Compiled = cel::Program;
    type Prepared = cel::Context<'static, 'static>;
    fn source(rule: &RuleSpec) -> String {
        gen::emit(&rule.cond, rule.ty, Syntax::Cel)
    }
    fn compile(&mut self, rule: &RuleSpec) -> Result<cel::Program, String> {
        self.env.compile(&Self::source(rule)).map_err(|e| e.to_string())
    }
    fn prepare(&mut self, input: &Input) -> Self::Prepared {
        fn val(v: &V) -> cel::Value {
            match v {
                V::S(s) => cel::Value::from(s.clone()),
                V::I(i) => cel::Value::Int(*i),
                V::D(d) => cel::Value::Float(*d),
            }
        }
        let contact: HashMap<String, cel::Value> =
            CONTACT.iter().zip(&input.contact.0).map(|((n, _), v)| (n.to_string(), val(v))).collect();
        let names = EVENT_TYPES[input.event.ty].1;
        let event: HashMap<String, cel::Value> =
            names.iter().zip(&input.event.props).map(|(n, v)| (n.to_string(), val(v))).collect();
        let mut ctx = cel::Context::with_env(self.env.clone());
        ctx.add_variable_from_value("contact", contact);
        ctx.add_variable_from_value("event", event);
        ctx
    }
    #[inline]
    fn eval(&mut self, rule: &cel::Program, input: &mut Self::Prepared) -> Result<bool, String> {
        match rule.execute(input) {
            Ok(cel::Value::Bool(b)) => Ok(b),
            Ok(other) => Err(format!("not a bool: {other:?}")),
            Err(e) => Err(e.to_string()),
        }
    }
}

// --- rhai ----------------------------------------------------------------------------

struct Rhai {
    engine: rhai::Engine,
}

impl Engine for Rhai {
    const NAME: &'static str = "rhai";
    type Compiled = rhai::AST;
    type Prepared = rhai::Scope<'static>;
    fn source(rule: &RuleSpec) -> String {
        gen::emit(&rule.cond, rule.ty, Syntax::Rhai)
    }
    fn compile(&mut self, rule: &RuleSpec) -> Result<rhai::AST, String> {
        self.engine.compile_expression(Self::source(rule)).map_err(|e| e.to_string())
    }
    fn prepare(&mut self, input: &Input) -> Self::Prepared {
        fn val(v: &V) -> rhai::Dynamic {
            match v {
                V::S(s) => rhai::Dynamic::from(s.clone()),
                V::I(i) => rhai::Dynamic::from(*i),
                V::D(d) => rhai::Dynamic::from(*d),
            }
        }
        let mut contact = rhai::Map::new();
        for ((n, _), v) in CONTACT.iter().zip(&input.contact.0) {
            contact.insert((*n).into(), val(v));
        }
        let mut event = rhai::Map::new();
        for (n, v) in EVENT_TYPES[input.event.ty].1.iter().zip(&input.event.props) {
            event.insert((*n).into(), val(v));
        }
        let mut scope = rhai::Scope::new();
        scope.push_constant("contact", contact);
        scope.push_constant("event", event);
        scope
    }
    #[inline]
    fn eval(&mut self, rule: &rhai::AST, input: &mut Self::Prepared) -> Result<bool, String> {
        self.engine.eval_ast_with_scope::<bool>(input, rule).map_err(|e| e.to_string())
    }
}

// --- zen-expression ---------------------------------------------------------------------

struct Zen {
    vm: zen_expression::vm::VM,
}

impl Engine for Zen {
    const NAME: &'static str = "zen";
    type Compiled = zen_expression::Expression<zen_expression::expression::Standard>;
    type Prepared = zen_expression::Scope;
    fn source(rule: &RuleSpec) -> String {
        gen::emit(&rule.cond, rule.ty, Syntax::Zen)
    }
    fn compile(&mut self, rule: &RuleSpec) -> Result<Self::Compiled, String> {
        zen_expression::compile_expression(&Self::source(rule)).map_err(|e| e.to_string())
    }
    fn prepare(&mut self, input: &Input) -> Self::Prepared {
        fn val(v: &V) -> serde_json::Value {
            match v {
                V::S(s) => serde_json::Value::from(s.clone()),
                V::I(i) => serde_json::Value::from(*i),
                V::D(d) => serde_json::Value::from(*d),
            }
        }
        let contact: serde_json::Map<String, serde_json::Value> =
            CONTACT.iter().zip(&input.contact.0).map(|((n, _), v)| (n.to_string(), val(v))).collect();
        let event: serde_json::Map<String, serde_json::Value> = EVENT_TYPES[input.event.ty]
            .1
            .iter()
            .zip(&input.event.props)
            .map(|(n, v)| (n.to_string(), val(v)))
            .collect();
        let root = serde_json::json!({ "contact": contact, "event": event });
        zen_expression::Scope::new(zen_expression::Variable::from(root))
    }
    #[inline]
    fn eval(&mut self, rule: &Self::Compiled, input: &mut Self::Prepared) -> Result<bool, String> {
        match rule.evaluate_with_scope(input, &mut self.vm) {
            Ok(zen_expression::Variable::Bool(b)) => Ok(b),
            Ok(other) => Err(format!("not a bool: {other:?}")),
            Err(e) => Err(e.to_string()),
        }
    }
}

// --- evalexpr -----------------------------------------------------------------------------

struct Evalexpr;

fn evalexpr_str2(
    arg: &evalexpr::Value,
    f: fn(&str, &str) -> bool,
) -> evalexpr::EvalexprResult<evalexpr::Value> {
    use evalexpr::Value as EV;
    match arg {
        EV::Tuple(t) if t.len() == 2 => match (&t[0], &t[1]) {
            (EV::String(a), EV::String(b)) => Ok(EV::Boolean(f(a, b))),
            _ => Err(evalexpr::EvalexprError::CustomMessage("expected two strings".into())),
        },
        _ => Err(evalexpr::EvalexprError::CustomMessage("expected two strings".into())),
    }
}

impl Engine for Evalexpr {
    const NAME: &'static str = "evalexpr";
    type Compiled = evalexpr::Node;
    type Prepared = evalexpr::HashMapContext;
    fn source(rule: &RuleSpec) -> String {
        gen::emit(&rule.cond, rule.ty, Syntax::Evalexpr)
    }
    fn compile(&mut self, rule: &RuleSpec) -> Result<evalexpr::Node, String> {
        evalexpr::build_operator_tree(&Self::source(rule)).map_err(|e| e.to_string())
    }
    fn prepare(&mut self, input: &Input) -> Self::Prepared {
        use evalexpr::{ContextWithMutableFunctions, ContextWithMutableVariables, Function, Value as EV};
        fn val(v: &V) -> EV {
            match v {
                V::S(s) => EV::String(s.clone()),
                V::I(i) => EV::Int(*i),
                V::D(d) => EV::Float(*d),
            }
        }
        let mut ctx = evalexpr::HashMapContext::new();
        for ((n, _), v) in CONTACT.iter().zip(&input.contact.0) {
            ctx.set_value(format!("contact_{n}"), val(v)).unwrap();
        }
        for (n, v) in EVENT_TYPES[input.event.ty].1.iter().zip(&input.event.props) {
            ctx.set_value(format!("event_{n}"), val(v)).unwrap();
        }
        // evalexpr 11 has no substring tests without the regex feature (whose
        // `str::regex_matches` compiles the regex on every call): register two.
        ctx.set_function("str::contains".into(), Function::new(|a| evalexpr_str2(a, |x, y| x.contains(y))))
            .unwrap();
        ctx.set_function(
            "str::starts_with".into(),
            Function::new(|a| evalexpr_str2(a, |x, y| x.starts_with(y))),
        )
        .unwrap();
        ctx
    }
    #[inline]
    fn eval(&mut self, rule: &evalexpr::Node, input: &mut Self::Prepared) -> Result<bool, String> {
        rule.eval_boolean_with_context(input).map_err(|e| e.to_string())
    }
}

// --- nurture --------------------------------------------------------------------------

fn nurture_doc(rules: &[RuleSpec]) -> String {
    let contact: serde_json::Map<String, serde_json::Value> =
        CONTACT.iter().map(|(n, k)| (n.to_string(), k.nurture_type().into())).collect();
    let events: serde_json::Map<String, serde_json::Value> = EVENT_TYPES
        .iter()
        .map(|(t, props)| {
            let p: serde_json::Map<String, serde_json::Value> = props
                .iter()
                .zip(gen::EVENT_KINDS)
                .map(|(n, k)| (n.to_string(), k.nurture_type().into()))
                .collect();
            (t.to_string(), serde_json::Value::Object(p))
        })
        .collect();
    let rules: Vec<serde_json::Value> = rules
        .iter()
        .map(|r| {
            serde_json::json!({
                "id": r.id,
                "on": EVENT_TYPES[r.ty].0,
                "when": gen::emit(&r.cond, r.ty, Syntax::Cel),
            })
        })
        .collect();
    serde_json::json!({
        "version": 1,
        "name": "peers-bench",
        "schema": { "contact": contact, "events": events },
        "rules": rules,
    })
    .to_string()
}

/// Mixed into a scenario's seed for the separately generated inputs nurture is tuned on.
const TUNING_SEED: u64 = 0x7A11_2026;

/// Tunes `program` (`Program::tune`) on `inputs`, generated apart from the timed ones.
fn tune(program: &mut nurture::Program, inputs: Vec<Input>) -> nurture::expr::Tuning {
    let sample = nurture_prepare(program, &inputs);
    program.tune(sample.iter().map(|(c, e)| (c, e)))
}

fn nurture_compile(rules: &[RuleSpec]) -> nurture::Program {
    nurture::Program::from_json(&nurture_doc(rules)).unwrap_or_else(|e| {
        eprintln!("nurture rejected the generated rule set:\n{}", e.render());
        std::process::exit(2);
    })
}

fn nurture_prepare(program: &nurture::Program, inputs: &[Input]) -> Vec<(nurture::Contact, nurture::Event)> {
    let schema = program.schema();
    let at = nurture::Timestamp::from_unix(1_700_000_000, 0).unwrap();
    inputs
        .iter()
        .enumerate()
        .map(|(i, input)| {
            let mut c = schema.contact(format!("c{i}"));
            for ((n, _), v) in CONTACT.iter().zip(&input.contact.0) {
                c = match v {
                    V::S(s) => c.set(n, s.as_str()),
                    V::I(x) => c.set(n, *x),
                    V::D(x) => c.set(n, *x),
                }
                .unwrap();
            }
            let (tn, props) = EVENT_TYPES[input.event.ty];
            let mut e = schema.event(format!("e{i}"), format!("c{i}"), tn, at).unwrap();
            for (n, v) in props.iter().zip(&input.event.props) {
                e = match v {
                    V::S(s) => e.set(n, s.as_str()),
                    V::I(x) => e.set(n, *x),
                    V::D(x) => e.set(n, *x),
                }
                .unwrap();
            }
            (c.build(), e.build())
        })
        .collect()
}

// ---------------------------------------------------------------------------------
// Agreement checks
// ---------------------------------------------------------------------------------

fn fail(msg: String) -> ! {
    eprintln!("\nENGINES DISAGREE — aborting before timing.\n{msg}");
    std::process::exit(1);
}

/// Every rule against every input of its event type; compared with the reference
/// semantics (which the native closures are also checked against).
fn check_engine<E: Engine>(
    engine: &mut E,
    scenario: &str,
    rules: &[RuleSpec],
    compiled: &[E::Compiled],
    inputs: &[Input],
    prepared: &mut [E::Prepared],
) -> usize {
    let mut matched = 0;
    for (i, input) in inputs.iter().enumerate() {
        for (rule, c) in rules.iter().zip(compiled) {
            if rule.ty != input.event.ty {
                continue;
            }
            let want = gen::reference_eval(&rule.cond, input);
            match engine.eval(c, &mut prepared[i]) {
                Ok(got) if got == want => matched += usize::from(got),
                Ok(got) => fail(format!(
                    "[{scenario}] engine `{}` returns {got} on rule `{}` for input #{i}; native/reference say {want}.\n  rule ({}): {}\n  input: {}",
                    E::NAME,
                    rule.id,
                    E::NAME,
                    E::source(rule),
                    gen::describe(input)
                )),
                Err(e) => fail(format!(
                    "[{scenario}] engine `{}` fails on rule `{}` for input #{i}: {e}\n  rule ({}): {}\n  input: {}",
                    E::NAME,
                    rule.id,
                    E::NAME,
                    E::source(rule),
                    gen::describe(input)
                )),
            }
        }
    }
    matched
}

/// nurture's `match_event` result for every input, against the reference set.
fn check_nurture_rules(
    scenario: &str,
    program: &nurture::Program,
    rules: &[RuleSpec],
    inputs: &[Input],
    prepared: &[(nurture::Contact, nurture::Event)],
    now: nurture::Timestamp,
) -> (usize, usize) {
    let mut scratch = nurture::MatchScratch::default();
    let (mut matched, mut evaluated) = (0, 0);
    for (i, input) in inputs.iter().enumerate() {
        let want: Vec<usize> = rules
            .iter()
            .enumerate()
            .filter(|(_, r)| r.ty == input.event.ty && gen::reference_eval(&r.cond, input))
            .map(|(k, _)| k)
            .collect();
        let (c, e) = &prepared[i];
        let m = program.match_event(c, e, now, &mut scratch);
        if let Some((rule, err)) = m.errors.first() {
            let r = &rules[rule.get()];
            fail(format!(
                "[{scenario}] engine `nurture` fails on rule `{}` for input #{i}: {err:?}\n  rule (CEL): {}\n  input: {}",
                r.id,
                gen::emit(&r.cond, r.ty, Syntax::Cel),
                gen::describe(input)
            ));
        }
        let got: Vec<usize> = m.rules.iter().map(|r| r.get()).collect();
        if got != want {
            let k = *got.iter().chain(&want).find(|k| got.contains(k) != want.contains(k)).unwrap();
            let r = &rules[k];
            fail(format!(
                "[{scenario}] engine `nurture` returns {} on rule `{}` for input #{i}; native/reference say {}.\n  rule (CEL): {}\n  input: {}",
                got.contains(&k),
                r.id,
                want.contains(&k),
                gen::emit(&r.cond, r.ty, Syntax::Cel),
                gen::describe(input)
            ));
        }
        matched += got.len();
        evaluated += m.evaluated;
    }
    (matched, evaluated)
}

// ---------------------------------------------------------------------------------
// Timing
// ---------------------------------------------------------------------------------

struct Timing {
    sample: Duration,
    reps: usize,
}

#[derive(Clone, Copy)]
struct Stat {
    median: f64,
    min: f64,
    max: f64,
}

/// One timed subject: runs `iters` evaluations over its inputs (cycled) and returns
/// the elapsed time. The per-evaluation loop is monomorphised inside (`batch`);
/// the boxed call happens once per batch.
struct Bench<'a> {
    name: &'static str,
    run: Box<dyn FnMut(u64) -> Duration + 'a>,
}

fn bench<'a, F: FnMut(usize) -> usize + 'a>(name: &'static str, n: usize, mut f: F) -> Bench<'a> {
    let (mut idx, mut acc) = (0usize, 0usize);
    Bench { name, run: Box::new(move |iters| batch(&mut f, iters, n, &mut idx, &mut acc)) }
}

/// Warms up and calibrates each subject (batches grow until one takes >= 50 ms),
/// then takes `reps` samples of about `sample` each, round-robin over the subjects
/// so that background load hits all of them alike; ns per evaluation.
fn measure_all(t: &Timing, benches: &mut [Bench<'_>]) -> Vec<(&'static str, Stat)> {
    let iters: Vec<u64> = benches
        .iter_mut()
        .map(|b| {
            let mut iters = 256u64;
            let per_call = loop {
                let el = (b.run)(iters);
                if el >= Duration::from_millis(50) {
                    break el.as_secs_f64() / iters as f64;
                }
                iters *= 4;
            };
            ((t.sample.as_secs_f64() / per_call) as u64).max(1000)
        })
        .collect();
    let mut samples: Vec<Vec<f64>> = vec![Vec::new(); benches.len()];
    for _ in 0..t.reps {
        for (k, b) in benches.iter_mut().enumerate() {
            samples[k].push((b.run)(iters[k]).as_nanos() as f64 / iters[k] as f64);
        }
    }
    benches
        .iter()
        .zip(samples)
        .map(|(b, mut s)| {
            s.sort_by(|x, y| x.partial_cmp(y).unwrap());
            (b.name, Stat { median: s[s.len() / 2], min: s[0], max: s[s.len() - 1] })
        })
        .collect()
}

#[inline(never)]
fn batch<F: FnMut(usize) -> usize>(
    f: &mut F,
    iters: u64,
    n: usize,
    idx: &mut usize,
    acc: &mut usize,
) -> Duration {
    let mut i = *idx;
    let mut a = *acc;
    let start = Instant::now();
    for _ in 0..iters {
        a = a.wrapping_add(f(black_box(i)));
        i += 1;
        if i == n {
            i = 0;
        }
    }
    let el = start.elapsed();
    *idx = i;
    *acc = black_box(a);
    el
}

/// Compiles the rules for an engine, prepares its inputs, checks it against the
/// reference, and returns its timed subject. One rule: one evaluation per input.
/// Several: rules200 style (evaluate every rule of the event's type from a per-type
/// Vec, collect the matched ids).
fn peer_bench<E: Engine + 'static>(
    name: &'static str,
    mut engine: E,
    scenario: &str,
    rules: &[RuleSpec],
    inputs: &[Input],
    expected_matches: usize,
) -> Bench<'static> {
    let compiled: Vec<E::Compiled> = rules
        .iter()
        .map(|r| {
            engine.compile(r).unwrap_or_else(|e| {
                fail(format!(
                    "[{scenario}] engine `{}` cannot compile rule `{}`: {e}\n  rule: {}",
                    E::NAME,
                    r.id,
                    E::source(r)
                ))
            })
        })
        .collect();
    let mut prepared: Vec<E::Prepared> = inputs.iter().map(|i| engine.prepare(i)).collect();
    let matched = check_engine(&mut engine, scenario, rules, &compiled, inputs, &mut prepared);
    assert_eq!(matched, expected_matches, "{} match count", E::NAME);

    let n = inputs.len();
    if rules.len() == 1 {
        let rule = compiled.into_iter().next().unwrap();
        bench(name, n, move |i| usize::from(engine.eval(&rule, &mut prepared[i]).unwrap_or(false)))
    } else {
        // Pre-grouped by event type, as a host would keep them.
        let mut by_type: Vec<Vec<(u32, E::Compiled)>> = (0..EVENT_TYPES.len()).map(|_| Vec::new()).collect();
        for (k, (r, c)) in rules.iter().zip(compiled).enumerate() {
            by_type[r.ty].push((k as u32, c));
        }
        let mut prepared: Vec<(usize, E::Prepared)> =
            inputs.iter().map(|i| i.event.ty).zip(prepared).collect();
        let mut out: Vec<u32> = Vec::with_capacity(64);
        // The timed path itself produces the expected number of matches.
        let mut total = 0;
        for input in prepared.iter_mut() {
            total += eval_grouped(&mut engine, &by_type, input, &mut out);
        }
        assert_eq!(total, expected_matches, "{} grouped match count", E::NAME);
        bench(name, n, move |i| eval_grouped(&mut engine, &by_type, &mut prepared[i], &mut out))
    }
}

#[inline]
fn eval_grouped<E: Engine>(
    engine: &mut E,
    by_type: &[Vec<(u32, E::Compiled)>],
    input: &mut (usize, E::Prepared),
    out: &mut Vec<u32>,
) -> usize {
    out.clear();
    for (id, rule) in &by_type[input.0] {
        if engine.eval(rule, &mut input.1).unwrap_or(false) {
            out.push(*id);
        }
    }
    black_box(&*out);
    out.len()
}

// ---------------------------------------------------------------------------------

const ENGINES: [&str; 6] = ["nurture", "native", "cel", "rhai", "zen", "evalexpr"];

fn arg<T: std::str::FromStr>(name: &str, default: T) -> T {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn print_table(title: &str, stats: &[(&str, Stat)], extra: &[(&str, Stat)]) {
    let nurture = stats[0].1.median;
    let native = stats[1].1.median;
    println!("\n{title}");
    println!("  {:<28} {:>12} {:>22} {:>12}", "engine", "ns/eval", "min .. max of samples", "vs nurture");
    for (name, s) in stats.iter().chain(extra) {
        println!(
            "  {:<28} {:>12.1} {:>22} {:>11.2}x",
            name,
            s.median,
            format!("{:.1} .. {:.1}", s.min, s.max),
            s.median / nurture
        );
    }
    println!("  nurture / native = {:.2}x", nurture / native);
}

fn main() {
    let json = std::env::args().any(|a| a == "--json");
    let timing = Timing {
        sample: Duration::from_millis(arg("--sample-ms", 1000)),
        reps: arg("--reps", 5usize).max(1),
    };
    let now = nurture::Timestamp::from_unix(1_700_000_000, 0).unwrap();
    let started = Instant::now();

    // ---------------- rule4 ----------------
    let mut rng = gen::Rng::new(gen::RULE4_SEED);
    let r4 = vec![gen::rule4()];
    let r4_inputs = gen::rule4_inputs(&mut rng, 64);
    let r4_holds = r4_inputs.iter().filter(|i| gen::reference_eval(&r4[0].cond, i)).count();
    println!(
        "rule4: 1 rule, 4 conditions; {} prepared inputs, cycled ({} hold, {} fail the first condition)",
        r4_inputs.len(),
        r4_holds,
        r4_inputs.len() - r4_holds
    );
    println!("  CEL (nurture, cel): {}", gen::emit(&r4[0].cond, 0, Syntax::Cel));
    println!("  rhai:               {}", gen::emit(&r4[0].cond, 0, Syntax::Rhai));
    println!("  zen:                {}", gen::emit(&r4[0].cond, 0, Syntax::Zen));
    println!("  evalexpr:           {}", gen::emit(&r4[0].cond, 0, Syntax::Evalexpr));

    // nurture: the rule's compiled condition (Expression::eval_bool), no index; for
    // information, the same tuned (`Program::tune`) on separately generated inputs.
    let p4 = nurture_compile(&r4);
    let mut p4_tuned = p4.clone();
    let tuning4 = tune(&mut p4_tuned, gen::rule4_inputs(&mut gen::Rng::new(gen::RULE4_SEED ^ TUNING_SEED), 64));
    println!("  nurture (tuned) on 64 other inputs: {} of {} conditions reordered", tuning4.reordered, tuning4.conditions);
    let n4 = nurture_prepare(&p4, &r4_inputs);
    let cond4 = p4.rules()[0].condition().expect("rule4 has a condition");
    let cond4_tuned = p4_tuned.rules()[0].condition().expect("rule4 has a condition");
    let acts4: Vec<nurture::expr::Activation<'_>> = n4
        .iter()
        .map(|(c, e)| nurture::expr::Activation::new().with_contact(c).with_event(e).with_now(now))
        .collect();
    for (i, input) in r4_inputs.iter().enumerate() {
        let want = gen::reference_eval(&r4[0].cond, input);
        match cond4.eval_bool(&acts4[i]) {
            Ok(got) if got == want => {}
            other => fail(format!(
                "[rule4] engine `nurture` returns {other:?} on rule `{}` for input #{i}; native/reference say {want}.\n  rule (CEL): {}\n  input: {}",
                r4[0].id, cond4.source(), gen::describe(input)
            )),
        }
    }
    check_nurture_rules("rule4", &p4, &r4, &r4_inputs, &n4, now);
    check_nurture_rules("rule4 (tuned)", &p4_tuned, &r4, &r4_inputs, &n4, now);
    // native: the hand-written function, checked against the reference too.
    let nat4: Vec<(NContact, NEvent)> = r4_inputs.iter().map(to_native).collect();
    for (i, input) in r4_inputs.iter().enumerate() {
        let want = gen::reference_eval(&r4[0].cond, input);
        if rule4_native(&nat4[i].0, &nat4[i].1) != want {
            fail(format!(
                "[rule4] hand-written native closure disagrees with the spec for input #{i}: {}",
                gen::describe(input)
            ));
        }
    }

    let mut scratch = nurture::MatchScratch::default();
    let mut benches = vec![
        bench("nurture", n4.len(), |i| usize::from(cond4.eval_bool(&acts4[i]).unwrap_or(false))),
        bench("native", nat4.len(), |i| usize::from(rule4_native(&nat4[i].0, &nat4[i].1))),
        peer_bench("cel", Cel { env: Arc::new(cel::Env::stdlib()) }, "rule4", &r4, &r4_inputs, r4_holds),
        peer_bench("rhai", Rhai { engine: rhai::Engine::new() }, "rule4", &r4, &r4_inputs, r4_holds),
        peer_bench("zen", Zen { vm: zen_expression::vm::VM::new() }, "rule4", &r4, &r4_inputs, r4_holds),
        peer_bench("evalexpr", Evalexpr, "rule4", &r4, &r4_inputs, r4_holds),
        // For information: the same rule through match_event, where the index
        // resolves `event.url == "/pricing"` with one hash lookup.
        bench("nurture (match_event)", n4.len(), |i| {
            p4.match_event(&n4[i].0, &n4[i].1, now, &mut scratch).rules.len()
        }),
        bench("nurture (tuned)", n4.len(), |i| usize::from(cond4_tuned.eval_bool(&acts4[i]).unwrap_or(false))),
    ];
    println!("  check: all engines agree with the reference on all {} inputs; timing...", r4_inputs.len());
    let mut rule4_stats = measure_all(&timing, &mut benches);
    drop(benches);
    let r4_extra = rule4_stats.split_off(ENGINES.len());
    print_table(
        "rule4 — ns per evaluation (one input, one rule), median of samples",
        &rule4_stats,
        &r4_extra,
    );
    println!("  (nurture = Expression::eval_bool on the compiled condition; `nurture (match_event)` adds the index, informational only)");

    // ---------------- rules200 ----------------
    let mut rng = gen::Rng::new(gen::RULES200_SEED);
    let r200 = gen::rules200(&mut rng);
    let inputs = gen::rules200_inputs(&mut rng, 256);
    let p200 = nurture_compile(&r200);
    let mut p200_tuned = p200.clone();
    let tuning200 =
        tune(&mut p200_tuned, gen::rules200_inputs(&mut gen::Rng::new(gen::RULES200_SEED ^ TUNING_SEED), 256));
    let n200 = nurture_prepare(&p200, &inputs);
    let (expected, evaluated) = check_nurture_rules("rules200", &p200, &r200, &inputs, &n200, now);
    check_nurture_rules("rules200 (tuned)", &p200_tuned, &r200, &inputs, &n200, now);
    let per_type_avg: f64 =
        inputs.iter().map(|i| r200.iter().filter(|r| r.ty == i.event.ty).count()).sum::<usize>() as f64
            / inputs.len() as f64;
    let with_disc = r200
        .iter()
        .filter(|r| matches!(&r.cond, Cond::And(p) if matches!(p[0], Cond::Cmp(F::E(0), Op::Eq, _) | Cond::In(F::E(0), _))))
        .count();
    println!(
        "\nrules200: {} rules over {} event types ({} open with an equality discriminator on an event property); {} prepared events, cycled",
        r200.len(), EVENT_TYPES.len(), with_disc, inputs.len()
    );
    println!(
        "  per event: {:.2} rules of its type (what the peers evaluate), {:.2} candidates after nurture's index, {:.2} matched",
        per_type_avg,
        evaluated as f64 / inputs.len() as f64,
        expected as f64 / inputs.len() as f64
    );
    println!(
        "  nurture (tuned), Program::tune on 256 other inputs: {} of {} conditions reordered",
        tuning200.reordered, tuning200.conditions
    );
    for r in r200.iter().take(3) {
        println!("  e.g. {} on {}: {}", r.id, EVENT_TYPES[r.ty].0, gen::emit(&r.cond, r.ty, Syntax::Cel));
    }

    let mut scratch = nurture::MatchScratch::default();
    let mut scratch_tuned = nurture::MatchScratch::default();
    let mut benches = vec![
        bench("nurture", n200.len(), |i| {
            p200.match_event(&n200[i].0, &n200[i].1, now, &mut scratch).rules.len()
        }),
        peer_bench("native", Native, "rules200", &r200, &inputs, expected),
        peer_bench("cel", Cel { env: Arc::new(cel::Env::stdlib()) }, "rules200", &r200, &inputs, expected),
        peer_bench("rhai", Rhai { engine: rhai::Engine::new() }, "rules200", &r200, &inputs, expected),
        peer_bench("zen", Zen { vm: zen_expression::vm::VM::new() }, "rules200", &r200, &inputs, expected),
        peer_bench("evalexpr", Evalexpr, "rules200", &r200, &inputs, expected),
        peer_bench("native (run-time closures)", NativeDyn, "rules200", &r200, &inputs, expected),
        bench("nurture (tuned)", n200.len(), |i| {
            p200_tuned.match_event(&n200[i].0, &n200[i].1, now, &mut scratch_tuned).rules.len()
        }),
    ];
    println!("  check: all engines agree with the reference on every rule x input of its type ({} inputs); timing...", inputs.len());
    let mut rules200_stats = measure_all(&timing, &mut benches);
    drop(benches);
    let r200_extra = rules200_stats.split_off(ENGINES.len());
    print_table(
        "rules200 — ns per incoming event (candidate rules found and evaluated, matched ids collected), median of samples",
        &rules200_stats,
        &r200_extra,
    );
    println!("  (peers and native evaluate every rule of the event's type from a per-type Vec; nurture uses match_event and its index)");
    println!("  (native = one plain Rust fn per rule, written by build.rs; `native (run-time closures)` composes boxed closures, informational only)");
    println!("\nall engines agreed on every input; total run time {:.1?}", started.elapsed());

    if json {
        let obj = |stats: &[(&str, Stat)]| {
            let fields: Vec<String> = ENGINES
                .iter()
                .map(|e| {
                    let s = stats.iter().find(|(n, _)| n == e).expect("engine measured").1;
                    format!("\"{e}\": {:.3}", s.median)
                })
                .collect();
            format!("{{{}}}", fields.join(", "))
        };
        println!("{{\"rule4\": {}, \"rules200\": {}}}", obj(&rule4_stats), obj(&rules200_stats));
    }
}
