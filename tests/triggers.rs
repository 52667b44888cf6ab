//! Triggers beyond events, segments and the cascade: each kind starts its rules at the
//! right moment, once per change, within the repeat policy; document mistakes are
//! reported at their paths.

use std::sync::Arc;

use nurture::engine::{ContactState, Effect, EffectKind, Engine, EngineScratch, Outcome};
use nurture::{Contact, Event, Program, Timestamp};

const DAY: i64 = 86_400;
const T0: i64 = 1_767_225_600;

const RULES: &str = r#"{
  "version": 1,
  "schema": {
    "contact": {"plan": "string", "seats": "int"},
    "events": {"page_visit": {"url": "string"}, "purchase": {"amount": "double"}},
    "scores": ["engagement"]
  },
  "counters": [{"id": "visits_7d", "on": "page_visit", "window": "7d"}],
  "segments": [
    {"id": "engaged", "when": "score.engagement >= 20.0"},
    {"id": "busy", "when": "counter.visits_7d >= 3"},
    {"id": "champion", "when": "segment.engaged && segment.busy"},
    {"id": "paying", "when": "has(contact.plan) && contact.plan != 'free'"}
  ],
  "rules": [
    {"id": "mql-alert", "on": {"score": "engagement", "threshold": "mql"},
     "actions": [{"type": "notify_owner", "message": "new MQL"}, {"type": "set_lifecycle_stage", "stage": "mql"}]},
    {"id": "mql-lost", "on": {"score": "engagement", "threshold": "mql", "direction": "down"},
     "actions": [{"type": "add_tag", "tag": "went-cold"}]},
    {"id": "welcome-champion", "on": {"segment": "champion"}, "repeat": "once",
     "actions": [{"type": "send", "channel": "email", "template": "champion"}]},
    {"id": "upgrade", "on": "purchase", "when": "event.amount >= 100.0",
     "actions": [{"type": "set_attribute", "field": "plan", "value": "pro"}]},
    {"id": "onboard-pro", "on": {"attribute": "plan", "to": "pro"},
     "actions": [{"type": "add_tag", "tag": "pro-onboarding"}]},
    {"id": "paying-list", "on": {"segment": "paying"},
     "actions": [{"type": "add_to_list", "list": "customers"}]},
    {"id": "win-back", "on": {"inactive": "page_visit", "for": "30d"},
     "actions": [{"type": "send", "channel": "email", "template": "we-miss-you"}]}
  ],
  "scoring": {"models": [{
    "id": "engagement", "cap": 100, "decay": {"half_life": "7d"},
    "rules": [{"id": "visit", "on": "page_visit", "points": 8}],
    "thresholds": [{"id": "mql", "enter": 30, "exit": 20}]
  }]}
}"#;

fn engine() -> Engine {
    Engine::new(Arc::new(Program::from_json(RULES).expect("valid rules")))
}

fn at(secs: i64) -> Timestamp {
    Timestamp::from_unix(T0 + secs, 0).unwrap()
}

fn visit(engine: &Engine, n: u32, secs: i64) -> Event {
    let s = engine.program().schema();
    s.event(format!("v{n}"), "c", "page_visit", at(secs)).unwrap().set("url", "/").unwrap().build()
}

fn purchase(engine: &Engine, n: u32, secs: i64, amount: f64) -> Event {
    let s = engine.program().schema();
    s.event(format!("p{n}"), "c", "purchase", at(secs)).unwrap().set("amount", amount).unwrap().build()
}

fn rules_fired(outcome: &Outcome) -> Vec<String> {
    outcome
        .effects
        .iter()
        .filter_map(|e| match &e.kind {
            EffectKind::Action { rule, index: 0, .. } => Some(rule.as_str().to_string()),
            _ => None,
        })
        .collect()
}

