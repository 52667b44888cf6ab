//! Score models in the rule-set document.

use nurture::scoring::ScoreScratch;
use nurture::{Code, Program, Timestamp};

const DOC: &str = r#"{
  "version": 1,
  "schema": {
    "contact": {"job_title": "string"},
    "events": {"page_visit": {"url": "string"}, "form_submit": {"form": "string"}}
  },
  "scoring": {
    "models": [
      {
        "id": "engagement",
        "cap": 100,
        "decay": {"half_life": "30d"},
        "groups": [{"id": "web", "cap": 40}, {"id": "forms", "decay": {"step": 0.5, "every": "7d"}}],
        "rules": [
          {"id": "pricing", "on": "page_visit", "when": "event.url == '/pricing'", "points": 10, "group": "web"},
          {"id": "docs", "on": "page_visit", "filter": {"field": "event.url", "op": "starts_with", "value": "/docs"},
           "points": 2, "group": "web", "repeat": {"max": 2, "per": "1d"}},
          {"id": "demo", "on": "form_submit", "when": "event.form == 'demo'", "points": 50, "group": "forms", "repeat": "once"},
          {"id": "vp", "fit": "has(contact.job_title) && contact.job_title.contains('VP')", "points": 15}
        ],
        "thresholds": [{"id": "mql", "enter": 80, "exit": 70, "rearm": "once"}],
        "bands": [{"name": "cold", "from": 0}, {"name": "warm", "from": 40}, {"name": "hot", "from": 80}]
      }
    ]
  }
}"#;

#[test]
fn a_document_scores_contacts() {
    let program = Program::from_json(DOC).unwrap_or_else(|e| panic!("{}", e.render()));
    let scorer = program.scorer().expect("the document has a scoring section");
    let schema = program.schema();
    let t0 = Timestamp::from_unix(1_700_000_000, 0).unwrap();
    let contact = schema.contact("c").set("job_title", "VP Sales").unwrap().build();
    let mut state = scorer.new_state(t0);
    let _ = scorer.handle_attributes(&mut state, &contact, t0).unwrap();
    let mut crossings = Vec::new();
    for (n, url) in
        ["/pricing", "/pricing", "/pricing", "/pricing", "/pricing", "/docs/a", "/docs/b", "/docs/c"]
            .iter()
            .enumerate()
    {
        let e =
            schema.event(format!("e{n}"), "c", "page_visit", t0).unwrap().set("url", *url).unwrap().build();
        crossings.extend(
            scorer
                .handle_event(&mut state, &contact, &e, &mut ScoreScratch::default())
                .cloned()
                .unwrap()
                .crossings,
        );
    }
    // web is capped at 40; fit adds 15.
    assert_eq!(scorer.value(&state, 0, t0), Some(55.0));
    let demo = schema.event("d", "c", "form_submit", t0).unwrap().set("form", "demo").unwrap().build();
    crossings.extend(
        scorer
            .handle_event(&mut state, &contact, &demo, &mut ScoreScratch::default())
            .cloned()
            .unwrap()
            .crossings,
    );
    assert_eq!(scorer.value(&state, 0, t0), Some(100.0), "capped at 100");
    assert_eq!(crossings.len(), 1, "MQL once");
    let explained = scorer.explain(&state, 0, t0).unwrap();
    let groups: Vec<(&str, f64)> = explained.groups.iter().map(|(g, v)| (g.as_str(), *v)).collect();
    // The groups hold 90; fit adds 15 on top, and the total is clamped to 100 when read.
    assert_eq!(groups, [("web", 40.0), ("forms", 50.0)]);
}

