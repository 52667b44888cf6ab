//! The driver: ingests events, advances a clock (virtual or the host's real one), wakes
//! contacts whose wake-up has come through a timer queue, saves states with
//! compare-and-swap, and hands effects to delivery, keeping failures for retry.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};
use std::sync::Arc;

use hashbrown::HashMap;

use crate::engine::{Effect, Engine, EngineError, EngineScratch, IdempotencyKey, Outcome, Status};
use crate::host::delivery::Delivery;
use crate::host::store::{ContactStore, StoreError, StoredContact};
use crate::id::ContactId;
use crate::schema::{Contact, Event};
use crate::time::Timestamp;

/// How many times a step is retried when its save loses a compare-and-swap race.
const SAVE_ATTEMPTS: usize = 3;

/// Why the runtime could not handle an input.
#[derive(Clone, Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RuntimeError {
    /// The engine refused it (the contact's state is unchanged).
    #[error(transparent)]
    Engine(#[from] EngineError),
    /// The store failed, or kept losing compare-and-swap races.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// An event for a contact the store does not hold.
    #[error("no contact `{0}`; add it first")]
    UnknownContact(ContactId),
}

/// Counts of what the runtime did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct RuntimeStats {
    /// Events handled (duplicates included).
    pub events: u64,
    /// Duplicate events ignored.
    pub duplicates: u64,
    /// Wake-ups handled.
    pub timeouts: u64,
    /// Effects delivered.
    pub delivered: u64,
    /// Effects held for approval.
    pub awaiting_approval: u64,
    /// Deliveries that failed (kept for retry).
    pub failures: u64,
    /// Saves retried after a compare-and-swap conflict.
    pub conflicts: u64,
}

/// Drives an [`Engine`] over a [`ContactStore`] and a [`Delivery`].
///
/// ```
/// use std::sync::Arc;
/// use nurture::engine::Engine;
/// use nurture::host::{MemoryStore, RecordingDelivery, Runtime};
/// use nurture::{Program, Timestamp};
///
/// let program = Program::from_json(r#"{"version": 1,
///   "schema": {"events": {"signup": {}}},
///   "rules": [{"id": "welcome", "on": "signup",
///              "actions": [{"type": "send", "channel": "email", "template": "welcome"}]}]}"#)?;
/// let start = Timestamp::from_unix(1_767_225_600, 0)?;
/// let engine = Arc::new(Engine::new(Arc::new(program)));
/// let mut runtime = Runtime::new(engine.clone(), MemoryStore::new(), RecordingDelivery::default(), start);
/// let schema = engine.program().schema();
/// runtime.add_contact(schema.contact("c1").build())?;
/// runtime.ingest(&schema.event("e1", "c1", "signup", start)?.build())?;
/// assert_eq!(runtime.delivery().delivered.len(), 1);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct Runtime<S: ContactStore, D: Delivery> {
    engine: Arc<Engine>,
    store: S,
    delivery: D,
    clock: Timestamp,
    /// Wake-ups by instant, then contact id (a deterministic order); entries whose
    /// instant no longer matches `scheduled` are stale and skipped.
    timers: BinaryHeap<Reverse<(Timestamp, ContactId)>>,
    scheduled: HashMap<ContactId, Timestamp>,
    failed: VecDeque<Effect>,
    scratch: EngineScratch,
    stats: RuntimeStats,
}

impl<S: ContactStore, D: Delivery> Runtime<S, D> {
    /// A runtime whose clock starts at `start`.
    pub fn new(engine: Arc<Engine>, store: S, delivery: D, start: Timestamp) -> Runtime<S, D> {
        Runtime {
            engine,
            store,
            delivery,
            clock: start,
            timers: BinaryHeap::new(),
            scheduled: HashMap::new(),
            failed: VecDeque::new(),
            scratch: EngineScratch::default(),
            stats: RuntimeStats::default(),
        }
    }

    /// The engine.
    pub fn engine(&self) -> &Arc<Engine> {
        &self.engine
    }

    /// The store.
    pub fn store(&self) -> &S {
        &self.store
    }

    /// The delivery.
    pub fn delivery(&self) -> &D {
        &self.delivery
    }

    /// The clock: the latest instant the runtime has reached.
    pub fn clock(&self) -> Timestamp {
        self.clock
    }

    /// What it did so far.
    pub fn stats(&self) -> RuntimeStats {
        self.stats
    }

    /// Effects whose delivery failed, oldest first.
    pub fn failed(&self) -> impl Iterator<Item = &Effect> {
        self.failed.iter()
    }

    /// How many wake-ups are scheduled.
    pub fn scheduled(&self) -> usize {
        self.scheduled.len()
    }

