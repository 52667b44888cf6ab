//! Lint: findings about a compiled program that compile without error but are almost
//! certainly mistakes, such as a threshold no score can reach or a condition that can
//! never hold. Hosts call [`Program::lint`] at publish time; a finding never blocks
//! compilation.
//!
//! | code | severity | finding |
//! |---|---|---|
//! | `L0101` | warning | a threshold above the highest score the model can reach |
//! | `L0102` | warning | a band starting above the highest reachable score |
//! | `L0201` | warning | a condition that can never hold (constant `false`, or contradictory tests on one field such as `x > 5 && x < 3`) |
//! | `L0202` | info | a segment reading `now` in a way whose change instant is not computed (no exact wake-up) |
//! | `L0301` | warning | a rule that can never fire because of its trigger (a crossing that cannot happen) or repeat policy (`max: 0`) |
//! | `L0302` | info | a disabled rule (`enabled: false`) |
//! | `L0401` | info | a counter nothing reads |
//! | `L0402` | info | a segment nothing reads or triggers on |
//! | `L0501` | warning | a rule identical to an earlier one (same trigger, condition, repeat and actions) |
//!
//! The highest reachable score of a model is the model's `cap` when it has one;
//! otherwise the sum of its positive fit points and, per group, the group's `cap`, or
//! the sum of its positive `once` rules when every positive rule is `once` (unbounded
//! otherwise). A combined score's is the weighted sum of its parts', capped.

use std::collections::HashMap;

use crate::def::Direction;
use crate::expr::ast::{BinaryOp, Expr, ExprKind, Literal};
use crate::limits::Limits;
use crate::program::Program;
use crate::scoring::{Repeat, ScoreModel};
use crate::trigger::Trigger;

/// How much a finding matters.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[non_exhaustive]
pub enum Severity {
    /// Worth knowing; often intended.
    Info,
    /// Almost certainly a mistake.
    Warning,
}

/// One lint finding.
#[derive(Clone, Debug, PartialEq)]
pub struct Finding {
    /// A stable code such as `L0101` (see the module table).
    pub code: &'static str,
    /// How much it matters.
    pub severity: Severity,
    /// A JSON pointer into the document, such as `/scoring/models/0/thresholds/1`.
    pub path: String,
    /// What is wrong.
    pub message: String,
    /// What to do about it.
    pub help: String,
}

impl Finding {
    fn new(code: &'static str, severity: Severity, path: String, message: String, help: &str) -> Finding {
        Finding { code, severity, path, message, help: help.to_string() }
    }

    /// One line such as `warning[L0101] /scoring/models/0/thresholds/0: ... (help: ...)`.
    pub fn render(&self) -> String {
        let sev = match self.severity {
            Severity::Info => "info",
            Severity::Warning => "warning",
        };
        format!("{sev}[{}] {}: {}\n  help: {}", self.code, self.path, self.message, self.help)
    }
}

/// The highest score a model can reach (`f64::INFINITY` when unbounded).
pub fn highest_reachable(models: &[ScoreModel], m: usize) -> f64 {
    let model = &models[m];
    let total = if model.is_combined() {
        model
            .combine
            .iter()
            .map(|&(part, w)| if w == 0.0 { 0.0 } else { w * highest_reachable(models, part) })
            .sum()
    } else {
        let mut fit = 0.0;
        let mut groups = vec![(0.0f64, false); model.groups.len().max(1)];
        for rule in &model.rules {
            match &rule.trigger {
                crate::scoring::Trigger::Fit { .. } => fit += rule.points.max(0.0),
                _ if rule.points > 0.0 => {
                    let g = &mut groups[rule.group.min(model.groups.len().saturating_sub(1))];
                    g.0 += rule.points;
                    g.1 |= rule.policy.repeat != Repeat::Once;
                }
                _ => {}
            }
        }
        fit + groups
            .iter()
            .enumerate()
            .map(|(i, &(sum, unbounded))| {
                let cap = model.groups.get(i).and_then(|g| g.bounds.cap);
                match (cap, unbounded) {
                    (Some(c), _) => c.max(0.0).min(if unbounded { f64::INFINITY } else { sum }),
                    (None, true) => f64::INFINITY,
                    (None, false) => sum,
                }
            })
            .sum::<f64>()
    };
    model.bounds.cap.map_or(total, |c| total.min(c))
}

