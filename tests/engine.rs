//! The engine: effects in a deterministic order with stable idempotency keys,
//! duplicates ignored, approvals, refusals that change nothing, and snapshots that
//! resume with the same effects.

use std::sync::Arc;

use nurture::engine::{ContactState, Engine, EngineError, EngineScratch, Outcome, Status};
use nurture::{Contact, Event, Program, Timestamp};
use proptest::prelude::*;

const RULES: &str = r#"{
  "version": 1,
  "schema": {
    "contact": {"company_size": "int"},
    "events": {"page_visit": {"url": "string"}, "form_submit": {"form": "string"}},
    "scores": ["engagement"]
  },
  "rules": [
    {"id": "pricing", "on": "page_visit", "when": "event.url == '/pricing'",
     "actions": [{"type": "add_tag", "tag": "pricing-viewer"},
                 {"type": "send", "channel": "email", "template": "pricing-followup"}]},
    {"id": "demo", "on": "form_submit", "when": "event.form == 'demo'",
     "actions": [{"type": "set_lifecycle_stage", "stage": "sql"},
                 {"type": "notify_owner", "message": "demo request", "needs_approval": true}]},
    {"id": "hot", "on": "page_visit", "when": "score.engagement >= 30.0",
     "actions": [{"type": "add_to_list", "list": "hot-leads"}]}
  ],
  "scoring": {"models": [{
    "id": "engagement", "cap": 100, "decay": {"half_life": "7d"},
    "rules": [
      {"id": "visit", "on": "page_visit", "points": 4},
      {"id": "pricing-visit", "on": "page_visit", "when": "event.url == '/pricing'", "points": 12},
      {"id": "demo-form", "on": "form_submit", "points": 25}
    ],
    "thresholds": [{"id": "mql", "enter": 40, "exit": 30, "rearm": "every_crossing"}]
  }]}
}"#;

const T0: i64 = 1_767_225_600;

fn engine() -> Engine {
    Engine::new(Arc::new(Program::from_json(RULES).expect("valid rules")))
}

fn at(secs: i64) -> Timestamp {
    Timestamp::from_unix(T0 + secs, 0).unwrap()
}

fn contact(engine: &Engine, id: &str) -> Contact {
    engine.program().schema().contact(id).set("company_size", 500i64).unwrap().build()
}

fn event(engine: &Engine, n: u64, who: &str, kind: u8, secs: i64) -> Event {
    let schema = engine.program().schema();
    let id = format!("e{n}");
    match kind {
        0 => schema.event(id, who, "page_visit", at(secs)).unwrap().set("url", "/pricing").unwrap().build(),
        1 => schema.event(id, who, "page_visit", at(secs)).unwrap().set("url", "/blog").unwrap().build(),
        _ => schema.event(id, who, "form_submit", at(secs)).unwrap().set("form", "demo").unwrap().build(),
    }
}

