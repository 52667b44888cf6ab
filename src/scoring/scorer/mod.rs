//! Incremental scoring: events applied one at a time or in batches, fit rules
//! re-evaluated when attributes change, decay-driven crossings found by timeouts,
//! explanations and recomputation from history.

mod events;
mod explain;
mod fit;
mod read;
mod rescore;
mod tune;
mod wakes;

pub use explain::Explanation;

use crate::counters::Counters;
use crate::expr::Expression;
use crate::id::{EventTypeIndex, RuleId, ScoreId};
use crate::index::{IndexEntry, RuleIndex};
use crate::schema::Slot;
use crate::schema::{Contact, Event};
use crate::scoring::cell::{Bounds, ScoreCell};
use crate::scoring::compile::MAX_POINTS;
use crate::scoring::decay::Decay;
use crate::scoring::model::{ModelError, ScoreModel, Trigger};
use crate::scoring::state::{ContactScores, History, ModelHistory, ModelState};
use crate::scoring::threshold::Crossing;
use crate::time::Timestamp;
use crate::value::Value;

/// How many recent changes each contact's ledger keeps per model, unless
/// [`Scorer::with_ledger`] says otherwise.
pub const LEDGER_LEN: usize = 32;

/// The pseudo-rule under which [`Scorer::adjust`] points are explained.
pub const ADJUSTMENT: &str = "adjust_score";

/// Its position in explanations (after every real rule).
const ADJUSTED: u32 = u32::MAX;

/// How many events ahead [`Scorer::handle_batch`] asks the processor to fetch states.
const PREFETCH_DISTANCE: usize = 8;

/// Compiled score models, ready to score contacts.
#[derive(Clone, Debug)]
pub struct Scorer {
    models: Vec<ScoreModel>,
    /// Per model: its engagement rules indexed by event type and hashed equality tests,
    /// as rule sets are, so an event costs only the rules it can touch.
    indexes: Vec<RuleIndex>,
    counters: Counters,
    /// Per model, per rule: the contact fields a fit rule reads (empty for others).
    fit_reads: Vec<Vec<Vec<Slot>>>,
    /// Contact field names by slot, for [`Scorer::handle_attribute_change`].
    contact_fields: Vec<std::sync::Arc<str>>,
    /// Per schema score (`score.NAME`, in declaration order): the model of that id.
    score_models: Vec<Option<usize>>,
    /// Whether any engagement rule reads `score.NAME` (else scores are not bound).
    reads_scores: bool,
    /// Ledger entries kept per contact and model; 0 keeps no explanation history.
    ledger_len: usize,
    /// Per model: where its groups start in [`ScoreScratch::values`].
    group_offsets: Vec<usize>,
    /// Whether every rule's points are within [`MAX_POINTS`] and every model has at
    /// most `u16::MAX` groups (see [`Scorer::cannot_fail_midway`]).
    bounded: bool,
}

/// Stored numbers at most this large keep every sum of one step finite: a step adds at
/// most (rules x cascade rounds) awards of at most [`MAX_POINTS`] each.
const SAFE_MAGNITUDE: f64 = 1e250;

/// Reusable buffers for the scoring calls that take one; one per thread.
#[derive(Clone, Debug, Default)]
pub struct ScoreScratch {
    candidates: Vec<u32>,
    counts: Vec<Option<Value>>,
    scores: Vec<Option<Value>>,
    /// Every group's value at the event's instant, for the models settled so far.
    values: Vec<f64>,
    /// Per group: the decay factor since its last write, until the group is written.
    factors: Vec<f64>,
    /// Per model: whether its groups are in `values`.
    settled: Vec<bool>,
    model_values: Vec<f64>,
    update: ScoreUpdate,
}

/// What an event or a timeout changed.
#[derive(Clone, Debug, Default, PartialEq)]
#[non_exhaustive]
#[must_use]
pub struct ScoreUpdate {
    /// Point changes that took effect: (score, rule, points).
    pub changes: Vec<(ScoreId, RuleId, f64)>,
    /// Threshold crossings: (score, threshold name, direction).
    pub crossings: Vec<(ScoreId, String, Crossing)>,
    /// Band changes: (score, band before, band after); `None` is below every band.
    pub band_changes: Vec<(ScoreId, Option<String>, Option<String>)>,
    /// When to call [`Scorer::handle_timeout`]: no later than the first instant at which
    /// decay alone moves a score across a threshold or a band boundary (or a timeframe
    /// award expires). It is [`Scorer::next_wake`] exactly after a timeout, a crossing
    /// or a change that lowered a score; a change that only raised scores may keep the
    /// earlier wake-up remembered from before it, which can then find nothing to do
    /// (and the timeout gives the exact one). `None`: decay alone changes nothing.
    pub next_wake: Option<Timestamp>,
}

