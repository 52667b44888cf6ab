//! Structured filters: each operator's result on present and on missing values.

use nurture::{MatchScratch, Program, Timestamp, Value};
use serde_json::json;

const NOW: i64 = 1_700_000_000;

/// Compiles one rule with `filter` over a contact field and reports whether it matches a
/// contact whose field holds `value` (`None`: the field is missing).
fn matches(field: &str, op: &str, operand: Option<serde_json::Value>, value: Option<Value>) -> bool {
    let mut test = json!({"field": format!("contact.{field}"), "op": op});
    if let Some(operand) = operand {
        test["value"] = operand;
    }
    let doc = json!({
        "version": 1,
        "schema": {
            "contact": {"name": "string", "size": "int", "ratio": "double", "tags": "list(string)", "seen_at": "timestamp", "vip": "bool"},
            "events": {"ping": {}}
        },
        "rules": [{"id": "r", "on": "ping", "filter": test}]
    });
    let program = Program::from_json(&doc.to_string()).unwrap_or_else(|e| panic!("{}", e.render()));
    let schema = program.schema();
    let now = Timestamp::from_unix(NOW, 0).unwrap();
    let mut contact = schema.contact("c");
    if let Some(v) = value {
        contact = contact.set(field, v).unwrap();
    }
    let contact = contact.build();
    let event = schema.event("e", "c", "ping", now).unwrap().build();
    let mut scratch = MatchScratch::default();
    let m = program.match_event(&contact, &event, now, &mut scratch);
    assert!(m.errors.is_empty(), "filters never end in errors: {:?}", m.errors);
    !m.rules.is_empty()
}

fn s(v: &str) -> Option<Value> {
    Some(Value::from(v))
}

fn ts(secs: i64) -> Option<Value> {
    Some(Value::Timestamp(Timestamp::from_unix(secs, 0).unwrap()))
}

#[test]
fn equals() {
    assert!(matches("name", "equals", Some(json!("Ada")), s("Ada")));
    assert!(!matches("name", "equals", Some(json!("Ada")), s("Bob")));
    assert!(!matches("name", "equals", Some(json!("Ada")), None));
    assert!(matches("vip", "equals", Some(json!(true)), Some(Value::Bool(true))));
}

#[test]
fn not_equals_also_matches_missing() {
    assert!(matches("name", "not_equals", Some(json!("Ada")), s("Bob")));
    assert!(!matches("name", "not_equals", Some(json!("Ada")), s("Ada")));
    assert!(matches("name", "not_equals", Some(json!("Ada")), None));
}

#[test]
fn ordering_operators_never_match_missing() {
    for (op, below, equal, above) in [
        ("gt", false, false, true),
        ("gte", false, true, true),
        ("lt", true, false, false),
        ("lte", true, true, false),
    ] {
        assert_eq!(matches("size", op, Some(json!(50)), Some(Value::Int(10))), below, "{op} below");
        assert_eq!(matches("size", op, Some(json!(50)), Some(Value::Int(50))), equal, "{op} equal");
        assert_eq!(matches("size", op, Some(json!(50)), Some(Value::Int(90))), above, "{op} above");
        assert!(!matches("size", op, Some(json!(50)), None), "{op} missing");
    }
    // A double operand on an int field compares numerically.
    assert!(matches("size", "gt", Some(json!(49.5)), Some(Value::Int(50))));
    assert!(matches("ratio", "lt", Some(json!(1)), Some(Value::Double(0.5))));
}

#[test]
fn between_is_inclusive_and_false_on_missing() {
    assert!(matches("size", "between", Some(json!([10, 20])), Some(Value::Int(10))));
    assert!(matches("size", "between", Some(json!([10, 20])), Some(Value::Int(20))));
    assert!(!matches("size", "between", Some(json!([10, 20])), Some(Value::Int(21))));
    assert!(!matches("size", "between", Some(json!([10, 20])), None));
}

#[test]
fn in_and_not_in() {
    assert!(matches("name", "in", Some(json!(["Ada", "Bob"])), s("Bob")));
    assert!(!matches("name", "in", Some(json!(["Ada", "Bob"])), s("Cy")));
    assert!(!matches("name", "in", Some(json!(["Ada", "Bob"])), None));
    assert!(matches("name", "not_in", Some(json!(["Ada", "Bob"])), s("Cy")));
    assert!(!matches("name", "not_in", Some(json!(["Ada", "Bob"])), s("Ada")));
    assert!(matches("name", "not_in", Some(json!(["Ada", "Bob"])), None));
}

#[test]
fn is_empty_matches_missing_or_empty() {
    assert!(matches("name", "is_empty", None, None));
    assert!(matches("name", "is_empty", None, s("")));
    assert!(!matches("name", "is_empty", None, s("x")));
    assert!(matches("tags", "is_empty", None, Some(Value::list([]))));
    assert!(!matches("tags", "is_empty", None, Some(Value::list([Value::from("a")]))));
    assert!(matches("size", "is_empty", None, None));
    assert!(!matches("size", "is_empty", None, Some(Value::Int(0))));
}

#[test]
fn is_not_empty_is_the_negation() {
    assert!(!matches("name", "is_not_empty", None, None));
    assert!(!matches("name", "is_not_empty", None, s("")));
    assert!(matches("name", "is_not_empty", None, s("x")));
    assert!(matches("tags", "is_not_empty", None, Some(Value::list([Value::from("a")]))));
    assert!(matches("size", "is_not_empty", None, Some(Value::Int(0))));
}

