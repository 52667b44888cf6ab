//! Actions: what a rule that fires does to the state, and the effects it emits.

use super::step::*;
use super::*;
use crate::def::ActionDef;
use crate::value::Value;

impl Engine {
    /// Applies what an action changes inside the engine; queues the changes that can
    /// start rules. `Err` (with why) for an action that cannot apply.
    pub(super) fn apply(
        &self,
        state: &mut ContactState,
        action: &ActionDef,
        step: &mut Step<'_>,
    ) -> Result<(), String> {
        match action {
            // Each real change is queued for tag, list, stage and owner triggers.
            ActionDef::AddTag { tag, .. } => {
                let added = state.tags.insert(tag.clone());
                step.changes.extend(added.then(|| Change::Tag { tag: tag.clone(), added: true }));
            }
            ActionDef::RemoveTag { tag, .. } => {
                let removed = state.tags.remove(tag);
                step.changes.extend(removed.then(|| Change::Tag { tag: tag.clone(), added: false }));
            }
            ActionDef::AddToList { list, .. } => {
                let added = state.lists.insert(list.clone());
                step.changes.extend(added.then(|| Change::List { list: list.clone(), added: true }));
            }
            ActionDef::RemoveFromList { list, .. } => {
                let removed = state.lists.remove(list);
                step.changes.extend(removed.then(|| Change::List { list: list.clone(), added: false }));
            }
            ActionDef::SetLifecycleStage { stage, .. } => {
                if !self.lifecycle.iter().any(|s| s == stage) {
                    return Err(format!(
                        "`{stage}` is not a lifecycle stage ({})",
                        self.lifecycle.join(", ")
                    ));
                }
                let from = state.stage.replace(stage.clone());
                if from.as_ref() != Some(stage) {
                    step.changes.push(Change::Stage { from, to: Some(stage.clone()) });
                }
            }
            ActionDef::AssignOwner { owner, .. } => {
                let from = state.owner.replace(owner.clone());
                if from.as_ref() != Some(owner) {
                    step.changes.push(Change::Owner { from, to: Some(owner.clone()) });
                }
            }
            ActionDef::SetConsent { .. }
            | ActionDef::DoNotContact { .. }
            | ActionDef::ClearDoNotContact { .. } => self.apply_policy_action(state, action, step),
            // Journeys the program defines run here; others stay the host's.
            ActionDef::EnrollJourney { journey, .. } => self.queue_entry(journey, step),
            ActionDef::RemoveFromJourney { journey, .. } => step.journeys.remove.push(journey.clone()),
            ActionDef::SetAttribute { field, value, .. } => {
                let fields = self.program.schema().contact_fields();
                let slot = fields.slot(field).ok_or_else(|| format!("no contact field `{field}`"))?;
                let value = Value::from_json(value, fields.ty(slot))
                    .ok_or_else(|| format!("the value does not fit `{field}` ({})", fields.ty(slot)))?;
                self.set_attribute(step, slot, Some(value));
            }
            ActionDef::ClearAttribute { field, .. } => {
                let slot = self
                    .program
                    .schema()
                    .contact_fields()
                    .slot(field)
                    .ok_or_else(|| format!("no contact field `{field}`"))?;
                self.set_attribute(step, slot, None);
            }
            ActionDef::AdjustScore { score, points, group, .. } => {
                let scorer = self.program.scorer().ok_or("the program has no scores")?;
                let model = scorer
                    .models()
                    .iter()
                    .position(|m| m.id().as_str() == score)
                    .ok_or_else(|| format!("no score `{score}`"))?;
                if scorer.models()[model].is_combined() {
                    return Err(format!("`{score}` is a combined score: adjust one of its parts"));
                }
                let scores = state.scores.as_mut().ok_or("the state has no scores")?;
                // The named group (checked when compiling), else the first.
                let group = match group {
                    Some(g) => {
                        scorer.group_index(model, g).ok_or_else(|| format!("`{score}` has no group `{g}`"))?
                    }
                    None => 0,
                };
                let update = scorer
                    .adjust_group(scores, model, group, *points, step.now)
                    .map_err(|e| e.to_string())?;
                self.score_effects(step, &update);
            }
            _ => {}
        }
        Ok(())
    }

    /// Sets an attribute on the step's working contact, queueing the change.
    pub(super) fn set_attribute(&self, step: &mut Step<'_>, slot: crate::schema::Slot, value: Option<Value>) {
        let from = step.contact.get(slot).cloned();
        if from == value {
            return;
        }
        step.contact.to_mut().put(slot, value.clone());
        step.changes.push(Change::Attribute { field: slot, from, to: value });
    }
}
