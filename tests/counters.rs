//! Windowed event counts in conditions and filters.

use nurture::counters::CounterState;
use nurture::{Code, MatchScratch, Program, Timestamp};
use proptest::prelude::*;

const DAY: i64 = 86_400;
const T0: i64 = 1_700_000_000;

fn doc(max: u32) -> String {
    format!(
        r#"{{
  "version": 1,
  "schema": {{"contact": {{"plan": "string"}}, "events": {{"page_visit": {{"url": "string"}}}}}},
  "counters": [
    {{"id": "pricing_7d", "on": "page_visit", "when": "event.url == '/pricing'", "window": "7d", "max": {max}}},
    {{"id": "visits_1h", "on": "page_visit", "window": "1h"}}
  ],
  "rules": [
    {{"id": "hot", "on": "page_visit", "when": "event.url == '/pricing' && counter.pricing_7d >= 3"}},
    {{"id": "binge", "on": "page_visit", "filter": {{"field": "counter.visits_1h", "op": "gte", "value": 5}}}}
  ]
}}"#
    )
}

fn at(secs: i64) -> Timestamp {
    Timestamp::from_unix(T0 + secs, 0).unwrap()
}

#[test]
fn visited_pricing_three_times_in_seven_days() {
    let program = Program::from_json(&doc(1000)).unwrap_or_else(|e| panic!("{}", e.render()));
    let schema = program.schema();
    let contact = schema.contact("c").build();
    let mut counters = program.counters().new_state();
    let mut scratch = MatchScratch::default();
    let mut fired = Vec::new();
    for (n, (day, url)) in
        [(0, "/pricing"), (2, "/docs"), (4, "/pricing"), (9, "/pricing"), (10, "/pricing")].iter().enumerate()
    {
        let e = schema
            .event(format!("e{n}"), "c", "page_visit", at(day * DAY))
            .unwrap()
            .set("url", *url)
            .unwrap()
            .build();
        let m = program.observe_and_match(&contact, &e, e.at(), &mut counters, &mut scratch);
        fired.push(m.rules.iter().map(|r| program.rule(*r).id().to_string()).collect::<Vec<_>>());
    }
    // The window is the last 7 days, (now - 7d, now]. Day 9 counts days 4 and 9 (day 0
    // has left the window): 2. Day 10 counts days 4, 9 and 10: 3.
    let expected: [Vec<String>; 5] = [vec![], vec![], vec![], vec![], vec!["hot".to_string()]];
    assert_eq!(fired, expected);
}

#[test]
fn filters_read_counters_and_unknown_counters_are_diagnosed() {
    let program = Program::from_json(&doc(1000)).unwrap();
    let schema = program.schema();
    let contact = schema.contact("c").build();
    let mut counters = program.counters().new_state();
    let mut scratch = MatchScratch::default();
    let mut binge_at = None;
    for n in 0..6 {
        let e = schema
            .event(format!("e{n}"), "c", "page_visit", at(n * 60))
            .unwrap()
            .set("url", "/")
            .unwrap()
            .build();
        let m = program.observe_and_match(&contact, &e, e.at(), &mut counters, &mut scratch);
        if binge_at.is_none() && !m.rules.is_empty() {
            binge_at = Some(n);
        }
    }
    assert_eq!(binge_at, Some(4), "the fifth visit within the hour");
    let bad = doc(1000).replace("counter.pricing_7d", "counter.pricing_7days");
    let err = Program::from_json(&bad).unwrap_err();
    assert_eq!(err.diagnostics[0].code, Code::UnknownField);
    assert_eq!(err.diagnostics[0].did_you_mean.as_deref(), Some("pricing_7d"));
}

proptest! {
    /// Counts equal a naive count over the full history, up to the bound, whatever the
    /// spacing of events; memory stays bounded by `max`.
    #[test]
    fn counts_are_exact_up_to_the_bound(gaps in prop::collection::vec(0i64..(3 * DAY), 1..80), max in 1u32..20) {
        let program = Program::from_json(&doc(max)).unwrap();
        let schema = program.schema();
        let contact = schema.contact("c").build();
        let mut counters: CounterState = program.counters().new_state();
        let mut now = 0;
        let mut history = Vec::new();
        let mut values = Vec::new();
        for (n, gap) in gaps.into_iter().enumerate() {
            now += gap;
            let e = schema.event(format!("e{n}"), "c", "page_visit", at(now)).unwrap().set("url", "/pricing").unwrap().build();
            program.counters().observe(&mut counters, &contact, &e);
            history.push(now);
            program.counters().values(&counters, at(now), &mut values);
            let naive = history.iter().filter(|t| **t > now - 7 * DAY && **t <= now).count();
            prop_assert_eq!(values[0].clone(), Some(nurture::Value::Int(naive.min(max as usize) as i64)));
            let stored = serde_json::to_value(&counters).unwrap()["hits"][0].as_array().unwrap().len();
            prop_assert!(stored <= max as usize);
        }
    }
}

#[test]
fn duplicate_counter_ids_are_reported_at_their_path() {
    let doc = doc(10).replace(r#""id": "visits_1h""#, r#""id": "pricing_7d""#);
    let err = Program::from_json(&doc).unwrap_err();
    let found: Vec<(Code, &str)> = err.diagnostics.iter().map(|d| (d.code, d.path.as_str())).collect();
    assert!(found.contains(&(Code::DuplicateId, "/counters/1/id")), "{found:?}");
}
