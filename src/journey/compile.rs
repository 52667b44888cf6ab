//! Compiling the document's `journeys` section, with every check at once.

use super::*;
use crate::condition::{ConditionCompiler, ConditionDoc, Reads};
use crate::def::{FilterDef, JourneyDef, ReentryDef, StepDef, UpgradeDef};
use crate::diagnostic::{did_you_mean, Code, Diagnostic, UniqueIds};
use crate::scoring::Scorer;
use crate::value::Type;

/// Compiles every journey at `/journeys/N`, recording problems.
pub(crate) fn compile_journeys(
    defs: &[JourneyDef],
    conditions: &ConditionCompiler<'_>,
    scorer: Option<&Scorer>,
    diagnostics: &mut Vec<Diagnostic>,
) -> Journeys {
    let mut list = Vec::with_capacity(defs.len());
    let mut versions = UniqueIds::new("journey id and version");
    let keys: Vec<String> = defs.iter().map(|d| format!("{}@{}", d.id, d.version)).collect();
    for (i, def) in defs.iter().enumerate() {
        let path = format!("/journeys/{i}");
        versions.first_use(&keys[i], format!("{path}/version"), diagnostics);
        if !def.retired && defs[..i].iter().any(|d| d.id == def.id && !d.retired) {
            diagnostics.push(
                Diagnostic::new(Code::DuplicateId, format!("journey `{}` has two current versions", def.id))
                    .with_path(format!("{path}/id"))
                    .with_help(
                        "mark the earlier versions `\"retired\": true`, or give this journey another id",
                    ),
            );
        }
        if let Some(journey) = compile_journey(def, &path, conditions, scorer, diagnostics) {
            list.push(journey);
        }
    }
    Journeys { list }
}

fn invalid(message: impl Into<String>, path: String, help: &str) -> Diagnostic {
    Diagnostic::new(Code::InvalidDocument, message).with_path(path).with_help(help.to_string())
}

/// A condition that can never hold (folded to the constant `false`).
fn never(condition: &Option<Expression>) -> bool {
    matches!(condition.as_ref().and_then(Expression::pred), Some(crate::expr::compile::Pred::Const(false)))
}

