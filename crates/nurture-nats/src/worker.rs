//! A worker process: holds leases on its share of the partitions and runs each held
//! partition's inputs through the engine.

use std::collections::{BTreeSet, HashMap};
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_nats::jetstream::{self, consumer};
use async_nats::HeaderMap;
use bytes::Bytes;
use futures_util::StreamExt;
use nurture::engine::Engine;
use nurture::engine::{EngineError, EngineScratch, Outcome, Status};
use nurture::scoring::ScoreError;
use nurture::{Contact, ContactId, Event, Timestamp};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::store::Record;
use crate::wire::headers;
use crate::{Error, Input, KvStore, Lease, Leases, Names};

/// How a worker runs.
#[derive(Clone, Debug)]
pub struct WorkerConfig {
    /// The server(s), as `async_nats::connect` takes them.
    pub url: String,
    /// The deployment.
    pub names: Names,
    /// This worker's name, unique among live workers.
    pub worker: String,
    /// How long a lease lasts without renewal: a dead worker's partitions are taken over
    /// within about this plus `renew_every`.
    pub lease_ttl: Duration,
    /// How often leases are renewed and the partitions rebalanced.
    pub renew_every: Duration,
    /// A worker stops writing for a partition this long before its lease expires (covers
    /// the time a write takes to reach the server, and clock drift between machines).
    pub safety_margin: Duration,
    /// The checkpoint is written after this many inputs (and at least every
    /// `renew_every`).
    pub checkpoint_every: u64,
    /// Fault injection for crash tests, `None` in production: the process aborts right
    /// after the effects of this many steps (counting steps with effects) are
    /// acknowledged and before those steps' state is written, the one crash instant
    /// after which the server's de-duplication, not the stored input sequence, is what
    /// keeps effects from repeating.
    pub crash_after_effects: Option<u64>,
}

impl WorkerConfig {
    /// Defaults: leases of 3 s renewed every 500 ms with a 1 s margin, a checkpoint every
    /// 200 inputs.
    pub fn new(url: impl Into<String>, names: Names, worker: impl Into<String>) -> WorkerConfig {
        WorkerConfig {
            url: url.into(),
            names,
            worker: worker.into(),
            lease_ttl: Duration::from_secs(3),
            renew_every: Duration::from_millis(500),
            safety_margin: Duration::from_secs(1),
            checkpoint_every: 200,
            crash_after_effects: None,
        }
    }
}

/// A worker: connects, then keeps a fair share of the partitions (`ceil(P / live
/// workers)`), taking over expired leases and handing extra ones back when workers join.
///
/// ```no_run
/// use std::sync::Arc;
/// use nurture::engine::Engine;
/// use nurture::Program;
/// use nurture_nats::{Names, Worker, WorkerConfig};
///
/// # async fn run(rules: &str) -> Result<(), Box<dyn std::error::Error>> {
/// let engine = Arc::new(Engine::new(Arc::new(Program::from_json(rules)?)));
/// let config = WorkerConfig::new("nats://127.0.0.1:4222", Names::new("nurture", 12)?, "worker-1");
/// Worker::new(config, engine).run(async { let _ = tokio::signal::ctrl_c().await; }).await?;
/// # Ok(())
/// # }
/// ```
pub struct Worker {
    config: WorkerConfig,
    engine: Arc<Engine>,
}

struct Held {
    lease: Lease,
    valid_until: Arc<Mutex<Instant>>,
    stop: watch::Sender<bool>,
    task: Option<JoinHandle<Result<(), Error>>>,
}

struct Shared {
    js: jetstream::Context,
    store: KvStore,
    engine: Arc<Engine>,
    names: Names,
    checkpoint_every: u64,
    checkpoint_interval: Duration,
    crash_countdown: Option<std::sync::atomic::AtomicU64>,
}

impl Worker {
    /// A worker with this configuration and engine (the same program on every worker).
    pub fn new(config: WorkerConfig, engine: Arc<Engine>) -> Worker {
        Worker { config, engine }
    }

