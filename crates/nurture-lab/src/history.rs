//! Event histories and shadow replay: run a history (JSON lines of contacts and events)
//! through a program with nurture's `Engine`, summarise the effects, and compare two
//! programs over the same history.
//!
//! Contacts: one JSON object a line, `{"id": "c1", "attributes": {"plan": "free"}}`.
//! Events: one a line, `{"id": "e1", "contact": "c1", "type": "page_visit", "at":
//! "2026-01-01T00:00:00Z", "properties": {"url": "/pricing"}}`. Attributes and properties
//! a program's schema does not declare are ignored (so two programs with different
//! schemas replay the same history), as are events of types it does not declare.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::Path;
use std::sync::Arc;

use nurture::engine::{EffectKind, Engine, EngineScratch};
use nurture::{Program, Timestamp, Value};

use crate::error::{LabError, Result};

/// A contact of a history.
#[derive(Clone, Debug, PartialEq)]
pub struct HistoryContact {
    /// Its id.
    pub id: String,
    /// Its attributes, as JSON.
    pub attributes: serde_json::Map<String, serde_json::Value>,
}

/// An event of a history.
#[derive(Clone, Debug, PartialEq)]
pub struct HistoryEvent {
    /// Its id.
    pub id: String,
    /// The contact's id.
    pub contact: String,
    /// The event type's name.
    pub event_type: String,
    /// When it happened.
    pub at: Timestamp,
    /// Its properties, as JSON.
    pub properties: serde_json::Map<String, serde_json::Value>,
}

/// Contacts and their events, events in time order per contact.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct History {
    /// The contacts, in file order (contacts that only appear in events are added).
    pub contacts: Vec<HistoryContact>,
    /// The events, sorted by time (stable for equal instants).
    pub events: Vec<HistoryEvent>,
}

fn lines(path: &Path) -> Result<Vec<(usize, serde_json::Value)>> {
    let text =
        std::fs::read_to_string(path).map_err(|e| LabError::Input(format!("{}: {e}", path.display())))?;
    let mut out = Vec::new();
    for (n, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let v = serde_json::from_str(line)
            .map_err(|e| LabError::Input(format!("{} line {}: {e}", path.display(), n + 1)))?;
        out.push((n + 1, v));
    }
    Ok(out)
}

impl History {
    /// Reads a history from JSON-lines files: contacts (optional) and events.
    ///
    /// # Errors
    ///
    /// An unreadable file or a line that is not the expected object (named).
    pub fn read(contacts: Option<&Path>, events: &Path) -> Result<History> {
        let mut h = History::default();
        let mut known = BTreeSet::new();
        if let Some(path) = contacts {
            for (n, v) in lines(path)? {
                let id = v.get("id").and_then(|x| x.as_str()).ok_or_else(|| {
                    LabError::Input(format!("{} line {n}: a contact needs a string `id`", path.display()))
                })?;
                let attributes = v.get("attributes").and_then(|a| a.as_object()).cloned().unwrap_or_default();
                if known.insert(id.to_string()) {
                    h.contacts.push(HistoryContact { id: id.to_string(), attributes });
                }
            }
        }
        for (n, v) in lines(events)? {
            let field = |name: &str| {
                v.get(name).and_then(|x| x.as_str()).map(str::to_string).ok_or_else(|| {
                    LabError::Input(format!(
                        "{} line {n}: an event needs a string `{name}`",
                        events.display()
                    ))
                })
            };
            let at = field("at")?;
            let at = Timestamp::parse(&at)
                .map_err(|e| LabError::Input(format!("{} line {n}: `at`: {e}", events.display())))?;
            let event = HistoryEvent {
                id: field("id")?,
                contact: field("contact")?,
                event_type: field("type")?,
                at,
                properties: v.get("properties").and_then(|a| a.as_object()).cloned().unwrap_or_default(),
            };
            if known.insert(event.contact.clone()) {
                h.contacts.push(HistoryContact { id: event.contact.clone(), attributes: Default::default() });
            }
            h.events.push(event);
        }
        h.events.sort_by_key(|e| e.at);
        Ok(h)
    }
}

