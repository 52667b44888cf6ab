//! The main demonstration: load a realistic B2B rule set, generate a seeded stream of
//! events for 10,000 contacts, evaluate every event, and report how often each rule
//! matched and the throughput.
//!
//! ```text
//! cargo run --release --example quickstart [-- --events N --contacts N --seed N]
//! ```

#[path = "common/workload.rs"]
mod workload;

use std::time::Instant;

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
        let on = schema.event_type(rule.event_type()).map_or("?", |t| t.name().as_str());
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
    Ok(())
}
