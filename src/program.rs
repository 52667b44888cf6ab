//! The compiled program: schema, rules with compiled conditions, and the rule index.
//!
//! A [`Program`] is immutable and `Send + Sync`; share it behind an `Arc` and swap it on
//! reload. Matching needs a [`MatchScratch`] per thread, like `regex`'s cache, so the hot
//! path never allocates.

use std::sync::Arc;

use crate::condition::{ConditionCompiler, ConditionDoc, ConditionNames, Reads};
use crate::counters::{CounterDef, CounterState, Counters};
use crate::def::{ActionDef, RuleSetDef};
use crate::diagnostic::{Code, CompileError, Diagnostic, UniqueIds};
use crate::expr::compile::Pred;
use crate::expr::{Activation, EvalError, Expression};
use crate::id::{EventTypeIndex, RuleId};
use crate::index::{IndexEntry, RuleIndex};
use crate::limits::Limits;
use crate::repeat::Repeat;
use crate::schema::{Contact, Event, Schema};
use crate::segment::Segments;
use crate::time::Timestamp;
use crate::trigger::RuleLinks;
use crate::trigger::Trigger;
use crate::value::{Type, Value};

/// A compiled rule.
#[derive(Clone, Debug)]
pub struct Rule {
    id: RuleId,
    description: Option<String>,
    trigger: Trigger,
    condition: Option<Expression>,
    actions: Vec<ActionDef>,
    repeat: Repeat,
    enabled: bool,
    /// Per action (by position; empty when no action computes anything): the compiled
    /// expressions of its computed fields.
    computed: Vec<ComputedAction>,
}

/// The compiled expressions of one action: a `set_attribute`'s `expr`, a send's
/// `params`.
#[derive(Clone, Debug, Default)]
pub(crate) struct ComputedAction {
    pub(crate) value: Option<Expression>,
    pub(crate) params: Vec<(String, Expression)>,
}

impl ComputedAction {
    fn is_empty(&self) -> bool {
        self.value.is_none() && self.params.is_empty()
    }
}

impl Rule {
    /// Every compiled expression of the rule's computed action fields.
    fn computed_expressions(&self) -> impl Iterator<Item = &Expression> {
        self.computed.iter().flat_map(|c| c.value.iter().chain(c.params.iter().map(|(_, e)| e)))
    }

    /// The compiled computed fields of the action at `index`, if it has any.
    pub(crate) fn computed(&self, index: usize) -> Option<&ComputedAction> {
        self.computed.get(index).filter(|c| !c.is_empty())
    }

    /// The rule's stable id.
    pub fn id(&self) -> &RuleId {
        &self.id
    }
    /// Its description.
    pub fn description(&self) -> Option<&str> {
        self.description.as_deref()
    }
    /// What starts it.
    pub(crate) fn trigger(&self) -> &Trigger {
        &self.trigger
    }
    /// The event type that triggers it, for a rule started by events.
    pub fn event_type(&self) -> Option<EventTypeIndex> {
        self.trigger.event_type()
    }
    /// How often it may fire per contact.
    pub fn repeat(&self) -> Repeat {
        self.repeat
    }
    /// Its condition; `None` means it always holds.
    pub fn condition(&self) -> Option<&Expression> {
        self.condition.as_ref()
    }
    /// Its actions, as data.
    pub fn actions(&self) -> &[ActionDef] {
        &self.actions
    }
    /// Whether it can match.
    pub fn enabled(&self) -> bool {
        self.enabled
    }

    pub(crate) fn pred(&self) -> Option<&Pred> {
        self.condition.as_ref().and_then(Expression::pred)
    }
}

/// Position of a rule in its program, in declaration order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RuleIndexId(pub(crate) u32);

impl RuleIndexId {
    /// The position.
    pub fn get(self) -> usize {
        self.0 as usize
    }
}

/// A compiled rule set.
///
/// ```
/// use nurture::{Program, Timestamp, expr::Activation};
/// let program = Program::from_json(r#"{
///   "version": 1,
///   "schema": {
///     "contact": {"country": "string"},
///     "events": {"page_visit": {"url": "string"}}
///   },
///   "rules": [
///     {"id": "pricing", "on": "page_visit", "when": "event.url == '/pricing'"}
///   ]
/// }"#)?;
/// let schema = program.schema();
/// let at = Timestamp::from_unix(1_700_000_000, 0)?;
/// let contact = schema.contact("c1").set("country", "FR")?.build();
/// let event = schema.event("e1", "c1", "page_visit", at)?.set("url", "/pricing")?.build();
/// let mut scratch = nurture::MatchScratch::default();
/// let matched = program.match_event(&contact, &event, at, &mut scratch);
/// assert_eq!(program.rule(matched.rules[0]).id().as_str(), "pricing");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Debug)]
pub struct Program {
    name: Option<String>,
    schema: Arc<Schema>,
    names: ConditionNames,
    rules: Vec<Rule>,
    /// Each rule's condition, packed densely apart from the rest of the rule so that
    /// matching touches only what it evaluates. `Const(true)` for a rule with none.
    conditions: Vec<Pred>,
    index: RuleIndex,
    scorer: Option<crate::scoring::Scorer>,
    counters: Counters,
    segments: Segments,
    /// Whether a rule or segment reads `tags` or `bands` (else the engine binds none).
    reads_engine_vars: bool,
    /// Whether a rule or segment reads `score.NAME` (else the engine binds no scores).
    reads_scores: bool,
    /// The limits it was compiled with; the engine applies the run-time ones (effects per
    /// step, pending approvals).
    limits: Limits,
    /// Per event type (by index): the property that keys its instances, if keyed.
    event_keys: Vec<Option<crate::schema::Slot>>,
    /// The document's `policy` section, compiled.
    policy: Option<crate::policy::Policy>,
    /// The journeys of the document's `journeys` section.
    journeys: crate::journey::Journeys,
}

