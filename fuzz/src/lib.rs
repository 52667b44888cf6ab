//! The fuzz targets, shared by the cargo-fuzz binaries (`fuzz/fuzz_targets/`, nightly)
//! and the stable replay harness (`tests/fuzz.rs`), which includes this file as a
//! module. Each target states invariants, not only "no panic":
//!
//! - `documents`: a refused document has diagnostics, each with a message and a path or
//!   span; an accepted one runs an event of every type, and the state it leaves reloads
//!   equal from its JSON;
//! - `expressions`: evaluating twice gives the same result, the fused-predicate path
//!   (`eval_bool`) agrees with the general evaluator, diagnostics point inside the text;
//! - `events`: a random sequence of events, wake-ups, approvals and attribute changes on
//!   a rich rule set: a refused step changes nothing, the state always reloads equal,
//!   stays under its documented bound, and replaying gives the same effects;
//! - `snapshots`: a real state's JSON, tampered with; a state that loads and is accepted
//!   by a step leaves a state that loads again.

use std::sync::Arc;

use nurture::engine::{ContactState, Engine, EngineScratch};
use nurture::expr::{Activation, Env};
use nurture::{Contact, Limits, Program, Timestamp, Type, Value};

const T0: i64 = 1_767_225_600;

fn at(secs: i64) -> Timestamp {
    Timestamp::from_unix(T0 + secs, 0).expect("a fixed, valid instant")
}

/// Limits small enough that one input runs in milliseconds.
fn fuzz_limits() -> Limits {
    Limits { max_eval_steps: 200_000, max_document_len: 1 << 20, ..Limits::default() }
}

fn check_refusal(err: &nurture::CompileError, text: &str) {
    assert!(!err.diagnostics.is_empty(), "a refusal without a diagnostic");
    for d in &err.diagnostics {
        assert!(!d.message.is_empty(), "an empty diagnostic message");
        if let Some(span) = d.span {
            assert!(span.start <= span.end, "a reversed span {span:?}");
        }
    }
    assert!(!err.render().is_empty());
    let _ = text;
}

fn reloads(state: &ContactState) {
    let json = serde_json::to_string(state).expect("a state serialises");
    let back: ContactState = serde_json::from_str(&json)
        .unwrap_or_else(|e| panic!("a state the engine wrote does not load: {e}\n{json}"));
    assert_eq!(&back, state, "a state changed through its JSON");
}

/// Runs one event of every type through `program` and checks the state's round trip.
fn exercise(program: Program) {
    let engine = Engine::new(Arc::new(program));
    let schema = engine.program().schema_arc().clone();
    let contact = schema.contact("c").build();
    let mut state = engine.new_state(&contact, at(0));
    let mut scratch = EngineScratch::default();
    let names: Vec<String> = schema.event_types().map(|t| t.name().as_str().to_string()).collect();
    for (n, name) in names.iter().enumerate().take(16) {
        let Ok(builder) = schema.event(format!("e{n}"), "c", name, at(n as i64)) else {
            continue;
        };
        let before = state.clone();
        if engine.handle_event(&mut state, &contact, &builder.build(), &mut scratch).is_err() {
            assert_eq!(state, before, "a refused event changed the state");
        }
    }
    reloads(&state);
}

/// A rule-set document, as JSON and as TOML.
pub fn documents(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let limits = fuzz_limits();
    match Program::from_json_with_limits(text, &limits) {
        Ok(program) => exercise(program),
        Err(err) => check_refusal(&err, text),
    }
    #[cfg(feature = "toml")]
    match Program::from_toml_with_limits(text, &limits) {
        Ok(program) => exercise(program),
        Err(err) => check_refusal(&err, text),
    }
}

fn expression_env() -> Env {
    let env = Env::new().with_limits(fuzz_limits());
    [
        ("i", Type::Int),
        ("d", Type::Double),
        ("s", Type::String),
        ("b", Type::Bool),
        ("l", Type::list(Type::Int)),
        ("m", Type::map(Type::String, Type::Int)),
        ("t", Type::Timestamp),
    ]
    .into_iter()
    .fold(env, |env, (name, ty)| env.with_variable(name, ty).expect("distinct names"))
}

