//! Windowed event counts: "visited /pricing at least 3 times in the last 7 days".
//!
//! A counter counts a contact's events of one type whose condition holds, within a
//! sliding window ending now. Conditions read it as `counter.NAME` (an int). The state
//! keeps the instants of counted events, at most `max` per counter (the newest), so
//! memory per contact is bounded; counts are exact up to `max` and saturate there, which
//! is what "at least N" tests with N <= `max` need.

use serde::{Deserialize, Serialize};
use smallvec::SmallVec;

use crate::expr::{Activation, Expression};
use crate::id::EventTypeIndex;
use crate::schema::{Contact, Event};
use crate::time::{Duration, Timestamp};
use crate::value::Value;

/// The default most instants kept per counter and contact.
pub const DEFAULT_MAX: u32 = 1_000;

/// What one counter counts.
#[derive(Clone, Debug)]
pub struct CounterDef {
    pub(crate) event_type: EventTypeIndex,
    pub(crate) condition: Option<Expression>,
    pub(crate) window: Duration,
    pub(crate) max: u32,
}

impl CounterDef {
    /// Counts events of `event_type` whose `condition` holds (all when `None`), within
    /// the last `window`; exact up to `max` events per window.
    pub fn new(
        event_type: EventTypeIndex,
        condition: Option<Expression>,
        window: Duration,
        max: u32,
    ) -> CounterDef {
        CounterDef { event_type, condition, window, max: max.max(1) }
    }
}

/// The counters of a schema, in the order of its counter declarations.
#[derive(Clone, Debug, Default)]
pub struct Counters {
    defs: Vec<CounterDef>,
}

/// One contact's counted instants, per counter.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct CounterState {
    hits: Vec<SmallVec<[Timestamp; 4]>>,
}

impl CounterState {
    /// Whether there are no counters at all (not merely no counted events).
    pub(crate) fn is_empty(&self) -> bool {
        self.hits.is_empty()
    }

    /// Heap bytes held (requested sizes).
    pub(crate) fn heap_bytes(&self) -> usize {
        self.hits.capacity() * size_of::<SmallVec<[Timestamp; 4]>>()
            + self
                .hits
                .iter()
                .filter(|h| h.spilled())
                .map(|h| h.capacity() * size_of::<Timestamp>())
                .sum::<usize>()
    }
}

impl Counters {
    /// Counters from definitions, in the schema's counter order.
    pub(crate) fn new(defs: Vec<CounterDef>) -> Counters {
        Counters { defs }
    }

    /// Whether there are no counters.
    pub fn is_empty(&self) -> bool {
        self.defs.is_empty()
    }

    /// A contact's empty state.
    pub fn new_state(&self) -> CounterState {
        CounterState { hits: vec![SmallVec::new(); self.defs.len()] }
    }

    /// Counts `event` in every counter of its type whose condition holds. Events should
    /// arrive in time order; an older one is still counted while inside the window.
    pub fn observe(&self, state: &mut CounterState, contact: &Contact, event: &Event) {
        if state.hits.len() != self.defs.len() {
            state.hits.resize(self.defs.len(), SmallVec::new());
        }
        let now = event.at();
        let act = Activation::new().with_contact(contact).with_event(event).with_now(now);
        for (def, hits) in self.defs.iter().zip(state.hits.iter_mut()) {
            if def.event_type != event.event_type() {
                continue;
            }
            if def.condition.as_ref().is_some_and(|c| c.eval_bool(&act) != Ok(true)) {
                continue;
            }
            let pos = hits.partition_point(|t| *t <= now);
            hits.insert(pos, now);
            // Forget what has left the window and what exceeds the bound (oldest first).
            let horizon = now.checked_sub(def.window);
            let expired = horizon.map_or(0, |h| hits.partition_point(|t| *t <= h));
            let excess = hits.len().saturating_sub(def.max as usize);
            let drop = expired.max(excess).min(hits.len());
            hits.drain(..drop);
        }
    }

    /// The first instant after `now` at which a count falls because a counted event
    /// leaves its window (`None`: none will).
    pub fn next_change(&self, state: &CounterState, now: Timestamp) -> Option<Timestamp> {
        self.next_change_of(state, now, |_| true)
    }

    /// [`Counters::next_change`] for the counters (by slot) `watched` selects.
    pub(crate) fn next_change_of(
        &self,
        state: &CounterState,
        now: Timestamp,
        watched: impl Fn(usize) -> bool,
    ) -> Option<Timestamp> {
        self.defs
            .iter()
            .zip(&state.hits)
            .enumerate()
            .filter(|(i, _)| watched(*i))
            .filter_map(|(_, (def, hits))| {
                let horizon = now.checked_sub(def.window);
                let oldest = hits.iter().find(|t| **t <= now && horizon.is_none_or(|h| **t > h))?;
                oldest.checked_add(def.window)
            })
            .filter(|t| *t > now)
            .min()
    }

    /// The counts at `now`, in counter order, ready for [`Activation::with_counters`].
    pub fn values(&self, state: &CounterState, now: Timestamp, out: &mut Vec<Option<Value>>) {
        out.clear();
        for (i, def) in self.defs.iter().enumerate() {
            let count = state.hits.get(i).map_or(0, |hits| {
                let horizon = now.checked_sub(def.window);
                hits.iter().filter(|t| **t <= now && horizon.is_none_or(|h| **t > h)).count()
            });
            out.push(Some(Value::Int(count.min(def.max as usize) as i64)));
        }
    }
}