/// Reusable buffers for matching; one per thread.
#[derive(Clone, Debug, Default)]
pub struct MatchScratch {
    buffers: MatchBuffers,
    counts: Vec<Option<Value>>,
}

/// The buffers one matching pass fills.
#[derive(Clone, Debug, Default)]
struct MatchBuffers {
    candidates: Vec<u32>,
    matched: Vec<RuleIndexId>,
    errors: Vec<(RuleIndexId, EvalError)>,
}

/// The rules an event matched, in declaration order, and the rules whose condition
/// ended in an error (which do not match).
#[derive(Debug)]
#[non_exhaustive]
#[must_use]
pub struct Matches<'s> {
    /// Matched rules, in declaration order.
    pub rules: &'s [RuleIndexId],
    /// Rules whose condition failed with an error, with the error.
    pub errors: &'s [(RuleIndexId, EvalError)],
    /// How many conditions were evaluated (the candidates the index left).
    pub evaluated: usize,
}

impl Program {
    /// Compiles a rule-set document.
    ///
    /// # Errors
    ///
    /// Every problem in the document, at once.
    pub fn compile(def: &RuleSetDef, limits: &Limits) -> Result<Program, CompileError> {
        Program::compile_reporting(def, limits, Vec::new())
    }

    /// Compiles, adding to problems already found while reading the document.
    fn compile_reporting(
        def: &RuleSetDef,
        limits: &Limits,
        mut diagnostics: Vec<Diagnostic>,
    ) -> Result<Program, CompileError> {
        if def.version != 1 {
            diagnostics.push(
                Diagnostic::new(Code::InvalidDocument, format!("unsupported version {}", def.version))
                    .with_path("/version")
                    .with_help("this release reads version 1"),
            );
        }
        let schema = Arc::new(crate::document::schema_from_def(&def.schema, &mut diagnostics));
        let names = ConditionNames::of_document(def);
        if def.rules.len() > limits.max_rules {
            diagnostics.push(
                Diagnostic::new(
                    Code::LimitExceeded,
                    format!("{} rules, more than the limit of {}", def.rules.len(), limits.max_rules),
                )
                .with_path("/rules")
                .with_help("split the rule set or raise `Limits::max_rules`"),
            );
            return Err(CompileError::new(diagnostics));
        }
        if check_sizes(def, limits, &mut diagnostics) {
            return Err(CompileError::new(diagnostics));
        }
        let regexes = crate::expr::check::RegexCache::new(limits);
        let conditions = ConditionCompiler { schema: &schema, names: &names, limits, regexes: &regexes };
        let counters = compile_counters(&def.counters, &conditions, &mut diagnostics);
        let scorer = def.scoring.as_ref().and_then(|scoring| {
            crate::scoring::compile::compile_scoring(scoring, &conditions, &mut diagnostics)
                .map(|s| s.with_counters(counters.clone()).with_schema(&schema).with_condition_names(&names))
        });
        let segments =
            crate::segment::compile_segments(&def.segments, &conditions, scorer.as_ref(), &mut diagnostics);
        let segment_ids: Vec<&str> = def.segments.iter().map(|s| s.id.as_str()).collect();
        let policy = def
            .policy
            .as_ref()
            .and_then(|p| crate::policy::compile_policy(p, &schema, &segment_ids, &mut diagnostics));
        let journeys =
            crate::journey::compile_journeys(&def.journeys, &conditions, scorer.as_ref(), &mut diagnostics);
        check_journey_actions(def, &schema, &mut diagnostics);
        let mut rules = Vec::with_capacity(def.rules.len());
        let mut ids = UniqueIds::new("rule id");
        let declared = crate::def::declared_channels(def.policy.as_ref());
        for (i, rule) in def.rules.iter().enumerate() {
            let path = format!("/rules/{i}");
            ids.first_use(&rule.id, format!("{path}/id"), &mut diagnostics);
            if rule.id.is_empty() {
                diagnostics.push(
                    Diagnostic::new(Code::InvalidDocument, "a rule id is empty")
                        .with_path(format!("{path}/id"))
                        .with_help("give every rule a stable, unique id"),
                );
            }
            let Some(trigger) = crate::trigger::compile_trigger(
                &rule.on,
                &schema,
                &names,
                scorer.as_ref(),
                &format!("{path}/on"),
                &mut diagnostics,
            ) else {
                continue;
            };
            let doc =
                ConditionDoc { owner: "a rule", when: rule.when.as_ref(), filter: rule.filter.as_ref() };
            let condition = conditions
                .compile(doc, Reads::Rule(trigger.event_type()), &path, &mut diagnostics)
                .ok()
                .flatten();
            check_actions(&rule.actions, &schema, &declared, &path, &mut diagnostics);
            check_score_groups(&rule.actions, scorer.as_ref(), &path, &mut diagnostics);
            let computed =
                compile_computed(&rule.actions, &conditions, trigger.event_type(), &path, &mut diagnostics);
            let repeat = crate::repeat::compile_rule_repeat(
                rule.repeat.as_ref(),
                Some(&schema),
                &format!("{path}/repeat"),
                &mut diagnostics,
            );
            rules.push(Rule {
                id: RuleId::new(&rule.id),
                description: rule.description.clone(),
                trigger,
                condition,
                actions: rule.actions.clone(),
                repeat,
                enabled: rule.enabled,
                computed,
            });
        }
        let event_keys = compile_event_keys(&def.schema.keys, &schema, &mut diagnostics);
        if diagnostics.is_empty() {
            let links: Vec<RuleLinks<'_>> = rules
                .iter()
                .map(|r| RuleLinks {
                    id: r.id.as_str(),
                    trigger: &r.trigger,
                    enabled: r.enabled,
                    actions: &r.actions,
                })
                .collect();
            crate::trigger::check_attribute_cycles(&links, &schema, &mut diagnostics);
        }
        if !diagnostics.is_empty() {
            return Err(CompileError::new(diagnostics));
        }
        let entries: Vec<IndexEntry<'_>> = rules
            .iter()
            .map(|r| IndexEntry {
                event_type: r.event_type().unwrap_or(EventTypeIndex(0)),
                condition: r.pred(),
                // Rules started by other triggers are not matched against events.
                enabled: r.enabled && r.event_type().is_some(),
            })
            .collect();
        let index = RuleIndex::from_entries(schema.event_types().count(), &entries);
        let conditions = rules.iter().map(|r| r.pred().cloned().unwrap_or(Pred::Const(true))).collect();
        let reads_engine_vars = rules
            .iter()
            .filter_map(Rule::condition)
            .chain(segments.iter().filter_map(|s| s.condition()))
            .chain(rules.iter().flat_map(Rule::computed_expressions))
            .chain(journey_conditions(&journeys))
            .any(Expression::reads_vars);
        let reads_scores = rules
            .iter()
            .filter_map(Rule::condition)
            .chain(segments.iter().filter_map(|s| s.condition()))
            .chain(rules.iter().flat_map(Rule::computed_expressions))
            .chain(journey_conditions(&journeys))
            .any(Expression::reads_any_score);
        Ok(Program {
            name: def.name.clone(),
            schema,
            names,
            rules,
            conditions,
            index,
            scorer,
            counters,
            segments,
            reads_engine_vars,
            reads_scores,
            limits: limits.clone(),
            event_keys,
            policy,
            journeys,
        })
    }