/// What one contact's replay produced.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ContactReplay {
    /// Effects as short labels (`action:RULE`, `threshold:SCORE/ID/up`, `band:SCORE/to`,
    /// `enter:SEG`, `exit:SEG`, `error:RULE`), in order, with their instants.
    pub effects: Vec<(Timestamp, String)>,
    /// First upward crossing of each threshold, by `SCORE/ID`.
    pub first_crossing: BTreeMap<String, Timestamp>,
    /// Segments at the end.
    pub segments: BTreeSet<String>,
    /// Each score's value at the end.
    pub scores: BTreeMap<String, f64>,
}

/// A replay of a history through one program.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Replay {
    /// Per contact, in history order.
    pub contacts: Vec<(String, ContactReplay)>,
    /// Events replayed and events skipped (type not declared).
    pub events: (usize, usize),
}

impl Replay {
    /// Effects counted by label.
    pub fn counts(&self) -> BTreeMap<String, usize> {
        let mut out = BTreeMap::new();
        for (_, c) in &self.contacts {
            for (_, e) in &c.effects {
                *out.entry(e.clone()).or_default() += 1;
            }
        }
        out
    }
}

fn to_value(json: &serde_json::Value, ty: &nurture::Type) -> Option<Value> {
    Value::from_json(json, ty).filter(|v| !matches!(v, Value::Null))
}

fn label(kind: &EffectKind) -> String {
    match kind {
        EffectKind::Action { rule, .. } => format!("action:{}", rule.as_str()),
        EffectKind::ThresholdCrossed { score, threshold, direction } => {
            format!("threshold:{}/{threshold}/{}", score.as_str(), format!("{direction:?}").to_lowercase())
        }
        EffectKind::BandChanged { score, to, .. } => {
            format!("band:{}/{}", score.as_str(), to.as_deref().unwrap_or("-"))
        }
        EffectKind::SegmentEntered { segment } => format!("enter:{segment}"),
        EffectKind::SegmentExited { segment } => format!("exit:{segment}"),
        EffectKind::RuleError { rule, .. } => format!("error:{}", rule.as_str()),
        other => format!("{other:?}"),
    }
}

