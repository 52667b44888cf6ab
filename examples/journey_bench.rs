//! Journey throughput: 1,000,000 contacts driven one after another through a 10-step
//! onboarding journey (an action, a wait, a wait for a click with a timeout, a branch,
//! a split with a holdout, two variant sends, a wait until a local weekday morning, a
//! last action and an exit), as a host would: the sign-up event, then every wake-up at
//! its `next_wake`, and a click for a third of the contacts.
//!
//! ```text
//! cargo run --release --example journey_bench [-- --contacts N]
//! ```
//!
//! Prints journey steps per second, engine calls per second, and the bytes an active
//! enrolment adds to a contact's state (JSON, as the stores keep it), then one JSON line.

use std::sync::Arc;
use std::time::Instant;

use nurture::engine::{EffectKind, Engine, EngineScratch};
use nurture::{Program, Timestamp};

const RULES: &str = r#"{
  "version": 1,
  "schema": {
    "contact": {"company_size": "int", "tz": "string"},
    "events": {"signup": {"plan": "string"}, "email_clicked": {"link": "string"}}
  },
  "journeys": [{
    "id": "onboarding",
    "on": "signup",
    "when": "event.plan == 'trial'",
    "zone": "contact.tz",
    "steps": [
      {"id": "welcome", "type": "action", "next": "pause",
       "actions": [{"type": "send", "channel": "email", "template": "welcome"}]},
      {"id": "pause", "type": "wait", "for": "1d", "next": "click"},
      {"id": "click", "type": "wait_for", "on": "email_clicked", "when": "event.link.contains('/docs')",
       "timeout": "2d", "next": "size", "on_timeout": "size"},
      {"id": "size", "type": "branch",
       "cases": [{"when": "has(contact.company_size) && contact.company_size >= 50", "next": "ab"}],
       "else": "morning"},
      {"id": "ab", "type": "split", "arms": [
         {"id": "a", "weight": 45, "next": "send_a"}, {"id": "b", "weight": 45, "next": "send_b"}],
       "holdout": {"weight": 10, "for": "7d"}},
      {"id": "send_a", "type": "action", "next": "morning",
       "actions": [{"type": "send", "channel": "email", "template": "variant-a"}]},
      {"id": "send_b", "type": "action", "next": "morning",
       "actions": [{"type": "send", "channel": "email", "template": "variant-b"}]},
      {"id": "morning", "type": "wait", "at": "09:00", "days": ["monday", "tuesday", "wednesday", "thursday", "friday"],
       "next": "invite"},
      {"id": "invite", "type": "action", "next": "done",
       "actions": [{"type": "add_tag", "tag": "onboarded"}]},
      {"id": "done", "type": "exit"}
    ]
  }]
}"#;

const ZONES: [&str; 4] = ["America/New_York", "Europe/Paris", "Asia/Tokyo", "UTC"];

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut contacts: u64 = 1_000_000;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--contacts" => contacts = args.next().ok_or("`--contacts` needs a number")?.parse()?,
            other => return Err(format!("unknown argument `{other}`").into()),
        }
    }
    let program = Arc::new(Program::from_json(RULES).map_err(|e| e.render())?);
    let engine = Engine::new(program.clone());
    let schema = program.schema();
    let start = Timestamp::from_unix(1_767_225_600, 0)?; // 2026-01-01
    let mut scratch = EngineScratch::default();
    let (mut steps, mut calls, mut effects, mut completed) = (0u64, 0u64, 0u64, 0u64);
    let (mut enrolment_bytes, mut measured) = (0u64, 0u64);
    let started = Instant::now();
    for i in 0..contacts {
        let id = format!("c{i}");
        let contact = schema
            .contact(id.as_str())
            .set("company_size", (i % 200) as i64)?
            .set("tz", ZONES[(i % 4) as usize])?
            .build();
        // Contacts sign up over a year, one every ~31 seconds.
        let at = Timestamp::from_unix(start.unix_seconds() + (i as i64 * 31) % (365 * 86_400), 0)?;
        let mut state = engine.new_state(&contact, at);
        let signup = schema.event(format!("s{i}"), id.as_str(), "signup", at)?.set("plan", "trial")?.build();
        let mut out = engine.handle_event(&mut state, &contact, &signup, &mut scratch)?;
        calls += 1;
        if i % 1_000 == 0 {
            // The bytes an active enrolment adds: the state with it, without it.
            let with = serde_json::to_vec(&state)?.len();
            let mut bare = state.clone();
            let bare_json = serde_json::to_value(&bare)?;
            bare = serde_json::from_value({
                let mut v = bare_json;
                if let Some(map) = v.as_object_mut() {
                    map.remove("journeys");
                    map.remove("journey_log");
                }
                v
            })?;
            enrolment_bytes += (with - serde_json::to_vec(&bare)?.len()) as u64;
            measured += 1;
        }
        let mut clicked = i % 3 != 0;
        loop {
            steps += out.effects.iter().filter(|e| matches!(e.kind, EffectKind::JourneyStep { .. })).count()
                as u64;
            completed +=
                out.effects.iter().filter(|e| matches!(e.kind, EffectKind::JourneyExited { .. })).count()
                    as u64;
            effects += out.effects.len() as u64;
            let Some(wake) = out.next_wake else { break };
            // A click half a day into the wait for, for two contacts in three.
            if clicked && state.enrolments().first().is_some_and(|e| e.step() == "click") {
                clicked = false;
                let t = Timestamp::from_unix(state.last_change().unix_seconds() + 43_200, 0)?;
                let click = schema
                    .event(format!("k{i}"), id.as_str(), "email_clicked", t)?
                    .set("link", "https://example.com/docs/start")?
                    .build();
                out = engine.handle_event(&mut state, &contact, &click, &mut scratch)?;
            } else {
                out = engine.handle_timeout(&mut state, &contact, wake, &mut scratch)?;
            }
            calls += 1;
        }
    }
    let seconds = started.elapsed().as_secs_f64();
    let per_enrolment = enrolment_bytes as f64 / measured.max(1) as f64;
    println!("contacts             {contacts:>12}");
    println!("enrolments completed {completed:>11}");
    println!("journey steps        {steps:>12} ({:.0} steps/s)", steps as f64 / seconds);
    println!("engine calls         {calls:>12} ({:.0} calls/s; events and wake-ups)", calls as f64 / seconds);
    println!("effects              {effects:>12}");
    println!("bytes per enrolment  {per_enrolment:>12.1} (JSON, an active enrolment and its journey log)");
    println!("wall clock           {seconds:>11.2} s, one thread");
    let line = serde_json::json!({
        "contacts": contacts,
        "completed": completed,
        "journey_steps": steps,
        "steps_per_second": (steps as f64 / seconds).round(),
        "engine_calls": calls,
        "calls_per_second": (calls as f64 / seconds).round(),
        "effects": effects,
        "bytes_per_enrolment": (per_enrolment * 10.0).round() / 10.0,
        "seconds": (seconds * 100.0).round() / 100.0,
    });
    println!("{line}");
    Ok(())
}
