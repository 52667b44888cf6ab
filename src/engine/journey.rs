//! Journeys at run time: enrolments in the contact's state, entered on triggers or
//! `enroll_journey` actions, moved step by step after each step's cascade, their waits
//! feeding `next_wake` (`docs/journeys.md` has the lifecycle and the order of effects).

mod funnel;

pub use funnel::{ArmTally, Funnel, JourneyFunnel};

use serde::{Deserialize, Serialize};

use super::cascade::Performer;
use super::effect::{ExitReason, Fnv};
use super::step::*;
use super::*;
use crate::def::{ActionDef, Direction};
use crate::expr::Expression;
use crate::journey::{Journey, StepKind, TRAIL};
use crate::schema::Event;

/// One active enrolment of a contact in a journey.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Enrolment {
    pub(crate) journey: String,
    pub(crate) version: u32,
    pub(crate) instance: u32,
    /// The step it is at (a wait, a wait for, or a split's holdout).
    pub(crate) step: String,
    pub(crate) entered: Timestamp,
    /// When it reached its step (the wait's start).
    pub(crate) reached: Timestamp,
    /// The wait's deadline, the wait for's timeout, or the holdout's end.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) until: Option<Timestamp>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) arm: Option<String>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub(crate) holdout: bool,
    /// How many steps it has run (a part of every effect's key).
    pub(crate) seq: u32,
    /// The positions of the last [`TRAIL`] steps run, oldest first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub(crate) trail: Vec<u16>,
}

impl Enrolment {
    /// The journey's id.
    pub fn journey(&self) -> &str {
        &self.journey
    }
    /// The journey version it runs on.
    pub fn version(&self) -> u32 {
        self.version
    }
    /// The contact's enrolment number in this journey (1, 2, ...).
    pub fn instance(&self) -> u32 {
        self.instance
    }
    /// The step it is at.
    pub fn step(&self) -> &str {
        &self.step
    }
    /// When it entered.
    pub fn entered(&self) -> Timestamp {
        self.entered
    }
    /// When it reached its step.
    pub fn reached(&self) -> Timestamp {
        self.reached
    }
    /// Until when it waits, if it waits.
    pub fn until(&self) -> Option<Timestamp> {
        self.until
    }
    /// Its split arm, once a split chose one (`holdout` for the holdout).
    pub fn arm(&self) -> Option<&str> {
        self.arm.as_deref()
    }
    /// Whether it is in a split's holdout.
    pub fn is_holdout(&self) -> bool {
        self.holdout
    }
    /// The positions (in its journey version's steps) of the last steps it ran, oldest
    /// first; at most [`TRAIL`].
    pub fn trail(&self) -> &[u16] {
        &self.trail
    }
}

/// What a contact's state remembers of one journey beyond its active enrolments.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct JourneyLog {
    /// Enrolments so far (the last instance number).
    pub(crate) instances: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) last_exit: Option<Timestamp>,
    /// Versions entered, for `once_per_version`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub(crate) versions: Vec<u32>,
    /// The last calendar entry occurrence taken.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) occurred: Option<Timestamp>,
}

impl JourneyLog {
    /// How many times the contact entered the journey.
    pub fn instances(&self) -> u32 {
        self.instances
    }
    /// When the contact last left it.
    pub fn last_exit(&self) -> Option<Timestamp> {
        self.last_exit
    }
}

/// Journey entries and removals asked for during one step.
#[derive(Clone, Debug, Default)]
pub(crate) struct JourneyQueue {
    /// Journeys (positions) to enter, in order.
    pub(super) enter: Vec<usize>,
    /// Journey ids to remove the contact from.
    pub(super) remove: Vec<String>,
}

impl JourneyQueue {
    fn is_empty(&self) -> bool {
        self.enter.is_empty() && self.remove.is_empty()
    }
}

