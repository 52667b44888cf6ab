//! Repeat policies: how often one rule may fire (or award points) for one contact, and
//! the little a contact's state must remember to enforce it.
//!
//! Engine rules and point rules share this one implementation: the engine keeps a
//! [`RepeatMemory`] per rule id, the scorer one per rule position.

use serde::{Deserialize, Serialize};
use smallvec::SmallVec;

use crate::def::RepeatDef;
use crate::diagnostic::{did_you_mean, Code, Diagnostic};
use crate::schema::{Contact, Schema, Slot};
use crate::time::{Duration, TimeZone, Timestamp};
use crate::value::{Type, Value};

/// How often one rule may fire for one contact.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Repeat {
    /// Every time its trigger and condition hold.
    EveryTime,
    /// Only the first time ever.
    Once,
    /// At most `max` times in any window of length `per` (a sliding window: Marketo's
    /// "20 per day" cap, kept exact).
    AtMost {
        /// Firings allowed per window.
        max: u32,
        /// The window.
        per: Duration,
    },
    /// At most `max` times per calendar day, week (from Monday) or month, in a time
    /// zone ("20 per calendar day" in the contact's zone): the count starts again at
    /// each local midnight (Monday midnight, first of the month).
    PerCalendar {
        /// Firings allowed per period.
        max: u32,
        /// The period.
        period: CalendarSpan,
        /// Where the zone comes from.
        zone: RepeatZone,
    },
}

/// A calendar period of a repeat cap.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum CalendarSpan {
    /// A local day.
    Day,
    /// A local week, Monday to Sunday.
    Week,
    /// A local calendar month.
    Month,
}

impl CalendarSpan {
    /// A number that is the same for two instants exactly when they fall in the same
    /// period in `zone`.
    fn period_of(self, t: Timestamp, zone: TimeZone) -> i64 {
        use chrono::Datelike;
        let day = zone.local_date(t);
        match self {
            CalendarSpan::Day => i64::from(day.num_days_from_ce()),
            CalendarSpan::Week => {
                i64::from(day.num_days_from_ce()) - i64::from(day.weekday().num_days_from_monday())
            }
            CalendarSpan::Month => i64::from(day.year()) * 12 + i64::from(day.month0()),
        }
    }
}

/// The time zone of a calendar repeat cap.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum RepeatZone {
    /// One zone for every contact.
    Fixed(TimeZone),
    /// A contact string attribute holding an IANA name or offset (UTC when absent or
    /// not a zone).
    Field(Slot),
}

impl RepeatZone {
    fn of(self, contact: Option<&Contact>) -> TimeZone {
        match (self, contact) {
            (RepeatZone::Fixed(zone), _) => zone,
            (RepeatZone::Field(slot), Some(contact)) => match contact.get(slot) {
                Some(Value::String(name)) => TimeZone::parse(name).unwrap_or(TimeZone::UTC),
                _ => TimeZone::UTC,
            },
            (RepeatZone::Field(_), None) => TimeZone::UTC,
        }
    }
}

/// A repeat policy with an optional minimum interval between two firings.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct RepeatPolicy {
    pub(crate) repeat: Repeat,
    pub(crate) min_interval: Option<Duration>,
}

impl RepeatPolicy {
    /// A policy with no minimum interval.
    pub(crate) fn new(repeat: Repeat) -> RepeatPolicy {
        RepeatPolicy { repeat, min_interval: None }
    }

    /// Whether the policy needs any memory (rules that fire every time keep none).
    pub(crate) fn needs_memory(&self) -> bool {
        self.min_interval.is_some() || !matches!(self.repeat, Repeat::EveryTime)
    }

    /// How many recent firing instants the policy must keep.
    pub(crate) fn instants_kept(&self) -> usize {
        match self.repeat {
            Repeat::AtMost { max, .. } | Repeat::PerCalendar { max, .. } => (max as usize).max(1),
            Repeat::EveryTime => 1,
            Repeat::Once => usize::from(self.min_interval.is_some()),
        }
    }

    /// Whether the rule may fire at `now`, given what it remembers (`None`: never fired).
    /// A calendar cap whose zone is a contact attribute counts in UTC here: see
    /// [`RepeatPolicy::allows_for`].
    #[cfg(test)]
    pub(crate) fn allows(&self, memory: Option<&RepeatMemory>, now: Timestamp) -> bool {
        self.allows_in(memory, now, None)
    }

