//! Cost bounded by limits that hold (issue 9, items 3 and 4): every evaluation, compile
//! and step does work proportional to what the limits allow, and a contact's state stays
//! within a documented size. Each case here was slow, quadratic or unbounded before.

use std::sync::Arc;
use std::time::{Duration, Instant};

use nurture::engine::{ContactState, Engine, EngineError, EngineScratch, Status};
use nurture::expr::{Activation, Env, EvalErrorKind};
use nurture::{Code, Limits, Program, Timestamp, Type, Value};

fn int_list(n: usize) -> String {
    format!("[{}]", (0..n).map(|i| i.to_string()).collect::<Vec<_>>().join(","))
}

/// Runs `f` and checks it took less than `limit` (generous: tests run unoptimised-ish,
/// on shared cores); the cases bounded here took from tens of seconds to forever.
fn within<T>(limit: Duration, what: &str, f: impl FnOnce() -> T) -> T {
    let started = Instant::now();
    let out = f();
    let took = started.elapsed();
    assert!(took < limit, "{what} took {took:?}, more than {limit:?}");
    out
}

#[test]
fn membership_in_a_big_list_is_charged_by_its_size() {
    // 9M iterations (under the old budget of 10M iterations), each scanning up to 3000
    // elements: minutes before.
    let source = format!("[{0}].all(m, m.all(x, m.all(y, y in m)))", int_list(3000));
    let expr = Env::new().compile(&source).unwrap();
    let err = within(Duration::from_secs(5), "y in m", || expr.eval(&Activation::new()).unwrap_err());
    assert_eq!(err.kind(), EvalErrorKind::BudgetExceeded);
    // A small case of the same shape still succeeds.
    let expr = Env::new().compile(&format!("[{0}].all(m, m.all(y, y in m))", int_list(100))).unwrap();
    assert_eq!(expr.eval(&Activation::new()).unwrap(), Value::Bool(true));
}

#[test]
fn building_big_lists_is_charged_by_their_size() {
    // 5000 lists of 20,000 elements: 9.6 GB asked for before, and the process aborted.
    let source = format!("[{0}].all(m, size(m.map(y, m + m + m + m)) > 0)", int_list(5000));
    let expr = Env::new().compile(&source).unwrap();
    let err = within(Duration::from_secs(5), "m + m + m + m", || expr.eval(&Activation::new()).unwrap_err());
    assert_eq!(err.kind(), EvalErrorKind::BudgetExceeded);
}

#[test]
fn building_big_maps_and_strings_is_charged() {
    let env = Env::new().with_variable("s", Type::String).unwrap();
    let vars = env.bind([("s", Value::from("x".repeat(1 << 20)))]).unwrap();
    let act = Activation::new().with_variables(&vars);
    // Each iteration copies 2 MB: 1000 of them are 2 GB of copying.
    let expr = env.compile(&format!("{}.all(i, size(s + s) > 0)", int_list(1000))).unwrap();
    let err = within(Duration::from_secs(5), "s + s", || expr.eval(&act).unwrap_err());
    assert_eq!(err.kind(), EvalErrorKind::BudgetExceeded);
    // A map literal of 2000 entries rebuilt in every iteration of a million.
    let entries: Vec<String> = (0..2000).map(|i| format!("{i}: {i}")).collect();
    let source = format!("{0}.all(x, {0}.all(y, y in {{{1}}}))", int_list(1000), entries.join(","));
    let expr = env.compile(&source).unwrap();
    let err = within(Duration::from_secs(5), "map literals", || expr.eval(&act).unwrap_err());
    assert_eq!(err.kind(), EvalErrorKind::BudgetExceeded);
}

#[test]
fn comparing_nested_lists_is_charged_by_their_depth() {
    // l3 is 100 references to l2, itself 100 references to l1: 1M elements to compare
    // for a literal of 100.
    let source = format!(
        "[{0}].all(l1, [l1.map(x, l1)].all(l2, [l2.map(x, l2)].all(l3, {0}.all(i, l3 == l3))))",
        int_list(100)
    );
    let expr = Env::new().compile(&source).unwrap();
    let err = within(Duration::from_secs(5), "deep ==", || expr.eval(&Activation::new()).unwrap_err());
    assert_eq!(err.kind(), EvalErrorKind::BudgetExceeded);
}