    /// Adds a contact as of the clock; for a contact already stored, its attributes are
    /// replaced as a change ([`Engine::handle_attribute_change`]: fit re-scored,
    /// attribute rules started).
    ///
    /// # Errors
    ///
    /// [`RuntimeError::Store`] when the store fails; as [`Engine::handle_attribute_change`].
    pub fn add_contact(&mut self, contact: Contact) -> Result<(), RuntimeError> {
        let id = contact.id().clone();
        if self.store.load(&id)?.is_some() {
            let now = self.clock;
            let _ = self.step(&id, |engine, stored, scratch| {
                let outcome = engine.handle_attribute_change(
                    &mut stored.state,
                    &stored.contact,
                    &contact,
                    now,
                    scratch,
                )?;
                stored.contact = contact.clone();
                Ok(outcome)
            })?;
            return Ok(());
        }
        for _ in 0..SAVE_ATTEMPTS {
            let loaded = self.store.load(&id)?;
            let (state, version) = match loaded {
                Some(v) => (v.value.state, Some(v.version)),
                None => (self.engine.new_state(&contact, self.clock), None),
            };
            let wake = self.engine.wake_after(&state, &contact, self.clock);
            match self.store.save(&id, StoredContact { contact: contact.clone(), state }, version) {
                Ok(_) => {
                    self.schedule(&id, wake);
                    return Ok(());
                }
                Err(StoreError::Conflict { .. }) => self.stats.conflicts += 1,
                Err(e) => return Err(e.into()),
            }
        }
        Err(StoreError::backend(format!("contact `{}`: too many conflicting saves", id.as_str())).into())
    }

    /// Handles an event: first every wake-up due before it, then the event.
    ///
    /// # Errors
    ///
    /// As [`RuntimeError`]; an event the engine refuses leaves the contact unchanged.
    pub fn ingest(&mut self, event: &Event) -> Result<Outcome, RuntimeError> {
        self.advance_to(event.at())?;
        self.stats.events += 1;
        let outcome = self.step(event.contact(), |engine, stored, scratch| {
            engine.handle_event(&mut stored.state, &stored.contact, event, scratch)
        })?;
        if outcome.duplicate {
            self.stats.duplicates += 1;
        }
        Ok(outcome)
    }

    /// Moves the clock to `now` (never back), handling every wake-up due by then in
    /// order of instant, then contact id. Returns how many were handled.
    ///
    /// # Errors
    ///
    /// The first failure; wake-ups after it stay scheduled.
    pub fn advance_to(&mut self, now: Timestamp) -> Result<usize, RuntimeError> {
        let mut handled = 0;
        while let Some(Reverse((at, id))) = self.timers.peek().cloned() {
            if at > now {
                break;
            }
            self.timers.pop();
            if self.scheduled.get(&id) != Some(&at) {
                continue; // superseded by a later step of the contact
            }
            self.scheduled.remove(&id);
            self.clock = self.clock.max(at);
            self.stats.timeouts += 1;
            let outcome = self.step(&id, |engine, stored, scratch| {
                engine.handle_timeout(&mut stored.state, &stored.contact, at, scratch)
            });
            match outcome {
                Ok(_) => handled += 1,
                // A wake-up older than the contact's last change has nothing to do.
                Err(RuntimeError::Engine(EngineError::Score(crate::scoring::ScoreError::OutOfOrder))) => {}
                Err(e) => {
                    // Kept, so that the wake-up is not lost: the next advance retries it.
                    self.schedule(&id, Some(at));
                    return Err(e);
                }
            }
        }
        self.clock = self.clock.max(now);
        Ok(handled)
    }

    /// Replaces the program while running: each contact's state is carried over
    /// ([`Engine::adopt`]) the next time it is loaded. Contacts with a wake-up keep it;
    /// a contact without one that the new program may need to wake (a new inactivity,
    /// date or schedule rule) is scheduled by [`Runtime::reschedule`].
    pub fn replace_engine(&mut self, engine: Arc<Engine>) {
        self.engine = engine;
    }

    /// Computes a contact's wake-up afresh under the current program (adopting its
    /// state if the program changed) and schedules it; for after [`Runtime::replace_engine`]
    /// or a restart, when the timer queue is empty. Returns the wake-up.
    ///
    /// # Errors
    ///
    /// As [`RuntimeError`].
    pub fn reschedule(&mut self, contact: &ContactId) -> Result<Option<Timestamp>, RuntimeError> {
        let clock = self.clock;
        let outcome = self.step(contact, |engine, stored, _| {
            let next_wake = engine.wake_after(&stored.state, &stored.contact, clock);
            Ok(Outcome { next_wake, ..Outcome::default() })
        })?;
        Ok(outcome.next_wake)
    }

