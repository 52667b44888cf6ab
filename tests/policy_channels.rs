//! Host-defined channels and send priorities: a channel the host declares gets consent,
//! caps, windows and do-not-contact like a built-in one; when caps leave room for fewer
//! sends than one step wants, the higher-priority sends go.

use std::sync::Arc;

use nurture::def::Channel;
use nurture::engine::{Effect, Engine, EngineScratch, Outcome, Status};
use nurture::policy::Reason;
use nurture::{Program, Timestamp};
use proptest::prelude::*;

/// Monday 2 March 2026, 12:00 UTC.
const T0: i64 = 1_772_452_800;

fn at(secs: i64) -> Timestamp {
    Timestamp::from_unix(T0 + secs, 0).unwrap()
}

fn engine_of(rules: &str) -> Engine {
    Engine::new(Arc::new(Program::from_json(rules).expect("valid rules")))
}

fn template(e: &Effect) -> Option<String> {
    Some(serde_json::to_value(&e.kind).ok()?["action"]["template"].as_str()?.to_string())
}

fn sends(outcome: &Outcome) -> Vec<(String, Status)> {
    outcome.effects.iter().filter_map(|e| Some((template(e)?, e.status))).collect()
}

const WHATSAPP: &str = r#"{
  "version": 1,
  "schema": {"events": {"visit": {}, "wa_opt_in": {}, "wa_stop": {}, "wa_failed": {}}},
  "rules": [{"id": "nudge", "on": "visit", "actions": [
    {"type": "send", "channel": "whatsapp", "template": "wa-nudge"},
    {"type": "send", "channel": "email", "template": "mail-nudge"}]}],
  "policy": {
    "channels": [
      {"channel": "email", "consent": "opt_out"},
      {"channel": "whatsapp", "consent": "opt_in", "window": {"from": "09:00", "to": "18:00"}}
    ],
    "caps": [{"id": "wa-daily", "max": 1, "per": "1d", "channel": "whatsapp", "over": "drop"}],
    "consent_events": [
      {"on": "wa_opt_in", "channel": "whatsapp", "status": "opted_in"},
      {"on": "wa_stop", "channel": "whatsapp", "status": "opted_out"}
    ],
    "dnc_events": [{"on": "wa_failed", "channel": "whatsapp", "reason": "invalid_address"}]
  }
}"#;

struct Run {
    engine: Engine,
    contact: nurture::Contact,
    state: nurture::engine::ContactState,
    scratch: EngineScratch,
    n: u32,
}

impl Run {
    fn new(engine: Engine) -> Run {
        let contact = engine.program().schema().contact("c1").build();
        let state = engine.new_state(&contact, at(0));
        Run { engine, contact, state, scratch: EngineScratch::default(), n: 0 }
    }

    fn event(&mut self, kind: &str, t: Timestamp) -> Outcome {
        self.n += 1;
        let schema = self.engine.program().schema();
        let event = schema.event(format!("e{}", self.n), "c1", kind, t).unwrap().build();
        self.engine.handle_event(&mut self.state, &self.contact, &event, &mut self.scratch).unwrap()
    }
}

#[test]
fn a_host_defined_channel_gets_consent_caps_windows_and_do_not_contact() {
    let mut run = Run::new(engine_of(WHATSAPP));
    let whatsapp: Channel = "whatsapp".parse().unwrap();
    // Unknown consent on an opt-in channel: suppressed, naming the channel.
    let first = run.event("visit", at(0));
    assert_eq!(
        sends(&first),
        [("wa-nudge".into(), Status::Suppressed), ("mail-nudge".into(), Status::Ready)]
    );
    let reason = first.effects[0].decision.as_ref().unwrap().reason.clone();
    assert!(matches!(reason, Some(Reason::Consent { channel, .. }) if channel == whatsapp), "{reason:?}");
    // Opted in: the first send of the day goes, the second is dropped by the cap.
    let _ = run.event("wa_opt_in", at(60));
    assert_eq!(
        run.state.policy().consent_status(whatsapp, "marketing"),
        nurture::def::ConsentStatus::OptedIn
    );
    assert_eq!(sends(&run.event("visit", at(120)))[0], ("wa-nudge".into(), Status::Ready));
    let capped = run.event("visit", at(180));
    assert_eq!(sends(&capped)[0].1, Status::Suppressed);
    assert!(matches!(capped.effects[0].decision.as_ref().unwrap().reason, Some(Reason::Cap { .. })));
    // Wednesday at 08:00 UTC the cap has room but the window (09:00-18:00) is closed:
    // deferred to 09:00.
    let early = run.event("visit", at(44 * 3600));
    assert_eq!(sends(&early)[0].1, Status::Deferred);
    assert_eq!(early.effects[0].decision.as_ref().unwrap().until, Some(at(45 * 3600)));
    // An invalid address marks do-not-contact on the channel only.
    let _ = run.event("wa_failed", at(46 * 3600));
    assert!(run.state.policy().do_not_contact(Some(whatsapp)).is_some());
    let after = run.event("visit", at(47 * 3600));
    assert_eq!(sends(&after)[0].1, Status::Suppressed);
    assert_eq!(sends(&after)[1].1, Status::Ready, "email is not affected");
    // The state, custom channel included, survives a snapshot.
    let json = serde_json::to_string(&run.state).unwrap();
    let back: nurture::engine::ContactState = serde_json::from_str(&json).unwrap();
    assert_eq!(back, run.state);
}