    /// Reads and compiles a JSON rule-set document.
    ///
    /// # Errors
    ///
    /// Every problem in the document, at once.
    pub fn from_json(text: &str) -> Result<Program, CompileError> {
        Program::from_json_with_limits(text, &Limits::default())
    }

    /// [`Program::from_json`] with explicit limits.
    ///
    /// # Errors
    ///
    /// Every problem in the document, at once.
    pub fn from_json_with_limits(text: &str, limits: &Limits) -> Result<Program, CompileError> {
        let (def, problems) = crate::document::read(text, crate::document::Format::Json, limits)?;
        Program::compile_reporting(&def, limits, problems)
    }

    /// Reads and compiles a TOML rule-set document.
    ///
    /// # Errors
    ///
    /// Every problem in the document, at once.
    #[cfg(feature = "toml")]
    pub fn from_toml(text: &str) -> Result<Program, CompileError> {
        let limits = Limits::default();
        let (def, problems) = crate::document::read(text, crate::document::Format::Toml, &limits)?;
        Program::compile_reporting(&def, &limits, problems)
    }

    /// Reads and compiles a TOML rule-set document under `limits`.
    ///
    /// ```
    /// let limits = nurture::Limits { max_rules: 1, ..nurture::Limits::default() };
    /// let doc = "version = 1\n[schema.events.e]\n[[rules]]\nid = 'a'\non = 'e'\n[[rules]]\nid = 'b'\non = 'e'\n";
    /// assert!(nurture::Program::from_toml(doc).is_ok());
    /// assert!(nurture::Program::from_toml_with_limits(doc, &limits).is_err());
    /// ```
    ///
    /// # Errors
    ///
    /// Every problem in the document, at once.
    #[cfg(feature = "toml")]
    pub fn from_toml_with_limits(text: &str, limits: &Limits) -> Result<Program, CompileError> {
        let (def, problems) = crate::document::read(text, crate::document::Format::Toml, limits)?;
        Program::compile_reporting(&def, limits, problems)
    }

    /// The windowed event counters of the document's `counters` section.
    pub fn counters(&self) -> &Counters {
        &self.counters
    }