    /// Runs until `shutdown` completes, then stops its partitions (writing their
    /// checkpoints), releases its leases and returns.
    ///
    /// # Errors
    ///
    /// [`Error::Nats`] when the server cannot be reached at the start or the deployment's
    /// streams and buckets are missing; later failures are retried.
    pub async fn run(self, shutdown: impl Future<Output = ()>) -> Result<(), Error> {
        let c = &self.config;
        let client = async_nats::ConnectOptions::new()
            .retry_on_initial_connect()
            .max_reconnects(None)
            .connect(c.url.as_str())
            .await
            .map_err(Error::nats)?;
        let js = jetstream::new(client);
        let store = KvStore::open(js.clone(), c.names.clone(), self.engine.program().clone()).await?;
        let lease_kv = js.get_key_value(c.names.lease_bucket()).await.map_err(Error::nats)?;
        let leases = Leases::new(lease_kv, c.worker.clone(), c.lease_ttl);
        let shared = Arc::new(Shared {
            js,
            store,
            engine: self.engine.clone(),
            names: c.names.clone(),
            checkpoint_every: c.checkpoint_every.max(1),
            checkpoint_interval: c.renew_every,
            crash_countdown: c.crash_after_effects.map(std::sync::atomic::AtomicU64::new),
        });
        let partitions = c.names.partitions();
        let offset = nurture::engine::shard_of(&c.worker, partitions);
        let mut held: HashMap<u32, Held> = HashMap::new();
        let mut tick = tokio::time::interval(c.renew_every);
        tokio::pin!(shutdown);
        loop {
            tokio::select! {
                () = &mut shutdown => break,
                _ = tick.tick() => {}
            }
            if let Err(e) = leases.heartbeat().await {
                eprintln!("{}: heartbeat: {e}", c.worker);
            }
            // Renew; drop what was taken over.
            let mut lost = Vec::new();
            for (p, h) in held.iter_mut() {
                match leases.renew(&mut h.lease).await {
                    Ok(()) => set_valid(&h.valid_until, &h.lease, c.safety_margin),
                    Err(Error::LeaseLost(_)) => lost.push(*p),
                    Err(e) => eprintln!("{}: renewing partition {p}: {e}", c.worker),
                }
            }
            for p in lost {
                if let Some(h) = held.remove(&p) {
                    eprintln!("{}: partition {p} was taken over; stopping it", c.worker);
                    let _ = h.stop.send(true);
                    if let Some(task) = h.task {
                        let _ = task.await;
                    }
                }
            }
            // Restart partitions whose task ended (an error: a lost race, the server
            // gone) while the lease is still valid; they reload from the bucket.
            for (p, h) in held.iter_mut() {
                if h.task.as_ref().is_some_and(JoinHandle::is_finished) {
                    if let Some(task) = h.task.take() {
                        match task.await {
                            Ok(Ok(())) => {}
                            Ok(Err(e)) => eprintln!("{}: partition {p} stopped: {e}", c.worker),
                            Err(e) => eprintln!("{}: partition {p} panicked: {e}", c.worker),
                        }
                    }
                }
                if h.task.is_none() && h.lease.valid(c.safety_margin) {
                    h.task = Some(spawn_partition(&shared, *p, &h.valid_until, h.stop.subscribe()));
                }
            }
            // Balance: a fair share each.
            let live = match leases.live_workers().await {
                Ok(n) => n.max(1),
                Err(e) => {
                    eprintln!("{}: counting workers: {e}", c.worker);
                    continue;
                }
            };
            let target = (partitions as usize).div_ceil(live);
            while held.len() > target {
                let Some(&p) = held.keys().max() else { break };
                if let Some(h) = held.remove(&p) {
                    let _ = h.stop.send(true);
                    if let Some(task) = h.task {
                        let _ = task.await;
                    }
                    if let Err(e) = leases.release(h.lease).await {
                        eprintln!("{}: releasing partition {p}: {e}", c.worker);
                    }
                }
            }
            for i in 0..partitions {
                if held.len() >= target {
                    break;
                }
                let p = (offset + i) % partitions;
                if held.contains_key(&p) {
                    continue;
                }
                match leases.try_acquire(p).await {
                    Ok(Some(lease)) => {
                        let valid_until = Arc::new(Mutex::new(Instant::now()));
                        set_valid(&valid_until, &lease, c.safety_margin);
                        let (stop, stopped) = watch::channel(false);
                        let task = Some(spawn_partition(&shared, p, &valid_until, stopped));
                        held.insert(p, Held { lease, valid_until, stop, task });
                    }
                    Ok(None) => {}
                    Err(e) => {
                        eprintln!("{}: acquiring partition {p}: {e}", c.worker);
                        break;
                    }
                }
            }
        }
        for (p, h) in held.drain() {
            let _ = h.stop.send(true);
            if let Some(task) = h.task {
                let _ = task.await;
            }
            if let Err(e) = leases.release(h.lease).await {
                eprintln!("{}: releasing partition {p}: {e}", c.worker);
            }
        }
        let _ = leases.leave().await;
        Ok(())
    }
}

