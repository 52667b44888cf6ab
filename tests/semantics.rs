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
        other => other.name().to_string(),
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

fn full_contact(engine: &Engine, bought_at: Timestamp, signed_up: Timestamp, plan: &str) -> nurture::Contact {
    let schema = engine.program().schema();
    let contact = schema.contact("c1").set("bought_at", bought_at).unwrap();
    contact.set("signed_up", signed_up).unwrap().set("plan", plan).unwrap().build()
}

#[test]
fn within_last_exits_at_the_exact_instant() {
    let engine = timed_segments();
    // Signed up far ahead, so `veteran` changes only much later.
    let contact = full_contact(&engine, at(0), at(1_000 * DAY), "free");
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
    assert!(out.next_wake.is_some_and(|w| w > at(1_010 * DAY)));
}

#[test]
fn now_minus_attribute_enters_at_the_exact_instant() {
    let engine = timed_segments();
    let contact = full_contact(&engine, at(-400 * DAY), at(0), "free");
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

// 2. A contact created above a threshold fires the threshold rule.

fn fit_program() -> Engine {
    engine(
        r#"{"version": 1,
          "schema": {"contact": {"title": "string", "plan": "string"}, "events": {"visit": {}},
                     "scores": ["fit"]},
          "scoring": {"models": [{"id": "fit",
            "rules": [{"id": "vp", "fit": "contact.title == 'VP'", "points": 60}],
            "thresholds": [{"id": "mql", "enter": 50}]}]},
          "segments": [{"id": "execs", "when": "score.fit >= 50.0"}],
          "rules": [
            {"id": "handoff", "on": {"score": "fit", "threshold": "mql"},
             "actions": [{"type": "set_lifecycle_stage", "stage": "mql"}]},
            {"id": "welcome_exec", "on": {"segment": "execs"},
             "actions": [{"type": "add_tag", "tag": "exec"}]},
            {"id": "plan_changed", "on": {"attribute": "plan"},
             "actions": [{"type": "add_tag", "tag": "plan-changed"}]}
          ]}"#,
    )
}

#[test]
fn a_contact_created_above_a_threshold_fires_the_threshold_rule() {
    let engine = fit_program();
    let schema = engine.program().schema();
    let contact = schema.contact("c1").set("title", "VP").unwrap().set("plan", "pro").unwrap().build();
    let mut scratch = EngineScratch::default();
    let (state, outcome) = engine.create(&contact, at(0), &mut scratch).unwrap();
    assert_eq!(
        kinds(&outcome),
        vec!["threshold mql", "enter execs", "rule handoff", "rule welcome_exec"],
        "crossings, then the cascade: segment entries and the rules they start"
    );
    assert_eq!(state.stage(), Some("mql"));
    assert!(state.has_tag("exec"));
    // A contact created with a field set has not changed it: attribute rules stay quiet.
    assert!(!state.has_tag("plan-changed"));
    assert!(outcome.effects.iter().all(|e| e.cause == nurture::engine::Cause::Created(at(0))));
    // The plain state is the same minus what the rules did.
    let plain = engine.new_state(&contact, at(0));
    assert_eq!(plain.segments().collect::<Vec<_>>(), state.segments().collect::<Vec<_>>());
    assert_eq!(plain.stage(), None);
    // Below the threshold: nothing but the state.
    let other = schema.contact("c2").set("title", "intern").unwrap().build();
    let (_, outcome) = engine.create(&other, at(0), &mut scratch).unwrap();
    assert!(outcome.effects.is_empty());
}

#[test]
fn the_runtime_creates_contacts_with_their_effects() {
    use nurture::host::{MemoryStore, RecordingDelivery, Runtime};
    let engine = fit_program();
    let schema = engine.program().schema_arc().clone();
    let mut runtime =
        Runtime::new(Arc::new(engine), MemoryStore::default(), RecordingDelivery::default(), at(0));
    runtime.add_contact(schema.contact("c1").set("title", "VP").unwrap().build()).unwrap();
    let delivered: Vec<String> = runtime.delivery().delivered.iter().map(describe).collect();
    assert_eq!(delivered, vec!["threshold mql", "enter execs", "rule handoff", "rule welcome_exec"]);
}

// 3. Segment-condition errors are reported.

