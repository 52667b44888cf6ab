//! The driver: the engine over the SQLite store, with group commit, a durable timer
//! table mirrored in memory, and delivery from the outbox with retries and backoff.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use nurture::engine::{ContactState, Engine};
use nurture::engine::{EngineError, EngineScratch, IdempotencyKey, Outcome, Status};
use nurture::host::{Delivery, StoredContact};
use nurture::scoring::ScoreError;
use nurture::{Contact, ContactId, Event, Timestamp};
use rusqlite::params;

use crate::error::Error;
use crate::store::{decode_effect, wall_ms, OutboxStatus, SqliteStore};

/// How hard a commit tries to reach the disk (SQLite's `synchronous` in WAL mode).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum Durability {
    /// `synchronous = FULL`: a commit is on the disk when it returns; survives a power
    /// loss or an operating-system crash. The default.
    #[default]
    Full,
    /// `synchronous = NORMAL`: a commit survives the process being killed at any
    /// instant (it is in the operating system's cache); a power loss may undo the last
    /// commits, never corrupt the database. Several times faster without group commit.
    Normal,
}

/// How failed deliveries are retried.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts before an effect is given up (`dead`, with the last error recorded).
    pub max_attempts: u32,
    /// The wait after the first failure; doubled after each further one.
    pub first_backoff: Duration,
    /// The longest wait.
    pub max_backoff: Duration,
}

impl Default for RetryPolicy {
    fn default() -> RetryPolicy {
        RetryPolicy {
            max_attempts: 10,
            first_backoff: Duration::from_secs(1),
            max_backoff: Duration::from_secs(3_600),
        }
    }
}

impl RetryPolicy {
    /// The wait after `attempts` failed attempts.
    pub fn backoff(&self, attempts: u32) -> Duration {
        let factor = 1u32.checked_shl(attempts.saturating_sub(1)).unwrap_or(u32::MAX);
        self.first_backoff.saturating_mul(factor).min(self.max_backoff)
    }
}

/// How the host commits and delivers.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct HostOptions {
    /// Steps per transaction (group commit); 1 commits every step on its own.
    pub group_size: usize,
    /// The longest a step waits for its group's commit (checked at each step, and by
    /// [`SqliteHost::tick`]).
    pub max_latency: Duration,
    /// The `synchronous` setting.
    pub durability: Durability,
    /// Retries of failed deliveries.
    pub retry: RetryPolicy,
    /// Deliver from the outbox after every commit (otherwise only on
    /// [`SqliteHost::deliver_pending`]).
    pub deliver_on_commit: bool,
    /// How far ahead of the host's clock an event may be dated (default one day, as
    /// [`nurture::host::Runtime::with_max_ahead`]); a later one is refused with
    /// [`Error::TooFarAhead`].
    pub max_ahead: nurture::Duration,
    /// How many wake-ups one call handles at most (default 10,000); when more are due,
    /// the clock stops at the last one handled and the next call goes on.
    pub max_wakeups_per_call: usize,
}

impl Default for HostOptions {
    fn default() -> HostOptions {
        HostOptions {
            group_size: 256,
            max_latency: Duration::from_millis(50),
            durability: Durability::Full,
            retry: RetryPolicy::default(),
            deliver_on_commit: true,
            max_ahead: nurture::Duration::from_secs(nurture::host::DEFAULT_MAX_AHEAD_SECS)
                .unwrap_or(nurture::Duration::ZERO),
            max_wakeups_per_call: nurture::host::DEFAULT_MAX_WAKEUPS_PER_CALL,
        }
    }
}

impl HostOptions {
    /// With `group_size` steps per transaction.
    pub fn with_group_size(mut self, group_size: usize) -> HostOptions {
        self.group_size = group_size.max(1);
        self
    }

    /// With this longest wait for a commit.
    pub fn with_max_latency(mut self, max_latency: Duration) -> HostOptions {
        self.max_latency = max_latency;
        self
    }

