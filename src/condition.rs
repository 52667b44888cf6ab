//! Conditions: a `when` expression or a structured `filter`, compiled against the names a
//! condition may read.
//!
//! The schema declares only contact fields and event types. What a rule set adds on top
//! (scores, windowed counters, segments, and the engine's `tags`, `bands` and `stage`)
//! is a [`ConditionNames`]; each kind of condition sees the part of it that is known when
//! the condition runs. Every condition of a rule set is compiled in one place, which
//! the rule, counter, point-rule and segment compilers share.

use std::sync::Arc;

use crate::def::FilterDef;
use crate::diagnostic::{Code, CompileError, Diagnostic};
use crate::expr::check::{Names, RegexCache};
use crate::expr::{compile_with, Expression};
use crate::id::EventTypeIndex;
use crate::limits::Limits;
use crate::schema::{is_name, FieldSet, Schema};
use crate::value::Type;

/// The names a rule set declares beyond its schema, which conditions read as
/// `score.NAME`, `counter.NAME` and `segment.NAME`, plus the engine's `tags`, `bands`
/// and `stage`.
///
/// ```
/// use nurture::condition::ConditionNames;
/// use nurture::{Schema, Type};
///
/// let schema = Schema::builder()
///     .contact_field("job_title", Type::String)
///     .event_type("page_visit", [("url", Type::String)])
///     .build()?;
/// let names = ConditionNames::builder().score("engagement").build()?;
/// let visit = names.compile(&schema, Some("page_visit"), "event.url.startsWith('/docs')")?;
/// let hot = names.compile(&schema, None, "score.engagement >= 50.0")?;
/// # let _ = (visit, hot);
/// # Ok::<(), nurture::CompileError>(())
/// ```
#[derive(Clone, Debug)]
pub struct ConditionNames {
    scores: FieldSet,
    counters: FieldSet,
    segments: FieldSet,
    engine: FieldSet,
    /// The engine's names plus `journey`, the enrolment a journey condition runs for.
    journey: FieldSet,
}

impl Default for ConditionNames {
    fn default() -> ConditionNames {
        let mut engine = FieldSet::default();
        // Engine rules and segments read the contact's tags, its score bands, stage,
        // lists and owner.
        let _ = engine.add("tags", Type::list(Type::String));
        let _ = engine.add("bands", Type::Map(Box::new(Type::String), Box::new(Type::String)));
        let _ = engine.add("stage", Type::String);
        // The static lists the contact is on, and its owner (`""` before one is assigned).
        let _ = engine.add("lists", Type::list(Type::String));
        let _ = engine.add("owner", Type::String);
        let mut journey = engine.clone();
        let _ = journey.add("journey", Type::Map(Box::new(Type::String), Box::new(Type::Dyn)));
        ConditionNames {
            scores: FieldSet::default(),
            counters: FieldSet::default(),
            segments: FieldSet::default(),
            engine,
            journey,
        }
    }
}

/// Declares [`ConditionNames`] (`C-BUILDER`).
#[derive(Clone, Debug, Default)]
#[must_use]
pub struct ConditionNamesBuilder {
    scores: Vec<String>,
    counters: Vec<String>,
    segments: Vec<String>,
}

impl ConditionNamesBuilder {
    /// Declares a score that conditions read as `score.NAME` (a double).
    pub fn score(mut self, name: impl Into<String>) -> ConditionNamesBuilder {
        self.scores.push(name.into());
        self
    }

    /// Declares a windowed event counter that conditions read as `counter.NAME` (an int);
    /// what it counts is defined with [`crate::counters::Counters`].
    pub fn counter(mut self, name: impl Into<String>) -> ConditionNamesBuilder {
        self.counters.push(name.into());
        self
    }

    /// Declares a segment that conditions read as `segment.NAME` (whether the contact is
    /// a member).
    pub fn segment(mut self, name: impl Into<String>) -> ConditionNamesBuilder {
        self.segments.push(name.into());
        self
    }

    /// Checks the names and builds the set.
    ///
    /// # Errors
    ///
    /// Every invalid or duplicate name, at once.
    pub fn build(self) -> Result<ConditionNames, CompileError> {
        let mut names = ConditionNames::default();
        let mut diagnostics = Vec::new();
        let kinds: [(&[String], &mut FieldSet, Type, &str); 3] = [
            (&self.scores, &mut names.scores, Type::Double, "/schema/scores"),
            (&self.counters, &mut names.counters, Type::Int, "/counters"),
            (&self.segments, &mut names.segments, Type::Bool, "/segments"),
        ];
        for (declared, set, ty, path) in kinds {
            for name in declared {
                if !is_name(name) {
                    diagnostics.push(crate::schema::invalid_name(name, path));
                } else if let Err(message) = set.add(name, ty.clone()) {
                    diagnostics.push(
                        Diagnostic::new(Code::DuplicateId, message)
                            .with_path(path.to_string())
                            .with_help("remove or rename one of the declarations"),
                    );
                }
            }
        }
        if diagnostics.is_empty() {
            Ok(names)
        } else {
            Err(CompileError::new(diagnostics))
        }
    }
}