    /// [`RepeatPolicy::allows`] for `contact`, whose attribute gives a calendar cap's zone.
    pub(crate) fn allows_for(
        &self,
        memory: Option<&RepeatMemory>,
        now: Timestamp,
        contact: &Contact,
    ) -> bool {
        self.allows_in(memory, now, Some(contact))
    }

    fn allows_in(&self, memory: Option<&RepeatMemory>, now: Timestamp, contact: Option<&Contact>) -> bool {
        let Some(memory) = memory else {
            return true;
        };
        self.allows_remembered(memory.ever, memory.times.iter().copied(), now, contact)
    }

    /// [`RepeatPolicy::allows`] for a rule that fired before: `ever` and its kept
    /// instants, oldest first (states that pack their memory read it this way).
    pub(crate) fn allows_remembered<I>(
        &self,
        ever: bool,
        times: I,
        now: Timestamp,
        contact: Option<&Contact>,
    ) -> bool
    where
        I: DoubleEndedIterator<Item = Timestamp> + Clone,
    {
        if let (Some(gap), Some(last)) = (self.min_interval, times.clone().next_back()) {
            if now.duration_since(last).is_some_and(|d| d < gap) {
                return false;
            }
        }
        match self.repeat {
            Repeat::EveryTime => true,
            Repeat::Once => !ever,
            Repeat::AtMost { max, per } => {
                let recent = times.filter(|t| now.duration_since(*t).is_some_and(|d| d < per));
                recent.count() < max as usize
            }
            Repeat::PerCalendar { max, period, zone } => {
                let zone = zone.of(contact);
                let current = period.period_of(now, zone);
                // Instants are kept oldest first: count back while still in this period.
                let this_period = times.rev().take_while(|t| period.period_of(*t, zone) == current);
                this_period.count() < max as usize
            }
        }
    }

    /// Records a firing at `now`.
    pub(crate) fn record(&self, memory: &mut RepeatMemory, now: Timestamp) {
        memory.ever = true;
        let keep = self.instants_kept();
        if keep > 0 {
            memory.times.push(now);
            if memory.times.len() > keep {
                memory.times.drain(..memory.times.len() - keep);
            }
        }
    }
}

/// What a repeat policy remembers of one rule: whether it ever fired, and its most recent
/// firing instants (as many as "at most N per window" needs).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(from = "MemoryWire")]
pub(crate) struct RepeatMemory {
    pub(crate) ever: bool,
    pub(crate) times: SmallVec<[Timestamp; 1]>,
}

/// The stored form; `ever` is absent in states written before it existed, where a
/// remembered instant meant the rule had fired.
#[derive(Deserialize)]
struct MemoryWire {
    #[serde(default)]
    ever: bool,
    times: SmallVec<[Timestamp; 1]>,
}

impl From<MemoryWire> for RepeatMemory {
    fn from(wire: MemoryWire) -> RepeatMemory {
        RepeatMemory { ever: wire.ever || !wire.times.is_empty(), times: wire.times }
    }
}

/// A repeat policy from the document (`None`: every time), problems recorded at `path`;
/// a calendar cap takes a fixed zone only (point rules).
pub(crate) fn compile_repeat(
    def: Option<&RepeatDef>,
    path: &str,
    diagnostics: &mut Vec<Diagnostic>,
) -> Repeat {
    compile_rule_repeat(def, None, path, diagnostics)
}

/// [`compile_repeat`] for an engine rule: a calendar cap's zone may be `contact.FIELD`,
/// a string field of `schema`.
pub(crate) fn compile_rule_repeat(
    def: Option<&RepeatDef>,
    schema: Option<&Schema>,
    path: &str,
    diagnostics: &mut Vec<Diagnostic>,
) -> Repeat {
    match def {
        None => Repeat::EveryTime,
        Some(RepeatDef::Named(name)) => match name.as_str() {
            "every_time" => Repeat::EveryTime,
            "once" => Repeat::Once,
            other => {
                diagnostics.push(
                    Diagnostic::new(Code::InvalidDocument, format!("unknown repeat policy `{other}`"))
                        .with_path(path.to_string())
                        .with_help("write \"every_time\", \"once\" or {\"max\": N, \"per\": \"1d\"}")
                        .with_did_you_mean(did_you_mean(other, ["every_time", "once"])),
                );
                Repeat::EveryTime
            }
        },
        Some(RepeatDef::AtMost { max, per, zone }) => {
            let period = match per.as_str() {
                "day" => Some(CalendarSpan::Day),
                "week" => Some(CalendarSpan::Week),
                "month" => Some(CalendarSpan::Month),
                _ => None,
            };
            if let Some(period) = period {
                return match calendar_zone(zone.as_deref(), schema, &format!("{path}/zone"), diagnostics) {
                    Some(zone) => Repeat::PerCalendar { max: *max, period, zone },
                    None => Repeat::EveryTime,
                };
            }
            if zone.is_some() {
                diagnostics.push(
                    Diagnostic::new(Code::InvalidDocument, "`zone` applies to calendar periods only")
                        .with_path(format!("{path}/zone"))
                        .with_help(
                            "write `per` as \"day\", \"week\" or \"month\" for a calendar period, \
                             or remove `zone` for a sliding window such as \"1d\"",
                        ),
                );
            }
            let per = crate::def::period_or_report(per, format!("{path}/per"), diagnostics);
            match (per, zone) {
                (Some(per), None) => Repeat::AtMost { max: *max, per },
                _ => Repeat::EveryTime,
            }
        }
    }
}

