//! Triggers: what starts a rule. Compiled from the document's `on`, with every name
//! resolved (event types, scores, thresholds, bands, segments, contact fields).

use crate::def::{Direction, TriggerDef};
use crate::diagnostic::{did_you_mean, Code, Diagnostic};
use crate::id::EventTypeIndex;
use crate::schema::{Contact, Schema, Slot};
use crate::scoring::Scorer;
use crate::time::{Duration, TimeZone, Timestamp};
use crate::value::Type;
use crate::value::Value;

/// The largest offset, in whole days either way, a date trigger accepts (about a
/// century; `docs/rule-sets.md`); an exact offset (`"72h"`) has the same bound.
pub(crate) const MAX_OFFSET_DAYS: i64 = 36_600;

/// How far from its date a date trigger fires.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum DateOffset {
    /// Whole calendar days (`"-7d"`): that many local days from the date's local day,
    /// at the trigger's local time `at`.
    Days(i64),
    /// An exact span (`"72h"`, `"-90m"`) from the date's own instant; `at` does not
    /// apply.
    Exact(Duration),
}

impl DateOffset {
    /// Parses an offset as documents write it: whole days (`"-7d"`) or a CEL duration
    /// (`"72h"`, `"-90m"`, `"1h30m"`), within [`MAX_OFFSET_DAYS`] either way.
    pub(crate) fn parse(text: &str) -> Option<DateOffset> {
        if let Some(days) = text.strip_suffix('d').and_then(|n| n.trim().parse::<i64>().ok()) {
            // A range test, not `abs()`: `i64::MIN.abs()` overflows.
            return (-MAX_OFFSET_DAYS..=MAX_OFFSET_DAYS).contains(&days).then_some(DateOffset::Days(days));
        }
        let span = Duration::parse(text).ok()?;
        let limit = i128::from(MAX_OFFSET_DAYS) * 86_400 * 1_000_000_000;
        (-limit..=limit).contains(&span.as_nanos()).then_some(DateOffset::Exact(span))
    }

    /// The offset as an exact span (days of 24 hours), to place the search for
    /// anniversaries.
    fn approx(self) -> Duration {
        match self {
            DateOffset::Days(d) => Duration::from_days(d).unwrap_or(Duration::ZERO),
            DateOffset::Exact(d) => d,
        }
    }
}

/// What starts a compiled rule.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub enum Trigger {
    /// An event of this type.
    Event(EventTypeIndex),
    /// A score (model position) crossing a threshold (by id), up or down.
    Threshold {
        /// The score model's position.
        model: usize,
        /// The threshold's id.
        threshold: String,
        /// Up or down.
        direction: Direction,
    },
    /// A score (model position) entering or leaving a band (by name).
    Band {
        /// The score model's position.
        model: usize,
        /// The band's name.
        band: String,
        /// Entering or leaving.
        direction: Direction,
    },
    /// Entering or leaving a segment (by position).
    Segment {
        /// The segment's position.
        segment: usize,
        /// Entering or leaving.
        direction: Direction,
    },
    /// A contact field changing, optionally from and to given values.
    Attribute {
        /// The field's slot.
        field: Slot,
        /// Only changes from this value.
        from: Option<Value>,
        /// Only changes to this value.
        to: Option<Value>,
    },
    /// A tag added (`Up`) or removed (`Down`); `"*"`: any tag.
    Tag {
        /// The tag, or `"*"`.
        tag: String,
        /// Added or removed.
        direction: Direction,
    },
    /// The contact added to (`Up`) or removed from (`Down`) a list; `"*"`: any list.
    List {
        /// The list, or `"*"`.
        list: String,
        /// Added or removed.
        direction: Direction,
    },
    /// The lifecycle stage becoming (`Up`) or leaving (`Down`) this one; `"*"`: any.
    Stage {
        /// The stage, or `"*"`.
        stage: String,
        /// Entering or leaving.
        direction: Direction,
    },
    /// The owner becoming (`Up`) or leaving (`Down`) this one; `"*"`: any.
    Owner {
        /// The owner, or `"*"`.
        owner: String,
        /// Entering or leaving.
        direction: Direction,
    },
    /// A date relative to a contact's timestamp attribute (see [`TriggerDef::Date`]).
    Date {
        /// The timestamp field.
        field: Slot,
        /// How far after the date (negative: before).
        offset: DateOffset,
        /// Local time of day (for day offsets).
        at: chrono::NaiveTime,
        /// Where the time zone comes from.
        zone: ZoneSource,
        /// On every anniversary.
        every_year: bool,
    },
    /// A schedule on the host's clock (see [`TriggerDef::Schedule`]).
    Schedule {
        /// How often.
        every: Every,
        /// Local time of day.
        at: chrono::NaiveTime,
        /// Where the time zone comes from.
        zone: ZoneSource,
    },
    /// No event of a type (`None`: of any type) for a period.
    Inactivity {
        /// The event type watched, or any.
        event_type: Option<EventTypeIndex>,
        /// The quiet period.
        period: Duration,
    },
}

