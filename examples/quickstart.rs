//! The main demonstration: load a realistic B2B rule set, generate a seeded stream of
//! events for 10,000 contacts, evaluate every event, and report how often each rule
//! matched and the throughput; then score the same stream with the rule set's models
//! (engagement with decay, fit, and a combined lead score with an MQL threshold).
//!
//! ```text
//! cargo run --release --example quickstart [-- --events N --contacts N --seed N]
//! ```

#[path = "common/workload.rs"]
mod workload;

use std::time::Instant;

use nurture::scoring::{Crossing, ScoreScratch};
use nurture::{MatchScratch, Program};

fn arg(name: &str, default: usize) -> usize {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let contacts_n = arg("--contacts", 10_000);
    let events_n = arg("--events", 500_000);
    let seed = arg("--seed", 42) as u64;

    let started = Instant::now();
    let program = Program::from_json(workload::RULES_JSON).map_err(|e| e.render())?;
    let compile_time = started.elapsed();
    let schema = program.schema();
    println!(
        "rule set `{}`: {} rules over {} event types, compiled in {:.2?}",
        program.name().unwrap_or("unnamed"),
        program.rules().len(),
        schema.event_types().count(),
        compile_time
    );

    let mut rng = workload::Rng::new(seed);
    let contacts = workload::contacts(schema, contacts_n, &mut rng);
    let events = workload::events(schema, contacts_n, events_n, &mut rng);
    println!("generated {} contacts and {} events (seed {seed})", contacts.len(), events.len());

    let mut matches = vec![0u64; program.rules().len()];
    let mut errors = vec![0u64; program.rules().len()];
    let mut evaluated = 0u64;
    let mut scratch = MatchScratch::default();
    let started = Instant::now();
    for event in &events {
        // Contact ids are `c<N>`; a host would look its state up in its store.
        let index: usize = event.contact().as_str()[1..].parse()?;
        let contact = &contacts[index];
        let result = program.match_event(contact, event, event.at(), &mut scratch);
        evaluated += result.evaluated as u64;
        for rule in result.rules {
            matches[rule.get()] += 1;
        }
        for (rule, _) in result.errors {
            errors[rule.get()] += 1;
        }
    }
    let elapsed = started.elapsed();

    println!();
    println!("{:<32} {:>18} {:>10} {:>8}", "rule", "on", "matched", "errors");
    for (i, rule) in program.rules().iter().enumerate() {
        let on = rule.event_type().and_then(|t| schema.event_type(t)).map_or("?", |t| t.name().as_str());
        println!("{:<32} {:>18} {:>10} {:>8}", rule.id().as_str(), on, matches[i], errors[i]);
    }
    let total: u64 = matches.iter().sum();
    println!();
    println!(
        "{} events, {} rule matches, {} conditions evaluated ({:.2} per event after indexing)",
        events.len(),
        total,
        evaluated,
        evaluated as f64 / events.len().max(1) as f64
    );
    println!(
        "throughput: {:.0} events/s ({:.0} ns/event, one core, contact lookup included)",
        events.len() as f64 / elapsed.as_secs_f64(),
        elapsed.as_nanos() as f64 / events.len().max(1) as f64
    );
    score(&program, &contacts, &events)?;
    Ok(())
}

/// Scores every event with the rule set's models and reports the outcome.
fn score(
    program: &Program,
    contacts: &[nurture::Contact],
    events: &[nurture::Event],
) -> Result<(), Box<dyn std::error::Error>> {
    let Some(scorer) = program.scorer() else {
        return Ok(());
    };
    let start = workload::start();
    let mut states: Vec<_> = contacts.iter().map(|_| scorer.new_state(start)).collect();
    for (contact, state) in contacts.iter().zip(states.iter_mut()) {
        scorer.handle_attributes(state, contact, start)?;
    }
    let mut scratch = ScoreScratch::default();
    let mut mqls = 0u64;
    let started = Instant::now();
    for event in events {
        let index: usize = event.contact().as_str()[1..].parse()?;
        let update = scorer.handle_event_with(&mut states[index], &contacts[index], event, &mut scratch)?;
        mqls +=
            update.crossings.iter().filter(|(_, name, c)| name == "mql" && *c == Crossing::Up).count() as u64;
    }
    let elapsed = started.elapsed();
    let end = events.last().map_or(start, |e| e.at());

    println!();
    let names: Vec<&str> = scorer.models().iter().map(|m| m.id().as_str()).collect();
    println!("scoring: models {}; {} contacts crossed into MQL", names.join(", "), mqls);
    let mut matrix = std::collections::BTreeMap::new();
    for state in &states {
        if let Some(cell) = scorer.matrix(state, 1, 0, end) {
            *matrix.entry(cell).or_insert(0u32) += 1;
        }
    }
    let cells: Vec<String> = matrix.iter().map(|(cell, n)| format!("{cell} {n}")).collect();
    println!("fit x engagement at the end: {}", cells.join(", "));
    let best = (0..states.len())
        .max_by(|&a, &b| {
            let va = scorer.value(&states[a], 2, end).unwrap_or(0.0);
            let vb = scorer.value(&states[b], 2, end).unwrap_or(0.0);
            va.total_cmp(&vb)
        })
        .unwrap_or(0);
    if let Some(e) = scorer.explain(&states[best], 0, end) {
        let lead = scorer.value(&states[best], 2, end).unwrap_or(0.0);
        let groups: Vec<String> = e.groups.iter().map(|(g, v)| format!("{g} {v:.1}")).collect();
        println!(
            "highest lead score: {} at {lead:.1}; engagement {:.1} ({})",
            contacts[best].id(),
            e.value,
            groups.join(", ")
        );
    }
    println!(
        "scoring throughput: {:.0} events/s ({:.0} ns/event, counters and three models, one core)",
        events.len() as f64 / elapsed.as_secs_f64(),
        elapsed.as_nanos() as f64 / events.len().max(1) as f64
    );
    Ok(())
}