/// An expression over a few typed variables, whose values come from the input's length.
pub fn expressions(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let env = expression_env();
    let expr = match env.compile(text) {
        Ok(expr) => expr,
        Err(err) => {
            check_refusal(&err, text);
            for d in &err.diagnostics {
                if let Some(span) = d.span {
                    assert!(span.end as usize <= text.len() + 1, "a span past the text: {span:?}");
                }
            }
            return;
        }
    };
    let seed = data.len() as i64;
    let mut map = nurture::value::Map::new();
    map.insert(Value::from("a"), Value::Int(seed));
    let vars = env
        .bind([
            ("i", Value::Int(seed - 3)),
            ("d", Value::Double(seed as f64 / 3.0)),
            ("s", Value::from(text.chars().take(8).collect::<String>())),
            ("b", Value::Bool(seed % 2 == 0)),
            ("l", Value::List((0..seed % 7).map(Value::Int).collect::<Vec<_>>().into())),
            ("m", Value::Map(Arc::new(map))),
            ("t", Value::Timestamp(at(seed))),
        ])
        .expect("values of the declared types");
    let act = Activation::new().with_variables(&vars).with_now(at(0));
    let first = expr.eval(&act);
    let second = expr.eval(&act);
    let describe = |r: &Result<Value, nurture::expr::EvalError>| match r {
        Ok(v) => format!("ok {v}"),
        Err(e) => format!("error {:?}: {e}", e.kind()),
    };
    assert_eq!(describe(&first), describe(&second), "evaluation is not deterministic: {text:?}");
    if matches!(expr.result_type(), Type::Bool) {
        let fused = expr.eval_bool(&act);
        match (&first, &fused) {
            (Ok(Value::Bool(a)), Ok(b)) => assert_eq!(a, b, "eval_bool disagrees with eval on {text:?}"),
            (Err(_), Err(_)) => {}
            _ => panic!("eval_bool disagrees with eval on {text:?}: {first:?} vs {fused:?}"),
        }
    }
}

/// A rule set with every per-contact collection: scores with decay and a timeframe,
/// thresholds, bands, counters, repeat caps, segments, approvals, attribute triggers.
pub const RICH_DOCUMENT: &str = r#"{
  "version": 1,
  "schema": {
    "contact": {"plan": "string", "size": "int"},
    "events": {"visit": {"url": "string", "n": "int"}, "form": {"form": "string"}},
    "scores": ["engagement"]
  },
  "counters": [
    {"id": "visits", "on": "visit", "window": "7d", "max": 50},
    {"id": "pricing", "on": "visit", "when": "event.url == '/pricing'", "window": "30d"}
  ],
  "scoring": {"models": [{
    "id": "engagement", "cap": 100,
    "groups": [{"id": "web"}, {"id": "recent", "timeframe": "30d"}],
    "decay": {"half_life": "14d"},
    "rules": [
      {"id": "v", "on": "visit", "points": 3, "group": "web", "repeat": {"max": 20, "per": "1d"}},
      {"id": "p", "on": "visit", "when": "event.url == '/pricing'", "points": 10, "group": "recent"},
      {"id": "f", "on": "form", "points": 25, "repeat": "once"},
      {"id": "big", "fit": "has(contact.size) && contact.size > 100", "points": 5}
    ],
    "thresholds": [{"id": "mql", "enter": 60, "exit": 40}],
    "bands": [{"name": "cold", "from": 0}, {"name": "warm", "from": 30}, {"name": "hot", "from": 70}]
  }]},
  "segments": [
    {"id": "active", "when": "counter.visits >= 3"},
    {"id": "hot", "when": "segment.active && score.engagement >= 50.0"}
  ],
  "rules": [
    {"id": "ask", "on": "form", "when": "event.form == 'demo'",
     "actions": [{"type": "notify_owner", "message": "demo", "needs_approval": true}]},
    {"id": "tag", "on": "visit", "repeat": {"max": 5, "per": "1h"}, "actions": [{"type": "add_tag", "tag": "seen"}]},
    {"id": "upgrade", "on": {"attribute": "plan", "to": "pro"}, "actions": [{"type": "add_to_list", "list": "pro"}]},
    {"id": "mql", "on": {"score": "engagement", "threshold": "mql", "direction": "up"},
     "actions": [{"type": "set_attribute", "field": "plan", "value": "pro"}]}
  ]
}"#;

fn rich_engine() -> &'static Engine {
    static ENGINE: std::sync::OnceLock<Engine> = std::sync::OnceLock::new();
    ENGINE.get_or_init(build_rich_engine)
}

fn build_rich_engine() -> Engine {
    let limits = Limits { max_pending_approvals: 8, ..fuzz_limits() };
    let program = Program::from_json_with_limits(RICH_DOCUMENT, &limits)
        .unwrap_or_else(|e| panic!("the rich document compiles: {}", e.render()));
    Engine::new(Arc::new(program))
}

/// The largest JSON a contact's state for [`RICH_DOCUMENT`] may reach under the limits
/// it was compiled with: every collection at its cap (see `docs/performance.md`).
pub const RICH_STATE_BOUND: usize = 64 << 10;

