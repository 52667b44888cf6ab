//! Explanations: which rules earned a contact's points, and when.

use super::*;
use super::{events::*, read::*};
use crate::id::{RuleId, ScoreId};
use crate::scoring::model::ScoreModel;
use crate::scoring::state::{ContactScores, LedgerEntry};
use crate::time::Timestamp;

impl Scorer {
    /// A score broken down by group and rule at `now`, with the recent ledger.
    pub fn explain(&self, state: &ContactScores, model: usize, now: Timestamp) -> Option<Explanation> {
        if !self.fits(state) {
            return None;
        }
        let m = self.models.get(model)?;
        let s = state.models.get(model)?;
        let history = state.extra.history().and_then(|h| h.models.get(model));
        let mut rules: Vec<(u32, f64)> = Vec::new();
        if let Some(h) = history {
            for c in &h.contributions {
                let g = usize::from(c.group);
                let (Some(group), Some(cell)) = (m.groups.get(g), s.get_group(g)) else {
                    continue;
                };
                rules.push((c.rule, group.decay.apply(h.at_last_write(c), cell.updated_at(), now)));
            }
        }
        for a in s.awards() {
            let window = m.groups.get(usize::from(a.group)).and_then(|g| g.window);
            if window.is_some_and(|w| in_window(a.at, now, w)) {
                match rules.iter_mut().find(|(r, _)| *r == a.rule) {
                    Some(entry) => entry.1 += a.points,
                    None => rules.push((a.rule, a.points)),
                }
            }
        }
        rules.sort_by_key(|(r, _)| *r);
        Some(Explanation {
            score: m.id.clone(),
            value: self.value_of(state, model, now),
            groups: m
                .groups
                .iter()
                .enumerate()
                .map(|(gi, g)| (g.name.clone(), group_value(m, s, gi, now, Precision::Exact)))
                .collect(),
            rules: rules.into_iter().filter_map(|(r, p)| Some((rule_id(m, r)?, p))).collect(),
            fit: s.fit,
            ledger: history
                .map(|h| {
                    h.ledger
                        .iter()
                        .filter_map(|e| {
                            Some(LedgerEntry {
                                rule: rule_id(m, e.rule)?,
                                delta: e.delta,
                                at: e.at,
                                event: e.event.clone(),
                            })
                        })
                        .collect()
                })
                .unwrap_or_default(),
        })
    }
}

/// A score broken down by group and rule, with decay applied.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
#[must_use]
pub struct Explanation {
    /// The score.
    pub score: ScoreId,
    /// Its value.
    pub value: f64,
    /// Each group's points: (group, points).
    pub groups: Vec<(String, f64)>,
    /// Each rule's contribution: (rule, points), in rule order. Empty when the scorer
    /// keeps no history ([`Scorer::with_ledger`] with 0).
    pub rules: Vec<(RuleId, f64)>,
    /// Points from fit rules that currently hold.
    pub fit: f64,
    /// Recent changes, oldest first.
    pub ledger: Vec<LedgerEntry>,
}

/// A rule's id by position, or the adjustment pseudo-rule.
pub(super) fn rule_id(model: &ScoreModel, rule: u32) -> Option<RuleId> {
    match rule {
        ADJUSTED => Some(RuleId::from(ADJUSTMENT)),
        r => model.rules.get(r as usize).map(|r| r.id.clone()),
    }
}