impl ConditionNames {
    /// Starts declaring names.
    pub fn builder() -> ConditionNamesBuilder {
        ConditionNamesBuilder::default()
    }

    /// The names a document declares: its `schema.scores`, its counters and its
    /// segments. Duplicate and invalid ids are reported where those sections are
    /// compiled; the first declaration of a name wins here.
    pub(crate) fn of_document(def: &crate::def::RuleSetDef) -> ConditionNames {
        let mut names = ConditionNames::default();
        for score in &def.schema.scores {
            if is_name(score) {
                let _ = names.scores.add(score, Type::Double);
            }
        }
        for counter in &def.counters {
            if is_name(&counter.id) {
                let _ = names.counters.add(&counter.id, Type::Int);
            }
        }
        for segment in &def.segments {
            if is_name(&segment.id) {
                let _ = names.segments.add(&segment.id, Type::Bool);
            }
        }
        names
    }

    /// The scores conditions read as `score.NAME`, in declaration order.
    pub fn scores(&self) -> &FieldSet {
        &self.scores
    }

    /// The counters conditions read as `counter.NAME`, in declaration order.
    pub fn counters(&self) -> &FieldSet {
        &self.counters
    }

    /// The segments conditions read as `segment.NAME`, in declaration order.
    pub fn segments(&self) -> &FieldSet {
        &self.segments
    }

    /// Compiles a condition against `schema` and these names: over `contact`, `score`,
    /// `counter`, `segment` and `now`, and over `event` when an event type is given.
    ///
    /// # Errors
    ///
    /// An unknown event type, a condition that is not a bool, or every problem in the
    /// expression.
    pub fn compile(
        &self,
        schema: &Schema,
        event_type: Option<&str>,
        source: &str,
    ) -> Result<Expression, CompileError> {
        let event = match event_type {
            Some(name) => match schema.event_type_index(name) {
                Some(index) => Some(index),
                None => {
                    let mut diagnostics = Vec::new();
                    schema.resolve_event_type(name, String::new(), &mut diagnostics);
                    return Err(CompileError::new(diagnostics));
                }
            },
            None => None,
        };
        let names = Names { vars: None, ..self.names(schema, Reads::Rule(event), None) };
        let expr = compile_with(source, names, &Limits::default(), "")?;
        if !matches!(expr.result_type(), Type::Bool | Type::Dyn) {
            return Err(CompileError::new(vec![not_a_bool(&expr, "")]));
        }
        Ok(expr)
    }

    /// The names one kind of condition may read.
    fn names<'a>(&'a self, schema: &'a Schema, reads: Reads, regexes: Option<&'a RegexCache>) -> Names<'a> {
        let event_fields =
            |t: Option<EventTypeIndex>| t.and_then(|t| schema.event_type(t)).map(|e| e.properties());
        let all = Names {
            contact: Some(schema.contact_fields()),
            event: None,
            scores: Some(&self.scores),
            counters: Some(&self.counters),
            segments: Some(&self.segments),
            vars: Some(&self.engine),
            now: true,
            regexes,
        };
        match reads {
            Reads::Rule(event_type) => Names { event: event_fields(event_type), ..all },
            // A journey's steps, exits and goal also read their enrolment.
            Reads::Journey(event_type) => {
                Names { event: event_fields(event_type), vars: Some(&self.journey), ..all }
            }
            // Counted while events arrive: scores and other counters are not known yet.
            Reads::Counter(event_type) => Names {
                event: event_fields(Some(event_type)),
                scores: None,
                counters: None,
                segments: None,
                vars: None,
                ..all
            },
            // Segments depend on scores, so point rules cannot read them.
            Reads::PointRule(event_type) => {
                Names { event: event_fields(Some(event_type)), segments: None, vars: None, ..all }
            }
            // Fit rules read the contact only (scores and counters change with events).
            Reads::Fit => {
                Names { contact: Some(schema.contact_fields()), now: true, regexes, ..Names::default() }
            }
        }
    }
}

