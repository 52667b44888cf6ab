//! Overflow and non-finite numbers (issue 9, items 1 and 2): no accepted document
//! panics, out-of-range numbers are refused at their paths, scores stay finite, and a
//! step that cannot be computed changes nothing.

use std::sync::Arc;

use nurture::engine::{ContactState, Engine, EngineScratch};
use nurture::host::{ContactStore, MemoryStore, RecordingDelivery, Runtime, StoredContact};
use nurture::{Code, ContactId, Program, Timestamp};

fn ts(text: &str) -> Timestamp {
    Timestamp::parse(text).unwrap()
}

/// The one diagnostic of a refused document: its code, its path, and that it has help.
fn refused(doc: &str) -> (Code, String) {
    let err = Program::from_json(doc).expect_err("the document must be refused");
    assert_eq!(err.diagnostics.len(), 1, "{:?}", err.diagnostics);
    let d = &err.diagnostics[0];
    assert!(d.help.is_some(), "no help: {d:?}");
    (d.code, d.path.clone())
}

fn date_doc(offset: &str) -> String {
    format!(
        r#"{{"version": 1, "schema": {{"contact": {{"d": "timestamp"}}, "events": {{"ping": {{}}}}}},
          "rules": [{{"id": "r", "on": {{"date": "d", "offset": "{offset}", "at": "09:00"}},
                     "actions": [{{"type": "add_tag", "tag": "t"}}]}}]}}"#
    )
}

#[test]
fn an_offset_of_i64_min_days_is_refused() {
    for offset in ["-9223372036854775808d", "9223372036854775807d", "-36601d", "36601d"] {
        assert_eq!(
            refused(&date_doc(offset)),
            (Code::InvalidDocument, "/rules/0/on/offset".into()),
            "{offset}"
        );
    }
}

/// Runs an engine over extreme dates: events and timeouts at both ends of time.
fn run_extremes(doc: &str, field: &str) {
    let engine = Engine::new(Arc::new(Program::from_json(doc).expect("valid")));
    let schema = engine.program().schema().clone();
    let mut scratch = EngineScratch::default();
    for date in [Timestamp::MIN, Timestamp::MAX, ts("2026-01-01T00:00:00Z")] {
        for start in [Timestamp::MIN, ts("2026-01-01T00:00:00Z")] {
            let contact = schema.contact("c").set(field, date).unwrap().build();
            let mut state = engine.new_state(&contact, start);
            let event = schema.event("e1", "c", "ping", ts("2026-06-01T00:00:00Z")).unwrap().build();
            let outcome = engine.handle_event(&mut state, &contact, &event, &mut scratch).unwrap();
            let mut wake = outcome.next_wake;
            for now in [ts("2027-01-01T00:00:00Z"), Timestamp::MAX] {
                let _ = engine.handle_timeout(&mut state, &contact, now, &mut scratch).unwrap();
                wake = engine.wake_after(&state, &contact, now);
            }
            let _ = wake;
            serde_json::from_str::<ContactState>(&serde_json::to_string(&state).unwrap()).unwrap();
        }
    }
}

#[test]
fn extreme_but_valid_offsets_and_schedules_run_without_panic() {
    for offset in ["-36600d", "36600d", "0d"] {
        run_extremes(&date_doc(offset), "d");
    }
    let every_year = r#"{"version": 1, "schema": {"contact": {"d": "timestamp"}, "events": {"ping": {}}},
      "rules": [{"id": "r", "on": {"date": "d", "offset": "-36600d", "every_year": true, "at": "23:59"},
                 "actions": [{"type": "add_tag", "tag": "t"}]},
                {"id": "s", "on": {"schedule": "monthly", "day": 31, "at": "23:59", "zone": "Pacific/Kiritimati"},
                 "actions": [{"type": "add_tag", "tag": "s"}]},
                {"id": "q", "on": {"inactive": "*", "for": "315576000000s"},
                 "actions": [{"type": "add_tag", "tag": "q"}]}],
      "counters": [{"id": "n", "on": "ping", "window": "315576000000s", "max": 1000}]}"#;
    run_extremes(every_year, "d");
}