    /// With this durability.
    pub fn with_durability(mut self, durability: Durability) -> HostOptions {
        self.durability = durability;
        self
    }

    /// With this retry policy.
    pub fn with_retry(mut self, retry: RetryPolicy) -> HostOptions {
        self.retry = retry;
        self
    }

    /// Delivering after every commit, or not.
    pub fn with_deliver_on_commit(mut self, deliver: bool) -> HostOptions {
        self.deliver_on_commit = deliver;
        self
    }

    /// With this limit on how far ahead of the clock an event may be dated.
    pub fn with_max_ahead(mut self, limit: nurture::Duration) -> HostOptions {
        self.max_ahead = limit;
        self
    }

    /// With at most this many wake-ups per call (at least 1).
    pub fn with_max_wakeups_per_call(mut self, max: usize) -> HostOptions {
        self.max_wakeups_per_call = max.max(1);
        self
    }
}

/// Counts of what the host did since it was opened.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct HostStats {
    /// Events handled (duplicates included).
    pub events: u64,
    /// Duplicate events ignored.
    pub duplicates: u64,
    /// Wake-ups handled.
    pub timeouts: u64,
    /// Transactions committed.
    pub commits: u64,
    /// Effects put in the outbox (keys already there not counted).
    pub enqueued: u64,
    /// Effects delivered.
    pub delivered: u64,
    /// Delivery attempts that failed.
    pub failures: u64,
    /// Effects given up.
    pub dead: u64,
    /// Wake-ups that failed and were dropped ([`SqliteHost::take_wake_failures`]).
    pub dropped_wakeups: u64,
    /// Events refused as dated too far ahead of the clock.
    pub too_far_ahead: u64,
}

/// A wake-up that failed (not for a database failure) and was dropped; the other
/// contacts' wake-ups went on.
#[derive(Debug)]
#[non_exhaustive]
pub struct WakeFailure {
    /// The contact.
    pub contact: ContactId,
    /// The wake-up's instant.
    pub at: Timestamp,
    /// Why it failed.
    pub error: Error,
}

/// How many dropped wake-ups the host keeps for [`SqliteHost::take_wake_failures`].
const KEPT_WAKE_FAILURES: usize = 1_000;

const CLOCK: &str = "clock";
const CURSOR: &str = "cursor";

/// Drives an [`Engine`] over a [`SqliteStore`] and a [`Delivery`]: the same steps, in
/// the same order, as [`nurture::host::Runtime`], but every step's state, wake-up and
/// effects are written in one transaction with the host's cursor and clock, and effects
/// are delivered from the outbox only after their commit.
///
/// A database failure ([`Error::is_database_failure`]) rolls back the uncommitted group
/// whole, and the host reloads its clock, cursor and timers from the database: feed the
/// inputs again from [`SqliteHost::cursor`].
pub struct SqliteHost<D: Delivery> {
    store: SqliteStore,
    engine: Arc<Engine>,
    delivery: D,
    options: HostOptions,
    clock: Timestamp,
    cursor: u64,
    timers: BinaryHeap<Reverse<(Timestamp, ContactId)>>,
    scheduled: HashMap<ContactId, Timestamp>,
    /// Steps in the open transaction, and when the first of them began.
    open: Option<(usize, Instant)>,
    scratch: EngineScratch,
    stats: HostStats,
    wake_failures: std::collections::VecDeque<WakeFailure>,
}

impl<D: Delivery> std::fmt::Debug for SqliteHost<D> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteHost")
            .field("store", &self.store)
            .field("clock", &self.clock)
            .field("cursor", &self.cursor)
            .field("scheduled", &self.scheduled.len())
            .field("stats", &self.stats)
            .finish_non_exhaustive()
    }
}

