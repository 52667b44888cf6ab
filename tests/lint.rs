//! `Program::lint` on crafted rule sets.

use nurture::lint::{never_holds, Severity};
use nurture::Program;

fn codes(doc: &str) -> Vec<(String, String)> {
    let program = Program::from_json(doc).expect("compiles: lint findings never block compilation");
    program.lint().into_iter().map(|f| (f.code.to_string(), f.path)).collect()
}

const FLAWED: &str = include_str!("../crates/nurture-lab/tests/fixtures/lint/flawed.json");
const CLEAN: &str = include_str!("../crates/nurture-lab/tests/fixtures/lint/clean.json");

#[test]
fn a_clean_rule_set_has_no_findings() {
    assert_eq!(codes(CLEAN), vec![]);
}

#[test]
fn every_kind_of_finding_on_a_flawed_rule_set() {
    let found = codes(FLAWED);
    let has = |code: &str, path: &str| found.iter().any(|(c, p)| c == code && p == path);
    assert!(has("L0101", "/scoring/models/0/thresholds/1"), "{found:?}");
    assert!(!has("L0101", "/scoring/models/0/thresholds/0"), "80 is reachable under the cap of 100");
    assert!(has("L0102", "/scoring/models/0/bands/1"), "{found:?}");
    assert!(has("L0201", "/scoring/models/0/rules/1"), "x > 5 && x < 3: {found:?}");
    assert!(has("L0201", "/rules/1"), "two different equalities: {found:?}");
    assert!(has("L0201", "/rules/2"), "constant false: {found:?}");
    assert!(has("L0301", "/rules/3/on"), "waits for an unreachable threshold: {found:?}");
    assert!(has("L0501", "/rules/5"), "duplicate of /rules/4: {found:?}");
    assert!(has("L0302", "/rules/6/enabled"), "{found:?}");
    assert!(has("L0401", "/counters/1"), "pricing_7d is never read: {found:?}");
    assert!(!has("L0401", "/counters/0"), "visits_7d is read by a segment");
    assert!(has("L0402", "/segments/1"), "{found:?}");
    assert!(!has("L0402", "/segments/0"), "busy is read by a rule");
    assert_eq!(found.len(), 10, "{found:?}");
}

#[test]
fn findings_render_with_code_path_severity_and_help() {
    let program = Program::from_json(FLAWED).expect("compiles");
    let findings = program.lint();
    let f = findings.iter().find(|f| f.code == "L0101").expect("a cap finding");
    assert_eq!(f.severity, Severity::Warning);
    let text = f.render();
    assert!(text.starts_with("warning[L0101] /scoring/models/0/thresholds/1:"), "{text}");
    assert!(text.contains("impossible") && text.contains("help:"), "{text}");
}

#[test]
fn contradictions_on_one_field() {
    assert!(never_holds("contact.x > 5 && contact.x < 3").is_some());
    assert!(never_holds("contact.x >= 3 && contact.x <= 3").is_none());
    assert!(never_holds("contact.x > 3 && contact.x <= 3").is_some());
    assert!(never_holds("3 > contact.x && contact.x > 4").is_some());
    assert!(never_holds("contact.x == 2 && contact.x > 2.5").is_some());
    assert!(never_holds("contact.x > 5 || contact.x < 3").is_none());
    assert!(never_holds("contact.x > 5 && contact.y < 3").is_none());
    assert!(never_holds("true && false").is_some());
}