/// The time zone of a calendar trigger.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub enum ZoneSource {
    /// One zone for every contact.
    Fixed(TimeZone),
    /// A contact string attribute holding an IANA name or offset (UTC when absent or
    /// not a zone).
    Field(Slot),
}

impl ZoneSource {
    pub(crate) fn of(&self, contact: &Contact) -> TimeZone {
        match self {
            ZoneSource::Fixed(zone) => *zone,
            ZoneSource::Field(slot) => match contact.get(*slot) {
                Some(Value::String(name)) => TimeZone::parse(name).unwrap_or(TimeZone::UTC),
                _ => TimeZone::UTC,
            },
        }
    }
}

/// How often a schedule fires.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Every {
    /// Every day.
    Day,
    /// Every week on this day.
    Week(chrono::Weekday),
    /// Every month on this day (clamped to the month's last day).
    Month(u32),
}

impl Trigger {
    /// The event type, for an event trigger.
    pub fn event_type(&self) -> Option<EventTypeIndex> {
        match self {
            Trigger::Event(t) => Some(*t),
            _ => None,
        }
    }

    /// For a date or schedule trigger: its first occurrence strictly after `after`
    /// for `contact` (`None`: none, or not a calendar trigger). Local times are
    /// resolved in the zone: a time skipped by a daylight-saving change moves forward
    /// by the gap, a repeated one takes the earlier instant.
    pub fn occurrence_after(&self, contact: &Contact, after: Timestamp) -> Option<Timestamp> {
        use chrono::Datelike;
        match self {
            Trigger::Date { field, offset, at, zone, every_year } => {
                let zone = zone.of(contact);
                let Some(Value::Timestamp(date)) = contact.get(*field) else {
                    return None;
                };
                let local = zone.local_datetime(*date);
                // The occurrence of the date's (anniversary's) local day and time.
                let resolve = |day: chrono::NaiveDate| match offset {
                    DateOffset::Days(days) => {
                        let day = day.checked_add_signed(chrono::TimeDelta::try_days(*days)?)?;
                        zone.resolve_local(day.and_time(*at)).ok()
                    }
                    DateOffset::Exact(span) => {
                        zone.resolve_local(day.and_time(local.time())).ok()?.checked_add(*span)
                    }
                };
                if !*every_year {
                    return match offset {
                        DateOffset::Exact(span) => date.checked_add(*span),
                        DateOffset::Days(_) => resolve(local.date()),
                    }
                    .filter(|t| *t > after);
                }
                // The anniversary whose occurrence can follow `after` is in the year of
                // `after - offset`, or next to it.
                let year = zone.local_date(after.checked_sub(offset.approx()).unwrap_or(after)).year();
                let base = local.date();
                (year - 1..=year + 2).find_map(|y| {
                    // 29 February falls on 28 February in other years.
                    let day = chrono::NaiveDate::from_ymd_opt(y, base.month(), base.day())
                        .or_else(|| chrono::NaiveDate::from_ymd_opt(y, base.month(), base.day() - 1))?;
                    resolve(day).filter(|t| *t > after)
                })
            }
            Trigger::Schedule { every, at, zone } => {
                let zone = zone.of(contact);
                let first = zone.local_date(after);
                (0..=62).find_map(|k| {
                    let day = first.checked_add_signed(chrono::TimeDelta::try_days(k)?)?;
                    let due = match every {
                        Every::Day => true,
                        Every::Week(weekday) => day.weekday() == *weekday,
                        Every::Month(n) => {
                            let last = (28..=31).rev().find(|d| day.with_day(*d).is_some()).unwrap_or(28);
                            day.day() == (*n).clamp(1, last)
                        }
                    };
                    if !due {
                        return None;
                    }
                    zone.resolve_local(day.and_time(*at)).ok().filter(|t| *t > after)
                })
            }
            _ => None,
        }
    }