    /// Counts `event` in the contact's counters, then matches it with `counter.NAME`
    /// bound to the counts at `now` (the event itself included).
    pub fn observe_and_match<'s>(
        &self,
        contact: &Contact,
        event: &Event,
        now: Timestamp,
        counters: &mut CounterState,
        scratch: &'s mut MatchScratch,
    ) -> Matches<'s> {
        self.counters.observe(counters, contact, event);
        self.counters.values(counters, now, &mut scratch.counts);
        let activation = Activation::new()
            .with_contact(contact)
            .with_event(event)
            .with_now(now)
            .with_counters(&scratch.counts);
        self.run(event, &activation, &mut scratch.buffers)
    }

    /// The key of an event of a keyed type (`schema.keys`): its key property's value
    /// as text (an int in decimal); `None` for an unkeyed type or an event without the
    /// property.
    pub fn event_key(&self, event: &Event) -> Option<String> {
        let slot = (*self.event_keys.get(event.event_type().0 as usize)?)?;
        match event.properties().slots().get(slot as usize)? {
            Some(Value::String(s)) => Some(s.to_string()),
            Some(Value::Int(i)) => Some(i.to_string()),
            _ => None,
        }
    }

    /// Whether a rule or segment condition reads `score.NAME`.
    pub(crate) fn reads_scores(&self) -> bool {
        self.reads_scores
    }

    /// Whether a rule or segment condition reads the engine's `tags` or `bands`.
    pub(crate) fn reads_engine_vars(&self) -> bool {
        self.reads_engine_vars
    }

    /// The dynamic segments of the document's `segments` section, compiled.
    pub fn segments(&self) -> &Segments {
        &self.segments
    }

    /// The document's `policy` section, compiled (`None`: every send is ready).
    pub fn policy(&self) -> Option<&crate::policy::Policy> {
        self.policy.as_ref()
    }

    /// The score models of the document's `scoring` section, compiled.
    pub fn scorer(&self) -> Option<&crate::scoring::Scorer> {
        self.scorer.as_ref()
    }

    /// The limits the program was compiled with; the engine applies the run-time ones
    /// ([`Limits::max_effects_per_step`], [`Limits::max_pending_approvals`]).
    ///
    /// ```
    /// let doc = r#"{"version": 1, "schema": {"events": {"e": {}}}, "rules": [{"id": "a", "on": "e"}]}"#;
    /// let limits = nurture::Limits { max_pending_approvals: 10, ..nurture::Limits::default() };
    /// let program = nurture::Program::from_json_with_limits(doc, &limits)?;
    /// assert_eq!(program.limits().max_pending_approvals, 10);
    /// # Ok::<(), nurture::CompileError>(())
    /// ```
    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// The journeys of the document's `journeys` section, compiled.
    pub fn journeys(&self) -> &crate::journey::Journeys {
        &self.journeys
    }

    /// The rule set's name.
    pub fn name(&self) -> Option<&str> {
        self.name.as_deref()
    }

    /// The schema.
    pub fn schema(&self) -> &Schema {
        &self.schema
    }

    /// The names beyond the schema that conditions read: scores, counters, segments.
    pub fn condition_names(&self) -> &ConditionNames {
        &self.names
    }

    /// The schema, shared.
    pub fn schema_arc(&self) -> &Arc<Schema> {
        &self.schema
    }

    /// All rules in declaration order.
    pub fn rules(&self) -> &[Rule] {
        &self.rules
    }

    /// One rule.
    ///
    /// # Panics
    ///
    /// When the index does not come from this program.
    pub fn rule(&self, index: RuleIndexId) -> &Rule {
        &self.rules[index.get()]
    }

    /// What starts a rule, in words: the event type's name, `threshold mql up`,
    /// `band hot entered`, `segment trial entered`, `attribute plan`, `tag vip up`,
    /// `list newsletter up`, `stage mql up`, `owner * up`, `inactivity`, `date`,
    /// `schedule`.
    pub fn describe_trigger(&self, rule: &Rule) -> String {
        let way = |d: &crate::def::Direction| match d {
            crate::def::Direction::Up => "up",
            crate::def::Direction::Down => "down",
        };
        match rule.trigger() {
            Trigger::Event(t) => self.schema.event_type(*t).map_or("?".into(), |t| t.name().to_string()),
            Trigger::Threshold { threshold, direction, .. } => {
                format!("threshold {threshold} {}", way(direction))
            }
            Trigger::Band { band, direction, .. } => format!("band {band} {}", way(direction)),
            Trigger::Segment { segment, direction } => {
                let id = self.segments.iter().nth(*segment).map_or("?", |s| s.id());
                format!("segment {id} {}", way(direction))
            }
            Trigger::Attribute { field, .. } => {
                format!("attribute {}", self.schema.contact_fields().name(*field))
            }
            Trigger::Tag { tag, direction } => format!("tag {tag} {}", way(direction)),
            Trigger::List { list, direction } => format!("list {list} {}", way(direction)),
            Trigger::Stage { stage, direction } => format!("stage {stage} {}", way(direction)),
            Trigger::Owner { owner, direction } => format!("owner {owner} {}", way(direction)),
            Trigger::Date { .. } => "date".into(),
            Trigger::Schedule { .. } => "schedule".into(),
            Trigger::Inactivity { .. } => "inactivity".into(),
        }
    }

    /// Finds a rule by id.
    pub fn rule_by_id(&self, id: &str) -> Option<RuleIndexId> {
        self.rules.iter().position(|r| r.id.as_str() == id).map(|i| RuleIndexId(i as u32))
    }

    /// Orders the operands of every `&&` and `||` in the program's event-rule
    /// conditions and score models by their measured selectivity on `sample`, the
    /// host's events with their contacts: the tuned program matches and scores exactly
    /// as before (values, errors, effects), with less work when the sample is like the
    /// traffic. Tune a program once, after compiling it and before sharing it behind an
    /// `Arc`.
    ///
    /// The score models are tuned as [`Scorer::tune`](crate::scoring::Scorer::tune)
    /// says (the sample replayed in order on throwaway states). Event rules are observed
    /// as [`Program::match_event`] evaluates them, at each event's instant, on the
    /// candidates the index leaves; an operand that reads what only the engine binds
    /// (counters, scores, segments, `tags`, `bands`) counts as not deciding, so it moves
    /// after operands that do. Orders come from counts, not clocks: the same program and
    /// sample give the same order on every machine, and an empty sample changes nothing.
    ///
    /// ```
    /// use nurture::{MatchScratch, Program, Timestamp};
    ///
    /// let mut program = Program::from_json(r#"{
    ///   "version": 1,
    ///   "schema": {"contact": {"plan": "string"}, "events": {"page_visit": {"url": "string", "seconds": "int"}}},
    ///   "rules": [{"id": "pricing", "on": "page_visit", "when": "event.seconds >= 5 && event.url == '/pricing'"}]
    /// }"#)?;
    /// let schema = program.schema().clone();
    /// let contact = schema.contact("c1").set("plan", "free")?.build();
    /// let at = Timestamp::from_unix(1_700_000_000, 0)?;
    /// let events = ["/blog", "/docs", "/pricing", "/blog"]
    ///     .iter()
    ///     .enumerate()
    ///     .map(|(i, url)| {
    ///         Ok(schema.event(format!("e{i}"), "c1", "page_visit", at)?.set("url", *url)?.set("seconds", 30)?.build())
    ///     })
    ///     .collect::<Result<Vec<_>, Box<dyn std::error::Error>>>()?;
    ///
    /// // The URL test decides three events in four, the time on page none: it goes first.
    /// let tuning = program.tune(events.iter().map(|e| (&contact, e)));
    /// assert_eq!((tuning.events, tuning.reordered), (4, 1));
    /// let mut scratch = MatchScratch::default();
    /// let matches = program.match_event(&contact, &events[2], at, &mut scratch);
    /// assert_eq!(matches.rules.len(), 1);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn tune<'a>(
        &mut self,
        sample: impl IntoIterator<Item = (&'a Contact, &'a Event)>,
    ) -> crate::expr::Tuning {
        let sample: Vec<(&Contact, &Event)> = sample.into_iter().collect();
        let mut tuning = match self.scorer.as_mut() {
            Some(scorer) => scorer.tune(sample.iter().copied()),
            None => crate::expr::Tuning { events: sample.len(), ..Default::default() },
        };
        let mut tallies = vec![crate::expr::compile::Tally::default(); self.conditions.len()];
        let mut candidates = Vec::new();
        for (contact, event) in &sample {
            let activation = Activation::new().with_contact(contact).with_event(event).with_now(event.at());
            self.index.candidates(event, Some(contact.attributes().slots()), &mut candidates);
            for &i in &candidates {
                if let (Some(condition), Some(tally)) =
                    (self.conditions.get(i as usize), tallies.get_mut(i as usize))
                {
                    condition.observe(&activation, tally);
                    tuning.evaluations += 1;
                }
            }
        }
        for ((condition, tally), rule) in self.conditions.iter_mut().zip(&tallies).zip(&mut self.rules) {
            if tally.runs() == 0 {
                continue;
            }
            tuning.conditions += 1;
            if let Some(tuned) = condition.tuned(tally) {
                // The rule's own expression (`Rule::condition`) evaluates the same way.
                rule.condition = rule.condition.as_ref().map(|e| e.with_pred(tuned.clone()));
                *condition = tuned;
                tuning.reordered += 1;
            }
        }
        tuning
    }

    /// The rules that can match `event` according to the index, in declaration order.
    /// Every rule that matches is among them; most that cannot are not.
    pub fn candidates<'s>(
        &self,
        event: &Event,
        scratch: &'s mut MatchScratch,
    ) -> impl ExactSizeIterator<Item = RuleIndexId> + 's {
        self.index.candidates(event, None, &mut scratch.buffers.candidates);
        scratch.buffers.candidates.iter().map(|&i| RuleIndexId(i))
    }

    /// Evaluates every rule the event can trigger and returns those whose condition
    /// holds, in declaration order.
    pub fn match_event<'s>(
        &self,
        contact: &Contact,
        event: &Event,
        now: Timestamp,
        scratch: &'s mut MatchScratch,
    ) -> Matches<'s> {
        let activation = Activation::new().with_contact(contact).with_event(event).with_now(now);
        self.match_activation(event, &activation, scratch)
    }

    /// [`Program::match_event`] with a prepared activation (for hosts that also bind
    /// scores).
    pub fn match_activation<'s>(
        &self,
        event: &Event,
        activation: &Activation<'_>,
        scratch: &'s mut MatchScratch,
    ) -> Matches<'s> {
        self.run(event, activation, &mut scratch.buffers)
    }

    /// Whether any event rule is on events of type `t` (the engine skips preparing
    /// rule evaluation for an event of a type no rule is on).
    pub(crate) fn has_event_rules_for(&self, t: crate::id::EventTypeIndex) -> bool {
        self.index.has_rules_for(t)
    }

    /// Evaluates the event's candidate rules against `activation`.
    fn run<'s>(
        &self,
        event: &Event,
        activation: &Activation<'_>,
        buffers: &'s mut MatchBuffers,
    ) -> Matches<'s> {
        let contact = Some(activation.scopes[crate::expr::ir::Scope::Contact as usize]);
        self.index.candidates(event, contact, &mut buffers.candidates);
        buffers.matched.clear();
        buffers.errors.clear();
        for &i in &buffers.candidates {
            let Some(condition) = self.conditions.get(i as usize) else {
                continue;
            };
            match condition.test(activation) {
                Ok(true) => buffers.matched.push(RuleIndexId(i)),
                Ok(false) => {}
                Err(e) => buffers.errors.push((RuleIndexId(i), e)),
            }
        }
        Matches { rules: &buffers.matched, errors: &buffers.errors, evaluated: buffers.candidates.len() }
    }
}