/// The key of a journey effect: the contact, the journey, version, instance and what
/// tells the effect apart, never the cause, so that a replay or a retry of a step from
/// the same state gives the same keys whenever the host delivers the wake-up.
fn key(contact: &str, e: &Enrolment, parts: &[&[u8]]) -> IdempotencyKey {
    let mut h = crate::hash::SipHasher128::keys();
    h.part(contact.as_bytes())
        .part(b"journey")
        .part(e.journey.as_bytes())
        .part(&e.version.to_le_bytes())
        .part(&e.instance.to_le_bytes())
        .part(&(parts.len() as u64).to_le_bytes());
    for p in parts {
        h.part(p);
    }
    IdempotencyKey(h.finish())
}

/// A journey step performing an action: what its effect is.
pub(crate) struct StepAction<'p> {
    enrolment: &'p Enrolment,
    index: u32,
}

impl StepAction<'_> {
    pub(super) fn effect(&self, step: &Step<'_>, status: Status, action: &ActionDef) -> Effect {
        let e = self.enrolment;
        let kind = EffectKind::JourneyAction {
            journey: e.journey.clone(),
            version: e.version,
            instance: e.instance,
            step: e.step.clone(),
            index: self.index,
            action: action.clone(),
        };
        let parts: [&[u8]; 4] =
            [b"action", e.step.as_bytes(), &e.seq.to_le_bytes(), &self.index.to_le_bytes()];
        journey_effect(step, key(step.id.as_str(), e, &parts), status, kind)
    }

    pub(super) fn error(&self, step: &Step<'_>, message: String) -> Effect {
        let e = self.enrolment;
        let rule = crate::id::RuleId::new(format!("journey:{}/{}", e.journey, e.step));
        let parts: [&[u8]; 4] =
            [b"error", e.step.as_bytes(), &e.seq.to_le_bytes(), &self.index.to_le_bytes()];
        journey_effect(
            step,
            key(step.id.as_str(), e, &parts),
            Status::Ready,
            EffectKind::RuleError { rule, message },
        )
    }
}

fn journey_effect(step: &Step<'_>, key: IdempotencyKey, status: Status, kind: EffectKind) -> Effect {
    Effect {
        key,
        contact: step.id.clone(),
        cause: step.cause.clone(),
        at: step.now,
        status,
        kind,
        decision: None,
        params: Default::default(),
        approval: None,
    }
}

/// How many waits one enrolment may get through in one step.
const MAX_WAITS_PER_STEP: usize = 1_024;

/// An enrolment as conditions read it: `journey.id`, `version`, `instance`, `step`,
/// `arm` (absent before a split), `entered` and `reached`.
fn enrolment_value(e: &Enrolment) -> crate::value::Value {
    use crate::value::Value;
    let mut map = crate::value::Map::new();
    map.insert(Value::from("id"), Value::from(e.journey.as_str()));
    map.insert(Value::from("version"), Value::Int(i64::from(e.version)));
    map.insert(Value::from("instance"), Value::Int(i64::from(e.instance)));
    map.insert(Value::from("step"), Value::from(e.step.as_str()));
    if let Some(arm) = &e.arm {
        map.insert(Value::from("arm"), Value::from(arm.as_str()));
    }
    map.insert(Value::from("entered"), Value::Timestamp(e.entered));
    map.insert(Value::from("reached"), Value::Timestamp(e.reached));
    Value::Map(std::sync::Arc::new(map))
}

/// Where an enrolment goes after running steps: on (parked at a wait) or out.
enum Flow {
    Parked,
    Ended,
}

/// The arm a split puts a contact in: a deterministic hash of the contact, the journey,
/// its seed and the split step, mapped onto the weights (holdout last). `None`: the
/// holdout.
pub(crate) fn choose_arm(
    contact: &str,
    journey: &Journey,
    step: &str,
    arms: &[crate::journey::Arm],
    holdout: Option<f64>,
) -> Option<usize> {
    let h = Fnv::new()
        .bytes(contact.as_bytes())
        .bytes(journey.id().as_bytes())
        .bytes(journey.seed().as_bytes())
        .bytes(step.as_bytes())
        .finish();
    // 53 bits of the hash, uniform in [0, 1).
    let unit = (h >> 11) as f64 / (1u64 << 53) as f64;
    let total: f64 = arms.iter().map(|a| a.weight()).sum::<f64>() + holdout.unwrap_or(0.0);
    let mut pick = unit * total;
    for (i, arm) in arms.iter().enumerate() {
        if pick < arm.weight() {
            return Some(i);
        }
        pick -= arm.weight();
    }
    if holdout.is_some() {
        None
    } else {
        Some(arms.len().saturating_sub(1))
    }
}

