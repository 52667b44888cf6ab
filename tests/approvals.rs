//! Approval for any action kind: a held action changes nothing until it is approved;
//! the approval is a step that applies it, with what it causes, after checking the
//! rule's condition again; rejected or expired, it never takes effect.

use std::sync::Arc;

use nurture::engine::{Approval, ContactState, Effect, Engine, EngineScratch, Outcome, Status};
use nurture::host::{MemoryStore, RecordingDelivery, Runtime};
use nurture::id::ContactId;
use nurture::policy::Reason;
use nurture::{Contact, Program, Timestamp};

const T0: i64 = 1_772_452_800;

fn at(secs: i64) -> Timestamp {
    Timestamp::from_unix(T0 + secs, 0).unwrap()
}

const HELD: &str = r#"{
  "version": 1,
  "schema": {"contact": {"vip": "bool", "title": "string"}, "events": {"demo": {}, "ping": {}}},
  "scoring": {"models": [{"id": "fit", "groups": [{"id": "manual"}]}]},
  "rules": [
    {"id": "flag", "on": "demo", "when": "!has(contact.vip) || !contact.vip", "actions": [
      {"type": "add_tag", "tag": "sales-ready", "needs_approval": true},
      {"type": "set_lifecycle_stage", "stage": "opportunity", "needs_approval": true},
      {"type": "adjust_score", "score": "fit", "points": 25, "needs_approval": true},
      {"type": "set_attribute", "field": "title", "value": "Champion", "needs_approval": true},
      {"type": "add_to_list", "list": "watch"}]},
    {"id": "on-tag", "on": {"tag": "sales-ready"}, "actions": [
      {"type": "notify_owner", "message": "sales-ready"}]}
  ],
  "policy": {"approval_expires": "2d"}
}"#;

fn engine() -> Engine {
    Engine::new(Arc::new(Program::from_json(HELD).expect("valid rules"))).with_lifecycle_stages([
        "lead",
        "opportunity",
        "customer",
    ])
}

fn demo(engine: &Engine, id: &str, t: Timestamp) -> nurture::Event {
    engine.program().schema().event(id, "c1", "demo", t).unwrap().build()
}

fn held(engine: &Engine) -> (Contact, ContactState, EngineScratch, Outcome) {
    let contact = engine.program().schema().contact("c1").build();
    let mut state = engine.new_state(&contact, at(0));
    let mut scratch = EngineScratch::default();
    let out = engine.handle_event(&mut state, &contact, &demo(engine, "e1", at(10)), &mut scratch).unwrap();
    (contact, state, scratch, out)
}

fn kind_names(effects: &[Effect]) -> Vec<String> {
    effects.iter().map(|e| e.kind.to_string()).collect()
}

#[test]
fn held_actions_change_nothing_until_approved() {
    let engine = engine();
    let (_, state, _, out) = held(&engine);
    let statuses: Vec<Status> = out.effects.iter().map(|e| e.status).collect();
    assert_eq!(
        statuses,
        [
            Status::PendingApproval,
            Status::PendingApproval,
            Status::PendingApproval,
            Status::PendingApproval,
            Status::Ready
        ]
    );
    assert!(!state.has_tag("sales-ready"));
    assert_eq!(state.stage(), None);
    assert_eq!(engine.score(&state, "fit", at(10)), Some(0.0));
    assert!(out.contact.is_none(), "the attribute is not set");
    assert_eq!(state.lists().collect::<Vec<_>>(), ["watch"], "the unheld action applies");
    assert_eq!(state.pending().len(), 4);
}

#[test]
fn an_approval_applies_the_action_and_what_it_causes_in_one_step() {
    let engine = engine();
    let (contact, mut state, mut scratch, out) = held(&engine);
    let tag = out.effects[0].key;
    let approved = engine
        .approve_with(&mut state, &contact, tag, Approval::by("ana").with_note("go"), at(60), &mut scratch)
        .unwrap()
        .expect("held");
    assert_eq!(approved.effects[0].key, tag);
    assert_eq!(approved.effects[0].status, Status::Ready);
    assert_eq!(approved.effects[0].approval.as_ref().unwrap().approver, "ana");
    assert!(state.has_tag("sales-ready"));
    // The tag starts its rule in the same step.
    assert_eq!(kind_names(&approved.effects[1..]), ["action on-tag#0"]);
    assert!(matches!(approved.effects[1].cause, nurture::engine::Cause::Approval { key, .. } if key == tag));

    // The stage, the score and the attribute take effect when approved.
    let stage = out.effects[1].key;
    let _ = engine.approve(&mut state, &contact, stage, at(61), &mut scratch).unwrap().unwrap();
    assert_eq!(state.stage(), Some("opportunity"));
    let score = out.effects[2].key;
    let _ = engine.approve(&mut state, &contact, score, at(62), &mut scratch).unwrap().unwrap();
    assert_eq!(engine.score(&state, "fit", at(62)), Some(25.0));
    let title = out.effects[3].key;
    let set = engine.approve(&mut state, &contact, title, at(63), &mut scratch).unwrap().unwrap();
    let changed = set.contact.expect("the contact with its new title");
    let title_now = engine.program().schema().attribute(&changed, "title").cloned();
    assert_eq!(title_now, Some(nurture::Value::from("Champion")));
    assert!(state.pending().is_empty());
    // Approving again finds nothing, and changes nothing.
    let before = state.clone();
    assert!(engine.approve(&mut state, &contact, tag, at(64), &mut scratch).unwrap().is_none());
    assert_eq!(state, before);
}