/// Compiles the document's counters, in declaration order (the schema's counter order).
/// Checks the counts [`Limits`] bounds (segments, counters, models, bands, thresholds,
/// point rules) and the per-contact windows (repeat and counter `max`) before anything
/// is compiled, so that an oversized document is refused at once. `true` when a count
/// is over its limit (compiling would be wasted work); window limits only add
/// diagnostics.
fn check_sizes(def: &RuleSetDef, limits: &Limits, diagnostics: &mut Vec<Diagnostic>) -> bool {
    let mut over = false;
    let mut count = |n: usize, max: usize, what: &str, path: String, field: &str| {
        if n > max {
            over = true;
            diagnostics.push(
                Diagnostic::new(Code::LimitExceeded, format!("{n} {what}, more than the limit of {max}"))
                    .with_path(path)
                    .with_help(format!("split the rule set or raise `Limits::{field}`")),
            );
        }
    };
    count(def.segments.len(), limits.max_segments, "segments", "/segments".into(), "max_segments");
    count(def.counters.len(), limits.max_counters, "counters", "/counters".into(), "max_counters");
    if let Some(scoring) = &def.scoring {
        count(
            scoring.models.len(),
            limits.max_models,
            "score models",
            "/scoring/models".into(),
            "max_models",
        );
        let point_rules = scoring.models.iter().map(|m| m.rules.len()).fold(0usize, usize::saturating_add);
        count(
            point_rules,
            limits.max_point_rules,
            "point rules",
            "/scoring/models".into(),
            "max_point_rules",
        );
        for (i, m) in scoring.models.iter().enumerate().take(limits.max_models) {
            let path = format!("/scoring/models/{i}");
            count(m.bands.len(), limits.max_bands, "bands", format!("{path}/bands"), "max_bands");
            count(
                m.thresholds.len(),
                limits.max_bands,
                "thresholds",
                format!("{path}/thresholds"),
                "max_bands",
            );
        }
    }
    if over {
        return true;
    }
    let max = limits.max_window_entries;
    let reported = diagnostics.len();
    let mut window = |n: u32, path: String, what: &str| {
        if n > max {
            diagnostics.push(
                Diagnostic::new(
                    Code::LimitExceeded,
                    format!("{what} of {n}, more than the limit of {max} instants a contact's state keeps"),
                )
                .with_path(path)
                .with_help(format!(
                    "a contact remembers each instant of the window; use at most {max}, or raise `Limits::max_window_entries`"
                )),
            );
        }
    };
    let repeat_max = |r: Option<&crate::def::RepeatDef>| match r {
        Some(crate::def::RepeatDef::AtMost { max, .. }) => Some(*max),
        _ => None,
    };
    for (i, rule) in def.rules.iter().enumerate() {
        if let Some(n) = repeat_max(rule.repeat.as_ref()) {
            window(n, format!("/rules/{i}/repeat/max"), "a repeat `max`");
        }
    }
    for (i, counter) in def.counters.iter().enumerate() {
        if let Some(n) = counter.max {
            window(n, format!("/counters/{i}/max"), "a counter `max`");
        }
    }
    if let Some(scoring) = &def.scoring {
        for (i, m) in scoring.models.iter().enumerate() {
            for (j, r) in m.rules.iter().enumerate() {
                if let Some(n) = repeat_max(r.repeat.as_ref()) {
                    window(n, format!("/scoring/models/{i}/rules/{j}/repeat/max"), "a repeat `max`");
                }
            }
        }
    }
    // All windows together: what one contact's state may hold at most.
    let kept = |repeat: Option<&crate::def::RepeatDef>, min_interval: bool| -> u64 {
        match repeat {
            Some(crate::def::RepeatDef::AtMost { max, .. }) => u64::from((*max).max(1)),
            Some(crate::def::RepeatDef::Named(name)) if name == "once" => 1,
            _ => u64::from(min_interval),
        }
    };
    let mut total: u64 = 0;
    for rule in &def.rules {
        total = total.saturating_add(kept(rule.repeat.as_ref(), false));
    }
    for counter in &def.counters {
        total = total.saturating_add(u64::from(counter.max.unwrap_or(crate::counters::DEFAULT_MAX).min(max)));
    }
    if let Some(scoring) = &def.scoring {
        for m in &scoring.models {
            for r in &m.rules {
                total = total.saturating_add(kept(r.repeat.as_ref(), r.min_interval.is_some()));
            }
            let timeframes = if m.groups.is_empty() {
                usize::from(m.timeframe.is_some())
            } else {
                m.groups
                    .iter()
                    .filter(|g| g.timeframe.is_some() || g.decay.is_none() && m.timeframe.is_some())
                    .count()
            };
            total = total.saturating_add((timeframes * crate::limits::MAX_TIMEFRAME_AWARDS) as u64);
        }
    }
    if total > limits.max_window_total && diagnostics.len() == reported {
        diagnostics.push(
            Diagnostic::new(
                Code::LimitExceeded,
                format!(
                    "the rule set's windows keep up to {total} instants per contact, more than the limit of {}",
                    limits.max_window_total
                ),
            )
            .with_path("")
            .with_help(
                "lower repeat and counter `max` values, use fewer timeframe groups, or raise `Limits::max_window_total`",
            ),
        );
    }
    false
}

