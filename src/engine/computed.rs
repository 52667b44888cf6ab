//! Computed action fields: a `set_attribute`'s `expr` and a send's `params`, evaluated
//! when the rule fires over the contact as the step has it, the event, scores, counters,
//! segments and `now`.

use std::borrow::Cow;
use std::collections::BTreeMap;

use super::step::*;
use super::*;
use crate::def::ActionDef;
use crate::program::Rule;

impl Engine {
    /// The action with its computed value filled in (a `set_attribute` with `expr`
    /// becomes one with that `value`, so its effect shows what was set), and a send's
    /// evaluated `params`. `Err` (why) when an expression fails or gives a value that
    /// does not fit.
    pub(super) fn compute<'r>(
        &self,
        state: &ContactState,
        rule: &'r Rule,
        position: usize,
        action: &'r ActionDef,
        step: &Step<'_>,
    ) -> Result<(Cow<'r, ActionDef>, BTreeMap<String, serde_json::Value>), String> {
        let Some(computed) = rule.computed(position) else {
            return Ok((Cow::Borrowed(action), BTreeMap::new()));
        };
        let mut scratch = EngineScratch::default();
        self.bind_values(state, step.now, &mut scratch);
        self.member_values(state, &mut scratch.segments);
        let mut activation = scratch.activation(&step.contact, step.now);
        if let Some(event) = step.event.filter(|_| rule.event_type().is_some()) {
            activation = activation.with_event(event);
        }
        let json = |name: &str, value: crate::value::Value| {
            value.to_json().ok_or_else(|| format!("`{name}` gave a value JSON cannot hold"))
        };
        let mut action = Cow::Borrowed(action);
        if let (Some(expr), ActionDef::SetAttribute { field, .. }) = (&computed.value, action.as_ref()) {
            let value = expr.eval(&activation).map_err(|e| format!("`{field}`: {e}"))?;
            let fields = self.program.schema().contact_fields();
            let slot = fields.slot(field).ok_or_else(|| format!("no contact field `{field}`"))?;
            if !value.has_type(fields.ty(slot)) {
                return Err(format!(
                    "`{field}` is declared {}; the expression gave a {}",
                    fields.ty(slot),
                    value.kind()
                ));
            }
            let value = json(field, value)?;
            action = Cow::Owned(ActionDef::SetAttribute {
                field: field.clone(),
                value,
                expr: None,
                needs_approval: false,
            });
        }
        let mut params = BTreeMap::new();
        for (name, expr) in &computed.params {
            let value = expr.eval(&activation).map_err(|e| format!("param `{name}`: {e}"))?;
            params.insert(name.clone(), json(name, value)?);
        }
        Ok((action, params))
    }
}
