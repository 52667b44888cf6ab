//! Journeys: every step kind and policy, exact waits across daylight-saving changes,
//! exits that pre-empt waits, goals, removal, re-entry, splits with a holdout, the
//! checks at compile time, and keys that survive snapshots and replays.

use std::sync::Arc;

use nurture::engine::{ContactState, Effect, EffectKind, Engine, EngineScratch, ExitReason, Funnel, Outcome};
use nurture::{Contact, Event, Program, Timestamp};
use proptest::prelude::*;

const DOC: &str = r#"{
  "version": 1,
  "schema": {
    "contact": {"company_size": "int", "tz": "string", "trial_ends_at": "timestamp"},
    "events": {"signup": {"plan": "string"}, "page_visit": {"url": "string"},
               "unsubscribe": {}, "purchase": {}},
    "scores": ["fit"]
  },
  "scoring": {"models": [{"id": "fit",
    "rules": [{"id": "big", "fit": "has(contact.company_size) && contact.company_size >= 100", "points": 60}],
    "bands": [{"name": "low", "from": 0}, {"name": "high", "from": 50}]}]},
  "rules": [
    {"id": "leave", "on": "page_visit", "when": "event.url == '/leave'",
     "actions": [{"type": "remove_from_journey", "journey": "onboarding"}]}
  ],
  "journeys": [{
    "id": "onboarding",
    "on": "signup",
    "when": "event.plan == 'trial'",
    "reentry": {"after": "30d"},
    "exits": [{"id": "unsubscribed", "on": "unsubscribe"}],
    "goal": {"on": "purchase"},
    "zone": "contact.tz",
    "steps": [
      {"id": "welcome", "type": "action", "next": "pause",
       "actions": [{"type": "send", "channel": "email", "template": "welcome"}]},
      {"id": "pause", "type": "wait", "for": "1d", "next": "pricing"},
      {"id": "pricing", "type": "wait_for", "on": "page_visit", "when": "event.url == '/pricing'",
       "timeout": "3d", "next": "fit", "on_timeout": "nudge"},
      {"id": "nudge", "type": "action", "next": "tuesday",
       "actions": [{"type": "send", "channel": "email", "template": "nudge"}]},
      {"id": "tuesday", "type": "wait", "at": "09:00", "days": ["tuesday"], "next": "fit"},
      {"id": "fit", "type": "branch", "cases": [{"when": "score.fit >= 50.0", "next": "ab"}], "else": "done"},
      {"id": "ab", "type": "split", "arms": [
         {"id": "a", "weight": 45, "next": "send_a"}, {"id": "b", "weight": 45, "next": "send_b"}],
       "holdout": {"weight": 10, "for": "14d"}},
      {"id": "send_a", "type": "action", "next": "trial_end",
       "actions": [{"type": "send", "channel": "email", "template": "variant-a"}]},
      {"id": "send_b", "type": "action", "next": "trial_end",
       "actions": [{"type": "send", "channel": "email", "template": "variant-b"}]},
      {"id": "trial_end", "type": "wait", "date": "trial_ends_at", "offset": "-1d", "next": "done"},
      {"id": "done", "type": "exit"}
    ]
  }]
}"#;

// 2026-03-02T00:00:00Z, a Monday.
const T0: i64 = 1_772_409_600;
const DAY: i64 = 86_400;

fn engine() -> Engine {
    Engine::new(Arc::new(Program::from_json(DOC).unwrap_or_else(|e| panic!("{}", e.render()))))
}

fn at(secs: i64) -> Timestamp {
    Timestamp::from_unix(T0 + secs, 0).unwrap()
}

fn contact(engine: &Engine, id: &str, size: i64) -> Contact {
    engine
        .program()
        .schema()
        .contact(id)
        .set("company_size", size)
        .unwrap()
        .set("tz", "America/New_York")
        .unwrap()
        .set("trial_ends_at", at(30 * DAY))
        .unwrap()
        .build()
}

fn event(engine: &Engine, n: u64, who: &str, kind: &str, secs: i64) -> Event {
    let schema = engine.program().schema();
    let (kind, url) = match kind {
        "leave" => ("page_visit", "/leave"),
        other => (other, "/pricing"),
    };
    let b = schema.event(format!("e{n}"), who, kind, at(secs)).unwrap();
    match kind {
        "signup" => b.set("plan", "trial").unwrap().build(),
        "page_visit" => b.set("url", url).unwrap().build(),
        _ => b.build(),
    }
}

fn kinds(outcome: &Outcome) -> Vec<String> {
    outcome.effects.iter().map(|e| e.kind.to_string()).collect()
}

fn sends(outcome: &Outcome) -> Vec<String> {
    outcome
        .effects
        .iter()
        .filter_map(|e| match &e.kind {
            EffectKind::JourneyAction { action: nurture::def::ActionDef::Send { template, .. }, .. } => {
                Some(template.clone())
            }
            _ => None,
        })
        .collect()
}

fn exits(outcome: &Outcome) -> Vec<ExitReason> {
    outcome
        .effects
        .iter()
        .filter_map(|e| match &e.kind {
            EffectKind::JourneyExited { reason, .. } => Some(*reason),
            _ => None,
        })
        .collect()
}

struct Run {
    engine: Engine,
    state: ContactState,
    contact: Contact,
    scratch: EngineScratch,
    n: u64,
}

