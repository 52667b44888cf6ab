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

/// A named band, such as `hot` from 80 up, optionally with hysteresis: `hot` entered at
/// 80 and left only below 70.
#[derive(Clone, Debug, PartialEq)]
pub struct Band {
    /// The band's name.
    pub name: String,
    /// The score at which the band is entered (rising into it).
    pub from: f64,
    /// The score below which a contact in the band (or above it) falls out of it:
    /// equal to `from` for no hysteresis, lower for some (`leave <= from`).
    pub leave: f64,
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
    pub fn with_band(self, name: impl Into<String>, from: f64) -> ScoreModel {
        self.with_band_hysteresis(name, from, from)
    }

    /// Adds a band with hysteresis: entered when the score rises to `from`, left only
    /// when it falls below `leave` (`leave <= from`, checked by
    /// [`ScoreModel::validate`]), so a score hovering around `from` does not flip
    /// between bands. Falling out of a band, the contact lands in the highest lower band
    /// whose own `leave` it is still at or above.
    ///
    /// ```
    /// # use nurture::scoring::{PointRule, ScoreModel, ScoreScratch, Scorer};
    /// # use nurture::{Schema, Timestamp, Type};
    /// let schema = Schema::builder().event_type("visit", [("url", Type::String)]).build()?;
    /// let visit = schema.event_type_index("visit").unwrap();
    /// let model = ScoreModel::new("engagement")
    ///     .with_rule(PointRule::on_event("visit", visit, None, 80.0))
    ///     .with_band_hysteresis("hot", 80.0, 70.0);
    /// let scorer = Scorer::new(vec![model], 1)?;
    /// let t = Timestamp::from_unix(1_700_000_000, 0)?;
    /// let mut state = scorer.new_state(t);
    /// let (contact, event) = (schema.contact("c").build(), schema.event("e", "c", "visit", t).unwrap().build());
    /// let _ = scorer.handle_event(&mut state, &contact, &event, &mut ScoreScratch::default())?;
    /// assert_eq!(scorer.band(&state, 0, t), Some("hot"));
    /// let _ = scorer.adjust(&mut state, 0, -5.0, t)?; // 75: still hot
    /// assert_eq!(scorer.band(&state, 0, t), Some("hot"));
    /// let update = scorer.adjust(&mut state, 0, -6.0, t)?; // 69: below 70, out
    /// assert_eq!(update.band_changes.len(), 1);
    /// assert_eq!(scorer.band(&state, 0, t), None);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn with_band_hysteresis(mut self, name: impl Into<String>, from: f64, leave: f64) -> ScoreModel {
        self.bands.push(Band { name: name.into(), from, leave });
        self.bands.sort_by(|a, b| a.from.total_cmp(&b.from));
        self
    }

    /// The band a score is in after observing `value`, from the band it was in
    /// (`current`, by position): it rises into the highest band whose `from` it
    /// reaches, stays in its band while at or above the band's `leave`, and falling
    /// out lands in the highest lower band whose `leave` it is still at or above.
    /// Without hysteresis this is the highest band whose `from` the value reaches.
    pub(crate) fn band_after(&self, current: Option<u16>, value: f64) -> Option<u16> {
        let up = self.bands.iter().rposition(|b| value >= b.from);
        let Some(c) = current.map(usize::from).filter(|&c| c < self.bands.len()) else {
            return up.map(|i| i as u16);
        };
        if up.is_some_and(|u| u > c) || value >= self.bands[c].leave {
            return up.filter(|&u| u > c).or(Some(c)).map(|i| i as u16);
        }
        self.bands[..c].iter().rposition(|b| value >= b.leave).map(|i| i as u16)
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
        if !self.bands.iter().all(|b| b.from.is_finite() && b.leave.is_finite() && b.leave <= b.from) {
            return Err(ModelError::Invalid("band bounds must be finite, with leave <= from".into()));
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

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn model(bands: &[(f64, f64)]) -> ScoreModel {
        bands.iter().enumerate().fold(ScoreModel::new("m"), |m, (i, &(from, leave))| {
            m.with_band_hysteresis(format!("b{i}"), from, leave)
        })
    }

    proptest! {
        /// Without hysteresis, the band is the highest whose `from` the value reaches,
        /// whatever band the contact was in.
        #[test]
        fn without_hysteresis_the_band_depends_on_the_value_only(
            froms in proptest::collection::vec(-100i32..100, 0..5),
            current in proptest::option::of(0u16..6),
            value in -150i32..150,
        ) {
            let m = model(&froms.iter().map(|&f| (f64::from(f), f64::from(f))).collect::<Vec<_>>());
            let value = f64::from(value);
            let expected = m.bands.iter().rposition(|b| value >= b.from).map(|i| i as u16);
            prop_assert_eq!(m.band_after(current, value), expected);
        }

        /// With hysteresis: the band reached is at least the highest whose `from` the
        /// value reaches; the value is at or above the `leave` of the band it is in; and
        /// a contact stays in its band while at or above its `leave`.
        #[test]
        fn hysteresis_enters_at_from_and_leaves_below_leave(
            bands in proptest::collection::vec((-100i32..100, 0i32..30), 1..5),
            current in proptest::option::of(0u16..5),
            value in -150i32..150,
        ) {
            let m = model(&bands.iter().map(|&(f, gap)| (f64::from(f), f64::from(f - gap))).collect::<Vec<_>>());
            let current = current.filter(|&c| usize::from(c) < m.bands.len());
            let value = f64::from(value);
            let after = m.band_after(current, value);
            let up = m.bands.iter().rposition(|b| value >= b.from);
            prop_assert!(after.map(usize::from) >= up);
            if let Some(b) = after {
                prop_assert!(value >= m.bands[usize::from(b)].leave);
            }
            if let Some(c) = current {
                if value >= m.bands[usize::from(c)].leave {
                    prop_assert!(after >= Some(c));
                }
            }
            if current.is_none() {
                prop_assert_eq!(after.map(usize::from), up);
            }
        }
    }
}
