//! Score models: point rules, groups with caps and decay, thresholds and bands.

use crate::expr::Expression;
use crate::id::{EventTypeIndex, RuleId, ScoreId};
use crate::repeat::{Repeat, RepeatPolicy};
use crate::scoring::cell::Bounds;
use crate::scoring::decay::Decay;
use crate::scoring::threshold::Threshold;
use crate::time::Duration;

/// What triggers a point rule.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub enum Trigger {
    /// An event of a type, when the condition holds (engagement).
    Event {
        /// The event type.
        event_type: EventTypeIndex,
        /// The condition over `contact`, `event` and `now`; `None` always holds.
        condition: Option<Expression>,
    },
    /// A condition over the contact's attributes (fit): its points count while it holds.
    Fit {
        /// The condition over `contact`.
        condition: Expression,
    },
}

/// One point rule.
#[derive(Clone, Debug)]
pub struct PointRule {
    pub(crate) id: RuleId,
    pub(crate) trigger: Trigger,
    pub(crate) points: f64,
    pub(crate) group: usize,
    pub(crate) policy: RepeatPolicy,
}

impl PointRule {
    /// An engagement rule: `points` for each event of the type whose condition holds.
    pub fn on_event(
        id: impl Into<RuleId>,
        event_type: EventTypeIndex,
        condition: Option<Expression>,
        points: f64,
    ) -> PointRule {
        PointRule {
            id: id.into(),
            trigger: Trigger::Event { event_type, condition },
            points,
            group: 0,
            policy: RepeatPolicy::new(Repeat::EveryTime),
        }
    }

    /// A fit rule: `points` while the condition over the contact holds.
    pub fn fit(id: impl Into<RuleId>, condition: Expression, points: f64) -> PointRule {
        PointRule {
            id: id.into(),
            trigger: Trigger::Fit { condition },
            points,
            group: 0,
            policy: RepeatPolicy::new(Repeat::EveryTime),
        }
    }

    /// Puts the rule's points into a group (by position in the model's groups).
    pub fn in_group(mut self, group: usize) -> PointRule {
        self.group = group;
        self
    }

    /// Sets the repeat policy.
    pub fn repeat(mut self, repeat: Repeat) -> PointRule {
        self.policy.repeat = repeat;
        self
    }

    /// Requires at least `interval` between two awards.
    pub fn min_interval(mut self, interval: Duration) -> PointRule {
        self.policy.min_interval = Some(interval);
        self
    }

    /// The rule's id.
    pub fn id(&self) -> &RuleId {
        &self.id
    }

    /// The points it awards (negative to subtract).
    pub fn points(&self) -> f64 {
        self.points
    }
}

/// A group of points with its own cap and decay.
#[derive(Clone, Debug, PartialEq)]
pub struct Group {
    pub(crate) name: String,
    pub(crate) bounds: Bounds,
    pub(crate) decay: Decay,
    /// Timeframe mode: only points earned in this last span count.
    pub(crate) window: Option<Duration>,
}

impl Group {
    /// A group with no cap and no decay.
    pub fn new(name: impl Into<String>) -> Group {
        Group { name: name.into(), bounds: Bounds::NONE, decay: Decay::None, window: None }
    }

    /// Timeframe mode: only points earned within the last `window` count, each award
    /// expiring exactly `window` after it was earned (instead of decaying).
    pub fn timeframe(mut self, window: Duration) -> Group {
        self.window = Some(window);
        self.decay = Decay::None;
        self
    }

    /// Caps the group's points.
    pub fn bounds(mut self, bounds: Bounds) -> Group {
        self.bounds = bounds;
        self
    }

    /// Sets the group's decay.
    pub fn decay(mut self, decay: Decay) -> Group {
        self.decay = decay;
        self
    }

    /// The group's name.
    pub fn name(&self) -> &str {
        &self.name
    }
}

/// A named band, such as `hot` from 80 up.
#[derive(Clone, Debug, PartialEq)]
pub struct Band {
    /// The band's name.
    pub name: String,
    /// The lowest score in the band.
    pub from: f64,
}

/// A score model: the sum of its groups' points, within total bounds.
#[derive(Clone, Debug)]
pub struct ScoreModel {
    pub(crate) id: ScoreId,
    pub(crate) groups: Vec<Group>,
    pub(crate) bounds: Bounds,
    pub(crate) rules: Vec<PointRule>,
    pub(crate) thresholds: Vec<(String, Threshold)>,
    pub(crate) bands: Vec<Band>,
    /// For a combined score: earlier models (by position) and their weights.
    pub(crate) combine: Vec<(usize, f64)>,
}