#[test]
fn segment_condition_errors_are_reported_once_per_step() {
    let engine = engine(
        r#"{"version": 1,
          "schema": {"contact": {"seats": "int", "budget": "int"}, "events": {"visit": {}}},
          "segments": [{"id": "rich", "when": "contact.budget > 100"},
                       {"id": "flag", "when": "contact.seats > 0"}],
          "rules": [{"id": "flagged", "on": {"segment": "flag"},
                     "actions": [{"type": "add_tag", "tag": "x"}]}]}"#,
    );
    let schema = engine.program().schema();
    // `budget` is not set: reading it is an error, not "not a member" in silence.
    let contact = schema.contact("c1").set("seats", 0i64).unwrap().build();
    let mut scratch = EngineScratch::default();
    let mut state = engine.new_state(&contact, at(0));
    let visit = schema.event("e1", "c1", "visit", at(1)).unwrap().build();
    let out = engine.handle_event(&mut state, &contact, &visit, &mut scratch).unwrap();
    let errors: Vec<&Effect> =
        out.effects.iter().filter(|e| matches!(e.kind, EffectKind::SegmentError { .. })).collect();
    assert_eq!(errors.len(), 1, "{:?}", kinds(&out));
    let EffectKind::SegmentError { segment, message } = &errors[0].kind else { unreachable!() };
    assert_eq!(segment, "rich");
    assert!(message.contains("budget"), "{message}");
    assert!(!state.in_segment("rich"));
    // A cascade of several rounds (a segment change starting a rule) still reports once.
    let now_in = schema.contact("c1").set("seats", 1i64).unwrap().build();
    let out = engine.handle_attribute_change(&mut state, &contact, &now_in, at(2), &mut scratch).unwrap();
    let errors = out.effects.iter().filter(|e| e.kind.name() == "segment_error").count();
    assert_eq!(errors, 1, "{:?}", kinds(&out));
    assert!(kinds(&out).contains(&"rule flagged".to_string()));
}

// 4. Repeat caps by calendar period, in the contact's zone.

#[test]
fn repeat_caps_count_per_calendar_day_in_the_contacts_zone() {
    let engine = engine(
        r#"{"version": 1,
          "schema": {"contact": {"tz": "string"}, "events": {"visit": {}}},
          "rules": [
            {"id": "daily", "on": "visit", "repeat": {"max": 2, "per": "day", "zone": "contact.tz"},
             "actions": [{"type": "add_tag", "tag": "seen"}]},
            {"id": "sliding", "on": "visit", "repeat": {"max": 2, "per": "1d"},
             "actions": [{"type": "add_tag", "tag": "seen"}]}
          ]}"#,
    );
    let schema = engine.program().schema();
    let contact = schema.contact("c1").set("tz", "America/New_York").unwrap().build();
    let mut state = engine.new_state(&contact, at(0));
    let mut scratch = EngineScratch::default();
    // 19:00, 20:00 and 21:00 on 31 December in New York, then 00:00 on 1 January.
    let mut fired = Vec::new();
    for (i, hour) in [0, 1, 2, 5].into_iter().enumerate() {
        let visit = schema.event(format!("e{i}"), "c1", "visit", at(hour * 3_600)).unwrap().build();
        let out = engine.handle_event(&mut state, &contact, &visit, &mut scratch).unwrap();
        fired.push(kinds(&out));
    }
    assert_eq!(fired[2], Vec::<String>::new(), "third on the same local day: both capped");
    assert_eq!(fired[3], vec!["rule daily"], "a new local day; the sliding window is still full");
}