/// Which kind of condition is compiled, and so which names it may read.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Reads {
    /// An engine rule or a segment: everything, and the event when there is one.
    Rule(Option<EventTypeIndex>),
    /// A journey's branch, wait-for, exit or goal condition: as a rule's, plus
    /// `journey` (the enrolment: `id`, `version`, `instance`, `step`, `arm`, `entered`,
    /// `reached`).
    Journey(Option<EventTypeIndex>),
    /// A windowed counter's condition: the contact and the counted event.
    Counter(EventTypeIndex),
    /// An engagement point rule: the contact, the event, scores and counters.
    PointRule(EventTypeIndex),
    /// A fit rule: the contact.
    Fit,
}

/// A condition as a definition writes it: a CEL `when`, or a structured `filter`.
#[derive(Clone, Copy, Debug)]
pub(crate) struct ConditionDoc<'d> {
    /// What holds the condition, for messages ("a rule", "a segment").
    pub(crate) owner: &'d str,
    pub(crate) when: Option<&'d String>,
    pub(crate) filter: Option<&'d FilterDef>,
}

/// Compiles every condition of one rule set: the schema, the declared names, the limits
/// and the shared regular-expression cache, bound once.
pub(crate) struct ConditionCompiler<'a> {
    pub(crate) schema: &'a Schema,
    pub(crate) names: &'a ConditionNames,
    pub(crate) limits: &'a Limits,
    pub(crate) regexes: &'a RegexCache,
}

impl ConditionCompiler<'_> {
    /// Compiles a `when` expression or a structured `filter` (at most one may be given)
    /// into a boolean condition, recording problems with their paths under `path`.
    /// `Ok(None)` when neither is given; `Err(())` when something was wrong (already
    /// recorded).
    pub(crate) fn compile(
        &self,
        doc: ConditionDoc<'_>,
        reads: Reads,
        path: &str,
        diagnostics: &mut Vec<Diagnostic>,
    ) -> Result<Option<Expression>, ()> {
        let names = self.names.names(self.schema, reads, Some(self.regexes));
        let (text, cpath) = match (doc.when, doc.filter) {
            (Some(_), Some(_)) => {
                diagnostics.push(
                    Diagnostic::new(
                        Code::InvalidDocument,
                        format!("{} has both `when` and `filter`", doc.owner),
                    )
                    .with_path(format!("{path}/filter"))
                    .with_help("combine them into one `when` expression, or use only the filter"),
                );
                return Err(());
            }
            (Some(when), None) => (when.clone(), format!("{path}/when")),
            (None, Some(f)) => {
                let fpath = format!("{path}/filter");
                match crate::filter::to_cel(f, &names, self.limits, &fpath, diagnostics) {
                    Some(cel) => (cel, fpath),
                    None => return Err(()),
                }
            }
            (None, None) => return Ok(None),
        };
        self.compile_text(&text, reads, &cpath, diagnostics).map(Some)
    }

    /// Compiles CEL text at `path` (a fit rule's `fit`, a filter's translation).
    pub(crate) fn compile_text(
        &self,
        text: &str,
        reads: Reads,
        path: &str,
        diagnostics: &mut Vec<Diagnostic>,
    ) -> Result<Expression, ()> {
        let names = self.names.names(self.schema, reads, Some(self.regexes));
        match compile_with(text, names, self.limits, path) {
            Ok(expr) if matches!(expr.result_type(), Type::Bool | Type::Dyn) => Ok(expr),
            Ok(expr) => {
                diagnostics.push(
                    not_a_bool(&expr, path)
                        .with_source(Arc::from(text))
                        .with_span(crate::diagnostic::Span::new(0, text.len())),
                );
                Err(())
            }
            Err(e) => {
                diagnostics.extend(e.diagnostics);
                Err(())
            }
        }
    }
}

impl ConditionCompiler<'_> {
    /// Compiles CEL text at `path` whose value is used as it is (an action's computed
    /// field), of any type.
    pub(crate) fn compile_value(
        &self,
        text: &str,
        reads: Reads,
        path: &str,
        diagnostics: &mut Vec<Diagnostic>,
    ) -> Result<Expression, ()> {
        let names = self.names.names(self.schema, reads, Some(self.regexes));
        compile_with(text, names, self.limits, path).map_err(|e| diagnostics.extend(e.diagnostics))
    }
}

fn not_a_bool(expr: &Expression, path: &str) -> Diagnostic {
    Diagnostic::new(
        Code::TypeMismatch,
        format!("a condition must be a bool, this one is {}", expr.result_type()),
    )
    .with_path(path.to_string())
    .with_help("compare the value with something, as in `x == 1`")
}
