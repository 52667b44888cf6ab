//! Tuning by measured selectivity (`Program::tune`, `Scorer::tune`): the order of a
//! condition's operands changes with the sample, the results never do.

use std::sync::Arc;

use nurture::engine::{Engine, EngineScratch};
use nurture::scoring::ScoreScratch;
use nurture::{Contact, Event, MatchScratch, Program, Schema, Timestamp};
use proptest::prelude::*;

const T0: i64 = 1_700_000_000;

/// Conditions over every kind of operand: indexed equalities, comparisons, string
/// tests, patterns, the general evaluator, counters, scores, and operands that fail
/// (a missing property or attribute, a division by zero).
const CONDITIONS: &[&str] = &[
    "event.url == '/pricing'",
    "event.seconds >= 30 && event.url.startsWith('/blog')",
    "event.url.startsWith('/blog') && has(event.source) && event.source == 'linkedin'",
    "event.source == 'ads' || event.seconds > 100",
    "contact.plan == 'pro' && event.url in ['/a', '/pricing', '/blog/x']",
    "counter.visits_1h >= 3 && event.url.contains('x')",
    "score.engagement >= 20.0 && event.seconds < 50",
    "100 / event.seconds > 2 && event.url != '/a'",
    "!(event.url.matches('^/blog/.*')) && contact.size > 10",
    "(event.seconds > 10 || contact.plan == 'free') && (event.url == '/a' || event.url.endsWith('x'))",
    "event.seconds > 5 && event.source == 'ads' && contact.size >= 50",
    // Both operands fail for `c1` without a source; the one written first names the error.
    "contact.size > 10 && event.source == 'ads'",
];

fn document(scoring: &[usize], rules: &[usize]) -> String {
    let point_rules: Vec<String> = scoring
        .iter()
        .enumerate()
        .map(|(i, &c)| {
            format!(
                r#"{{"id": "p{i}", "on": "page_visit", "when": "{}", "points": {}}}"#,
                CONDITIONS[c],
                3 + i
            )
        })
        .collect();
    let event_rules: Vec<String> = rules
        .iter()
        .enumerate()
        .map(|(i, &c)| {
            format!(
                r#"{{"id": "r{i}", "on": "page_visit", "when": "{}", "actions": [{{"type": "add_tag", "tag": "t{i}"}}]}}"#,
                CONDITIONS[c]
            )
        })
        .collect();
    format!(
        r#"{{
      "version": 1,
      "schema": {{
        "contact": {{"plan": "string", "size": "int"}},
        "events": {{"page_visit": {{"url": "string", "seconds": "int", "source": "string"}}}},
        "scores": ["engagement"]
      }},
      "counters": [{{"id": "visits_1h", "on": "page_visit", "window": "1h"}}],
      "rules": [{}],
      "scoring": {{"models": [{{"id": "engagement", "cap": 100,
        "groups": [{{"id": "all", "decay": {{"half_life": "7d"}}}}],
        "rules": [{}],
        "thresholds": [{{"id": "mql", "enter": 30, "exit": 20, "rearm": "every_crossing"}}]}}]}}
    }}"#,
        event_rules.join(", "),
        point_rules.join(", ")
    )
}

fn compile(doc: &str) -> Program {
    Program::from_json(doc).unwrap_or_else(|e| panic!("{}", e.render()))
}

fn contacts(schema: &Schema) -> Vec<Contact> {
    vec![
        schema.contact("c0").set("plan", "pro").unwrap().set("size", 50).unwrap().build(),
        // No size: `contact.size` fails for this one.
        schema.contact("c1").set("plan", "free").unwrap().build(),
    ]
}

/// (contact, seconds after T0, url, seconds on page, source)
type Spec = (usize, i64, usize, i64, Option<usize>);

const URLS: &[&str] = &["/a", "/pricing", "/blog/x", "/blog/y", "/docs"];
const SOURCES: &[&str] = &["ads", "linkedin"];