fn set_valid(valid_until: &Mutex<Instant>, lease: &Lease, margin: Duration) {
    let until = lease.expires.checked_sub(margin).unwrap_or_else(Instant::now);
    if let Ok(mut v) = valid_until.lock() {
        *v = until;
    }
}

fn spawn_partition(
    shared: &Arc<Shared>,
    partition: u32,
    valid_until: &Arc<Mutex<Instant>>,
    stop: watch::Receiver<bool>,
) -> JoinHandle<Result<(), Error>> {
    let task = Partition {
        shared: shared.clone(),
        partition,
        valid_until: valid_until.clone(),
        contacts: HashMap::new(),
        timers: BTreeSet::new(),
        scratch: EngineScratch::default(),
        republished: 0,
    };
    tokio::spawn(task.run(stop))
}

/// One held partition: its contacts (a cache of the bucket, with revisions) and timers.
struct Partition {
    shared: Arc<Shared>,
    partition: u32,
    valid_until: Arc<Mutex<Instant>>,
    contacts: HashMap<ContactId, (Record, u64)>,
    timers: BTreeSet<(Timestamp, ContactId)>,
    scratch: EngineScratch,
    /// Effects published again after a takeover and dropped by the server as duplicates.
    republished: u64,
}

impl Partition {
    fn fence(&self) -> Result<(), Error> {
        let valid = self.valid_until.lock().map(|v| Instant::now() < *v).unwrap_or(false);
        if valid {
            Ok(())
        } else {
            Err(Error::LeaseLost(self.partition))
        }
    }

    async fn run(mut self, mut stop: watch::Receiver<bool>) -> Result<(), Error> {
        let p = self.partition;
        for loaded in self.shared.store.load_partition(p).await? {
            let id = loaded.record.contact.id().clone();
            if let Some(at) = loaded.record.wake {
                self.timers.insert((at, id.clone()));
            }
            self.contacts.insert(id, (loaded.record, loaded.revision));
        }
        let (mut checkpoint, mut checkpoint_revision) = match self.shared.store.checkpoint(p).await? {
            Some((seq, revision)) => (seq, Some(revision)),
            None => (0, None),
        };
        let names = &self.shared.names;
        let stream = self.shared.js.get_stream(names.input_stream()).await.map_err(Error::nats)?;
        let deliver_policy = match checkpoint {
            0 => consumer::DeliverPolicy::All,
            seq => consumer::DeliverPolicy::ByStartSequence { start_sequence: seq + 1 },
        };
        let consumer = stream
            .create_consumer(consumer::pull::OrderedConfig {
                filter_subject: names.input_subject(p),
                deliver_policy,
                ..Default::default()
            })
            .await
            .map_err(Error::nats)?;
        let mut messages = consumer.messages().await.map_err(Error::nats)?;
        let mut handled = checkpoint;
        let mut last_write = Instant::now();
        let interval = self.shared.checkpoint_interval;
        loop {
            tokio::select! {
                biased;
                _ = stop.changed() => break,
                message = messages.next() => {
                    let Some(message) = message else {
                        return Err(Error::Nats("the input consumer ended".into()));
                    };
                    let message = message.map_err(Error::nats)?;
                    let seq = message.info().map_err(Error::nats)?.stream_sequence;
                    self.handle(seq, &message.payload, message.headers.as_ref()).await?;
                    handled = seq;
                }
                () = tokio::time::sleep(interval), if handled > checkpoint => {}
            }
            let due = handled - checkpoint >= self.shared.checkpoint_every
                || (handled > checkpoint && last_write.elapsed() >= interval);
            if due {
                self.fence()?;
                checkpoint_revision =
                    Some(self.shared.store.save_checkpoint(p, handled, checkpoint_revision).await?);
                checkpoint = handled;
                last_write = Instant::now();
            }
        }
        if handled > checkpoint && self.fence().is_ok() {
            self.shared.store.save_checkpoint(p, handled, checkpoint_revision).await?;
        }
        if self.republished > 0 {
            eprintln!(
                "partition {p}: re-publishes dropped by the server as duplicates: {}",
                self.republished
            );
        }
        Ok(())
    }

