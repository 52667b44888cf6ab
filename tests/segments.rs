//! Incremental segment membership equals a full re-evaluation: 100,000 contacts and 50
//! segments (attributes, decaying scores, windowed counts, other segments), checked
//! after every batch of events once each contact's due wake-ups were handled.

use std::sync::Arc;

use nurture::engine::{ContactState, Engine, EngineScratch};
use nurture::{Contact, Program, Timestamp};

const T0: i64 = 1_767_225_600;
const CONTACTS: usize = 100_000;
const BATCHES: usize = 3;
const EVENTS_PER_BATCH: usize = 60_000;

fn document() -> String {
    let mut segments = Vec::new();
    for i in 0..50 {
        let when = match i % 5 {
            0 => format!("contact.size >= {}", 100 + (i * 37) % 1000),
            1 => format!("score.engagement >= {}.0", 5 + i % 40),
            2 => format!("counter.visits >= {}", 1 + i % 4),
            3 => format!(
                "contact.country == '{}' && score.engagement > {}.5",
                ["US", "DE", "FR"][i % 3],
                i % 20
            ),
            _ => format!("segment.s{} || segment.s{}", i - 4, i - 3),
        };
        segments.push(format!(r#"{{"id": "s{i}", "when": "{when}"}}"#));
    }
    format!(
        r#"{{
      "version": 1,
      "schema": {{"contact": {{"size": "int", "country": "string"}},
                 "events": {{"visit": {{"page": "int"}}}}, "scores": ["engagement"]}},
      "counters": [{{"id": "visits", "on": "visit", "window": "2d"}}],
      "segments": [{}],
      "scoring": {{"models": [{{"id": "engagement", "cap": 100, "decay": {{"half_life": "1d"}},
        "rules": [{{"id": "v", "on": "visit", "points": 6}},
                  {{"id": "deep", "on": "visit", "when": "event.page > 5", "points": 9}}]}}]}}
    }}"#,
        segments.join(",")
    )
}

/// A small fixed generator (xorshift), so the test is the same everywhere.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

fn at(secs: i64) -> Timestamp {
    Timestamp::from_unix(T0 + secs, 0).unwrap()
}

#[test]
fn incremental_membership_equals_full_reevaluation() {
    let engine = Engine::new(Arc::new(Program::from_json(&document()).expect("valid")));
    let schema = engine.program().schema();
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let contacts: Vec<Contact> = (0..CONTACTS)
        .map(|i| {
            schema
                .contact(format!("c{i}"))
                .set("size", (rng.next() % 1200) as i64)
                .unwrap()
                .set("country", ["US", "DE", "FR", "GB"][(rng.next() % 4) as usize])
                .unwrap()
                .build()
        })
        .collect();
    let mut states: Vec<ContactState> = contacts.iter().map(|c| engine.new_state(c, at(0))).collect();
    let mut wakes: Vec<Option<Timestamp>> = vec![None; CONTACTS];
    let mut scratch = EngineScratch::default();
    let mut now = 0i64;
    let mut event_id = 0u64;
    let mut checked = 0usize;
    for _batch in 0..BATCHES {
        for _ in 0..EVENTS_PER_BATCH {
            now += (rng.next() % 8) as i64;
            // Skewed: a small set of busy contacts gets most events.
            let who = if rng.next() % 3 == 0 {
                (rng.next() % 500) as usize
            } else {
                (rng.next() % CONTACTS as u64) as usize
            };
            let t = at(now);
            // Wake-ups due before this event first, as a host's timer queue would.
            while let Some(w) = wakes[who].filter(|w| *w <= t) {
                wakes[who] = engine
                    .handle_timeout(&mut states[who], &contacts[who], w, &mut scratch)
                    .unwrap()
                    .next_wake;
            }
            event_id += 1;
            let event = schema
                .event(format!("e{event_id}"), format!("c{who}"), "visit", t)
                .unwrap()
                .set("page", (rng.next() % 10) as i64)
                .unwrap()
                .build();
            wakes[who] = engine
                .handle_event(&mut states[who], &contacts[who], &event, &mut scratch)
                .unwrap()
                .next_wake;
        }
        // End of batch: handle every due wake-up, then compare with a full re-evaluation.
        let end = at(now);
        for who in 0..CONTACTS {
            while let Some(w) = wakes[who].filter(|w| *w <= end) {
                wakes[who] = engine
                    .handle_timeout(&mut states[who], &contacts[who], w, &mut scratch)
                    .unwrap()
                    .next_wake;
            }
            let incremental: Vec<&str> = states[who].segments().collect();
            let full = engine.segments_at(&states[who], &contacts[who], end);
            assert_eq!(incremental, full, "contact c{who} at batch end {now}");
            checked += 1;
        }
        // Move the clock on so that decay and windows matter between batches.
        now += 2 * 86_400;
    }
    assert_eq!(checked, CONTACTS * BATCHES);
    // The workload is not trivial: many contacts are in some segment, many in none.
    let members = states.iter().filter(|s| s.segments().next().is_some()).count();
    assert!(members > CONTACTS / 10 && members < CONTACTS, "{members}");
}