#[test]
fn string_operators_never_match_missing() {
    for (op, operand, yes, no) in [
        ("contains", "da", "Ada", "Bob"),
        ("starts_with", "Ad", "Ada", "Bad"),
        ("ends_with", "da", "Ada", "Adam"),
        ("matches", "^A.a$", "Ada", "Adam"),
    ] {
        assert!(matches("name", op, Some(json!(operand)), s(yes)), "{op} yes");
        assert!(!matches("name", op, Some(json!(operand)), s(no)), "{op} no");
        assert!(!matches("name", op, Some(json!(operand)), None), "{op} missing");
    }
    assert!(matches("tags", "contains", Some(json!("vip")), Some(Value::list([Value::from("vip")]))));
    assert!(!matches("tags", "contains", Some(json!("vip")), None));
}

#[test]
fn time_operators() {
    let day = 86_400;
    assert!(matches("seen_at", "within_last", Some(json!(7)), ts(NOW - 6 * day)));
    assert!(!matches("seen_at", "within_last", Some(json!(7)), ts(NOW - 8 * day)));
    assert!(
        !matches("seen_at", "within_last", Some(json!(7)), ts(NOW + day)),
        "the future is not within the last days"
    );
    assert!(matches("seen_at", "within_last", Some(json!("36h")), ts(NOW - 35 * 3600)));
    assert!(!matches("seen_at", "within_last", Some(json!(7)), None));
    // Centuries ago is simply outside the window, not a range error.
    assert!(!matches("seen_at", "within_last", Some(json!(7)), ts(-11_000_000_000)));
    assert!(matches("seen_at", "before", Some(json!("2023-01-01T00:00:00Z")), ts(1_600_000_000)));
    assert!(!matches("seen_at", "before", Some(json!("2023-01-01T00:00:00Z")), ts(NOW)));
    assert!(!matches("seen_at", "before", Some(json!("2023-01-01T00:00:00Z")), None));
    assert!(matches("seen_at", "after", Some(json!("2023-01-01T00:00:00Z")), ts(NOW)));
    assert!(!matches("seen_at", "after", Some(json!("2023-01-01T00:00:00Z")), None));
}

#[test]
fn within_last_windows_are_validated() {
    for window in [json!(-1), json!(1.5), json!(100_000), json!("-1h"), json!("soon"), json!(true)] {
        let doc = json!({
            "version": 1,
            "schema": {"contact": {"seen_at": "timestamp"}, "events": {"ping": {}}},
            "rules": [{"id": "r", "on": "ping", "filter": {"field": "contact.seen_at", "op": "within_last", "value": window}}]
        });
        let err = Program::from_json(&doc.to_string()).unwrap_err();
        assert_eq!(err.diagnostics[0].path, "/rules/0/filter/value", "{window}");
    }
}

#[test]
fn groups_combine() {
    let doc = json!({
        "version": 1,
        "schema": {"contact": {"name": "string", "size": "int"}, "events": {"ping": {}}},
        "rules": [{"id": "r", "on": "ping", "filter": {"any": [
            {"all": [{"field": "contact.name", "op": "equals", "value": "Ada"}, {"field": "contact.size", "op": "gt", "value": 5}]},
            {"not": {"field": "contact.size", "op": "is_not_empty"}}
        ]}}]
    });
    let program = Program::from_json(&doc.to_string()).unwrap();
    let schema = program.schema();
    let now = Timestamp::from_unix(NOW, 0).unwrap();
    let event = schema.event("e", "c", "ping", now).unwrap().build();
    let check = |name: &str, size: Option<i64>| {
        let mut c = schema.contact("c").set("name", name).unwrap();
        if let Some(size) = size {
            c = c.set("size", size).unwrap();
        }
        let c = c.build();
        let mut scratch = MatchScratch::default();
        !program.match_event(&c, &event, now, &mut scratch).rules.is_empty()
    };
    assert!(check("Ada", Some(6)));
    assert!(!check("Ada", Some(5)));
    assert!(check("Bob", None));
    assert!(!check("Bob", Some(9)));
}

#[test]
fn filter_mistakes_are_diagnosed_together() {
    let doc = json!({
        "version": 1,
        "schema": {"contact": {"name": "string", "size": "int"}, "events": {"ping": {}}},
        "rules": [{"id": "r", "on": "ping", "filter": {"all": [
            {"field": "contact.nmae", "op": "equals", "value": "Ada"},
            {"field": "contact.size", "op": "starts_with", "value": "1"},
            {"field": "contact.size", "op": "between", "value": [1]},
            {"field": "contact.name", "op": "equals", "value": 3}
        ]}}]
    });
    let err = Program::from_json(&doc.to_string()).unwrap_err();
    let paths: Vec<&str> = err.diagnostics.iter().map(|d| d.path.as_str()).collect();
    assert_eq!(
        paths,
        [
            "/rules/0/filter/all/0/field",
            "/rules/0/filter/all/1/op",
            "/rules/0/filter/all/2/value",
            "/rules/0/filter/all/3/value"
        ]
    );
    assert_eq!(err.diagnostics[0].did_you_mean.as_deref(), Some("contact.name"));
}
