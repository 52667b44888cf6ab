//! Hostile input: deep nesting, huge literals, runaway evaluation, arbitrary text.
//! Every case must end in an error (or a value), never a panic, stack overflow or hang.

use nurture::expr::{Activation, Env, EvalErrorKind};
use nurture::{Code, Limits, Program, Type};
use proptest::prelude::*;

fn compile_error_code(source: &str) -> Code {
    match Env::new().compile(source) {
        Ok(_) => panic!("`{}` compiled", &source[..source.len().min(60)]),
        Err(e) => e.diagnostics[0].code,
    }
}

#[test]
fn one_hundred_thousand_nested_parentheses() {
    let source = format!("{}1{}", "(".repeat(100_000), ")".repeat(100_000));
    assert_eq!(compile_error_code(&source), Code::LimitExceeded);
    let source = format!("{}1{}", "[".repeat(50_000), "]".repeat(50_000));
    let limits = Limits { max_expression_len: 1 << 20, ..Limits::default() };
    let err = Env::new().with_limits(limits).compile(&source).unwrap_err();
    assert_eq!(err.diagnostics[0].code, Code::LimitExceeded);
}

#[test]
fn long_operator_chains_are_bounded() {
    let source = vec!["1"; 100_000].join(" + ");
    let limits = Limits { max_expression_len: 1 << 20, ..Limits::default() };
    let err = Env::new().with_limits(limits.clone()).compile(&source).unwrap_err();
    assert_eq!(err.diagnostics[0].code, Code::LimitExceeded);
    let source = format!("{}true", "!".repeat(100_000));
    let err = Env::new().with_limits(limits).compile(&source).unwrap_err();
    assert_eq!(err.diagnostics[0].code, Code::LimitExceeded);
}

#[test]
fn long_conjunctions_are_accepted() {
    let env = Env::new().with_variable("x", Type::Int).unwrap();
    let source = vec!["x > 0"; 2_000].join(" && ");
    let expr = env.compile(&source).unwrap();
    let vars = env.bind([("x", 1.into())]).unwrap();
    assert_eq!(expr.eval_bool(&Activation::new().with_variables(&vars)), Ok(true));
}

#[test]
fn ten_megabyte_string_literal() {
    let source = format!("'{}' == 'a'", "a".repeat(10 << 20));
    assert_eq!(compile_error_code(&source), Code::LimitExceeded);
    // Raising the limit makes it an ordinary (if large) expression.
    let limits = Limits { max_expression_len: 11 << 20, ..Limits::default() };
    let expr = Env::new().with_limits(limits).compile(&source).unwrap();
    assert_eq!(expr.eval_bool(&Activation::new()), Ok(false));
}