impl Run {
    fn new(id: &str, size: i64) -> Run {
        let engine = engine();
        let contact = contact(&engine, id, size);
        let state = engine.new_state(&contact, at(0));
        Run { engine, state, contact, scratch: EngineScratch::default(), n: 0 }
    }

    fn event(&mut self, kind: &str, secs: i64) -> Outcome {
        self.n += 1;
        let e = event(&self.engine, self.n, self.contact.id().as_str(), kind, secs);
        self.engine.handle_event(&mut self.state, &self.contact, &e, &mut self.scratch).unwrap()
    }

    fn timeout(&mut self, secs: i64) -> Outcome {
        self.engine.handle_timeout(&mut self.state, &self.contact, at(secs), &mut self.scratch).unwrap()
    }
}

#[test]
fn the_document_compiles_and_draws_as_mermaid() {
    let engine = engine();
    let journey = engine.program().journeys().current("onboarding").unwrap();
    assert_eq!(journey.steps().len(), 11);
    let chart = journey.to_mermaid();
    assert!(chart.starts_with("flowchart TD\n"), "{chart}");
    assert!(chart.contains("s2_pricing -->|\"timeout\"| s3_nudge"), "{chart}");
    assert!(chart.contains("s5_fit -->|\"else\"| s10_done"), "{chart}");
    assert!(chart.contains("s6_ab{"), "{chart}");
}

#[test]
fn entry_runs_to_the_first_wait_and_the_wait_is_the_next_wake_exactly() {
    let mut run = Run::new("c1", 500);
    let out = run.event("signup", 3_600);
    assert_eq!(
        kinds(&out),
        [
            "journey_entered onboarding v1 #1",
            "journey_step onboarding v1 #1 welcome",
            "journey_action onboarding v1 #1 welcome#0",
            "journey_step onboarding v1 #1 pause",
            &format!("journey_waiting onboarding v1 #1 pause until {}", at(3_600 + DAY)),
        ]
    );
    assert_eq!(out.next_wake, Some(at(3_600 + DAY)));
    // An early wake-up changes nothing; the wait ends exactly at its instant.
    let early = run.timeout(3_600 + DAY - 1);
    assert!(early.effects.is_empty(), "{:?}", kinds(&early));
    let due = run.timeout(3_600 + DAY);
    assert_eq!(due.next_wake, Some(at(3_600 + 4 * DAY)));
    assert_eq!(run.state.enrolments()[0].step(), "pricing");
    // The pricing visit leads through the fit branch and a split to a variant.
    let visit = run.event("page_visit", 3_600 + 2 * DAY);
    let sent = sends(&visit);
    assert!(sent == ["variant-a"] || sent == ["variant-b"] || sent.is_empty(), "{sent:?}");
    let e = &run.state.enrolments()[0];
    let arm = e.arm().unwrap();
    assert!(["a", "b", "holdout"].contains(&arm));
    if arm == "holdout" {
        assert!(sent.is_empty());
        assert_eq!(e.until(), Some(at(3_600 + 16 * DAY)));
    } else {
        // The trial ends on day 30: wait until a day before.
        assert_eq!(e.until(), Some(at(29 * DAY)));
    }
}

#[test]
fn a_timeout_takes_the_timeout_branch_and_waits_for_local_tuesday_across_dst() {
    // Entered on Monday 2026-03-02 01:00Z: pause until Tuesday 01:00Z, wait for a
    // pricing visit until Friday 2026-03-06 01:00Z, then wait for Tuesday 09:00 in New
    // York: 2026-03-10, after the switch to daylight time on 8 March (UTC-4): 13:00Z.
    let mut run = Run::new("c2", 500);
    let _ = run.event("signup", 3_600);
    let _ = run.timeout(3_600 + DAY);
    let out = run.timeout(3_600 + 4 * DAY);
    assert_eq!(sends(&out), ["nudge"]);
    let tuesday = Timestamp::parse("2026-03-10T13:00:00Z").unwrap();
    assert_eq!(run.state.enrolments()[0].until(), Some(tuesday));
    assert_eq!(out.next_wake, Some(tuesday));
    let out = run.timeout(tuesday.unix_seconds() - T0);
    assert!(kinds(&out).iter().any(|k| k.starts_with("journey_arm")), "{:?}", kinds(&out));
}

#[test]
fn a_late_wake_up_keeps_every_wait_on_its_own_instants() {
    // The host wakes the contact only after 40 days: every wait is taken at its own
    // instant, in order, in one step.
    let mut run = Run::new("c3", 500);
    let _ = run.event("signup", 0);
    let out = run.timeout(40 * DAY);
    let waits: Vec<Timestamp> = out
        .effects
        .iter()
        .filter_map(|e| match &e.kind {
            EffectKind::JourneyWaiting { until, .. } => Some(*until),
            _ => None,
        })
        .collect();
    assert_eq!(waits[0], at(4 * DAY), "the wait for's timeout counts from the pause's end");
    assert_eq!(waits[1], Timestamp::parse("2026-03-10T13:00:00Z").unwrap());
    assert!(run.state.enrolments().is_empty() || run.state.enrolments()[0].arm() == Some("holdout"));
}