#[test]
fn run_time_patterns_are_charged_as_compilations_and_results_do_not_depend_on_a_cache() {
    let env = Env::new().with_variable("p", Type::String).unwrap();
    let vars = env.bind([("p", Value::from("^[0-9]+$"))]).unwrap();
    let act = Activation::new().with_variables(&vars);
    let few = env.compile(&format!("{}.all(i, string(i).matches(p))", int_list(5))).unwrap();
    assert_eq!(few.eval(&act).unwrap(), Value::Bool(true));
    // 1000 calls are 1000 compilations in the budget, cached or not: the first and the
    // second evaluation (with a warm cache) end the same way.
    let many = env.compile(&format!("{}.all(i, string(i).matches(p))", int_list(1000))).unwrap();
    for _ in 0..2 {
        let err = within(Duration::from_secs(5), "matches(p)", || many.eval(&act).unwrap_err());
        assert_eq!(err.kind(), EvalErrorKind::BudgetExceeded);
    }
    let limits = Limits { max_eval_steps: 10_000_000_000, ..Limits::default() };
    let many =
        env.clone().with_limits(limits).compile(&format!("{}.all(i, string(i).matches(p))", int_list(1000)));
    // With a budget for it, the cache makes the thousand calls cheap.
    let many = many.unwrap();
    let ok = within(Duration::from_secs(5), "cached matches(p)", || many.eval(&act).unwrap());
    assert_eq!(ok, Value::Bool(true));
}

fn rules_doc(rules: &[String], extra: &str) -> String {
    format!(
        r#"{{"version": 1, "schema": {{"contact": {{"plan": "string", "name": "string"}}, "events": {{"e": {{"url": "string"}}}}}},
           "rules": [{}]{extra}}}"#,
        rules.join(",")
    )
}

#[test]
fn sixty_thousand_attribute_rules_compile_in_linear_time() {
    // A chain: rule i waits for plan = v{i} and sets plan = v{i+1}. 24 s before.
    let rules: Vec<String> = (0..60_000)
        .map(|i| {
            format!(
                r#"{{"id": "r{i}", "on": {{"attribute": "plan", "to": "v{i}"}},
                    "actions": [{{"type": "set_attribute", "field": "plan", "value": "v{}"}}]}}"#,
                i + 1
            )
        })
        .collect();
    let doc = rules_doc(&rules, "");
    within(Duration::from_secs(20), "60k attribute rules", || Program::from_json(&doc).unwrap());
    // Close the chain: exactly one diagnostic, naming the loop.
    let mut looped = rules.clone();
    looped.push(
        r#"{"id": "back", "on": {"attribute": "plan", "to": "v60000"},
            "actions": [{"type": "set_attribute", "field": "plan", "value": "v0"}]}"#
            .to_string(),
    );
    let err = within(Duration::from_secs(20), "a 60k-rule loop", || {
        Program::from_json(&rules_doc(&looped, "")).unwrap_err()
    });
    let cycles: Vec<_> = err.diagnostics.iter().filter(|d| d.message.contains("cycle")).collect();
    assert_eq!(cycles.len(), 1, "{}", err.render());
    assert!(cycles[0].message.contains("r0 -> r1 -> r2"), "{}", cycles[0].message);
    assert!(cycles[0].message.contains("r59999 -> back -> r0"), "{}", cycles[0].message);
}

