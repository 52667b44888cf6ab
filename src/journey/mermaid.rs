//! Drawing a journey as a Mermaid flowchart.

use std::fmt::Write;

use super::*;

impl Journey {
    /// The journey as a Mermaid flowchart (`flowchart TD`): one node per step, shaped
    /// by kind (actions as boxes, waits as rounded boxes, branches and splits as
    /// diamonds, exits as circles), labelled with the step's id and what it does, and
    /// edges labelled with the branch case, arm or outcome. Steps that end the journey
    /// point at a `done` node.
    ///
    /// ```
    /// use nurture::Program;
    /// let program = Program::from_json(r#"{"version": 1,
    ///   "schema": {"events": {"signup": {}}},
    ///   "journeys": [{"id": "welcome", "on": "signup", "steps": [
    ///     {"id": "hello", "type": "action", "next": "pause",
    ///      "actions": [{"type": "send", "channel": "email", "template": "hello"}]},
    ///     {"id": "pause", "type": "wait", "for": "2d"}]}]}"#)?;
    /// let chart = program.journeys().current("welcome").unwrap().to_mermaid();
    /// assert!(chart.starts_with("flowchart TD"));
    /// assert!(chart.contains("s0_hello --> s1_pause"));
    /// # Ok::<(), nurture::CompileError>(())
    /// ```
    pub fn to_mermaid(&self) -> String {
        let mut out = String::from("flowchart TD\n");
        let node = |i: usize| sanitize(i, &self.steps[i].id);
        let _ = writeln!(out, "    entry([\"{} v{}: entry\"])", escape(&self.id), self.version);
        let _ = writeln!(out, "    entry --> {}", node(self.start));
        let mut ends = false;
        for (i, step) in self.steps.iter().enumerate() {
            let id = node(i);
            let label = format!("{}<br/>{}", escape(&step.id), escape(&describe(step)));
            let shape = match step.kind {
                StepKind::Action { .. } => format!("{id}[\"{label}\"]"),
                StepKind::Wait { .. } | StepKind::WaitFor { .. } => format!("{id}(\"{label}\")"),
                StepKind::Branch { .. } | StepKind::Split { .. } => format!("{id}{{\"{label}\"}}"),
                StepKind::Goto(_) => format!("{id}>\"{label}\"]"),
                StepKind::Exit => format!("{id}((\"{label}\"))"),
            };
            let _ = writeln!(out, "    {shape}");
            let mut edge = |to: Option<usize>, label: Option<String>, out: &mut String| {
                let target = match to {
                    Some(t) => node(t),
                    None => {
                        ends = true;
                        "done".to_string()
                    }
                };
                match label {
                    Some(l) => {
                        let _ = writeln!(out, "    {id} -->|\"{}\"| {target}", escape(&l));
                    }
                    None => {
                        let _ = writeln!(out, "    {id} --> {target}");
                    }
                }
            };
            match &step.kind {
                StepKind::Action { next, .. } | StepKind::Wait { next, .. } => edge(*next, None, &mut out),
                StepKind::WaitFor { next, on_timeout, .. } => {
                    edge(*next, Some("matched".into()), &mut out);
                    edge(*on_timeout, Some("timeout".into()), &mut out);
                }
                StepKind::Branch { cases, otherwise } => {
                    for (condition, next) in cases {
                        edge(*next, Some(condition.source().to_string()), &mut out);
                    }
                    edge(*otherwise, Some("else".into()), &mut out);
                }
                StepKind::Split { arms, .. } => {
                    for arm in arms {
                        edge(arm.next, Some(format!("{} ({})", arm.id, arm.weight)), &mut out);
                    }
                }
                StepKind::Goto(to) => edge(Some(*to), None, &mut out),
                StepKind::Exit => {}
            }
        }
        if ends {
            out.push_str("    done((\"completed\"))\n");
        }
        out
    }
}

