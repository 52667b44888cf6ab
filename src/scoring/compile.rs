//! Compiling the document's scoring section into a [`Scorer`], with every problem
//! reported as a diagnostic at its JSON-pointer path.

use crate::condition::{ConditionCompiler, ConditionDoc, Reads};
use crate::def::{DecayDef, ScoreModelDef, ScoringDef};
use crate::diagnostic::{did_you_mean, Code, Diagnostic, UniqueIds};
use crate::repeat::compile_repeat;
use crate::scoring::cell::Bounds;
use crate::scoring::decay::{CalendarPeriod, Decay};
use crate::scoring::model::{Group, PointRule, ScoreModel};
use crate::scoring::scorer::Scorer;
use crate::scoring::threshold::{Rearm, Threshold};
use crate::time::TimeZone;

fn bad(path: String, message: String, help: &str) -> Diagnostic {
    Diagnostic::new(Code::InvalidDocument, message).with_path(path).with_help(help.to_string())
}

fn decay(def: &DecayDef, path: &str, diagnostics: &mut Vec<Diagnostic>) -> Decay {
    match def {
        DecayDef::Named(name) if name == "none" => Decay::None,
        DecayDef::Named(name) => {
            diagnostics.push(
                bad(
                    path.to_string(),
                    format!("unknown decay `{name}`"),
                    "write {\"half_life\": \"30d\"}, {\"step\": 0.25, \"every\": \"30d\"} or \"none\"",
                )
                .with_did_you_mean(did_you_mean(name, ["none"])),
            );
            Decay::None
        }
        DecayDef::HalfLife { half_life } => {
            crate::def::period_or_report(half_life, format!("{path}/half_life"), diagnostics)
                .map_or(Decay::None, |half_life| Decay::HalfLife { half_life })
        }
        DecayDef::Step { step, every, zone } => {
            if !(*step > 0.0 && *step <= 1.0) {
                diagnostics.push(bad(
                    format!("{path}/step"),
                    format!("a step of {step} is not a share in (0, 1]"),
                    "write the share lost per period, such as 0.25",
                ));
                return Decay::None;
            }
            let calendar = match every.as_str() {
                "day" => Some(CalendarPeriod::Day),
                "week" => Some(CalendarPeriod::Week),
                "month" => Some(CalendarPeriod::Month),
                _ => None,
            };
            match calendar {
                Some(period) => {
                    let zone = match zone.as_deref().map(TimeZone::parse) {
                        None => TimeZone::UTC,
                        Some(Ok(z)) => z,
                        Some(Err(_)) => {
                            diagnostics.push(bad(
                                format!("{path}/zone"),
                                format!("unknown time zone `{}`", zone.as_deref().unwrap_or_default()),
                                "use an IANA name such as \"Europe/Paris\" or an offset such as \"+05:30\"",
                            ));
                            TimeZone::UTC
                        }
                    };
                    Decay::Calendar { fraction: *step, period, zone }
                }
                None => {
                    if zone.is_some() {
                        diagnostics.push(bad(
                            format!("{path}/zone"),
                            "a zone applies only to calendar periods (\"day\", \"week\", \"month\")".into(),
                            "remove `zone`, or step by calendar periods",
                        ));
                    }
                    crate::def::period_or_report(every, format!("{path}/every"), diagnostics)
                        .map_or(Decay::None, |period| Decay::Step { fraction: *step, period })
                }
            }
        }
    }
}

/// The largest magnitude a document may give points, caps, floors, thresholds and
/// band bounds: far above any real score, far below where sums of `f64` stop being
/// finite (see `docs/decisions.md`, "Bounded points and caps").
pub(crate) const MAX_POINTS: f64 = 1e12;
/// The largest weight a combined score may give a part.
pub(crate) const MAX_WEIGHT: f64 = 1e6;

/// Whether `v` is finite and within [`MAX_POINTS`] in magnitude.
fn in_points_range(v: f64) -> bool {
    v.is_finite() && v.abs() <= MAX_POINTS
}

fn finite(value: Option<f64>, path: String, diagnostics: &mut Vec<Diagnostic>) -> Option<f64> {
    match value {
        Some(v) if !in_points_range(v) => {
            diagnostics.push(bad(
                path,
                format!("{v} is not a finite number within ±1e12"),
                "give a finite number between -1e12 and 1e12",
            ));
            None
        }
        other => other,
    }
}

/// Compiles the scoring section; `None` (with diagnostics) when anything is wrong.
pub(crate) fn compile_scoring(
    def: &ScoringDef,
    conditions: &ConditionCompiler<'_>,
    diagnostics: &mut Vec<Diagnostic>,
) -> Option<Scorer> {
    let before = diagnostics.len();
    let mut ids = UniqueIds::new("score model id");
    let mut models = Vec::with_capacity(def.models.len());
    for (mi, m) in def.models.iter().enumerate() {
        let path = format!("/scoring/models/{mi}");
        ids.first_use(&m.id, format!("{path}/id"), diagnostics);
        let earlier: Vec<&str> = def.models[..mi].iter().map(|m| m.id.as_str()).collect();
        models.push(model(m, &path, &earlier, conditions, diagnostics));
    }
    if diagnostics.len() > before {
        return None;
    }
    match Scorer::new(models, conditions.schema.event_types().count()) {
        Ok(scorer) => Some(scorer),
        Err(e) => {
            diagnostics.push(Diagnostic::new(Code::InvalidDocument, e.to_string()).with_path("/scoring"));
            None
        }
    }
}

