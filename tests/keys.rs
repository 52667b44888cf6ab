//! Idempotency keys never collide for different effects: attribute changes at one
//! instant, many effects in one step, and the duplicate window, configurable, with the
//! guarantee the docs state.

use std::collections::HashSet;
use std::sync::Arc;

use nurture::engine::{Effect, Engine, EngineScratch};
use nurture::host::{MemoryStore, RecordingDelivery, Runtime};
use nurture::{Program, Timestamp};

const T0: i64 = 1_767_225_600;

fn at(secs: i64) -> Timestamp {
    Timestamp::from_unix(T0 + secs, 0).unwrap()
}

fn keys(effects: &[Effect]) -> Vec<String> {
    effects.iter().map(|e| e.key.to_string()).collect()
}

#[test]
fn attribute_changes_at_one_instant_get_distinct_keys() {
    // `Runtime::add_contact` replaces attributes at the runtime's clock, which does not
    // move between calls: three changes, one instant, the same rule firing each time.
    let program = Program::from_json(
        r#"{"version": 1, "schema": {"contact": {"plan": "string"}},
            "rules": [{"id": "plan-changed", "on": {"attribute": "plan"},
                       "actions": [{"type": "send", "channel": "email", "template": "plan"}]}]}"#,
    )
    .unwrap();
    let engine = Arc::new(Engine::new(Arc::new(program)));
    let schema = engine.program().schema().clone();
    let mut rt = Runtime::new(engine, MemoryStore::new(), RecordingDelivery::default(), at(0));
    rt.add_contact(schema.contact("c1").set("plan", "free").unwrap().build()).unwrap();
    for plan in ["pro", "team", "enterprise"] {
        rt.add_contact(schema.contact("c1").set("plan", plan).unwrap().build()).unwrap();
    }
    let delivered = keys(&rt.delivery().delivered);
    assert_eq!(delivered.len(), 3, "{delivered:?}");
    let distinct: HashSet<_> = delivered.iter().collect();
    assert_eq!(distinct.len(), 3, "a receiver de-duplicating by key would perform only one: {delivered:?}");
    assert!(delivered.iter().all(|k| k.len() == 32), "{delivered:?}");
}

#[test]
fn a_timeout_repeated_at_one_instant_gets_other_keys_and_a_retry_the_same() {
    let program = Program::from_json(
        r#"{"version": 1, "schema": {"contact": {"plan": "string"}, "events": {"visit": {}}},
            "rules": [{"id": "plan-changed", "on": {"attribute": "plan"},
                       "actions": [{"type": "send", "channel": "email", "template": "plan"}]}]}"#,
    )
    .unwrap();
    let engine = Engine::new(Arc::new(program));
    let schema = engine.program().schema();
    let (a, b) = (
        schema.contact("c1").set("plan", "free").unwrap().build(),
        schema.contact("c1").set("plan", "pro").unwrap().build(),
    );
    let mut state = engine.new_state(&a, at(0));
    let mut scratch = EngineScratch::default();
    let before = state.clone();
    let first = engine.handle_attribute_change(&mut state, &a, &b, at(5), &mut scratch).unwrap();
    // A retry from the same state (a lost save) gives the same keys.
    let mut retry = before.clone();
    let again = engine.handle_attribute_change(&mut retry, &a, &b, at(5), &mut scratch).unwrap();
    assert_eq!(keys(&first.effects), keys(&again.effects));
    // The change back and forth at the same instant: other keys every time.
    let back = engine.handle_attribute_change(&mut state, &b, &a, at(5), &mut scratch).unwrap();
    let forth = engine.handle_attribute_change(&mut state, &a, &b, at(5), &mut scratch).unwrap();
    let all: HashSet<_> = [&first, &back, &forth]
        .iter()
        .flat_map(|o| keys(&o.effects))
        .collect::<Vec<_>>()
        .into_iter()
        .collect();
    assert_eq!(all.len(), 3);
}