#[test]
fn out_of_range_days_and_periods_are_refused() {
    let day = r#"{"version": 1, "schema": {"events": {"ping": {}}},
      "rules": [{"id": "s", "on": {"schedule": "monthly", "day": 4294967295}}]}"#;
    // A day past u32 is not a number of this type: refused by the document reader.
    assert!(Program::from_json(day).is_err());
    let day = r#"{"version": 1, "schema": {"events": {"ping": {}}},
      "rules": [{"id": "s", "on": {"schedule": "monthly", "day": 32}}]}"#;
    assert_eq!(Program::from_json(day).unwrap_err().diagnostics[0].path, "/rules/0/on/day");
    for period in ["9223372036854775807d", "-9223372036854775808d", "315576000001s", "99999999999999999999h"]
    {
        let doc = format!(
            r#"{{"version": 1, "schema": {{"events": {{"ping": {{}}}}}},
              "rules": [{{"id": "q", "on": {{"inactive": "*", "for": "{period}"}}}}]}}"#
        );
        assert_eq!(refused(&doc), (Code::InvalidDocument, "/rules/0/on/for".into()), "{period}");
        let doc = format!(
            r#"{{"version": 1, "schema": {{"events": {{"ping": {{}}}}}},
              "counters": [{{"id": "n", "on": "ping", "window": "{period}"}}]}}"#
        );
        assert_eq!(
            Program::from_json(&doc).unwrap_err().diagnostics[0].path,
            "/counters/0/window",
            "{period}"
        );
        let doc = format!(
            r#"{{"version": 1, "schema": {{"events": {{"ping": {{}}}}, "scores": ["s"]}},
              "scoring": {{"models": [{{"id": "s", "decay": {{"half_life": "{period}"}}}}]}}}}"#
        );
        assert_eq!(
            refused(&doc),
            (Code::InvalidDocument, "/scoring/models/0/decay/half_life".into()),
            "{period}"
        );
    }
}

fn scoring_doc(model: &str) -> String {
    format!(
        r#"{{"version": 1, "schema": {{"contact": {{"n": "int"}}, "events": {{"visit": {{}}}}, "scores": ["s", "t"]}},
          "scoring": {{"models": [{model}, {{"id": "t", "combine": {{"s": 1}}}}]}}}}"#
    )
}