fn segment_changes(outcome: &Outcome) -> Vec<String> {
    outcome
        .effects
        .iter()
        .filter_map(|e: &Effect| match &e.kind {
            EffectKind::SegmentEntered { segment } => Some(format!("+{segment}")),
            EffectKind::SegmentExited { segment } => Some(format!("-{segment}")),
            _ => None,
        })
        .collect()
}

fn setup() -> (Engine, Contact, ContactState, EngineScratch) {
    let engine = engine();
    let contact = engine
        .program()
        .schema()
        .contact("c")
        .set("plan", "free")
        .unwrap()
        .set("seats", 3i64)
        .unwrap()
        .build();
    let state = engine.new_state(&contact, at(0));
    (engine, contact, state, EngineScratch::default())
}

#[test]
fn threshold_segment_and_once_triggers_fire_in_order() {
    let (engine, c, mut state, mut scratch) = setup();
    let mut log = Vec::new();
    for n in 0..4 {
        let o =
            engine.handle_event(&mut state, &c, &visit(&engine, n, 60 * i64::from(n)), &mut scratch).unwrap();
        log.push((rules_fired(&o), segment_changes(&o)));
    }
    // 8, 16, 24, 32 points; 3 visits make `busy`, 20 points `engaged`, both `champion`;
    // 32 crosses the MQL threshold.
    assert_eq!(log[0], (vec![], vec![]));
    assert_eq!(
        log[2],
        (vec!["welcome-champion".to_string()], vec!["+engaged".into(), "+busy".into(), "+champion".into()])
    );
    assert_eq!(log[3].0, ["mql-alert"]);
    assert_eq!(state.stage(), Some("mql"));
    // Once: leaving and re-entering `champion` does not send again.
    let quiet = engine.handle_timeout(&mut state, &c, at(8 * DAY), &mut scratch).unwrap();
    assert!(segment_changes(&quiet).contains(&"-champion".to_string()), "{:?}", segment_changes(&quiet));
    for n in 10..14 {
        let o = engine
            .handle_event(&mut state, &c, &visit(&engine, n, 8 * DAY + 60 * i64::from(n)), &mut scratch)
            .unwrap();
        assert!(!rules_fired(&o).contains(&"welcome-champion".to_string()));
    }
}

#[test]
fn decay_makes_segments_and_thresholds_change_at_the_wake_up() {
    let (engine, c, mut state, mut scratch) = setup();
    let mut last = None;
    for n in 0..5 {
        last = Some(
            engine.handle_event(&mut state, &c, &visit(&engine, n, i64::from(n)), &mut scratch).unwrap(),
        );
    }
    // 40 points, MQL, engaged; then only time passes.
    let mut wake = last.unwrap().next_wake.expect("decay will change something");
    let mut seen = Vec::new();
    for _ in 0..10 {
        let o = engine.handle_timeout(&mut state, &c, wake, &mut scratch).unwrap();
        let mut what = segment_changes(&o);
        what.extend(rules_fired(&o));
        seen.push((wake.unix_seconds() - T0, what));
        match o.next_wake {
            Some(w) if w.unix_seconds() - T0 < 40 * DAY => wake = w,
            _ => break,
        }
    }
    let flat: Vec<&String> = seen.iter().flat_map(|(_, w)| w).collect();
    // `busy` ends when the first visit leaves the 7-day window; the score falls below
    // the MQL exit (20) and `engaged` (20) at the same instant; 30 quiet days: win-back.
    for expected in ["-busy", "-champion", "-engaged", "mql-lost", "win-back"] {
        assert!(flat.iter().any(|s| s.as_str() == expected), "{expected} missing from {seen:?}");
    }
    // Wake-ups move forward, and there are few: a counted visit leaving its window may
    // wake the contact without changing a segment, nothing else wakes it for nothing.
    assert!(seen.windows(2).all(|w| w[0].0 < w[1].0), "{seen:?}");
    assert!(seen.len() <= 8, "{seen:?}");
    assert!(state.has_tag("went-cold"));
}