/// Why a model was refused.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum ModelError {
    /// A rule names a group the model does not have.
    #[error("rule `{rule}` puts points in group {group}, which does not exist")]
    UnknownGroup {
        /// The rule.
        rule: String,
        /// The group position.
        group: usize,
    },
    /// Points, caps, bands or thresholds that are NaN or infinite, or inverted.
    #[error("{0}")]
    Invalid(String),
}

impl ScoreModel {
    /// A model with one default group, no cap and no decay.
    pub fn new(id: impl Into<ScoreId>) -> ScoreModel {
        ScoreModel {
            id: id.into(),
            groups: vec![Group::new("default")],
            bounds: Bounds::NONE,
            rules: Vec::new(),
            thresholds: Vec::new(),
            bands: Vec::new(),
            combine: Vec::new(),
        }
    }

    /// A combined score: the weighted sum of earlier models' values (by their position
    /// in the scorer), within its own bounds, with its own thresholds and bands.
    pub fn combined(id: impl Into<ScoreId>, parts: Vec<(usize, f64)>) -> ScoreModel {
        ScoreModel { combine: parts, ..ScoreModel::new(id) }
    }

    /// Replaces the groups; rules refer to them by position. At least one is kept.
    pub fn with_groups(mut self, groups: Vec<Group>) -> ScoreModel {
        if !groups.is_empty() {
            self.groups = groups;
        }
        self
    }

    /// Sets the bounds of the total.
    pub fn with_bounds(mut self, bounds: Bounds) -> ScoreModel {
        self.bounds = bounds;
        self
    }

    /// Sets the decay of every group.
    pub fn with_decay(mut self, decay: Decay) -> ScoreModel {
        for g in self.groups.iter_mut().filter(|g| g.window.is_none()) {
            g.decay = decay;
        }
        self
    }

    /// Adds a rule.
    pub fn with_rule(mut self, rule: PointRule) -> ScoreModel {
        self.rules.push(rule);
        self
    }

    /// Adds a named threshold.
    pub fn with_threshold(mut self, name: impl Into<String>, threshold: Threshold) -> ScoreModel {
        self.thresholds.push((name.into(), threshold));
        self
    }

    /// Adds a band; bands are kept sorted by their lower bound.
    pub fn with_band(mut self, name: impl Into<String>, from: f64) -> ScoreModel {
        self.bands.push(Band { name: name.into(), from });
        self.bands.sort_by(|a, b| a.from.total_cmp(&b.from));
        self
    }

    /// The model's id.
    pub fn id(&self) -> &ScoreId {
        &self.id
    }

    /// Whether this is a combined score (a weighted sum of other models).
    pub fn is_combined(&self) -> bool {
        !self.combine.is_empty()
    }

    /// Checks the model's numbers and references.
    ///
    /// # Errors
    ///
    /// The first problem found.
    pub fn validate(&self) -> Result<(), ModelError> {
        let finite = |x: Option<f64>| x.is_none_or(f64::is_finite);
        let bounds_ok =
            |b: &Bounds| finite(b.cap) && finite(b.floor) && b.cap.zip(b.floor).is_none_or(|(c, f)| f <= c);
        if !bounds_ok(&self.bounds) || !self.groups.iter().all(|g| bounds_ok(&g.bounds)) {
            return Err(ModelError::Invalid("caps and floors must be finite, floor <= cap".into()));
        }
        for r in &self.rules {
            if !r.points.is_finite() {
                return Err(ModelError::Invalid(format!("rule `{}` has non-finite points", r.id)));
            }
            if r.group >= self.groups.len() {
                return Err(ModelError::UnknownGroup { rule: r.id.to_string(), group: r.group });
            }
        }
        for (name, t) in &self.thresholds {
            if !(t.enter.is_finite() && t.exit.is_finite() && t.exit <= t.enter) {
                return Err(ModelError::Invalid(format!("threshold `{name}` needs finite exit <= enter")));
            }
        }
        if !self.bands.iter().all(|b| b.from.is_finite()) {
            return Err(ModelError::Invalid("band bounds must be finite".into()));
        }
        if !self.combine.is_empty() && !self.rules.is_empty() {
            return Err(ModelError::Invalid(format!(
                "combined score `{}` cannot have rules of its own",
                self.id
            )));
        }
        // Non-negative weights keep a combined score non-increasing under decay.
        if !self.combine.iter().all(|(_, w)| w.is_finite() && *w >= 0.0) {
            return Err(ModelError::Invalid(format!(
                "combined score `{}` needs finite, non-negative weights",
                self.id
            )));
        }
        Ok(())
    }
}
