//! Snapshots are input: a format-1 state written by the previous release loads (upgraded
//! to format 2) and behaves as it did; tampered or corrupt states are refused with an
//! error naming the field; and nothing a loaded state holds makes the engine write a
//! state that does not load.

use std::sync::Arc;

use nurture::engine::{ContactState, Engine, EngineScratch, IdempotencyKey, STATE_FORMAT};
use nurture::{Contact, Event, Program, Timestamp};
use proptest::prelude::*;
use serde_json::{json, Value as Json};

const PROGRAM: &str = include_str!("fixtures/state-format-1.program.json");
/// Written by the release before format 2 (`git show fa46dd6`), from `PROGRAM`: contact
/// `c1` (company_size 500) after events e1 (pricing visit, +10 s), e2 (blog visit,
/// +20 s), e3 (demo form, +30 s, one effect held for approval) and e4 (pricing visit,
/// +40 s).
const FORMAT_1: &str = include_str!("fixtures/state-format-1.json");
const T0: i64 = 1_767_225_600;

fn engine() -> Engine {
    Engine::new(Arc::new(Program::from_json(PROGRAM).unwrap()))
}

fn at(secs: i64) -> Timestamp {
    Timestamp::from_unix(T0 + secs, 0).unwrap()
}

fn contact(engine: &Engine) -> Contact {
    engine.program().schema().contact("c1").set("company_size", 500i64).unwrap().build()
}

fn visit(engine: &Engine, id: &str, url: &str, secs: i64) -> Event {
    let schema = engine.program().schema();
    schema.event(id, "c1", "page_visit", at(secs)).unwrap().set("url", url).unwrap().build()
}

fn load(json: &str) -> Result<ContactState, String> {
    serde_json::from_str::<ContactState>(json).map_err(|e| e.to_string())
}

#[test]
fn a_format_1_state_loads_upgraded_and_behaves_as_before() {
    let engine = engine();
    let c = contact(&engine);
    let mut state = load(FORMAT_1).unwrap();
    assert_eq!(state.format(), STATE_FORMAT);
    assert!(engine.fits(&state));
    assert_eq!(state.stage(), Some("sql"));
    assert!(state.has_tag("pricing-viewer"));
    // Re-written and re-read as format 2, unchanged.
    let again = load(&serde_json::to_string(&state).unwrap()).unwrap();
    assert_eq!(again, state);
    let mut scratch = EngineScratch::default();
    // Its four events are still recognised (by their format-1 fingerprints).
    for (id, secs) in [("e1", 10), ("e2", 20), ("e4", 40)] {
        let o =
            engine.handle_event(&mut state, &c, &visit(&engine, id, "/pricing", secs), &mut scratch).unwrap();
        assert!(o.duplicate, "{id}");
    }
    // The effect held for approval keeps its 64-bit key, as text too.
    let key: IdempotencyKey = "b0b26650390c4c49".parse().unwrap();
    let mut approving = state.clone();
    let approved = engine.approve(&mut approving, &c, key, at(50), &mut scratch).unwrap();
    assert_eq!(approved.expect("the pending effect").effects[0].key.to_string(), "b0b26650390c4c49");
    assert!(approving.pending().is_empty());
    // The next event gives what the previous release gave (effects and score), with
    // 128-bit keys.
    let o = engine.handle_event(&mut state, &c, &visit(&engine, "e5", "/pricing", 50), &mut scratch).unwrap();
    let kinds: Vec<String> = o.effects.iter().map(|e| e.kind.to_string()).collect();
    assert_eq!(kinds, ["action pricing#0", "action pricing#1", "action hot#0"]);
    assert!(o.effects.iter().all(|e| e.key.to_string().len() == 32));
    let close = |a: f64, b: f64| (a - b).abs() < 1e-9;
    assert!(close(engine.score(&state, "engagement", at(50)).unwrap(), 76.998_372_597_898_74));
    assert!(close(engine.score(&state, "engagement", at(3600)).unwrap(), 76.685_735_580_999_76));
    let json = serde_json::to_value(&state).unwrap();
    assert_eq!(json["format"], 2);
    assert_eq!(json["seen_fnv64"].as_array().map(Vec::len), Some(4));
    assert_eq!(json["seen"].as_array().map(Vec::len), Some(1));
    assert_eq!(json["fields"], json!(["company_size"]));
    // 63 more events fill the window of 64: the format-1 fingerprints leave first.
    for n in 6..69 {
        let o = engine
            .handle_event(&mut state, &c, &visit(&engine, &format!("e{n}"), "/blog", 60 + n), &mut scratch)
            .unwrap();
        assert!(!o.duplicate);
    }
    let json = serde_json::to_value(&state).unwrap();
    assert!(json.get("seen_fnv64").is_none(), "{}", json["seen_fnv64"]);
    assert_eq!(json["seen"].as_array().map(Vec::len), Some(64));
    assert!(load(&json.to_string()).is_ok());
}