#[test]
fn an_exit_event_ends_the_enrolment_mid_wait() {
    let mut run = Run::new("c4", 500);
    let _ = run.event("signup", 0);
    let out = run.event("unsubscribe", 3_600);
    assert_eq!(exits(&out), [ExitReason::ExitCondition]);
    assert!(run.state.enrolments().is_empty());
    assert_eq!(out.next_wake, None, "nothing is left to wake for");
    assert!(run.timeout(2 * DAY).effects.is_empty());
}

#[test]
fn the_goal_ends_the_enrolment_as_converted() {
    let mut run = Run::new("c5", 500);
    let _ = run.event("signup", 0);
    let out = run.event("purchase", 3_600);
    assert!(kinds(&out).contains(&"journey_goal onboarding v1 #1".to_string()));
    assert_eq!(exits(&out), [ExitReason::Goal]);
}

#[test]
fn remove_from_journey_removes_and_reentry_waits_for_its_period() {
    let mut run = Run::new("c6", 500);
    let _ = run.event("signup", 0);
    let out = run.event("leave", 60);
    assert_eq!(exits(&out), [ExitReason::Removed]);
    // Re-entry only 30 days after the last exit.
    let again = run.event("signup", 10 * DAY);
    assert!(!kinds(&again).iter().any(|k| k.starts_with("journey_entered")));
    let later = run.event("signup", 31 * DAY);
    assert!(kinds(&later).contains(&"journey_entered onboarding v1 #2".to_string()));
}

#[test]
fn a_branch_takes_else_for_a_small_company() {
    let mut run = Run::new("c7", 5);
    let _ = run.event("signup", 0);
    let _ = run.timeout(DAY);
    let out = run.event("page_visit", DAY + 60);
    assert_eq!(exits(&out), [ExitReason::Completed]);
    assert!(kinds(&out).contains(&"journey_step onboarding v1 #1 done".to_string()));
}

#[test]
fn the_entry_condition_and_a_second_signup_do_not_double_enrol() {
    let mut run = Run::new("c8", 500);
    let _ = run.event("signup", 0);
    let again = run.event("signup", 60);
    assert!(!kinds(&again).iter().any(|k| k.starts_with("journey_entered")));
    assert_eq!(run.state.enrolments().len(), 1);
}

#[test]
fn compile_checks_report_every_problem_at_once_with_paths() {
    let bad = r#"{"version": 1,
      "schema": {"contact": {"plan": "string"}, "events": {"signup": {}}},
      "journeys": [{"id": "j", "on": "signup", "when": "segment.nope", "steps": [
        {"id": "a", "type": "action", "actions": [], "next": "missing"},
        {"id": "lonely", "type": "exit"},
        {"id": "b", "type": "branch", "cases": [{"when": "contact.plan == 'x'", "next": "c"}]},
        {"id": "c", "type": "goto", "to": "b"},
        {"id": "w", "type": "wait_for", "on": "signup", "next": "c"},
        {"id": "s", "type": "split", "arms": [{"id": "x", "weight": 0, "next": "a"}]}
      ]},
      {"id": "orphan", "steps": [{"id": "x", "type": "exit"}]}]}"#;
    let err = Program::from_json(bad).unwrap_err();
    let paths: Vec<&str> = err.diagnostics.iter().map(|d| d.path.as_str()).collect();
    for wanted in [
        "/journeys/0/when",
        "/journeys/0/steps/0/next",
        "/journeys/0/steps/2",
        "/journeys/0/steps/4",
        "/journeys/0/steps/5/arms/0/weight",
        "/journeys/1",
    ] {
        assert!(paths.contains(&wanted), "{wanted} missing from {paths:?}");
    }
    let messages: Vec<&str> = err.diagnostics.iter().map(|d| d.message.as_str()).collect();
    assert!(messages.iter().any(|m| m.contains("no `else`")), "{messages:?}");
    assert!(messages.iter().any(|m| m.contains("no timeout")), "{messages:?}");
    assert!(messages.iter().any(|m| m.contains("can never be entered")), "{messages:?}");
    assert!(messages.iter().any(|m| m.contains("unknown step `missing`")), "{messages:?}");
    assert!(err.diagnostics.iter().all(|d| d.help.is_some() || d.path.ends_with("/when")), "{messages:?}");
}

#[test]
fn unreachable_steps_and_loops_without_a_wait_are_refused() {
    let bad = r#"{"version": 1, "schema": {"events": {"signup": {}}},
      "journeys": [{"id": "j", "on": "signup", "steps": [
        {"id": "a", "type": "goto", "to": "b"},
        {"id": "b", "type": "goto", "to": "a"},
        {"id": "island", "type": "exit"}
      ]}]}"#;
    let err = Program::from_json(bad).unwrap_err();
    let messages: Vec<String> = err.diagnostics.iter().map(|d| format!("{} {}", d.path, d.message)).collect();
    assert!(messages.iter().any(|m| m.contains("loop without a wait")), "{messages:?}");
    assert!(
        messages.iter().any(|m| m.starts_with("/journeys/0/steps/2 ") && m.contains("unreachable")),
        "{messages:?}"
    );
    // A loop through a wait is fine.
    let good = r#"{"version": 1, "schema": {"events": {"signup": {}}},
      "journeys": [{"id": "j", "on": "signup", "steps": [
        {"id": "a", "type": "action", "actions": [{"type": "add_tag", "tag": "t"}], "next": "w"},
        {"id": "w", "type": "wait", "for": "1d", "next": "a"}
      ]}]}"#;
    assert!(Program::from_json(good).is_ok());
}

