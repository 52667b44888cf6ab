//! Journeys: multi-step nurture sequences, compiled from the document's `journeys`
//! section into immutable programs the engine runs (`docs/journeys.md`).
//!
//! A [`Journey`] is a graph of [`Step`]s with explicit next steps: actions, waits (a
//! span, a local time on chosen weekdays, a date attribute plus an offset), waits for an
//! event or a condition with a timeout, branches, weighted splits with a holdout, gotos
//! and exits. Compilation checks every reference, reachability, loops without a wait,
//! branches without `else`, waits for without a timeout, split weights and entry
//! triggers that can never fire, reporting every problem at once with its path.

mod compile;
mod mermaid;

pub(crate) use compile::compile_journeys;

use crate::expr::Expression;
use crate::id::EventTypeIndex;
use crate::schema::{Contact, Slot};
use crate::time::{Duration, Timestamp};
use crate::trigger::{Trigger, ZoneSource};
use crate::value::Value;

/// The most steps one journey may have.
pub const MAX_STEPS: usize = 1_000;

/// How many visited steps an enrolment remembers (its trail), most recent last.
pub const TRAIL: usize = 16;

/// The compiled journeys of a program, in document order (retired versions included).
#[derive(Clone, Debug, Default)]
pub struct Journeys {
    list: Vec<Journey>,
}

impl Journeys {
    /// Every journey version, in document order.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = &Journey> {
        self.list.iter()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.list.is_empty()
    }

    /// How many journey versions there are.
    pub fn len(&self) -> usize {
        self.list.len()
    }

    /// The current (not retired) version of a journey.
    pub fn current(&self, id: &str) -> Option<&Journey> {
        self.list.iter().find(|j| j.id == id && !j.retired)
    }

    /// A journey's position among [`Journeys::iter`], by id and version.
    pub fn position(&self, id: &str, version: u32) -> Option<usize> {
        self.list.iter().position(|j| j.id == id && j.version == version)
    }

    /// One version of a journey.
    pub fn version(&self, id: &str, version: u32) -> Option<&Journey> {
        self.position(id, version).map(|i| &self.list[i])
    }

    /// The journey at a position of [`Journeys::iter`].
    pub fn get(&self, index: usize) -> Option<&Journey> {
        self.list.get(index)
    }
}

/// One compiled journey version.
#[derive(Clone, Debug)]
pub struct Journey {
    pub(crate) id: String,
    pub(crate) version: u32,
    pub(crate) description: Option<String>,
    pub(crate) entry: Option<Trigger>,
    pub(crate) condition: Option<Expression>,
    pub(crate) reentry: Reentry,
    pub(crate) max_active: u32,
    pub(crate) exits: Vec<Exit>,
    pub(crate) goal: Option<Goal>,
    pub(crate) seed: String,
    pub(crate) upgrade: Upgrade,
    pub(crate) retired: bool,
    pub(crate) steps: Vec<Step>,
    pub(crate) start: usize,
}

impl Journey {
    /// The journey's id.
    pub fn id(&self) -> &str {
        &self.id
    }
    /// Its version.
    pub fn version(&self) -> u32 {
        self.version
    }
    /// What it is for.
    pub fn description(&self) -> Option<&str> {
        self.description.as_deref()
    }
    /// Its entry trigger; `None`: only `enroll_journey` actions enrol.
    pub fn entry(&self) -> Option<&Trigger> {
        self.entry.as_ref()
    }
    /// Its re-entry policy.
    pub fn reentry(&self) -> Reentry {
        self.reentry
    }
    /// How many enrolments one contact may have at once.
    pub fn max_active(&self) -> u32 {
        self.max_active
    }
    /// Its upgrade policy.
    pub fn upgrade(&self) -> Upgrade {
        self.upgrade
    }
    /// Whether it is a retired version (no new entries).
    pub fn retired(&self) -> bool {
        self.retired
    }
    /// The split seed.
    pub fn seed(&self) -> &str {
        &self.seed
    }
    /// Its steps, in document order.
    pub fn steps(&self) -> &[Step] {
        &self.steps
    }
    /// The first step's position.
    pub fn start(&self) -> usize {
        self.start
    }
    /// A step's position by id.
    pub fn step_index(&self, id: &str) -> Option<usize> {
        self.steps.iter().position(|s| s.id == id)
    }
    /// Its exit conditions.
    pub fn exits(&self) -> &[Exit] {
        &self.exits
    }
    /// Its goal.
    pub fn goal(&self) -> Option<&Goal> {
        self.goal.as_ref()
    }
    /// The entry condition.
    pub fn condition(&self) -> Option<&Expression> {
        self.condition.as_ref()
    }
}