/// Why a condition can never hold, if it cannot.
pub fn never_holds(source: &str) -> Option<String> {
    let expr = crate::expr::parse(source, &Limits::default()).ok()?;
    let mut atoms = Vec::new();
    conjuncts(&expr, &mut atoms);
    // Per field: numeric bounds (value, inclusive) and string equalities.
    let mut lo: HashMap<String, (f64, bool)> = HashMap::new();
    let mut hi: HashMap<String, (f64, bool)> = HashMap::new();
    let mut eq: HashMap<String, String> = HashMap::new();
    for atom in atoms {
        if let ExprKind::Literal(Literal::Bool(false)) = atom.kind {
            return Some("the condition is the constant `false`".into());
        }
        let ExprKind::Binary { op, lhs, rhs } = &atom.kind else { continue };
        let (field, op, lit) = match (path(lhs), literal(rhs), path(rhs), literal(lhs)) {
            (Some(f), Some(l), _, _) => (f, *op, l),
            (_, _, Some(f), Some(l)) => (f, flip(*op), l),
            _ => continue,
        };
        match (op, lit) {
            (BinaryOp::Eq, Lit::Text(s)) => {
                if let Some(prev) = eq.insert(field.clone(), s.clone()) {
                    if prev != s {
                        return Some(format!("`{field}` cannot equal both \"{prev}\" and \"{s}\""));
                    }
                }
            }
            (BinaryOp::Gt | BinaryOp::Ge | BinaryOp::Eq, Lit::Num(x)) => {
                let inclusive = op != BinaryOp::Gt;
                let e = lo.entry(field.clone()).or_insert((f64::NEG_INFINITY, true));
                if x > e.0 || (x == e.0 && !inclusive) {
                    *e = (x, inclusive);
                }
                if op == BinaryOp::Eq {
                    let e = hi.entry(field.clone()).or_insert((f64::INFINITY, true));
                    if x < e.0 {
                        *e = (x, true);
                    }
                }
            }
            (BinaryOp::Lt | BinaryOp::Le, Lit::Num(x)) => {
                let inclusive = op == BinaryOp::Le;
                let e = hi.entry(field.clone()).or_insert((f64::INFINITY, true));
                if x < e.0 || (x == e.0 && !inclusive) {
                    *e = (x, inclusive);
                }
            }
            _ => {}
        }
        let (l, h) = (lo.get(&field), hi.get(&field));
        if let (Some(&(l, li)), Some(&(h, hi_inc))) = (l, h) {
            if l > h || (l == h && !(li && hi_inc)) {
                return Some(format!("no value of `{field}` passes every test on it"));
            }
        }
    }
    None
}

enum Lit {
    Num(f64),
    Text(String),
}

fn literal(e: &Expr) -> Option<Lit> {
    match &e.kind {
        ExprKind::Literal(Literal::Int(i)) => Some(Lit::Num(*i as f64)),
        ExprKind::Literal(Literal::Double(d)) => Some(Lit::Num(*d)),
        ExprKind::Literal(Literal::String(s)) => Some(Lit::Text(s.clone())),
        ExprKind::Unary { op: crate::expr::ast::UnaryOp::Neg, operand } => match literal(operand)? {
            Lit::Num(x) => Some(Lit::Num(-x)),
            Lit::Text(_) => None,
        },
        _ => None,
    }
}

fn flip(op: BinaryOp) -> BinaryOp {
    match op {
        BinaryOp::Lt => BinaryOp::Gt,
        BinaryOp::Le => BinaryOp::Ge,
        BinaryOp::Gt => BinaryOp::Lt,
        BinaryOp::Ge => BinaryOp::Le,
        other => other,
    }
}

fn path(e: &Expr) -> Option<String> {
    match &e.kind {
        ExprKind::Ident(n) => Some(n.clone()),
        ExprKind::Select { operand, field, .. } => Some(format!("{}.{field}", path(operand)?)),
        _ => None,
    }
}

fn conjuncts<'e>(e: &'e Expr, out: &mut Vec<&'e Expr>) {
    match &e.kind {
        ExprKind::Binary { op: BinaryOp::And, lhs, rhs } => {
            conjuncts(lhs, out);
            conjuncts(rhs, out);
        }
        _ => out.push(e),
    }
}