impl Engine {
    /// Queues an entry asked for by an `enroll_journey` action (journeys the program
    /// does not define are left to the host).
    pub(super) fn queue_entry(&self, journey: &str, step: &mut Step<'_>) {
        if let Some(j) = self.program.journeys().iter().position(|j| j.id() == journey && !j.retired()) {
            step.journeys.enter.push(j);
        }
    }

    /// Carries enrolments over to this program (see [`Engine::adopt`]): those whose
    /// version is gone move to the step with the same id in the current version when
    /// its `upgrade` policy is `move`; the others are left to end as `superseded` at the
    /// next step.
    pub(super) fn adopt_journeys(&self, state: &mut ContactState) {
        let journeys = self.program.journeys();
        for e in &mut state.journeys {
            if journeys.version(&e.journey, e.version).is_some() {
                continue;
            }
            let Some(current) = journeys.current(&e.journey) else { continue };
            if current.upgrade() == crate::journey::Upgrade::Move && current.step_index(&e.step).is_some() {
                e.version = current.version();
                e.trail.clear();
            }
        }
    }

    /// Queues the entries of journeys whose trigger listens for a cascade round's
    /// changes.
    pub(super) fn journey_entries(
        &self,
        changes: &[Change],
        segment_changes: &[(usize, Direction)],
        step: &mut Step<'_>,
    ) {
        for (j, journey) in self.program.journeys().iter().enumerate() {
            if journey.retired() {
                continue;
            }
            if let Some(trigger) = journey.entry() {
                if super::cascade::listens(trigger, changes, segment_changes) {
                    step.journeys.enter.push(j);
                }
            }
        }
    }

    /// The earliest instant after `now` at which a journey needs the contact: a wait's
    /// deadline, a wait for's timeout, a holdout's end, or a calendar entry.
    pub(super) fn journey_wake(
        &self,
        state: &ContactState,
        contact: &Contact,
        now: Timestamp,
    ) -> Option<Timestamp> {
        // A deadline already past (a loop of short waits a late wake-up did not finish)
        // is taken at the next instant.
        let soon = crate::time::Duration::from_nanos(1).ok().and_then(|d| now.checked_add(d));
        let mut wake = state
            .journeys
            .iter()
            .filter_map(|e| e.until)
            .filter(|t| *t < Timestamp::MAX)
            .filter_map(|t| if t > now { Some(t) } else { soon })
            .min();
        for journey in self.program.journeys().iter().filter(|j| !j.retired()) {
            if let Some(t) = journey.entry().and_then(|t| t.occurrence_after(contact, now)) {
                wake = Some(wake.map_or(t, |w| w.min(t)));
            }
        }
        wake
    }