/// Replays `history` through `program` up to `until` (inclusive; all of it when
/// `None`), honouring the engine's wake-ups between events, and reads each score at
/// `until` (or at the contact's last event).
///
/// # Errors
///
/// A contact or event the program's schema cannot hold, or an engine error.
pub fn replay(program: Arc<Program>, history: &History, until: Option<Timestamp>) -> Result<Replay> {
    let engine = Engine::new(program.clone());
    let schema = program.schema();
    let mut scratch = EngineScratch::default();
    let mut by_contact: HashMap<&str, Vec<&HistoryEvent>> = HashMap::new();
    for e in &history.events {
        if until.is_none_or(|u| e.at <= u) {
            by_contact.entry(e.contact.as_str()).or_default().push(e);
        }
    }
    let models: Vec<String> = program
        .scorer()
        .map(|s| s.models().iter().map(|m| m.id().as_str().to_string()).collect())
        .unwrap_or_default();
    let mut out = Replay::default();
    for hc in &history.contacts {
        let events = by_contact.get(hc.id.as_str()).map(Vec::as_slice).unwrap_or(&[]);
        let mut builder = schema.contact(hc.id.as_str());
        for (name, ty) in schema.contact_fields().iter() {
            if let Some(v) = hc.attributes.get(name).and_then(|j| to_value(j, ty)) {
                builder = builder.set(name, v)?;
            }
        }
        let mut contact = builder.build();
        let start = events.first().map_or_else(|| until.unwrap_or(Timestamp::UNIX_EPOCH), |e| e.at);
        let mut state = engine.new_state(&contact, start);
        let mut rep = ContactReplay::default();
        let mut wake: Option<Timestamp> = None;
        let record = |rep: &mut ContactReplay, effects: &[nurture::engine::Effect]| {
            for eff in effects {
                let l = label(&eff.kind);
                if let EffectKind::ThresholdCrossed { score, threshold, direction } = &eff.kind {
                    if format!("{direction:?}").eq_ignore_ascii_case("up") {
                        rep.first_crossing.entry(format!("{}/{threshold}", score.as_str())).or_insert(eff.at);
                    }
                }
                rep.effects.push((eff.at, l));
            }
        };
        for e in events {
            while let Some(w) = wake.filter(|&w| w < e.at) {
                let o = engine
                    .handle_timeout(&mut state, &contact, w, &mut scratch)
                    .map_err(|err| LabError::Data(format!("contact {}: {err}", hc.id)))?;
                record(&mut rep, &o.effects);
                wake = o.next_wake.filter(|&n| n > w);
            }
            let Some(ty) = schema.event_type_index(&e.event_type).and_then(|i| schema.event_type(i)) else {
                out.events.1 += 1;
                continue;
            };
            let mut b = schema.event(e.id.as_str(), hc.id.as_str(), &e.event_type, e.at)?;
            for (name, pty) in ty.properties().iter() {
                if let Some(v) = e.properties.get(name).and_then(|j| to_value(j, pty)) {
                    b = b.set(name, v)?;
                }
            }
            let o = engine
                .handle_event(&mut state, &contact, &b.build(), &mut scratch)
                .map_err(|err| LabError::Data(format!("contact {}, event {}: {err}", hc.id, e.id)))?;
            out.events.0 += 1;
            record(&mut rep, &o.effects);
            if let Some(c) = o.contact {
                contact = c;
            }
            wake = o.next_wake;
        }
        if let Some(end) = until {
            while let Some(w) = wake.filter(|&w| w <= end) {
                let o = engine
                    .handle_timeout(&mut state, &contact, w, &mut scratch)
                    .map_err(|err| LabError::Data(format!("contact {}: {err}", hc.id)))?;
                record(&mut rep, &o.effects);
                wake = o.next_wake.filter(|&n| n > w);
            }
        }
        let read_at = until.unwrap_or_else(|| events.last().map_or(start, |e| e.at)).max(state.last_change());
        if let (Some(scorer), Some(scores)) = (program.scorer(), state.scores()) {
            for (m, id) in models.iter().enumerate() {
                rep.scores.insert(id.clone(), scorer.value(scores, m, read_at).unwrap_or(0.0));
            }
        }
        rep.segments = state.segments().map(str::to_string).collect();
        out.contacts.push((hc.id.clone(), rep));
    }
    Ok(out)
}

/// How a candidate program's replay differs from the live one's.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Diff {
    /// Effect labels whose count changed: (label, live, candidate).
    pub effects: Vec<(String, usize, usize)>,
    /// Per changed effect label, the contacts whose count of it changed, in history order.
    pub effect_contacts: BTreeMap<String, Vec<String>>,
    /// Contacts whose first crossing of each threshold moved: (threshold, contact, live, candidate).
    pub crossings: Vec<(String, String, Option<Timestamp>, Option<Timestamp>)>,
    /// Contacts whose end-of-history segments differ: (contact, only live, only candidate).
    pub segments: Vec<(String, Vec<String>, Vec<String>)>,
    /// Per score in both: (score, live mean, candidate mean, live median, candidate median, contacts whose value changed).
    pub scores: Vec<(String, f64, f64, f64, f64, usize)>,
}

fn median(xs: &mut [f64]) -> f64 {
    xs.sort_by(f64::total_cmp);
    if xs.is_empty() {
        f64::NAN
    } else {
        xs[xs.len() / 2]
    }
}