fn compile_journey(
    def: &JourneyDef,
    path: &str,
    conditions: &ConditionCompiler<'_>,
    scorer: Option<&Scorer>,
    diagnostics: &mut Vec<Diagnostic>,
) -> Option<Journey> {
    let before = diagnostics.len();
    if def.id.is_empty() || def.id.len() > 200 || def.id.chars().any(char::is_control) {
        diagnostics.push(invalid(
            "a journey id is empty, longer than 200 bytes, or holds control characters",
            format!("{path}/id"),
            "give the journey a short, stable id such as \"onboarding\"",
        ));
    }
    if def.steps.len() > MAX_STEPS {
        diagnostics.push(
            Diagnostic::new(
                Code::LimitExceeded,
                format!("{} steps, more than the limit of {MAX_STEPS}", def.steps.len()),
            )
            .with_path(format!("{path}/steps"))
            .with_help("split the journey into several journeys that enrol each other"),
        );
        return None;
    }
    if def.steps.is_empty() {
        diagnostics.push(invalid(
            "a journey has no steps",
            format!("{path}/steps"),
            "give the journey at least one step",
        ));
        return None;
    }
    // Entry.
    let entry = def.on.as_ref().and_then(|on| {
        let trigger = crate::trigger::compile_trigger(
            on,
            conditions.schema,
            conditions.names,
            scorer,
            &format!("{path}/on"),
            diagnostics,
        )?;
        if matches!(trigger, Trigger::Inactivity { .. }) {
            diagnostics.push(invalid(
                "a journey cannot be entered on inactivity",
                format!("{path}/on"),
                "use a rule with an inactivity trigger and an `enroll_journey` action",
            ));
            return None;
        }
        Some(trigger)
    });
    let entry_event = entry.as_ref().and_then(Trigger::event_type);
    let condition = conditions
        .compile(
            ConditionDoc { owner: "a journey", when: def.when.as_ref(), filter: def.filter.as_ref() },
            Reads::Rule(entry_event),
            path,
            diagnostics,
        )
        .ok()
        .flatten();
    if never(&condition) {
        diagnostics.push(invalid(
            "the entry condition never holds: no contact can ever enter",
            format!("{path}/when"),
            "fix the condition, or remove the journey",
        ));
    }
    let reentry = match &def.reentry {
        None => Some(Reentry::Never),
        Some(ReentryDef::Named(name)) => match name.as_str() {
            "never" => Some(Reentry::Never),
            "always" => Some(Reentry::Always),
            "once_per_version" => Some(Reentry::OncePerVersion),
            other => {
                diagnostics.push(
                    invalid(
                        format!("unknown re-entry policy `{other}`"),
                        format!("{path}/reentry"),
                        "write \"never\", \"always\", \"once_per_version\" or {\"after\": \"30d\"}",
                    )
                    .with_did_you_mean(did_you_mean(other, ["never", "always", "once_per_version"])),
                );
                None
            }
        },
        Some(ReentryDef::After { after }) => {
            crate::def::period_or_report(after, format!("{path}/reentry/after"), diagnostics)
                .map(Reentry::After)
        }
    };
    let max_active = def.max_active.unwrap_or(1);
    if max_active == 0 {
        diagnostics.push(invalid(
            "`max_active` is 0: no contact could ever be enrolled",
            format!("{path}/max_active"),
            "allow at least 1 active enrolment",
        ));
    }
    // Exits and goal.
    let mut exit_ids = UniqueIds::new("exit id");
    let mut exits = Vec::new();
    for (k, exit) in def.exits.iter().enumerate() {
        let epath = format!("{path}/exits/{k}");
        exit_ids.first_use(&exit.id, format!("{epath}/id"), diagnostics);
        if let Some((event, condition)) = event_or_condition(
            "an exit",
            exit.on.as_deref(),
            exit.when.as_ref(),
            exit.filter.as_ref(),
            &epath,
            conditions,
            diagnostics,
        ) {
            exits.push(Exit { id: exit.id.clone(), event, condition });
        }
    }
    let goal = def.goal.as_ref().and_then(|g| {
        let (event, condition) = event_or_condition(
            "a goal",
            g.on.as_deref(),
            g.when.as_ref(),
            g.filter.as_ref(),
            &format!("{path}/goal"),
            conditions,
            diagnostics,
        )?;
        Some(Goal { event, condition })
    });
    let zone = crate::trigger::zone_source(def.zone.as_deref(), conditions.schema, path, diagnostics);
    // Steps: ids first, so references resolve in any order.
    let mut ids = UniqueIds::new("step id");
    for (k, step) in def.steps.iter().enumerate() {
        ids.first_use(step.id(), format!("{path}/steps/{k}/id"), diagnostics);
        if step.id().is_empty() {
            diagnostics.push(invalid(
                "a step id is empty",
                format!("{path}/steps/{k}/id"),
                "give every step a stable, unique id",
            ));
        }
    }
    let names: Vec<&str> = def.steps.iter().map(StepDef::id).collect();
    let resolve = |target: &Option<String>, at: String, diagnostics: &mut Vec<Diagnostic>| match target {
        None => Some(None),
        Some(t) => match names.iter().position(|n| n == t) {
            Some(i) => Some(Some(i)),
            None => {
                diagnostics.push(
                    Diagnostic::new(Code::InvalidDocument, format!("unknown step `{t}`"))
                        .with_path(at)
                        .with_did_you_mean(did_you_mean(t, names.iter().copied()))
                        .with_help("name a step of this journey by its id"),
                );
                None
            }
        },
    };
    let start = match &def.start {
        None => Some(0),
        Some(_) => resolve(&def.start, format!("{path}/start"), diagnostics).flatten(),
    };
    let mut steps = Vec::with_capacity(def.steps.len());
    for (k, step) in def.steps.iter().enumerate() {
        let spath = format!("{path}/steps/{k}");
        let kind = compile_step(step, &spath, &resolve, zone.as_ref(), conditions, scorer, diagnostics);
        if let Some(kind) = kind {
            steps.push(Step { id: step.id().to_string(), kind });
        }
    }
    if diagnostics.len() > before {
        return None;
    }
    let (Some(reentry), Some(start)) = (reentry, start) else { return None };
    let journey = Journey {
        id: def.id.clone(),
        version: def.version,
        description: def.description.clone(),
        entry,
        condition,
        reentry,
        max_active,
        exits,
        goal,
        seed: def.seed.clone().unwrap_or_else(|| def.id.clone()),
        upgrade: match def.upgrade.unwrap_or_default() {
            UpgradeDef::Finish => Upgrade::Finish,
            UpgradeDef::Move => Upgrade::Move,
            UpgradeDef::Exit => Upgrade::Exit,
        },
        retired: def.retired,
        steps,
        start,
    };
    check_graph(&journey, path, diagnostics);
    (diagnostics.len() == before).then_some(journey)
}