#[test]
fn an_undeclared_channel_is_an_error_with_a_suggestion() {
    let doc = WHATSAPP.replace(r#""channel": "whatsapp", "template""#, r#""channel": "emial", "template""#);
    let error = Program::from_json(&doc).unwrap_err();
    let d = error.diagnostics.iter().find(|d| d.path == "/rules/0/actions/0/channel").expect("a diagnostic");
    assert!(d.message.contains("`emial`"), "{}", d.message);
    assert_eq!(d.did_you_mean.as_deref(), Some("email"));
    // Undeclared in a cap too, and every problem is reported at once.
    let doc = doc.replace(r#""channel": "whatsapp", "over""#, r#""channel": "telegram", "over""#);
    let error = Program::from_json(&doc).unwrap_err();
    let paths: Vec<&str> = error.diagnostics.iter().map(|d| d.path.as_str()).collect();
    assert!(paths.contains(&"/rules/0/actions/0/channel"), "{paths:?}");
    assert!(paths.contains(&"/policy/caps/0/channel"), "{paths:?}");
}

#[test]
fn a_channel_name_that_cannot_be_one_is_refused_at_its_path() {
    for bad in ["WhatsApp", "", "x-y", "a_very_long_channel_name_indeed", "9lives"] {
        let doc = WHATSAPP
            .replace(r#""channel": "whatsapp", "template""#, &format!(r#""channel": "{bad}", "template""#));
        let error = Program::from_json(&doc).unwrap_err();
        assert!(
            error.diagnostics.iter().any(|d| d.path == "/rules/0/actions/0/channel"),
            "{bad}: {:?}",
            error.diagnostics
        );
    }
    assert!("whatsapp".parse::<Channel>().is_ok());
    assert_eq!("in_app".parse::<Channel>().unwrap(), Channel::InApp);
}

const PRIORITIES: &str = r#"{
  "version": 1,
  "schema": {"events": {"visit": {}}},
  "rules": [
    {"id": "low", "on": "visit", "actions": [{"type": "send", "channel": "email", "template": "newsletter", "priority": 1}]},
    {"id": "mid", "on": "visit", "actions": [{"type": "send", "channel": "email", "template": "webinar", "priority": 5}]},
    {"id": "high", "on": "visit", "actions": [{"type": "send", "channel": "email", "template": "renewal", "priority": 9}]}
  ],
  "policy": {
    "channels": [{"channel": "email", "consent": "opt_out"}],
    "caps": [{"id": "two-a-day", "max": 2, "per": "1d", "over": "drop"}]
  }
}"#;

#[test]
fn when_caps_conflict_within_a_step_the_higher_priorities_win() {
    let mut run = Run::new(engine_of(PRIORITIES));
    let out = run.event("visit", at(0));
    // Rule order is low, mid, high; the cap leaves room for two: high and mid go.
    assert_eq!(
        sends(&out),
        [
            ("newsletter".into(), Status::Suppressed),
            ("webinar".into(), Status::Ready),
            ("renewal".into(), Status::Ready)
        ]
    );
    assert!(matches!(out.effects[0].decision.as_ref().unwrap().reason, Some(Reason::Cap { .. })));
}

#[test]
fn equal_priorities_keep_rule_order() {
    let doc = PRIORITIES
        .replace(r#", "priority": 9"#, "")
        .replace(r#", "priority": 5"#, "")
        .replace(r#", "priority": 1"#, "");
    let mut run = Run::new(engine_of(&doc));
    let out = run.event("visit", at(0));
    let statuses: Vec<Status> = sends(&out).into_iter().map(|(_, s)| s).collect();
    assert_eq!(statuses, [Status::Ready, Status::Ready, Status::Suppressed]);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Within one step, no send that went out has a lower priority than a send the cap
    /// stopped, and the cap is never exceeded.
    #[test]
    fn within_a_step_capped_sends_never_outrank_sent_ones(
        priorities in proptest::collection::vec(0u32..5, 1..8),
        max in 1u32..4,
        visits in 1usize..4,
    ) {
        let rules: Vec<String> = priorities
            .iter()
            .enumerate()
            .map(|(i, p)| format!(
                r#"{{"id": "r{i}", "on": "visit", "actions": [{{"type": "send", "channel": "email", "template": "t{i}", "priority": {p}}}]}}"#
            ))
            .collect();
        let doc = format!(
            r#"{{"version": 1, "schema": {{"events": {{"visit": {{}}}}}}, "rules": [{}],
               "policy": {{"channels": [{{"channel": "email", "consent": "opt_out"}}],
                          "caps": [{{"id": "c", "max": {max}, "per": "1d", "over": "drop"}}]}}}}"#,
            rules.join(",")
        );
        let mut run = Run::new(engine_of(&doc));
        let mut sent = 0;
        for v in 0..visits {
            let out = run.event("visit", at(v as i64 * 60));
            let priority_of = |e: &Effect| {
                let t = template(e).unwrap();
                priorities[t[1..].parse::<usize>().unwrap()]
            };
            let ready: Vec<u32> = out.effects.iter().filter(|e| e.status == Status::Ready).map(priority_of).collect();
            let capped: Vec<u32> = out.effects.iter().filter(|e| e.status == Status::Suppressed).map(priority_of).collect();
            if let (Some(low_sent), Some(high_capped)) = (ready.iter().min(), capped.iter().max()) {
                prop_assert!(low_sent >= high_capped, "sent {ready:?}, capped {capped:?}");
            }
            sent += ready.len();
            prop_assert!(sent <= max as usize);
        }
    }
}