/// When a contact may enter a journey again.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Reentry {
    /// Only once, ever.
    Never,
    /// Whenever the entry fires; an active enrolment at the limit exits (`reentered`).
    Always,
    /// Once per version of the journey.
    OncePerVersion,
    /// When no enrolment is active and this long has passed since the last exit.
    After(Duration),
}

/// What a newer version does with enrolments in this one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Upgrade {
    /// They finish on their version.
    Finish,
    /// They move to the step with the same id in the new version.
    Move,
    /// They exit (`superseded`).
    Exit,
}

/// An exit condition.
#[derive(Clone, Debug)]
pub struct Exit {
    pub(crate) id: String,
    pub(crate) event: Option<EventTypeIndex>,
    pub(crate) condition: Option<Expression>,
}

impl Exit {
    /// Its id.
    pub fn id(&self) -> &str {
        &self.id
    }
    /// The event type that exits, if any.
    pub fn event(&self) -> Option<EventTypeIndex> {
        self.event
    }
    /// The condition.
    pub fn condition(&self) -> Option<&Expression> {
        self.condition.as_ref()
    }
}

/// A goal: an event (with an optional condition on it) or a condition.
#[derive(Clone, Debug)]
pub struct Goal {
    pub(crate) event: Option<EventTypeIndex>,
    pub(crate) condition: Option<Expression>,
}

impl Goal {
    /// The event type that reaches the goal, if any.
    pub fn event(&self) -> Option<EventTypeIndex> {
        self.event
    }
    /// The condition.
    pub fn condition(&self) -> Option<&Expression> {
        self.condition.as_ref()
    }
}

/// One compiled step.
#[derive(Clone, Debug)]
pub struct Step {
    pub(crate) id: String,
    pub(crate) kind: StepKind,
}

impl Step {
    /// Its id.
    pub fn id(&self) -> &str {
        &self.id
    }
    /// What it does.
    pub fn kind(&self) -> &StepKind {
        &self.kind
    }
    /// Its kind's name: `action`, `wait`, `wait_for`, `branch`, `split`, `goto`, `exit`.
    pub fn kind_name(&self) -> &'static str {
        match self.kind {
            StepKind::Action { .. } => "action",
            StepKind::Wait { .. } => "wait",
            StepKind::WaitFor { .. } => "wait_for",
            StepKind::Branch { .. } => "branch",
            StepKind::Split { .. } => "split",
            StepKind::Goto(_) => "goto",
            StepKind::Exit => "exit",
        }
    }
    /// Every step it can go to next (positions), in order; `None` entries end the
    /// journey as completed.
    pub fn successors(&self) -> Vec<Option<usize>> {
        match &self.kind {
            StepKind::Action { next, .. } | StepKind::Wait { next, .. } => vec![*next],
            StepKind::WaitFor { next, on_timeout, .. } => vec![*next, *on_timeout],
            StepKind::Branch { cases, otherwise } => {
                cases.iter().map(|(_, n)| *n).chain([*otherwise]).collect()
            }
            StepKind::Split { arms, .. } => arms.iter().map(|a| a.next).collect(),
            StepKind::Goto(to) => vec![Some(*to)],
            StepKind::Exit => vec![],
        }
    }
    /// Whether the step waits (its outgoing edges may close a loop).
    pub fn waits(&self) -> bool {
        matches!(self.kind, StepKind::Wait { .. } | StepKind::WaitFor { .. })
    }
}

