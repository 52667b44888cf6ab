//! The rule index returns exactly the rules a naive scan would match.

use nurture::expr::Activation;
use nurture::{MatchScratch, Program, Timestamp};
use proptest::prelude::*;

const TYPES: usize = 8;
const URLS: usize = 300;

/// 10,000 rules over 8 event types: equality discriminators on `url` and `code`, `in`
/// lists, prefixes (`startsWith`, nested: `/p1` is a prefix of `/p12`, and on a contact
/// attribute), rules with no discriminator, and discriminators hidden inside `||`
/// (which must not be indexed).
fn rule_set() -> String {
    let mut rules = Vec::new();
    let mut state = 7u64;
    let mut next = move |n: u64| {
        state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        (state >> 33) % n
    };
    for i in 0..10_000 {
        let on = format!("t{}", next(TYPES as u64));
        let when = match next(9) {
            0 => format!("event.url == '/p{}'", next(URLS as u64)),
            1 => format!("event.url == '/p{}' && contact.size >= {}", next(URLS as u64), next(100)),
            2 => format!(
                "event.url in ['/p{}', '/p{}'] && contact.country != 'US'",
                next(URLS as u64),
                next(URLS as u64)
            ),
            3 => format!("event.code == {} && event.url.startsWith('/p{}')", next(20), next(10)),
            4 => format!("event.url == '/p{}' || contact.size < {}", next(URLS as u64), next(5)),
            5 => format!("contact.size > {}", next(100)),
            6 => format!("event.url.startsWith('/p{}') && event.code != {}", next(40), next(20)),
            7 => format!(
                "contact.country.startsWith('{}') && contact.size < {}",
                ["U", "US", "F", ""][next(4) as usize],
                next(100)
            ),
            _ => format!("'/p{}' == event.url && event.code != {}", next(URLS as u64), next(20)),
        };
        let enabled = next(50) != 0;
        rules.push(format!(r#"{{"id": "r{i}", "on": "{on}", "when": "{when}", "enabled": {enabled}}}"#));
    }
    let events: Vec<String> =
        (0..TYPES).map(|t| format!(r#""t{t}": {{"url": "string", "code": "int"}}"#)).collect();
    format!(
        r#"{{"version": 1, "schema": {{"contact": {{"size": "int", "country": "string"}}, "events": {{{}}}}}, "rules": [{}]}}"#,
        events.join(", "),
        rules.join(",\n")
    )
}

fn program() -> &'static Program {
    static PROGRAM: std::sync::OnceLock<Program> = std::sync::OnceLock::new();
    PROGRAM.get_or_init(|| Program::from_json(&rule_set()).unwrap_or_else(|e| panic!("{}", e.render())))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(500))]

    #[test]
    fn indexed_matches_equal_naive_matches(
        t in 0..TYPES,
        url in prop::option::of(0..URLS + 10),
        code in prop::option::of(0i64..25),
        size in prop::option::of(0i64..110),
        us in any::<bool>(),
    ) {
        let program = program();
        let schema = program.schema();
        let at = Timestamp::from_unix(1_700_000_000, 0).unwrap();
        let mut contact = schema.contact("c").set("country", if us { "US" } else { "FR" }).unwrap();
        if let Some(size) = size {
            contact = contact.set("size", size).unwrap();
        }
        let contact = contact.build();
        let mut event = schema.event("e", "c", &format!("t{t}"), at).unwrap();
        if let Some(url) = url {
            event = event.set("url", format!("/p{url}")).unwrap();
        }
        if let Some(code) = code {
            event = event.set("code", code).unwrap();
        }
        let event = event.build();

        let mut scratch = MatchScratch::default();
        let result = program.match_event(&contact, &event, at, &mut scratch);
        let indexed: Vec<usize> = result.rules.iter().map(|r| r.get()).collect();
        let evaluated = result.evaluated;

        let act = Activation::new().with_contact(&contact).with_event(&event).with_now(at);
        let naive: Vec<usize> = program
            .rules()
            .iter()
            .enumerate()
            .filter(|(_, r)| r.enabled() && r.event_type() == Some(event.event_type()))
            .filter(|(_, r)| r.condition().map_or(Ok(true), |c| c.eval_bool(&act)) == Ok(true))
            .map(|(i, _)| i)
            .collect();
        prop_assert_eq!(&indexed, &naive);
        let of_type = program.rules().iter().filter(|r| r.event_type() == Some(event.event_type())).count();
        // The index must prune: far fewer conditions evaluated than rules of the type.
        prop_assert!(evaluated * 2 < of_type, "evaluated {} of {}", evaluated, of_type);
    }
}

#[test]
fn candidates_are_in_declaration_order_and_unique() {
    let program = program();
    let schema = program.schema();
    let at = Timestamp::from_unix(0, 0).unwrap();
    let event = schema
        .event("e", "c", "t3", at)
        .unwrap()
        .set("url", "/p7")
        .unwrap()
        .set("code", 3i64)
        .unwrap()
        .build();
    let mut scratch = MatchScratch::default();
    let c: Vec<_> = program.candidates(&event, &mut scratch).collect();
    assert!(c.windows(2).all(|w| w[0] < w[1]), "sorted and unique");
    assert!(!c.is_empty());
}

const COUNTRIES: usize = 40;

/// 4,000 rules over 4 event types that mostly test contact attributes: equalities and
/// `in` lists on `country`, int equality on `size`, next to event tests and rules with
/// no discriminator.
fn contact_rule_set() -> String {
    let mut rules = Vec::new();
    let mut state = 11u64;
    let mut next = move |n: u64| {
        state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        (state >> 33) % n
    };
    for i in 0..4_000 {
        let on = format!("t{}", next(4));
        let c = COUNTRIES as u64;
        let when = match next(6) {
            0 => format!("contact.country == 'C{}'", next(c)),
            1 => format!("contact.country == 'C{}' && event.code >= {}", next(c), next(20)),
            2 => {
                format!("contact.country in ['C{}', 'C{}'] && event.url != '/p{}'", next(c), next(c), next(9))
            }
            3 => format!("contact.size == {} && event.code == {}", next(50), next(20)),
            4 => format!("'C{}' == contact.country || event.code == {}", next(c), next(20)),
            _ => format!("event.url == '/p{}'", next(9)),
        };
        rules.push(format!(r#"{{"id": "r{i}", "on": "{on}", "when": "{when}"}}"#));
    }
    let events: Vec<String> =
        (0..4).map(|t| format!(r#""t{t}": {{"url": "string", "code": "int"}}"#)).collect();
    format!(
        r#"{{"version": 1, "schema": {{"contact": {{"size": "int", "country": "string"}}, "events": {{{}}}}}, "rules": [{}]}}"#,
        events.join(", "),
        rules.join(",\n")
    )
}

fn contact_program() -> &'static Program {
    static PROGRAM: std::sync::OnceLock<Program> = std::sync::OnceLock::new();
    PROGRAM
        .get_or_init(|| Program::from_json(&contact_rule_set()).unwrap_or_else(|e| panic!("{}", e.render())))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    /// Contact-attribute equalities narrow the candidates exactly: the index returns
    /// the rules a naive scan matches, evaluates far fewer than the rules of the type,
    /// and without a contact (`Program::candidates`) keeps every rule that can match.
    #[test]
    fn contact_equalities_narrow_candidates_exactly(
        t in 0u8..4,
        url in prop::option::of(0u8..10),
        code in prop::option::of(0i64..25),
        country in prop::option::of(0..COUNTRIES + 3),
        size in prop::option::of(0i64..55),
    ) {
        let program = contact_program();
        let schema = program.schema();
        let at = Timestamp::from_unix(1_700_000_000, 0).unwrap();
        let mut contact = schema.contact("c");
        if let Some(country) = country {
            contact = contact.set("country", format!("C{country}")).unwrap();
        }
        if let Some(size) = size {
            contact = contact.set("size", size).unwrap();
        }
        let contact = contact.build();
        let mut event = schema.event("e", "c", &format!("t{t}"), at).unwrap();
        if let Some(url) = url {
            event = event.set("url", format!("/p{url}")).unwrap();
        }
        if let Some(code) = code {
            event = event.set("code", code).unwrap();
        }
        let event = event.build();

        let mut scratch = MatchScratch::default();
        let result = program.match_event(&contact, &event, at, &mut scratch);
        let indexed: Vec<usize> = result.rules.iter().map(|r| r.get()).collect();
        let evaluated = result.evaluated;
        let act = Activation::new().with_contact(&contact).with_event(&event).with_now(at);
        let naive: Vec<usize> = program
            .rules()
            .iter()
            .enumerate()
            .filter(|(_, r)| r.event_type() == Some(event.event_type()))
            .filter(|(_, r)| r.condition().map_or(Ok(true), |c| c.eval_bool(&act)) == Ok(true))
            .map(|(i, _)| i)
            .collect();
        prop_assert_eq!(&indexed, &naive);
        let of_type = program.rules().iter().filter(|r| r.event_type() == Some(event.event_type())).count();
        prop_assert!(evaluated * 2 < of_type, "evaluated {} of {}", evaluated, of_type);
        // Without the contact, every rule that can match is still a candidate.
        let without: Vec<usize> = program.candidates(&event, &mut scratch).map(|r| r.get()).collect();
        prop_assert!(without.windows(2).all(|w| w[0] < w[1]), "sorted and unique");
        prop_assert!(naive.iter().all(|i| without.binary_search(i).is_ok()));
    }
}