#[test]
fn keys_name_journey_version_instance_and_step_and_survive_a_later_retry() {
    // A crash after computing a wake-up's effects: the retry from the saved state at a
    // later instant gives the same journey keys.
    let mut run = Run::new("c9", 500);
    let _ = run.event("signup", 0);
    let saved = run.state.clone();
    let first = run.timeout(DAY);
    run.state = saved;
    let retry = run.timeout(DAY + 17);
    let keys = |o: &Outcome| o.effects.iter().map(|e| e.key).collect::<Vec<_>>();
    assert_eq!(keys(&first), keys(&retry));
    assert_eq!(kinds(&first), kinds(&retry));
}

#[test]
fn the_funnel_counts_entries_arms_goals_and_exits() {
    let mut funnel = Funnel::default();
    for i in 0..200 {
        let mut run = Run::new(&format!("f{i}"), 500);
        let mut record = |o: &Outcome| o.effects.iter().for_each(|e: &Effect| funnel.record(e));
        record(&run.event("signup", 0));
        record(&run.timeout(DAY));
        record(&run.event("page_visit", 2 * DAY));
        if i % 3 == 0 {
            record(&run.event("purchase", 3 * DAY));
        }
    }
    let f = funnel.journey("onboarding").unwrap();
    assert_eq!(f.enrolled, 200);
    let split: u64 = f.arms.values().map(|a| a.enrolled).sum::<u64>() + f.holdout.enrolled;
    assert_eq!(split, 200);
    assert!(f.holdout.enrolled > 5 && f.holdout.enrolled < 40, "{:?}", f.holdout);
    assert_eq!(f.goal, 67);
    assert_eq!(f.exited.get("goal"), Some(&67));
    let summary = f.summary();
    assert_eq!(summary["enrolled"], 200);
    assert!(summary["arms"]["a"]["enrolled"].as_u64().unwrap() > 50);
}