impl ScoreUpdate {
    /// Empties the update, keeping its buffers.
    pub fn clear(&mut self) {
        self.changes.clear();
        self.crossings.clear();
        self.band_changes.clear();
        self.next_wake = None;
    }

    /// Whether nothing changed (the wake-up aside).
    pub fn is_empty(&self) -> bool {
        self.changes.is_empty() && self.crossings.is_empty() && self.band_changes.is_empty()
    }
}

/// One event of a batch for [`Scorer::handle_batch`]: the position of the contact's
/// state in the host's slice of states, the contact, and the event.
#[derive(Clone, Copy, Debug)]
pub struct BatchEvent<'a> {
    /// Index of the contact's state in the `states` slice.
    pub state: usize,
    /// The contact.
    pub contact: &'a Contact,
    /// The event.
    pub event: &'a Event,
}

/// The bounds a group actually applies: a decaying group never goes below zero, so that
/// decay (which scales toward zero) can never raise a score.
fn effective_bounds(bounds: Bounds, decay: &Decay) -> Bounds {
    if matches!(decay, Decay::None) {
        bounds
    } else {
        Bounds { floor: Some(bounds.floor.map_or(0.0, |f| f.max(0.0))), cap: bounds.cap.map(|c| c.max(0.0)) }
    }
}

fn clamp(bounds: Bounds, v: f64) -> f64 {
    let v = bounds.cap.map_or(v, |c| v.min(c));
    bounds.floor.map_or(v, |f| v.max(f))
}

/// Asks the processor to start loading `value`'s memory; only a hint.
#[inline(always)]
fn prefetch<T>(value: &T) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: a prefetch never faults and does not change program state; SSE is part of
    // the x86_64 baseline.
    unsafe {
        std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(
            (value as *const T).cast::<i8>(),
        );
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = value;
}

impl Scorer {
    /// Builds a scorer from validated models.
    ///
    /// # Errors
    ///
    /// The first model that fails [`ScoreModel::validate`].
    pub fn new(models: Vec<ScoreModel>, event_types: usize) -> Result<Scorer, ModelError> {
        let mut indexes = Vec::with_capacity(models.len());
        for (mi, model) in models.iter().enumerate() {
            model.validate()?;
            if model.combine.iter().any(|(part, _)| *part >= mi) {
                return Err(ModelError::Invalid(format!(
                    "combined score `{}` may only combine models declared before it",
                    model.id
                )));
            }
            let entries: Vec<IndexEntry<'_>> = model
                .rules
                .iter()
                .map(|rule| match &rule.trigger {
                    Trigger::Event { event_type, condition } => IndexEntry {
                        event_type: *event_type,
                        condition: condition.as_ref().and_then(Expression::pred),
                        enabled: true,
                    },
                    Trigger::Fit { .. } => {
                        IndexEntry { event_type: EventTypeIndex(0), condition: None, enabled: false }
                    }
                })
                .collect();
            indexes.push(RuleIndex::from_entries(event_types, &entries));
        }
        let reads_scores = models.iter().flat_map(|m| &m.rules).any(|r| match &r.trigger {
            Trigger::Event { condition: Some(c), .. } => c.reads_scores(),
            _ => false,
        });
        let fit_reads = models
            .iter()
            .map(|m| {
                m.rules
                    .iter()
                    .map(|r| match &r.trigger {
                        Trigger::Fit { condition } => condition.contact_reads(),
                        Trigger::Event { .. } => Vec::new(),
                    })
                    .collect()
            })
            .collect();
        let group_offsets = models
            .iter()
            .scan(0, |next, m| {
                let at = *next;
                *next += m.groups.len();
                Some(at)
            })
            .collect();
        let bounded = models.iter().all(|m| {
            m.groups.len() <= usize::from(u16::MAX) && m.rules.iter().all(|r| r.points.abs() <= MAX_POINTS)
        });
        Ok(Scorer {
            bounded,
            models,
            indexes,
            counters: Counters::default(),
            fit_reads,
            contact_fields: Vec::new(),
            score_models: Vec::new(),
            reads_scores,
            ledger_len: LEDGER_LEN,
            group_offsets,
        })
    }

    /// Adds windowed event counters: each event is counted before the rules run, and
    /// conditions read the counts as `counter.NAME`.
    pub fn with_counters(mut self, counters: Counters) -> Scorer {
        self.counters = counters;
        self
    }

    /// Names the contact fields (the schema's, in slot order), so that
    /// [`Scorer::handle_attribute_change`] can take field names.
    pub fn with_schema(mut self, schema: &crate::schema::Schema) -> Scorer {
        self.contact_fields = schema.contact_fields().iter().map(|(n, _)| std::sync::Arc::from(n)).collect();
        self
    }

