//! Triggers: what starts a rule. Compiled from the document's `on`, with every name
//! resolved (event types, scores, thresholds, bands, segments, contact fields).

use crate::def::{Direction, TriggerDef};
use crate::diagnostic::{did_you_mean, Code, Diagnostic};
use crate::id::EventTypeIndex;
use crate::schema::{Schema, Slot};
use crate::scoring::Scorer;
use crate::time::Duration;
use crate::value::Value;

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
    /// No event of a type (`None`: of any type) for a period.
    Inactivity {
        /// The event type watched, or any.
        event_type: Option<EventTypeIndex>,
        /// The quiet period.
        period: Duration,
    },
}

impl Trigger {
    /// The event type, for an event trigger.
    pub fn event_type(&self) -> Option<EventTypeIndex> {
        match self {
            Trigger::Event(t) => Some(*t),
            _ => None,
        }
    }
}

fn unknown(what: &str, name: &str, path: String, known: Vec<&str>, help: &str) -> Diagnostic {
    Diagnostic::new(Code::InvalidDocument, format!("unknown {what} `{name}`"))
        .with_path(path)
        .with_did_you_mean(did_you_mean(name, known))
        .with_help(help.to_string())
}

/// Compiles a trigger at `path` (the rule's `/on`), recording problems.
pub(crate) fn compile_trigger(
    def: &TriggerDef,
    schema: &Schema,
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
        TriggerDef::Segment { segment, direction } => match schema.segments().slot(segment) {
            Some(slot) => Some(Trigger::Segment { segment: slot as usize, direction: *direction }),
            None => {
                let known = schema.segments().iter().map(|(n, _)| n).collect();
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
        TriggerDef::Inactivity { inactive, period } => {
            let event_type = if inactive == "*" {
                None
            } else {
                Some(schema.resolve_event_type(inactive, format!("{path}/inactive"), diagnostics)?)
            };
            let Some(period) = crate::scoring::compile::parse_period(period) else {
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

/// Rejects rules that would start each other forever through attribute changes: rule A
/// sets a field to a value, and rule B, started by that field changing to that value
/// (or to anything), sets a field that starts A again. Only constant values are set, so
/// every such loop is visible here; loops through segments are stopped at run time by
/// the cascade limit instead.
pub(crate) fn check_attribute_cycles(
    rules: &[crate::program::Rule],
    schema: &Schema,
    diagnostics: &mut Vec<Diagnostic>,
) {
    let fields = schema.contact_fields();
    // What each rule sets: (field, value; `None` for a clear).
    let sets: Vec<Vec<(Slot, Option<Value>)>> = rules
        .iter()
        .map(|r| {
            r.actions()
                .iter()
                .filter_map(|a| match a {
                    crate::def::ActionDef::SetAttribute { field, value } => {
                        let slot = fields.slot(field)?;
                        Some((slot, Value::from_json(value, fields.ty(slot))))
                    }
                    crate::def::ActionDef::ClearAttribute { field } => Some((fields.slot(field)?, None)),
                    _ => None,
                })
                .collect()
        })
        .collect();
    let starts = |from: usize, to: usize| match rules[to].trigger() {
        Trigger::Attribute { field, to: wanted, .. } if rules[to].enabled() => sets[from]
            .iter()
            .any(|(f, v)| f == field && wanted.as_ref().is_none_or(|w| v.as_ref() == Some(w))),
        _ => false,
    };
    // Depth-first search for a cycle among the rules (iterative).
    #[derive(Clone, Copy, PartialEq)]
    enum Mark {
        New,
        Open,
        Done,
    }
    let mut marks = vec![Mark::New; rules.len()];
    for start in 0..rules.len() {
        if marks[start] != Mark::New || sets[start].is_empty() {
            continue;
        }
        let mut stack = vec![(start, 0usize)];
        marks[start] = Mark::Open;
        while let Some(&mut (node, ref mut next)) = stack.last_mut() {
            if *next < rules.len() {
                let to = *next;
                *next += 1;
                if !starts(node, to) {
                    continue;
                }
                match marks[to] {
                    Mark::New => {
                        marks[to] = Mark::Open;
                        stack.push((to, 0));
                    }
                    Mark::Open => {
                        let cycle: Vec<&str> = stack
                            .iter()
                            .skip_while(|(n, _)| *n != to)
                            .map(|(n, _)| rules[*n].id().as_str())
                            .chain([rules[to].id().as_str()])
                            .collect();
                        diagnostics.push(
                            Diagnostic::new(
                                Code::InvalidDocument,
                                format!("rules start each other in a cycle through attribute changes: {}", cycle.join(" -> ")),
                            )
                            .with_path(format!("/rules/{to}/on"))
                            .with_help("break the loop: narrow an attribute trigger with `from`/`to`, or set another field"),
                        );
                        return;
                    }
                    Mark::Done => {}
                }
            } else {
                marks[node] = Mark::Done;
                stack.pop();
            }
        }
    }
}