/// Runs the operations `data` encodes (three bytes each) from a new state, checking the
/// invariants after each; returns the state and every effect's key, in order.
fn drive(engine: &Engine, data: &[u8]) -> (ContactState, Vec<String>, Contact) {
    let schema = engine.program().schema_arc().clone();
    let mut contact = schema.contact("c").build();
    let mut state = engine.new_state(&contact, at(0));
    let mut scratch = EngineScratch::default();
    let mut clock = 0i64;
    let mut keys = Vec::new();
    const URLS: [&str; 4] = ["/pricing", "/docs", "/", "/blog"];
    for (n, op) in data.chunks(3).enumerate().take(400) {
        let (kind, dt, arg) = (op[0], *op.get(1).unwrap_or(&0), *op.get(2).unwrap_or(&0));
        // Steps from a second to a few days, sometimes backwards (late events).
        clock += match dt {
            0..=200 => i64::from(dt) * 60,
            201..=250 => i64::from(dt - 200) * 86_400 / 8,
            _ => -(i64::from(dt - 250) * 600),
        };
        let now = at(clock.max(0));
        let before = state.clone();
        let result = match kind % 6 {
            0 | 1 => schema
                .event(format!("v{n}"), "c", "visit", now)
                .and_then(|b| b.set("url", URLS[usize::from(arg) % 4]))
                .and_then(|b| b.set("n", i64::from(arg)))
                .map(|b| engine.handle_event(&mut state, &contact, &b.build(), &mut scratch)),
            2 => schema
                .event(format!("f{n}"), "c", "form", now)
                .and_then(|b| b.set("form", if arg % 2 == 0 { "demo" } else { "other" }))
                .map(|b| engine.handle_event(&mut state, &contact, &b.build(), &mut scratch)),
            3 => Ok(engine.handle_timeout(&mut state, &contact, now, &mut scratch)),
            4 => {
                let after = schema
                    .contact("c")
                    .set("plan", if arg % 2 == 0 { "pro" } else { "free" })
                    .and_then(|b| b.set("size", i64::from(arg)))
                    .map(|b| b.build());
                match after {
                    Ok(after) => {
                        let r =
                            engine.handle_attribute_change(&mut state, &contact, &after, now, &mut scratch);
                        if r.is_ok() {
                            contact = after;
                        }
                        Ok(r)
                    }
                    Err(e) => Err(e),
                }
            }
            _ => {
                // Approve or reject the oldest pending effect, or re-send an old event.
                if let Some(key) = state.pending().first().map(|e| e.key) {
                    if arg % 2 == 0 {
                        if let Ok(Some(outcome)) =
                            engine.approve(&mut state, &contact, key, now, &mut scratch)
                        {
                            if let Some(c) = outcome.contact {
                                contact = c;
                            }
                        }
                    } else {
                        let _ = engine.reject(&mut state, key);
                    }
                }
                continue;
            }
        };
        match result {
            Ok(Ok(outcome)) => {
                keys.extend(outcome.effects.iter().map(|e| format!("{} {}", e.key, e.kind.name())));
                if let Some(c) = outcome.contact {
                    contact = c;
                }
            }
            Ok(Err(_)) => assert_eq!(state, before, "a refused step changed the state"),
            Err(_) => {}
        }
        if n % 8 != 7 {
            continue;
        }
        let json = serde_json::to_string(&state).expect("a state serialises");
        assert!(
            json.len() <= RICH_STATE_BOUND,
            "the state grew to {} bytes, past its bound of {RICH_STATE_BOUND}",
            json.len()
        );
    }
    reloads(&state);
    (state, keys, contact)
}

/// A sequence of events, wake-ups, approvals and attribute changes.
pub fn events(data: &[u8]) {
    let engine = rich_engine();
    let (state, keys, _) = drive(engine, data);
    let (again, keys_again, _) = drive(engine, data);
    assert_eq!(state, again, "replaying gave another state");
    assert_eq!(keys, keys_again, "replaying gave other effects");
}

/// A real state's JSON, tampered with: the first half of the input builds the state,
/// the second says which bytes of its JSON to overwrite with what.
pub fn snapshots(data: &[u8]) {
    let engine = rich_engine();
    let (build, tamper) = data.split_at(data.len() / 2);
    let (state, _, contact) = drive(engine, build);
    let mut json = serde_json::to_vec(&state).expect("a state serialises");
    for pair in tamper.chunks(2) {
        if let [at_byte, value] = pair {
            if !json.is_empty() {
                let i = usize::from(*at_byte) * json.len() / 256;
                json[i] = *value;
            }
        }
    }
    let Ok(loaded) = serde_json::from_slice::<ContactState>(&json) else {
        return;
    };
    let mut loaded = loaded;
    let mut scratch = EngineScratch::default();
    let now = loaded.last_change();
    let before = loaded.clone();
    match engine.handle_timeout(&mut loaded, &contact, now, &mut scratch) {
        Ok(_) => {
            let written = serde_json::to_string(&loaded).expect("a state serialises");
            if let Err(e) = serde_json::from_str::<ContactState>(&written) {
                panic!("a tampered state was accepted and the engine wrote one that does not load: {e}\n{written}");
            }
        }
        Err(_) => assert_eq!(loaded, before, "a refused wake-up changed the state"),
    }
}