    /// Runs the journeys after the cascade: removals, then every active enrolment
    /// (exits, goal, due waits, awaited events and conditions), then entries; the
    /// actions their steps perform go through the cascade again, up to
    /// [`MAX_CASCADE`] rounds.
    pub(super) fn run_journeys(
        &self,
        state: &mut ContactState,
        step: &mut Step<'_>,
        scratch: &mut EngineScratch,
    ) -> Result<(), EngineError> {
        let journeys = self.program.journeys();
        if journeys.is_empty() && state.journeys.is_empty() {
            step.journeys = JourneyQueue::default();
            return Ok(());
        }
        let now = step.now;
        let event = step.event;
        // Entries of this step's event and, for a timeout, calendar entries due.
        let mut entries: Vec<(usize, bool)> = Vec::new();
        if let Some(event) = event {
            for (j, journey) in journeys.iter().enumerate() {
                if !journey.retired()
                    && journey.entry().and_then(|t| t.event_type()) == Some(event.event_type())
                {
                    entries.push((j, true));
                }
            }
        }
        if matches!(step.cause, Cause::Timeout(_)) {
            for (j, journey) in journeys.iter().enumerate() {
                let Some(trigger) = journey.entry().filter(|t| t.is_calendar() && !journey.retired()) else {
                    continue;
                };
                let Some(occurrence) = trigger.occurrence_after(&step.contact, state.last) else { continue };
                let log = state.journey_log.entry(journey.id().to_string()).or_default();
                if occurrence <= now && log.occurred.is_none_or(|t| t < occurrence) {
                    log.occurred = Some(occurrence);
                    entries.push((j, false));
                }
            }
        }
        for round in 0..MAX_CASCADE {
            let event = if round == 0 { event } else { None };
            self.bind_values(state, now, scratch);
            self.member_values(state, &mut scratch.segments);
            for id in std::mem::take(&mut step.journeys.remove) {
                while let Some(i) = state.journeys.iter().position(|e| e.journey == id) {
                    let e = state.journeys.remove(i);
                    self.end(state, e, ExitReason::Removed, None, step);
                }
            }
            // Active enrolments, oldest first; each is taken out while it runs.
            let mut i = 0;
            while i < state.journeys.len() {
                let e = state.journeys.remove(i);
                if let Some(e) = self.drive(state, e, event, step, scratch) {
                    state.journeys.insert(i, e);
                    i += 1;
                }
            }
            if round == 0 {
                for &(j, with_event) in &entries {
                    self.enter(state, j, if with_event { event } else { None }, step, scratch);
                }
            }
            for j in std::mem::take(&mut step.journeys.enter) {
                self.enter(state, j, None, step, scratch);
            }
            if step.changes.is_empty() && step.journeys.is_empty() {
                return Ok(());
            }
            self.cascade(state, step, scratch)?;
        }
        step.journeys = JourneyQueue::default();
        Ok(())
    }

    /// Evaluates a journey condition, with the event when given; an error is an effect
    /// and does not hold.
    fn journey_holds(
        &self,
        condition: &Expression,
        event: Option<&Event>,
        enrolment: Option<&Enrolment>,
        what: &str,
        scratch: &mut EngineScratch,
        step: &mut Step<'_>,
    ) -> bool {
        // `journey` follows the engine's variables, bound for this condition.
        let bound = scratch.vars.len();
        if let Some(e) = enrolment.filter(|_| condition.reads_vars() && bound == super::step::ENGINE_VARS) {
            scratch.vars.push(Some(enrolment_value(e)));
        }
        let result = self.eval_journey_condition(condition, event, scratch, step);
        scratch.vars.truncate(bound);
        match result {
            Ok(holds) => holds,
            Err(error) => {
                let rule = crate::id::RuleId::new(format!("journey:{what}"));
                let kind = EffectKind::RuleError { rule, message: error.to_string() };
                step.emit(&[b"journey-error", what.as_bytes()], kind);
                false
            }
        }
    }

    fn eval_journey_condition(
        &self,
        condition: &Expression,
        event: Option<&Event>,
        scratch: &EngineScratch,
        step: &Step<'_>,
    ) -> Result<bool, crate::expr::EvalError> {
        let mut activation = scratch.activation(&step.contact, step.now);
        if let Some(event) = event {
            activation = activation.with_event(event);
        }
        condition.eval_bool(&activation)
    }

    /// Whether an event (with its optional condition), or a condition alone, holds.
    #[allow(clippy::too_many_arguments)]
    fn event_or_condition(
        &self,
        wanted: Option<crate::id::EventTypeIndex>,
        condition: Option<&Expression>,
        event: Option<&Event>,
        enrolment: &Enrolment,
        what: &str,
        scratch: &mut EngineScratch,
        step: &mut Step<'_>,
    ) -> bool {
        match (wanted, event) {
            (Some(t), Some(event)) if event.event_type() == t => condition
                .is_none_or(|c| self.journey_holds(c, Some(event), Some(enrolment), what, scratch, step)),
            (Some(_), _) => false,
            (None, _) => {
                condition.is_some_and(|c| self.journey_holds(c, None, Some(enrolment), what, scratch, step))
            }
        }
    }