fn kinds(outcome: &Outcome) -> Vec<String> {
    outcome
        .effects
        .iter()
        .map(|e| serde_json::to_value(&e.kind).unwrap()["kind"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn effects_come_in_the_documented_order_and_change_the_state() {
    let engine = engine();
    let c = contact(&engine, "c1");
    let mut state = engine.new_state(&c, at(0));
    let mut scratch = EngineScratch::default();
    // 16 points: below the MQL threshold; the pricing rule's two actions.
    let first = engine.handle_event(&mut state, &c, &event(&engine, 1, "c1", 0, 10), &mut scratch).unwrap();
    assert_eq!(kinds(&first), ["action", "action"]);
    assert!(state.has_tag("pricing-viewer"));
    // A demo form: +25 = 41, crossing the MQL threshold first, then the demo rule.
    let second = engine.handle_event(&mut state, &c, &event(&engine, 2, "c1", 2, 20), &mut scratch).unwrap();
    assert_eq!(kinds(&second), ["threshold_crossed", "action", "action"]);
    assert_eq!(state.stage(), Some("sql"));
    assert_eq!(second.effects[2].status, Status::PendingApproval);
    assert_eq!(state.pending().len(), 1);
    assert!(second.next_wake.is_some(), "decay will take the score below the exit");
    // The `hot` rule reads the score after this event's points.
    let third = engine.handle_event(&mut state, &c, &event(&engine, 3, "c1", 1, 30), &mut scratch).unwrap();
    assert_eq!(kinds(&third), ["action"]);
    assert_eq!(state.lists().collect::<Vec<_>>(), ["hot-leads"]);
    // Decay alone crosses down at a wake-up. The one the third event reports may be kept
    // from before its points (a lower bound): then it finds nothing and gives the exact one.
    let mut wake = third.next_wake.expect("a wake-up");
    let mut timeout = engine.handle_timeout(&mut state, &c, wake, &mut scratch).unwrap();
    if timeout.effects.is_empty() {
        wake = timeout.next_wake.expect("still above the exit");
        timeout = engine.handle_timeout(&mut state, &c, wake, &mut scratch).unwrap();
    }
    assert_eq!(kinds(&timeout), ["threshold_crossed"]);
}

#[test]
fn duplicates_approvals_and_refusals() {
    let engine = engine();
    let c = contact(&engine, "c1");
    let mut state = engine.new_state(&c, at(0));
    let mut scratch = EngineScratch::default();
    let demo = event(&engine, 1, "c1", 2, 10);
    let first = engine.handle_event(&mut state, &c, &demo, &mut scratch).unwrap();
    let again = engine.handle_event(&mut state, &c, &demo, &mut scratch).unwrap();
    assert!(again.duplicate && again.effects.is_empty());

    let pending = first.effects.iter().find(|e| e.status == Status::PendingApproval).unwrap().key;
    let approved = engine.approve(&mut state, &c, pending, at(20), &mut scratch).unwrap().expect("pending");
    assert_eq!(approved.effects[0].key, pending);
    assert_eq!(approved.effects[0].status, Status::Ready);
    assert!(
        engine.approve(&mut state, &c, pending, at(20), &mut scratch).unwrap().is_none(),
        "approved once"
    );

    let before = state.clone();
    let other = contact(&engine, "c2");
    let wrong = engine.handle_event(&mut state, &other, &event(&engine, 2, "c2", 0, 20), &mut scratch);
    assert!(matches!(wrong, Err(EngineError::WrongContact { .. })));
    let strict = engine.clone().with_max_lateness(nurture::Duration::ZERO);
    let late = strict.handle_event(&mut state, &c, &event(&engine, 3, "c1", 0, 5), &mut scratch);
    assert!(matches!(late, Err(EngineError::TooLate { .. })), "{late:?}");
    assert_eq!(state, before);
}

#[test]
fn idempotency_keys_are_stable_and_distinct() {
    let (a, b) = (engine(), engine());
    let c = contact(&a, "c1");
    let mut scratch = EngineScratch::default();
    let run = |engine: &Engine, scratch: &mut EngineScratch| {
        let mut state = engine.new_state(&c, at(0));
        (1..=6)
            .flat_map(|n| {
                engine
                    .handle_event(
                        &mut state,
                        &c,
                        &event(engine, n, "c1", (n % 3) as u8, n as i64 * 60),
                        scratch,
                    )
                    .unwrap()
                    .effects
            })
            .map(|e| e.key)
            .collect::<Vec<_>>()
    };
    let keys = run(&a, &mut scratch);
    assert_eq!(keys, run(&b, &mut scratch));
    let mut unique = keys.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), keys.len());
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Snapshot (JSON) mid-stream, restore, continue: the same effects and the same end
    /// state as without the interruption.
    #[test]
    fn snapshots_resume_with_the_same_effects(
        steps in prop::collection::vec((0u8..3, 0i64..86_400, 0u64..4), 1..40),
        cut in 0usize..40,
    ) {
        let engine = engine();
        let c = contact(&engine, "c1");
        let mut scratch = EngineScratch::default();
        let mut now = 0;
        let events: Vec<Event> = steps
            .iter()
            .enumerate()
            .map(|(n, &(kind, gap, dup))| {
                now += gap;
                // Some ids repeat, to exercise duplicates.
                let id = if dup == 0 && n > 0 { n as u64 - 1 } else { n as u64 };
                event(&engine, id, "c1", kind, now)
            })
            .collect();
        let mut straight = engine.new_state(&c, at(0));
        let expected: Vec<_> = events
            .iter()
            .map(|e| engine.handle_event(&mut straight, &c, e, &mut scratch).map(|o| o.effects))
            .collect();
        let mut state = engine.new_state(&c, at(0));
        let mut got = Vec::new();
        for (i, e) in events.iter().enumerate() {
            if i == cut.min(events.len()) {
                let json = serde_json::to_string(&state).unwrap();
                state = serde_json::from_str::<ContactState>(&json).unwrap();
            }
            got.push(engine.handle_event(&mut state, &c, e, &mut scratch).map(|o| o.effects));
        }
        prop_assert_eq!(got, expected);
        prop_assert_eq!(state, straight);
    }
}

#[test]
fn late_events_are_credited_at_their_own_instant_and_nothing_is_dated_back() {
    let engine = engine();
    let c = contact(&engine, "c1");
    let mut scratch = EngineScratch::default();
    let day = 86_400;
    // In order: a visit on day 0 and a demo on day 7 (the half-life).
    let mut ordered = engine.new_state(&c, at(0));
    for (n, kind, secs) in [(1, 1, 0), (2, 2, 7 * day)] {
        let _ = engine
            .handle_event(&mut ordered, &c, &event(&engine, n, "c1", kind, secs), &mut scratch)
            .unwrap();
    }
    // The same two events, the visit arriving after the demo.
    let mut late = engine.new_state(&c, at(0));
    let _ = engine.handle_event(&mut late, &c, &event(&engine, 2, "c1", 2, 7 * day), &mut scratch).unwrap();
    let outcome = engine.handle_event(&mut late, &c, &event(&engine, 1, "c1", 1, 0), &mut scratch).unwrap();
    let scorer = engine.program().scorer().unwrap();
    let value = |s: &ContactState| scorer.value(s.scores().unwrap(), 0, at(7 * day)).unwrap();
    // 4 visit points decayed by one half-life, plus 25: the same either way.
    assert!((value(&ordered) - 27.0).abs() < 1e-9, "{}", value(&ordered));
    assert!((value(&late) - value(&ordered)).abs() < 1e-9, "{} vs {}", value(&late), value(&ordered));
    // Its effects are dated when it was handled, not back at day 0.
    assert!(outcome.effects.iter().all(|e| e.at == at(7 * day)));
    // Later than the limit (7 days by default): refused, nothing changes.
    let before = late.clone();
    let too_late = engine.handle_event(&mut late, &c, &event(&engine, 3, "c1", 1, -day), &mut scratch);
    assert!(matches!(too_late, Err(EngineError::TooLate { .. })));
    assert_eq!(late, before);
}

#[test]
fn idempotency_keys_serialize_as_hex_strings() {
    let key = nurture::engine::IdempotencyKey(0x00ab_cdef_0123_4567);
    let json = serde_json::to_string(&key).unwrap();
    assert_eq!(json, "\"00abcdef01234567\"");
    assert_eq!(serde_json::from_str::<nurture::engine::IdempotencyKey>(&json).unwrap(), key);
    assert!(serde_json::from_str::<nurture::engine::IdempotencyKey>("\"xyz\"").is_err());
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    /// Delivering an event late (within the lateness limit, below every cap) gives the
    /// same score as delivering it in order: its points are credited as earned at its
    /// own instant.
    #[test]
    fn late_delivery_gives_the_in_order_score(
        steps in prop::collection::vec((0u8..3, 0i64..86_400), 2..5),
        late in 0usize..6,
    ) {
        let engine = engine();
        let c = contact(&engine, "c1");
        let mut scratch = EngineScratch::default();
        let mut now = 0;
        let events: Vec<Event> = steps
            .iter()
            .enumerate()
            .map(|(n, &(kind, gap))| {
                now += gap;
                event(&engine, n as u64, "c1", kind, now)
            })
            .collect();
        let late = late.min(events.len() - 1);
        let mut in_order = engine.new_state(&c, at(0));
        for e in &events {
            let _ = engine.handle_event(&mut in_order, &c, e, &mut scratch).unwrap();
        }
        // The same events with one of them delivered last.
        let mut shuffled = engine.new_state(&c, at(0));
        for e in events.iter().enumerate().filter(|(i, _)| *i != late).map(|(_, e)| e).chain([&events[late]]) {
            let _ = engine.handle_event(&mut shuffled, &c, e, &mut scratch).unwrap();
        }
        let scorer = engine.program().scorer().unwrap();
        let read = |s: &ContactState| scorer.value(s.scores().unwrap(), 0, at(now)).unwrap();
        let (a, b) = (read(&in_order), read(&shuffled));
        prop_assert!((a - b).abs() <= 1e-9 * a.abs().max(1.0), "{a} vs {b}");
    }
}