#[test]
fn calendar_caps_are_checked_when_compiling() {
    let doc = |repeat: &str| {
        format!(
            r#"{{"version": 1, "schema": {{"contact": {{"tz": "string", "n": "int"}}, "events": {{"visit": {{}}}}}},
              "rules": [{{"id": "r", "on": "visit", "repeat": {repeat}}}]}}"#
        )
    };
    for (repeat, path) in [
        (r#"{"max": 2, "per": "1d", "zone": "UTC"}"#, "/rules/0/repeat/zone"),
        (r#"{"max": 2, "per": "week", "zone": "contact.n"}"#, "/rules/0/repeat/zone"),
        (r#"{"max": 2, "per": "month", "zone": "Mars/Olympus"}"#, "/rules/0/repeat/zone"),
        (r#"{"max": 2, "per": "fortnight"}"#, "/rules/0/repeat/per"),
    ] {
        let err = Program::from_json(&doc(repeat)).expect_err(repeat);
        assert_eq!(err.diagnostics[0].path, path, "{repeat}: {err}");
    }
    assert!(Program::from_json(&doc(r#"{"max": 2, "per": "week", "zone": "contact.tz"}"#)).is_ok());
}

// 5. Date offsets accept any duration.

fn date_engine(offset: &str, extra: &str) -> Engine {
    engine(&format!(
        r#"{{"version": 1,
          "schema": {{"contact": {{"ends": "timestamp"}}, "events": {{}}}},
          "rules": [{{"id": "remind", "on": {{"date": "ends", "offset": "{offset}"{extra}}},
                     "actions": [{{"type": "add_tag", "tag": "reminded"}}]}}]}}"#
    ))
}

#[test]
fn date_offsets_accept_exact_durations() {
    let ends = Timestamp::parse("2026-03-10T15:45:00Z").unwrap();
    for (offset, expected) in [
        ("72h", "2026-03-13T15:45:00Z"),
        ("-90m", "2026-03-10T14:15:00Z"),
        ("1h30m", "2026-03-10T17:15:00Z"),
        // Whole days keep their calendar meaning: that local day at `at` (09:00).
        ("3d", "2026-03-13T09:00:00Z"),
    ] {
        let engine = date_engine(offset, "");
        let contact = engine.program().schema().contact("c1").set("ends", ends).unwrap().build();
        let mut state = engine.new_state(&contact, at(0));
        let wake = engine.wake_after(&state, &contact, at(0));
        assert_eq!(wake, Some(Timestamp::parse(expected).unwrap()), "offset {offset}");
        let out = engine.handle_timeout(&mut state, &contact, wake.unwrap(), &mut EngineScratch::default());
        assert_eq!(kinds(&out.unwrap()), vec!["rule remind"], "offset {offset}");
    }
}

#[test]
fn every_year_with_an_offset_of_more_than_a_year() {
    let engine = date_engine("-400d", r#", "every_year": true"#);
    let born = Timestamp::parse("2000-01-01T00:00:00Z").unwrap();
    let contact = engine.program().schema().contact("c1").set("ends", born).unwrap().build();
    let after = Timestamp::parse("2026-06-01T00:00:00Z").unwrap();
    let state = engine.new_state(&contact, after);
    // The anniversary of 2028-01-01, 400 days early.
    let expected = Timestamp::parse("2026-11-27T09:00:00Z").unwrap();
    assert_eq!(engine.wake_after(&state, &contact, after), Some(expected));
}

#[test]
fn date_offsets_are_checked_when_compiling() {
    for (offset, extra, path) in [
        ("72h", r#", "at": "08:00""#, "/rules/0/on/at"),
        ("-9223372036854775808d", "", "/rules/0/on/offset"),
        ("900000h", "", "/rules/0/on/offset"),
        ("soon", "", "/rules/0/on/offset"),
    ] {
        let doc = format!(
            r#"{{"version": 1, "schema": {{"contact": {{"ends": "timestamp"}}, "events": {{}}}},
              "rules": [{{"id": "remind", "on": {{"date": "ends", "offset": "{offset}"{extra}}}}}]}}"#
        );
        let err = Program::from_json(&doc).expect_err(offset);
        assert_eq!(err.diagnostics[0].path, path, "{offset}: {err}");
    }
}

// 6. `adjust_score` names the group.

fn grouped(group: &str) -> String {
    format!(
        r#"{{"version": 1,
          "schema": {{"contact": {{}}, "events": {{"call": {{}}}}}},
          "scoring": {{"models": [{{"id": "engagement",
            "groups": [{{"id": "web", "cap": 10}}, {{"id": "sales"}}],
            "rules": [{{"id": "v", "on": "call", "points": 1, "group": "web"}}]}}]}},
          "rules": [{{"id": "bonus", "on": "call",
            "actions": [{{"type": "adjust_score", "score": "engagement", "points": 50{group}}}]}}]}}"#
    )
}

#[test]
fn adjust_score_goes_to_the_named_group() {
    let mut scratch = EngineScratch::default();
    for (group, expected) in [("", 10.0), (r#", "group": "sales""#, 51.0)] {
        let engine = engine(&grouped(group));
        let schema = engine.program().schema();
        let contact = schema.contact("c1").build();
        let mut state = engine.new_state(&contact, at(0));
        let call = schema.event("e1", "c1", "call", at(1)).unwrap().build();
        let _ = engine.handle_event(&mut state, &contact, &call, &mut scratch).unwrap();
        // The first group is capped at 10; `sales` holds the 50 apart from the rule's 1.
        assert_eq!(engine.score(&state, "engagement", at(1)), Some(expected), "group {group:?}");
    }
}

#[test]
fn an_unknown_adjust_score_group_is_a_compile_error() {
    let err = Program::from_json(&grouped(r#", "group": "sale""#)).expect_err("unknown group");
    let d = &err.diagnostics[0];
    assert_eq!(d.path, "/rules/0/actions/0/group", "{err}");
    assert_eq!(d.did_you_mean.as_deref(), Some("sales"), "{err}");
}

// 7. Lists, owner, tags and stage in conditions; triggers on their changes.

#[test]
fn lists_owner_tags_and_stage_are_readable_and_trigger_rules() {
    let engine = engine(
        r#"{"version": 1,
          "schema": {"contact": {}, "events": {"signup": {}, "unsubscribe": {}}},
          "segments": [{"id": "owned_subscriber",
                        "when": "'newsletter' in lists && owner != '' && 'vip' in tags && stage == 'lead'"}],
          "rules": [
            {"id": "join", "on": "signup",
             "actions": [{"type": "add_to_list", "list": "newsletter"},
                         {"type": "add_tag", "tag": "vip"},
                         {"type": "set_lifecycle_stage", "stage": "lead"}]},
            {"id": "leave", "on": "unsubscribe", "when": "'newsletter' in lists",
             "actions": [{"type": "remove_from_list", "list": "newsletter"}]},
            {"id": "route", "on": {"tag": "vip"},
             "actions": [{"type": "assign_owner", "owner": "alice"}]},
            {"id": "greet_owner", "on": {"owner": "alice"}, "when": "owner == 'alice'",
             "actions": [{"type": "notify_owner", "message": "new vip"}]},
            {"id": "any_stage", "on": {"stage": "*"},
             "actions": [{"type": "crm_write", "field": "stage_seen", "value": true}]},
            {"id": "left_list", "on": {"list": "newsletter", "direction": "exit"},
             "actions": [{"type": "add_tag", "tag": "churned"}]},
            {"id": "owned", "on": {"segment": "owned_subscriber"},
             "actions": [{"type": "send", "channel": "email", "template": "welcome"}]}
          ]}"#,
    );
    let schema = engine.program().schema();
    let contact = schema.contact("c1").build();
    let mut state = engine.new_state(&contact, at(0));
    let mut scratch = EngineScratch::default();
    let signup = schema.event("e1", "c1", "signup", at(1)).unwrap().build();
    let out = engine.handle_event(&mut state, &contact, &signup, &mut scratch).unwrap();
    assert_eq!(
        kinds(&out),
        vec![
            "rule join",
            "rule join",
            "rule join",
            // Round 1: the tag and stage changes.
            "rule route",
            "rule any_stage",
            // Round 2: the owner change, then the segment (it reads the owner).
            "enter owned_subscriber",
            "rule greet_owner",
            "rule owned",
        ]
    );
    assert_eq!(state.owner(), Some("alice"));
    // A second signup changes nothing: no tag, list or stage change, no trigger.
    let again = schema.event("e2", "c1", "signup", at(2)).unwrap().build();
    let out = engine.handle_event(&mut state, &contact, &again, &mut scratch).unwrap();
    assert_eq!(kinds(&out), vec!["rule join", "rule join", "rule join"]);
    let bye = schema.event("e3", "c1", "unsubscribe", at(3)).unwrap().build();
    let out = engine.handle_event(&mut state, &contact, &bye, &mut scratch).unwrap();
    assert_eq!(kinds(&out), vec!["rule leave", "exit owned_subscriber", "rule left_list"]);
    assert!(state.has_tag("churned"));
}

// 8. Keyed events and catch-up.

fn shop() -> Engine {
    engine(
        r#"{"version": 1,
          "schema": {"contact": {}, "events": {"purchase": {"order_id": "string", "amount": "int"}},
                     "keys": {"purchase": "order_id"}},
          "scoring": {"models": [{"id": "value",
            "rules": [{"id": "bought", "on": "purchase", "points": 10}]}]},
          "rules": [{"id": "thanks", "on": "purchase",
                     "actions": [{"type": "send", "channel": "email", "template": "thanks"}]}]}"#,
    )
}

#[test]
fn a_keyed_event_counts_once_per_key() {
    let engine = shop();
    let schema = engine.program().schema();
    let contact = schema.contact("c1").build();
    let mut state = engine.new_state(&contact, at(0));
    let mut scratch = EngineScratch::default();
    let purchase = |id: &str, order: &str, t: i64| {
        schema.event(id, "c1", "purchase", at(t)).unwrap().set("order_id", order).unwrap().build()
    };
    // The same order sent twice under two event ids (a webhook retried by another
    // system): the second is a duplicate.
    let first = engine.handle_event(&mut state, &contact, &purchase("e1", "A-1", 1), &mut scratch).unwrap();
    assert_eq!(kinds(&first), vec!["rule thanks"]);
    let again = engine.handle_event(&mut state, &contact, &purchase("e2", "A-1", 2), &mut scratch).unwrap();
    assert!(again.duplicate && again.effects.is_empty());
    let other = engine.handle_event(&mut state, &contact, &purchase("e3", "A-2", 3), &mut scratch).unwrap();
    assert!(!other.duplicate);
    assert_eq!(engine.score(&state, "value", at(3)), Some(20.0));
    // Unkeyed instances (no order id) all count.
    let bare = schema.event("e4", "c1", "purchase", at(4)).unwrap().build();
    assert!(!engine.handle_event(&mut state, &contact, &bare, &mut scratch).unwrap().duplicate);
    // The memory is bounded: after KEY_WINDOW other orders, `A-1` is forgotten.
    for i in 0..nurture::engine::KEY_WINDOW {
        let e = purchase(&format!("f{i}"), &format!("B-{i}"), 5 + i as i64);
        assert!(!engine.handle_event(&mut state, &contact, &e, &mut scratch).unwrap().duplicate);
    }
    let late = purchase("e5", "A-1", 1_000);
    assert!(!engine.handle_event(&mut state, &contact, &late, &mut scratch).unwrap().duplicate);
    // Long keys are kept as fingerprints: still told apart, still bounded.
    let long_a = "x".repeat(10_000);
    let long_b = format!("{}y", "x".repeat(9_999));
    assert!(
        !engine
            .handle_event(&mut state, &contact, &purchase("g1", &long_a, 1_001), &mut scratch)
            .unwrap()
            .duplicate
    );
    assert!(
        !engine
            .handle_event(&mut state, &contact, &purchase("g2", &long_b, 1_002), &mut scratch)
            .unwrap()
            .duplicate
    );
    assert!(
        engine
            .handle_event(&mut state, &contact, &purchase("g3", &long_a, 1_003), &mut scratch)
            .unwrap()
            .duplicate
    );
    let json = serde_json::to_string(&state).unwrap();
    assert!(json.len() < 40_000, "state of {} bytes", json.len());
    let back: ContactState = serde_json::from_str(&json).unwrap();
    assert_eq!(back, state);
}

#[test]
fn event_keys_are_checked_when_compiling() {
    for (keys, path) in [
        (r#"{"purchase": "order"}"#, "/schema/keys/purchase"),
        (r#"{"purchase": "amount2"}"#, "/schema/keys/purchase"),
        (r#"{"purchse": "order_id"}"#, "/schema/keys/purchse"),
        (r#"{"purchase": "when"}"#, "/schema/keys/purchase"),
    ] {
        let doc = format!(
            r#"{{"version": 1, "schema": {{"contact": {{}}, "keys": {keys},
               "events": {{"purchase": {{"order_id": "string", "amount": "int", "when": "timestamp"}}}}}}}}"#
        );
        let err = Program::from_json(&doc).expect_err(keys);
        assert_eq!(err.diagnostics[0].path, path, "{keys}: {err}");
    }
}

#[test]
fn a_late_timeout_fires_every_missed_occurrence_up_to_the_bound() {
    let engine = engine(
        r#"{"version": 1, "schema": {"contact": {}, "events": {}},
          "rules": [{"id": "digest", "on": {"schedule": "daily", "at": "09:00"},
                     "actions": [{"type": "send", "channel": "email", "template": "digest"}]}]}"#,
    );
    let contact = engine.program().schema().contact("c1").build();
    let mut scratch = EngineScratch::default();
    // Three days and a bit: 1, 2, 3 and 4 January at 09:00.
    let mut state = engine.new_state(&contact, at(0));
    let out = engine.handle_timeout(&mut state, &contact, at(3 * DAY + 10 * 3_600), &mut scratch).unwrap();
    assert_eq!(out.effects.len(), 4);
    let mut keys: Vec<_> = out.effects.iter().map(|e| e.key).collect();
    keys.sort();
    keys.dedup();
    assert_eq!(keys.len(), 4, "one key per occurrence");
    // Nothing fires twice: the next timeout fires only the 5 January occurrence.
    let out = engine.handle_timeout(&mut state, &contact, at(4 * DAY + 10 * 3_600), &mut scratch).unwrap();
    assert_eq!(out.effects.len(), 1);
    // Twenty missed days: only the most recent MAX_CATCH_UP fire.
    let mut state = engine.new_state(&contact, at(0));
    let out = engine.handle_timeout(&mut state, &contact, at(20 * DAY + 10 * 3_600), &mut scratch).unwrap();
    assert_eq!(out.effects.len(), nurture::engine::MAX_CATCH_UP);
    assert_eq!(out.next_wake, Some(at(21 * DAY + 9 * 3_600)));
    // A century-long gap costs no more than eight years of search.
    let mut state = engine.new_state(&contact, at(0));
    let out = engine.handle_timeout(&mut state, &contact, at(36_500 * DAY), &mut scratch).unwrap();
    assert_eq!(out.effects.len(), nurture::engine::MAX_CATCH_UP);
}

// 1 (continued): the lint names what the analysis does not follow; a property.

#[test]
fn uses_of_now_without_an_exact_wake_up_are_linted() {
    let program = Program::from_json(
        r#"{"version": 1, "schema": {"contact": {"seen": "timestamp"}, "events": {}},
          "segments": [{"id": "office_hours", "when": "now.getHours() >= 9"},
                       {"id": "recent", "when": "now - contact.seen < duration('1h')"}]}"#,
    )
    .unwrap();
    let l0202: Vec<String> =
        program.lint().into_iter().filter(|f| f.code == "L0202").map(|f| f.path).collect();
    assert_eq!(l0202, vec!["/segments/0".to_string()]);
}

mod exactness {
    use super::*;
    use proptest::prelude::*;

    fn program() -> Engine {
        engine(
            r#"{"version": 1,
              "schema": {"contact": {"a": "timestamp", "b": "timestamp", "on": "bool"}, "events": {}},
              "segments": [
                {"id": "lt", "when": "now - contact.a < duration('3h')"},
                {"id": "le", "when": "contact.a + duration('2h') <= now"},
                {"id": "gt", "when": "contact.b - now > duration('30m')"},
                {"id": "ge", "when": "now >= contact.b - duration('1h')"},
                {"id": "eq", "when": "contact.a == now - duration('90m')"},
                {"id": "masked", "when": "contact.on && duration('4h') < now - contact.a - duration('1s')"},
                {"id": "both", "when": "segment.lt && !segment.ge"}
              ]}"#,
        )
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(48))]

        /// Between two wake-ups the full re-evaluation never changes, and at each
        /// wake-up the stored membership equals it: no change is missed or seen late,
        /// to the nanosecond.
        #[test]
        fn memberships_change_only_at_wake_ups(
            a in -20_000i64..20_000, a_nanos in 0u32..1_000_000_000,
            b in -20_000i64..40_000, on: bool,
        ) {
            let engine = program();
            let schema = engine.program().schema();
            let contact = schema.contact("c1")
                .set("a", Timestamp::from_unix(T0 + a, a_nanos).unwrap()).unwrap()
                .set("b", at(b)).unwrap()
                .set("on", on).unwrap()
                .build();
            let mut state = engine.new_state(&contact, at(0));
            let mut scratch = EngineScratch::default();
            let mut now = at(0);
            let mut wakes = 0;
            while let Some(wake) = engine.wake_after(&state, &contact, now) {
                let before: Vec<String> = state.segments().map(String::from).collect();
                let just_before = wake.checked_sub(nurture::time::Duration::from_nanos(1).unwrap()).unwrap();
                prop_assert_eq!(&engine.segments_at(&state, &contact, just_before), &before);
                let out = engine.handle_timeout(&mut state, &contact, wake, &mut scratch).unwrap();
                let after: Vec<String> = state.segments().map(String::from).collect();
                prop_assert_eq!(engine.segments_at(&state, &contact, wake), after);
                prop_assert_eq!(out.next_wake, engine.wake_after(&state, &contact, wake));
                now = wake;
                wakes += 1;
                prop_assert!(wakes <= 16, "every comparison flips at most once or twice");
            }
            // No wake-up left: the membership is final.
            let far = at(100 * DAY);
            let last: Vec<String> = state.segments().map(String::from).collect();
            prop_assert_eq!(engine.segments_at(&state, &contact, far), last);
        }
    }
}