    /// Enters a journey if its condition, re-entry policy and concurrency allow.
    fn enter(
        &self,
        state: &mut ContactState,
        j: usize,
        event: Option<&Event>,
        step: &mut Step<'_>,
        scratch: &mut EngineScratch,
    ) {
        let Some(journey) = self.program.journeys().get(j) else { return };
        if journey.retired() {
            return;
        }
        let id = journey.id();
        if let Some(condition) = journey.condition() {
            if !self.journey_holds(condition, event, None, &format!("{id}/entry"), scratch, step) {
                return;
            }
        }
        let now = step.now;
        let log = state.journey_log.get(id).cloned().unwrap_or_default();
        let active = state.journeys.iter().filter(|e| e.journey == id).count();
        let allowed = match journey.reentry() {
            crate::journey::Reentry::Never => log.instances == 0,
            crate::journey::Reentry::OncePerVersion => !log.versions.contains(&journey.version()),
            crate::journey::Reentry::After(period) => {
                active == 0 && log.last_exit.is_none_or(|x| x.checked_add(period).is_some_and(|t| t <= now))
            }
            crate::journey::Reentry::Always => true,
        };
        if !allowed {
            return;
        }
        if active >= journey.max_active() as usize {
            if journey.reentry() != crate::journey::Reentry::Always {
                return;
            }
            if let Some(i) = state.journeys.iter().position(|e| e.journey == id) {
                let e = state.journeys.remove(i);
                self.end(state, e, ExitReason::Reentered, None, step);
            }
        }
        let Some(instance) = log.instances.checked_add(1) else { return };
        let log = state.journey_log.entry(id.to_string()).or_default();
        log.instances = instance;
        if !log.versions.contains(&journey.version()) {
            log.versions.push(journey.version());
        }
        let e = Enrolment {
            journey: id.to_string(),
            version: journey.version(),
            instance,
            step: journey.steps()[journey.start()].id().to_string(),
            entered: now,
            reached: now,
            until: None,
            arm: None,
            holdout: false,
            seq: 0,
            trail: Vec::new(),
        };
        let kind = EffectKind::JourneyEntered { journey: id.to_string(), version: e.version, instance };
        step.outcome.effects.push(journey_effect(
            step,
            key(step.id.as_str(), &e, &[b"entered"]),
            Status::Ready,
            kind,
        ));
        if let Some(e) = self.run_from(state, e, journey, Some(journey.start()), now, step, scratch) {
            // A fresh enrolment parked at its first wait: exits and goal apply at once.
            if let Some(e) = self.drive(state, e, None, step, scratch) {
                state.journeys.push(e);
            }
        }
    }

