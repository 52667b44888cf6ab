//! The quickstart's onboarding journey (`examples/onboarding_journey.json`), added to
//! the B2B rule set, and the summary line with its funnel. Included with `#[path]`.
#![allow(dead_code)]

use nurture::engine::Funnel;

/// The onboarding journey's definition.
pub const JOURNEY_JSON: &str = include_str!("../onboarding_journey.json");

/// The journey's id.
pub const JOURNEY: &str = "onboarding";

/// `rules` (a rule-set document) with the onboarding journey in its `journeys`.
pub fn with_journey(rules: &str) -> Result<String, serde_json::Error> {
    let mut doc: serde_json::Value = serde_json::from_str(rules)?;
    let journey: serde_json::Value = serde_json::from_str(JOURNEY_JSON)?;
    if let Some(map) = doc.as_object_mut() {
        map.insert("journeys".to_string(), serde_json::Value::Array(vec![journey]));
    }
    serde_json::to_string(&doc)
}

/// The `journey` object of the summary line: `{"enrolled", "completed", "goal",
/// "exited": {reason: n}, "arms": {arm: {"enrolled", "goal"}}, "holdout": {...}}`.
pub fn journey_json(funnel: &Funnel) -> serde_json::Value {
    funnel.journey(JOURNEY).map_or_else(
        || {
            serde_json::json!({"enrolled": 0, "completed": 0, "goal": 0, "exited": {}, "arms": {},
                              "holdout": {"enrolled": 0, "goal": 0}})
        },
        |f| f.summary(),
    )
}