fn event(schema: &Schema, n: usize, spec: &Spec) -> Event {
    let &(contact, secs, url, seconds, source) = spec;
    let at = Timestamp::from_unix(T0 + secs, 0).unwrap();
    let mut b = schema
        .event(format!("e{n}"), format!("c{contact}"), "page_visit", at)
        .unwrap()
        .set("url", URLS[url])
        .unwrap()
        .set("seconds", seconds)
        .unwrap();
    if let Some(s) = source {
        b = b.set("source", SOURCES[s]).unwrap();
    }
    b.build()
}

fn spec() -> impl Strategy<Value = Spec> {
    (
        0..2usize,
        0..86_400i64,
        0..URLS.len(),
        prop_oneof![Just(0i64), 0..200i64],
        prop::option::of(0..SOURCES.len()),
    )
}

/// Events in time order (tuning replays them as given; the checks feed them in order).
fn events(schema: &Schema, specs: &mut [Spec], first: usize) -> Vec<Event> {
    specs.sort_by_key(|s| s.1);
    specs.iter().enumerate().map(|(n, s)| event(schema, first + n, s)).collect()
}

fn sample_of<'a>(contacts: &'a [Contact], events: &'a [Event]) -> Vec<(&'a Contact, &'a Event)> {
    events.iter().map(|e| (&contacts[usize::from(e.contact().as_str() == "c1")], e)).collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// A program tuned on any sample matches, scores and steps exactly as the untuned
    /// one on any events: matched rules, errors (with their messages), score updates,
    /// final values and the engine's outcomes.
    #[test]
    fn a_tuned_program_gives_exactly_the_same_results(
        scoring in prop::collection::vec(0..CONDITIONS.len(), 1..6),
        rules in prop::collection::vec(0..CONDITIONS.len(), 1..5),
        mut sample_specs in prop::collection::vec(spec(), 0..60),
        mut check_specs in prop::collection::vec(spec(), 1..40),
    ) {
        let doc = document(&scoring, &rules);
        let plain = compile(&doc);
        let schema = plain.schema().clone();
        let people = contacts(&schema);
        let sample_events = events(&schema, &mut sample_specs, 0);
        let mut tuned = compile(&doc);
        let tuning = tuned.tune(sample_of(&people, &sample_events));
        prop_assert_eq!(tuning.events, sample_events.len());
        prop_assert!(tuning.reordered <= tuning.conditions);

        let checks = events(&schema, &mut check_specs, 1_000);
        let check_sample = sample_of(&people, &checks);
        let t0 = Timestamp::from_unix(T0, 0).unwrap();

        // Matching.
        let (mut sa, mut sb) = (MatchScratch::default(), MatchScratch::default());
        for (contact, e) in &check_sample {
            let a = plain.match_event(contact, e, e.at(), &mut sa);
            let (rules_a, errors_a, evaluated_a) = (a.rules.to_vec(), a.errors.to_vec(), a.evaluated);
            let b = tuned.match_event(contact, e, e.at(), &mut sb);
            prop_assert_eq!(&rules_a, &b.rules.to_vec());
            prop_assert_eq!(&errors_a, &b.errors.to_vec());
            prop_assert_eq!(evaluated_a, b.evaluated);
        }

        // Scoring.
        let (scorer_a, scorer_b) = (plain.scorer().unwrap(), tuned.scorer().unwrap());
        let mut states_a: Vec<_> = people.iter().map(|_| scorer_a.new_state(t0)).collect();
        let mut states_b: Vec<_> = people.iter().map(|_| scorer_b.new_state(t0)).collect();
        let (mut xa, mut xb) = (ScoreScratch::default(), ScoreScratch::default());
        for (contact, e) in &check_sample {
            let c = usize::from(contact.id().as_str() == "c1");
            let a = scorer_a.handle_event(&mut states_a[c], contact, e, &mut xa).cloned();
            let b = scorer_b.handle_event(&mut states_b[c], contact, e, &mut xb).cloned();
            prop_assert_eq!(a, b);
        }
        let end = Timestamp::from_unix(T0 + 2 * 86_400, 0).unwrap();
        for (a, b) in states_a.iter().zip(&states_b) {
            prop_assert_eq!(
                scorer_a.value(a, 0, end).map(f64::to_bits),
                scorer_b.value(b, 0, end).map(f64::to_bits)
            );
        }

        // The full engine.
        let (engine_a, engine_b) = (Engine::new(Arc::new(plain)), Engine::new(Arc::new(tuned)));
        let mut es_a: Vec<_> = people.iter().map(|c| engine_a.new_state(c, t0)).collect();
        let mut es_b: Vec<_> = people.iter().map(|c| engine_b.new_state(c, t0)).collect();
        let (mut ya, mut yb) = (EngineScratch::default(), EngineScratch::default());
        for (contact, e) in &check_sample {
            let c = usize::from(contact.id().as_str() == "c1");
            let a = engine_a.handle_event(&mut es_a[c], contact, e, &mut ya);
            let b = engine_b.handle_event(&mut es_b[c], contact, e, &mut yb);
            prop_assert_eq!(a, b);
        }
    }
}