    async fn handle(&mut self, seq: u64, payload: &Bytes, headers: Option<&HeaderMap>) -> Result<(), Error> {
        let published = headers.and_then(|h| h.get(headers::PUBLISHED)).map(|v| v.as_str().to_string());
        let input = match Input::parse(payload) {
            Ok(input) => input,
            Err(e) => return self.dead_letter(seq, payload, published, &e).await,
        };
        match &input {
            Input::Event { .. } => match input.read_event(self.shared.engine.program().schema()) {
                Ok(Some((event, contact))) => {
                    self.fire_timers(event.at()).await?;
                    if let Err(e) = self.step_event(seq, &event, contact, published.as_deref()).await? {
                        return self.dead_letter(seq, payload, published, &e).await;
                    }
                    Ok(())
                }
                Ok(None) => Ok(()),
                Err(e) => self.dead_letter(seq, payload, published, &e).await,
            },
            Input::Tick { at } => self.fire_timers(*at).await,
            Input::End { at } => {
                self.fire_timers(*at).await?;
                self.fence()?;
                self.shared.store.mark_done(self.partition, seq).await
            }
        }
    }

    /// Handles every wake-up due by `now`, in order of instant, then contact id.
    async fn fire_timers(&mut self, now: Timestamp) -> Result<(), Error> {
        while let Some((at, id)) = self.timers.first().cloned() {
            if at > now {
                break;
            }
            self.timers.pop_first();
            let Some((record, revision)) = self.contacts.get(&id) else { continue };
            if record.wake != Some(at) {
                continue; // superseded by a later step of the contact
            }
            let (mut record, revision) = (record.clone(), *revision);
            let engine = self.shared.engine.clone();
            let outcome = engine.handle_timeout(&mut record.state, &record.contact, at, &mut self.scratch);
            match outcome {
                Ok(outcome) => self.commit(record, revision, outcome, None).await?,
                // A wake-up older than the contact's last change has nothing to do (as in
                // the core runtime); it is dropped.
                Err(EngineError::Score(ScoreError::OutOfOrder)) => {
                    if let Some((r, _)) = self.contacts.get_mut(&id) {
                        r.wake = None;
                    }
                }
                Err(e) => return Err(Error::Corrupt { key: id.to_string(), message: e.to_string() }),
            }
        }
        Ok(())
    }