/// One input of a generated history: an event kind, or an extra wake-up, after a gap.
#[derive(Clone, Debug)]
enum Op {
    Event(&'static str, i64),
    Wake(i64),
}

fn op() -> impl Strategy<Value = Op> {
    let gap = 0i64..3 * DAY;
    prop_oneof![
        (prop::sample::select(vec!["signup", "page_visit", "unsubscribe", "purchase", "leave"]), gap.clone())
            .prop_map(|(k, g)| Op::Event(k, g)),
        gap.prop_map(Op::Wake),
    ]
}

/// Runs a history as a host would: before each input, every wake-up due is delivered
/// at its instant; `extra` wake-ups are delivered too; with `snapshot`, the state goes
/// through JSON before every input. Returns every effect.
fn host_run(id: &str, ops: &[Op], extra: bool, snapshot: bool) -> (Vec<Effect>, usize) {
    let mut run = Run::new(id, 500);
    let mut effects = Vec::new();
    let mut wake: Option<Timestamp> = None;
    let mut clock = 0i64;
    let mut most_active = 0;
    let mut step = |run: &mut Run, out: Outcome, effects: &mut Vec<Effect>, wake: &mut Option<Timestamp>| {
        *wake = out.next_wake;
        effects.extend(out.effects);
        let mut per: std::collections::BTreeMap<&str, usize> = Default::default();
        for e in run.state.enrolments() {
            *per.entry(e.journey()).or_default() += 1;
        }
        most_active = most_active.max(per.values().copied().max().unwrap_or(0));
    };
    for op in ops {
        let (gap, is_event) = match op {
            Op::Event(_, g) => (*g, true),
            Op::Wake(g) => (*g, false),
        };
        clock += gap;
        while let Some(w) = wake.filter(|w| w.unix_seconds() - T0 <= clock) {
            if snapshot {
                run.state = serde_json::from_str(&serde_json::to_string(&run.state).unwrap()).unwrap();
            }
            let out = run.timeout(w.unix_seconds() - T0);
            step(&mut run, out, &mut effects, &mut wake);
        }
        if snapshot {
            run.state = serde_json::from_str(&serde_json::to_string(&run.state).unwrap()).unwrap();
        }
        match op {
            Op::Event(kind, _) => {
                let out = run.event(kind, clock);
                step(&mut run, out, &mut effects, &mut wake);
            }
            Op::Wake(_) if extra && !is_event => {
                let out = run.timeout(clock);
                step(&mut run, out, &mut effects, &mut wake);
            }
            Op::Wake(_) => {}
        }
    }
    (effects, most_active)
}

fn journey_effects(effects: &[Effect]) -> Vec<(String, nurture::engine::IdempotencyKey)> {
    effects
        .iter()
        .filter(|e| e.kind.name().starts_with("journey"))
        .map(|e| (e.kind.to_string(), e.key))
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// A journey run through snapshot and restore at any point gives the same effects
    /// and keys.
    #[test]
    fn snapshots_change_nothing(ops in prop::collection::vec(op(), 1..30)) {
        let (straight, _) = host_run("p1", &ops, true, false);
        let (restored, _) = host_run("p1", &ops, true, true);
        prop_assert_eq!(straight, restored);
    }

    /// Waits fire exactly once, at their instant, whether or not the host delivers
    /// extra wake-ups: the journey effects and their keys are the same.
    #[test]
    fn extra_wake_ups_change_no_journey_effect(ops in prop::collection::vec(op(), 1..30)) {
        let (needed, _) = host_run("p2", &ops, false, false);
        let (extra, _) = host_run("p2", &ops, true, false);
        let (a, b) = (journey_effects(&needed), journey_effects(&extra));
        prop_assert_eq!(&a, &b);
        let mut keys: Vec<_> = a.iter().map(|(_, k)| *k).collect();
        let n = keys.len();
        keys.sort();
        keys.dedup();
        prop_assert_eq!(keys.len(), n, "every journey effect has its own key");
    }

    /// A contact is never in two enrolments of a journey that allows one, and nothing
    /// happens in an enrolment after its exit (exits pre-empt waits).
    #[test]
    fn one_enrolment_at_a_time_and_nothing_after_an_exit(ops in prop::collection::vec(op(), 1..30)) {
        let (effects, most) = host_run("p3", &ops, true, false);
        prop_assert!(most <= 1);
        let mut ended = std::collections::BTreeSet::new();
        for e in &effects {
            match &e.kind {
                EffectKind::JourneyExited { instance, .. } => { ended.insert(*instance); }
                EffectKind::JourneyStep { instance, .. }
                | EffectKind::JourneyAction { instance, .. }
                | EffectKind::JourneyWaiting { instance, .. } => {
                    prop_assert!(!ended.contains(instance), "instance {} ran after its exit", instance);
                }
                _ => {}
            }
        }
        // An unsubscribe leaves no active enrolment behind.
        let mut run = Run::new("p3b", 500);
        for op in &ops {
            if let Op::Event(kind, _) = op {
                let _ = run.event(kind, run.state.last_change().unix_seconds() - T0 + 1);
            }
        }
        let _ = run.event("unsubscribe", run.state.last_change().unix_seconds() - T0 + 1);
        prop_assert!(run.state.enrolments().is_empty());
    }

    /// A split arm never changes for a contact: the same contact lands in the same arm
    /// whenever, and however often, it reaches the split.
    #[test]
    fn a_contact_keeps_its_arm(id in "[a-z0-9]{1,12}", delay in 0i64..5 * DAY) {
        let arm_of = |start: i64| {
            let mut run = Run::new(&id, 500);
            let _ = run.event("signup", start);
            let _ = run.timeout(start + DAY);
            let _ = run.event("page_visit", start + DAY + 60);
            run.state.enrolments().first().and_then(|e| e.arm().map(str::to_string))
        };
        prop_assert_eq!(arm_of(0), arm_of(delay));
    }
}

/// The quickstart's journey compiles beside the B2B rules, and docs/journeys.md shows
/// its drawing as `to_mermaid` renders it.
#[test]
fn the_guide_shows_the_quickstart_journey_as_drawn() {
    let mut doc: serde_json::Value =
        serde_json::from_str(include_str!("../examples/b2b_rules.json")).unwrap();
    let journey: serde_json::Value =
        serde_json::from_str(include_str!("../examples/onboarding_journey.json")).unwrap();
    doc["journeys"] = serde_json::json!([journey]);
    let program = Program::from_json(&doc.to_string()).unwrap_or_else(|e| panic!("{}", e.render()));
    let chart = program.journeys().current("onboarding").unwrap().to_mermaid();
    if std::env::var_os("PRINT_MERMAID").is_some() {
        println!("{chart}");
    }
    let guide = include_str!("../docs/journeys.md");
    assert!(guide.contains(&format!("```mermaid\n{chart}```")), "docs/journeys.md is out of date:\n{chart}");
}

/// `DOC` with its journey replaced by `journeys` (a JSON list).
fn doc_with(journeys: serde_json::Value) -> String {
    let mut doc: serde_json::Value = serde_json::from_str(DOC).unwrap();
    doc["journeys"] = journeys;
    doc.to_string()
}

fn v1() -> serde_json::Value {
    let doc: serde_json::Value = serde_json::from_str(DOC).unwrap();
    doc["journeys"][0].clone()
}

/// Contacts parked at every resting step of version 1: the pause, the wait for, the
/// Tuesday wait (the timeout path), the trial-end wait (an arm) and the holdout.
fn parked() -> Vec<Run> {
    let mut runs = Vec::new();
    let mut pause = Run::new("v-pause", 500);
    let _ = pause.event("signup", 0);
    runs.push(pause);
    let mut pricing = Run::new("v-pricing", 500);
    let _ = pricing.event("signup", 0);
    let _ = pricing.timeout(DAY);
    runs.push(pricing);
    let mut tuesday = Run::new("v-tuesday", 500);
    let _ = tuesday.event("signup", 0);
    let _ = tuesday.timeout(DAY);
    let _ = tuesday.timeout(4 * DAY);
    runs.push(tuesday);
    // Arms and the holdout: contacts until one of each is found.
    let (mut arm, mut holdout) = (None, None);
    for i in 0..400 {
        let mut run = Run::new(&format!("v-split{i}"), 500);
        let _ = run.event("signup", 0);
        let _ = run.timeout(DAY);
        let _ = run.event("page_visit", 2 * DAY);
        match run.state.enrolments().first().map(|e| e.step().to_string()).as_deref() {
            Some("trial_end") if arm.is_none() => arm = Some(run),
            Some("ab") if holdout.is_none() => holdout = Some(run),
            _ => {}
        }
        if arm.is_some() && holdout.is_some() {
            break;
        }
    }
    runs.extend(arm);
    runs.extend(holdout);
    assert_eq!(runs.len(), 5);
    runs
}

fn adopt_into(run: &mut Run, journeys: serde_json::Value) {
    let program = Program::from_json(&doc_with(journeys)).unwrap_or_else(|e| panic!("{}", e.render()));
    let engine = Engine::new(Arc::new(program));
    let state = std::mem::replace(&mut run.state, engine.new_state(&run.contact, at(0)));
    run.state = engine.adopt(state, &run.contact, at(2 * DAY + 60));
    run.engine = engine;
}

#[test]
fn a_new_version_under_move_takes_enrolments_to_the_same_step() {
    let mut v2 = v1();
    v2["version"] = 2.into();
    v2["upgrade"] = "move".into();
    for mut run in parked() {
        let step = run.state.enrolments()[0].step().to_string();
        let until = run.state.enrolments()[0].until();
        adopt_into(&mut run, serde_json::json!([v2.clone()]));
        let e = &run.state.enrolments()[0];
        assert_eq!((e.version(), e.step(), e.until()), (2, step.as_str(), until), "{step}");
        // It runs on under version 2: its next effects name version 2.
        let out = run.timeout(60 * DAY);
        assert!(out.effects.iter().all(|e| !e.kind.to_string().contains(" v1 ")), "{:?}", kinds(&out));
        assert!(!out.effects.is_empty(), "{step}");
    }
}

#[test]
fn a_new_version_under_exit_supersedes_and_finish_keeps_the_retired_version() {
    let mut v2 = v1();
    v2["version"] = 2.into();
    v2["upgrade"] = "exit".into();
    for mut run in parked() {
        adopt_into(&mut run, serde_json::json!([v2.clone()]));
        let out = run.timeout(60 * DAY);
        assert_eq!(exits(&out), [ExitReason::Superseded]);
    }
    let mut v2 = v1();
    v2["version"] = 2.into();
    let mut retired = v1();
    retired["retired"] = true.into();
    for mut run in parked() {
        let step = run.state.enrolments()[0].step().to_string();
        adopt_into(&mut run, serde_json::json!([retired.clone(), v2.clone()]));
        assert_eq!(run.state.enrolments()[0].version(), 1, "{step}");
        let out = run.timeout(60 * DAY);
        assert!(!exits(&out).contains(&ExitReason::Superseded), "{step}: {:?}", kinds(&out));
        assert!(out.effects.iter().all(|e| !e.kind.to_string().contains(" v2 ")), "{step}");
        // New entries go to version 2 only.
        assert!(run.engine.program().journeys().current("onboarding").unwrap().version() == 2);
    }
}

/// A second document for entry triggers and policies.
const POLICIES: &str = r#"{
  "version": 1,
  "schema": {
    "contact": {"plan": "string"},
    "events": {"ping": {}, "visit": {}},
    "scores": ["engagement"]
  },
  "scoring": {"models": [{"id": "engagement",
    "rules": [{"id": "visit", "on": "visit", "points": 10}],
    "thresholds": [{"id": "hot", "enter": 30}]}]},
  "segments": [{"id": "engaged", "when": "score.engagement >= 20.0"}],
  "rules": [{"id": "enrol", "on": "ping", "actions": [{"type": "enroll_journey", "journey": "manual"}]}],
  "journeys": [
    {"id": "always", "on": "ping", "reentry": "always", "steps": [
      {"id": "w", "type": "wait", "for": "1d"}]},
    {"id": "twice", "on": "ping", "reentry": "always", "max_active": 2, "steps": [
      {"id": "w", "type": "wait", "for": "1d"}]},
    {"id": "per_version", "on": "ping", "reentry": "once_per_version", "steps": [
      {"id": "w", "type": "wait", "for": "1h"}]},
    {"id": "manual", "steps": [
      {"id": "approve", "type": "action", "next": "until_hot",
       "actions": [{"type": "send", "channel": "email", "template": "hi", "needs_approval": true}]},
      {"id": "until_hot", "type": "wait_for", "when": "score.engagement >= 30.0", "timeout": "7d", "next": "won"},
      {"id": "won", "type": "action", "actions": [{"type": "add_tag", "tag": "won"}]}]},
    {"id": "on_segment", "on": {"segment": "engaged"}, "steps": [
      {"id": "tag", "type": "action", "actions": [{"type": "add_tag", "tag": "engaged-journey"}]}]},
    {"id": "on_threshold", "on": {"score": "engagement", "threshold": "hot"}, "steps": [
      {"id": "tag", "type": "action", "actions": [{"type": "add_tag", "tag": "hot-journey"}]}]},
    {"id": "weekly", "on": {"schedule": "weekly", "weekday": "wednesday", "at": "10:00"}, "steps": [
      {"id": "tag", "type": "action", "actions": [{"type": "add_tag", "tag": "weekly"}]}]}
  ]
}"#;