fn model(
    m: &ScoreModelDef,
    path: &str,
    earlier: &[&str],
    conditions: &ConditionCompiler<'_>,
    diagnostics: &mut Vec<Diagnostic>,
) -> ScoreModel {
    let model_decay =
        m.decay.as_ref().map_or(Decay::None, |d| decay(d, &format!("{path}/decay"), diagnostics));
    if let (Some(floor), Some(cap)) = (m.floor, m.cap) {
        if floor > cap {
            diagnostics.push(bad(
                format!("{path}/floor"),
                format!("the floor {floor} is above the cap {cap}"),
                "the floor must not exceed the cap",
            ));
        }
    }
    let model_window = m
        .timeframe
        .as_ref()
        .and_then(|t| crate::def::period_or_report(t, format!("{path}/timeframe"), diagnostics));
    if m.decay.is_some() && m.timeframe.is_some() {
        diagnostics.push(bad(
            format!("{path}/timeframe"),
            "a model has both `decay` and `timeframe`".into(),
            "points either decay or expire; keep one",
        ));
    }
    let bounds = Bounds {
        cap: finite(m.cap, format!("{path}/cap"), diagnostics),
        floor: finite(m.floor, format!("{path}/floor"), diagnostics),
    };
    let mut groups = Vec::new();
    let mut group_ids = UniqueIds::new("group id");
    for (gi, g) in m.groups.iter().enumerate() {
        let gpath = format!("{path}/groups/{gi}");
        group_ids.first_use(&g.id, format!("{gpath}/id"), diagnostics);
        let gb = Bounds {
            cap: finite(g.cap, format!("{gpath}/cap"), diagnostics),
            floor: finite(g.floor, format!("{gpath}/floor"), diagnostics),
        };
        if let (Some(floor), Some(cap)) = (g.floor, g.cap) {
            if floor > cap {
                diagnostics.push(bad(
                    format!("{gpath}/floor"),
                    format!("the floor {floor} is above the cap {cap}"),
                    "the floor must not exceed the cap",
                ));
            }
        }
        let group = Group::new(g.id.clone()).bounds(gb);
        let group = match (&g.decay, &g.timeframe) {
            (Some(_), Some(_)) => {
                diagnostics.push(bad(
                    format!("{gpath}/timeframe"),
                    "a group has both `decay` and `timeframe`".into(),
                    "points either decay or expire; keep one",
                ));
                group
            }
            (Some(d), None) => group.decay(decay(d, &format!("{gpath}/decay"), diagnostics)),
            (None, Some(t)) => {
                match crate::def::period_or_report(t, format!("{gpath}/timeframe"), diagnostics) {
                    Some(w) => group.timeframe(w),
                    None => group,
                }
            }
            (None, None) => match model_window {
                Some(w) => group.timeframe(w),
                None => group.decay(model_decay),
            },
        };
        groups.push(group);
    }
    if groups.is_empty() {
        let default = Group::new("default");
        groups.push(match model_window {
            Some(w) => default.timeframe(w),
            None => default.decay(model_decay),
        });
    }
    let mut model = match &m.combine {
        None => ScoreModel::new(m.id.clone()).with_bounds(bounds).with_groups(groups),
        Some(parts) => {
            if !m.rules.is_empty() || !m.groups.is_empty() || m.decay.is_some() || m.timeframe.is_some() {
                diagnostics.push(bad(
                    format!("{path}/combine"),
                    format!("combined score `{}` cannot have rules, groups, decay or a timeframe", m.id),
                    "a combined score is the weighted sum of the scores it names; give points in those",
                ));
            }
            let mut resolved = Vec::new();
            for (id, weight) in parts {
                match earlier.iter().position(|e| e == id) {
                    Some(i) if weight.is_finite() && (0.0..=MAX_WEIGHT).contains(weight) => {
                        resolved.push((i, *weight));
                    }
                    Some(_) => diagnostics.push(bad(
                        format!("{path}/combine/{id}"),
                        format!("the weight of `{id}` must be a finite number from 0 to 1e6"),
                        "weights scale the combined scores, such as 1 or 0.5 (at most 1e6)",
                    )),
                    None => diagnostics.push(
                        Diagnostic::new(
                            Code::UnknownName,
                            format!("no score model `{id}` is declared before `{}`", m.id),
                        )
                        .with_path(format!("{path}/combine/{id}"))
                        .with_did_you_mean(did_you_mean(id, earlier.iter().copied()))
                        .with_help("a combined score names models declared earlier in `models`"),
                    ),
                }
            }
            ScoreModel::combined(m.id.clone(), resolved).with_bounds(bounds)
        }
    };
    let mut rule_ids = UniqueIds::new("point rule id");
    for (ri, r) in m.rules.iter().enumerate() {
        let rpath = format!("{path}/rules/{ri}");
        rule_ids.first_use(&r.id, format!("{rpath}/id"), diagnostics);
        if !in_points_range(r.points) {
            diagnostics.push(bad(
                format!("{rpath}/points"),
                format!("points must be finite and within ±1e12, not {}", r.points),
                "give a finite number between -1e12 and 1e12",
            ));
            continue;
        }
        let group = match &r.group {
            None => 0,
            Some(name) => match m.groups.iter().position(|g| g.id == *name) {
                Some(i) => i,
                None => {
                    diagnostics.push(
                        Diagnostic::new(Code::InvalidDocument, format!("unknown group `{name}`"))
                            .with_path(format!("{rpath}/group"))
                            .with_did_you_mean(did_you_mean(name, m.groups.iter().map(|g| g.id.as_str())))
                            .with_help("declare the group under the model's `groups`"),
                    );
                    continue;
                }
            },
        };
        let rule = match (&r.on, &r.fit) {
            (Some(_), Some(_)) | (None, None) => {
                diagnostics.push(bad(rpath.clone(), "a point rule needs exactly one of `on` (engagement) and `fit`".into(), "engagement rules name an event type in `on`; fit rules give a condition over the contact in `fit`"));
                continue;
            }
            (None, Some(fit)) => {
                if r.repeat.is_some() || r.min_interval.is_some() {
                    diagnostics.push(bad(
                        rpath.clone(),
                        "a fit rule has no repeat policy: its points count while it holds".into(),
                        "remove `repeat` and `min_interval`",
                    ));
                    continue;
                }
                if r.when.is_some() || r.filter.is_some() {
                    diagnostics.push(bad(
                        rpath.clone(),
                        "a fit rule takes its condition in `fit`, not `when` or `filter`".into(),
                        "move the condition into `fit`",
                    ));
                    continue;
                }
                match conditions.compile_text(fit, Reads::Fit, &format!("{rpath}/fit"), diagnostics) {
                    Ok(c) => PointRule::fit(r.id.clone(), c, r.points),
                    Err(()) => continue,
                }
            }
            (Some(on), None) => {
                let Some(event_type) =
                    conditions.schema.resolve_event_type(on, format!("{rpath}/on"), diagnostics)
                else {
                    continue;
                };
                let doc =
                    ConditionDoc { owner: "a point rule", when: r.when.as_ref(), filter: r.filter.as_ref() };
                let Ok(condition) =
                    conditions.compile(doc, Reads::PointRule(event_type), &rpath, diagnostics)
                else {
                    continue;
                };
                PointRule::on_event(r.id.clone(), event_type, condition, r.points)
            }
        };
        let mut rule = rule.in_group(group);
        rule = rule.repeat(compile_repeat(r.repeat.as_ref(), &format!("{rpath}/repeat"), diagnostics));
        if let Some(gap) = &r.min_interval {
            if let Some(gap) = crate::def::period_or_report(gap, format!("{rpath}/min_interval"), diagnostics)
            {
                rule = rule.min_interval(gap);
            }
        }
        model = model.with_rule(rule);
    }
    let mut threshold_ids = UniqueIds::new("threshold id");
    for (ti, t) in m.thresholds.iter().enumerate() {
        threshold_ids.first_use(&t.id, format!("{path}/thresholds/{ti}/id"), diagnostics);
        let exit = t.exit.unwrap_or(t.enter);
        if !(in_points_range(t.enter) && in_points_range(exit) && exit <= t.enter) {
            diagnostics.push(bad(
                format!("{path}/thresholds/{ti}"),
                format!("threshold `{}` needs finite numbers within ±1e12 with exit <= enter", t.id),
                "hysteresis enters at `enter` and leaves below a lower `exit`",
            ));
            continue;
        }
        model = model.with_threshold(
            t.id.clone(),
            Threshold { enter: t.enter, exit, rearm: t.rearm.unwrap_or(Rearm::EveryCrossing) },
        );
    }
    let mut band_names = UniqueIds::new("band name");
    for (bi, b) in m.bands.iter().enumerate() {
        band_names.first_use(&b.name, format!("{path}/bands/{bi}/name"), diagnostics);
        if !in_points_range(b.from) {
            diagnostics.push(bad(
                format!("{path}/bands/{bi}/from"),
                "a band bound must be finite and within ±1e12".into(),
                "give a finite number between -1e12 and 1e12",
            ));
            continue;
        }
        let leave = b.leave.unwrap_or(b.from);
        if !in_points_range(leave) || leave > b.from {
            diagnostics.push(bad(
                format!("{path}/bands/{bi}/leave"),
                format!("band `{}` leaves at {leave}, which must be finite and at most its `from` ({})", b.name, b.from),
                "give a `leave` level at or below `from` (a band is entered at `from` and left below `leave`)",
            ));
            continue;
        }
        model = model.with_band_hysteresis(b.name.clone(), b.from, leave);
    }
    model
}