/// What a step does, in a few words.
fn describe(step: &Step) -> String {
    match &step.kind {
        StepKind::Action { actions, .. } => {
            let parts: Vec<String> = actions.iter().map(action_words).collect();
            parts.join(", ")
        }
        StepKind::Wait { wait, .. } => match wait {
            Wait::For(d) => format!("wait {}", span(*d)),
            Wait::Until { at, days, .. } => {
                const NAMES: [&str; 7] = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"];
                let names: Vec<&str> = (0..7).filter(|d| days & (1 << d) != 0).map(|d| NAMES[d]).collect();
                let days = if names.len() == 7 { "any day".to_string() } else { names.join("/") };
                format!("wait until {} local, {days}", at.format("%H:%M"))
            }
            Wait::Date { offset, .. } if offset.is_negative() => {
                format!("wait until date - {}", span(offset.checked_neg().unwrap_or(*offset)))
            }
            Wait::Date { offset, .. } => format!("wait until date + {}", span(*offset)),
        },
        StepKind::WaitFor { timeout, condition, event, .. } => {
            let what = match (event, condition) {
                (Some(_), Some(c)) => format!("an event where {}", c.source()),
                (Some(_), None) => "an event".to_string(),
                (None, Some(c)) => c.source().to_string(),
                (None, None) => "?".to_string(),
            };
            format!("wait for {what}, at most {}", span(*timeout))
        }
        StepKind::Branch { .. } => "branch".to_string(),
        StepKind::Split { holdout, .. } => match holdout {
            Some((w, d)) => format!("split, holdout {w} for {}", span(*d)),
            None => "split".to_string(),
        },
        StepKind::Goto(_) => "goto".to_string(),
        StepKind::Exit => "exit".to_string(),
    }
}

fn action_words(action: &crate::def::ActionDef) -> String {
    use crate::def::ActionDef as A;
    match action {
        A::Send { template, .. } => format!("send {template}"),
        A::SetAttribute { field, .. } => format!("set {field}"),
        A::ClearAttribute { field, .. } => format!("clear {field}"),
        A::AddTag { tag, .. } => format!("tag {tag}"),
        A::RemoveTag { tag, .. } => format!("untag {tag}"),
        A::AddToList { list, .. } => format!("add to {list}"),
        A::RemoveFromList { list, .. } => format!("remove from {list}"),
        A::SetLifecycleStage { stage, .. } => format!("stage {stage}"),
        A::AdjustScore { score, points, .. } => format!("{score} {points:+}"),
        A::NotifyOwner { .. } => "notify owner".to_string(),
        A::AssignOwner { owner, .. } => format!("assign {owner}"),
        A::CrmWrite { field, .. } => format!("CRM {field}"),
        A::EnrollJourney { journey, .. } => format!("enrol in {journey}"),
        A::RemoveFromJourney { journey, .. } => format!("remove from {journey}"),
        A::SetConsent { channel, status, .. } => format!("{} consent {}", channel.name(), status.name()),
        A::DoNotContact { channel, reason, .. } => {
            format!(
                "do not contact {} ({})",
                channel.as_ref().map_or("any channel", |c| c.name()),
                reason.name()
            )
        }
        A::ClearDoNotContact { channel, .. } => {
            format!("clear do-not-contact {}", channel.as_ref().map_or("any channel", |c| c.name()))
        }
    }
}

/// A Mermaid node id: the step's position (unique), then its id in letters, digits and
/// `_`.
fn sanitize(index: usize, id: &str) -> String {
    let clean: String = id.chars().map(|c| if c.is_ascii_alphanumeric() { c } else { '_' }).collect();
    format!("s{index}_{clean}")
}

/// Text inside a quoted Mermaid label.
fn escape(text: &str) -> String {
    text.replace('&', "#amp;").replace('"', "#quot;").replace('<', "#lt;").replace('>', "#gt;")
}

/// A span in the largest whole unit: `5d`, `36h`, `90m`, `45s`.
fn span(d: Duration) -> String {
    let secs = d.as_nanos() / 1_000_000_000;
    for (unit, size) in [("d", 86_400), ("h", 3_600), ("m", 60)] {
        if secs != 0 && secs % size == 0 {
            return format!("{}{unit}", secs / size);
        }
    }
    format!("{secs}s")
}