#[test]
fn attribute_changes_cascade_within_the_step() {
    let (engine, c, mut state, mut scratch) = setup();
    let o = engine.handle_event(&mut state, &c, &purchase(&engine, 1, 10, 250.0), &mut scratch).unwrap();
    // upgrade sets plan = pro, which starts onboard-pro and moves the contact into
    // `paying`, which starts paying-list: one step.
    assert_eq!(rules_fired(&o), ["upgrade", "onboard-pro", "paying-list"]);
    assert_eq!(segment_changes(&o), ["+paying"]);
    let updated = o.contact.expect("the contact changed");
    assert!(state.has_tag("pro-onboarding"));
    assert_eq!(state.lists().collect::<Vec<_>>(), ["customers"]);
    // Setting the same value again changes nothing, so nothing more fires.
    let again =
        engine.handle_event(&mut state, &updated, &purchase(&engine, 2, 20, 300.0), &mut scratch).unwrap();
    assert_eq!(rules_fired(&again), ["upgrade"]);
}

#[test]
fn attribute_cycles_are_rejected_and_segment_cycles_stopped() {
    // Visible in the document: flip sets a = 2, which starts flop, which sets a = 1.
    let doc = r#"{
      "version": 1,
      "schema": {"contact": {"a": "int"}, "events": {"ping": {}}},
      "rules": [
        {"id": "start", "on": "ping", "actions": [{"type": "set_attribute", "field": "a", "value": 1}]},
        {"id": "flip", "on": {"attribute": "a", "to": 1}, "actions": [{"type": "set_attribute", "field": "a", "value": 2}]},
        {"id": "flop", "on": {"attribute": "a", "to": 2}, "actions": [{"type": "set_attribute", "field": "a", "value": 1}]}
      ]
    }"#;
    let err = Program::from_json(doc).unwrap_err();
    assert!(err.diagnostics.iter().any(|d| d.message.contains("flip -> flop -> flip")), "{err}");
    // Narrowed with `to`, the same shape is fine: setting 2 does not start `flip`.
    let fine = doc.replace(
        r#""value": 1}]}
      ]"#,
        r#""value": 3}]}
      ]"#,
    );
    assert!(Program::from_json(&fine).is_ok());
    // Through a segment (not analysed at compile time): entering `one` sets a = 2, which
    // leaves it; leaving sets a = 1, which enters it again. The cascade limit stops it.
    let doc = r#"{
      "version": 1,
      "schema": {"contact": {"a": "int"}, "events": {"ping": {}}},
      "segments": [{"id": "one", "when": "has(contact.a) && contact.a == 1"}],
      "rules": [
        {"id": "start", "on": "ping", "actions": [{"type": "set_attribute", "field": "a", "value": 1}]},
        {"id": "enter", "on": {"segment": "one"}, "actions": [{"type": "set_attribute", "field": "a", "value": 2}]},
        {"id": "leave", "on": {"segment": "one", "direction": "exit"}, "actions": [{"type": "set_attribute", "field": "a", "value": 1}]}
      ]
    }"#;
    let engine = Engine::new(Arc::new(Program::from_json(doc).unwrap()));
    let c = engine.program().schema().contact("c").build();
    let mut state = engine.new_state(&c, at(0));
    let e = engine.program().schema().event("e1", "c", "ping", at(1)).unwrap().build();
    let o = engine.handle_event(&mut state, &c, &e, &mut EngineScratch::default()).unwrap();
    assert!(o.effects.iter().any(|e| matches!(e.kind, EffectKind::CascadeLimit { .. })));
    // The same rules fired several times in the step: every effect still has its own key.
    let mut keys: Vec<_> = o.effects.iter().map(|e| e.key).collect();
    let n = keys.len();
    keys.sort();
    keys.dedup();
    assert_eq!(keys.len(), n);
}

