//! Fitting on event histories: engagement features derived by replaying each contact's
//! events up to a cut-off through nurture's windowed counters, with the outcome taken
//! after it; the features then go through the same scorecard fit as a table.
//!
//! Features, per contact, at the cut-off:
//!
//! - `TYPE_Wd`: events of each type in the last `W` days, for `W` in 7, 30, 90, 180 and
//!   365, counted by a nurture counter (`{"on": TYPE, "window": "Wd"}`);
//! - `TYPE_all`: every event of the type before the cut-off;
//! - `days_since_last` and `days_since_first` (recency and tenure);
//! - `active_days` (distinct days with an event) and `mean_gap_days` (the mean gap
//!   between them; missing with one active day);
//! - `PROP_sum_365d` and `PROP_sum_all`: sums of each numeric event property (monetary
//!   value), computed from the same events.
//!
//! The exported document reads these as contact fields: a host keeps them (or
//! computes them from the same counters) and nurture's fit rules score them.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use nurture::{Program, Timestamp};

use crate::error::{LabError, Result};
use crate::history::History;
use crate::scorecard::Dataset;
use crate::table::{field_name, Column};

/// Counter windows in days.
pub const WINDOWS: &[i64] = &[7, 30, 90, 180, 365];

/// How the outcome is defined.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct HistoryTarget {
    /// Features use events at or before this instant.
    pub cutoff: Timestamp,
    /// The outcome is an event after the cut-off and at or before this instant (all
    /// later events when `None`).
    pub until: Option<Timestamp>,
}

/// Builds the feature table of every contact with at least one event at or before the
/// cut-off (contacts not yet seen are not scored). Outcome: any event after the cut-off.
///
/// # Errors
///
/// An event type name nurture cannot declare, or a history with one outcome class.
pub fn features(history: &History, target: HistoryTarget) -> Result<Dataset> {
    // Only what was known at the cut-off defines the features: types and properties
    // seen only later would leak the outcome.
    let known = || history.events.iter().filter(|e| e.at <= target.cutoff);
    let types: BTreeSet<&str> = known().map(|e| e.event_type.as_str()).collect();
    let mut numeric_props: BTreeSet<&str> = BTreeSet::new();
    for e in known() {
        for (k, v) in &e.properties {
            if v.is_number() {
                numeric_props.insert(k.as_str());
            }
        }
    }
    // The counting program: one counter per type and window.
    let mut events = serde_json::Map::new();
    let mut counters = Vec::new();
    let mut names = Vec::new();
    let type_field: HashMap<&str, String> = types.iter().map(|t| (*t, field_name(t))).collect();
    for t in &types {
        events.insert((*t).to_string(), serde_json::json!({}));
        for w in WINDOWS.iter().map(|w| format!("{w}d")).chain(["3650d".to_string()]) {
            let suffix = if w == "3650d" { "all".to_string() } else { w.clone() };
            let id = format!("{}_{suffix}", type_field[t]);
            counters.push(serde_json::json!({"id": id, "on": t, "window": w, "max": 100_000}));
            names.push(id);
        }
    }
    let doc =
        serde_json::json!({"version": 1, "schema": {"contact": {}, "events": events}, "counters": counters});
    // Offline feature extraction counts a whole history exactly: the per-contact window
    // limits that protect a live engine are raised for these counters.
    let limits = nurture::Limits {
        max_window_entries: 100_000,
        max_window_total: u64::MAX,
        max_counters: usize::MAX,
        ..nurture::Limits::default()
    };
    let program = Program::from_json_with_limits(&doc.to_string(), &limits)?;
    let schema = program.schema();
    let mut by_contact: BTreeMap<&str, Vec<&crate::history::HistoryEvent>> = BTreeMap::new();
    for e in &history.events {
        by_contact.entry(e.contact.as_str()).or_default().push(e);
    }
    let day = 86_400.0;
    let cut = target.cutoff.unix_seconds();
    let mut cols: Vec<Vec<Option<f64>>> = vec![Vec::new(); names.len() + 4 + 2 * numeric_props.len()];
    let mut labels = Vec::new();
    let mut values = Vec::new();
    for hc in &history.contacts {
        let evs = by_contact.get(hc.id.as_str()).map(Vec::as_slice).unwrap_or(&[]);
        let before: Vec<_> = evs.iter().filter(|e| e.at <= target.cutoff).collect();
        if before.is_empty() {
            continue;
        }
        let contact = schema.contact(hc.id.as_str()).build();
        let mut state = program.counters().new_state();
        for e in before.iter().filter(|e| types.contains(e.event_type.as_str())) {
            let event = schema.event(e.id.as_str(), hc.id.as_str(), &e.event_type, e.at)?.build();
            program.counters().observe(&mut state, &contact, &event);
        }
        program.counters().values(&state, target.cutoff, &mut values);
        for (i, v) in values.iter().enumerate() {
            let n = match v {
                Some(nurture::Value::Int(n)) => *n as f64,
                _ => 0.0,
            };
            cols[i].push(Some(n));
        }
        let (first, last) = (before[0].at.unix_seconds(), before[before.len() - 1].at.unix_seconds());
        cols[names.len()].push(Some(((cut - last) as f64 / day).floor()));
        cols[names.len() + 1].push(Some(((cut - first) as f64 / day).floor()));
        // Active days and the mean gap between them (missing with one active day).
        let mut days: Vec<i64> = before.iter().map(|e| e.at.unix_seconds().div_euclid(86_400)).collect();
        days.dedup();
        let n_days = days.len() as f64;
        let last_col = names.len() + 2 + 2 * numeric_props.len();
        cols[last_col].push(Some(n_days));
        cols[last_col + 1]
            .push((days.len() > 1).then(|| (days[days.len() - 1] - days[0]) as f64 / (n_days - 1.0)));
        for (k, p) in numeric_props.iter().enumerate() {
            let sum = |from: i64| {
                before
                    .iter()
                    .filter(|e| e.at.unix_seconds() > from)
                    .filter_map(|e| e.properties.get(*p).and_then(serde_json::Value::as_f64))
                    .sum::<f64>()
            };
            cols[names.len() + 2 + 2 * k].push(Some(sum(cut - 365 * 86_400)));
            cols[names.len() + 3 + 2 * k].push(Some(sum(i64::MIN)));
        }
        labels.push(evs.iter().any(|e| e.at > target.cutoff && target.until.is_none_or(|u| e.at <= u)));
    }
    let positives = labels.iter().filter(|&&l| l).count();
    if positives == 0 || positives == labels.len() {
        return Err(LabError::Data(format!(
            "{} contacts have events before the cut-off and {positives} of them have one after it: a model needs both outcomes",
            labels.len()
        )));
    }
    let mut all_names = names;
    all_names.push("days_since_last".into());
    all_names.push("days_since_first".into());
    for p in &numeric_props {
        all_names.push(format!("{}_sum_365d", field_name(p)));
        all_names.push(format!("{}_sum_all", field_name(p)));
    }
    all_names.push("active_days".into());
    all_names.push("mean_gap_days".into());
    let columns = all_names.into_iter().zip(cols).map(|(n, c)| (n.clone(), n, Column::Numeric(c))).collect();
    Ok(Dataset { columns, labels, skipped: Vec::new() })
}
