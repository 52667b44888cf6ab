//! One event that gives 200,000 effects (2,000 rules of 100 `send` actions each): the
//! time of the step, which keeps the effects' idempotency keys unique
//! (`docs/performance.md`, "Idempotency keys: 200,000 effects in one step").
//!
//! `cargo run --release --example many_effects`

use std::sync::Arc;

use nurture::engine::{Engine, EngineScratch};
use nurture::{Program, Timestamp};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let (rules, actions) = (2_000usize, 100usize);
    let action = r#"{"type": "send", "channel": "email", "template": "t"}"#;
    let all = vec![action; actions].join(",");
    let rules: Vec<String> =
        (0..rules).map(|i| format!(r#"{{"id": "r{i}", "on": "visit", "actions": [{all}]}}"#)).collect();
    let doc = format!(
        r#"{{"version": 1, "schema": {{"events": {{"visit": {{}}}}}}, "rules": [{}]}}"#,
        rules.join(",")
    );
    let engine = Engine::new(Arc::new(Program::from_json(&doc)?));
    let schema = engine.program().schema();
    let t = Timestamp::from_unix(1_767_225_600, 0)?;
    let contact = schema.contact("c1").build();
    for run in 0..3 {
        let mut state = engine.new_state(&contact, t);
        let event = schema.event("e1", "c1", "visit", t)?.build();
        let start = std::time::Instant::now();
        let outcome = engine.handle_event(&mut state, &contact, &event, &mut EngineScratch::default())?;
        let keys: std::collections::HashSet<_> = outcome.effects.iter().map(|e| e.key).collect();
        println!(
            "run {run}: {} effects, {} distinct keys, {:.3} s",
            outcome.effects.len(),
            keys.len(),
            start.elapsed().as_secs_f64()
        );
    }
    Ok(())
}