fn policies() -> (Engine, Contact, ContactState) {
    let engine =
        Engine::new(Arc::new(Program::from_json(POLICIES).unwrap_or_else(|e| panic!("{}", e.render()))));
    let contact = engine.program().schema().contact("p").build();
    let state = engine.new_state(&contact, at(0));
    (engine, contact, state)
}

fn send(
    engine: &Engine,
    state: &mut ContactState,
    contact: &Contact,
    kind: &str,
    n: u64,
    secs: i64,
) -> Outcome {
    let e = engine.program().schema().event(format!("e{n}"), "p", kind, at(secs)).unwrap().build();
    engine.handle_event(state, contact, &e, &mut EngineScratch::default()).unwrap()
}

fn of(out: &Outcome, journey: &str) -> Vec<String> {
    out.effects
        .iter()
        .map(|e| e.kind.to_string())
        .filter(|k| k.starts_with("journey") && k.split(' ').nth(1) == Some(journey))
        .collect()
}

#[test]
fn reentry_always_replaces_and_max_active_allows_concurrent_enrolments() {
    let (engine, contact, mut state) = policies();
    let _ = send(&engine, &mut state, &contact, "ping", 1, 0);
    let out = send(&engine, &mut state, &contact, "ping", 2, 60);
    assert_eq!(of(&out, "always")[0], "journey_exited always v1 #1 reentered");
    assert!(of(&out, "always").contains(&"journey_entered always v1 #2".to_string()));
    assert!(!of(&out, "twice").iter().any(|k| k.contains("exited")), "two may be active");
    let out = send(&engine, &mut state, &contact, "ping", 3, 120);
    assert_eq!(of(&out, "twice")[0], "journey_exited twice v1 #1 reentered");
    let count = |id: &str| state.enrolments().iter().filter(|e| e.journey() == id).count();
    assert_eq!((count("always"), count("twice")), (1, 2));
    // Once per version: the enrolment ended after its hour; no second entry.
    let _ =
        engine.handle_timeout(&mut state, &contact, at(2 * 3_600), &mut EngineScratch::default()).unwrap();
    let out = send(&engine, &mut state, &contact, "ping", 4, 3 * 3_600);
    assert!(of(&out, "per_version").is_empty(), "{:?}", of(&out, "per_version"));
}