/// An event (`on`, with an optional condition on it) or a condition alone; one of them
/// is required.
fn event_or_condition(
    owner: &str,
    on: Option<&str>,
    when: Option<&String>,
    filter: Option<&FilterDef>,
    path: &str,
    conditions: &ConditionCompiler<'_>,
    diagnostics: &mut Vec<Diagnostic>,
) -> Option<(Option<EventTypeIndex>, Option<Expression>)> {
    let event = match on {
        None => None,
        Some(name) => Some(conditions.schema.resolve_event_type(name, format!("{path}/on"), diagnostics)?),
    };
    let condition = conditions
        .compile(ConditionDoc { owner, when, filter }, Reads::Journey(event), path, diagnostics)
        .ok()?;
    if event.is_none() && condition.is_none() {
        diagnostics.push(invalid(
            format!("{owner} names neither an event (`on`) nor a condition (`when` or `filter`)"),
            path.to_string(),
            "add `on` with an event type, or a `when` condition",
        ));
        return None;
    }
    if never(&condition) {
        diagnostics.push(invalid(
            format!("{owner}'s condition never holds"),
            format!("{path}/when"),
            "fix the condition",
        ));
    }
    Some((event, condition))
}

type Resolve<'r> = dyn Fn(&Option<String>, String, &mut Vec<Diagnostic>) -> Option<Option<usize>> + 'r;