/// A program with one rule and one point rule, both `event.seconds >= 5 && event.url == '/pricing'`.
fn pricing_program() -> Program {
    compile(&document_with("event.seconds >= 5 && event.url == '/pricing'"))
}

fn document_with(condition: &str) -> String {
    document(&[0], &[0]).replace(CONDITIONS[0], condition)
}

#[test]
fn the_order_follows_the_sample() {
    let program = pricing_program();
    let schema = program.schema().clone();
    let people = contacts(&schema);
    // Mostly other pages, long visits: the later URL test is the selective one.
    let mut browsing: Vec<Spec> = (0..40).map(|i| (0, i, if i % 8 == 0 { 1 } else { 3 }, 60, None)).collect();
    let browsing = events(&schema, &mut browsing, 0);
    let mut tuned = program.clone();
    let tuning = tuned.tune(sample_of(&people, &browsing));
    assert_eq!(tuning.events, 40);
    assert_eq!(tuning.conditions, 2, "the rule and the point rule");
    assert_eq!(tuning.reordered, 2);

    // Only the pricing page, mostly short visits: the written order is already the best.
    let mut pricing: Vec<Spec> = (0..40).map(|i| (0, i, 1, if i % 4 == 0 { 60 } else { 1 }, None)).collect();
    let pricing = events(&schema, &mut pricing, 100);
    let mut kept = program.clone();
    assert_eq!(kept.tune(sample_of(&people, &pricing)).reordered, 0);
    // And tuning the tuned program on it moves the operands back.
    assert_eq!(tuned.tune(sample_of(&people, &pricing)).reordered, 2);
}

#[test]
fn empty_and_odd_samples_are_harmless() {
    let mut program = pricing_program();
    let tuning = program.tune(std::iter::empty());
    assert_eq!((tuning.events, tuning.evaluations, tuning.conditions, tuning.reordered), (0, 0, 0, 0));

    // Events out of time order, repeated event ids, a contact the host never declared
    // elsewhere: the replay takes them as they come.
    let schema = program.schema().clone();
    let people = contacts(&schema);
    let specs: Vec<Spec> = vec![(1, 500, 0, 0, None), (1, 10, 1, 3, Some(0)), (0, 10, 1, 3, Some(1))];
    let odd: Vec<Event> = specs.iter().map(|s| event(&schema, 7, s)).collect();
    let sample: Vec<(&Contact, &Event)> =
        odd.iter().zip([&people[1], &people[1], &people[0]]).map(|(e, c)| (c, e)).collect();
    let tuning = program.tune(sample);
    assert_eq!(tuning.events, 3);
    assert_eq!(tuning.conditions, 2);
}