    /// Whether the trigger fires on the calendar (date or schedule).
    pub fn is_calendar(&self) -> bool {
        matches!(self, Trigger::Date { .. } | Trigger::Schedule { .. })
    }
}

fn unknown(what: &str, name: &str, path: String, known: Vec<&str>, help: &str) -> Diagnostic {
    Diagnostic::new(Code::InvalidDocument, format!("unknown {what} `{name}`"))
        .with_path(path)
        .with_did_you_mean(did_you_mean(name, known))
        .with_help(help.to_string())
}

/// A local time of day, `"HH:MM"` (default 09:00).
fn time_of_day(
    text: Option<&str>,
    path: &str,
    diagnostics: &mut Vec<Diagnostic>,
) -> Option<chrono::NaiveTime> {
    let text = text.unwrap_or("09:00");
    let parsed = chrono::NaiveTime::parse_from_str(text, "%H:%M").ok();
    if parsed.is_none() {
        diagnostics.push(
            Diagnostic::new(Code::InvalidDocument, format!("`{text}` is not a time of day"))
                .with_path(format!("{path}/at"))
                .with_help("write a 24-hour local time such as \"09:00\""),
        );
    }
    parsed
}

/// A trigger's time zone: an IANA name or offset, or `contact.FIELD` (a string
/// attribute); UTC by default.
pub(crate) fn zone_source(
    text: Option<&str>,
    schema: &Schema,
    path: &str,
    diagnostics: &mut Vec<Diagnostic>,
) -> Option<ZoneSource> {
    let Some(text) = text else {
        return Some(ZoneSource::Fixed(TimeZone::UTC));
    };
    if let Some(field) = text.strip_prefix("contact.") {
        let fields = schema.contact_fields();
        return match fields.slot(field) {
            Some(slot) if *fields.ty(slot) == Type::String => Some(ZoneSource::Field(slot)),
            _ => {
                diagnostics.push(
                    Diagnostic::new(
                        Code::InvalidDocument,
                        format!("`{field}` is not a string field of `schema.contact`"),
                    )
                    .with_path(format!("{path}/zone"))
                    .with_help("name a string attribute holding an IANA zone such as \"Europe/Paris\""),
                );
                None
            }
        };
    }
    match TimeZone::parse(text) {
        Ok(zone) => Some(ZoneSource::Fixed(zone)),
        Err(e) => {
            diagnostics.push(
                Diagnostic::new(Code::InvalidDocument, e.to_string()).with_path(format!("{path}/zone")),
            );
            None
        }
    }
}