#[test]
fn an_enroll_action_enrols_a_journey_send_is_held_for_approval_and_a_condition_wait_ends() {
    let (engine, contact, mut state) = policies();
    let out = send(&engine, &mut state, &contact, "ping", 1, 0);
    assert!(of(&out, "manual").contains(&"journey_entered manual v1 #1".to_string()));
    let held: Vec<_> = out
        .effects
        .iter()
        .filter(|e| e.status == nurture::engine::Status::PendingApproval)
        .map(|e| e.kind.to_string())
        .collect();
    assert_eq!(held, ["journey_action manual v1 #1 approve#0"]);
    assert_eq!(state.pending().len(), 1);
    // Three visits: the score reaches 30, the condition wait ends at that step.
    for n in 0..3 {
        let out = send(&engine, &mut state, &contact, "visit", 10 + n, 60 + n as i64);
        if n == 2 {
            assert!(
                of(&out, "manual").contains(&"journey_step manual v1 #1 won".to_string()),
                "{:?}",
                kinds(&out)
            );
        }
    }
    assert!(state.has_tag("won"));
}

#[test]
fn segment_threshold_and_schedule_triggers_enter_journeys() {
    let (engine, contact, mut state) = policies();
    let _ = send(&engine, &mut state, &contact, "visit", 1, 0);
    let out = send(&engine, &mut state, &contact, "visit", 2, 60);
    assert!(of(&out, "on_segment").contains(&"journey_entered on_segment v1 #1".to_string()));
    let out = send(&engine, &mut state, &contact, "visit", 3, 120);
    assert!(of(&out, "on_threshold").contains(&"journey_entered on_threshold v1 #1".to_string()));
    assert!(state.has_tag("engaged-journey") && state.has_tag("hot-journey"));
    // T0 is a Monday: Wednesday 10:00 UTC is the next wake-up, and enters `weekly`.
    let wednesday = Timestamp::parse("2026-03-04T10:00:00Z").unwrap();
    let wake = engine.wake_after(&state, &contact, at(120)).unwrap();
    assert!(wake <= wednesday);
    let out = engine.handle_timeout(&mut state, &contact, wednesday, &mut EngineScratch::default()).unwrap();
    assert!(of(&out, "weekly").contains(&"journey_entered weekly v1 #1".to_string()), "{:?}", kinds(&out));
}

#[test]
#[cfg(feature = "toml")]
fn journeys_read_from_toml_too() {
    let toml = r#"
version = 1
[schema.events.signup]
[[journeys]]
id = "welcome"
on = "signup"
[[journeys.steps]]
id = "hello"
type = "action"
next = "pause"
actions = [{ type = "send", channel = "email", template = "hello" }]
[[journeys.steps]]
id = "pause"
type = "wait"
for = "2d"
"#;
    let program = Program::from_toml(toml).unwrap_or_else(|e| panic!("{}", e.render()));
    assert_eq!(program.journeys().current("welcome").unwrap().steps().len(), 2);
    let bad = toml.replace("for = \"2d\"", "fro = \"2d\"");
    let err = Program::from_toml(&bad).unwrap_err();
    assert!(err.diagnostics.iter().any(|d| d.path == "/journeys/0/steps/1/fro"), "{}", err.render());
}