#[test]
fn repeat_policies_hold_for_event_rules() {
    let doc = r#"{"version": 1, "schema": {"events": {"ping": {}}},
      "rules": [
        {"id": "first", "on": "ping", "repeat": "once", "actions": [{"type": "add_tag", "tag": "x"}]},
        {"id": "daily", "on": "ping", "repeat": {"max": 2, "per": "1d"}, "actions": [{"type": "add_tag", "tag": "y"}]}
      ]}"#;
    let engine = Engine::new(Arc::new(Program::from_json(doc).unwrap()));
    let c = engine.program().schema().contact("c").build();
    let mut state = engine.new_state(&c, at(0));
    let mut scratch = EngineScratch::default();
    let fired: Vec<Vec<String>> = [0, 60, 120, DAY + 200]
        .iter()
        .enumerate()
        .map(|(n, secs)| {
            let e = engine.program().schema().event(format!("e{n}"), "c", "ping", at(*secs)).unwrap().build();
            rules_fired(&engine.handle_event(&mut state, &c, &e, &mut scratch).unwrap())
        })
        .collect();
    assert_eq!(fired, [vec!["first", "daily"], vec!["daily"], vec![], vec!["daily"]]);
}

#[test]
fn trigger_mistakes_are_reported_at_their_paths() {
    let doc = r#"{
      "version": 1,
      "schema": {"contact": {"a": "int"}, "events": {"ping": {}}, "scores": ["s"]},
      "segments": [{"id": "x", "when": "segment.y"}, {"id": "y", "when": "segment.x"}],
      "rules": [
        {"id": "r1", "on": {"score": "s", "threshold": "nope"}},
        {"id": "r2", "on": {"segment": "z"}},
        {"id": "r3", "on": {"attribute": "b"}},
        {"id": "r4", "on": {"inactive": "ping", "for": "soon"}},
        {"id": "r5", "on": "ping", "repeat": "twice"}
      ],
      "scoring": {"models": [{"id": "s", "rules": [], "thresholds": [{"id": "mql", "enter": 10}]}]}
    }"#;
    let err = Program::from_json(doc).unwrap_err();
    let paths: Vec<String> = err.diagnostics.iter().map(|d| d.path.clone()).collect();
    assert!(!paths.iter().any(|p| p.starts_with("/segments/") && p.ends_with("/id")), "{paths:?}");
    for expected in [
        "/rules/0/on/threshold",
        "/rules/1/on/segment",
        "/rules/2/on/attribute",
        "/rules/3/on/for",
        "/rules/4/repeat",
    ] {
        assert!(paths.iter().any(|p| p == expected), "{expected} not in {paths:?}");
    }
    assert!(err.diagnostics.iter().any(|d| d.message.contains("cycle")), "{err}");
    // A trigger object of no known kind is a shape error, with the other shape errors.
    let doc = r#"{"version": 1, "schema": {"events": {"ping": {}}},
      "rules": [{"id": "r", "on": {"bogus": 1}}, {"id": "s", "on": "ping", "colour": "red"}]}"#;
    let err = Program::from_json(doc).unwrap_err();
    let paths: Vec<&str> = err.diagnostics.iter().map(|d| d.path.as_str()).collect();
    assert_eq!(paths, ["/rules/0/on", "/rules/1/colour"]);
}

mod calendar {
    use super::*;
    use nurture::host::{MemoryStore, RecordingDelivery, Runtime};