    /// Binds the scores conditions read as `score.NAME` to the models of those ids.
    pub fn with_condition_names(mut self, names: &crate::condition::ConditionNames) -> Scorer {
        self.score_models = names
            .scores()
            .iter()
            .map(|(name, _)| self.models.iter().position(|m| m.id.as_str() == name))
            .collect();
        self
    }

    /// How many recent changes to keep per contact and model for explanations
    /// (default [`LEDGER_LEN`]). With 0 the scorer keeps no explanation history at all:
    /// no ledger and no per-rule breakdown, which saves memory and time per change.
    /// Scores, thresholds and wake-ups are the same either way.
    pub fn with_ledger(mut self, len: usize) -> Scorer {
        self.ledger_len = len;
        self
    }

    /// The models.
    pub fn models(&self) -> &[ScoreModel] {
        &self.models
    }

    /// A fresh state: every score at zero as of `at`, fit rules not yet evaluated.
    pub fn new_state(&self, at: Timestamp) -> ContactScores {
        ContactScores::from_parts(
            self.models.iter().map(|m| {
                let cells: smallvec::SmallVec<[ScoreCell; 2]> =
                    m.groups.iter().map(|_| ScoreCell::new(at)).collect();
                ModelState::new(&cells, m.thresholds.len())
            }),
            (!self.counters.is_empty()).then(|| self.counters.new_state()),
            at,
            // Due at once: the first event or timeout places the scores in their bands.
            at,
        )
    }

    /// Carries a state made under other models (`old_ids`, their ids in order) over to
    /// this scorer: each model whose id is still here and whose shape (groups and
    /// thresholds) is unchanged keeps its points, memory and history; the others start
    /// fresh at `at`. Fit rules are not re-evaluated (call `handle_attributes`).
    pub fn adopt(&self, old_ids: &[ScoreId], mut state: ContactScores, at: Timestamp) -> ContactScores {
        let mut fresh = self.new_state(at);
        fresh.set_last(state.last_change().max(at));
        let mut history = state.extra.take_history();
        for (mi, model) in self.models.iter().enumerate() {
            let Some(old) = old_ids.iter().position(|id| *id == model.id) else {
                continue;
            };
            let fits = state.models.get(old).is_some_and(|s| {
                s.group_count() == model.groups.len() && s.threshold_count() == model.thresholds.len()
            });
            if fits {
                fresh.models.set(mi, state.models[old].clone());
                if let Some(h) = history.as_mut().and_then(|h| h.models.get_mut(old)) {
                    let target = fresh.extra.history_mut(|| self.new_history());
                    target.models[mi] = std::mem::take(h);
                }
            }
        }
        // Wake-ups are recomputed at the next step.
        fresh.set_check_from(at);
        fresh
    }

    /// Whether `state` has the shape this scorer's models give (a state restored from
    /// elsewhere may not); every entry point checks, so that nothing indexes out of
    /// range. (Positions stored inside, such as a rule's or a group's, are looked up
    /// with bounds checks wherever they are read.)
    pub fn fits(&self, state: &ContactScores) -> bool {
        state.models.len() == self.models.len()
            && self
                .models
                .iter()
                .zip(&state.models)
                .all(|(m, s)| s.group_count() == m.groups.len() && s.threshold_count() == m.thresholds.len())
            && state.extra.history().is_none_or(|h| h.models.len() == self.models.len())
    }

    /// Whether no step on `state` can fail after it has changed something: the state
    /// fits these models, every rule's points are within [`MAX_POINTS`] (as documents
    /// guarantee), and every stored number (group values, fit points, timeframe awards)
    /// is within `1e250` in magnitude. Then every sum a step forms stays finite, so the
    /// only errors left are those found before anything changes (an out-of-order
    /// instant, another program's state). The engine keeps its all-or-nothing guarantee
    /// without copying the state when this holds; a tampered state (say, awards of
    /// `1e308`) does not pass, and is copied first.
    pub(crate) fn cannot_fail_midway(&self, state: &ContactScores) -> bool {
        let small = |v: f64| v.abs() <= SAFE_MAGNITUDE;
        self.bounded
            && self.fits(state)
            && state.models.iter().all(|m| {
                small(m.fit)
                    && m.groups().all(|g| small(g.stored()))
                    && small(m.awards().iter().map(|a| a.points.abs()).sum::<f64>())
            })
    }

    fn new_history(&self) -> History {
        History {
            models: self
                .models
                .iter()
                .map(|m| ModelHistory {
                    scales: m.groups.iter().map(|_| 1.0).collect(),
                    ..ModelHistory::default()
                })
                .collect(),
        }
    }
}