#[test]
fn one_diagnostic_per_segment_cycle() {
    // Every segment reads the next two: one cycle component with many back edges, which
    // gave a diagnostic per back edge with paths up to 1000 long before.
    let n = 1000;
    let segments: Vec<String> = (0..n)
        .map(|i| {
            format!(r#"{{"id": "s{i}", "when": "segment.s{} || segment.s{}"}}"#, (i + 1) % n, (i + 2) % n)
        })
        .collect();
    let doc = rules_doc(&[], &format!(r#", "segments": [{}]"#, segments.join(",")));
    let err = within(Duration::from_secs(10), "segment cycles", || Program::from_json(&doc).unwrap_err());
    assert_eq!(err.diagnostics.len(), 1, "{}", err.render());
    let d = &err.diagnostics[0];
    assert!(d.message.contains("cycle: s0 -> s2 -> s4"), "{}", d.message);
    assert!(d.message.len() < 300, "the message names one cycle, shortened: {}", d.message);
    // Two separate cycles: two diagnostics.
    let segments = [
        r#"{"id": "a", "when": "segment.b"}"#,
        r#"{"id": "b", "when": "segment.a"}"#,
        r#"{"id": "c", "when": "segment.c"}"#,
        r#"{"id": "d", "when": "segment.a"}"#,
    ];
    let err = Program::from_json(&rules_doc(&[], &format!(r#", "segments": [{}]"#, segments.join(","))))
        .unwrap_err();
    assert_eq!(err.diagnostics.len(), 2, "{}", err.render());
}

fn counters_doc(n: usize) -> String {
    let counters: Vec<String> =
        (0..n).map(|i| format!(r#"{{"id": "c{i}", "on": "e", "window": "7d"}}"#)).collect();
    rules_doc(&[], &format!(r#", "counters": [{}]"#, counters.join(",")))
}

fn point_rules_doc(n: usize) -> String {
    let rules: Vec<String> = (0..n).map(|i| format!(r#"{{"id": "p{i}", "on": "e", "points": 1}}"#)).collect();
    rules_doc(&[], &format!(r#", "scoring": {{"models": [{{"id": "m", "rules": [{}]}}]}}"#, rules.join(",")))
}

#[test]
fn oversized_collections_are_refused_quickly_with_their_limit() {
    for (doc, path) in [
        (counters_doc(150_000), "/counters"),
        (point_rules_doc(150_000), "/scoring/models"),
        (
            rules_doc(
                &[],
                &format!(
                    r#", "segments": [{}]"#,
                    (0..1001)
                        .map(|i| format!(r#"{{"id": "s{i}", "when": "true"}}"#))
                        .collect::<Vec<_>>()
                        .join(",")
                ),
            ),
            "/segments",
        ),
    ] {
        let err = within(Duration::from_secs(10), path, || Program::from_json(&doc).unwrap_err());
        assert_eq!(err.diagnostics.len(), 1, "{}", err.render());
        assert_eq!(err.diagnostics[0].code, Code::LimitExceeded);
        assert_eq!(err.diagnostics[0].path, path);
        assert!(err.diagnostics[0].message.contains("more than the limit"), "{}", err.diagnostics[0].message);
    }
}

#[test]
fn many_counters_and_point_rules_compile_in_linear_time_when_allowed() {
    let limits = Limits {
        max_counters: 150_000,
        max_point_rules: 150_000,
        max_window_total: u64::MAX,
        ..Limits::default()
    };
    // 61 s and 25 s before.
    within(Duration::from_secs(30), "150k counters", || {
        Program::from_json_with_limits(&counters_doc(150_000), &limits).unwrap()
    });
    within(Duration::from_secs(30), "150k point rules", || {
        Program::from_json_with_limits(&point_rules_doc(150_000), &limits).unwrap()
    });
}

#[test]
fn distinct_patterns_are_limited_and_repeated_ones_compile_once() {
    // 2000 large distinct patterns took 8.4 s; past 128 they are refused.
    let rules: Vec<String> = (0..2000)
        .map(|i| {
            format!(r#"{{"id": "r{i}", "on": "e", "when": "event.url.matches('^/p{i}/(a|b|c){{1,20}}x$')"}}"#)
        })
        .collect();
    let err = within(Duration::from_secs(20), "2000 patterns", || {
        Program::from_json(&rules_doc(&rules, "")).unwrap_err()
    });
    assert!(err.diagnostics.iter().all(|d| d.code == Code::LimitExceeded), "{}", err.render());
    assert_eq!(err.diagnostics.len(), 2000 - 128);
    assert!(err.diagnostics[0].message.contains("more than 128 distinct regular expressions"));
    // Patterns past the compiled-size limit count too: each costs as much to refuse.
    let huge: Vec<String> = (0..300)
        .map(|i| format!(r#"{{"id": "r{i}", "on": "e", "when": "event.url.matches('^p{i}\\\\w{{1,100}}[0-9]{{1,100}}$')"}}"#))
        .collect();
    let err = within(Duration::from_secs(20), "300 over-size patterns", || {
        Program::from_json(&rules_doc(&huge, "")).unwrap_err()
    });
    let limited = err.diagnostics.iter().filter(|d| d.code == Code::LimitExceeded).count();
    assert_eq!((err.diagnostics.len(), limited), (300, 300 - 128), "{:.500}", err.render());
    // The same pattern in every rule is one pattern.
    let same: Vec<String> = (0..2000)
        .map(|i| {
            format!(r#"{{"id": "r{i}", "on": "e", "when": "event.url.matches('^/p/(a|b|c){{1,20}}x$')"}}"#)
        })
        .collect();
    within(Duration::from_secs(20), "one repeated pattern", || {
        Program::from_json(&rules_doc(&same, "")).unwrap()
    });
    let tight = Limits { max_pattern_bytes: 100, ..Limits::default() };
    let err = Program::from_json_with_limits(&rules_doc(&rules[..10], ""), &tight).unwrap_err();
    assert!(err.diagnostics[0].message.contains("more than 100 bytes"), "{}", err.render());
}

#[test]
fn windows_a_contact_must_remember_are_limited() {
    let doc = rules_doc(
        &[r#"{"id": "r", "on": "e", "repeat": {"max": 4294967295, "per": "1d"}}"#.to_string()],
        r#", "counters": [{"id": "c", "on": "e", "window": "7d", "max": 5000}],
            "scoring": {"models": [{"id": "m", "rules": [{"id": "p", "on": "e", "points": 1, "repeat": {"max": 1001, "per": "1d"}}]}]}"#,
    );
    let err = Program::from_json(&doc).unwrap_err();
    let paths: Vec<&str> = err.diagnostics.iter().map(|d| d.path.as_str()).collect();
    assert_eq!(paths, ["/rules/0/repeat/max", "/counters/0/max", "/scoring/models/0/rules/0/repeat/max"]);
    assert!(err.diagnostics.iter().all(|d| d.code == Code::LimitExceeded));
    assert!(err.diagnostics[0].message.contains("4294967295"));
    // Raising the limit lets it through.
    let limits = Limits { max_window_entries: u32::MAX, max_window_total: u64::MAX, ..Limits::default() };
    Program::from_json_with_limits(&doc, &limits).unwrap();
}

const T0: i64 = 1_767_225_600;

fn at(secs: i64) -> Timestamp {
    Timestamp::from_unix(T0 + secs, 0).unwrap()
}

fn engine_of(doc: &str, limits: &Limits) -> Engine {
    Engine::new(Arc::new(
        Program::from_json_with_limits(doc, limits).unwrap_or_else(|e| panic!("{}", e.render())),
    ))
}

#[test]
fn a_step_emitting_more_effects_than_the_limit_fails_and_changes_nothing() {
    let rules: Vec<String> = (0..50)
        .map(|i| format!(r#"{{"id": "r{i}", "on": "e", "actions": [{{"type": "add_tag", "tag": "t{i}"}}]}}"#))
        .collect();
    let doc = rules_doc(&rules, "");
    let engine = engine_of(&doc, &Limits { max_effects_per_step: 40, ..Limits::default() });
    let contact = engine.program().schema().contact("c").build();
    let mut state = engine.new_state(&contact, at(0));
    let before = state.clone();
    let event = engine.program().schema().event("e1", "c", "e", at(1)).unwrap().build();
    let err = engine.handle_event(&mut state, &contact, &event, &mut EngineScratch::default()).unwrap_err();
    assert_eq!(err, EngineError::TooManyEffects { limit: 40 });
    assert!(err.to_string().contains("more than 40 effects"), "{err}");
    assert_eq!(state, before);
    // Under the limit, the same step goes through.
    let engine = engine_of(&doc, &Limits { max_effects_per_step: 50, ..Limits::default() });
    let out = engine.handle_event(&mut state, &contact, &event, &mut EngineScratch::default()).unwrap();
    assert_eq!(out.effects.len(), 50);
}

#[test]
fn pending_approvals_are_capped_and_the_oldest_expires_with_an_effect() {
    let doc = rules_doc(
        &[r#"{"id": "ask", "on": "e", "actions": [{"type": "notify_owner", "message": "m", "needs_approval": true}]}"#
            .to_string()],
        "",
    );
    let engine = engine_of(&doc, &Limits { max_pending_approvals: 3, ..Limits::default() });
    let contact = engine.program().schema().contact("c").build();
    let mut state: ContactState = engine.new_state(&contact, at(0));
    let mut scratch = EngineScratch::default();
    let mut keys = Vec::new();
    for n in 0..10 {
        let event = engine.program().schema().event(format!("e{n}"), "c", "e", at(n)).unwrap().build();
        let out = engine.handle_event(&mut state, &contact, &event, &mut scratch).unwrap();
        let pending: Vec<_> = out.effects.iter().filter(|e| e.status == Status::PendingApproval).collect();
        assert_eq!(pending.len(), 1);
        keys.push(pending[0].key);
        let expired: Vec<_> = out.effects.iter().filter(|e| e.kind.name() == "rule_error").collect();
        if n < 3 {
            assert!(expired.is_empty());
        } else {
            assert_eq!(expired.len(), 1, "{:?}", out.effects);
            let text = format!("{:?}", expired[0].kind);
            assert!(
                text.contains("approval expired") && text.contains(&keys[n as usize - 3].to_string()),
                "{text}"
            );
        }
        assert!(state.pending().len() <= 3);
    }
    let held: Vec<_> = state.pending().iter().map(|e| e.key).collect();
    assert_eq!(held, keys[7..]);
    assert!(
        engine.approve(&mut state, &contact, keys[0], at(10), &mut scratch).unwrap().is_none(),
        "expired"
    );
    assert!(engine.approve(&mut state, &contact, keys[9], at(10), &mut scratch).unwrap().is_some());
}

#[test]
fn timeframe_awards_are_capped_and_keep_their_points() {
    let doc = rules_doc(
        &[],
        r#", "scoring": {"models": [{"id": "m", "timeframe": "3650d", "rules": [{"id": "p", "on": "e", "points": 1}]}]}"#,
    );
    let engine = engine_of(&doc, &Limits::default());
    let contact = engine.program().schema().contact("c").build();
    let mut state = engine.new_state(&contact, at(0));
    let mut scratch = EngineScratch::default();
    let n = nurture::limits::MAX_TIMEFRAME_AWARDS as i64 + 500;
    for i in 0..n {
        let event = engine.program().schema().event(format!("e{i}"), "c", "e", at(i * 60)).unwrap().build();
        let _ = engine.handle_event(&mut state, &contact, &event, &mut scratch).unwrap();
    }
    // Every point is kept, in at most the capped number of awards.
    assert_eq!(engine.score(&state, "m", at(n * 60)), Some(n as f64));
    let json = serde_json::to_value(&state).unwrap();
    let awards = json.pointer("/scores/models/0/awards").and_then(|a| a.as_array()).map(Vec::len);
    assert_eq!(awards, Some(nurture::limits::MAX_TIMEFRAME_AWARDS), "{:.300}", json.to_string());
}

#[test]
fn the_windows_of_a_rule_set_are_limited_together() {
    let rules: Vec<String> = (0..200)
        .map(|i| format!(r#"{{"id": "r{i}", "on": "e", "repeat": {{"max": 1000, "per": "1d"}}}}"#))
        .collect();
    let err = Program::from_json(&rules_doc(&rules, "")).unwrap_err();
    assert_eq!(err.diagnostics.len(), 1, "{}", err.render());
    assert_eq!(err.diagnostics[0].code, Code::LimitExceeded);
    assert!(err.diagnostics[0].message.contains("up to 200000 instants per contact"), "{}", err.render());
    let limits = Limits { max_window_total: 200_000, ..Limits::default() };
    Program::from_json_with_limits(&rules_doc(&rules, ""), &limits).unwrap();
}

mod state_bound {
    use super::*;
    use proptest::prelude::*;

    /// The documented bound (`docs/performance.md`, "The largest contact state"): a
    /// fixed part per rule set, 64 bytes per window instant, 80 per remembered event id,
    /// 600 per pending approval (short messages, as here).
    pub(super) fn bound(instants: u64, rules: usize, pending: usize) -> usize {
        8192 + 256 * rules + 64 * instants as usize + 80 * 64 + 600 * pending
    }

    #[derive(Debug, Clone)]
    struct Doc {
        repeats: Vec<u32>,
        counters: Vec<u32>,
        point_repeats: Vec<u32>,
        timeframe: bool,
    }

    fn doc_strategy() -> impl Strategy<Value = Doc> {
        (
            prop::collection::vec(1u32..=20, 1..4),
            prop::collection::vec(1u32..=50, 0..3),
            prop::collection::vec(1u32..=20, 1..3),
            any::<bool>(),
        )
            .prop_map(|(repeats, counters, point_repeats, timeframe)| Doc {
                repeats,
                counters,
                point_repeats,
                timeframe,
            })
    }

    fn document(d: &Doc) -> (String, u64) {
        let mut rules: Vec<String> = d
            .repeats
            .iter()
            .enumerate()
            .map(|(i, m)| {
                format!(
                    r#"{{"id": "r{i}", "on": "e", "repeat": {{"max": {m}, "per": "1d"}},
                        "actions": [{{"type": "add_tag", "tag": "t{i}"}}]}}"#
                )
            })
            .collect();
        rules.push(
            r#"{"id": "ask", "on": "f", "actions": [{"type": "notify_owner", "message": "m", "needs_approval": true}]}"#
                .to_string(),
        );
        let counters: Vec<String> = d
            .counters
            .iter()
            .enumerate()
            .map(|(i, m)| format!(r#"{{"id": "c{i}", "on": "e", "window": "30d", "max": {m}}}"#))
            .collect();
        let points: Vec<String> = d
            .point_repeats
            .iter()
            .enumerate()
            .map(|(i, m)| {
                let group = if d.timeframe && i == 0 { r#", "group": "recent""# } else { "" };
                format!(r#"{{"id": "p{i}", "on": "e", "points": 1{group}, "repeat": {{"max": {m}, "per": "1h"}}}}"#)
            })
            .collect();
        let groups = if d.timeframe {
            r#""groups": [{"id": "main"}, {"id": "recent", "timeframe": "30d"}], "#
        } else {
            ""
        };
        let doc = format!(
            r#"{{"version": 1, "schema": {{"events": {{"e": {{}}, "f": {{}}}}}},
               "rules": [{}], "counters": [{}],
               "scoring": {{"models": [{{"id": "m", {groups}"rules": [{}],
                 "thresholds": [{{"id": "mql", "enter": 50}}], "bands": [{{"name": "warm", "from": 10}}]}}]}}}}"#,
            rules.join(","),
            counters.join(","),
            points.join(",")
        );
        let instants =
            d.repeats.iter().chain(&d.counters).chain(&d.point_repeats).map(|m| u64::from(*m)).sum::<u64>()
                + if d.timeframe { nurture::limits::MAX_TIMEFRAME_AWARDS as u64 } else { 0 };
        (doc, instants)
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(12))]

        /// Random rule sets within the limits, driven by long random streams of events:
        /// the state's JSON never passes the documented bound.
        #[test]
        fn a_contact_state_stays_within_its_documented_bound(
            d in doc_strategy(),
            steps in prop::collection::vec((0u8..10, 1i64..900), 200..1300),
        ) {
            let (doc, instants) = document(&d);
            let limits = Limits { max_pending_approvals: 5, ..Limits::default() };
            let engine = engine_of(&doc, &limits);
            let contact = engine.program().schema().contact("c").build();
            let mut state = engine.new_state(&contact, at(0));
            let mut scratch = EngineScratch::default();
            let rules = engine.program().rules().len() + d.counters.len() + d.point_repeats.len();
            let limit = bound(instants, rules, 5);
            let mut clock = 0;
            let mut largest = 0;
            for (n, (kind, dt)) in steps.iter().enumerate() {
                clock += dt;
                let name = if *kind == 0 { "f" } else { "e" };
                let event = engine.program().schema().event(format!("x{n}"), "c", name, at(clock)).unwrap().build();
                let _ = engine.handle_event(&mut state, &contact, &event, &mut scratch).unwrap();
                largest = largest.max(serde_json::to_string(&state).unwrap().len());
            }
            prop_assert!(largest <= limit, "state of {largest} bytes, bound {limit} ({instants} instants)");
            prop_assert!(state.pending().len() <= 5);
        }
    }
}

/// The measurements in `docs/performance.md` ("Worst cases under the default limits"):
/// `cargo test --release --test budgets -- --ignored --nocapture --test-threads=1 worst_`,
/// each under `/usr/bin/time -f %M` for its peak memory.
mod worst {
    use super::*;

    fn timed<T>(what: &str, f: impl FnOnce() -> T) -> T {
        let started = Instant::now();
        let out = f();
        eprintln!("{what}: {:.3} s", started.elapsed().as_secs_f64());
        out
    }

    fn exhaust(what: &str, env: &Env, source: &str, vars: &nurture::expr::Variables) {
        let expr = env.compile(source).unwrap();
        let err = timed(what, || expr.eval(&Activation::new().with_variables(vars)).unwrap_err());
        assert_eq!(err.kind(), EvalErrorKind::BudgetExceeded, "{what}");
    }

    #[test]
    #[ignore]
    fn worst_eval_membership() {
        let env = Env::new();
        let vars = env.bind([]).unwrap();
        exhaust(
            "y in m, 3000 elements",
            &env,
            &format!("[{0}].all(m, m.all(x, m.all(y, y in m)))", int_list(3000)),
            &vars,
        );
    }

    #[test]
    #[ignore]
    fn worst_eval_lists() {
        let env = Env::new();
        let vars = env.bind([]).unwrap();
        exhaust(
            "m+m+m+m, 5000 elements",
            &env,
            &format!("[{0}].all(m, size(m.map(y, m + m + m + m)) > 0)", int_list(5000)),
            &vars,
        );
    }

    #[test]
    #[ignore]
    fn worst_eval_iterations() {
        let env = Env::new();
        let vars = env.bind([]).unwrap();
        exhaust(
            "10M iterations",
            &env,
            &format!("{0}.all(x, {0}.all(y, x + y >= 0))", int_list(10_000)),
            &vars,
        );
    }

    #[test]
    #[ignore]
    fn worst_eval_strings() {
        let env = Env::new().with_variable("s", Type::String).unwrap();
        let vars = env.bind([("s", Value::from("x".repeat(1 << 20)))]).unwrap();
        exhaust("s + s, 1 MB", &env, &format!("{}.all(i, size(s + s) > 0)", int_list(1000)), &vars);
    }

    #[test]
    #[ignore]
    fn worst_eval_patterns() {
        // Distinct run-time patterns, each near the compiled-size limit, never cached.
        let env = Env::new().with_variable("l", Type::list(Type::String)).unwrap();
        let patterns: Vec<Value> =
            (0..200).map(|i| Value::from(format!("^(a|b|c{i}){{1,400}}[0-9]{{1,50}}$"))).collect();
        let vars = env.bind([("l", Value::List(patterns.into()))]).unwrap();
        exhaust("200 distinct run-time patterns", &env, "l.all(p, !'zzz'.matches(p))", &vars);
    }

    #[test]
    #[ignore]
    fn worst_compile_attribute_rules() {
        let rules: Vec<String> = (0..60_000)
            .map(|i| {
                format!(
                    r#"{{"id": "r{i}", "on": {{"attribute": "plan", "to": "v{i}"}},
                        "actions": [{{"type": "set_attribute", "field": "plan", "value": "v{}"}}]}}"#,
                    i + 1
                )
            })
            .collect();
        let doc = rules_doc(&rules, "");
        timed("60k set_attribute rules", || Program::from_json(&doc).unwrap());
    }

    #[test]
    #[ignore]
    fn worst_compile_segment_cycles() {
        let n = 1000;
        let segments: Vec<String> = (0..n)
            .map(|i| {
                let reads: Vec<String> = (1..=50).map(|k| format!("segment.s{}", (i + k) % n)).collect();
                format!(r#"{{"id": "s{i}", "when": "{}"}}"#, reads.join(" || "))
            })
            .collect();
        let doc = rules_doc(&[], &format!(r#", "segments": [{}]"#, segments.join(",")));
        let err = timed("1000 segments, 50 reads each, one cycle", || Program::from_json(&doc).unwrap_err());
        eprintln!("  {} diagnostic(s), {} bytes of document", err.diagnostics.len(), doc.len());
    }

    #[test]
    #[ignore]
    fn worst_compile_counters_and_point_rules() {
        timed("150k counters, refused", || Program::from_json(&counters_doc(150_000)).unwrap_err());
        timed("150k point rules, refused", || Program::from_json(&point_rules_doc(150_000)).unwrap_err());
        // 1000 counters with the default `max` of 1000 are a million instants, past
        // `max_window_total`: allowed for the timing.
        let wide = Limits { max_window_total: u64::MAX, ..Limits::default() };
        timed("1000 counters (the limit)", || {
            Program::from_json_with_limits(&counters_doc(1000), &wide).unwrap()
        });
        timed("10k point rules (the limit)", || Program::from_json(&point_rules_doc(10_000)).unwrap());
        let limits = Limits {
            max_counters: 150_000,
            max_point_rules: 150_000,
            max_window_total: u64::MAX,
            ..Limits::default()
        };
        timed("150k counters, allowed", || {
            Program::from_json_with_limits(&counters_doc(150_000), &limits).unwrap()
        });
        timed("150k point rules, allowed", || {
            Program::from_json_with_limits(&point_rules_doc(150_000), &limits).unwrap()
        });
    }

    #[test]
    #[ignore]
    fn worst_compile_patterns() {
        // Each pattern near the compiled-size limit (1 MB): a few milliseconds each.
        let pattern =
            std::env::var("WORST_PATTERN").unwrap_or_else(|_| r"\\\\w{1,100}[0-9]{1,100}".to_string());
        let rules = |n: usize| -> Vec<String> {
            (0..n)
                .map(|i| {
                    format!(r#"{{"id": "r{i}", "on": "e", "when": "event.url.matches('^p{i}{pattern}$')"}}"#)
                })
                .collect()
        };
        timed("2000 large distinct patterns, refused", || {
            Program::from_json(&rules_doc(&rules(2000), "")).unwrap_err()
        });
        // Each of these is past the compiled-size limit: 128 refusals, the most a
        // document can ask for.
        let err = timed("128 large distinct patterns (the limit)", || {
            Program::from_json(&rules_doc(&rules(128), "")).unwrap_err()
        });
        assert!(err.diagnostics.iter().all(|d| d.code == Code::InvalidLiteral));
    }

    #[test]
    #[ignore]
    fn worst_step_effects() {
        // The largest step the default limits allow: 10,000 effects.
        let rules: Vec<String> = (0..10_000)
            .map(|i| {
                format!(r#"{{"id": "r{i}", "on": "e", "actions": [{{"type": "add_tag", "tag": "t"}}]}}"#)
            })
            .collect();
        let engine = engine_of(&rules_doc(&rules, ""), &Limits::default());
        let contact = engine.program().schema().contact("c").build();
        let mut state = engine.new_state(&contact, at(0));
        let event = engine.program().schema().event("e1", "c", "e", at(1)).unwrap().build();
        let out = timed("one event, 10,000 effects", || {
            engine.handle_event(&mut state, &contact, &event, &mut EngineScratch::default()).unwrap()
        });
        assert_eq!(out.effects.len(), 10_000);
    }

    #[test]
    #[ignore]
    fn worst_state_size() {
        // Every window at its cap: 100 rules of "at most 1000 a day" = the 100,000
        // instants max_window_total allows, and 100 pending approvals.
        let mut rules: Vec<String> = (0..100)
            .map(|i| {
                format!(
                    r#"{{"id": "r{i}", "on": "e", "repeat": {{"max": 1000, "per": "1d"}}, "actions": [{{"type": "add_tag", "tag": "t"}}]}}"#
                )
            })
            .collect();
        rules.push(
            r#"{"id": "ask", "on": "e", "actions": [{"type": "notify_owner", "message": "m", "needs_approval": true}]}"#
                .to_string(),
        );
        let engine = engine_of(&rules_doc(&rules, ""), &Limits::default());
        let contact = engine.program().schema().contact("c").build();
        let mut state = engine.new_state(&contact, at(0));
        let mut scratch = EngineScratch::default();
        let started = Instant::now();
        for i in 0..1200 {
            let event = engine.program().schema().event(format!("e{i}"), "c", "e", at(i)).unwrap().build();
            let _ = engine.handle_event(&mut state, &contact, &event, &mut scratch).unwrap();
        }
        let json = serde_json::to_string(&state).unwrap();
        eprintln!(
            "1200 events on 100 capped rules: {:.3} s, state {} bytes, bound {}",
            started.elapsed().as_secs_f64(),
            json.len(),
            state_bound::bound(100_000, 101, 100)
        );
        assert!(json.len() <= state_bound::bound(100_000, 101, 100));
    }
}