#[test]
fn scoring_mistakes_are_reported_together() {
    let doc = DOC
        .replace(r#""group": "web", "repeat""#, r#""group": "wbe", "repeat""#)
        .replace(r#""half_life": "30d""#, r#""half_life": "soon""#)
        .replace(r#""on": "form_submit""#, r#""on": "form_sumbit""#)
        .replace(r#""rearm": "once""#, r#""rearm": "once", "colour": 1"#)
        .replace("contact.job_title.contains('VP')", "contact.job_titel.contains('VP')");
    let err = Program::from_json(&doc).unwrap_err();
    let found: Vec<(Code, &str)> = err.diagnostics.iter().map(|d| (d.code, d.path.as_str())).collect();
    assert_eq!(
        found,
        [
            (Code::UnknownKey, "/scoring/models/0/thresholds/0/colour"),
            (Code::InvalidDocument, "/scoring/models/0/decay/half_life"),
            (Code::InvalidDocument, "/scoring/models/0/rules/1/group"),
            (Code::UnknownEventType, "/scoring/models/0/rules/2/on"),
            (Code::UnknownField, "/scoring/models/0/rules/3/fit"),
        ],
        "{}",
        err.render()
    );
    assert_eq!(err.diagnostics[2].did_you_mean.as_deref(), Some("web"));
}

#[test]
fn point_rules_read_windowed_counts() {
    let doc = r#"{
      "version": 1,
      "schema": {"events": {"page_visit": {"url": "string"}}},
      "counters": [{"id": "pricing_7d", "on": "page_visit", "when": "event.url == '/pricing'", "window": "7d"}],
      "scoring": {"models": [{"id": "intent", "rules": [
        {"id": "third-pricing-visit", "on": "page_visit", "when": "counter.pricing_7d >= 3", "points": 20, "repeat": "once"}
      ]}]}
    }"#;
    let program = Program::from_json(doc).unwrap_or_else(|e| panic!("{}", e.render()));
    let scorer = program.scorer().unwrap();
    let schema = program.schema();
    let contact = schema.contact("c").build();
    let t0 = Timestamp::from_unix(1_700_000_000, 0).unwrap();
    let mut state = scorer.new_state(t0);
    let mut values = Vec::new();
    for n in 0..4i64 {
        let at = Timestamp::from_unix(1_700_000_000 + n * 86_400, 0).unwrap();
        let e = schema
            .event(format!("e{n}"), "c", "page_visit", at)
            .unwrap()
            .set("url", "/pricing")
            .unwrap()
            .build();
        let _ = scorer.handle_event(&mut state, &contact, &e, &mut ScoreScratch::default()).cloned().unwrap();
        values.push(scorer.value(&state, 0, at).unwrap());
    }
    assert_eq!(values, [0.0, 0.0, 20.0, 20.0]);
}

#[test]
fn timeframe_points_expire_exactly() {
    let doc = r#"{
      "version": 1,
      "schema": {"events": {"page_visit": {"url": "string"}}},
      "scoring": {"models": [{"id": "recent", "timeframe": "90d", "cap": 100,
        "rules": [{"id": "visit", "on": "page_visit", "points": 10}],
        "thresholds": [{"id": "active", "enter": 20}]}]}
    }"#;
    let program = Program::from_json(doc).unwrap_or_else(|e| panic!("{}", e.render()));
    let scorer = program.scorer().unwrap();
    let schema = program.schema();
    let contact = schema.contact("c").build();
    let day = |d: i64| Timestamp::from_unix(1_700_000_000 + d * 86_400, 0).unwrap();
    let mut state = scorer.new_state(day(0));
    let mut wake = None;
    for (n, d) in [0, 50].into_iter().enumerate() {
        let e = schema
            .event(format!("e{n}"), "c", "page_visit", day(d))
            .unwrap()
            .set("url", "/")
            .unwrap()
            .build();
        wake = scorer
            .handle_event(&mut state, &contact, &e, &mut ScoreScratch::default())
            .cloned()
            .unwrap()
            .next_wake;
    }
    let value = |t| scorer.value(&state, 0, t).unwrap();
    assert_eq!((value(day(89)), value(day(90)), value(day(140))), (20.0, 10.0, 0.0));
    // The first award expires exactly 90 days after it was earned: the scorer wakes then.
    assert_eq!(wake, Some(day(90)));
    let u = scorer.handle_timeout(&mut state, day(90)).unwrap();
    assert_eq!(u.crossings.len(), 1, "left `active` when the award expired");
    assert_eq!(u.next_wake, Some(day(140)));
}

#[test]
fn combined_scores_and_the_fit_by_engagement_matrix() {
    let doc = r#"{
      "version": 1,
      "schema": {"contact": {"title": "string"}, "events": {"page_visit": {"url": "string"}}},
      "scoring": {"models": [
        {"id": "fit", "rules": [{"id": "vp", "fit": "contact.title == 'VP'", "points": 60}],
         "bands": [{"name": "D", "from": 0}, {"name": "C", "from": 20}, {"name": "B", "from": 40}, {"name": "A", "from": 60}]},
        {"id": "engagement", "decay": {"half_life": "30d"}, "rules": [{"id": "visit", "on": "page_visit", "points": 10}],
         "bands": [{"name": "4", "from": 0}, {"name": "3", "from": 10}, {"name": "2", "from": 20}, {"name": "1", "from": 30}]},
        {"id": "total", "combine": {"fit": 1.0, "engagement": 0.5}, "cap": 100,
         "thresholds": [{"id": "mql", "enter": 70, "exit": 60}]}
      ]}
    }"#;
    let program = Program::from_json(doc).unwrap_or_else(|e| panic!("{}", e.render()));
    let scorer = program.scorer().unwrap();
    let schema = program.schema();
    let t0 = Timestamp::from_unix(1_700_000_000, 0).unwrap();
    let contact = schema.contact("c").set("title", "VP").unwrap().build();
    let mut state = scorer.new_state(t0);
    let _ = scorer.handle_attributes(&mut state, &contact, t0).unwrap();
    let mut crossings = Vec::new();
    for n in 0..3 {
        let e =
            schema.event(format!("e{n}"), "c", "page_visit", t0).unwrap().set("url", "/").unwrap().build();
        crossings.extend(
            scorer
                .handle_event(&mut state, &contact, &e, &mut ScoreScratch::default())
                .cloned()
                .unwrap()
                .crossings,
        );
    }
    assert_eq!(scorer.value(&state, 2, t0), Some(75.0), "60 + 0.5 x 30");
    assert_eq!(scorer.matrix(&state, 0, 1, t0).as_deref(), Some("A1"));
    assert_eq!(crossings.len(), 1);
    assert_eq!(crossings[0].1, "mql");
    // Engagement decays; the combined score follows, and the scorer wakes for its exit.
    let wake = scorer.next_wake(&state, t0).unwrap();
    let u = scorer.handle_timeout(&mut state, wake).unwrap();
    assert!(!u.band_changes.is_empty() || !u.crossings.is_empty());

    let bad = doc.replace(r#""combine": {"fit": 1.0"#, r#""combine": {"fitt": 1.0"#);
    let err = Program::from_json(&bad).unwrap_err();
    assert_eq!(err.diagnostics[0].path, "/scoring/models/2/combine/fitt");
    assert_eq!(err.diagnostics[0].did_you_mean.as_deref(), Some("fit"));
}

fn compile_model(model: &str) -> Result<Program, nurture::CompileError> {
    Program::from_json(&format!(
        r#"{{"version": 1, "schema": {{"contact": {{"title": "string"}}, "events": {{"page_visit": {{"url": "string"}}}}}},
            "scoring": {{"models": [{model}]}}}}"#
    ))
}