    /// Applies an event; the inner error is a refusal (the input goes to dead letters).
    async fn step_event(
        &mut self,
        seq: u64,
        event: &Event,
        contact: Option<Contact>,
        published: Option<&str>,
    ) -> Result<Result<(), Error>, Error> {
        let engine = self.shared.engine.clone();
        let (mut record, revision, created) = match self.contacts.get(event.contact()) {
            // Applied before a crash, after the checkpoint that was read.
            Some((record, _)) if record.seq >= seq => return Ok(Ok(())),
            Some((record, revision)) => (record.clone(), Some(*revision), None),
            None => match contact {
                // A new contact is created as a step (`Engine::create`), as the core
                // runtime does: its creation effects go out with the event's, first.
                Some(contact) => match engine.create(&contact, event.at(), &mut self.scratch) {
                    Ok((state, created)) => {
                        let contact = created.contact.clone().unwrap_or(contact);
                        (Record { contact, state, seq: 0, wake: None, version: 0 }, None, Some(created))
                    }
                    Err(e) => return Ok(Err(Error::BadInput(format!("refused: {e}")))),
                },
                None => {
                    return Ok(Err(Error::BadInput(format!(
                        "an event for contact `{}`, which is not stored, without its attributes",
                        event.contact()
                    ))))
                }
            },
        };
        if !engine.fits(&record.state) {
            record.state = engine.adopt(record.state, &record.contact, event.at());
        }
        match engine.handle_event(&mut record.state, &record.contact, event, &mut self.scratch) {
            Ok(mut outcome) => {
                if let Some(created) = created {
                    let mut effects = created.effects;
                    effects.append(&mut outcome.effects);
                    outcome.effects = effects;
                    if outcome.contact.is_none() {
                        outcome.contact = created.contact;
                    }
                }
                record.seq = seq;
                self.commit(record, revision.unwrap_or(0), outcome, published).await?;
                Ok(Ok(()))
            }
            Err(e) => Ok(Err(Error::BadInput(format!("refused: {e}")))),
        }
    }

    /// Publishes a step's effects, then writes the contact (compare-and-swap).
    async fn commit(
        &mut self,
        mut record: Record,
        revision: u64,
        outcome: Outcome,
        published: Option<&str>,
    ) -> Result<(), Error> {
        if let Some(contact) = outcome.contact {
            record.contact = contact;
        }
        let subject = self.shared.names.effect_subject(self.partition);
        let mut acks = Vec::new();
        for effect in outcome.effects.iter().filter(|e| e.status == Status::Ready) {
            let mut h = HeaderMap::new();
            h.insert(headers::MSG_ID, effect.key.to_string().as_str());
            h.insert(headers::CONTACT, effect.contact.as_str());
            if let Some(published) = published {
                h.insert(headers::PUBLISHED, published);
            }
            let payload = serde_json::to_vec(effect).map_err(|e| Error::BadInput(e.to_string()))?;
            self.fence()?;
            let ack = self
                .shared
                .js
                .publish_with_headers(subject.clone(), h, Bytes::from(payload))
                .await
                .map_err(Error::nats)?;
            acks.push(ack);
        }
        let published_any = !acks.is_empty();
        for ack in acks {
            if ack.await.map_err(Error::nats)?.duplicate {
                self.republished += 1;
            }
        }
        if let (true, Some(countdown)) = (published_any, &self.shared.crash_countdown) {
            use std::sync::atomic::Ordering;
            let before = countdown.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1));
            if before == Ok(1) {
                eprintln!("fault injection: aborting between a step's effects and its state write");
                std::process::abort();
            }
        }
        record.wake = outcome.next_wake;
        record.version += 1;
        self.fence()?;
        let expected = (record.version > 1).then_some(revision);
        let revision = self.shared.store.save(&record, expected).await?;
        let id = record.contact.id().clone();
        if let Some(at) = record.wake {
            self.timers.insert((at, id.clone()));
        }
        self.contacts.insert(id, (record, revision));
        Ok(())
    }

    async fn dead_letter(
        &self,
        seq: u64,
        payload: &Bytes,
        published: Option<String>,
        error: &Error,
    ) -> Result<(), Error> {
        let mut h = HeaderMap::new();
        h.insert(headers::MSG_ID, format!("dead-{seq}").as_str());
        h.insert(headers::ERROR, error.to_string().replace(['\r', '\n'], " ").as_str());
        if let Some(published) = published {
            h.insert(headers::PUBLISHED, published.as_str());
        }
        self.fence()?;
        let subject = self.shared.names.dead_subject(self.partition);
        self.shared
            .js
            .publish_with_headers(subject, h, payload.clone())
            .await
            .map_err(Error::nats)?
            .await
            .map_err(Error::nats)?;
        Ok(())
    }
}