/// A calendar cap's zone: an IANA name or offset, or `contact.FIELD`; UTC by default.
fn calendar_zone(
    text: Option<&str>,
    schema: Option<&Schema>,
    path: &str,
    diagnostics: &mut Vec<Diagnostic>,
) -> Option<RepeatZone> {
    let Some(text) = text else {
        return Some(RepeatZone::Fixed(TimeZone::UTC));
    };
    if let Some(field) = text.strip_prefix("contact.") {
        let slot = schema.and_then(|schema| {
            let fields = schema.contact_fields();
            fields.slot(field).filter(|slot| *fields.ty(*slot) == Type::String)
        });
        if slot.is_none() {
            let help = if schema.is_some() {
                "name a string attribute holding an IANA zone such as \"Europe/Paris\""
            } else {
                "a point rule's calendar cap takes a fixed zone, such as \"Europe/Paris\""
            };
            diagnostics.push(
                Diagnostic::new(
                    Code::InvalidDocument,
                    format!("`{field}` is not a string field of `schema.contact` this cap can read"),
                )
                .with_path(path.to_string())
                .with_help(help),
            );
        }
        return slot.map(RepeatZone::Field);
    }
    match TimeZone::parse(text) {
        Ok(zone) => Some(RepeatZone::Fixed(zone)),
        Err(e) => {
            diagnostics
                .push(Diagnostic::new(Code::InvalidDocument, e.to_string()).with_path(path.to_string()));
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: i64) -> Timestamp {
        Timestamp::from_unix(s, 0).unwrap()
    }

    #[test]
    fn at_most_is_a_sliding_window() {
        let policy = RepeatPolicy::new(Repeat::AtMost { max: 2, per: Duration::from_secs(10).unwrap() });
        let mut memory = RepeatMemory::default();
        for t in [0, 5] {
            assert!(policy.allows(Some(&memory), at(t)));
            policy.record(&mut memory, at(t));
        }
        assert!(!policy.allows(Some(&memory), at(9)));
        assert!(policy.allows(Some(&memory), at(10)));
        assert_eq!(memory.times.len(), 2);
    }

    #[test]
    fn per_calendar_day_counts_from_local_midnight() {
        // Paris is UTC+1 in January: local midnight is 23:00 UTC.
        let paris = TimeZone::parse("Europe/Paris").unwrap();
        let zone = RepeatZone::Fixed(paris);
        let policy = RepeatPolicy::new(Repeat::PerCalendar { max: 2, period: CalendarSpan::Day, zone });
        let mut memory = RepeatMemory::default();
        let t0 = 1_767_225_600; // 2026-01-01T00:00:00Z, 01:00 in Paris
        for t in [t0, t0 + 3_600] {
            assert!(policy.allows(Some(&memory), at(t)));
            policy.record(&mut memory, at(t));
        }
        // Still 1 January in Paris at 22:59 UTC; 2 January from 23:00 UTC.
        assert!(!policy.allows(Some(&memory), at(t0 + 22 * 3_600 + 59 * 60)));
        assert!(policy.allows(Some(&memory), at(t0 + 23 * 3_600)));
    }

    #[test]
    fn once_remembers_without_instants() {
        let policy = RepeatPolicy::new(Repeat::Once);
        let mut memory = RepeatMemory::default();
        policy.record(&mut memory, at(0));
        assert!(memory.times.is_empty());
        assert!(!policy.allows(Some(&memory), at(1_000_000)));
    }

    #[test]
    fn old_engine_memory_without_ever_reads_as_fired() {
        let memory: RepeatMemory = serde_json::from_str(r#"{"times": ["2026-01-01T00:00:00Z"]}"#).unwrap();
        assert!(memory.ever);
    }
}