#[test]
fn points_caps_and_weights_beyond_1e12_are_refused() {
    // The reproducers: two fit rules of 1e308, an engagement rule of 1e308 under decay.
    let two_fit = r#"{"id": "s", "rules": [{"id": "a", "fit": "true", "points": 1e308},
                                          {"id": "b", "fit": "true", "points": 1e308}]}"#;
    let err = Program::from_json(&scoring_doc(two_fit)).unwrap_err();
    let paths: Vec<_> = err.diagnostics.iter().map(|d| (d.code, d.path.as_str())).collect();
    assert_eq!(
        paths,
        [
            (Code::InvalidDocument, "/scoring/models/0/rules/0/points"),
            (Code::InvalidDocument, "/scoring/models/0/rules/1/points")
        ]
    );
    let decaying = r#"{"id": "s", "decay": {"half_life": "7d"}, "rules": [{"id": "a", "on": "visit", "points": 1e308}]}"#;
    assert_eq!(
        refused(&scoring_doc(decaying)),
        (Code::InvalidDocument, "/scoring/models/0/rules/0/points".into())
    );
    for (model, path) in [
        (
            r#"{"id": "s", "rules": [{"id": "a", "on": "visit", "points": -1.000001e12}]}"#,
            "/scoring/models/0/rules/0/points",
        ),
        (r#"{"id": "s", "cap": 1e13}"#, "/scoring/models/0/cap"),
        (r#"{"id": "s", "floor": -1e13}"#, "/scoring/models/0/floor"),
        (r#"{"id": "s", "groups": [{"id": "g", "cap": 1e300}]}"#, "/scoring/models/0/groups/0/cap"),
        (r#"{"id": "s", "groups": [{"id": "g", "floor": -1e300}]}"#, "/scoring/models/0/groups/0/floor"),
        (r#"{"id": "s", "thresholds": [{"id": "x", "enter": 1e13}]}"#, "/scoring/models/0/thresholds/0"),
        (r#"{"id": "s", "bands": [{"name": "x", "from": -1e13}]}"#, "/scoring/models/0/bands/0/from"),
    ] {
        assert_eq!(refused(&scoring_doc(model)), (Code::InvalidDocument, path.into()), "{model}");
    }
    let weight = r#"{"version": 1, "schema": {"events": {"visit": {}}, "scores": ["s", "t"]},
      "scoring": {"models": [{"id": "s"}, {"id": "t", "combine": {"s": 1e7}}]}}"#;
    assert_eq!(refused(weight), (Code::InvalidDocument, "/scoring/models/1/combine/s".into()));
    let adjust = r#"{"version": 1, "schema": {"events": {"visit": {}}, "scores": ["s"]},
      "rules": [{"id": "r", "on": "visit", "actions": [{"type": "adjust_score", "score": "s", "points": 1e308}]}],
      "scoring": {"models": [{"id": "s"}]}}"#;
    assert_eq!(refused(adjust), (Code::InvalidDocument, "/rules/0/actions/0/points".into()));
}

#[test]
fn the_largest_points_stay_finite() {
    let doc = r#"{"version": 1, "schema": {"events": {"visit": {}}, "scores": ["s", "t"]},
      "rules": [{"id": "r", "on": "visit", "actions": [{"type": "adjust_score", "score": "s", "points": 1e12}]}],
      "scoring": {"models": [
        {"id": "s", "decay": {"half_life": "1s"}, "cap": 1e12, "floor": -1e12,
         "rules": [{"id": "a", "fit": "true", "points": 1e12}, {"id": "b", "fit": "true", "points": 1e12},
                   {"id": "c", "on": "visit", "points": 1e12}, {"id": "d", "on": "visit", "points": -1e12}],
         "thresholds": [{"id": "x", "enter": 1e12, "exit": -1e12}], "bands": [{"name": "hi", "from": 1e12}]},
        {"id": "t", "combine": {"s": 1e6}}]}}"#;
    let engine = Engine::new(Arc::new(Program::from_json(doc).expect("valid")));
    let schema = engine.program().schema().clone();
    let contact = schema.contact("c").build();
    let mut state = engine.new_state(&contact, ts("2026-01-01T00:00:00Z"));
    let mut scratch = EngineScratch::default();
    for n in 0..50 {
        let event = schema.event(format!("e{n}"), "c", "visit", ts("2026-01-01T00:00:00Z")).unwrap().build();
        let _ = engine.handle_event(&mut state, &contact, &event, &mut scratch).unwrap();
    }
    let _ = engine.handle_timeout(&mut state, &contact, ts("2026-02-01T00:00:00Z"), &mut scratch).unwrap();
    let json = serde_json::to_string(&state).unwrap();
    assert!(!json.contains("null") || serde_json::from_str::<ContactState>(&json).is_ok());
    assert_eq!(serde_json::from_str::<ContactState>(&json).unwrap(), state);
}

/// Points on model `a` (and the score state's counter hit) come before the points of
/// model `b`, whose tampered state (awards of 1e308 in its window) makes the sum infinite.
const ATOMIC: &str = r#"{"version": 1,
  "schema": {"events": {"visit": {}}, "scores": ["a", "b"]},
  "counters": [{"id": "visits", "on": "visit", "window": "30d"}],
  "rules": [{"id": "first", "on": "visit", "actions": [{"type": "add_tag", "tag": "seen"},
                                                      {"type": "adjust_score", "score": "a", "points": 5}]},
            {"id": "second", "on": "visit", "actions": [{"type": "adjust_score", "score": "b", "points": 1}]}],
  "scoring": {"models": [{"id": "a", "rules": [{"id": "v", "on": "visit", "points": 3}]},
                         {"id": "b", "timeframe": "30d", "rules": [{"id": "w", "on": "visit", "points": 1}]}]}}"#;

/// A state whose model `b` holds two awards of 1e308 (as a tampered snapshot could).
fn poisoned(engine: &Engine, scratch: &mut EngineScratch) -> (nurture::Contact, ContactState) {
    let schema = engine.program().schema().clone();
    let contact = schema.contact("c").build();
    let mut state = engine.new_state(&contact, ts("2026-01-01T00:00:00Z"));
    for n in 0..2 {
        let event = schema.event(format!("p{n}"), "c", "visit", ts("2026-01-01T00:00:00Z")).unwrap().build();
        let _ = engine.handle_event(&mut state, &contact, &event, scratch).unwrap();
    }
    let mut json: serde_json::Value = serde_json::to_value(&state).unwrap();
    let mut found = 0;
    poison(&mut json, &mut found);
    assert_eq!(found, 4, "{json}");
    (contact, serde_json::from_value(json).unwrap())
}

/// Sets every award's points (an object with `points` and `group`) to 1e308.
fn poison(v: &mut serde_json::Value, found: &mut usize) {
    match v {
        serde_json::Value::Object(m) => {
            if m.contains_key("points") && m.contains_key("group") {
                m.insert("points".into(), serde_json::json!(1e308));
                *found += 1;
            }
            for x in m.values_mut() {
                poison(x, found);
            }
        }
        serde_json::Value::Array(a) => a.iter_mut().for_each(|x| poison(x, found)),
        _ => {}
    }
}

#[test]
fn a_step_that_cannot_be_computed_changes_nothing() {
    let engine = Engine::new(Arc::new(Program::from_json(ATOMIC).expect("valid")));
    let schema = engine.program().schema().clone();
    let mut scratch = EngineScratch::default();
    let (contact, mut state) = poisoned(&engine, &mut scratch);
    let before = serde_json::to_string(&state).unwrap();
    let event = schema.event("e1", "c", "visit", ts("2026-01-02T00:00:00Z")).unwrap().build();
    assert!(engine.handle_event(&mut state, &contact, &event, &mut scratch).is_err());
    assert_eq!(serde_json::to_string(&state).unwrap(), before);
    // Again: the same event is not a duplicate, and fails the same way.
    assert!(engine.handle_event(&mut state, &contact, &event, &mut scratch).is_err());
    assert_eq!(serde_json::to_string(&state).unwrap(), before);
}

#[test]
fn the_runtime_stores_nothing_of_a_failed_step() {
    let engine = Arc::new(Engine::new(Arc::new(Program::from_json(ATOMIC).expect("valid"))));
    let schema = engine.program().schema().clone();
    let mut scratch = EngineScratch::default();
    let (contact, state) = poisoned(&engine, &mut scratch);
    let mut store = MemoryStore::new();
    let id = ContactId::from("c");
    store.save(&id, StoredContact { contact, state }, None).unwrap();
    let before = store.get(&id).unwrap().clone();
    let before_json = serde_json::to_string(&before.state).unwrap();
    let mut rt = Runtime::new(engine, store, RecordingDelivery::default(), ts("2026-01-01T00:00:00Z"));
    let event = schema.event("e1", "c", "visit", ts("2026-01-02T00:00:00Z")).unwrap().build();
    assert!(rt.ingest(&event).is_err());
    let after = rt.store().get(&id).unwrap();
    assert_eq!(serde_json::to_string(&after.state).unwrap(), before_json);
    assert_eq!(after.contact, before.contact);
    assert!(rt.delivery().delivered.is_empty());
}