    const DOC: &str = r#"{
      "version": 1,
      "schema": {"contact": {"renews_at": "timestamp", "born": "timestamp", "tz": "string"}, "events": {"ping": {}}},
      "rules": [
        {"id": "renewal", "on": {"date": "renews_at", "offset": "-7d", "at": "09:00", "zone": "Europe/Paris"},
         "actions": [{"type": "send", "channel": "email", "template": "renewal"}]},
        {"id": "birthday", "on": {"date": "born", "every_year": true, "at": "08:30", "zone": "contact.tz"},
         "actions": [{"type": "send", "channel": "email", "template": "birthday"}]},
        {"id": "digest", "on": {"schedule": "weekly", "weekday": "monday", "at": "07:00", "zone": "contact.tz"},
         "actions": [{"type": "send", "channel": "email", "template": "digest"}]}
      ]
    }"#;

    fn ts(text: &str) -> Timestamp {
        Timestamp::parse(text).unwrap()
    }

    fn fired(
        doc: &str,
        contact: impl Fn(&nurture::Schema) -> Contact,
        from: &str,
        to: &str,
    ) -> Vec<(String, String)> {
        let engine = Arc::new(Engine::new(Arc::new(Program::from_json(doc).expect("valid"))));
        let schema = engine.program().schema().clone();
        let mut rt = Runtime::new(engine, MemoryStore::new(), RecordingDelivery::default(), ts(from));
        rt.add_contact(contact(&schema)).unwrap();
        rt.advance_to(ts(to)).unwrap();
        rt.delivery()
            .delivered
            .iter()
            .filter_map(|e| match &e.kind {
                EffectKind::Action { rule, .. } => Some((rule.as_str().to_string(), e.at.to_string())),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn dates_anniversaries_and_schedules_fire_in_local_time() {
        let all = fired(
            DOC,
            |s| {
                s.contact("c")
                    // Renewal on 3 April 2026: a week before is 27 March, 09:00 Paris,
                    // the Friday before the switch to summer time (UTC+1).
                    .set("renews_at", ts("2026-04-03T10:00:00Z"))
                    .unwrap()
                    .set("born", ts("1992-02-29T12:00:00Z"))
                    .unwrap()
                    .set("tz", "America/New_York")
                    .unwrap()
                    .build()
            },
            "2026-02-20T00:00:00Z",
            "2028-03-02T00:00:00Z",
        );
        let of =
            |rule: &str| all.iter().filter(|(r, _)| r == rule).map(|(_, t)| t.as_str()).collect::<Vec<_>>();
        assert_eq!(of("renewal"), ["2026-03-27T08:00:00Z"]);
        // 29 February: 28 February in 2026 and 2027, 29 February in 2028; 08:30 in New
        // York (UTC-5).
        assert_eq!(of("birthday"), ["2026-02-28T13:30:00Z", "2027-02-28T13:30:00Z", "2028-02-29T13:30:00Z"]);
        let digests = of("digest");
        // Mondays at 07:00 New York time: UTC-5 in winter, UTC-4 after 8 March 2026.
        assert_eq!(digests[0], "2026-02-23T12:00:00Z");
        assert_eq!(digests[2], "2026-03-09T11:00:00Z");
        // Every Monday from 23 February 2026 to 28 February 2028: 735 days, 106 Mondays.
        assert_eq!(digests.len(), 106);
    }

    #[test]
    fn calendar_trigger_mistakes_are_reported() {
        let doc = r#"{"version": 1, "schema": {"contact": {"n": "int", "d": "timestamp"}, "events": {"ping": {}}},
          "rules": [
            {"id": "a", "on": {"date": "n"}},
            {"id": "b", "on": {"date": "d", "offset": "a week", "at": "25:00", "zone": "Mars/Base"}},
            {"id": "c", "on": {"schedule": "hourly"}},
            {"id": "d", "on": {"schedule": "weekly", "weekday": "someday", "zone": "contact.n"}}
          ]}"#;
        let err = Program::from_json(doc).unwrap_err();
        let paths: Vec<&str> = err.diagnostics.iter().map(|d| d.path.as_str()).collect();
        assert_eq!(
            paths,
            [
                "/rules/0/on/date",
                "/rules/1/on/offset",
                "/rules/1/on/at",
                "/rules/1/on/zone",
                "/rules/2/on/schedule",
                "/rules/3/on/weekday",
                "/rules/3/on/zone"
            ]
        );
    }
}

#[test]
fn segments_read_tags_and_bands() {
    let doc = r#"{
      "version": 1,
      "schema": {"events": {"visit": {}, "vip": {}}, "scores": ["engagement"]},
      "segments": [{"id": "hot_vip", "when": "'vip' in tags && has(bands.engagement) && bands.engagement == 'hot'"}],
      "rules": [{"id": "mark", "on": "vip", "when": "stage == ''", "actions": [{"type": "add_tag", "tag": "vip"}, {"type": "set_lifecycle_stage", "stage": "lead"}]},
                {"id": "again", "on": "vip", "when": "stage == 'lead'", "actions": [{"type": "add_tag", "tag": "seen-twice"}]}],
      "scoring": {"models": [{"id": "engagement", "decay": {"half_life": "1d"},
        "rules": [{"id": "v", "on": "visit", "points": 30}],
        "bands": [{"name": "warm", "from": 20}, {"name": "hot", "from": 50}]}]}
    }"#;
    let engine = Engine::new(Arc::new(Program::from_json(doc).expect("valid")));
    let schema = engine.program().schema();
    let c = schema.contact("c").build();
    let mut state = engine.new_state(&c, at(0));
    let mut scratch = EngineScratch::default();
    let mut step = |id: &str, kind: &str, secs: i64, state: &mut ContactState| {
        let e = schema.event(id, "c", kind, at(secs)).unwrap().build();
        segment_changes(&engine.handle_event(state, &c, &e, &mut scratch).unwrap())
    };
    assert!(step("e1", "vip", 1, &mut state).is_empty(), "tagged, but cold");
    assert!(step("e2", "visit", 2, &mut state).is_empty(), "30 points: warm");
    assert_eq!(step("e3", "visit", 3, &mut state), ["+hot_vip"], "60 points: hot");
    // A day later the score has halved to about 30: warm again, out of the segment.
    assert_eq!(step("e4", "vip", DAY, &mut state), ["-hot_vip"]);
    // `stage` was empty at the first `vip` event and `lead` at the second.
    assert!(state.has_tag("seen-twice") && state.stage() == Some("lead"));
}