#[test]
fn branches_read_the_enrolment_itself() {
    let doc = r#"{"version": 1, "schema": {"events": {"ping": {}}},
      "journeys": [{"id": "j", "on": "ping", "reentry": "always", "steps": [
        {"id": "ab", "type": "split", "arms": [{"id": "a", "weight": 1, "next": "which"}]},
        {"id": "which", "type": "branch",
         "cases": [{"when": "journey.instance == 1 && journey.arm == 'a' && journey.step == 'which'", "next": "first"}],
         "else": "again"},
        {"id": "first", "type": "action", "actions": [{"type": "add_tag", "tag": "first"}]},
        {"id": "again", "type": "action", "actions": [{"type": "add_tag", "tag": "again"}]}]}]}"#;
    let engine = Engine::new(Arc::new(Program::from_json(doc).unwrap_or_else(|e| panic!("{}", e.render()))));
    let contact = engine.program().schema().contact("p").build();
    let mut state = engine.new_state(&contact, at(0));
    let schema = engine.program().schema();
    for n in 0..2 {
        let e = schema.event(format!("e{n}"), "p", "ping", at(n)).unwrap().build();
        let _ = engine.handle_event(&mut state, &contact, &e, &mut EngineScratch::default()).unwrap();
    }
    assert!(state.has_tag("first") && state.has_tag("again"));
    // Rules cannot read `journey`: it exists only in journey conditions.
    let bad = r#"{"version": 1, "schema": {"events": {"ping": {}}},
      "rules": [{"id": "r", "on": "ping", "when": "journey.instance == 1"}]}"#;
    assert!(Program::from_json(bad).is_err());
}

#[test]
fn hostile_journeys_get_errors_not_panics() {
    // A thousand steps chained by gotos compile; one more is refused with its path.
    let chain = |n: usize| {
        let steps: Vec<serde_json::Value> = (0..n)
            .map(|i| {
                if i + 1 < n {
                    serde_json::json!({"id": format!("s{i}"), "type": "goto", "to": format!("s{}", i + 1)})
                } else {
                    serde_json::json!({"id": format!("s{i}"), "type": "exit"})
                }
            })
            .collect();
        serde_json::json!({"version": 1, "schema": {"events": {"ping": {}}},
            "journeys": [{"id": "j", "on": "ping", "steps": steps}]})
        .to_string()
    };
    assert!(Program::from_json(&chain(1_000)).is_ok());
    let err = Program::from_json(&chain(1_001)).unwrap_err();
    assert_eq!(err.diagnostics[0].path, "/journeys/0/steps");
    // Nonsense in every field: errors, all at once.
    let bad = r#"{"version": 1, "schema": {"contact": {"d": "timestamp"}, "events": {"ping": {}}},
      "journeys": [{"id": "", "on": {"inactive": "ping", "for": "1d"}, "reentry": "sometimes",
        "max_active": 0, "zone": "Mars/Olympus", "steps": [
        {"id": "w", "type": "wait", "for": "-5d", "at": "25:00"},
        {"id": "x", "type": "wait", "date": "nope", "offset": "soon"},
        {"id": "y", "type": "wait", "at": "09:00", "days": ["funday"]},
        {"id": "z", "type": "split", "arms": [{"id": "holdout", "weight": 1e300}],
         "holdout": {"weight": -1, "for": "0d"}}]}]}"#;
    let err = Program::from_json(bad).unwrap_err();
    assert!(err.diagnostics.len() >= 8, "{}", err.render());
    assert!(err.diagnostics.iter().all(|d| d.path.starts_with("/journeys/0")), "{}", err.render());
}

#[test]
fn a_timeout_and_an_event_of_the_same_instant_take_the_timeout_in_either_order() {
    // The wait for runs from day 1 to day 4 (exclusive): a pricing visit at exactly day
    // 4 finds the timeout taken first, whether the host woke the contact before it or not.
    let deadline = DAY + 3 * DAY;
    let mut woken = Run::new("tie", 500);
    let _ = woken.event("signup", 0);
    let _ = woken.timeout(DAY);
    let first = woken.timeout(deadline);
    let second = woken.event("page_visit", deadline);
    let mut not_woken = Run::new("tie", 500);
    let _ = not_woken.event("signup", 0);
    let _ = not_woken.timeout(DAY);
    let only = not_woken.event("page_visit", deadline);
    assert_eq!(sends(&first), ["nudge"]);
    assert!(journey_effects(&second.effects).is_empty());
    assert_eq!(sends(&only), ["nudge"]);
    assert_eq!(journey_effects(&first.effects), journey_effects(&only.effects));
    // A second earlier, the visit wins.
    let mut early = Run::new("tie", 500);
    let _ = early.event("signup", 0);
    let _ = early.timeout(DAY);
    assert!(sends(&early.event("page_visit", deadline - 1)).iter().all(|s| s != "nudge"));
}

#[test]
fn computed_values_in_journey_steps_are_refused_with_a_path() {
    let doc = r#"{"version": 1, "schema": {"contact": {"title": "string"}, "events": {"ping": {}}},
      "journeys": [{"id": "j", "on": "ping", "steps": [
        {"id": "hello", "type": "action", "actions": [
          {"type": "send", "channel": "email", "template": "t", "params": {"name": "contact.title"}},
          {"type": "set_attribute", "field": "title", "expr": "'x'"}]}]}]}"#;
    let err = Program::from_json(doc).unwrap_err();
    let paths: Vec<&str> = err.diagnostics.iter().map(|d| d.path.as_str()).collect();
    assert!(paths.contains(&"/journeys/0/steps/0/actions/0/params"), "{}", err.render());
    assert!(paths.contains(&"/journeys/0/steps/0/actions/1/expr"), "{}", err.render());
}
