//! The host runtime: timers in order, deliveries that fail are kept and retried,
//! compare-and-swap conflicts are retried, approvals, and a program replaced while
//! running adopts existing states by stable ids.

use std::sync::Arc;

use nurture::engine::{Effect, EffectKind, Engine, Status};
use nurture::host::{
    ContactStore, DeliveryError, MemoryStore, RecordingDelivery, Runtime, StoreError, StoredContact,
    Versioned,
};
use nurture::{ContactId, Program, Timestamp};

const DAY: i64 = 86_400;
const T0: i64 = 1_767_225_600;

fn document(extra_rule: &str) -> String {
    format!(
        r#"{{
      "version": 1,
      "schema": {{"contact": {{"plan": "string"}}, "events": {{"visit": {{}}, "demo": {{}}}}, "scores": ["engagement"]}},
      "rules": [
        {{"id": "mql", "on": {{"score": "engagement", "threshold": "mql"}},
         "actions": [{{"type": "notify_owner", "message": "MQL", "needs_approval": true}}]}},
        {{"id": "cold", "on": {{"score": "engagement", "threshold": "mql", "direction": "down"}},
         "actions": [{{"type": "add_tag", "tag": "cold"}}]}},
        {{"id": "win-back", "on": {{"inactive": "*", "for": "20d"}},
         "actions": [{{"type": "send", "channel": "email", "template": "win-back"}}]}}
        {extra_rule}
      ],
      "scoring": {{"models": [{{"id": "engagement", "cap": 100, "decay": {{"half_life": "5d"}},
        "rules": [{{"id": "v", "on": "visit", "points": 10}}, {{"id": "d", "on": "demo", "points": 30}}],
        "thresholds": [{{"id": "mql", "enter": 35, "exit": 25}}]}}]}}
    }}"#
    )
}

fn engine(extra_rule: &str) -> Arc<Engine> {
    Arc::new(Engine::new(Arc::new(Program::from_json(&document(extra_rule)).expect("valid"))))
}

fn at(secs: i64) -> Timestamp {
    Timestamp::from_unix(T0 + secs, 0).unwrap()
}

fn action_templates(effects: &[Effect]) -> Vec<String> {
    effects
        .iter()
        .filter_map(|e| match &e.kind {
            EffectKind::Action { rule, .. } => Some(rule.as_str().to_string()),
            EffectKind::ThresholdCrossed { direction, .. } => Some(format!("mql {direction:?}")),
            _ => None,
        })
        .collect()
}

#[test]
fn wake_ups_fire_in_order_and_approvals_deliver() {
    let engine = engine("");
    let schema = engine.program().schema().clone();
    let mut rt = Runtime::new(engine, MemoryStore::new(), RecordingDelivery::default(), at(0));
    for id in ["a", "b"] {
        rt.add_contact(schema.contact(id).build()).unwrap();
    }
    let event =
        |id: &str, who: &str, kind: &str, secs: i64| schema.event(id, who, kind, at(secs)).unwrap().build();
    let o = rt.ingest(&event("e1", "a", "demo", 10)).unwrap();
    assert!(o.effects.is_empty());
    let o = rt.ingest(&event("e2", "a", "visit", 20)).unwrap();
    let pending = o
        .effects
        .iter()
        .find(|e| e.status == Status::PendingApproval)
        .expect("MQL alert awaits approval")
        .key;
    let _ = rt.ingest(&event("e3", "b", "visit", 30)).unwrap();
    assert!(rt.approve(&ContactId::from("a"), pending).unwrap());
    assert!(!rt.approve(&ContactId::from("a"), pending).unwrap(), "only once");
    // Forty quiet days: `a` falls below the exit, both are won back, in time order.
    rt.advance_to(at(40 * DAY)).unwrap();
    let delivered = action_templates(&rt.delivery().delivered);
    assert_eq!(delivered, ["mql Up", "mql", "mql Down", "cold", "win-back", "win-back"]);
    let times: Vec<Timestamp> = rt.delivery().delivered.iter().map(|e| e.at).collect();
    assert!(times.windows(2).all(|w| w[0] <= w[1]), "{times:?}");
    assert!(rt.store().get(&ContactId::from("a")).unwrap().state.has_tag("cold"));
}

#[test]
fn failed_deliveries_are_kept_and_retried() {
    let engine = engine("");
    let schema = engine.program().schema().clone();
    let mut fail = true;
    let mut seen: Vec<Effect> = Vec::new();
    let delivery = move |e: &Effect| {
        if fail {
            fail = false;
            return Err(DeliveryError { message: "smtp down".into() });
        }
        seen.push(e.clone());
        Ok(())
    };
    let mut rt = Runtime::new(engine, MemoryStore::new(), delivery, at(0));
    rt.add_contact(schema.contact("a").build()).unwrap();
    rt.advance_to(at(25 * DAY)).unwrap(); // win-back: fails the first time
    assert_eq!(rt.failed().count(), 1);
    assert_eq!(rt.stats().failures, 1);
    assert_eq!(rt.retry_failed(), 1);
    assert_eq!(rt.failed().count(), 0);
}

/// A store whose first save of each step loses a race to another writer.
struct Racy {
    inner: MemoryStore,
    raced: bool,
}