/// Every `prefix.NAME` the expression source reads.
fn reads(source: &str, prefix: &str, out: &mut Vec<String>) {
    fn walk(e: &Expr, prefix: &str, out: &mut Vec<String>) {
        if let ExprKind::Select { operand, field, .. } = &e.kind {
            if matches!(&operand.kind, ExprKind::Ident(n) if n == prefix) {
                out.push(field.clone());
            }
        }
        match &e.kind {
            ExprKind::Select { operand, .. } | ExprKind::Unary { operand, .. } => walk(operand, prefix, out),
            ExprKind::Index { operand, index } => {
                walk(operand, prefix, out);
                walk(index, prefix, out);
            }
            ExprKind::Call { target, args, .. } => {
                target.iter().for_each(|t| walk(t, prefix, out));
                args.iter().for_each(|a| walk(a, prefix, out));
            }
            ExprKind::Binary { lhs, rhs, .. } => {
                walk(lhs, prefix, out);
                walk(rhs, prefix, out);
            }
            ExprKind::Conditional { cond, then, otherwise } => {
                walk(cond, prefix, out);
                walk(then, prefix, out);
                walk(otherwise, prefix, out);
            }
            ExprKind::List(items) => items.iter().for_each(|a| walk(a, prefix, out)),
            ExprKind::Map(items) => items.iter().for_each(|(k, v)| {
                walk(k, prefix, out);
                walk(v, prefix, out);
            }),
            ExprKind::Literal(_) | ExprKind::Ident(_) => {}
        }
    }
    if let Ok(e) = crate::expr::parse(source, &Limits::default()) {
        walk(&e, prefix, out);
    }
}