/// The fixture with one change.
fn edited(edit: impl FnOnce(&mut Json)) -> String {
    let mut json: Json = serde_json::from_str(FORMAT_1).unwrap();
    edit(&mut json);
    json.to_string()
}

#[test]
fn tampered_states_are_refused_naming_the_field() {
    let cases: Vec<(&str, String)> = vec![
        ("`format`", edited(|j| j["format"] = json!(3))),
        ("`format`", edited(|j| j["format"] = json!(0))),
        ("`seen[0]`", edited(|j| j["seen"][0] = json!("00000000000000000000000000000000"))),
        ("`seen`", edited(|j| j["seen"] = json!(vec![1u64; 10_001]))),
        ("`since`", edited(|j| j["since"] = json!("2026-02-01T00:00:00Z"))),
        ("`last_seen.*`", edited(|j| j["last_seen"]["*"] = json!("2027-01-01T00:00:00Z"))),
        ("`pending[0].contact`", edited(|j| j["pending"][0]["contact"] = json!("c2"))),
        ("`pending[0].status`", edited(|j| j["pending"][0]["status"] = json!("ready"))),
        ("`score_models`", edited(|j| j["score_models"] = json!(["engagement", "engagement"]))),
        ("`scores`: models", edited(|j| j["score_models"] = json!(["engagement", "fit"]))),
        ("scales[0]", edited(|j| j["scores"]["history"]["models"][0]["scales"][0] = json!(2.0))),
        ("scales[0]", edited(|j| j["scores"]["history"]["models"][0]["scales"][0] = json!(-0.5))),
        (
            "groups[0].at",
            edited(|j| j["scores"]["models"][0]["groups"][0]["at"] = json!("2030-01-01T00:00:00Z")),
        ),
        ("`fields`", edited(|j| j["fields"] = json!(["a", "a"]))),
        ("`seen_fnv64`", edited(|j| j["seen_fnv64"] = json!([1, 2]))),
    ];
    for (field, json) in cases {
        let error = load(&json).expect_err(field);
        assert!(error.contains(field), "{field}: {error}");
    }
    // What JSON cannot say is refused by the reader: an infinite score, a timestamp
    // out of range, a key of the wrong width.
    for json in [
        edited(|j| j["scores"]["models"][0]["groups"][0]["value"] = json!(null)),
        FORMAT_1.replace("60.99907169003286", "1e999"),
        edited(|j| j["last"] = json!("10000-01-01T00:00:00Z")),
        edited(|j| j["pending"][0]["key"] = json!("b0b26650390c4c4")),
    ] {
        assert!(load(&json).is_err());
    }
}

#[test]
fn a_state_of_swapped_models_is_refused_not_misread() {
    // Two models of the same shape, swapped: one's points would read as the other's.
    let doc = |first: &str, second: &str| {
        format!(
            r#"{{"version": 1, "schema": {{"events": {{"visit": {{}}}}}},
              "scoring": {{"models": [
                {{"id": "{first}", "rules": [{{"id": "{first}-v", "on": "visit", "points": 100}}]}},
                {{"id": "{second}", "rules": [{{"id": "{second}-v", "on": "visit", "points": 1}}]}}]}}}}"#
        )
    };
    let before = Engine::new(Arc::new(Program::from_json(&doc("a", "b")).unwrap()));
    let after = Engine::new(Arc::new(Program::from_json(&doc("b", "a")).unwrap()));
    let schema = before.program().schema();
    let c = schema.contact("c1").build();
    let mut state = before.new_state(&c, at(0));
    let mut scratch = EngineScratch::default();
    let e1 = schema.event("e1", "c1", "visit", at(1)).unwrap().build();
    let _ = before.handle_event(&mut state, &c, &e1, &mut scratch).unwrap();
    assert_eq!(before.score(&state, "a", at(1)), Some(100.0));
    let e2 = schema.event("e2", "c1", "visit", at(2)).unwrap().build();
    let error = after.handle_event(&mut state.clone(), &c, &e2, &mut scratch).unwrap_err();
    assert!(error.to_string().contains("score models [a, b]"), "{error}");
    // Adopted, each model keeps its own points (by id), and earns under the new rules:
    // `a` 1 point a visit now, `b` 100.
    let mut adopted = after.adopt(state, &c, at(1));
    assert_eq!(after.score(&adopted, "a", at(1)), Some(100.0));
    assert_eq!(after.score(&adopted, "b", at(1)), Some(1.0));
    let _ = after.handle_event(&mut adopted, &c, &e2, &mut scratch).unwrap();
    assert_eq!(after.score(&adopted, "a", at(2)), Some(101.0));
    assert_eq!(after.score(&adopted, "b", at(2)), Some(101.0));
}

/// Every leaf of a JSON value, by path.
fn leaves(json: &Json, path: &mut Vec<PathPart>, out: &mut Vec<Vec<PathPart>>) {
    match json {
        Json::Object(map) => {
            for (k, v) in map {
                path.push(PathPart::Key(k.clone()));
                leaves(v, path, out);
                path.pop();
            }
        }
        Json::Array(items) => {
            for (i, v) in items.iter().enumerate() {
                path.push(PathPart::Index(i));
                leaves(v, path, out);
                path.pop();
            }
        }
        _ => {}
    }
    out.push(path.clone());
}

