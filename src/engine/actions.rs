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
            ActionDef::AddTag { tag } => {
                state.tags.insert(tag.clone());
            }
            ActionDef::RemoveTag { tag } => {
                state.tags.remove(tag);
            }
            ActionDef::AddToList { list } => {
                state.lists.insert(list.clone());
            }
            ActionDef::RemoveFromList { list } => {
                state.lists.remove(list);
            }
            ActionDef::SetLifecycleStage { stage } => {
                if !self.lifecycle.iter().any(|s| s == stage) {
                    return Err(format!(
                        "`{stage}` is not a lifecycle stage ({})",
                        self.lifecycle.join(", ")
                    ));
                }
                state.stage = Some(stage.clone());
            }
            ActionDef::AssignOwner { owner } => state.owner = Some(owner.clone()),
            // Journeys the program defines run here; others stay the host's.
            ActionDef::EnrollJourney { journey } => self.queue_entry(journey, step),
            ActionDef::RemoveFromJourney { journey } => step.journeys.remove.push(journey.clone()),
            ActionDef::SetAttribute { field, value } => {
                let fields = self.program.schema().contact_fields();
                let slot = fields.slot(field).ok_or_else(|| format!("no contact field `{field}`"))?;
                let value = Value::from_json(value, fields.ty(slot))
                    .ok_or_else(|| format!("the value does not fit `{field}` ({})", fields.ty(slot)))?;
                self.set_attribute(step, slot, Some(value));
            }
            ActionDef::ClearAttribute { field } => {
                let slot = self
                    .program
                    .schema()
                    .contact_fields()
                    .slot(field)
                    .ok_or_else(|| format!("no contact field `{field}`"))?;
                self.set_attribute(step, slot, None);
            }
            ActionDef::AdjustScore { score, points } => {
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
                let update = scorer.adjust(scores, model, *points, step.now).map_err(|e| e.to_string())?;
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

pub(super) fn needs_approval(action: &ActionDef) -> bool {
    matches!(
        action,
        ActionDef::Send { needs_approval: true, .. } | ActionDef::NotifyOwner { needs_approval: true, .. }
    )
}