fn visits(program: &Program, times: &[i64]) -> (nurture::scoring::ContactScores, Timestamp) {
    let scorer = program.scorer().unwrap();
    let schema = program.schema();
    let contact = schema.contact("c").set("title", "VP").unwrap().build();
    let t0 = Timestamp::from_unix(1_700_000_000, 0).unwrap();
    let mut state = scorer.new_state(t0);
    let mut last = t0;
    for (n, t) in times.iter().enumerate() {
        last = Timestamp::from_unix(1_700_000_000 + t, 0).unwrap();
        let e =
            schema.event(format!("e{n}"), "c", "page_visit", last).unwrap().set("url", "/").unwrap().build();
        let _ = scorer.handle_event(&mut state, &contact, &e, &mut ScoreScratch::default()).cloned().unwrap();
    }
    (state, last)
}

#[test]
fn large_per_period_limits_are_enforced() {
    let program = compile_model(
        r#"{"id": "s", "rules": [{"id": "v", "on": "page_visit", "points": 1, "repeat": {"max": 100, "per": "1d"}}]}"#,
    )
    .unwrap();
    let times: Vec<i64> = (0..150).collect();
    let (state, last) = visits(&program, &times);
    assert_eq!(program.scorer().unwrap().value(&state, 0, last), Some(100.0));
}