impl<D: Delivery> SqliteHost<D> {
    /// Opens (or creates) the database at `path` and resumes from it: the clock and
    /// cursor as last committed (a new database starts at `start` and 0), the timers
    /// reloaded, the pending outbox delivered. States of an earlier program are
    /// carried over ([`Engine::adopt`]) as each contact is next loaded; call
    /// [`SqliteHost::reschedule_all`] after a program change.
    ///
    /// # Errors
    ///
    /// As [`SqliteStore::open`]; [`Error::BadRow`] for a damaged timer or meta row.
    pub fn open(
        path: impl AsRef<Path>,
        engine: Arc<Engine>,
        delivery: D,
        start: Timestamp,
        options: HostOptions,
    ) -> Result<SqliteHost<D>, Error> {
        let store = SqliteStore::open(path, engine.program().schema_arc().clone())?;
        SqliteHost::with_store(store, engine, delivery, start, options)
    }

    /// A host over an opened store.
    ///
    /// # Errors
    ///
    /// As [`SqliteHost::open`].
    pub fn with_store(
        mut store: SqliteStore,
        engine: Arc<Engine>,
        delivery: D,
        start: Timestamp,
        options: HostOptions,
    ) -> Result<SqliteHost<D>, Error> {
        let sync = match options.durability {
            Durability::Full => "FULL",
            Durability::Normal => "NORMAL",
        };
        store.conn.execute_batch(&format!("PRAGMA synchronous = {sync}"))?;
        store.set_program(engine.program().clone());
        let mut host = SqliteHost {
            store,
            engine,
            delivery,
            options,
            clock: start,
            cursor: 0,
            timers: BinaryHeap::new(),
            scheduled: HashMap::new(),
            open: None,
            scratch: EngineScratch::default(),
            stats: HostStats::default(),
            wake_failures: std::collections::VecDeque::new(),
        };
        host.reload(start)?;
        if host.options.deliver_on_commit {
            host.deliver_pending()?;
        }
        Ok(host)
    }

    /// Reads the clock, cursor and timers as committed.
    fn reload(&mut self, start: Timestamp) -> Result<(), Error> {
        self.clock = match self.store.meta(CLOCK)? {
            Some(text) => Timestamp::parse(&text).map_err(|e| Error::BadRow {
                contact: String::new(),
                what: "timer",
                message: format!("clock: {e}"),
            })?,
            None => start,
        };
        self.cursor = match self.store.meta(CURSOR)? {
            Some(text) => text.parse().map_err(|e| Error::Corrupt(format!("cursor `{text}`: {e}")))?,
            None => 0,
        };
        self.timers.clear();
        self.scheduled.clear();
        for (id, at) in self.store.timers()? {
            self.timers.push(Reverse((at, id.clone())));
            self.scheduled.insert(id, at);
        }
        Ok(())
    }

    /// The engine.
    pub fn engine(&self) -> &Arc<Engine> {
        &self.engine
    }

    /// The store, for queries.
    pub fn store(&self) -> &SqliteStore {
        &self.store
    }

    /// The store, to change its settings (such as [`SqliteStore::set_max_page_count`]).
    /// Writing contacts through it bypasses the host's timers: use the host's methods.
    pub fn store_mut(&mut self) -> &mut SqliteStore {
        &mut self.store
    }

    /// The delivery.
    pub fn delivery(&self) -> &D {
        &self.delivery
    }

    /// The delivery, to change it.
    pub fn delivery_mut(&mut self) -> &mut D {
        &mut self.delivery
    }

    /// The clock: the latest instant reached.
    pub fn clock(&self) -> Timestamp {
        self.clock
    }

    /// The host's input position: what [`SqliteHost::set_cursor`] last set, committed
    /// with the steps before it. After a restart or a database failure, feed inputs
    /// from here.
    pub fn cursor(&self) -> u64 {
        self.cursor
    }

    /// Records the host's input position (an offset in its event log, a queue's
    /// sequence number); it is committed in the same transaction as the steps before
    /// it, so that after a crash the cursor and the states agree.
    pub fn set_cursor(&mut self, cursor: u64) {
        self.cursor = cursor;
    }

    /// What it did since it was opened.
    pub fn stats(&self) -> HostStats {
        self.stats
    }

    /// How many wake-ups are scheduled.
    pub fn scheduled(&self) -> usize {
        self.scheduled.len()
    }