// 4 (continued): point rules take calendar caps with a fixed zone.

#[test]
fn point_rules_take_calendar_caps_with_a_fixed_zone() {
    let doc = |zone: &str| {
        format!(
            r#"{{"version": 1, "schema": {{"contact": {{"tz": "string"}}, "events": {{"visit": {{}}}}}},
              "scoring": {{"models": [{{"id": "e",
                "rules": [{{"id": "v", "on": "visit", "points": 1,
                           "repeat": {{"max": 1, "per": "day", "zone": "{zone}"}}}}]}}]}}}}"#
        )
    };
    let err = Program::from_json(&doc("contact.tz")).expect_err("a point rule reads no contact zone");
    assert_eq!(err.diagnostics[0].path, "/scoring/models/0/rules/0/repeat/zone", "{err}");
    let engine = engine(&doc("Asia/Tokyo"));
    let schema = engine.program().schema();
    let contact = schema.contact("c1").build();
    let mut state = engine.new_state(&contact, at(0));
    let mut scratch = EngineScratch::default();
    // 09:00, 14:00 and 15:00 in Tokyo (UTC+9): the third is a new local day.
    for (i, hour) in [0, 5, 15].into_iter().enumerate() {
        let visit = schema.event(format!("e{i}"), "c1", "visit", at(hour * 3_600)).unwrap().build();
        let _ = engine.handle_event(&mut state, &contact, &visit, &mut scratch).unwrap();
    }
    assert_eq!(engine.score(&state, "e", at(15 * 3_600)), Some(2.0));
}