fn compile_counters(
    docs: &[crate::def::CounterDoc],
    conditions: &ConditionCompiler<'_>,
    diagnostics: &mut Vec<Diagnostic>,
) -> Counters {
    let mut defs = Vec::with_capacity(docs.len());
    let mut ids = UniqueIds::new("counter id");
    for (i, doc) in docs.iter().enumerate() {
        let path = format!("/counters/{i}");
        if !ids.first_use(&doc.id, format!("{path}/id"), diagnostics) {
            continue;
        }
        let Some(event_type) =
            conditions.schema.resolve_event_type(&doc.on, format!("{path}/on"), diagnostics)
        else {
            continue;
        };
        let Some(window) = crate::def::parse_period(&doc.window) else {
            diagnostics.push(
                Diagnostic::new(
                    Code::InvalidDocument,
                    format!("`{}` is not a positive span of time", doc.window),
                )
                .with_path(format!("{path}/window"))
                .with_help("write a span such as \"7d\" or \"36h\""),
            );
            continue;
        };
        let doc_condition =
            ConditionDoc { owner: "a counter", when: doc.when.as_ref(), filter: doc.filter.as_ref() };
        let Ok(condition) = conditions.compile(doc_condition, Reads::Counter(event_type), &path, diagnostics)
        else {
            continue;
        };
        let max = doc.max.unwrap_or(crate::counters::DEFAULT_MAX.min(conditions.limits.max_window_entries));
        defs.push(CounterDef::new(event_type, condition, window, max));
    }
    Counters::new(defs)
}