impl ContactStore for Racy {
    fn load(&mut self, id: &ContactId) -> Result<Option<Versioned<StoredContact>>, StoreError> {
        self.inner.load(id)
    }
    fn save(
        &mut self,
        id: &ContactId,
        value: StoredContact,
        expected: Option<u64>,
    ) -> Result<u64, StoreError> {
        if expected.is_some() && !self.raced {
            self.raced = true;
            // Someone else writes the same contact first.
            let current = self.inner.load(id)?.expect("stored");
            self.inner.save(id, current.value, Some(current.version))?;
        } else {
            self.raced = false;
        }
        self.inner.save(id, value, expected)
    }
}

#[test]
fn lost_compare_and_swap_races_are_retried() {
    let engine = engine("");
    let schema = engine.program().schema().clone();
    let store = Racy { inner: MemoryStore::new(), raced: true };
    let mut rt = Runtime::new(engine.clone(), store, RecordingDelivery::default(), at(0));
    rt.add_contact(schema.contact("a").build()).unwrap();
    let _ = rt.ingest(&schema.event("e1", "a", "demo", at(10)).unwrap().build()).unwrap();
    let _ = rt.ingest(&schema.event("e2", "a", "visit", at(20)).unwrap().build()).unwrap();
    assert!(rt.stats().conflicts >= 2);
    let stored = rt.store().inner.get(&ContactId::from("a")).unwrap();
    let value = engine.program().scorer().unwrap().value(stored.state.scores().unwrap(), 0, at(20)).unwrap();
    // 30 points ten seconds earlier (5-day half-life), plus 10: saved once each.
    assert!((value - 39.9995).abs() < 1e-3, "{value}");
}

#[test]
fn a_replaced_program_adopts_states_by_id() {
    let engine_a = engine("");
    let schema = engine_a.program().schema().clone();
    let mut rt = Runtime::new(engine_a, MemoryStore::new(), RecordingDelivery::default(), at(0));
    rt.add_contact(schema.contact("a").build()).unwrap();
    let _ = rt.ingest(&schema.event("e1", "a", "demo", at(10)).unwrap().build()).unwrap();
    // Program B: the same score model, one rule more.
    let engine_b =
        engine(r#", {"id": "visit-tag", "on": "visit", "actions": [{"type": "add_tag", "tag": "visited"}]}"#);
    rt.replace_engine(engine_b.clone());
    let o = rt.ingest(&schema.event("e2", "a", "visit", at(20)).unwrap().build()).unwrap();
    // The 30 demo points were kept: with the visit's 10 they cross the MQL threshold of 35.
    assert!(
        action_templates(&o.effects).contains(&"mql Up".to_string()),
        "{:?}",
        action_templates(&o.effects)
    );
    let state = &rt.store().get(&ContactId::from("a")).unwrap().state;
    assert!(state.has_tag("visited"));
    assert!(engine_b.fits(state));
}

#[test]
fn contacts_round_trip_through_json_for_stores() {
    use nurture::{Type, Value};
    let schema = nurture::Schema::builder()
        .contact_field("tags", Type::list(Type::String))
        .contact_field("score", Type::Double)
        .contact_field("seen", Type::Duration)
        .build()
        .unwrap();
    let c = schema
        .contact("c")
        .set("tags", Value::list([Value::from("a"), Value::from("b")]))
        .unwrap()
        .set("score", 0.1 + 0.2)
        .unwrap()
        .set("seen", nurture::Duration::from_secs(90).unwrap())
        .unwrap()
        .build();
    let json = schema.contact_to_json(&c).unwrap();
    assert_eq!(schema.contact_from_json(&json).unwrap(), c);
    let bad = schema.contact("c").set("score", f64::NAN).unwrap().build();
    assert!(schema.contact_to_json(&bad).is_err(), "NaN has no JSON form");
    let unknown = serde_json::json!({"id": "c", "attributes": {"colour": "red"}});
    assert!(schema.contact_from_json(&unknown).is_err());
}

#[test]
fn rescheduling_after_a_program_change_wakes_new_time_rules() {
    // Program A has nothing time-based for a contact without events...
    let plain = r#"{"version": 1, "schema": {"events": {"visit": {}}}, "rules": []}"#;
    let engine_a = Arc::new(Engine::new(Arc::new(Program::from_json(plain).unwrap())));
    let schema = engine_a.program().schema().clone();
    let mut rt = Runtime::new(engine_a, MemoryStore::new(), RecordingDelivery::default(), at(0));
    rt.add_contact(schema.contact("a").build()).unwrap();
    assert_eq!(rt.scheduled(), 0);
    // ...program B adds an inactivity rule: rescheduling finds its deadline.
    let with_rule = r#"{"version": 1, "schema": {"events": {"visit": {}}},
      "rules": [{"id": "nudge", "on": {"inactive": "*", "for": "10d"},
                 "actions": [{"type": "send", "channel": "email", "template": "nudge"}]}]}"#;
    rt.replace_engine(Arc::new(Engine::new(Arc::new(Program::from_json(with_rule).unwrap()))));
    assert_eq!(rt.reschedule(&ContactId::from("a")).unwrap(), Some(at(10 * DAY)));
    rt.advance_to(at(11 * DAY)).unwrap();
    assert_eq!(action_templates(&rt.delivery().delivered), ["nudge"]);
}
