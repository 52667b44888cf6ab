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

/// How far ahead of the runtime's clock an event may be dated, by default: one day.
pub const DEFAULT_MAX_AHEAD_SECS: i64 = 86_400;

/// How many wake-ups one call handles at most, by default.
pub const DEFAULT_MAX_WAKEUPS_PER_CALL: usize = 10_000;

/// How many dropped wake-ups the runtime keeps for [`Runtime::take_wake_failures`]
/// (older ones are only counted, in [`RuntimeStats::dropped_wakeups`]).
const KEPT_WAKE_FAILURES: usize = 1_000;

/// A wake-up that failed and was dropped; the other contacts' wake-ups went on.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct WakeFailure {
    /// The contact.
    pub contact: ContactId,
    /// The wake-up's instant.
    pub at: Timestamp,
    /// Why it failed.
    pub error: RuntimeError,
}

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
    /// An event dated further ahead of the runtime's clock than its limit
    /// ([`Runtime::with_max_ahead`]); nothing changed. Advance the clock first
    /// ([`Runtime::advance_to`]) if the host's clock really is there.
    #[error("event `{event}` is dated {at}, more than {limit} ahead of the clock ({clock})")]
    TooFarAhead {
        /// The event.
        event: crate::id::EventId,
        /// Its instant.
        at: Timestamp,
        /// The runtime's clock.
        clock: Timestamp,
        /// The limit.
        limit: crate::time::Duration,
    },
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
    /// Wake-ups that failed and were dropped ([`Runtime::take_wake_failures`]).
    pub dropped_wakeups: u64,
    /// Events refused as dated too far ahead of the clock.
    pub too_far_ahead: u64,
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
    max_ahead: crate::time::Duration,
    max_wakeups: usize,
    wake_failures: VecDeque<WakeFailure>,
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
            max_ahead: crate::time::Duration::from_secs(DEFAULT_MAX_AHEAD_SECS)
                .unwrap_or(crate::time::Duration::ZERO),
            max_wakeups: DEFAULT_MAX_WAKEUPS_PER_CALL,
            wake_failures: VecDeque::new(),
        }
    }

    /// How far ahead of the clock an event may be dated (default one day,
    /// [`DEFAULT_MAX_AHEAD_SECS`]); a later one is refused with
    /// [`RuntimeError::TooFarAhead`] and changes nothing. An accepted event moves the
    /// clock to its instant, handling the wake-ups due by then, so this bounds how much
    /// of the future one event can pull in for every contact. A host that drives the
    /// clock from its events (a replay, a simulation) raises it, or calls
    /// [`Runtime::advance_to`] first.
    ///
    /// ```
    /// use std::sync::Arc;
    /// use nurture::engine::Engine;
    /// use nurture::host::{MemoryStore, RecordingDelivery, Runtime, RuntimeError};
    /// use nurture::{Duration, Program, Timestamp};
    ///
    /// let program = Program::from_json(r#"{"version": 1, "schema": {"events": {"visit": {}}}}"#)?;
    /// let start = Timestamp::from_unix(1_767_225_600, 0)?;
    /// let engine = Arc::new(Engine::new(Arc::new(program)));
    /// let mut runtime = Runtime::new(engine.clone(), MemoryStore::new(), RecordingDelivery::default(), start)
    ///     .with_max_ahead(Duration::from_secs(3600)?);
    /// let schema = engine.program().schema();
    /// runtime.add_contact(schema.contact("c1").build())?;
    /// let far = Timestamp::from_unix(16_725_225_600, 0)?; // the year 2500
    /// let error = runtime.ingest(&schema.event("e1", "c1", "visit", far)?.build()).unwrap_err();
    /// assert!(matches!(error, RuntimeError::TooFarAhead { .. }));
    /// assert_eq!(runtime.clock(), start);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn with_max_ahead(mut self, limit: crate::time::Duration) -> Runtime<S, D> {
        self.max_ahead = limit;
        self
    }

    /// How many wake-ups one call ([`Runtime::advance_to`], [`Runtime::ingest`])
    /// handles at most (default [`DEFAULT_MAX_WAKEUPS_PER_CALL`]; at least 1). When more
    /// are due, the clock stops at the last one handled and the next call goes on:
    /// the work of one call stays bounded however far the clock moves.
    pub fn with_max_wakeups_per_call(mut self, max: usize) -> Runtime<S, D> {
        self.max_wakeups = max.max(1);
        self
    }

    /// The wake-ups that failed since the last call, oldest first (at most the last
    /// 1,000; [`RuntimeStats::dropped_wakeups`] counts them all). A failed wake-up is
    /// dropped so that the other contacts go on; the contact is woken again after its
    /// next step, or when [`Runtime::reschedule`] is called for it.
    pub fn take_wake_failures(&mut self) -> Vec<WakeFailure> {
        self.wake_failures.drain(..).collect()
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

    /// Adds a contact as of the clock, as [`Engine::create`] does (its effects are
    /// delivered); for a contact already stored, its attributes are replaced as a change ([`Engine::handle_attribute_change`]: fit re-scored,
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
            // A new contact is created as a step ([`Engine::create`]): a fit score already
            // above a threshold, and the segments it starts in, give their effects.
            let (state, version, effects, changed) = match loaded {
                Some(v) => (v.value.state, Some(v.version), Vec::new(), None),
                None => {
                    let (state, outcome) = self.engine.create(&contact, self.clock, &mut self.scratch)?;
                    (state, None, outcome.effects, outcome.contact)
                }
            };
            // Actions of rules fired at creation may have set attributes.
            let contact = changed.unwrap_or_else(|| contact.clone());
            let wake = self.engine.wake_after(&state, &contact, self.clock);
            let stored = StoredContact { contact, state };
            match self.store.save(&id, stored, version) {
                Ok(_) => {
                    for effect in effects {
                        match effect.status {
                            Status::Ready => self.deliver(effect),
                            _ => self.stats.awaiting_approval += 1,
                        }
                    }
                    self.schedule(&id, wake);
                    return Ok(());
                }
                Err(StoreError::Conflict { .. }) => self.stats.conflicts += 1,
                Err(e) => return Err(e.into()),
            }
        }
        Err(StoreError::backend(format!("contact `{}`: too many conflicting saves", id.as_str())).into())
    }

    /// Handles an event: first the wake-ups due before it (at most the per-call limit,
    /// [`Runtime::with_max_wakeups_per_call`], and always every one of the event's own
    /// contact), then the event. A wake-up that fails is dropped and reported
    /// ([`Runtime::take_wake_failures`]), never the event's error.
    ///
    /// # Errors
    ///
    /// [`RuntimeError::TooFarAhead`] for an event dated more than the limit ahead of
    /// the clock ([`Runtime::with_max_ahead`]); otherwise as [`RuntimeError`]; an
    /// event the engine refuses leaves the contact unchanged.
    pub fn ingest(&mut self, event: &Event) -> Result<Outcome, RuntimeError> {
        let limit = self.clock.checked_add(self.max_ahead).unwrap_or(Timestamp::MAX);
        if event.at() > limit {
            self.stats.too_far_ahead += 1;
            return Err(RuntimeError::TooFarAhead {
                event: event.id().clone(),
                at: event.at(),
                clock: self.clock,
                limit: self.max_ahead,
            });
        }
        self.advance_to(event.at())?;
        // The event's own contact is woken up to the event whatever the per-call limit
        // left undone, so that its timeouts come before its event.
        for _ in 0..self.max_wakeups {
            let Some(at) = self.scheduled.get(event.contact()).copied().filter(|at| *at <= event.at()) else {
                break;
            };
            self.scheduled.remove(event.contact());
            self.wake(event.contact(), at);
        }
        self.stats.events += 1;
        let outcome = self.step(event.contact(), |engine, stored, scratch| {
            engine.handle_event(&mut stored.state, &stored.contact, event, scratch)
        })?;
        if outcome.duplicate {
            self.stats.duplicates += 1;
        }
        Ok(outcome)
    }

    /// Moves the clock towards `now` (never back), handling the wake-ups due by then
    /// in order of instant, then contact id: at most the per-call limit
    /// ([`Runtime::with_max_wakeups_per_call`]). When more are due, the clock stops at
    /// the last one handled (call again to go on); otherwise it reaches `now`. Returns
    /// how many were handled. A wake-up that fails is dropped and reported
    /// ([`Runtime::take_wake_failures`]); the others go on.
    ///
    /// # Errors
    ///
    /// None today: failures of single wake-ups are reported, not returned (the
    /// `Result` is kept for hosts whose clocks can fail).
    pub fn advance_to(&mut self, now: Timestamp) -> Result<usize, RuntimeError> {
        let mut handled = 0;
        while let Some(Reverse((at, id))) = self.timers.peek().cloned() {
            if at > now {
                break;
            }
            if self.scheduled.get(&id) != Some(&at) {
                self.timers.pop();
                continue; // superseded by a later step of the contact
            }
            if handled >= self.max_wakeups {
                // Bounded work per call: the clock stays before what is still due.
                return Ok(handled);
            }
            self.timers.pop();
            self.scheduled.remove(&id);
            self.clock = self.clock.max(at);
            if self.wake(&id, at) {
                handled += 1;
            }
        }
        self.clock = self.clock.max(now);
        Ok(handled)
    }

    /// Runs one wake-up; `true` when it was handled. A failure is dropped and kept for
    /// [`Runtime::take_wake_failures`].
    fn wake(&mut self, id: &ContactId, at: Timestamp) -> bool {
        self.stats.timeouts += 1;
        let outcome = self.step(id, |engine, stored, scratch| {
            engine.handle_timeout(&mut stored.state, &stored.contact, at, scratch)
        });
        match outcome {
            Ok(_) => true,
            // A wake-up older than the contact's last change has nothing to do.
            Err(RuntimeError::Engine(EngineError::Score(crate::scoring::ScoreError::OutOfOrder))) => false,
            Err(error) => {
                self.stats.dropped_wakeups += 1;
                if self.wake_failures.len() >= KEPT_WAKE_FAILURES {
                    self.wake_failures.pop_front();
                }
                self.wake_failures.push_back(WakeFailure { contact: id.clone(), at, error });
                false
            }
        }
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

    /// Approves a pending effect of a contact at the runtime's clock, as a step
    /// ([`Engine::approve`]): the approved effect and what it caused are delivered, and
    /// the contact's wake-up is scheduled again. `false` when the contact has no
    /// pending effect with this key (decided, rejected or expired).
    ///
    /// # Errors
    ///
    /// As [`RuntimeError`].
    pub fn approve(&mut self, contact: &ContactId, key: IdempotencyKey) -> Result<bool, RuntimeError> {
        let clock = self.clock;
        let mut found = false;
        // Nothing to approve: the contact's wake-up stays as it is.
        let keep = self.scheduled.get(contact).copied();
        let _ = self.step(contact, |engine, stored, scratch| {
            let approved = engine.approve(&mut stored.state, &stored.contact, key, clock, scratch)?;
            found = approved.is_some();
            Ok(approved.unwrap_or(Outcome { next_wake: keep, ..Outcome::default() }))
        })?;
        Ok(found)
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
                // A state of another program is carried over, and the contact with it:
                // attributes by field name, never by position.
                let adopted = (!engine.fits(&stored.state)).then(|| {
                    let contact = engine.adopt_contact(&stored.state, &stored.contact);
                    let state = engine.adopt(stored.state.clone(), &contact, clock);
                    (contact, state)
                });
                let before = adopted.map(|(contact, state)| {
                    (
                        std::mem::replace(&mut stored.contact, contact),
                        std::mem::replace(&mut stored.state, state),
                    )
                });
                let outcome = f(engine, stored, scratch);
                let keep = outcome.is_ok();
                match &outcome {
                    Ok(Outcome { contact: Some(contact), .. }) => stored.contact = contact.clone(),
                    Ok(_) => {}
                    // A refused step leaves the contact as it was, adoption included.
                    Err(_) => {
                        if let Some((contact, state)) = before {
                            stored.contact = contact;
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