#[derive(Clone, Debug)]
enum PathPart {
    Key(String),
    Index(usize),
}

fn at_path<'j>(json: &'j mut Json, path: &[PathPart]) -> &'j mut Json {
    path.iter().fold(json, |j, p| match p {
        PathPart::Key(k) => &mut j[k.as_str()],
        PathPart::Index(i) => &mut j[*i],
    })
}

/// A value in place of `current`, of its own kind most of the time (so that the
/// state often still loads and the engine runs on it), chosen by `choice`.
fn mutation(current: &Json, choice: usize) -> Json {
    let times = [
        "0001-01-01T00:00:00Z",
        "9999-12-31T23:59:59.999999999Z",
        "2025-06-01T00:00:00Z",
        "2026-01-01T00:00:00Z",
        "2026-01-01T00:00:45Z",
        "2026-01-01T00:00:55.5Z",
    ];
    match current {
        Json::Number(n) => {
            let n = n.as_f64().unwrap_or(0.0);
            [
                json!(0),
                json!(-1),
                json!(1e300),
                json!(-1e300),
                json!(0.5),
                json!(n * 2.0),
                json!(u64::MAX),
                json!(i64::MIN),
                json!(3),
                json!(1e-300),
            ][choice % 10]
                .clone()
        }
        Json::String(text) if Timestamp::parse(text).is_ok() => json!(times[choice % times.len()]),
        Json::String(text) => [
            json!(""),
            json!("x"),
            json!("engagement"),
            json!("c2"),
            json!(format!("{text}{text}")),
            json!("mql"),
        ][choice % 6]
            .clone(),
        Json::Bool(b) => json!(!b),
        Json::Null => [json!(0), json!("x"), json!(true), json!("sql")][choice % 4].clone(),
        Json::Array(items) => match choice % 3 {
            0 => Json::Array(items.iter().chain(items).cloned().collect()),
            1 => json!([]),
            _ => Json::Array(items.iter().rev().cloned().collect()),
        },
        Json::Object(_) => [json!({}), json!(null)][choice % 2].clone(),
    }
}

/// A serialised state after a few events (with history, counters of scores, a pending
/// approval and a repeat).
fn base_state(engine: &Engine) -> Json {
    let mut state = load(FORMAT_1).unwrap();
    let c = contact(engine);
    let mut scratch = EngineScratch::default();
    let _ = engine.handle_event(&mut state, &c, &visit(engine, "e5", "/pricing", 50), &mut scratch).unwrap();
    serde_json::to_value(&state).unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// Mutate a serialised state at up to three places (numbers, instants, ids and
    /// lengths: wrong lengths by doubling, emptying or reversing arrays); it either does
    /// not load, or
    /// every later step (events, timeouts, an attribute change, adoption when it does
    /// not fit) leaves a state that serialises and loads again, and nothing panics.
    #[test]
    fn loaded_states_only_ever_write_states_that_load(
        edits in prop::collection::vec((any::<prop::sample::Index>(), any::<usize>()), 1..4),
        steps in prop::collection::vec((0u8..4, 0i64..400_000), 1..6),
    ) {
        let engine = engine();
        let mut json = base_state(&engine);
        for (index, choice) in edits {
            let mut paths = Vec::new();
            leaves(&json, &mut Vec::new(), &mut paths);
            let path = index.get(&paths).clone();
            let target = at_path(&mut json, &path);
            *target = mutation(target, choice);
        }
        let Ok(mut state) = serde_json::from_value::<ContactState>(json) else { return Ok(()) };
        let c = contact(&engine);
        let mut scratch = EngineScratch::default();
        if !engine.fits(&state) {
            state = engine.adopt(state, &c, at(45));
        }
        let reloads = |state: &ContactState| -> Result<(), TestCaseError> {
            let text = serde_json::to_string(state).map_err(|e| TestCaseError::fail(e.to_string()))?;
            let back = load(&text).map_err(|e| TestCaseError::fail(format!("{e}\n{text}")))?;
            prop_assert_eq!(&back, state);
            Ok(())
        };
        reloads(&state)?;
        for (n, (kind, secs)) in steps.into_iter().enumerate() {
            let _ = match kind {
                0 => engine.handle_event(&mut state, &c, &visit(&engine, &format!("p{n}"), "/pricing", secs), &mut scratch),
                1 => engine.handle_event(&mut state, &c, &visit(&engine, "e1", "/blog", secs), &mut scratch),
                2 => engine.handle_timeout(&mut state, &c, at(secs), &mut scratch),
                _ => {
                    let after = engine.program().schema().contact("c1").set("company_size", 5i64).unwrap().build();
                    engine.handle_attribute_change(&mut state, &c, &after, at(secs), &mut scratch)
                }
            };
            reloads(&state)?;
        }
    }
}