#[test]
fn huge_documents_and_rule_counts_are_limited() {
    let limits = Limits { max_rules: 10, ..Limits::default() };
    let rules: Vec<String> = (0..11).map(|i| format!(r#"{{"id": "r{i}", "on": "e"}}"#)).collect();
    let doc =
        format!(r#"{{"version": 1, "schema": {{"events": {{"e": {{}}}}}}, "rules": [{}]}}"#, rules.join(","));
    let err = Program::from_json_with_limits(&doc, &limits).unwrap_err();
    assert_eq!(err.diagnostics[0].code, Code::LimitExceeded);
    let limits = Limits { max_document_len: 100, ..Limits::default() };
    let err = Program::from_json_with_limits(&doc, &limits).unwrap_err();
    assert_eq!(err.diagnostics[0].code, Code::LimitExceeded);
}

#[test]
fn deeply_nested_documents() {
    let doc = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
    assert_eq!(Program::from_json(&doc).unwrap_err().diagnostics[0].code, Code::DocumentSyntax);
    let mut filter = r#"{"field": "contact.n", "op": "is_empty"}"#.to_string();
    for _ in 0..100 {
        filter = format!(r#"{{"not": {filter}}}"#);
    }
    let doc = format!(
        r#"{{"version": 1, "schema": {{"contact": {{"n": "int"}}, "events": {{"e": {{}}}}}}, "rules": [{{"id": "r", "on": "e", "filter": {filter}}}]}}"#
    );
    let err = Program::from_json(&doc).unwrap_err();
    assert_eq!(err.diagnostics[0].code, Code::LimitExceeded);
}

#[test]
fn runaway_comprehensions_hit_the_budget() {
    let list = format!("[{}]", (0..1000).map(|i| i.to_string()).collect::<Vec<_>>().join(","));
    let source = format!("{list}.all(x, {list}.all(y, {list}.all(z, x + y + z >= 0)))");
    let expr = Env::new().compile(&source).unwrap();
    let err = expr.eval(&Activation::new()).unwrap_err();
    assert_eq!(err.kind(), EvalErrorKind::BudgetExceeded);
}

#[test]
fn the_evaluation_budget_is_configurable() {
    let list = format!("[{}]", (0..100).map(|i| i.to_string()).collect::<Vec<_>>().join(","));
    let source = format!("{list}.all(x, {list}.all(y, x + y >= 0))");
    let expr = Env::new().compile(&source).unwrap();
    assert_eq!(expr.eval(&Activation::new()).unwrap(), nurture::Value::Bool(true));
    let tight = Limits { max_eval_steps: 1_000, ..Limits::default() };
    let expr = Env::new().with_limits(tight).compile(&source).unwrap();
    assert_eq!(expr.eval(&Activation::new()).unwrap_err().kind(), EvalErrorKind::BudgetExceeded);
    assert_eq!(expr.eval_bool(&Activation::new()).unwrap_err().kind(), EvalErrorKind::BudgetExceeded);
}

#[test]
fn hostile_regular_expressions() {
    // Too big to compile: a diagnostic, not a hang or an allocation storm.
    assert_eq!(compile_error_code("'a'.matches('((a{100}){100}){100}')"), Code::InvalidLiteral);
    // Catastrophic for backtracking engines, linear here.
    let env = Env::new().with_variable("s", Type::String).unwrap();
    let expr = env.compile("s.matches('^(a+)+$')").unwrap();
    let vars = env.bind([("s", format!("{}b", "a".repeat(100_000)).into())]).unwrap();
    assert_eq!(expr.eval_bool(&Activation::new().with_variables(&vars)), Ok(false));
    // A pattern only known at run time is bounded the same way.
    let env = Env::new().with_variable("p", Type::String).unwrap();
    let expr = env.compile("'a'.matches(p)").unwrap();
    let vars = env.bind([("p", "((a{100}){100}){100}".into())]).unwrap();
    assert_eq!(
        expr.eval(&Activation::new().with_variables(&vars)).unwrap_err().kind(),
        EvalErrorKind::InvalidArgument
    );
}

#[test]
fn numeric_edge_cases_are_errors_or_values() {
    let cases = [
        ("9223372036854775807 + 1", false),
        ("-9223372036854775808 / -1", false),
        ("-9223372036854775808 % -1", false),
        ("1 / 0", false),
        ("int(1e300)", false),
        ("int(0.0 / 0.0)", false),
        ("0.0 / 0.0 != 0.0 / 0.0", true),
        ("1.0 / 0.0 > 1e308", true),
        ("double('NaN') == double('NaN')", true),
        ("duration('9999999999999999999999h')", false),
        ("timestamp('9999-12-31T23:59:59Z') + duration('1s')", false),
    ];
    for (source, ok) in cases {
        match Env::new().compile(source) {
            Ok(expr) => assert_eq!(expr.eval(&Activation::new()).is_ok(), ok, "{source}"),
            Err(e) => assert!(!ok, "{source}: {}", e.render()),
        }
    }
}

fn json_strategy() -> impl Strategy<Value = serde_json::Value> {
    let keys = prop::sample::select(vec![
        "version", "schema", "rules", "contact", "events", "scores", "id", "on", "when", "filter", "actions",
        "type", "all", "any", "not", "field", "op", "value", "enabled", "x", "e",
    ]);
    let leaf = prop_oneof![
        Just(serde_json::Value::Null),
        any::<bool>().prop_map(serde_json::Value::from),
        any::<i64>().prop_map(serde_json::Value::from),
        any::<f64>().prop_filter("finite", |f| f.is_finite()).prop_map(serde_json::Value::from),
        prop::sample::select(vec![
            "int",
            "string",
            "e",
            "contact.x",
            "event.y",
            "equals",
            "in",
            "is_empty",
            "within_last",
            "true",
            "1 +",
            "has(contact.x)",
            "add_tag",
            "list(int)",
            "x",
            "[1,2][5]",
        ])
        .prop_map(serde_json::Value::from),
        "\\PC{0,12}".prop_map(serde_json::Value::from),
    ];
    leaf.prop_recursive(5, 64, 6, move |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..5).prop_map(serde_json::Value::from),
            prop::collection::vec((keys.clone(), inner), 0..6).prop_map(|entries| {
                serde_json::Value::Object(entries.into_iter().map(|(k, v)| (k.to_string(), v)).collect())
            }),
        ]
    })
}

/// What an expression does, as text comparable between runs (maps compare by their
/// entries in order, errors by kind and message).
fn outcome(r: &Result<nurture::Value, nurture::expr::EvalError>) -> String {
    match r {
        Ok(v) => format!("ok {v}"),
        Err(e) => format!("error {:?}: {e}", e.kind()),
    }
}

/// Compiles `source`: a refusal has diagnostics whose spans lie inside the text; an
/// expression evaluates the same way twice, and its fused-predicate form agrees with
/// the general evaluator.
fn check_expression(source: &str) -> Result<(), TestCaseError> {
    let env = Env::new().with_variable("x", Type::Dyn).unwrap();
    let vars = env.bind([("x", nurture::Value::Int(3))]).unwrap();
    let act = Activation::new().with_variables(&vars);
    match env.compile(source) {
        Err(e) => {
            prop_assert!(!e.diagnostics.is_empty());
            for d in &e.diagnostics {
                prop_assert!(!d.message.is_empty());
                if let Some(span) = d.span {
                    prop_assert!(
                        span.start <= span.end && span.end as usize <= source.len() + 1,
                        "{span:?} in {source:?}"
                    );
                }
            }
        }
        Ok(expr) => {
            let first = expr.eval(&act);
            prop_assert_eq!(outcome(&first), outcome(&expr.eval(&act)), "{}", source);
            if *expr.result_type() == Type::Bool {
                match (&first, expr.eval_bool(&act)) {
                    (Ok(nurture::Value::Bool(a)), Ok(b)) => prop_assert_eq!(*a, b, "{}", source),
                    (Err(_), Err(_)) => {}
                    (a, b) => prop_assert!(false, "{source}: eval {a:?}, eval_bool {b:?}"),
                }
            }
        }
    }
    Ok(())
}

/// A refused document has diagnostics, each with a message and a JSON path or a span.
fn check_document(result: Result<Program, nurture::CompileError>) -> Result<Option<Program>, TestCaseError> {
    match result {
        Ok(p) => Ok(Some(p)),
        Err(e) => {
            prop_assert!(!e.diagnostics.is_empty());
            for d in &e.diagnostics {
                prop_assert!(!d.message.is_empty());
                prop_assert!(d.path.is_empty() || d.path.starts_with('/'), "{}", e.render());
            }
            prop_assert!(!e.render().is_empty());
            Ok(None)
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn arbitrary_text_compiles_or_is_refused_with_spans_and_evaluates_consistently(source in "\\PC{0,80}") {
        check_expression(&source)?;
    }

    #[test]
    fn cel_like_token_soup_compiles_or_is_refused_and_evaluates_consistently(tokens in prop::collection::vec(prop::sample::select(vec![
        "x", "1", "2.5", "'s'", "(", ")", "[", "]", "{", "}", ":", ",", ".", "+", "-", "*", "/", "%",
        "==", "<", "&&", "||", "!", "?", "in", "size", "all", "map", "exists", "has", "matches",
        "timestamp", "duration", "int", "null", "true", "e", "getHours", "\"", "\\",
    ]), 0..30)) {
        check_expression(&tokens.join(" "))?;
    }

    #[test]
    fn arbitrary_documents_read_the_same_as_json_and_as_toml(doc in json_strategy()) {
        let json = check_document(Program::from_json(&doc.to_string()))?;
        // The same document written as TOML (when TOML can hold it: a table without
        // nulls) is accepted or refused alike.
        #[cfg(feature = "toml")]
        if let Ok(text) = toml::to_string(&doc) {
            let from_toml = check_document(Program::from_toml(&text))?;
            prop_assert_eq!(json.is_some(), from_toml.is_some(), "JSON and TOML disagree on\n{}", text);
        }
        let _ = json;
    }

    #[test]
    fn near_valid_documents_are_refused_at_the_rule_that_is_wrong(when in "\\PC{0,40}", op in "[a-z_]{0,12}", value in json_strategy()) {
        let doc = serde_json::json!({
            "version": 1,
            "schema": {"contact": {"x": "int", "s": "string", "t": "timestamp", "l": "list(string)"}, "events": {"e": {"y": "string"}}},
            "rules": [
                {"id": "a", "on": "e", "when": when},
                {"id": "b", "on": "e", "filter": {"field": "contact.x", "op": op, "value": value.clone()}},
                {"id": "c", "on": "e", "filter": {"any": [{"field": "contact.s", "op": "in", "value": value.clone()}, {"field": "contact.t", "op": "within_last", "value": value}]}}
            ]
        });
        match Program::from_json(&doc.to_string()) {
            Ok(program) => prop_assert_eq!(program.rules().len(), 3),
            Err(e) => {
                for d in &e.diagnostics {
                    prop_assert!(d.path.starts_with("/rules/"), "{}", e.render());
                }
            }
        }
    }
}