/// What a step does. Next steps are positions in the journey's steps; `None` ends the
/// journey as completed.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub enum StepKind {
    /// Performs actions, then goes on.
    Action {
        /// The actions.
        actions: Vec<crate::def::ActionDef>,
        /// The next step.
        next: Option<usize>,
    },
    /// Waits.
    Wait {
        /// Until when.
        wait: Wait,
        /// The next step.
        next: Option<usize>,
    },
    /// Waits for an event or a condition, at most `timeout`.
    WaitFor {
        /// The event type awaited, if any.
        event: Option<EventTypeIndex>,
        /// The condition (on the event, or over the contact without one).
        condition: Option<Expression>,
        /// The longest wait.
        timeout: Duration,
        /// After the event or condition.
        next: Option<usize>,
        /// After the timeout.
        on_timeout: Option<usize>,
    },
    /// The first case that holds chooses; else `otherwise`.
    Branch {
        /// The cases.
        cases: Vec<(Expression, Option<usize>)>,
        /// When none holds.
        otherwise: Option<usize>,
    },
    /// Weighted arms and an optional holdout.
    Split {
        /// The arms.
        arms: Vec<Arm>,
        /// The holdout: its weight and how long holdout contacts stay enrolled.
        holdout: Option<(f64, Duration)>,
    },
    /// Goes to a step.
    Goto(usize),
    /// Ends the enrolment as completed.
    Exit,
}

/// One arm of a split.
#[derive(Clone, Debug)]
pub struct Arm {
    pub(crate) id: String,
    pub(crate) weight: f64,
    pub(crate) next: Option<usize>,
}

impl Arm {
    /// Its id.
    pub fn id(&self) -> &str {
        &self.id
    }
    /// Its relative weight.
    pub fn weight(&self) -> f64 {
        self.weight
    }
    /// Its first step.
    pub fn next(&self) -> Option<usize> {
        self.next
    }
}

/// How long a wait step waits.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub enum Wait {
    /// A span.
    For(Duration),
    /// Until local time `at` on one of the weekdays in `days` (bit 0 Monday .. bit 6
    /// Sunday), in the zone.
    Until {
        /// The local time.
        at: chrono::NaiveTime,
        /// The weekdays.
        days: u8,
        /// The zone.
        zone: ZoneSource,
    },
    /// Until a contact timestamp attribute plus a signed offset.
    Date {
        /// The attribute.
        field: Slot,
        /// The offset (negative: before).
        offset: Duration,
    },
}

impl Wait {
    /// When a wait reached at `reached` ends for `contact`. A local time is the first
    /// one strictly after `reached` on an allowed weekday, resolved in the zone as
    /// calendar triggers are (a time skipped by a daylight-saving change moves forward
    /// by the gap; a repeated one takes the earlier instant). A date wait whose
    /// attribute is missing, or whose instant has passed, ends at `reached`.
    pub fn deadline(&self, contact: &Contact, reached: Timestamp) -> Timestamp {
        use chrono::Datelike;
        match self {
            Wait::For(d) => reached.checked_add(*d).unwrap_or(Timestamp::MAX),
            Wait::Until { at, days, zone } => {
                let zone = zone.of(contact);
                let first = zone.local_date(reached);
                (0..=8)
                    .find_map(|k| {
                        let day = first.checked_add_signed(chrono::TimeDelta::try_days(k)?)?;
                        if days & (1 << day.weekday().num_days_from_monday()) == 0 {
                            return None;
                        }
                        zone.resolve_local(day.and_time(*at)).ok().filter(|t| *t > reached)
                    })
                    .unwrap_or(Timestamp::MAX)
            }
            Wait::Date { field, offset } => match contact.get(*field) {
                Some(Value::Timestamp(t)) => t.checked_add(*offset).unwrap_or(Timestamp::MAX).max(reached),
                _ => reached,
            },
        }
    }
}