    /// Whether a contact is stored (uncommitted steps included).
    ///
    /// # Errors
    ///
    /// When the query fails.
    pub fn contains(&self, id: &ContactId) -> Result<bool, Error> {
        self.store.contains(id)
    }

    /// A contact as stored (uncommitted steps included).
    ///
    /// # Errors
    ///
    /// When the query fails or the row is damaged.
    pub fn contact(&self, id: &ContactId) -> Result<Option<StoredContact>, Error> {
        Ok(self.store.read(id)?.map(|v| v.value))
    }

    /// Adds a contact as of the clock; for a contact already stored, its attributes are
    /// replaced as a change ([`Engine::handle_attribute_change`]), as
    /// [`nurture::host::Runtime::add_contact`] does.
    ///
    /// # Errors
    ///
    /// As [`Error`]; a database failure rolls back the uncommitted group.
    pub fn add_contact(&mut self, contact: Contact) -> Result<(), Error> {
        let id = contact.id().clone();
        if self.store.contains(&id)? {
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
        self.begin()?;
        // A new contact is created as a step (`Engine::create`), as the in-memory runtime
        // does: a fit score already above a threshold, and the segments it starts in,
        // give their effects, filed in the outbox with the state.
        let (state, outcome) = self.engine.create(&contact, self.clock, &mut self.scratch)?;
        let contact = outcome.contact.clone().unwrap_or(contact);
        let wake = self.engine.wake_after(&state, &contact, self.clock);
        let stored = StoredContact { contact, state };
        self.file(&id, &stored, None, &outcome.effects, wake)?;
        self.stepped()
    }

    /// Handles an event: first the wake-ups due at or before it (each at its own
    /// instant; at most [`HostOptions::max_wakeups_per_call`], and always every one of
    /// the event's own contact), then the event.
    ///
    /// # Errors
    ///
    /// [`Error::TooFarAhead`] for an event dated more than [`HostOptions::max_ahead`]
    /// ahead of the clock; otherwise as [`Error`]: an event the engine refuses leaves
    /// the contact unchanged; a database failure rolls back the uncommitted group. A
    /// wake-up that fails otherwise is dropped and reported
    /// ([`SqliteHost::take_wake_failures`]), never the event's error.
    pub fn ingest(&mut self, event: &Event) -> Result<Outcome, Error> {
        let limit = self.clock.checked_add(self.options.max_ahead).unwrap_or(Timestamp::MAX);
        if event.at() > limit {
            self.stats.too_far_ahead += 1;
            return Err(Error::TooFarAhead {
                event: event.id().as_str().to_string(),
                at: event.at(),
                clock: self.clock,
                limit: self.options.max_ahead,
            });
        }
        self.advance_to(event.at())?;
        for _ in 0..self.options.max_wakeups_per_call.max(1) {
            let Some(at) = self.scheduled.get(event.contact()).copied().filter(|at| *at <= event.at()) else {
                break;
            };
            self.scheduled.remove(event.contact());
            self.wake(event.contact(), at)?;
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

    /// Moves the clock towards `now` (never back), handling the wake-ups due by then in
    /// order of instant, then contact id, each at its own instant: at most
    /// [`HostOptions::max_wakeups_per_call`]; when more are due the clock stops at the
    /// last one handled (call again to go on). Returns how many were handled. A
    /// wake-up that fails for another reason than the database is dropped and reported
    /// ([`SqliteHost::take_wake_failures`]); the others go on.
    ///
    /// # Errors
    ///
    /// A database failure; the group is rolled back.
    pub fn advance_to(&mut self, now: Timestamp) -> Result<usize, Error> {
        let mut handled = 0;
        while let Some(Reverse((at, id))) = self.timers.peek().cloned() {
            if at > now {
                break;
            }
            if self.scheduled.get(&id) != Some(&at) {
                self.timers.pop();
                continue; // superseded by a later step of the contact
            }
            if handled >= self.options.max_wakeups_per_call.max(1) {
                return Ok(handled);
            }
            self.timers.pop();
            self.scheduled.remove(&id);
            self.clock = self.clock.max(at);
            if self.wake(&id, at)? {
                handled += 1;
            }
        }
        self.clock = self.clock.max(now);
        Ok(handled)
    }

    /// The wake-ups dropped since the last call, oldest first (at most the last 1,000;
    /// [`HostStats::dropped_wakeups`] counts them all). The contact is woken again after
    /// its next step, or by [`SqliteHost::reschedule_all`].
    pub fn take_wake_failures(&mut self) -> Vec<WakeFailure> {
        self.wake_failures.drain(..).collect()
    }

    /// Runs one wake-up; `Ok(true)` when handled. A failure other than the database's
    /// drops it (its timer row too) and keeps it for [`SqliteHost::take_wake_failures`].
    fn wake(&mut self, id: &ContactId, at: Timestamp) -> Result<bool, Error> {
        self.stats.timeouts += 1;
        let outcome = self.step(id, |engine, stored, scratch| {
            engine.handle_timeout(&mut stored.state, &stored.contact, at, scratch)
        });
        match outcome {
            Ok(_) => Ok(true),
            Err(e) if e.is_database_failure() => Err(e),
            Err(error) => {
                // A wake-up older than the contact's last change has nothing to do;
                // any other failure is reported. Either way its timer goes.
                let result = self.store.write_timer(id, None);
                self.guard(result)?;
                if !matches!(error, Error::Engine(EngineError::Score(ScoreError::OutOfOrder))) {
                    self.stats.dropped_wakeups += 1;
                    if self.wake_failures.len() >= KEPT_WAKE_FAILURES {
                        self.wake_failures.pop_front();
                    }
                    self.wake_failures.push_back(WakeFailure { contact: id.clone(), at, error });
                }
                Ok(false)
            }
        }
    }

    /// Approves an effect held for approval at the host's clock, as a step
    /// ([`Engine::approve`](nurture::engine::Engine::approve)): the held outbox row takes
    /// the decided effect (pending for delivery when it is ready, with its edited
    /// params), and what the approval caused is filed like any step's effects. `false`
    /// when the contact holds no such effect.
    ///
    /// # Errors
    ///
    /// As [`Error`].
    pub fn approve(&mut self, contact: &ContactId, key: IdempotencyKey) -> Result<bool, Error> {
        let clock = self.clock;
        let keep = self.scheduled.get(contact).copied();
        let outcome = self.step(contact, |engine, stored, scratch| {
            let approved = engine.approve(&mut stored.state, &stored.contact, key, clock, scratch)?;
            Ok(approved.unwrap_or_else(|| outcome_with_wake(keep)))
        })?;
        let Some(approved) = outcome.effects.iter().find(|e| e.key == key) else {
            return Ok(false);
        };
        let status = match approved.status {
            Status::Ready => OutboxStatus::Pending,
            _ => OutboxStatus::Held,
        };
        let result = self.store.resolve_held(approved, status);
        self.guard(result)?;
        Ok(true)
    }

    /// Rejects an effect held for approval, recording `reason`. `false` when the contact
    /// holds no such effect.
    ///
    /// # Errors
    ///
    /// As [`Error`].
    pub fn reject(&mut self, contact: &ContactId, key: IdempotencyKey, reason: &str) -> Result<bool, Error> {
        let mut rejected = false;
        let keep = self.scheduled.get(contact).copied();
        let _ = self.step(contact, |engine, stored, _| {
            rejected = engine.reject(&mut stored.state, key).is_some();
            Ok(outcome_with_wake(keep))
        })?;
        if rejected {
            let result = self
                .store
                .conn
                .prepare_cached(
                    "UPDATE outbox SET status = 'rejected', last_error = ?2, done_ms = ?3 WHERE key = ?1 AND status = 'held'",
                )
                .and_then(|mut s| s.execute(params![key.to_string(), reason, wall_ms()]))
                .map_err(Error::from);
            self.guard(result)?;
        }
        Ok(rejected)
    }

    /// Replaces the program; states are carried over as contacts are loaded. Follow with
    /// [`SqliteHost::reschedule_all`] so that rules the new program starts by time get
    /// their wake-ups.
    pub fn replace_engine(&mut self, engine: Arc<Engine>) {
        self.store.set_program(engine.program().clone());
        self.engine = engine;
    }

    /// Adopts every contact's state under the current program and computes its wake-up
    /// afresh (after a program change). Returns how many contacts were visited.
    ///
    /// # Errors
    ///
    /// As [`Error`].
    pub fn reschedule_all(&mut self) -> Result<usize, Error> {
        let ids = self.store.contact_ids()?;
        let clock = self.clock;
        for id in &ids {
            let _ = self.step(id, |engine, stored, _| {
                Ok(outcome_with_wake(engine.wake_after(&stored.state, &stored.contact, clock)))
            })?;
        }
        Ok(ids.len())
    }

    /// Commits the open group now (if any) and delivers from the outbox.
    ///
    /// # Errors
    ///
    /// A database failure; the group is rolled back.
    pub fn flush(&mut self) -> Result<(), Error> {
        self.commit()?;
        if self.options.deliver_on_commit {
            self.deliver_into_group(wall_ms())?;
            self.commit()?;
        }
        Ok(())
    }

    /// Commits the open group if it has waited `max_latency`; for a host whose inputs
    /// pause (call it from its idle loop). Returns whether it committed.
    ///
    /// # Errors
    ///
    /// As [`SqliteHost::flush`].
    pub fn tick(&mut self) -> Result<bool, Error> {
        match self.open {
            Some((_, since)) if since.elapsed() >= self.options.max_latency => {
                self.flush()?;
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    /// Delivers the outbox's pending effects whose next attempt is due by the wall
    /// clock, in commit order; see [`SqliteHost::deliver_pending_at`].
    ///
    /// # Errors
    ///
    /// As [`SqliteHost::deliver_pending_at`].
    pub fn deliver_pending(&mut self) -> Result<usize, Error> {
        self.deliver_pending_at(wall_ms())
    }

    /// Delivers the outbox's pending effects whose next attempt is due at `now_ms` (Unix
    /// milliseconds), in commit order: each is handed to the [`Delivery`], then marked
    /// delivered; a failure is retried after the policy's backoff, and given up
    /// (`dead`, with the error) after its attempts. The marks are committed at the end
    /// (a crash before that delivers those effects again: at least once). Returns how
    /// many were delivered. (After an automatic group commit, the marks are not
    /// committed on their own but with the next group: one fsync fewer per group.)
    ///
    /// # Errors
    ///
    /// A database failure (the marks are rolled back, so those effects are delivered
    /// again), or a damaged outbox row.
    pub fn deliver_pending_at(&mut self, now_ms: i64) -> Result<usize, Error> {
        // Only what is committed: the open group's effects wait for its commit.
        self.commit()?;
        let delivered = self.deliver_into_group(now_ms)?;
        self.commit()?;
        Ok(delivered)
    }

    /// Delivers committed pending effects, writing the marks in a new open group (left
    /// open). Must be called with no group open, so that only committed effects are
    /// selected.
    fn deliver_into_group(&mut self, now_ms: i64) -> Result<usize, Error> {
        debug_assert!(self.open.is_none());
        let mut delivered = 0;
        loop {
            let batch = {
                let mut stmt = self.store.conn.prepare_cached(
                    "SELECT seq, contact, effect, attempts FROM outbox
                     WHERE status = 'pending' AND next_attempt_ms <= ?1 ORDER BY seq LIMIT 512",
                )?;
                let rows = stmt.query_map(params![now_ms], |r| {
                    Ok((
                        r.get::<_, i64>(0)?,
                        r.get::<_, String>(1)?,
                        r.get::<_, String>(2)?,
                        r.get::<_, u32>(3)?,
                    ))
                })?;
                rows.collect::<Result<Vec<_>, _>>()?
            };
            if batch.is_empty() {
                break;
            }
            self.begin()?;
            let result = self.deliver_batch(&batch, now_ms, &mut delivered);
            self.guard(result)?;
        }
        Ok(delivered)
    }

    fn deliver_batch(
        &mut self,
        batch: &[(i64, String, String, u32)],
        now_ms: i64,
        delivered: &mut usize,
    ) -> Result<(), Error> {
        for (seq, contact, json, attempts) in batch {
            let effect = decode_effect(contact, json)?;
            match self.delivery.deliver(&effect) {
                Ok(()) => {
                    self.store
                        .conn
                        .prepare_cached("UPDATE outbox SET status = 'delivered', attempts = ?2, done_ms = ?3 WHERE seq = ?1")?
                        .execute(params![seq, attempts + 1, wall_ms()])?;
                    self.stats.delivered += 1;
                    *delivered += 1;
                }
                Err(e) => {
                    self.stats.failures += 1;
                    let attempts = attempts + 1;
                    if attempts >= self.options.retry.max_attempts {
                        self.stats.dead += 1;
                        self.store
                            .conn
                            .prepare_cached(
                                "UPDATE outbox SET status = 'dead', attempts = ?2, done_ms = ?3,
                                 last_error = ?4 WHERE seq = ?1",
                            )?
                            .execute(params![
                                seq,
                                attempts,
                                now_ms,
                                format!("gave up after {attempts} attempts: {e}")
                            ])?;
                    } else {
                        let wait =
                            self.options.retry.backoff(attempts).as_millis().min(i64::MAX as u128) as i64;
                        self.store
                            .conn
                            .prepare_cached(
                                "UPDATE outbox SET attempts = ?2, next_attempt_ms = ?3, last_error = ?4 WHERE seq = ?1",
                            )?
                            .execute(params![seq, attempts, now_ms.saturating_add(wait), e.to_string()])?;
                    }
                }
            }
        }
        Ok(())
    }

    /// Puts a given-up (`dead`) effect back to pending, for another round of attempts.
    /// `false` when no dead effect has this key.
    ///
    /// # Errors
    ///
    /// A database failure.
    pub fn retry_dead(&mut self, key: IdempotencyKey) -> Result<bool, Error> {
        self.commit()?;
        let n = self.store.conn.execute(
            "UPDATE outbox SET status = 'pending', attempts = 0, next_attempt_ms = 0 WHERE key = ?1 AND status = 'dead'",
            params![key.to_string()],
        )?;
        Ok(n == 1)
    }

    /// Deletes delivered and rejected effects finished before `before_ms` (Unix
    /// milliseconds). Their keys no longer de-duplicate: keep them longer than inputs
    /// can be redelivered. Returns how many were deleted.
    ///
    /// # Errors
    ///
    /// A database failure.
    pub fn purge_done(&mut self, before_ms: i64) -> Result<usize, Error> {
        self.commit()?;
        Ok(self.store.conn.execute(
            "DELETE FROM outbox WHERE status IN ('delivered', 'rejected') AND done_ms < ?1",
            params![before_ms],
        )?)
    }

    /// Commits the open group, with the clock and cursor.
    fn commit(&mut self) -> Result<(), Error> {
        if self.open.is_none() {
            return Ok(());
        }
        let result = self
            .store
            .set_meta(CLOCK, &self.clock.to_string())
            .and_then(|()| self.store.set_meta(CURSOR, &self.cursor.to_string()))
            .and_then(|()| Ok(self.store.conn.execute_batch("COMMIT")?));
        match result {
            Ok(()) => {
                self.open = None;
                self.stats.commits += 1;
                Ok(())
            }
            Err(e) => Err(self.rollback(e)),
        }
    }

    /// Rolls back the open group and reloads what is committed; returns `error`.
    fn rollback(&mut self, error: Error) -> Error {
        let _ = self.store.conn.execute_batch("ROLLBACK");
        self.open = None;
        let start = self.clock;
        match self.reload(start) {
            Ok(()) => error,
            // The reload's own failure is reported after the first one.
            Err(second) => Error::Sqlite(format!("{error}; then reloading failed: {second}")),
        }
    }

    /// A database result inside the open group: a failure rolls the group back.
    fn guard<T>(&mut self, result: Result<T, Error>) -> Result<T, Error> {
        match result {
            Ok(v) => Ok(v),
            Err(e) if e.is_database_failure() => Err(self.rollback(e)),
            Err(e) => Err(e),
        }
    }

    fn begin(&mut self) -> Result<(), Error> {
        if self.open.is_none() {
            self.store.conn.execute_batch("BEGIN IMMEDIATE")?;
            self.open = Some((0, Instant::now()));
        }
        Ok(())
    }

    /// Counts a step; commits when the group is full or has waited long enough.
    fn stepped(&mut self) -> Result<(), Error> {
        if let Some((steps, since)) = &mut self.open {
            *steps += 1;
            if *steps >= self.options.group_size || since.elapsed() >= self.options.max_latency {
                self.commit()?;
                if self.options.deliver_on_commit {
                    self.deliver_into_group(wall_ms())?;
                }
            }
        }
        Ok(())
    }

    /// Runs `f` on a contact (adopting its state if the program changed) and writes
    /// state, wake-up and effects in the open group.
    fn step(
        &mut self,
        id: &ContactId,
        mut f: impl FnMut(&Engine, &mut StoredContact, &mut EngineScratch) -> Result<Outcome, EngineError>,
    ) -> Result<Outcome, Error> {
        self.begin()?;
        let loaded = self.store.read(id);
        let loaded = self.guard(loaded)?;
        let Some(loaded) = loaded else {
            return Err(Error::UnknownContact(id.as_str().to_string()));
        };
        let version = loaded.version;
        let mut stored = loaded.value;
        let before: ContactState = stored.state.clone();
        if !self.engine.fits(&stored.state) {
            stored.state = self.engine.adopt(stored.state, &stored.contact, self.clock);
        }
        let outcome = f(&self.engine, &mut stored, &mut self.scratch)?;
        if let Some(contact) = &outcome.contact {
            stored.contact = contact.clone();
        }
        self.file(id, &stored, Some((version, &before)), &outcome.effects, outcome.next_wake)?;
        self.stepped()?;
        Ok(outcome)
    }

    /// Files a step in the open transaction: the contact's state (compare-and-swap on
    /// `expected`, the version and state it was read at; `None` for a new contact), its
    /// effects in the outbox (ready ones pending, the others held) and its timer; then
    /// schedules the wake-up.
    fn file(
        &mut self,
        id: &ContactId,
        stored: &StoredContact,
        expected: Option<(u64, &ContactState)>,
        effects: &[nurture::engine::Effect],
        wake: Option<Timestamp>,
    ) -> Result<(), Error> {
        let now_ms = wall_ms();
        let result = (|| {
            self.store.write(id, stored, expected.map(|(v, _)| v), expected.map(|(_, s)| s))?;
            let mut enqueued = 0;
            for effect in effects {
                let status = match effect.status {
                    Status::Ready => OutboxStatus::Pending,
                    _ => OutboxStatus::Held,
                };
                enqueued += u64::from(self.store.enqueue(effect, status, now_ms)?);
            }
            self.store.write_timer(id, wake)?;
            Ok(enqueued)
        })();
        let enqueued = self.guard(result)?;
        self.stats.enqueued += enqueued;
        self.schedule(id, wake);
        Ok(())
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

fn outcome_with_wake(next_wake: Option<Timestamp>) -> Outcome {
    let mut outcome = Outcome::default();
    outcome.next_wake = next_wake;
    outcome
}

impl<D: Delivery> Drop for SqliteHost<D> {
    fn drop(&mut self) {
        // An orderly shutdown commits the open group; its effects are delivered on the
        // next open.
        let _ = self.commit();
    }
}
