//! Rendered diagnostics for representative mistakes, pinned.

use nurture::{Code, Program};

const SCHEMA: &str = r#""schema": {
    "contact": {"job_title": "string", "company_size": "int", "country": "string"},
    "events": {"page_visit": {"url": "string"}, "form_submit": {"form": "string"}}
  }"#;

fn compile(rules: &str) -> nurture::CompileError {
    let doc = format!(r#"{{"version": 1, {SCHEMA}, "rules": [{rules}]}}"#);
    Program::from_json(&doc).expect_err("the document has mistakes")
}

#[test]
fn unknown_field() {
    let err = compile(
        r#"{"id": "r1", "on": "page_visit", "when": "event.url == '/pricing' && contact.compnay_size >= 1000"}"#,
    );
    assert_eq!(err.diagnostics.len(), 1);
    assert_eq!(err.diagnostics[0].code, Code::UnknownField);
    assert_eq!(
        err.render(),
        "\
error[E0102]: no field `compnay_size` on `contact`: contacts have no such field
 --> /rules/0/when 1:36
  |
1 | event.url == '/pricing' && contact.compnay_size >= 1000
  |                                    ^^^^^^^^^^^^
  = help: declare `compnay_size` in the schema, or check the spelling
  = did you mean `company_size`?
"
    );
}

#[test]
fn type_mismatch() {
    let err = compile(
        r#"{"id": "r1", "on": "page_visit", "when": "contact.company_size > 10.5 && contact.company_size + 1.5 > 3.0"}"#,
    );
    assert_eq!(
        err.render(),
        "\
error[E0104]: no matching overload for `+` applied to (int, double)
 --> /rules/0/when 1:32
  |
1 | contact.company_size > 10.5 && contact.company_size + 1.5 > 3.0
  |                                ^^^^^^^^^^^^^^^^^^^^^^^^^^
  = help: int and double do not mix in arithmetic; convert one side with `double(..)` or `int(..)`
"
    );
}

#[test]
fn unsupported_function() {
    let err = compile(r#"{"id": "r1", "on": "form_submit", "when": "event.form.split('-').size() > 1"}"#);
    assert_eq!(err.diagnostics[0].code, Code::Unsupported);
    assert_eq!(
        err.render(),
        "\
error[E0002]: the CEL function `split` is outside the subset nurture supports
 --> /rules/0/when 1:12
  |
1 | event.form.split('-').size() > 1
  |            ^^^^^
  = help: see docs/expressions.md for the supported functions
"
    );
}

#[test]
fn syntax_error() {
    let err = compile(r#"{"id": "r1", "on": "page_visit", "when": "event.url == '/pricing' &&"}"#);
    assert_eq!(err.diagnostics[0].code, Code::Syntax);
    assert_eq!(
        err.render(),
        "\
error[E0001]: unexpected end of input, expected an expression
 --> /rules/0/when 1:27
  |
1 | event.url == '/pricing' &&
  |                           ^
  = help: complete the expression; something is missing at the end
"
    );
}

#[test]
fn duplicate_rule_id() {
    let err = compile(
        r#"{"id": "pricing", "on": "page_visit", "when": "event.url == '/pricing'"},
           {"id": "pricing", "on": "page_visit", "when": "event.url == '/pricing/enterprise'"}"#,
    );
    assert_eq!(
        err.render(),
        "\
error[E0204]: rule id `pricing` is used twice
 --> /rules/1/id
 = help: rule ids must be unique; the first use is /rules/0/id
"
    );
}

#[test]
fn every_problem_is_reported_at_once() {
    let err = compile(
        r#"{"id": "a", "on": "page_vist", "when": "true"},
           {"id": "b", "on": "page_visit", "when": "event.ulr == 1", "acions": []},
           {"id": "c", "on": "form_submit", "when": "size(event.form) > 'x'"},
           {"id": "c", "on": "form_submit", "when": "event.form.matches('(')"}"#,
    );
    let summary: Vec<(Code, &str)> = err.diagnostics.iter().map(|d| (d.code, d.path.as_str())).collect();
    assert_eq!(
        summary,
        [
            (Code::UnknownKey, "/rules/1/acions"),
            (Code::UnknownEventType, "/rules/0/on"),
            (Code::UnknownField, "/rules/1/when"),
            (Code::NoMatchingOverload, "/rules/2/when"),
            (Code::DuplicateId, "/rules/3/id"),
            (Code::InvalidLiteral, "/rules/3/when"),
        ]
    );
    assert_eq!(err.diagnostics[0].did_you_mean.as_deref(), Some("actions"));
    let err = compile(
        r#"{"id": "a", "on": "page_vist", "when": "true"}, {"id": "b", "on": "page_visit", "when": "event.ulr == 1"}"#,
    );
    assert_eq!(err.diagnostics[0].did_you_mean.as_deref(), Some("page_visit"));
    assert_eq!(err.diagnostics[1].did_you_mean.as_deref(), Some("url"));
}

#[test]
fn diagnostics_serialize_for_uis() {
    let err = compile(r#"{"id": "r1", "on": "page_visit", "when": "event.urll == '/x'"}"#);
    let json = serde_json::to_value(&err.diagnostics[0]).unwrap();
    assert_eq!(json["code"], "unknown-field");
    assert_eq!(json["path"], "/rules/0/when");
    assert_eq!(json["span"]["start"], 6);
    assert_eq!(json["span"]["end"], 10);
    assert_eq!(json["did_you_mean"], "url");
}

#[test]
fn value_inside_a_trigger() {
    let err = compile(r#"{"id": "r1", "on": {"segment": "hot", "direction": "exti"}}"#);
    assert_eq!(
        err.render(),
        "\
error[E0203]: unknown direction `exti`
 --> /rules/0/on/direction
 = help: a direction is one of: up, down, enter, exit
 = did you mean `exit`?
"
    );
}

#[test]
fn misspelled_trigger_key() {
    let err = compile(r#"{"id": "r1", "on": {"inactiv": "page_visit", "for": "30d"}}"#);
    assert_eq!(
        err.render(),
        "\
error[E0202]: unknown key `inactiv` in inactivity trigger
 --> /rules/0/on/inactiv
 = help: the keys of an inactivity trigger are: inactive, for
 = did you mean `inactive`?
"
    );
}

#[test]
fn duplicate_key() {
    let err = compile(r#"{"id": "r1", "on": "page_visit", "id": "r2"}"#);
    assert_eq!(
        err.render(),
        "\
error[E0201]: duplicate key `id`
 --> /rules/0/id
 = help: a key may appear only once in an object; remove or rename one of them
"
    );
}