    /// Moves one enrolment as far as it can go now: exits and goal first, then a due
    /// deadline (at its own instant: a timeout comes before an event of the same
    /// instant), then an awaited event or condition. `None` when it ended.
    fn drive(
        &self,
        state: &mut ContactState,
        mut e: Enrolment,
        event: Option<&Event>,
        step: &mut Step<'_>,
        scratch: &mut EngineScratch,
    ) -> Option<Enrolment> {
        let Some(journey) = self.program.journeys().version(&e.journey, e.version) else {
            // Its version is gone from the program (adopt moves or ends these).
            self.end(state, e, ExitReason::Superseded, None, step);
            return None;
        };
        let now = step.now;
        let mut event_used = false;
        // Each turn takes one wait; the bound keeps a loop of short waits woken late
        // from running unboundedly in one step (the rest is taken at the next wake-up).
        for _ in 0..MAX_WAITS_PER_STEP {
            let event_now = if event_used { None } else { event };
            // Exit conditions, then the goal.
            for exit in journey.exits() {
                let what = format!("{}/exit/{}", journey.id(), exit.id());
                if self.event_or_condition(
                    exit.event(),
                    exit.condition(),
                    event_now,
                    &e,
                    &what,
                    scratch,
                    step,
                ) {
                    self.end(state, e, ExitReason::ExitCondition, Some(exit.id().to_string()), step);
                    return None;
                }
            }
            if let Some(goal) = journey.goal() {
                let what = format!("{}/goal", journey.id());
                if self.event_or_condition(
                    goal.event(),
                    goal.condition(),
                    event_now,
                    &e,
                    &what,
                    scratch,
                    step,
                ) {
                    let kind = EffectKind::JourneyGoal {
                        journey: e.journey.clone(),
                        version: e.version,
                        instance: e.instance,
                        arm: e.arm.clone(),
                    };
                    step.outcome.effects.push(journey_effect(
                        step,
                        key(step.id.as_str(), &e, &[b"goal"]),
                        Status::Ready,
                        kind,
                    ));
                    self.end(state, e, ExitReason::Goal, None, step);
                    return None;
                }
            }
            let Some(at) = journey.step_index(&e.step) else {
                self.end(state, e, ExitReason::Superseded, None, step);
                return None;
            };
            let due = e.until.filter(|t| *t <= now);
            let (next, from) = match journey.steps()[at].kind() {
                _ if e.holdout => match due {
                    Some(_) => {
                        self.end(state, e, ExitReason::Completed, None, step);
                        return None;
                    }
                    None => return Some(e),
                },
                StepKind::Wait { next, .. } => match due {
                    Some(t) => (*next, t),
                    None => return Some(e),
                },
                StepKind::WaitFor { event: wanted, condition, next, on_timeout, .. } => {
                    if let Some(t) = due {
                        (*on_timeout, t)
                    } else {
                        let what = format!("{}/{}", journey.id(), e.step);
                        if self.event_or_condition(
                            *wanted,
                            condition.as_ref(),
                            event_now,
                            &e,
                            &what,
                            scratch,
                            step,
                        ) {
                            event_used |= wanted.is_some();
                            (*next, now)
                        } else {
                            return Some(e);
                        }
                    }
                }
                // Not a step an enrolment rests at (a changed program): go on from it.
                _ => (Some(at), now),
            };
            e = self.run_from(state, e, journey, next, from, step, scratch)?;
            self.bind_values(state, now, scratch);
            self.member_values(state, &mut scratch.segments);
        }
        Some(e)
    }

    /// Runs steps from `from` (reached at `t`) until one waits (`Some`, parked there)
    /// or the enrolment ends (`None`).
    #[allow(clippy::too_many_arguments)]
    fn run_from(
        &self,
        state: &mut ContactState,
        mut e: Enrolment,
        journey: &Journey,
        from: Option<usize>,
        t: Timestamp,
        step: &mut Step<'_>,
        scratch: &mut EngineScratch,
    ) -> Option<Enrolment> {
        let mut current = from;
        // Loops pass through a wait (checked at compile time); the bound is a guard.
        for _ in 0..=journey.steps().len() {
            let Some(at) = current else {
                self.end(state, e, ExitReason::Completed, None, step);
                return None;
            };
            let node = &journey.steps()[at];
            e.step = node.id().to_string();
            e.reached = t;
            e.until = None;
            e.seq = e.seq.saturating_add(1);
            if e.trail.len() >= TRAIL {
                e.trail.remove(0);
            }
            e.trail.push(u16::try_from(at).unwrap_or(u16::MAX));
            let seq = e.seq.to_le_bytes();
            let kind = EffectKind::JourneyStep {
                journey: e.journey.clone(),
                version: e.version,
                instance: e.instance,
                step: e.step.clone(),
            };
            let k = key(step.id.as_str(), &e, &[b"step", e.step.as_bytes(), &seq]);
            step.outcome.effects.push(journey_effect(step, k, Status::Ready, kind));
            match self.run_step(state, &mut e, journey, node.kind(), t, step, scratch) {
                Ok(next) => current = next,
                Err(Flow::Parked) => return Some(e),
                Err(Flow::Ended) => {
                    self.end(state, e, ExitReason::Completed, None, step);
                    return None;
                }
            }
        }
        self.end(state, e, ExitReason::Completed, None, step);
        None
    }