/// Compiles a trigger at `path` (the rule's `/on`), recording problems.
pub(crate) fn compile_trigger(
    def: &TriggerDef,
    schema: &Schema,
    names: &crate::condition::ConditionNames,
    scorer: Option<&Scorer>,
    path: &str,
    diagnostics: &mut Vec<Diagnostic>,
) -> Option<Trigger> {
    let model_of = |score: &str, diagnostics: &mut Vec<Diagnostic>| {
        let models = scorer.map(Scorer::models).unwrap_or_default();
        let found = models.iter().position(|m| m.id().as_str() == score);
        if found.is_none() {
            let known = models.iter().map(|m| m.id().as_str()).collect();
            diagnostics.push(unknown(
                "score",
                score,
                format!("{path}/score"),
                known,
                "name a model of the `scoring` section",
            ));
        }
        found
    };
    match def {
        TriggerDef::Event(name) => {
            schema.resolve_event_type(name, path.to_string(), diagnostics).map(Trigger::Event)
        }
        TriggerDef::Threshold { score, threshold, direction } => {
            let model = model_of(score, diagnostics)?;
            let m = &scorer?.models()[model];
            if !m.thresholds.iter().any(|(id, _)| id == threshold) {
                let known = m.thresholds.iter().map(|(id, _)| id.as_str()).collect();
                diagnostics.push(unknown(
                    "threshold",
                    threshold,
                    format!("{path}/threshold"),
                    known,
                    "name a threshold of that score",
                ));
                return None;
            }
            Some(Trigger::Threshold { model, threshold: threshold.clone(), direction: *direction })
        }
        TriggerDef::Band { score, band, direction } => {
            let model = model_of(score, diagnostics)?;
            let m = &scorer?.models()[model];
            if !m.bands.iter().any(|b| &b.name == band) {
                let known = m.bands.iter().map(|b| b.name.as_str()).collect();
                diagnostics.push(unknown(
                    "band",
                    band,
                    format!("{path}/band"),
                    known,
                    "name a band of that score",
                ));
                return None;
            }
            Some(Trigger::Band { model, band: band.clone(), direction: *direction })
        }
        TriggerDef::Segment { segment, direction } => match names.segments().slot(segment) {
            Some(slot) => Some(Trigger::Segment { segment: slot as usize, direction: *direction }),
            None => {
                let known = names.segments().iter().map(|(n, _)| n).collect();
                diagnostics.push(unknown(
                    "segment",
                    segment,
                    format!("{path}/segment"),
                    known,
                    "name a segment of the `segments` section",
                ));
                None
            }
        },
        TriggerDef::Attribute { attribute, from, to } => {
            let fields = schema.contact_fields();
            let Some(field) = fields.slot(attribute) else {
                let known = fields.iter().map(|(n, _)| n).collect();
                diagnostics.push(unknown(
                    "contact field",
                    attribute,
                    format!("{path}/attribute"),
                    known,
                    "name a field of `schema.contact`",
                ));
                return None;
            };
            let ty = fields.ty(field);
            let mut value = |json: &Option<serde_json::Value>, key: &str| match json {
                None => Some(None),
                Some(j) => match Value::from_json(j, ty) {
                    Some(v) => Some(Some(v)),
                    None => {
                        diagnostics.push(
                            Diagnostic::new(
                                Code::TypeMismatch,
                                format!("`{attribute}` is declared {ty}; this value does not fit"),
                            )
                            .with_path(format!("{path}/{key}")),
                        );
                        None
                    }
                },
            };
            let (from, to) = (value(from, "from"), value(to, "to"));
            Some(Trigger::Attribute { field, from: from?, to: to? })
        }
        TriggerDef::Tag { tag, direction } => Some(Trigger::Tag { tag: tag.clone(), direction: *direction }),
        TriggerDef::List { list, direction } => {
            Some(Trigger::List { list: list.clone(), direction: *direction })
        }
        TriggerDef::Stage { stage, direction } => {
            Some(Trigger::Stage { stage: stage.clone(), direction: *direction })
        }
        TriggerDef::Owner { owner, direction } => {
            Some(Trigger::Owner { owner: owner.clone(), direction: *direction })
        }
        TriggerDef::Date { date, offset, at, zone, every_year } => {
            let fields = schema.contact_fields();
            let field = match fields.slot(date) {
                Some(slot) if *fields.ty(slot) == Type::Timestamp => slot,
                Some(slot) => {
                    diagnostics.push(
                        Diagnostic::new(
                            Code::TypeMismatch,
                            format!("`{date}` is declared {}, not a timestamp", fields.ty(slot)),
                        )
                        .with_path(format!("{path}/date"))
                        .with_help("a date trigger reads a timestamp attribute"),
                    );
                    return None;
                }
                None => {
                    let known = fields.iter().map(|(n, _)| n).collect();
                    diagnostics.push(unknown(
                        "contact field",
                        date,
                        format!("{path}/date"),
                        known,
                        "name a timestamp field of `schema.contact`",
                    ));
                    return None;
                }
            };
            let offset = match offset.as_deref() {
                None => Some(DateOffset::Days(0)),
                Some(text) => DateOffset::parse(text),
            };
            if offset.is_none() {
                diagnostics.push(
                    Diagnostic::new(
                        Code::InvalidDocument,
                        "an offset is whole days, such as \"-7d\", or a duration, such as \"72h\" or \"-90m\"",
                    )
                    .with_path(format!("{path}/offset"))
                    .with_help(
                        "write whole days from -36600d to 36600d, or a duration within the same range \
                         (about a century either way)",
                    ),
                );
            }
            if let (Some(DateOffset::Exact(_)), Some(_)) = (offset, at.as_deref()) {
                diagnostics.push(
                    Diagnostic::new(
                        Code::InvalidDocument,
                        "`at` applies to offsets in whole days; this offset counts from the date's own instant",
                    )
                    .with_path(format!("{path}/at"))
                    .with_help("remove `at`, or write the offset in whole days such as \"3d\""),
                );
                return None;
            }
            let at = time_of_day(at.as_deref(), path, diagnostics);
            let zone = zone_source(zone.as_deref(), schema, path, diagnostics);
            Some(Trigger::Date { field, offset: offset?, at: at?, zone: zone?, every_year: *every_year })
        }
        TriggerDef::Schedule { schedule, at, weekday, day, zone } => {
            let every = match schedule.as_str() {
                "daily" => Some(Every::Day),
                "weekly" => match weekday.as_deref().unwrap_or("monday").parse::<chrono::Weekday>() {
                    Ok(w) => Some(Every::Week(w)),
                    Err(_) => {
                        diagnostics.push(
                            Diagnostic::new(Code::InvalidDocument, "a weekday is \"monday\" to \"sunday\"")
                                .with_path(format!("{path}/weekday")),
                        );
                        None
                    }
                },
                "monthly" => match day.unwrap_or(1) {
                    d @ 1..=31 => Some(Every::Month(d)),
                    _ => {
                        diagnostics.push(
                            Diagnostic::new(Code::InvalidDocument, "a day of the month is 1 to 31")
                                .with_path(format!("{path}/day")),
                        );
                        None
                    }
                },
                other => {
                    diagnostics.push(
                        Diagnostic::new(Code::InvalidDocument, format!("unknown schedule `{other}`"))
                            .with_path(format!("{path}/schedule"))
                            .with_did_you_mean(did_you_mean(other, ["daily", "weekly", "monthly"]))
                            .with_help("write \"daily\", \"weekly\" or \"monthly\""),
                    );
                    None
                }
            };
            let at = time_of_day(at.as_deref(), path, diagnostics);
            let zone = zone_source(zone.as_deref(), schema, path, diagnostics);
            Some(Trigger::Schedule { every: every?, at: at?, zone: zone? })
        }
        TriggerDef::Inactivity { inactive, period } => {
            let event_type = if inactive == "*" {
                None
            } else {
                Some(schema.resolve_event_type(inactive, format!("{path}/inactive"), diagnostics)?)
            };
            let Some(period) = crate::def::parse_period(period) else {
                diagnostics.push(
                    Diagnostic::new(
                        Code::InvalidDocument,
                        format!("`{period}` is not a positive span of time"),
                    )
                    .with_path(format!("{path}/for"))
                    .with_help("write a span such as \"60d\" or \"36h\""),
                );
                return None;
            };
            Some(Trigger::Inactivity { event_type, period })
        }
    }
}

