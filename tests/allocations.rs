//! No allocation per event once a contact's state has grown (issue 10, item 4): after
//! warm-up (every rule has awarded, the explanation ledger and the duplicate window are
//! full), an event that changes scores without crossing anything allocates nothing in
//! the scorer and nothing in the engine. What still allocates is state growing on first
//! touch, and effects (their strings), which an event that emits none does not pay for.
//!
//! The count is per thread (the test harness runs tests on threads of their own). `.ci/run`
//! runs this file in a release build too, where the engine takes no copy of the state.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::sync::Arc;

use nurture::engine::{Engine, EngineScratch};
use nurture::scoring::ScoreScratch;
use nurture::{Contact, Event, Program, Schema, Timestamp};

struct Counting;

thread_local! {
    static ALLOCATIONS: Cell<u64> = const { Cell::new(0) };
}

// SAFETY: every call is passed on to the system allocator unchanged; the counter is a
// `const`-initialised thread-local, which does not allocate.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.with(|c| c.set(c.get() + 1));
        // SAFETY: the caller's contract is the system allocator's.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: as above.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCATIONS.with(|c| c.set(c.get() + 1));
        // SAFETY: as above.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static COUNTING: Counting = Counting;

fn allocations() -> u64 {
    ALLOCATIONS.with(Cell::get)
}

/// Two groups with different half-lives, a cap high enough never to bind, a threshold
/// no score here reaches, rules with and without repeat memory and conditions.
const RULES: &str = r#"{
  "version": 1,
  "schema": {
    "contact": {"company_size": "int"},
    "events": {"page_visit": {"url": "string"}, "email_clicked": {"campaign": "string"}},
    "scores": ["engagement"]
  },
  "rules": [],
  "scoring": {"models": [{
    "id": "engagement", "cap": 100000,
    "groups": [
      {"id": "behaviour", "decay": {"half_life": "30d"}},
      {"id": "intent", "decay": {"half_life": "3d"}}
    ],
    "rules": [
      {"id": "visit", "on": "page_visit", "points": 1, "group": "behaviour"},
      {"id": "pricing", "on": "page_visit", "when": "event.url == '/pricing'", "points": 3, "group": "intent"},
      {"id": "docs", "on": "page_visit", "when": "event.url.startsWith('/docs')", "points": 2,
       "group": "behaviour", "repeat": {"max": 2, "per": "1d"}},
      {"id": "click", "on": "email_clicked", "points": 2, "group": "intent", "min_interval": "1h"}
    ],
    "thresholds": [{"id": "never", "enter": 90000, "exit": 80000, "rearm": "every_crossing"}]
  }]}
}"#;

const T0: i64 = 1_767_225_600;

fn program() -> Arc<Program> {
    Arc::new(Program::from_json(RULES).unwrap_or_else(|e| panic!("{}", e.render())))
}

/// The `n`th event of a contact's stream: visits to three pages and clicks, 17 minutes
/// apart.
fn event(schema: &Schema, n: u64) -> Event {
    let at = Timestamp::from_unix(T0 + 1_020 * n as i64, 0).unwrap();
    let id = format!("e{n}");
    match n % 4 {
        0 => schema.event(id, "c", "page_visit", at).unwrap().set("url", "/pricing").unwrap().build(),
        1 => schema.event(id, "c", "page_visit", at).unwrap().set("url", "/docs/setup").unwrap().build(),
        2 => schema.event(id, "c", "email_clicked", at).unwrap().set("campaign", "spring").unwrap().build(),
        _ => schema.event(id, "c", "page_visit", at).unwrap().set("url", "/blog").unwrap().build(),
    }
}

fn contact(schema: &Schema) -> Contact {
    schema.contact("c").set("company_size", 50i64).unwrap().build()
}

/// Allocations while handling events `from..to` (built beforehand, outside the count).
fn count(events: &[Event], mut handle: impl FnMut(&Event)) -> u64 {
    let before = allocations();
    for event in events {
        handle(event);
    }
    allocations() - before
}

#[test]
fn the_scorer_allocates_nothing_per_event_once_the_state_has_grown() {
    let program = program();
    let scorer = program.scorer().expect("a scorer");
    let schema = program.schema();
    let c = contact(schema);
    let mut state = scorer.new_state(Timestamp::from_unix(T0, 0).unwrap());
    let mut scratch = ScoreScratch::default();
    let warm: Vec<Event> = (0..400).map(|n| event(schema, n)).collect();
    let awards = count(&warm, |e| {
        let _ = scorer.handle_event(&mut state, &c, e, &mut scratch).expect("in order");
    });
    assert!(awards > 0, "warm-up grows the state (the ledger, repeat memory)");
    let measured: Vec<Event> = (400..2_400).map(|n| event(schema, n)).collect();
    let mut changes = 0;
    let allocated = count(&measured, |e| {
        let update = scorer.handle_event(&mut state, &c, e, &mut scratch).expect("in order");
        assert!(update.crossings.is_empty());
        changes += update.changes.len();
    });
    assert!(changes >= measured.len(), "every event awards: {changes}");
    assert_eq!(allocated, 0, "allocations in {} scorer events after warm-up", measured.len());
}

#[test]
fn the_engine_allocates_nothing_per_event_that_emits_no_effect() {
    let program = program();
    let engine = Engine::new(program.clone());
    let schema = program.schema();
    let c = contact(schema);
    let mut state = engine.new_state(&c, Timestamp::from_unix(T0, 0).unwrap());
    let mut scratch = EngineScratch::default();
    // Past the duplicate window, so that remembering an event id replaces the oldest.
    let warm: Vec<Event> =
        (0..nurture::engine::DEDUP_WINDOW as u64 + 400).map(|n| event(schema, n)).collect();
    let _ = count(&warm, |e| {
        let _ = engine.handle_event(&mut state, &c, e, &mut scratch).expect("in order");
    });
    let from = warm.len() as u64;
    let measured: Vec<Event> = (from..from + 2_000).map(|n| event(schema, n)).collect();
    // Builds with debug assertions copy the state before every step, to check that a
    // step judged safe changes nothing when it fails: those copies are all they allocate.
    let per_copy = {
        let before = allocations();
        drop(state.clone());
        allocations() - before
    };
    let allocated = count(&measured, |e| {
        let outcome = engine.handle_event(&mut state, &c, e, &mut scratch).expect("in order");
        assert!(outcome.effects.is_empty() && !outcome.duplicate);
    });
    let copies = if cfg!(debug_assertions) { per_copy * measured.len() as u64 } else { 0 };
    assert_eq!(allocated, copies, "allocations in {} engine events after warm-up", measured.len());
}