#[test]
fn fit_points_and_events_commute_under_the_total_cap() {
    let program = compile_model(
        r#"{"id": "s", "cap": 100, "decay": {"half_life": "30d"},
            "rules": [{"id": "v", "on": "page_visit", "points": 80}, {"id": "vp", "fit": "contact.title == 'VP'", "points": 50}]}"#,
    )
    .unwrap();
    let scorer = program.scorer().unwrap();
    let schema = program.schema();
    let contact = schema.contact("c").set("title", "VP").unwrap().build();
    let t0 = Timestamp::from_unix(1_700_000_000, 0).unwrap();
    let later = Timestamp::from_unix(1_700_000_000 + 30 * 86_400, 0).unwrap();
    let event = schema.event("e", "c", "page_visit", t0).unwrap().set("url", "/").unwrap().build();
    let mut fit_first = scorer.new_state(t0);
    let _ = scorer.handle_attributes(&mut fit_first, &contact, t0).unwrap();
    let _ =
        scorer.handle_event(&mut fit_first, &contact, &event, &mut ScoreScratch::default()).cloned().unwrap();
    let mut event_first = scorer.new_state(t0);
    let _ = scorer
        .handle_event(&mut event_first, &contact, &event, &mut ScoreScratch::default())
        .cloned()
        .unwrap();
    let _ = scorer.handle_attributes(&mut event_first, &contact, t0).unwrap();
    for state in [&fit_first, &event_first] {
        assert_eq!(scorer.value(state, 0, t0), Some(100.0));
        assert_eq!(scorer.value(state, 0, later), Some(90.0), "40 decayed engagement + 50 fit");
    }
}

#[test]
fn explanations_add_up_under_step_decay() {
    let program = compile_model(
        r#"{"id": "s", "decay": {"step": 0.5, "every": "7d"},
            "rules": [{"id": "a", "on": "page_visit", "when": "event.url == '/'", "points": 10}]}"#,
    )
    .unwrap();
    let (state, _) = visits(&program, &[0, 5 * 86_400, 9 * 86_400]);
    let scorer = program.scorer().unwrap();
    let at = Timestamp::from_unix(1_700_000_000 + 30 * 86_400, 0).unwrap();
    let explained = scorer.explain(&state, 0, at).unwrap();
    let rules: f64 = explained.rules.iter().map(|(_, p)| p).sum();
    let groups: f64 = explained.groups.iter().map(|(_, p)| p).sum();
    assert!((rules - groups).abs() < 1e-9 && (groups - explained.value).abs() < 1e-9, "{rules} {groups}");
}