/// Compares two replays of the same history.
pub fn diff(live: &Replay, candidate: &Replay) -> Diff {
    let mut d = Diff::default();
    let (a, b) = (live.counts(), candidate.counts());
    let labels: BTreeSet<&String> = a.keys().chain(b.keys()).collect();
    for l in labels {
        let (x, y) = (a.get(l).copied().unwrap_or(0), b.get(l).copied().unwrap_or(0));
        if x != y {
            d.effects.push((l.clone(), x, y));
        }
    }
    let cand: HashMap<&str, &ContactReplay> =
        candidate.contacts.iter().map(|(id, c)| (id.as_str(), c)).collect();
    let mut score_ids: BTreeSet<String> = BTreeSet::new();
    for (_, c) in &live.contacts {
        score_ids.extend(c.scores.keys().cloned());
    }
    let empty = ContactReplay::default();
    fn per_contact(r: &ContactReplay) -> BTreeMap<&str, usize> {
        let mut m: BTreeMap<&str, usize> = BTreeMap::new();
        for (_, e) in &r.effects {
            *m.entry(e.as_str()).or_default() += 1;
        }
        m
    }
    for (id, l) in &live.contacts {
        let c = cand.get(id.as_str()).copied().unwrap_or(&empty);
        let (pl, pc) = (per_contact(l), per_contact(c));
        for (label, _, _) in &d.effects {
            if pl.get(label.as_str()) != pc.get(label.as_str()) {
                d.effect_contacts.entry(label.clone()).or_default().push(id.clone());
            }
        }
        let keys: BTreeSet<&String> = l.first_crossing.keys().chain(c.first_crossing.keys()).collect();
        for k in keys {
            let (x, y) = (l.first_crossing.get(k).copied(), c.first_crossing.get(k).copied());
            if x != y {
                d.crossings.push((k.clone(), id.clone(), x, y));
            }
        }
        if l.segments != c.segments {
            d.segments.push((
                id.clone(),
                l.segments.difference(&c.segments).cloned().collect(),
                c.segments.difference(&l.segments).cloned().collect(),
            ));
        }
    }
    for s in score_ids {
        let mut xs = Vec::new();
        let mut ys = Vec::new();
        let mut changed = 0;
        for (id, l) in &live.contacts {
            let (Some(&x), Some(&y)) =
                (l.scores.get(&s), cand.get(id.as_str()).and_then(|c| c.scores.get(&s)))
            else {
                continue;
            };
            xs.push(x);
            ys.push(y);
            changed += usize::from((x - y).abs() > 1e-9);
        }
        if xs.is_empty() {
            continue;
        }
        let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
        let (mx, my) = (mean(&xs), mean(&ys));
        d.scores.push((s, mx, my, median(&mut xs), median(&mut ys), changed));
    }
    d
}

/// Backtest a program on a history: replays every event up to `cutoff` (inclusive),
/// reads the score model `model` (the first when `None`) at the cut-off, and labels each
/// contact that had an event by then with whether it has another after the cut-off (up to
/// `until`). Returns `(contact ids, scores, outcomes)`.
///
/// # Errors
///
/// A program without that score model, or a replay error.
pub fn backtest(
    program: Arc<Program>,
    history: &History,
    cutoff: Timestamp,
    until: Option<Timestamp>,
    model: Option<&str>,
) -> Result<(Vec<String>, Vec<f64>, Vec<bool>)> {
    let scorer = program.scorer().ok_or_else(|| LabError::Data("the document has no score model".into()))?;
    let id = match model {
        Some(m) => scorer
            .models()
            .iter()
            .find(|x| x.id().as_str() == m)
            .ok_or_else(|| LabError::Data(format!("the document has no score model `{m}`")))?
            .id()
            .as_str()
            .to_string(),
        None => scorer.models()[0].id().as_str().to_string(),
    };
    let r = replay(program.clone(), history, Some(cutoff))?;
    let mut seen_before: BTreeSet<&str> = BTreeSet::new();
    let mut after: BTreeSet<&str> = BTreeSet::new();
    for e in &history.events {
        if e.at <= cutoff {
            seen_before.insert(e.contact.as_str());
        } else if until.is_none_or(|u| e.at <= u) {
            after.insert(e.contact.as_str());
        }
    }
    let (mut ids, mut scores, mut labels) = (Vec::new(), Vec::new(), Vec::new());
    for (cid, rep) in &r.contacts {
        if !seen_before.contains(cid.as_str()) {
            continue;
        }
        ids.push(cid.clone());
        scores.push(rep.scores.get(&id).copied().unwrap_or(0.0));
        labels.push(after.contains(cid.as_str()));
    }
    Ok((ids, scores, labels))
}