#[test]
fn structured_filters_read_the_engines_values_too() {
    let engine = engine(
        r#"{"version": 1, "schema": {"contact": {}, "events": {"signup": {}}},
          "segments": [{"id": "routed_vip", "filter": {"all": [
              {"field": "tags", "op": "contains", "value": "vip"},
              {"field": "owner", "op": "equals", "value": "alice"},
              {"field": "lists", "op": "is_not_empty"},
              {"field": "stage", "op": "in", "value": ["lead", "mql"]}]}}],
          "rules": [{"id": "join", "on": "signup",
             "actions": [{"type": "add_tag", "tag": "vip"}, {"type": "assign_owner", "owner": "alice"},
                         {"type": "add_to_list", "list": "news"},
                         {"type": "set_lifecycle_stage", "stage": "lead"}]}]}"#,
    );
    let schema = engine.program().schema();
    let contact = schema.contact("c1").build();
    let mut state = engine.new_state(&contact, at(0));
    assert!(!state.in_segment("routed_vip"));
    let signup = schema.event("e1", "c1", "signup", at(1)).unwrap().build();
    let out = engine.handle_event(&mut state, &contact, &signup, &mut EngineScratch::default()).unwrap();
    assert!(kinds(&out).contains(&"enter routed_vip".to_string()), "{:?}", kinds(&out));
    // Counters cannot read them: a clear error at the filter's field.
    let err = Program::from_json(
        r#"{"version": 1, "schema": {"contact": {}, "events": {"signup": {}}},
          "counters": [{"id": "n", "on": "signup", "window": "1d",
                        "filter": {"field": "tags", "op": "contains", "value": "vip"}}]}"#,
    )
    .expect_err("counters do not read tags");
    assert_eq!(err.diagnostics[0].path, "/counters/0/filter/field", "{err}");
}