fn compile_step(
    step: &StepDef,
    path: &str,
    resolve: &Resolve<'_>,
    zone: Option<&ZoneSource>,
    conditions: &ConditionCompiler<'_>,
    scorer: Option<&Scorer>,
    diagnostics: &mut Vec<Diagnostic>,
) -> Option<StepKind> {
    let next_of = |next: &Option<String>, diagnostics: &mut Vec<Diagnostic>| {
        resolve(next, format!("{path}/next"), diagnostics)
    };
    match step {
        StepDef::Action { actions, next, .. } => {
            for (j, action) in actions.iter().enumerate() {
                if let crate::def::ActionDef::AdjustScore { score, .. } = action {
                    let models = scorer.map(Scorer::models).unwrap_or_default();
                    if !models.iter().any(|m| m.id().as_str() == score) {
                        diagnostics.push(
                            Diagnostic::new(Code::InvalidDocument, format!("unknown score `{score}`"))
                                .with_path(format!("{path}/actions/{j}/score"))
                                .with_did_you_mean(did_you_mean(
                                    score,
                                    models.iter().map(|m| m.id().as_str()),
                                ))
                                .with_help("name a model of the `scoring` section"),
                        );
                    }
                }
            }
            Some(StepKind::Action { actions: actions.clone(), next: next_of(next, diagnostics)? })
        }
        StepDef::Wait { period, at, days, zone: wait_zone, date, offset, next, .. } => {
            let forms = [period.is_some(), at.is_some() || !days.is_empty(), date.is_some()];
            if forms.iter().filter(|f| **f).count() != 1 {
                diagnostics.push(invalid(
                    "a wait needs exactly one of `for`, `at` (with `days`) and `date`",
                    path.to_string(),
                    "write {\"for\": \"2d\"}, {\"at\": \"09:00\", \"days\": [\"tuesday\"]} or {\"date\": \"trial_ends_at\", \"offset\": \"-2d\"}",
                ));
                return None;
            }
            if offset.is_some() && date.is_none() {
                diagnostics.push(invalid(
                    "`offset` applies to a `date` wait only",
                    format!("{path}/offset"),
                    "remove `offset`, or wait for a `date`",
                ));
            }
            if wait_zone.is_some() && at.is_none() {
                diagnostics.push(invalid(
                    "`zone` applies to an `at` wait only",
                    format!("{path}/zone"),
                    "remove `zone`, or wait until a local time `at`",
                ));
            }
            let wait = if let Some(p) = period {
                Wait::For(crate::def::period_or_report(p, format!("{path}/for"), diagnostics)?)
            } else if let Some(field) = date {
                let fields = conditions.schema.contact_fields();
                let slot = match fields.slot(field) {
                    Some(slot) if *fields.ty(slot) == Type::Timestamp => slot,
                    _ => {
                        diagnostics.push(
                            Diagnostic::new(
                                Code::UnknownField,
                                format!("`{field}` is not a timestamp field of `schema.contact`"),
                            )
                            .with_path(format!("{path}/date"))
                            .with_did_you_mean(fields.suggest(field))
                            .with_help("a date wait reads a timestamp attribute"),
                        );
                        return None;
                    }
                };
                let offset = match offset.as_deref() {
                    None => Duration::ZERO,
                    Some(text) => {
                        let (negative, magnitude) = match text.strip_prefix('-') {
                            Some(rest) => (true, rest),
                            None => (false, text.strip_prefix('+').unwrap_or(text)),
                        };
                        let d =
                            crate::def::period_or_report(magnitude, format!("{path}/offset"), diagnostics)?;
                        if negative {
                            d.checked_neg()?
                        } else {
                            d
                        }
                    }
                };
                Wait::Date { field: slot, offset }
            } else {
                let text = at.as_deref().unwrap_or("09:00");
                let Ok(time) = chrono::NaiveTime::parse_from_str(text, "%H:%M") else {
                    diagnostics.push(invalid(
                        format!("`{text}` is not a time of day"),
                        format!("{path}/at"),
                        "write a 24-hour local time such as \"09:00\"",
                    ));
                    return None;
                };
                let mut mask = 0u8;
                for (d, day) in days.iter().enumerate() {
                    match day.parse::<chrono::Weekday>() {
                        Ok(w) => mask |= 1 << w.num_days_from_monday(),
                        Err(_) => diagnostics.push(invalid(
                            format!("`{day}` is not a weekday"),
                            format!("{path}/days/{d}"),
                            "write \"monday\" to \"sunday\"",
                        )),
                    }
                }
                if days.is_empty() {
                    mask = 0x7f;
                }
                let zone = match wait_zone {
                    Some(_) => crate::trigger::zone_source(
                        wait_zone.as_deref(),
                        conditions.schema,
                        path,
                        diagnostics,
                    )?,
                    None => zone?.clone(),
                };
                Wait::Until { at: time, days: mask, zone }
            };
            Some(StepKind::Wait { wait, next: next_of(next, diagnostics)? })
        }
        StepDef::WaitFor { on, when, filter, timeout, next, on_timeout, .. } => {
            let found = event_or_condition(
                "a wait for",
                on.as_deref(),
                when.as_ref(),
                filter.as_ref(),
                path,
                conditions,
                diagnostics,
            );
            let timeout = match timeout {
                None => {
                    diagnostics.push(invalid(
                        "a wait for has no timeout: a contact could wait forever",
                        path.to_string(),
                        "add `timeout`, such as \"3d\", and `on_timeout` for the step after it",
                    ));
                    None
                }
                Some(t) => crate::def::period_or_report(t, format!("{path}/timeout"), diagnostics),
            };
            let next = next_of(next, diagnostics);
            let on_timeout = resolve(on_timeout, format!("{path}/on_timeout"), diagnostics);
            let (event, condition) = found?;
            Some(StepKind::WaitFor {
                event,
                condition,
                timeout: timeout?,
                next: next?,
                on_timeout: on_timeout?,
            })
        }
        StepDef::Branch { cases, otherwise, .. } => {
            let mut compiled = Vec::with_capacity(cases.len());
            let mut ok = true;
            if cases.is_empty() {
                diagnostics.push(invalid(
                    "a branch has no cases",
                    format!("{path}/cases"),
                    "add cases with a `when` and a `next`, or use a `goto`",
                ));
                ok = false;
            }
            for (c, case) in cases.iter().enumerate() {
                let cpath = format!("{path}/cases/{c}");
                let condition = conditions.compile(
                    ConditionDoc {
                        owner: "a branch case",
                        when: case.when.as_ref(),
                        filter: case.filter.as_ref(),
                    },
                    Reads::Journey(None),
                    &cpath,
                    diagnostics,
                );
                let next = resolve(&case.next, format!("{cpath}/next"), diagnostics);
                match (condition, next) {
                    (Ok(Some(condition)), Some(next)) => compiled.push((condition, next)),
                    (Ok(None), _) => {
                        diagnostics.push(invalid(
                            "a branch case has no condition",
                            cpath,
                            "add `when` (or `filter`); the branch's `else` takes the rest",
                        ));
                        ok = false;
                    }
                    _ => ok = false,
                }
            }
            if otherwise.is_none() {
                diagnostics.push(invalid(
                    "a branch has no `else`",
                    path.to_string(),
                    "add `else` with the step for contacts no case matches",
                ));
                ok = false;
            }
            let otherwise = resolve(otherwise, format!("{path}/else"), diagnostics);
            if !ok {
                return None;
            }
            Some(StepKind::Branch { cases: compiled, otherwise: otherwise? })
        }
        StepDef::Split { arms, holdout, .. } => {
            let positive = |w: f64| w.is_finite() && w > 0.0 && w <= 1e12;
            let mut ok = true;
            if arms.is_empty() {
                diagnostics.push(invalid(
                    "a split has no arms",
                    format!("{path}/arms"),
                    "add at least one arm",
                ));
                ok = false;
            }
            let mut arm_ids = UniqueIds::new("arm id");
            let mut compiled = Vec::with_capacity(arms.len());
            for (a, arm) in arms.iter().enumerate() {
                let apath = format!("{path}/arms/{a}");
                arm_ids.first_use(&arm.id, format!("{apath}/id"), diagnostics);
                if arm.id == "holdout" {
                    diagnostics.push(invalid(
                        "the arm id `holdout` is reserved for the split's holdout",
                        format!("{apath}/id"),
                        "name the arm otherwise, or declare the split's `holdout`",
                    ));
                    ok = false;
                }
                if !positive(arm.weight) {
                    diagnostics.push(invalid(
                        format!("a split weight must be positive, not {}", arm.weight),
                        format!("{apath}/weight"),
                        "give every arm a positive weight (weights are relative)",
                    ));
                    ok = false;
                }
                match resolve(&arm.next, format!("{apath}/next"), diagnostics) {
                    Some(next) => compiled.push(Arm { id: arm.id.clone(), weight: arm.weight, next }),
                    None => ok = false,
                }
            }
            let holdout = match holdout {
                None => None,
                Some(h) => {
                    if !positive(h.weight) {
                        diagnostics.push(invalid(
                            format!("a split weight must be positive, not {}", h.weight),
                            format!("{path}/holdout/weight"),
                            "give the holdout a positive weight, or remove it",
                        ));
                        ok = false;
                    }
                    let period =
                        crate::def::period_or_report(&h.period, format!("{path}/holdout/for"), diagnostics);
                    ok &= period.is_some();
                    period.map(|p| (h.weight, p))
                }
            };
            ok.then_some(StepKind::Split { arms: compiled, holdout })
        }
        StepDef::Goto { to, .. } => {
            let target = resolve(&Some(to.clone()), format!("{path}/to"), diagnostics)??;
            Some(StepKind::Goto(target))
        }
        StepDef::Exit { .. } => Some(StepKind::Exit),
    }
}