    /// Approves a pending effect of a contact and delivers it. `false` when the contact
    /// has no pending effect with this key.
    ///
    /// # Errors
    ///
    /// As [`RuntimeError`].
    pub fn approve(&mut self, contact: &ContactId, key: IdempotencyKey) -> Result<bool, RuntimeError> {
        let mut approved = None;
        // The contact's wake-up stays as it is.
        let keep = self.scheduled.get(contact).copied();
        let _ = self.step(contact, |engine, stored, _| {
            approved = engine.approve(&mut stored.state, key);
            Ok(Outcome { next_wake: keep, ..Outcome::default() })
        })?;
        match approved {
            Some(effect) => {
                self.deliver(effect);
                Ok(true)
            }
            None => Ok(false),
        }
    }

    /// Rejects a pending effect of a contact. `false` when there is none with this key.
    ///
    /// # Errors
    ///
    /// As [`RuntimeError`].
    pub fn reject(&mut self, contact: &ContactId, key: IdempotencyKey) -> Result<bool, RuntimeError> {
        let mut rejected = false;
        let keep = self.scheduled.get(contact).copied();
        let _ = self.step(contact, |engine, stored, _| {
            rejected = engine.reject(&mut stored.state, key).is_some();
            Ok(Outcome { next_wake: keep, ..Outcome::default() })
        })?;
        Ok(rejected)
    }

    /// Tries every failed delivery again, in order; returns how many went through.
    pub fn retry_failed(&mut self) -> usize {
        let failed = std::mem::take(&mut self.failed);
        let before = self.stats.delivered;
        for effect in failed {
            self.deliver(effect);
        }
        (self.stats.delivered - before) as usize
    }

    /// Runs `f` on a contact through [`ContactStore::modify`] (adopting its state if the
    /// program changed), saving with compare-and-swap (retrying a lost race from a fresh
    /// load), then delivers the effects and schedules the wake-up.
    fn step(
        &mut self,
        id: &ContactId,
        mut f: impl FnMut(&Engine, &mut StoredContact, &mut EngineScratch) -> Result<Outcome, EngineError>,
    ) -> Result<Outcome, RuntimeError> {
        for _ in 0..SAVE_ATTEMPTS {
            let (engine, scratch, clock) = (&self.engine, &mut self.scratch, self.clock);
            let mut result: Option<Result<Outcome, EngineError>> = None;
            let saved = self.store.modify(id, &mut |stored| {
                let adopted = (!engine.fits(&stored.state))
                    .then(|| engine.adopt(stored.state.clone(), &stored.contact, clock));
                let before = adopted.map(|state| std::mem::replace(&mut stored.state, state));
                let outcome = f(engine, stored, scratch);
                let keep = outcome.is_ok();
                match &outcome {
                    Ok(Outcome { contact: Some(contact), .. }) => stored.contact = contact.clone(),
                    Ok(_) => {}
                    // A refused step leaves the contact as it was, adoption included.
                    Err(_) => {
                        if let Some(state) = before {
                            stored.state = state;
                        }
                    }
                }
                result = Some(outcome);
                keep
            });
            match saved {
                Ok(None) => return Err(RuntimeError::UnknownContact(id.clone())),
                Ok(Some(_)) => {
                    let outcome =
                        result.ok_or_else(|| StoreError::backend("the store did not run the step"))??;
                    for effect in &outcome.effects {
                        match effect.status {
                            Status::Ready => self.deliver(effect.clone()),
                            Status::PendingApproval => self.stats.awaiting_approval += 1,
                            _ => {}
                        }
                    }
                    self.schedule(id, outcome.next_wake);
                    return Ok(outcome);
                }
                Err(StoreError::Conflict { .. }) => self.stats.conflicts += 1,
                Err(e) => return Err(e.into()),
            }
        }
        Err(StoreError::backend(format!("contact `{}`: too many conflicting saves", id.as_str())).into())
    }

    fn deliver(&mut self, effect: Effect) {
        match self.delivery.deliver(&effect) {
            Ok(()) => self.stats.delivered += 1,
            Err(_) => {
                self.stats.failures += 1;
                self.failed.push_back(effect);
            }
        }
    }

    fn schedule(&mut self, id: &ContactId, wake: Option<Timestamp>) {
        match wake {
            Some(at) => {
                if self.scheduled.insert(id.clone(), at) != Some(at) {
                    self.timers.push(Reverse((at, id.clone())));
                }
            }
            None => {
                self.scheduled.remove(id);
            }
        }
    }
}