#[test]
fn scoring_shape_and_policy_mistakes() {
    let err = compile_model(
        r#"{"id": "s", "decay": {"halflife": "30d"}, "floor": 10, "cap": 5,
            "rules": [{"id": "vp", "fit": "contact.title == 'VP'", "points": 5, "repeat": "once"},
                      {"id": "v", "on": "page_visit", "points": 1, "repeat": {"max": 2, "pr": "1d"}}],
            "thresholds": [{"id": "t", "enter": 1}, {"id": "t", "enter": 2}],
            "bands": [{"name": "b", "from": 0}, {"name": "b", "from": 1}]}"#,
    )
    .unwrap_err();
    let found: Vec<(Code, &str)> = err.diagnostics.iter().map(|d| (d.code, d.path.as_str())).collect();
    assert!(found.contains(&(Code::UnknownKey, "/scoring/models/0/decay/halflife")), "{found:?}");
    assert!(found.contains(&(Code::UnknownKey, "/scoring/models/0/rules/1/repeat/pr")), "{found:?}");
    let err = compile_model(
        r#"{"id": "s", "floor": 10, "cap": 5,
            "rules": [{"id": "vp", "fit": "contact.title == 'VP'", "points": 5, "repeat": "once"}],
            "thresholds": [{"id": "t", "enter": 1}, {"id": "t", "enter": 2}],
            "bands": [{"name": "b", "from": 0}, {"name": "b", "from": 1}]}"#,
    )
    .unwrap_err();
    let found: Vec<(Code, &str)> = err.diagnostics.iter().map(|d| (d.code, d.path.as_str())).collect();
    assert_eq!(
        found,
        [
            (Code::InvalidDocument, "/scoring/models/0/floor"),
            (Code::InvalidDocument, "/scoring/models/0/rules/0"),
            (Code::DuplicateId, "/scoring/models/0/thresholds/1/id"),
            (Code::DuplicateId, "/scoring/models/0/bands/1/name"),
        ]
    );
    assert!(compile_model(
        r#"{"id": "s", "decay": {"half_life": "30d"}, "groups": [{"id": "g", "decay": "none"}]}"#
    )
    .is_ok());
}

#[test]
fn calendar_step_decay_in_the_contacts_zone() {
    let program = compile_model(
        r#"{"id": "s", "decay": {"step": 0.5, "every": "month", "zone": "America/New_York"},
            "rules": [{"id": "v", "on": "page_visit", "points": 80}]}"#,
    )
    .unwrap();
    let (state, _) = visits(&program, &[0]); // 2023-11-14T22:13:20Z
    let scorer = program.scorer().unwrap();
    let at = |s: &str| Timestamp::parse(s).unwrap();
    // December 1st starts at 05:00 UTC in New York.
    assert_eq!(scorer.value(&state, 0, at("2023-12-01T04:59:59Z")), Some(80.0));
    assert_eq!(scorer.value(&state, 0, at("2023-12-01T05:00:00Z")), Some(40.0));
    assert_eq!(scorer.value(&state, 0, at("2024-02-15T00:00:00Z")), Some(10.0));
    let err =
        compile_model(r#"{"id": "s", "decay": {"step": 0.5, "every": "month", "zone": "Mars/Olympus"}}"#)
            .unwrap_err();
    assert_eq!(err.diagnostics[0].path, "/scoring/models/0/decay/zone");
}

#[test]
fn point_rules_read_scores_as_they_stand_before_the_event() {
    let doc = r#"{
      "version": 1,
      "schema": {"events": {"page_visit": {"url": "string"}}, "scores": ["engagement"]},
      "scoring": {"models": [{"id": "engagement", "rules": [
        {"id": "visit", "on": "page_visit", "points": 10},
        {"id": "loyal", "on": "page_visit", "when": "score.engagement >= 20.0", "points": 5}
      ]}]}
    }"#;
    let program = Program::from_json(doc).unwrap_or_else(|e| panic!("{}", e.render()));
    let (state, last) = {
        let scorer = program.scorer().unwrap();
        let schema = program.schema();
        let contact = schema.contact("c").build();
        let t0 = Timestamp::from_unix(1_700_000_000, 0).unwrap();
        let mut state = scorer.new_state(t0);
        for n in 0..4 {
            let e = schema
                .event(format!("e{n}"), "c", "page_visit", t0)
                .unwrap()
                .set("url", "/")
                .unwrap()
                .build();
            let _ =
                scorer.handle_event(&mut state, &contact, &e, &mut ScoreScratch::default()).cloned().unwrap();
        }
        (state, t0)
    };
    // 10, 20, then 20 >= 20 so +15 (35), then +15 (50).
    assert_eq!(program.scorer().unwrap().value(&state, 0, last), Some(50.0));
}

