//! Dynamic segments: conditions over a contact's attributes, scores, counters and other
//! segments, compiled and put in dependency order (cycles are compile errors).

use crate::condition::{ConditionCompiler, ConditionDoc, Reads};
use crate::def::SegmentDef;
use crate::diagnostic::{Code, Diagnostic, UniqueIds};
use crate::expr::Expression;
use crate::scoring::Scorer;
use crate::value::Value;

/// One compiled segment.
#[derive(Clone, Debug)]
pub struct Segment {
    id: String,
    condition: Option<Expression>,
    /// Score levels the condition compares with: (model position, level). Decay can
    /// move a score through them without an event, so they are watched for wake-ups.
    levels: Vec<(usize, f64)>,
    /// The condition's comparisons with `now` (`now - contact.x > duration('14d')`):
    /// each changes value at an instant computed from the contact, a wake-up source.
    timing: crate::expr::timing::TimeDeps,
}

impl Segment {
    /// The segment's id.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// Its condition (`None`: every contact).
    pub fn condition(&self) -> Option<&Expression> {
        self.condition.as_ref()
    }
}

/// Every segment of a program, with an evaluation order in which each segment comes
/// after the segments it reads.
#[derive(Clone, Debug, Default)]
pub struct Segments {
    segments: Vec<Segment>,
    order: Vec<usize>,
    /// The counters (slots) some segment reads: only their windows can change a
    /// membership as time passes.
    counters: Vec<crate::schema::Slot>,
}

impl Segments {
    /// The segments, in declaration order (the schema's segment order).
    pub fn iter(&self) -> impl Iterator<Item = &Segment> {
        self.segments.iter()
    }

    /// How many.
    pub fn len(&self) -> usize {
        self.segments.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.segments.is_empty()
    }

    /// The counters (slots) some segment reads.
    pub(crate) fn counters(&self) -> &[crate::schema::Slot] {
        &self.counters
    }

    /// Every (model, level) some segment compares a score with.
    pub(crate) fn levels(&self) -> impl Iterator<Item = (usize, f64)> + '_ {
        self.segments.iter().flat_map(|s| s.levels.iter().copied())
    }

    /// The first instant after `now` at which a segment's comparison with `now` changes
    /// value for `contact` (see `expr::timing`): a membership can change then without an
    /// event. Conservative but exact: a wake-up at that instant may find no change (the
    /// comparison was masked), and then computes the next one.
    pub(crate) fn next_time_change(
        &self,
        contact: &crate::schema::Contact,
        now: crate::time::Timestamp,
    ) -> Option<crate::time::Timestamp> {
        let activation = crate::expr::Activation::new().with_contact(contact).with_now(now);
        self.segments
            .iter()
            .filter(|s| !s.timing.is_empty())
            .filter_map(|s| s.condition.as_ref()?.next_time_change(&s.timing, &activation, now))
            .min()
    }

    /// Whether some segment compares `now` with something.
    pub(crate) fn reads_time(&self) -> bool {
        self.segments.iter().any(|s| !s.timing.is_empty())
    }

    /// Segments whose condition uses `now` in a way the time analysis does not follow
    /// (their membership changes with time only at the next step), by position.
    pub(crate) fn untimed(&self) -> impl Iterator<Item = usize> + '_ {
        self.segments.iter().enumerate().filter(|(_, s)| !s.timing.is_complete()).map(|(i, _)| i)
    }

    /// Evaluates every segment for one contact, dependencies first, into `members`
    /// (`Some(Bool)` per segment, in declaration order). `holds` evaluates a condition
    /// with `segment.NAME` bound to the memberships so far; a condition that fails to
    /// evaluate counts as not holding, and its error goes to `errors` with the
    /// segment's position.
    pub(crate) fn evaluate(
        &self,
        mut holds: impl FnMut(&Expression, &[Option<Value>]) -> Result<bool, crate::expr::EvalError>,
        members: &mut Vec<Option<Value>>,
        errors: &mut Vec<(usize, crate::expr::EvalError)>,
    ) {
        members.clear();
        members.resize(self.segments.len(), Some(Value::Bool(false)));
        errors.clear();
        for &i in &self.order {
            let member = match self.segments[i].condition.as_ref() {
                None => true,
                Some(c) => holds(c, members).unwrap_or_else(|e| {
                    errors.push((i, e));
                    false
                }),
            };
            members[i] = Some(Value::Bool(member));
        }
    }
}

