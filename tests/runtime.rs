//! The host runtime: timers in order, deliveries that fail are kept and retried,
//! compare-and-swap conflicts are retried, approvals, and a program replaced while
//! running adopts existing states by stable ids.

use std::sync::Arc;

use nurture::engine::{Effect, EffectKind, Engine, Status};
use nurture::host::{
    ContactStore, DeliveryError, MemoryStore, RecordingDelivery, Runtime, RuntimeError, StoreError,
    StoredContact, Versioned,
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

/// A store in which some contacts fail to load (a contact deleted under the runtime, a
/// row that cannot be read); the list is shared with the test.
struct Broken {
    inner: MemoryStore,
    broken: Arc<std::sync::Mutex<Vec<ContactId>>>,
}

impl ContactStore for Broken {
    fn load(&mut self, id: &ContactId) -> Result<Option<Versioned<StoredContact>>, StoreError> {
        if self.broken.lock().unwrap().contains(id) {
            return Err(StoreError::backend(format!("row of `{}` is unreadable", id.as_str())));
        }
        self.inner.load(id)
    }
    fn save(
        &mut self,
        id: &ContactId,
        value: StoredContact,
        expected: Option<u64>,
    ) -> Result<u64, StoreError> {
        self.inner.save(id, value, expected)
    }
}

#[test]
fn a_failing_wake_up_is_dropped_and_reported_and_the_others_go_on() {
    let engine = engine("");
    let schema = engine.program().schema().clone();
    let broken = Arc::new(std::sync::Mutex::new(Vec::new()));
    let store = Broken { inner: MemoryStore::new(), broken: broken.clone() };
    let mut rt = Runtime::new(engine, store, RecordingDelivery::default(), at(0));
    for id in ["a", "b", "c"] {
        rt.add_contact(schema.contact(id).build()).unwrap();
    }
    // `a`'s row becomes unreadable; its win-back wake-up (day 20) will fail. Before,
    // the failed wake-up was re-queued and its error returned from every later
    // `advance_to` and `ingest`, for every contact.
    broken.lock().unwrap().push(ContactId::from("a"));
    assert_eq!(rt.advance_to(at(20 * DAY)).unwrap(), 2);
    let visit = schema.event("e1", "b", "visit", at(20 * DAY + 10)).unwrap().build();
    let o = rt.ingest(&visit).expect("another contact's failure does not fail this event");
    assert!(!o.duplicate);
    let failures = rt.take_wake_failures();
    assert_eq!(failures.len(), 1, "{failures:?}");
    assert_eq!(failures[0].contact, ContactId::from("a"));
    assert_eq!(failures[0].at, at(20 * DAY));
    assert!(failures[0].error.to_string().contains("unreadable"));
    assert_eq!(rt.stats().dropped_wakeups, 1);
    // `b` and `c` were won back.
    assert_eq!(action_templates(&rt.delivery().delivered), ["win-back", "win-back"]);
    assert!(rt.take_wake_failures().is_empty());
}

#[test]
fn an_event_far_ahead_of_the_clock_is_refused_and_hurts_no_other_contact() {
    let engine = engine("");
    let schema = engine.program().schema().clone();
    let mut rt = Runtime::new(engine, MemoryStore::new(), RecordingDelivery::default(), at(0));
    for id in ["a", "b", "c", "d", "e"] {
        rt.add_contact(schema.contact(id).build()).unwrap();
    }
    // Dated 2500: before, this one event moved the shared clock there, ran every
    // contact's wake-ups up to it, and then refused the others' events as too late.
    let far = Timestamp::parse("2500-01-01T00:00:00Z").unwrap();
    let error = rt.ingest(&schema.event("x", "a", "visit", far).unwrap().build()).unwrap_err();
    assert!(matches!(error, RuntimeError::TooFarAhead { .. }), "{error}");
    assert!(error.to_string().contains("ahead of the clock"), "{error}");
    assert_eq!(rt.clock(), at(0));
    assert_eq!(rt.stats().timeouts, 0);
    assert_eq!(rt.stats().too_far_ahead, 1);
    for (n, id) in ["b", "c", "d", "e"].into_iter().enumerate() {
        let e = schema.event(format!("e{n}"), id, "visit", at(60)).unwrap().build();
        let _ = rt.ingest(&e).expect("ordinary events are taken");
    }
    // Within the limit (raised here), the clock moves.
    let mut rt = rt.with_max_ahead(nurture::Duration::from_days(30).unwrap());
    let e = schema.event("late-ok", "a", "visit", at(29 * DAY)).unwrap().build();
    let _ = rt.ingest(&e).unwrap();
    assert_eq!(rt.clock(), at(29 * DAY));
}

#[test]
fn catch_up_work_per_call_is_bounded() {
    let engine = engine("");
    let schema = engine.program().schema().clone();
    let mut rt = Runtime::new(engine, MemoryStore::new(), RecordingDelivery::default(), at(0))
        .with_max_wakeups_per_call(3);
    for n in 0..10 {
        rt.add_contact(schema.contact(format!("c{n}")).build()).unwrap();
    }
    // Ten win-back wake-ups are due at day 20: three per call, the clock stays before
    // what is still due until the last call.
    let mut calls = Vec::new();
    loop {
        let handled = rt.advance_to(at(30 * DAY)).unwrap();
        calls.push(handled);
        if rt.clock() == at(30 * DAY) {
            break;
        }
        assert_eq!(rt.clock(), at(20 * DAY));
    }
    assert_eq!(calls, [3, 3, 3, 1]);
    assert_eq!(rt.delivery().delivered.len(), 10);
    // An event's own contact is woken before its event even past the limit.
    let mut rt = Runtime::new(rt.engine().clone(), MemoryStore::new(), RecordingDelivery::default(), at(0))
        .with_max_wakeups_per_call(1)
        .with_max_ahead(nurture::Duration::from_days(30).unwrap());
    for n in 0..3 {
        rt.add_contact(schema.contact(format!("c{n}")).build()).unwrap();
    }
    let e = schema.event("e1", "c2", "visit", at(25 * DAY)).unwrap().build();
    let _ = rt.ingest(&e).unwrap();
    let woken: Vec<&str> = rt.delivery().delivered.iter().map(|e| e.contact.as_str()).collect();
    assert_eq!(woken, ["c0", "c2"]);
}

#[test]
fn a_program_change_re_maps_contacts_by_field_name() {
    let doc = |fields: &str| {
        format!(
            r#"{{"version": 1, "schema": {{"contact": {{{fields}}}, "events": {{"visit": {{}}}}}},
              "rules": [{{"id": "pro", "on": "visit", "when": "contact.plan == 'pro'",
                          "actions": [{{"type": "add_tag", "tag": "pro"}}]}}]}}"#
        )
    };
    let old = Arc::new(Engine::new(Arc::new(
        Program::from_json(&doc(r#""plan": "string", "seats": "int""#)).unwrap(),
    )));
    let schema = old.program().schema().clone();
    let mut rt = Runtime::new(old, MemoryStore::new(), RecordingDelivery::default(), at(0));
    rt.add_contact(schema.contact("a").set("plan", "pro").unwrap().set("seats", 5000i64).unwrap().build())
        .unwrap();
    // `age` sorts before `plan`, and `seats` is gone: by position, `plan` would read
    // `Int(5000)`'s neighbour and `contact_to_json` would index past the fields.
    let new = Arc::new(Engine::new(Arc::new(
        Program::from_json(&doc(r#""age": "int", "plan": "string""#)).unwrap(),
    )));
    let schema = new.program().schema().clone();
    rt.replace_engine(new);
    let _ = rt.ingest(&schema.event("e1", "a", "visit", at(10)).unwrap().build()).unwrap();
    let stored = rt.store().get(&ContactId::from("a")).unwrap();
    assert!(stored.state.has_tag("pro"));
    assert_eq!(schema.attribute(&stored.contact, "plan"), Some(&nurture::Value::from("pro")));
    assert_eq!(schema.attribute(&stored.contact, "age"), None);
    let json = schema.contact_to_json(&stored.contact).unwrap();
    assert_eq!(json["attributes"], serde_json::json!({"plan": "pro"}));
    // A contact of another schema is an error, not a panic.
    let other = Program::from_json(&doc(r#""plan": "string", "seats": "int", "zone": "string""#)).unwrap();
    let foreign = other.schema().contact("z").build();
    assert!(schema.contact_to_json(&foreign).is_err());
}