/// A model with a hysteresis band: `hot` entered at 80, left only below 70; each visit
/// is worth 20 points, decaying with a 10-day half-life.
const HYSTERESIS: &str = r#"{"id": "s", "decay": {"half_life": "10d"},
    "rules": [{"id": "v", "on": "page_visit", "points": 20}],
    "bands": [{"name": "warm", "from": 40}, {"name": "hot", "from": 80, "leave": 70}]}"#;

#[test]
fn a_band_with_hysteresis_is_left_only_below_its_leave_level() {
    let program = compile_model(HYSTERESIS).unwrap_or_else(|e| panic!("{}", e.render()));
    let scorer = program.scorer().unwrap();
    // Four visits at once: 80, hot.
    let (mut state, t) = visits(&program, &[0, 0, 0, 0]);
    assert_eq!(scorer.value(&state, 0, t), Some(80.0));
    assert_eq!(scorer.band(&state, 0, t), Some("hot"));
    // The wake-up is when decay takes the score below 70 (leave), not below 80 (from):
    // 80 * 2^(-d / 10 days) < 70 after about 1.93 days.
    let wake = scorer.next_wake(&state, t).expect("a decaying score in a band wakes");
    let seconds = wake.unix_seconds() - t.unix_seconds();
    let below = |s: i64| 80.0 * 2f64.powf(-(s as f64) / 864_000.0) < 70.0;
    assert!(below(seconds) && !below(seconds - 1), "wake {seconds}s after reaching 80");
    // Just before it: 70-something, still hot (without hysteresis it would be warm).
    let early = Timestamp::from_unix(wake.unix_seconds() - 1, 0).unwrap();
    let update = scorer.handle_timeout(&mut state, early).unwrap();
    assert!(update.band_changes.is_empty(), "{update:?}");
    assert_eq!(scorer.band(&state, 0, early), Some("hot"));
    // At the wake-up the score is below 70: out of `hot`, into `warm`.
    let update = scorer.handle_timeout(&mut state, wake).unwrap();
    assert_eq!(update.band_changes, [(nurture::ScoreId::from("s"), Some("hot".into()), Some("warm".into()))]);
    assert_eq!(scorer.band(&state, 0, wake), Some("warm"));
}

#[test]
fn a_band_that_rises_back_is_reentered_at_its_from_level() {
    // Three visits, then a fourth five days later: 62.4 is at or above `leave` (70)? No,
    // and never reached `from` (80): a band is entered only at its `from`.
    let program = compile_model(HYSTERESIS).unwrap();
    let scorer = program.scorer().unwrap();
    let (state, t) = visits(&program, &[0, 0, 0, 86_400 * 5]);
    // 60 decayed 5 days (42.4) + 20 = 62.4: warm, never hot.
    assert!((scorer.value(&state, 0, t).unwrap() - (60.0 * 2f64.powf(-0.5) + 20.0)).abs() < 1e-9);
    assert_eq!(scorer.band(&state, 0, t), Some("warm"));
}

#[test]
fn a_band_leave_level_above_from_is_refused() {
    let err = compile_model(
        r#"{"id": "s", "rules": [{"id": "v", "on": "page_visit", "points": 1}],
            "bands": [{"name": "hot", "from": 80, "leave": 90}, {"name": "warm", "from": 40, "leave": 1e300}]}"#,
    )
    .unwrap_err();
    let paths: Vec<&str> = err.diagnostics.iter().map(|d| d.path.as_str()).collect();
    assert_eq!(
        paths,
        ["/scoring/models/0/bands/0/leave", "/scoring/models/0/bands/1/leave"],
        "{}",
        err.render()
    );
    assert!(err.render().contains("at most its `from`"), "{}", err.render());
    // A leave level that is not a number is a shape error at the same path.
    let err =
        compile_model(r#"{"id": "s", "bands": [{"name": "hot", "from": 80, "leave": "70"}]}"#).unwrap_err();
    assert_eq!(err.diagnostics[0].path, "/scoring/models/0/bands/0/leave", "{}", err.render());
}
