//! Semantic gaps a user hits (issue 9, item 9): each test fails on the engine before
//! the fix it names.

use std::sync::Arc;

use nurture::engine::{ContactState, Effect, EffectKind, Engine, EngineScratch, Outcome};
use nurture::{Program, Timestamp};

const T0: i64 = 1_767_225_600; // 2026-01-01T00:00:00Z

fn at(secs: i64) -> Timestamp {
    Timestamp::from_unix(T0 + secs, 0).unwrap()
}

fn engine(doc: &str) -> Engine {
    match Program::from_json(doc) {
        Ok(p) => Engine::new(Arc::new(p)),
        Err(e) => panic!("{e}"),
    }
}

fn kinds(outcome: &Outcome) -> Vec<String> {
    outcome.effects.iter().map(describe).collect()
}

fn describe(e: &Effect) -> String {
    match &e.kind {
        EffectKind::SegmentEntered { segment } => format!("enter {segment}"),
        EffectKind::SegmentExited { segment } => format!("exit {segment}"),
        EffectKind::ThresholdCrossed { threshold, .. } => format!("threshold {threshold}"),
        EffectKind::Action { rule, .. } => format!("rule {}", rule.as_str()),
        EffectKind::RuleError { rule, .. } => format!("error {}", rule.as_str()),
        other => format!("{}", other.name()),
    }
}

const DAY: i64 = 86_400;

// 1. Segment conditions on `now` schedule the exact wake-up.

fn timed_segments() -> Engine {
    engine(
        r#"{"version": 1,
          "schema": {"contact": {"bought_at": "timestamp", "signed_up": "timestamp", "plan": "string"},
                     "events": {"visit": {}}},
          "segments": [
            {"id": "recent_buyer",
             "filter": {"field": "contact.bought_at", "op": "within_last", "value": 14}},
            {"id": "veteran", "when": "now - contact.signed_up > duration('240h')"},
            {"id": "pro_veteran",
             "when": "contact.plan == 'pro' && contact.signed_up + duration('480h') <= now"}
          ]}"#,
    )
}

#[test]
fn within_last_exits_at_the_exact_instant() {
    let engine = timed_segments();
    let schema = engine.program().schema();
    let contact = schema.contact("c1").set("bought_at", at(0)).unwrap().build();
    let mut state = engine.new_state(&contact, at(0));
    assert!(state.in_segment("recent_buyer"));
    // Inside the window through `bought_at + 14d` inclusive; out one nanosecond later.
    let exit = at(14 * DAY).checked_add(nurture::time::Duration::from_nanos(1).unwrap()).unwrap();
    assert_eq!(engine.wake_after(&state, &contact, at(0)), Some(exit));
    assert_eq!(engine.segments_at(&state, &contact, at(14 * DAY)), vec!["recent_buyer".to_string()]);
    assert!(engine.segments_at(&state, &contact, exit).is_empty());
    let mut scratch = EngineScratch::default();
    let out = engine.handle_timeout(&mut state, &contact, exit, &mut scratch).unwrap();
    assert_eq!(kinds(&out), vec!["exit recent_buyer"]);
    assert_eq!(out.next_wake, None);
}

#[test]
fn now_minus_attribute_enters_at_the_exact_instant() {
    let engine = timed_segments();
    let schema = engine.program().schema();
    let contact = schema.contact("c1").set("signed_up", at(0)).unwrap().build();
    let mut state = engine.new_state(&contact, at(0));
    assert!(!state.in_segment("veteran"));
    // `now - signed_up > 240h`: true from one nanosecond after ten days.
    let enter = at(10 * DAY).checked_add(nurture::time::Duration::from_nanos(1).unwrap()).unwrap();
    assert_eq!(engine.wake_after(&state, &contact, at(0)), Some(enter));
    let mut scratch = EngineScratch::default();
    let out = engine.handle_timeout(&mut state, &contact, enter, &mut scratch).unwrap();
    assert_eq!(kinds(&out), vec!["enter veteran"]);
    // The masked comparison of `pro_veteran` (plan is not `pro`) is still a candidate:
    // the wake-up there finds no change and computes none after it.
    assert_eq!(out.next_wake, Some(at(20 * DAY)));
    let out = engine.handle_timeout(&mut state, &contact, at(20 * DAY), &mut scratch).unwrap();
    assert!(out.effects.is_empty());
    assert_eq!(out.next_wake, None);
}

#[test]
fn timed_wakes_agree_with_full_reevaluation() {
    // At every wake-up the membership equals a full re-evaluation, and it never changes
    // between two wake-ups: sampled every hour for 30 days, for contacts with varied dates.
    let engine = timed_segments();
    let schema = engine.program().schema();
    let mut scratch = EngineScratch::default();
    for c in 0..12i64 {
        let plan = if c % 2 == 0 { "pro" } else { "free" };
        let contact = schema
            .contact(format!("c{c}"))
            .set("bought_at", at(c * 37_000 - 5 * DAY))
            .unwrap()
            .set("signed_up", at(c * 51_111 - 9 * DAY))
            .unwrap()
            .set("plan", plan)
            .unwrap()
            .build();
        let mut state: ContactState = engine.new_state(&contact, at(0));
        let mut wake = engine.wake_after(&state, &contact, at(0));
        for hour in 1..=30 * 24 {
            let t = at(hour * 3_600);
            while let Some(w) = wake.filter(|w| *w <= t) {
                wake = engine.handle_timeout(&mut state, &contact, w, &mut scratch).unwrap().next_wake;
            }
            let stored: Vec<String> = state.segments().map(String::from).collect();
            assert_eq!(stored, engine.segments_at(&state, &contact, t), "contact c{c} at hour {hour}");
        }
    }
}
