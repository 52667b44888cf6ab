//! A journey funnel: lifecycle effects counted per journey, step, exit reason and
//! split arm, with the holdout's conversion for lift.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::engine::effect::{Effect, EffectKind, ExitReason};

/// Enrolments and goals of one split arm (or the holdout).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct ArmTally {
    /// Enrolments the split put here.
    pub enrolled: u64,
    /// Of those, how many reached the goal.
    pub goal: u64,
}

impl ArmTally {
    /// The share that reached the goal (`None` with no enrolments).
    pub fn conversion(&self) -> Option<f64> {
        (self.enrolled > 0).then(|| self.goal as f64 / self.enrolled as f64)
    }
}

/// The funnel of one journey (all its versions).
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct JourneyFunnel {
    /// Enrolments.
    pub enrolled: u64,
    /// Enrolments that ran to the end.
    pub completed: u64,
    /// Enrolments that reached the goal.
    pub goal: u64,
    /// Exits by reason name.
    pub exited: BTreeMap<String, u64>,
    /// Times each step was reached, by step id.
    pub steps: BTreeMap<String, u64>,
    /// Split arms by id.
    pub arms: BTreeMap<String, ArmTally>,
    /// The holdout.
    pub holdout: ArmTally,
    /// Actions the journey's steps performed.
    pub actions: u64,
}

impl JourneyFunnel {
    /// An arm's lift over the holdout: its conversion divided by the holdout's, minus
    /// one (`0.25`: a quarter more conversions). `None` without both conversions, or
    /// when the holdout converted none.
    pub fn lift(&self, arm: &str) -> Option<f64> {
        let arm = self.arms.get(arm)?.conversion()?;
        let base = self.holdout.conversion().filter(|b| *b > 0.0)?;
        Some(arm / base - 1.0)
    }

    /// The summary as JSON: `{"enrolled", "completed", "goal", "exited": {reason: n},
    /// "arms": {arm: {"enrolled", "goal"}}, "holdout": {"enrolled", "goal"}}`.
    pub fn summary(&self) -> serde_json::Value {
        serde_json::json!({
            "enrolled": self.enrolled,
            "completed": self.completed,
            "goal": self.goal,
            "exited": self.exited,
            "arms": self.arms,
            "holdout": self.holdout,
        })
    }
}

/// Journey funnels fed with effects, as a host or a report sees them.
///
/// ```
/// use nurture::engine::{Effect, Funnel};
/// let mut funnel = Funnel::default();
/// let effects: Vec<Effect> = Vec::new(); // an outcome's effects
/// for effect in &effects {
///     funnel.record(effect);
/// }
/// assert!(funnel.journey("onboarding").is_none());
/// ```
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Funnel {
    journeys: BTreeMap<String, JourneyFunnel>,
}

impl Funnel {
    /// Counts one effect (effects of other kinds are ignored).
    pub fn record(&mut self, effect: &Effect) {
        match &effect.kind {
            EffectKind::JourneyEntered { journey, .. } => self.entry(journey).enrolled += 1,
            EffectKind::JourneyStep { journey, step, .. } => {
                *self.entry(journey).steps.entry(step.clone()).or_default() += 1;
            }
            EffectKind::JourneyArm { journey, arm, holdout, .. } => {
                let f = self.entry(journey);
                if *holdout {
                    f.holdout.enrolled += 1;
                } else {
                    f.arms.entry(arm.clone()).or_default().enrolled += 1;
                }
            }
            EffectKind::JourneyGoal { journey, arm, .. } => {
                let f = self.entry(journey);
                f.goal += 1;
                match arm.as_deref() {
                    Some("holdout") => f.holdout.goal += 1,
                    Some(arm) => f.arms.entry(arm.to_string()).or_default().goal += 1,
                    None => {}
                }
            }
            EffectKind::JourneyExited { journey, reason, .. } => {
                let f = self.entry(journey);
                *f.exited.entry(reason.name().to_string()).or_default() += 1;
                if *reason == ExitReason::Completed {
                    f.completed += 1;
                }
            }
            EffectKind::JourneyAction { journey, .. } => self.entry(journey).actions += 1,
            _ => {}
        }
    }

    fn entry(&mut self, journey: &str) -> &mut JourneyFunnel {
        self.journeys.entry(journey.to_string()).or_default()
    }

    /// One journey's funnel.
    pub fn journey(&self, id: &str) -> Option<&JourneyFunnel> {
        self.journeys.get(id)
    }

    /// Every journey's funnel, by id.
    pub fn journeys(&self) -> impl Iterator<Item = (&str, &JourneyFunnel)> {
        self.journeys.iter().map(|(id, f)| (id.as_str(), f))
    }
}

/// A table per journey: enrolments, each step reached, exits by reason, and each arm
/// with its conversion and lift over the holdout.
impl std::fmt::Display for Funnel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (id, j) in &self.journeys {
            writeln!(f, "journey {id}")?;
            let mut line = |label: String, n: u64| writeln!(f, "  {label:<30} {n:>10}");
            line("entered".to_string(), j.enrolled)?;
            for (step, n) in &j.steps {
                line(format!("reached {step}"), *n)?;
            }
            line("goal reached".to_string(), j.goal)?;
            for (reason, n) in &j.exited {
                line(format!("exited {reason}"), *n)?;
            }
            let pct = |t: &ArmTally| t.conversion().map_or("-".to_string(), |c| format!("{:.1}%", c * 100.0));
            for (arm, t) in &j.arms {
                let lift = j.lift(arm).map_or(String::new(), |l| format!(", lift {:+.1}%", l * 100.0));
                writeln!(
                    f,
                    "  arm {arm:<26} {:>10} enrolled, {} goal ({}{lift})",
                    t.enrolled,
                    t.goal,
                    pct(t)
                )?;
            }
            if j.holdout.enrolled > 0 {
                let t = &j.holdout;
                writeln!(
                    f,
                    "  holdout                        {:>10} enrolled, {} goal ({})",
                    t.enrolled,
                    t.goal,
                    pct(t)
                )?;
            }
        }
        Ok(())
    }
}