/// Compiles the document's segments; problems go to `diagnostics`.
pub(crate) fn compile_segments(
    defs: &[SegmentDef],
    conditions: &ConditionCompiler<'_>,
    scorer: Option<&Scorer>,
    diagnostics: &mut Vec<Diagnostic>,
) -> Segments {
    let score_model = |slot: usize| {
        let name = conditions.names.scores().iter().nth(slot)?.0;
        scorer?.models().iter().position(|m| m.id().as_str() == name)
    };
    let mut segments = Vec::with_capacity(defs.len());
    let mut reads = Vec::with_capacity(defs.len());
    let mut ids = UniqueIds::new("segment id");
    for (i, def) in defs.iter().enumerate() {
        let path = format!("/segments/{i}");
        if !crate::schema::is_name(&def.id) {
            diagnostics.push(
                Diagnostic::new(Code::InvalidDocument, format!("`{}` is not a valid segment id", def.id))
                    .with_path(format!("{path}/id"))
                    .with_help("conditions read segments as `segment.ID`: start with a letter or `_`, then letters, digits and `_`"),
            );
        }
        ids.first_use(&def.id, format!("{path}/id"), diagnostics);
        let doc = ConditionDoc { owner: "a segment", when: def.when.as_ref(), filter: def.filter.as_ref() };
        let condition = conditions.compile(doc, Reads::Rule(None), &path, diagnostics).ok().flatten();
        let levels = condition
            .as_ref()
            .map(|c| {
                c.score_levels()
                    .into_iter()
                    .filter_map(|(slot, level)| Some((score_model(slot as usize)?, level)))
                    .collect()
            })
            .unwrap_or_default();
        reads.push(condition.as_ref().map(|c| c.segment_reads()).unwrap_or_default());
        let timing = condition.as_ref().map(Expression::time_deps).unwrap_or_default();
        segments.push(Segment { id: def.id.clone(), condition, levels, timing });
    }
    let order = dependency_order(&reads, defs, diagnostics);
    let mut counters: Vec<crate::schema::Slot> =
        segments.iter().filter_map(|s| s.condition.as_ref()).flat_map(Expression::counter_reads).collect();
    counters.sort_unstable();
    counters.dedup();
    Segments { segments, order, counters }
}

/// Positions in an order where each segment follows those it reads. Each set of
/// segments that read each other in a cycle is one diagnostic, naming one cycle through
/// it and how many segments it holds: linear in segments and reads, whatever the shape.
fn dependency_order(
    reads: &[Vec<crate::schema::Slot>],
    defs: &[SegmentDef],
    diagnostics: &mut Vec<Diagnostic>,
) -> Vec<usize> {
    let edges = |n: usize| reads[n].iter().map(|&s| s as usize).filter(|&s| s < reads.len()).collect();
    let components = crate::graph::components(reads.len(), edges);
    let mut order = Vec::with_capacity(reads.len());
    for component in components {
        if crate::graph::is_cycle(&component, edges) {
            let path = crate::graph::cycle_through_first(&component, edges);
            let names: Vec<&str> = path.iter().map(|&n| defs[n].id.as_str()).collect();
            let others = component.len().saturating_sub(path.len().saturating_sub(1));
            let more = if others > 0 {
                format!(" ({others} more segments take part in the same cycle)")
            } else {
                String::new()
            };
            let first = path.first().copied().unwrap_or(0);
            diagnostics.push(
                Diagnostic::new(
                    Code::InvalidDocument,
                    format!(
                        "segments depend on each other in a cycle: {}{more}",
                        crate::graph::describe_path(&names)
                    ),
                )
                .with_path(format!("/segments/{first}"))
                .with_help("a segment may read only segments that do not read it back"),
            );
        }
        order.extend(component);
    }
    order
}