/// Unreachable steps and loops that pass through no wait.
fn check_graph(journey: &Journey, path: &str, diagnostics: &mut Vec<Diagnostic>) {
    let n = journey.steps.len();
    let mut reached = vec![false; n];
    let mut stack = vec![journey.start];
    while let Some(s) = stack.pop() {
        if std::mem::replace(&mut reached[s], true) {
            continue;
        }
        stack.extend(journey.steps[s].successors().into_iter().flatten());
    }
    for (k, step) in journey.steps.iter().enumerate() {
        if !reached[k] {
            diagnostics.push(invalid(
                format!("step `{}` is unreachable from the first step", step.id),
                format!("{path}/steps/{k}"),
                "point a `next` (or a `goto`) at it, or remove it",
            ));
        }
    }
    // Edges that take no time: a wait's edges leave the graph.
    let edges = |s: usize| {
        let step = &journey.steps[s];
        if step.waits() {
            Vec::new()
        } else {
            step.successors().into_iter().flatten().collect()
        }
    };
    // One diagnostic for the first loop found (Tarjan's components, linear).
    let loops = crate::graph::components(n, edges);
    if let Some(component) = loops.iter().find(|c| crate::graph::is_cycle(c, edges)) {
        let cycle = crate::graph::cycle_through_first(component, edges);
        let ids: Vec<&str> = cycle.iter().map(|&s| journey.steps[s].id.as_str()).collect();
        diagnostics.push(invalid(
            format!("steps loop without a wait: {}", crate::graph::describe_path(&ids)),
            format!("{path}/steps/{}", component[0]),
            "put a `wait` or `wait_for` step in the loop, so a contact cannot loop forever in one instant",
        ));
    }
}