/// What the attribute-cycle check needs of a rule.
pub(crate) struct RuleLinks<'a> {
    pub(crate) id: &'a str,
    pub(crate) trigger: &'a Trigger,
    pub(crate) enabled: bool,
    pub(crate) actions: &'a [crate::def::ActionDef],
}

/// Rejects rules that would start each other forever through attribute changes: rule A
/// sets a field to a value, and rule B, started by that field changing to that value
/// (or to anything), sets a field that starts A again. Only constant values are set, so
/// every such loop is visible here; loops through segments are stopped at run time by
/// the cascade limit instead.
pub(crate) fn check_attribute_cycles(
    rules: &[RuleLinks<'_>],
    schema: &Schema,
    diagnostics: &mut Vec<Diagnostic>,
) {
    let fields = schema.contact_fields();
    // What each rule sets: (field, value; `None` for a clear).
    let sets: Vec<Vec<(Slot, Option<Value>)>> = rules
        .iter()
        .map(|r| {
            r.actions
                .iter()
                .filter_map(|a| match a {
                    // A computed value is not known here: taken as a clear (a cycle through
                    // it still ends at the cascade limit at run time).
                    crate::def::ActionDef::SetAttribute { field, value, .. } => {
                        let slot = fields.slot(field)?;
                        Some((slot, Value::from_json(value, fields.ty(slot))))
                    }
                    crate::def::ActionDef::ClearAttribute { field, .. } => Some((fields.slot(field)?, None)),
                    _ => None,
                })
                .collect()
        })
        .collect();
    // The graph goes through one node per (field, value) set and one per field ("any
    // change"), so that its size is linear in rules and actions however many rules
    // share a field: rule -> set(field, value) -> rules waiting for that value, and
    // set(field, value) -> change(field) -> rules waiting for any change; a clear goes
    // to change(field) directly. A cycle among rules is a cycle here, and back.
    let n = rules.len();
    let mut field_nodes: hashbrown::HashMap<Slot, usize> = hashbrown::HashMap::new();
    let mut value_nodes: hashbrown::HashMap<(Slot, String), usize> = hashbrown::HashMap::new();
    let mut adjacency: Vec<Vec<usize>> = vec![Vec::new(); n];
    let value_key = |v: &Value| match v {
        Value::Double(d) if *d == 0.0 => "Double(0.0)".to_string(),
        other => format!("{other:?}"),
    };
    let mut field_node = |slot: Slot, adjacency: &mut Vec<Vec<usize>>| {
        *field_nodes.entry(slot).or_insert_with(|| {
            adjacency.push(Vec::new());
            adjacency.len() - 1
        })
    };
    let mut value_node = |slot: Slot, v: &Value, adjacency: &mut Vec<Vec<usize>>, field: usize| {
        *value_nodes.entry((slot, value_key(v))).or_insert_with(|| {
            adjacency.push(vec![field]);
            adjacency.len() - 1
        })
    };
    for (to, rule) in rules.iter().enumerate() {
        if let Trigger::Attribute { field, to: wanted, .. } = rule.trigger {
            if !rule.enabled {
                continue;
            }
            let f = field_node(*field, &mut adjacency);
            match wanted {
                None => adjacency[f].push(to),
                Some(w) => {
                    let v = value_node(*field, w, &mut adjacency, f);
                    adjacency[v].push(to);
                }
            }
        }
    }
    for (from, set) in sets.iter().enumerate() {
        for (slot, value) in set {
            let f = field_node(*slot, &mut adjacency);
            let target = match value {
                None => f,
                Some(v) => value_node(*slot, v, &mut adjacency, f),
            };
            adjacency[from].push(target);
        }
    }
    let edges = |node: usize| adjacency.get(node).cloned().unwrap_or_default();
    // One cycle is enough to report.
    let components = crate::graph::components(adjacency.len(), edges);
    let Some(component) = components.iter().find(|c| crate::graph::is_cycle(c, edges)) else {
        return;
    };
    // Start the reported path at a rule (the set/change nodes are not rules).
    let mut component = component.clone();
    if let Some(i) = component.iter().position(|&c| c < n) {
        component.rotate_left(i);
    }
    let path = crate::graph::cycle_through_first(&component, edges);
    let names: Vec<&str> = path.iter().filter(|&&p| p < n).map(|&p| rules[p].id).collect();
    let first = path.first().copied().unwrap_or(0);
    diagnostics.push(
        Diagnostic::new(
            Code::InvalidDocument,
            format!(
                "rules start each other in a cycle through attribute changes: {}",
                crate::graph::describe_path(&names)
            ),
        )
        .with_path(format!("/rules/{first}/on"))
        .with_help("break the loop: narrow an attribute trigger with `from`/`to`, or set another field"),
    );
}