#[test]
fn a_bad_segment_id_is_one_diagnostic_not_a_cascade() {
    let doc = r#"{"version": 1, "schema": {"events": {"ping": {}}},
      "segments": [{"id": "bad-id", "when": "true"}],
      "rules": [{"id": "r", "on": "ping"}]}"#;
    let err = Program::from_json(doc).unwrap_err();
    let paths: Vec<&str> = err.diagnostics.iter().map(|d| d.path.as_str()).collect();
    assert_eq!(paths, ["/segments/0/id"]);
}

#[test]
fn host_attribute_changes_start_attribute_rules_and_rescore_fit() {
    let doc = r#"{"version": 1,
      "schema": {"contact": {"plan": "string", "title": "string"}, "events": {"ping": {}}, "scores": ["fit"]},
      "segments": [{"id": "paying", "when": "has(contact.plan) && contact.plan != 'free'"}],
      "rules": [{"id": "upgraded", "on": {"attribute": "plan", "from": "free", "to": "pro"},
                 "actions": [{"type": "add_tag", "tag": "upgraded"}]}],
      "scoring": {"models": [{"id": "fit", "rules": [{"id": "vp", "fit": "has(contact.title) && contact.title == 'VP'", "points": 20}]}]}
    }"#;
    let engine = Engine::new(Arc::new(Program::from_json(doc).unwrap()));
    let schema = engine.program().schema();
    let before = schema.contact("c").set("plan", "free").unwrap().set("title", "Engineer").unwrap().build();
    let after = schema.contact("c").set("plan", "pro").unwrap().set("title", "VP").unwrap().build();
    let mut state = engine.new_state(&before, at(0));
    let o = engine
        .handle_attribute_change(&mut state, &before, &after, at(10), &mut EngineScratch::default())
        .unwrap();
    assert_eq!(rules_fired(&o), ["upgraded"]);
    assert_eq!(segment_changes(&o), ["+paying"]);
    let fit = engine.program().scorer().unwrap().value(state.scores().unwrap(), 0, at(10)).unwrap();
    assert_eq!(fit, 20.0);
}