/// A program whose one event gives `rules * actions` effects.
fn wide_program(rules: usize, actions: usize) -> String {
    let action = r#"{"type": "send", "channel": "email", "template": "t"}"#;
    let actions = vec![action; actions].join(",");
    let rules: Vec<String> =
        (0..rules).map(|i| format!(r#"{{"id": "r{i}", "on": "visit", "actions": [{actions}]}}"#)).collect();
    format!(r#"{{"version": 1, "schema": {{"events": {{"visit": {{}}}}}}, "rules": [{}]}}"#, rules.join(","))
}

#[test]
fn many_effects_in_one_step_get_unique_keys() {
    // 20,000 effects: above the default effects-per-step limit, so the limit is raised.
    let limits = nurture::limits::Limits { max_effects_per_step: 50_000, ..Default::default() };
    let program = Program::from_json_with_limits(&wide_program(200, 100), &limits).unwrap();
    let engine = Engine::new(Arc::new(program));
    let schema = engine.program().schema();
    let contact = schema.contact("c1").build();
    let mut state = engine.new_state(&contact, at(0));
    let event = schema.event("e1", "c1", "visit", at(1)).unwrap().build();
    let outcome = engine.handle_event(&mut state, &contact, &event, &mut EngineScratch::default()).unwrap();
    assert_eq!(outcome.effects.len(), 20_000);
    let distinct: HashSet<_> = outcome.effects.iter().map(|e| e.key).collect();
    assert_eq!(distinct.len(), 20_000);
}

fn visits() -> Engine {
    let program = Program::from_json(
        r#"{"version": 1, "schema": {"events": {"visit": {}}},
            "rules": [{"id": "hello", "on": "visit", "actions": [{"type": "send", "channel": "email", "template": "t"}]}]}"#,
    )
    .unwrap();
    Engine::new(Arc::new(program))
}

#[test]
fn the_duplicate_window_is_configurable_and_redeliveries_past_it_keep_their_keys() {
    for window in [1usize, 64, 300] {
        let engine = visits().with_dedup_window(window);
        let schema = engine.program().schema();
        let contact = schema.contact("c1").build();
        let mut state = engine.new_state(&contact, at(0));
        let mut scratch = EngineScratch::default();
        let event = |n: usize| schema.event(format!("e{n}"), "c1", "visit", at(n as i64)).unwrap().build();
        let first = engine.handle_event(&mut state, &contact, &event(0), &mut scratch).unwrap();
        for n in 1..window {
            let o = engine.handle_event(&mut state, &contact, &event(n), &mut scratch).unwrap();
            assert!(!o.duplicate);
        }
        assert_eq!(state.remembered_events(), window);
        // Still in the window: a duplicate, no effects.
        let again = engine.handle_event(&mut state, &contact, &event(0), &mut scratch).unwrap();
        assert!(again.duplicate && again.effects.is_empty(), "window {window}");
        // One more event pushes `e0` out: handled again, with the same keys as the first
        // time, so a receiver de-duplicating by key still performs it once.
        let _ = engine.handle_event(&mut state, &contact, &event(window), &mut scratch).unwrap();
        let late = engine.handle_event(&mut state, &contact, &event(0), &mut scratch).unwrap();
        assert!(!late.duplicate, "window {window}");
        assert_eq!(keys(&late.effects), keys(&first.effects));
    }
    assert_eq!(visits().with_dedup_window(0).dedup_window(), 1);
    assert_eq!(visits().with_dedup_window(usize::MAX).dedup_window(), nurture::engine::MAX_DEDUP_WINDOW);
}

#[test]
fn keys_and_fingerprints_are_the_same_on_every_run() {
    // Pinned: a change of the hash, its key or the parts' layout changes every key,
    // which is a state-format change.
    let engine = visits();
    let schema = engine.program().schema();
    let contact = schema.contact("c1").build();
    let mut state = engine.new_state(&contact, at(0));
    let event = schema.event("e1", "c1", "visit", at(1)).unwrap().build();
    let o = engine.handle_event(&mut state, &contact, &event, &mut EngineScratch::default()).unwrap();
    let json = serde_json::to_value(&state).unwrap();
    assert_eq!(o.effects[0].key.to_string(), PINNED_KEY);
    assert_eq!(json["seen"][0], PINNED_FINGERPRINT);
}

const PINNED_KEY: &str = "df21dde0db2c269a4064e04b29f94bae";
const PINNED_FINGERPRINT: &str = "f6589822634b69ae198867ee1383cef8";