/// Compiles the computed fields of a rule's actions (`set_attribute`'s `expr`, a send's
/// `params`) over what the rule's condition may read; a value is type-checked against
/// its field. Empty when no action computes anything.
fn compile_computed(
    actions: &[ActionDef],
    conditions: &ConditionCompiler<'_>,
    event_type: Option<EventTypeIndex>,
    path: &str,
    diagnostics: &mut Vec<Diagnostic>,
) -> Vec<ComputedAction> {
    let reads = crate::condition::Reads::Rule(event_type);
    let mut out: Vec<ComputedAction> = Vec::new();
    for (j, action) in actions.iter().enumerate() {
        let apath = format!("{path}/actions/{j}");
        let mut computed = ComputedAction::default();
        match action {
            ActionDef::SetAttribute { field, expr: Some(text), value, .. } if value.is_null() => {
                let fields = conditions.schema.contact_fields();
                let epath = format!("{apath}/expr");
                if let (Ok(expr), Some(slot)) =
                    (conditions.compile_value(text, reads, &epath, diagnostics), fields.slot(field))
                {
                    let (want, got) = (fields.ty(slot), expr.result_type());
                    if want == got || matches!(got, Type::Dyn) || matches!(want, Type::Dyn) {
                        computed.value = Some(expr);
                    } else {
                        diagnostics.push(
                            Diagnostic::new(
                                Code::TypeMismatch,
                                format!("`{field}` is declared {want}; this expression is {got}"),
                            )
                            .with_path(epath)
                            .with_help("convert the value, as in `string(x)`, `double(x)` or `timestamp(x)`"),
                        );
                    }
                }
            }
            ActionDef::Send { params, .. } => {
                for (name, text) in params {
                    let ppath = format!("{apath}/params/{}", crate::diagnostic::pointer_escape(name));
                    if let Ok(expr) = conditions.compile_value(text, reads, &ppath, diagnostics) {
                        computed.params.push((name.clone(), expr));
                    }
                }
            }
            _ => {}
        }
        if !computed.is_empty() {
            out.resize_with(j, ComputedAction::default);
            out.push(computed);
        }
    }
    out
}

/// The key property of each keyed event type (`schema.keys`), by event type index.
fn compile_event_keys(
    keys: &std::collections::BTreeMap<String, String>,
    schema: &Schema,
    diagnostics: &mut Vec<Diagnostic>,
) -> Vec<Option<crate::schema::Slot>> {
    let mut out = vec![None; schema.event_types().count()];
    for (type_name, property) in keys {
        let path = format!("/schema/keys/{}", crate::diagnostic::pointer_escape(type_name));
        let Some(index) = schema.resolve_event_type(type_name, path.clone(), diagnostics) else {
            continue;
        };
        let Some(event_type) = schema.event_type(index) else { continue };
        let fields = event_type.properties();
        match fields.slot(property) {
            Some(slot) if matches!(fields.ty(slot), Type::String | Type::Int) => {
                if let Some(entry) = out.get_mut(index.0 as usize) {
                    *entry = Some(slot);
                }
            }
            Some(slot) => diagnostics.push(
                Diagnostic::new(
                    Code::TypeMismatch,
                    format!("`{property}` is declared {}; a key is a string or an int", fields.ty(slot)),
                )
                .with_path(path)
                .with_help("key the event type by a string or int property such as an order id"),
            ),
            None => diagnostics.push(
                Diagnostic::new(
                    Code::UnknownField,
                    format!("event type `{type_name}` has no property `{property}`"),
                )
                .with_path(path)
                .with_did_you_mean(fields.suggest(property))
                .with_help("name one of the event type's declared properties"),
            ),
        }
    }
    out
}

/// Every condition of the journeys (entry, exits, goal, branch cases, waits for).
fn journey_conditions(journeys: &crate::journey::Journeys) -> impl Iterator<Item = &Expression> {
    journeys.iter().flat_map(|j| {
        let steps = j.steps().iter().flat_map(|s| match s.kind() {
            crate::journey::StepKind::Branch { cases, .. } => cases.iter().map(|(c, _)| c).collect(),
            crate::journey::StepKind::WaitFor { condition, .. } => condition.iter().collect(),
            _ => Vec::new(),
        });
        j.condition()
            .into_iter()
            .chain(j.exits().iter().filter_map(|e| e.condition()))
            .chain(j.goal().and_then(|g| g.condition()))
            .chain(steps)
    })
}

/// Checks the journeys' action steps as rules' actions are checked, and that a journey
/// without an entry trigger is enrolled by some `enroll_journey` action (else it can
/// never be entered).
fn check_journey_actions<'d>(def: &'d RuleSetDef, schema: &Schema, diagnostics: &mut Vec<Diagnostic>) {
    let declared = crate::def::declared_channels(def.policy.as_ref());
    let mut enrolled: std::collections::BTreeSet<&str> = std::collections::BTreeSet::new();
    let mut note = |actions: &'d [ActionDef]| {
        for action in actions {
            if let ActionDef::EnrollJourney { journey, .. } = action {
                enrolled.insert(journey);
            }
        }
    };
    for rule in &def.rules {
        note(&rule.actions);
    }
    for (i, journey) in def.journeys.iter().enumerate() {
        for (k, step) in journey.steps.iter().enumerate() {
            if let crate::def::StepDef::Action { actions, .. } = step {
                note(actions);
                let path = format!("/journeys/{i}/steps/{k}");
                check_actions(actions, schema, &declared, &path, diagnostics);
                check_uncomputed(actions, &path, diagnostics);
            }
        }
    }
    for (i, journey) in def.journeys.iter().enumerate() {
        if journey.on.is_none() && !journey.retired && !enrolled.contains(journey.id.as_str()) {
            diagnostics.push(
                Diagnostic::new(
                    Code::InvalidDocument,
                    format!(
                        "journey `{}` can never be entered: it has no `on` and no action enrols in it",
                        journey.id
                    ),
                )
                .with_path(format!("/journeys/{i}"))
                .with_help("add `on` with a trigger, or an `enroll_journey` action naming it to a rule"),
            );
        }
    }
}