    /// Runs one step: `Ok(next)` to go on, `Err(Parked)` when it waits, `Err(Ended)`
    /// for an exit step.
    #[allow(clippy::too_many_arguments)]
    fn run_step(
        &self,
        state: &mut ContactState,
        e: &mut Enrolment,
        journey: &Journey,
        kind: &StepKind,
        t: Timestamp,
        step: &mut Step<'_>,
        scratch: &mut EngineScratch,
    ) -> Result<Option<usize>, Flow> {
        let waiting = |e: &mut Enrolment, until: Timestamp, step: &mut Step<'_>| {
            e.until = Some(until);
            let kind = EffectKind::JourneyWaiting {
                journey: e.journey.clone(),
                version: e.version,
                instance: e.instance,
                step: e.step.clone(),
                until,
            };
            let k = key(step.id.as_str(), e, &[b"wait", e.step.as_bytes(), &e.seq.to_le_bytes()]);
            step.outcome.effects.push(journey_effect(step, k, Status::Ready, kind));
        };
        match kind {
            StepKind::Action { actions, next } => {
                for (index, action) in actions.iter().enumerate() {
                    let index = u32::try_from(index).unwrap_or(u32::MAX);
                    let snapshot = e.clone();
                    self.perform(
                        state,
                        action,
                        Default::default(),
                        Performer::Journey(StepAction { enrolment: &snapshot, index }),
                        step,
                    );
                }
                self.bind_values(state, step.now, scratch);
                self.member_values(state, &mut scratch.segments);
                Ok(*next)
            }
            StepKind::Wait { wait, .. } => {
                waiting(e, wait.deadline(&step.contact, t), step);
                Err(Flow::Parked)
            }
            StepKind::WaitFor { timeout, .. } => {
                waiting(e, t.checked_add(*timeout).unwrap_or(Timestamp::MAX), step);
                Err(Flow::Parked)
            }
            StepKind::Branch { cases, otherwise } => {
                for (c, (condition, next)) in cases.iter().enumerate() {
                    let what = format!("{}/{}/{c}", journey.id(), e.step);
                    if self.journey_holds(condition, None, Some(e), &what, scratch, step) {
                        return Ok(*next);
                    }
                }
                Ok(*otherwise)
            }
            StepKind::Split { arms, holdout } => {
                let chosen = choose_arm(step.id.as_str(), journey, &e.step, arms, holdout.map(|(w, _)| w));
                let (arm, next) = match chosen {
                    Some(i) => (arms[i].id().to_string(), Some(arms[i].next())),
                    None => ("holdout".to_string(), None),
                };
                e.arm = Some(arm.clone());
                e.holdout = next.is_none();
                let kind = EffectKind::JourneyArm {
                    journey: e.journey.clone(),
                    version: e.version,
                    instance: e.instance,
                    step: e.step.clone(),
                    arm,
                    holdout: e.holdout,
                };
                let k = key(step.id.as_str(), e, &[b"arm", e.step.as_bytes(), &e.seq.to_le_bytes()]);
                step.outcome.effects.push(journey_effect(step, k, Status::Ready, kind));
                match (next, holdout) {
                    (Some(next), _) => Ok(next),
                    (None, Some((_, period))) => {
                        waiting(e, t.checked_add(*period).unwrap_or(Timestamp::MAX), step);
                        Err(Flow::Parked)
                    }
                    (None, None) => Err(Flow::Ended),
                }
            }
            StepKind::Goto(to) => Ok(Some(*to)),
            StepKind::Exit => Err(Flow::Ended),
        }
    }

    /// Ends an enrolment (already out of the state's list): the exit effect and the
    /// journey's log.
    fn end(
        &self,
        state: &mut ContactState,
        e: Enrolment,
        reason: ExitReason,
        exit: Option<String>,
        step: &mut Step<'_>,
    ) {
        let log = state.journey_log.entry(e.journey.clone()).or_default();
        log.last_exit = Some(step.now);
        let k = key(step.id.as_str(), &e, &[b"exit"]);
        let kind = EffectKind::JourneyExited {
            journey: e.journey,
            version: e.version,
            instance: e.instance,
            reason,
            exit,
            step: e.step,
            arm: e.arm,
        };
        step.outcome.effects.push(journey_effect(step, k, Status::Ready, kind));
    }
}