#[test]
fn an_approval_rechecks_the_condition_and_reports_an_action_that_cannot_apply() {
    // The contact became a VIP: the rule's condition no longer holds.
    let engine = engine();
    let (_, mut state, mut scratch, out) = held(&engine);
    let vip = engine.program().schema().contact("c1").set("vip", true).unwrap().build();
    let refused =
        engine.approve(&mut state, &vip, out.effects[0].key, at(60), &mut scratch).unwrap().unwrap();
    assert_eq!(refused.effects[0].status, Status::Suppressed);
    assert_eq!(refused.effects[0].decision.as_ref().unwrap().reason, Some(Reason::ConditionFailed));
    assert!(!state.has_tag("sales-ready"));

    // An engine without the stage: approved, but it cannot take effect.
    let other = Engine::new(engine.program().clone()).with_lifecycle_stages(["lead"]);
    let (contact, mut state, mut scratch, out) = held(&other);
    let failed =
        other.approve(&mut state, &contact, out.effects[1].key, at(60), &mut scratch).unwrap().unwrap();
    assert_eq!(failed.effects[0].status, Status::Suppressed);
    let reason = failed.effects[0].decision.as_ref().unwrap().reason.clone();
    assert!(
        matches!(&reason, Some(Reason::NotApplied { message }) if message.contains("opportunity")),
        "{reason:?}"
    );
    assert_eq!(state.stage(), None);
}

#[test]
fn rejected_or_expired_held_actions_never_take_effect() {
    let engine = engine();
    let (contact, mut state, mut scratch, out) = held(&engine);
    let rejected = engine.reject(&mut state, out.effects[0].key).expect("held");
    assert_eq!(rejected.key, out.effects[0].key);
    assert!(!state.has_tag("sales-ready"));
    // Two days later the others expire, once each, and apply nothing.
    let expired = engine.handle_timeout(&mut state, &contact, at(10 + 2 * 86_400), &mut scratch).unwrap();
    assert_eq!(expired.effects.len(), 3);
    assert!(expired.effects.iter().all(|e| e.status == Status::Suppressed));
    assert!(expired
        .effects
        .iter()
        .all(|e| matches!(e.decision.as_ref().unwrap().reason, Some(Reason::ApprovalExpired { .. }))));
    assert_eq!(state.stage(), None);
    assert_eq!(engine.score(&state, "fit", at(10 + 2 * 86_400)), Some(0.0));
    assert!(engine
        .approve(&mut state, &contact, out.effects[1].key, at(10 + 2 * 86_400), &mut scratch)
        .unwrap()
        .is_none());
}

#[test]
fn the_runtime_delivers_an_approval_and_what_it_caused() {
    let engine = Arc::new(engine());
    let schema = engine.program().schema().clone();
    let mut rt = Runtime::new(engine.clone(), MemoryStore::new(), RecordingDelivery::default(), at(0));
    let c1 = ContactId::from("c1");
    rt.add_contact(schema.contact("c1").build()).unwrap();
    let out = rt.ingest(&demo(&engine, "e1", at(10))).unwrap();
    let held: Vec<_> =
        out.effects.iter().filter(|e| e.status == Status::PendingApproval).map(|e| e.key).collect();
    assert_eq!(held.len(), 4);
    let before = rt.delivery().delivered.len();
    assert!(rt.approve(&c1, held[0]).unwrap());
    let delivered = &rt.delivery().delivered[before..];
    assert_eq!(kind_names(delivered), ["action flag#0", "action on-tag#0"]);
    assert!(!rt.approve(&c1, held[0]).unwrap(), "only once");
}