impl Program {
    /// Lints the program: findings that do not stop it compiling but are almost
    /// certainly mistakes (see [`crate::lint`] for the codes). In document order within
    /// each kind; empty when nothing is found.
    pub fn lint(&self) -> Vec<Finding> {
        let mut out = Vec::new();
        let models: &[ScoreModel] = self.scorer().map_or(&[], |s| s.models());
        let highest: Vec<f64> = (0..models.len()).map(|m| highest_reachable(models, m)).collect();
        let mut sources: Vec<String> = Vec::new();
        for (m, model) in models.iter().enumerate() {
            for (t, (id, threshold)) in model.thresholds.iter().enumerate() {
                if threshold.enter > highest[m] {
                    out.push(Finding::new(
                        "L0101",
                        Severity::Warning,
                        format!("/scoring/models/{m}/thresholds/{t}"),
                        format!(
                            "threshold `{id}` of `{}` enters at {}, above the highest score the model can reach ({})",
                            model.id, threshold.enter, highest[m]
                        ),
                        "lower the threshold, raise the caps, or add rules that can award the points",
                    ));
                }
            }
            for (b, band) in model.bands.iter().enumerate() {
                if band.from > highest[m] {
                    out.push(Finding::new(
                        "L0102",
                        Severity::Warning,
                        format!("/scoring/models/{m}/bands/{b}"),
                        format!(
                            "band `{}` of `{}` starts at {}, above the highest score the model can reach ({})",
                            band.name, model.id, band.from, highest[m]
                        ),
                        "lower the band's `from` or raise the caps",
                    ));
                }
            }
            for (r, rule) in model.rules.iter().enumerate() {
                let cond = match &rule.trigger {
                    crate::scoring::Trigger::Fit { condition } => Some(condition),
                    crate::scoring::Trigger::Event { condition, .. } => condition.as_ref(),
                };
                if let Some(c) = cond {
                    sources.push(c.source().to_string());
                    if let Some(why) = never_holds(c.source()) {
                        out.push(Finding::new(
                            "L0201",
                            Severity::Warning,
                            format!("/scoring/models/{m}/rules/{r}"),
                            format!("point rule `{}` can never award: {why}", rule.id),
                            "fix the condition or remove the rule",
                        ));
                    }
                }
                if let Repeat::AtMost { max: 0, .. } | Repeat::PerCalendar { max: 0, .. } = rule.policy.repeat
                {
                    out.push(Finding::new(
                        "L0301",
                        Severity::Warning,
                        format!("/scoring/models/{m}/rules/{r}/repeat"),
                        format!("point rule `{}` allows 0 awards per window", rule.id),
                        "allow at least one award, or remove the rule",
                    ));
                }
            }
        }
        let mut seen: Vec<(String, usize)> = Vec::new();
        for (i, rule) in self.rules().iter().enumerate() {
            let src = rule.condition().map(|c| c.source().to_string());
            if let Some(s) = &src {
                sources.push(s.clone());
                if let Some(why) = never_holds(s) {
                    out.push(Finding::new(
                        "L0201",
                        Severity::Warning,
                        format!("/rules/{i}"),
                        format!("rule `{}` can never match: {why}", rule.id()),
                        "fix the condition or remove the rule",
                    ));
                }
            }
            if !rule.enabled() {
                out.push(Finding::new(
                    "L0302",
                    Severity::Info,
                    format!("/rules/{i}/enabled"),
                    format!("rule `{}` is disabled and never matches", rule.id()),
                    "remove it once it is no longer needed",
                ));
            }
            if let Repeat::AtMost { max: 0, .. } | Repeat::PerCalendar { max: 0, .. } = rule.repeat() {
                out.push(Finding::new(
                    "L0301",
                    Severity::Warning,
                    format!("/rules/{i}/repeat"),
                    format!("rule `{}` allows 0 firings per window", rule.id()),
                    "allow at least one, or remove the rule",
                ));
            }
            if let Trigger::Threshold { model, threshold, direction: Direction::Up } = rule.trigger() {
                let unreachable = models
                    .get(*model)
                    .and_then(|m| m.thresholds.iter().find(|(id, _)| id == threshold))
                    .is_some_and(|(_, t)| t.enter > highest[*model]);
                if unreachable {
                    out.push(Finding::new(
                        "L0301",
                        Severity::Warning,
                        format!("/rules/{i}/on"),
                        format!(
                            "rule `{}` waits for threshold `{threshold}`, which no score can reach",
                            rule.id()
                        ),
                        "lower the threshold or start the rule differently",
                    ));
                }
            }
            if let Trigger::Band { model, band, direction: Direction::Up } = rule.trigger() {
                let unreachable = models
                    .get(*model)
                    .and_then(|m| m.bands.iter().find(|b| &b.name == band))
                    .is_some_and(|b| b.from > highest[*model]);
                if unreachable {
                    out.push(Finding::new(
                        "L0301",
                        Severity::Warning,
                        format!("/rules/{i}/on"),
                        format!("rule `{}` waits for band `{band}`, which no score can reach", rule.id()),
                        "lower the band's `from` or start the rule differently",
                    ));
                }
            }
            let key = format!(
                "{:?}|{:?}|{:?}|{:?}|{}",
                rule.trigger(),
                src,
                rule.repeat(),
                rule.actions(),
                rule.enabled()
            );
            if let Some((_, first)) = seen.iter().find(|(k, _)| *k == key) {
                out.push(Finding::new(
                    "L0501",
                    Severity::Warning,
                    format!("/rules/{i}"),
                    format!(
                        "rule `{}` repeats rule /rules/{first} (same trigger, condition, repeat and actions)",
                        rule.id()
                    ),
                    "remove one of the two; both fire on the same events",
                ));
            } else {
                seen.push((key, i));
            }
        }
        let segment_conditions: Vec<String> =
            self.segments().iter().filter_map(|s| s.condition().map(|c| c.source().to_string())).collect();
        for (s, segment) in self.segments().iter().enumerate() {
            if let Some(c) = segment.condition() {
                if let Some(why) = never_holds(c.source()) {
                    out.push(Finding::new(
                        "L0201",
                        Severity::Warning,
                        format!("/segments/{s}"),
                        format!("segment `{}` can never have members: {why}", segment.id()),
                        "fix the condition or remove the segment",
                    ));
                }
            }
        }
        for s in self.segments().untimed() {
            let id = self.segments().iter().nth(s).map_or("", |seg| seg.id());
            out.push(Finding::new(
                "L0202",
                Severity::Info,
                format!("/segments/{s}"),
                format!(
                    "segment `{id}` reads `now` in a way whose change instant is not computed: \
                     its membership follows the clock only at the contact's next event or wake-up"
                ),
                "compare `now` (shifted by a duration) with a contact timestamp, such as \
                 `now - contact.signed_up_at > duration('336h')`, to get an exact wake-up",
            ));
        }
        let all: Vec<&String> = sources.iter().chain(&segment_conditions).collect();
        let mut counters_read = Vec::new();
        let mut segments_read = Vec::new();
        for s in &all {
            reads(s, "counter", &mut counters_read);
            reads(s, "segment", &mut segments_read);
        }
        for (c, (name, _)) in self.condition_names().counters().iter().enumerate() {
            if !counters_read.iter().any(|r| r == name) {
                out.push(Finding::new(
                    "L0401",
                    Severity::Info,
                    format!("/counters/{c}"),
                    format!("counter `{name}` is kept for every contact but nothing reads it"),
                    "read it as `counter.NAME` in a condition, or remove it to save its state",
                ));
            }
        }
        for (s, segment) in self.segments().iter().enumerate() {
            let triggered = self
                .rules()
                .iter()
                .any(|r| matches!(r.trigger(), Trigger::Segment { segment: seg, .. } if *seg == s));
            if !triggered && !segments_read.iter().any(|r| r == segment.id()) {
                out.push(Finding::new(
                    "L0402",
                    Severity::Info,
                    format!("/segments/{s}"),
                    format!("segment `{}`: no rule reads it or starts on its entry or exit", segment.id()),
                    "use it in a rule, or remove it if hosts do not read memberships",
                ));
            }
        }
        out
    }
}