/// Computed values (`set_attribute`'s `expr`, a send's `params`) are compiled for rule
/// actions only: in a journey step they are refused rather than silently left out.
fn check_uncomputed(actions: &[ActionDef], path: &str, diagnostics: &mut Vec<Diagnostic>) {
    for (j, action) in actions.iter().enumerate() {
        let (key, computed) = match action {
            ActionDef::SetAttribute { expr: Some(_), .. } => ("expr", true),
            ActionDef::Send { params, .. } => ("params", !params.is_empty()),
            _ => ("", false),
        };
        if computed {
            diagnostics.push(
                Diagnostic::new(
                    Code::InvalidDocument,
                    format!("`{key}` is not supported in a journey step's action yet"),
                )
                .with_path(format!("{path}/actions/{j}/{key}"))
                .with_help("compute it in a rule (an `enroll_journey` rule can set an attribute the step reads), or give a constant `value`"),
            );
        }
    }
}

fn check_actions(
    actions: &[ActionDef],
    schema: &Schema,
    declared: &[crate::def::Channel],
    path: &str,
    diagnostics: &mut Vec<Diagnostic>,
) {
    for (j, action) in actions.iter().enumerate() {
        let apath = format!("{path}/actions/{j}");
        if let Some(channel) = action.channel() {
            crate::def::check_declared(channel, declared, format!("{apath}/channel"), diagnostics);
        }
        match action {
            ActionDef::SetAttribute { field, value, expr, .. } => {
                let fields = schema.contact_fields();
                if value.is_null() == expr.is_none() {
                    diagnostics.push(
                        Diagnostic::new(
                            Code::InvalidDocument,
                            "a `set_attribute` action takes exactly one of `value` and `expr`",
                        )
                        .with_path(apath.clone())
                        .with_help(
                            "write a constant as `value`, or a CEL expression such as \"now\" as `expr`",
                        ),
                    );
                    continue;
                }
                match fields.slot(field) {
                    None => diagnostics.push(
                        Diagnostic::new(Code::UnknownField, format!("no contact field `{field}`"))
                            .with_path(format!("{apath}/field"))
                            .with_did_you_mean(fields.suggest(field)),
                    ),
                    // A computed value is type-checked where it is compiled.
                    Some(_) if expr.is_some() => {}
                    Some(slot) => {
                        let ty = fields.ty(slot);
                        if let Some(v) = crate::document::json_to_value(value, ty) {
                            if !v.has_type(ty) {
                                diagnostics.push(type_mismatch(&apath, field, ty));
                            }
                        } else {
                            diagnostics.push(type_mismatch(&apath, field, ty));
                        }
                    }
                }
            }
            ActionDef::ClearAttribute { field, .. } => {
                let fields = schema.contact_fields();
                if fields.slot(field).is_none() {
                    diagnostics.push(
                        Diagnostic::new(Code::UnknownField, format!("no contact field `{field}`"))
                            .with_path(format!("{apath}/field"))
                            .with_did_you_mean(fields.suggest(field)),
                    );
                }
            }
            ActionDef::Send { purpose, campaign, .. } => {
                crate::policy::check_purpose(purpose.as_deref(), format!("{apath}/purpose"), diagnostics);
                if campaign.as_deref().is_some_and(str::is_empty) {
                    diagnostics.push(
                        Diagnostic::new(Code::InvalidDocument, "a campaign is empty")
                            .with_path(format!("{apath}/campaign"))
                            .with_help("name the campaign or journey, or leave `campaign` out"),
                    );
                }
            }
            ActionDef::SetConsent { purpose, .. } => {
                crate::policy::check_purpose(purpose.as_deref(), format!("{apath}/purpose"), diagnostics);
            }
            ActionDef::AdjustScore { points, .. }
                if !(points.is_finite() && points.abs() <= crate::scoring::compile::MAX_POINTS) =>
            {
                diagnostics.push(
                    Diagnostic::new(
                        Code::InvalidDocument,
                        format!("points must be a finite number within ±1e12, not {points}"),
                    )
                    .with_path(format!("{apath}/points"))
                    .with_help("give a finite number between -1e12 and 1e12"),
                )
            }
            _ => {}
        }
    }
}

/// `adjust_score` actions naming a group: the group must be one of the score's.
fn check_score_groups(
    actions: &[ActionDef],
    scorer: Option<&crate::scoring::Scorer>,
    path: &str,
    diagnostics: &mut Vec<Diagnostic>,
) {
    for (j, action) in actions.iter().enumerate() {
        let ActionDef::AdjustScore { score, group: Some(group), .. } = action else {
            continue;
        };
        // An unknown score is reported when the action runs (`docs/engine.md`).
        let Some((scorer, model)) = scorer.and_then(|s| Some((s, s.model_index(score)?))) else {
            continue;
        };
        if scorer.group_index(model, group).is_none() {
            let groups: Vec<&str> = scorer.models()[model].groups.iter().map(|g| g.name()).collect();
            diagnostics.push(
                Diagnostic::new(Code::InvalidDocument, format!("score `{score}` has no group `{group}`"))
                    .with_path(format!("{path}/actions/{j}/group"))
                    .with_did_you_mean(crate::diagnostic::did_you_mean(group, groups.iter().copied()))
                    .with_help(format!("name one of its groups: {}", groups.join(", "))),
            );
        }
    }
}

fn type_mismatch(apath: &str, field: &str, ty: &Type) -> Diagnostic {
    Diagnostic::new(Code::TypeMismatch, format!("`{field}` is declared {ty}; this value does not fit"))
        .with_path(format!("{apath}/value"))
}

impl Value {
    /// Converts a JSON value, shaped by a declared type (timestamps and durations are
    /// strings in JSON). `None` when it does not fit.
    pub fn from_json(value: &serde_json::Value, ty: &Type) -> Option<Value> {
        crate::document::json_to_value(value, ty)
    }
}
