//! The main demonstration: a B2B marketing funnel run through the host runtime, or, with
//! `--cdnow`, the real CDNOW purchase stream.
//!
//! ```text
//! cargo run --release --example quickstart [-- --contacts N --days N --seed N]
//! cargo run --release --example quickstart -- --cdnow [PATH]
//!     [--memory | --db PATH] [--group N] [--durability full|normal]
//! ```
//!
//! **Stores.** By default the runtime is the durable SQLite host of `nurture-sqlite`
//! ([`SqliteHost`]): every step's state, wake-up and effects are committed together,
//! 256 steps per transaction (`--group 1` commits each step on its own), in a fresh
//! database file under `target/quickstart/` (`--db` names another), named in the output
//! with its size. `--memory` runs the in-memory [`Runtime`] over a [`MemoryStore`]
//! instead; the decisions and every figure but the throughput are the same.
//!
//! **The funnel** (the default). 10,000 seeded contacts spend 90 simulated days in the
//! funnel of `examples/b2b_rules.json`: about 320,000 events (visits in sessions, forms,
//! downloads, the weekly nurture email, webinars; a few delivered twice). Every event goes
//! through the host (SQLite or, with `--memory`, [`Runtime`]) in time order, on a virtual clock: the
//! wake-ups due before an event (decay crossing a threshold or a segment's level, a
//! counted visit leaving its window, an inactivity deadline) are handled first, and those
//! up to day 90 at the end. Each contact is added at its first event. The delivery counts
//! effects instead of performing them. The summary: events, duplicates, wake-ups, effects
//! by kind, MQLs and the median time from a contact's first event to its MQL, segment
//! sizes, throughput, and one MQL's score explained point by point. Beside the rules runs
//! the onboarding journey of `examples/onboarding_journey.json` (waits in local time, a
//! wait for a pricing visit, a branch on the fit band, an A/B split with a 10% holdout,
//! MQL as its goal, an exit on unsubscribe); its funnel is printed, and the output ends
//! with one JSON line: events, effects, MQLs and the journey's funnel.
//!
//! **CDNOW** (`--cdnow`). The 69,659 purchases of 23,570 CDNOW customers (1997-01 to
//! 1998-06; real data kept outside the repository, by default at
//! `../shared/data/cdnow/CDNOW_master.txt`) are replayed the same way through a small
//! rule set written below: a decaying engagement score, a `vip` segment and a win-back
//! email after 60 days without a purchase. Without the file the example says so and
//! exits successfully.
//!
//! Progress goes to stderr every 10% of the events; the summary to stdout.

#[path = "common/policy_report.rs"]
mod policy_report;
#[path = "common/workload.rs"]
mod workload;

#[path = "common/journey_report.rs"]
mod journey_report;

use std::collections::{BTreeMap, HashMap};
use std::error::Error;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use nurture::def::{ActionDef, RuleSetDef};
use nurture::engine::{Effect, EffectKind, Engine, Outcome};
use nurture::host::{ContactStore, Delivery, DeliveryError, MemoryStore, Runtime, StoredContact};
use nurture::scoring::Crossing;
use nurture::{Contact, ContactId, Event, Program, Timestamp};
use nurture_sqlite::{Durability, HostOptions, SqliteHost};

type Result<T> = std::result::Result<T, Box<dyn Error>>;

const DAY: i64 = 86_400;

/// The score and threshold of the MQL hand-off in `b2b_rules.json`.
const MQL_SCORE: &str = "lead_score";
const MQL_THRESHOLD: &str = "mql";

/// How many of the explained contact's most recent score changes are shown.
const LEDGER_SHOWN: usize = 12;

fn main() -> Result<()> {
    let options = match Options::parse() {
        Ok(options) => options,
        Err(message) => {
            eprintln!("{message}\n{USAGE}");
            std::process::exit(2);
        }
    };
    match &options.cdnow {
        Some(path) => cdnow(path, &options),
        None => funnel(&options),
    }
}

// ---------------------------------------------------------------------------------------
// Command line

const USAGE: &str = "usage: quickstart [--contacts N] [--days N] [--seed N] [STORE]\n       quickstart --cdnow [PATH] [STORE]\n\
     STORE: --memory | [--db PATH] [--group N] [--durability full|normal]";

struct Options {
    contacts: usize,
    days: i64,
    seed: u64,
    /// Replay CDNOW from this file instead of running the funnel.
    cdnow: Option<PathBuf>,
    /// The in-memory store instead of SQLite.
    memory: bool,
    /// The SQLite database (default: under `target/quickstart/`).
    db: Option<PathBuf>,
    /// Steps per SQLite transaction.
    group: usize,
    durability: Durability,
}

impl Options {
    fn parse() -> std::result::Result<Options, String> {
        let mut options = Options {
            contacts: 10_000,
            days: 90,
            seed: 42,
            cdnow: None,
            memory: false,
            db: None,
            group: 256,
            durability: Durability::Full,
        };
        let mut args = std::env::args().skip(1).peekable();
        while let Some(arg) = args.next() {
            match arg.as_str() {
                "--cdnow" => {
                    let path = args.next_if(|a| !a.starts_with("--"));
                    options.cdnow = Some(path.map_or_else(default_cdnow_path, PathBuf::from));
                }
                "--contacts" => options.contacts = number(&arg, args.next())?.max(1) as usize,
                "--days" => options.days = number(&arg, args.next())?.clamp(1, 3_650) as i64,
                "--seed" => options.seed = number(&arg, args.next())?,
                "--memory" => options.memory = true,
                "--db" => options.db = Some(PathBuf::from(args.next().ok_or("`--db` needs a path")?)),
                "--group" => options.group = number(&arg, args.next())?.max(1) as usize,
                "--durability" => {
                    options.durability = match args.next().as_deref() {
                        Some("full") => Durability::Full,
                        Some("normal") => Durability::Normal,
                        _ => return Err("`--durability` is `full` or `normal`".into()),
                    }
                }
                _ => return Err(format!("unknown argument `{arg}`")),
            }
        }
        Ok(options)
    }
}

/// The whole number after `flag`.
fn number(flag: &str, value: Option<String>) -> std::result::Result<u64, String> {
    let value = value.ok_or_else(|| format!("`{flag}` needs a value"))?;
    value.parse().map_err(|_| format!("`{flag} {value}`: not a whole number"))
}

/// `../shared/data/cdnow/CDNOW_master.txt`, beside the checkout.
fn default_cdnow_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/data/cdnow/CDNOW_master.txt")
}

// ---------------------------------------------------------------------------------------
// The host side: a delivery that counts, progress, and the replay loop

/// The host's delivery, reduced to counting: a real one would hand sends to the mailer,
/// owner notifications to the CRM, and so on.
#[derive(Default)]
struct Tally {
    /// Effects by section (`actions`, `segments`, ...) and kind within it.
    kinds: BTreeMap<(&'static str, String), u64>,
    /// Per rule id: how many times it fired (its first action was delivered).
    fired: HashMap<String, u64>,
    /// The first rule error, to show what went wrong.
    first_error: Option<String>,
    /// Sends delivered (each has the send policy's decision).
    sends: u64,
    /// The journeys' funnel, from their lifecycle effects.
    journeys: nurture::engine::Funnel,
}

impl Delivery for Tally {
    fn deliver(&mut self, effect: &Effect) -> std::result::Result<(), DeliveryError> {
        if effect.decision.is_some() {
            self.sends += 1;
        }
        match &effect.kind {
            EffectKind::Action { rule, index: 0, .. } => {
                *self.fired.entry(rule.as_str().to_string()).or_default() += 1;
            }
            EffectKind::RuleError { rule, message } if self.first_error.is_none() => {
                self.first_error = Some(format!("{rule}: {message}"));
            }
            _ => {}
        }
        self.journeys.record(effect);
        *self.kinds.entry(kind_of(&effect.kind)).or_default() += 1;
        Ok(())
    }
}

impl Tally {
    fn count(&self, section: &str, kind: &str) -> u64 {
        self.kinds.iter().filter(|((s, k), _)| *s == section && k == kind).map(|(_, n)| n).sum()
    }

    fn fired(&self, rule: &str) -> u64 {
        self.fired.get(rule).copied().unwrap_or(0)
    }
}

/// An effect's section of the summary and its kind within it.
fn kind_of(kind: &EffectKind) -> (&'static str, String) {
    match kind {
        EffectKind::Action { action, .. } => ("actions", action_name(action)),
        EffectKind::ThresholdCrossed { score, threshold, direction } => {
            let way = if *direction == Crossing::Up { "up" } else { "down" };
            ("threshold crossings", format!("{score}/{threshold} {way}"))
        }
        EffectKind::BandChanged { score, to, .. } => {
            ("band changes", format!("{score} -> {}", to.as_deref().unwrap_or("(none)")))
        }
        EffectKind::SegmentEntered { segment } => ("segments", format!("+{segment}")),
        EffectKind::SegmentExited { segment } => ("segments", format!("-{segment}")),
        EffectKind::RuleError { rule, .. } => ("rule errors", rule.to_string()),
        EffectKind::CascadeLimit { .. } => ("cascade limits", "cascade limit".to_string()),
        EffectKind::JourneyAction { action, .. } => ("journey actions", action_name(action)),
        journey if journey.name().starts_with("journey_") => ("journeys", journey.name().to_string()),
        other => ("other", format!("{other:?}")),
    }
}

/// An action's type as the document spells it; sends with their channel.
fn action_name(action: &ActionDef) -> String {
    let name = match action {
        ActionDef::Send { channel, .. } => return format!("send {channel}"),
        ActionDef::SetAttribute { .. } => "set_attribute",
        ActionDef::ClearAttribute { .. } => "clear_attribute",
        ActionDef::AddTag { .. } => "add_tag",
        ActionDef::RemoveTag { .. } => "remove_tag",
        ActionDef::AddToList { .. } => "add_to_list",
        ActionDef::RemoveFromList { .. } => "remove_from_list",
        ActionDef::SetLifecycleStage { .. } => "set_lifecycle_stage",
        ActionDef::AdjustScore { .. } => "adjust_score",
        ActionDef::NotifyOwner { .. } => "notify_owner",
        ActionDef::AssignOwner { .. } => "assign_owner",
        ActionDef::CrmWrite { .. } => "crm_write",
        ActionDef::EnrollJourney { .. } => "enroll_journey",
        ActionDef::RemoveFromJourney { .. } => "remove_from_journey",
        _ => "other",
    };
    name.to_string()
}

/// A line on stderr at every tenth of the events.
struct Progress {
    total: usize,
    next: usize,
    started: Instant,
}

impl Progress {
    fn new(total: usize) -> Progress {
        Progress { total, next: total.div_ceil(10), started: Instant::now() }
    }

    fn tick(&mut self, done: usize, clock: Timestamp) {
        if done < self.next && done < self.total {
            return;
        }
        eprintln!(
            "  {:>3}%  {:>9} events  simulated {}  {:>6.1} s",
            done * 100 / self.total.max(1),
            thousands(done as u64),
            day_of(clock),
            self.started.elapsed().as_secs_f64()
        );
        self.next += self.total.div_ceil(10);
    }
}

// ---------------------------------------------------------------------------------------
// The two hosts: the in-memory runtime and the durable SQLite host

/// What the summary needs from a host.
trait Host {
    fn has(&mut self, id: &ContactId) -> Result<bool>;
    fn advance_to(&mut self, now: Timestamp) -> Result<()>;
    fn add_contact(&mut self, contact: Contact) -> Result<()>;
    fn ingest(&mut self, event: &Event) -> Result<Outcome>;
    /// Commits and delivers what is pending.
    fn finish(&mut self) -> Result<()>;
    fn tally(&self) -> &Tally;
    /// Events, duplicates, wake-ups, effects delivered, effects held for approval.
    fn counts(&self) -> Result<[u64; 5]>;
    /// Every contact, read back from the store (after the timed run).
    fn snapshot(&mut self) -> Result<MemoryStore>;
    /// Where the contacts are, for the summary.
    fn describe(&self) -> Result<String>;
}

impl Host for Runtime<MemoryStore, Tally> {
    fn has(&mut self, id: &ContactId) -> Result<bool> {
        Ok(self.store().get(id).is_some())
    }
    fn advance_to(&mut self, now: Timestamp) -> Result<()> {
        Runtime::advance_to(self, now)?;
        Ok(())
    }
    fn add_contact(&mut self, contact: Contact) -> Result<()> {
        Ok(Runtime::add_contact(self, contact)?)
    }
    fn ingest(&mut self, event: &Event) -> Result<Outcome> {
        Ok(Runtime::ingest(self, event)?)
    }
    fn finish(&mut self) -> Result<()> {
        Ok(())
    }
    fn tally(&self) -> &Tally {
        self.delivery()
    }
    fn counts(&self) -> Result<[u64; 5]> {
        let s = self.stats();
        Ok([s.events, s.duplicates, s.timeouts, s.delivered, s.awaiting_approval])
    }
    fn snapshot(&mut self) -> Result<MemoryStore> {
        Ok(self.store().clone())
    }
    fn describe(&self) -> Result<String> {
        Ok("in memory (--memory)".to_string())
    }
}

impl Host for SqliteHost<Tally> {
    fn has(&mut self, id: &ContactId) -> Result<bool> {
        Ok(self.contains(id)?)
    }
    fn advance_to(&mut self, now: Timestamp) -> Result<()> {
        SqliteHost::advance_to(self, now)?;
        Ok(())
    }
    fn add_contact(&mut self, contact: Contact) -> Result<()> {
        Ok(SqliteHost::add_contact(self, contact)?)
    }
    fn ingest(&mut self, event: &Event) -> Result<Outcome> {
        Ok(SqliteHost::ingest(self, event)?)
    }
    fn finish(&mut self) -> Result<()> {
        self.flush()?;
        self.deliver_pending()?;
        Ok(())
    }
    fn tally(&self) -> &Tally {
        self.delivery()
    }
    fn counts(&self) -> Result<[u64; 5]> {
        let s = self.stats();
        // The outbox holds every effect not to deliver now (deferred, suppressed and
        // control sends too); those awaiting approval are the states' pending ones.
        let mut held = 0;
        for id in self.store().contact_ids()? {
            held += self.contact(&id)?.map_or(0, |c| c.state.pending().len() as u64);
        }
        Ok([s.events, s.duplicates, s.timeouts, s.delivered, held])
    }
    fn snapshot(&mut self) -> Result<MemoryStore> {
        let mut copy = MemoryStore::new();
        for id in self.store().contact_ids()? {
            let stored: StoredContact = self.contact(&id)?.ok_or("a listed contact is missing")?;
            copy.save(&id, stored, None)?;
        }
        Ok(copy)
    }
    fn describe(&self) -> Result<String> {
        let store = self.store();
        let path = store.path().map_or_else(|| "(in memory)".to_string(), |p| p.display().to_string());
        let bytes = store.size_bytes()?;
        let contacts = store.contact_count()?.max(1);
        Ok(format!(
            "SQLite at {path}: {} bytes, {} bytes per contact (contacts, timers, outbox, segments, scores)",
            thousands(bytes),
            thousands(bytes / contacts)
        ))
    }
}

/// Runs `run` on the host the options ask for: SQLite in a fresh file, or memory.
fn with_host(
    options: &Options,
    name: &str,
    engine: Arc<Engine>,
    start: Timestamp,
    run: impl FnOnce(&mut dyn Host) -> Result<()>,
) -> Result<()> {
    if options.memory {
        let mut runtime = Runtime::new(engine, MemoryStore::new(), Tally::default(), start);
        return run(&mut runtime);
    }
    let path = match &options.db {
        Some(path) => path.clone(),
        None => PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("target")
            .join("quickstart")
            .join(format!("{name}.db")),
    };
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    // A fresh database per run, so that the figures describe this run.
    for suffix in ["", "-wal", "-shm"] {
        let file = PathBuf::from(format!("{}{suffix}", path.display()));
        match std::fs::remove_file(&file) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(format!("{}: {e}", file.display()).into()),
        }
    }
    let host_options =
        HostOptions::default().with_group_size(options.group).with_durability(options.durability);
    let sync = if options.durability == Durability::Full { "FULL" } else { "NORMAL" };
    println!(
        "store: SQLite database {} ({} steps per transaction, synchronous={sync}; --memory for the in-memory store)",
        path.display(),
        options.group
    );
    let mut host = SqliteHost::open(&path, engine, Tally::default(), start, host_options)?;
    run(&mut host)
}

/// Feeds `events` (in time order) to the host and calls `observe` with each outcome.
/// A contact is added just before its first event: that is when it enters the funnel, and
/// its inactivity clock starts there.
fn replay(
    runtime: &mut dyn Host,
    events: &[Event],
    mut contact: impl FnMut(&ContactId) -> Result<Contact>,
    mut observe: impl FnMut(&Event, &Outcome),
) -> Result<()> {
    let mut progress = Progress::new(events.len());
    for (i, event) in events.iter().enumerate() {
        if !runtime.has(event.contact())? {
            runtime.advance_to(event.at())?;
            runtime.add_contact(contact(event.contact())?)?;
        }
        let outcome = runtime.ingest(event)?;
        observe(event, &outcome);
        progress.tick(i + 1, event.at());
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------
// The B2B funnel

/// Per contact: its first event, and when it crossed into MQL. Read from the outcomes of
/// `ingest`, because an [`Effect`] does not name its contact: the delivery can count
/// crossings but not say whose they are.
#[derive(Default)]
struct Funnel {
    first: HashMap<ContactId, Timestamp>,
    mql: HashMap<ContactId, Timestamp>,
}

impl Funnel {
    fn observe(&mut self, event: &Event, outcome: &Outcome) {
        if !self.first.contains_key(event.contact()) {
            self.first.insert(event.contact().clone(), event.at());
        }
        // In this rule set only events raise scores (no rule started by time adjusts one),
        // so upward crossings come with events; `print_mqls` checks that.
        let crossed = outcome.effects.iter().find(|e| is_mql(&e.kind));
        if let Some(effect) = crossed {
            self.mql.entry(event.contact().clone()).or_insert(effect.at);
        }
    }

    /// Days from first event to MQL, sorted.
    fn days_to_mql(&self) -> Vec<f64> {
        let mut days: Vec<f64> = self
            .mql
            .iter()
            .filter_map(|(id, mql)| {
                let first = self.first.get(id)?;
                Some((mql.unix_seconds() - first.unix_seconds()) as f64 / DAY as f64)
            })
            .collect();
        days.sort_by(f64::total_cmp);
        days
    }
}

fn is_mql(kind: &EffectKind) -> bool {
    matches!(kind, EffectKind::ThresholdCrossed { score, threshold, direction: Crossing::Up }
        if score.as_str() == MQL_SCORE && threshold == MQL_THRESHOLD)
}

fn funnel(options: &Options) -> Result<()> {
    let started = Instant::now();
    let rules = journey_report::with_journey(workload::RULES_JSON)?;
    let program = Arc::new(Program::from_json(&rules).map_err(|e| e.render())?);
    let compiled = started.elapsed();
    let engine = Arc::new(Engine::new(program.clone()));
    describe(&program, compiled);

    let schema = program.schema();
    let mut rng = workload::Rng::new(options.seed);
    let contacts = workload::contacts(schema, options.contacts, &mut rng);
    let events = workload::funnel_events(schema, options.contacts, options.days, &mut rng);
    println!(
        "generated {} contacts and {} events over {} days (seed {})",
        thousands(contacts.len() as u64),
        thousands(events.len() as u64),
        options.days,
        options.seed
    );

    let start = workload::start();
    let end = Timestamp::from_unix(start.unix_seconds() + options.days * DAY, 0)?;
    with_host(options, "funnel", engine, start, |runtime| {
        run_funnel(runtime, options, &program, &contacts, &events, start, end)
    })
}

fn run_funnel(
    runtime: &mut dyn Host,
    options: &Options,
    program: &Program,
    contacts: &[Contact],
    events: &[Event],
    start: Timestamp,
    end: Timestamp,
) -> Result<()> {
    let _ = start;
    let mut funnel = Funnel::default();
    let started = Instant::now();
    // Contact ids are `c<N>`, the position in `contacts`.
    let lookup = |id: &ContactId| -> Result<Contact> {
        let index = id.as_str().strip_prefix('c').and_then(|n| n.parse::<usize>().ok());
        Ok(index.and_then(|i| contacts.get(i)).ok_or_else(|| format!("no contact `{id}`"))?.clone())
    };
    replay(runtime, events, lookup, |event, outcome| funnel.observe(event, outcome))?;
    // Wake-ups after the last event, up to the end of the window.
    runtime.advance_to(end)?;
    runtime.finish()?;
    let elapsed = started.elapsed().as_secs_f64();
    let store = runtime.snapshot()?;

    println!();
    print_run(runtime, &store, elapsed)?;
    print_effects(runtime.tally());
    print_mqls(&funnel, store.len(), runtime.tally());
    print_states(program, &store, options.days);
    let engine = Engine::new(Arc::new(program.clone()));
    let policy = policy_report::audit(&engine, |id| lookup(id).ok(), events, end);
    policy.print(runtime.tally().sends);
    print_rules(program, runtime.tally());
    explain_one(program, &store, &funnel, end)?;
    println!();
    print!("{}", runtime.tally().journeys);
    // The figures above in one machine-readable line.
    let [events_in, duplicates, timeouts, delivered, held] = runtime.counts()?;
    let line = serde_json::json!({
        "events": events_in,
        "duplicates": duplicates,
        "wake_ups": timeouts,
        "contacts": store.len(),
        "effects": delivered,
        "held_for_approval": held,
        "mqls": funnel.mql.len(),
        "journey": journey_report::journey_json(&runtime.tally().journeys),
        "policy": policy.to_json(),
    });
    println!();
    println!("{line}");
    Ok(())
}

/// The rule set in one paragraph.
fn describe(program: &Program, compiled: std::time::Duration) {
    let on_events = program.rules().iter().filter(|r| r.event_type().is_some()).count();
    let models: Vec<&str> =
        program.scorer().map(|s| s.models().iter().map(|m| m.id().as_str()).collect()).unwrap_or_default();
    let segments: Vec<&str> = program.segments().iter().map(|s| s.id()).collect();
    println!(
        "rule set `{}`: {} rules ({} on events, {} on scores, segments, attributes and inactivity), \
         score models {}, segments {}; compiled in {:.1?}",
        program.name().unwrap_or("unnamed"),
        program.rules().len(),
        on_events,
        program.rules().len() - on_events,
        models.join(", "),
        segments.join(", "),
        compiled
    );
}

fn print_run(runtime: &dyn Host, store: &MemoryStore, seconds: f64) -> Result<()> {
    let [events, duplicates, timeouts, delivered, held] = runtime.counts()?;
    println!("events ingested      {:>10}", thousands(events));
    println!("  duplicates ignored {:>10}", thousands(duplicates));
    println!("wake-ups handled     {:>10}", thousands(timeouts));
    println!("contacts             {:>10}", thousands(store.len() as u64));
    println!("effects delivered    {:>10}", thousands(delivered));
    println!("  held for approval  {:>10}", thousands(held));
    println!(
        "throughput           {:>10} events/s ({} steps/s with wake-ups; {:.1} s wall clock, one thread)",
        thousands((events as f64 / seconds) as u64),
        thousands(((events + timeouts) as f64 / seconds) as u64),
        seconds
    );
    println!("store                {}", runtime.describe()?);
    Ok(())
}

/// Effects by section, kinds by count.
fn print_effects(tally: &Tally) {
    const SECTIONS: [&str; 9] = [
        "actions",
        "journeys",
        "journey actions",
        "threshold crossings",
        "band changes",
        "segments",
        "rule errors",
        "cascade limits",
        "other",
    ];
    println!();
    println!("effects by kind");
    for section in SECTIONS {
        let mut kinds: Vec<(&str, u64)> = tally
            .kinds
            .iter()
            .filter(|((s, _), _)| *s == section)
            .map(|((_, k), n)| (k.as_str(), *n))
            .collect();
        if kinds.is_empty() {
            // No news is good news, but say so for errors.
            if section == "rule errors" {
                println!("  {section:<20} none");
            }
            continue;
        }
        kinds.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
        let cells: Vec<String> = kinds.iter().map(|(k, n)| format!("{k} {}", thousands(*n))).collect();
        print_wrapped(&format!("  {section:<20} "), &cells);
    }
    if let Some(error) = &tally.first_error {
        println!("  first rule error: {error}");
    }
}

fn print_mqls(funnel: &Funnel, contacts: usize, tally: &Tally) {
    let days = funnel.days_to_mql();
    // The delivery saw every crossing, wake-ups' included; the funnel only events'.
    let delivered = tally.count("threshold crossings", &format!("{MQL_SCORE}/{MQL_THRESHOLD} up"));
    println!();
    println!(
        "MQLs                 {:>10} ({:.1}% of contacts crossed {MQL_SCORE}/{MQL_THRESHOLD})",
        thousands(funnel.mql.len() as u64),
        100.0 * funnel.mql.len() as f64 / contacts.max(1) as f64
    );
    if !days.is_empty() {
        println!(
            "  days from first event to MQL: median {:.1} (quartiles {:.1} and {:.1}; fastest {:.2}, slowest {:.1})",
            quantile(&days, 0.5),
            quantile(&days, 0.25),
            quantile(&days, 0.75),
            days[0],
            days[days.len() - 1]
        );
    }
    if delivered != funnel.mql.len() as u64 {
        println!(
            "  note: {delivered} MQL crossings were delivered; the median counts those that came with events"
        );
    }
}

/// Segment sizes and lifecycle stages at the end, from the stored states.
fn print_states(program: &Program, store: &MemoryStore, days: i64) {
    let mut segments: BTreeMap<&str, u64> = program.segments().iter().map(|s| (s.id(), 0)).collect();
    let mut stages: BTreeMap<&str, u64> = BTreeMap::new();
    for stored in store.iter() {
        for segment in stored.state.segments() {
            if let Some(n) = segments.get_mut(segment) {
                *n += 1;
            }
        }
        *stages.entry(stored.state.stage().unwrap_or("(none)")).or_default() += 1;
    }
    // In declaration order, as the document lists them.
    let cells: Vec<String> =
        program.segments().iter().map(|s| format!("{} {}", s.id(), thousands(segments[s.id()]))).collect();
    print_wrapped(&format!("segments on day {days:<4} "), &cells);
    let cells: Vec<String> = stages.iter().map(|(s, n)| format!("{s} {}", thousands(*n))).collect();
    print_wrapped("lifecycle stages     ", &cells);
}

/// How often each rule fired, in document order, with what starts it.
fn print_rules(program: &Program, tally: &Tally) {
    println!();
    println!("rules fired (times its first action was delivered: held, deferred, suppressed and control not counted)");
    for rule in program.rules() {
        let on = program.describe_trigger(rule);
        println!("  {:<30} {:<32} {:>7}", rule.id().as_str(), on, thousands(tally.fired(rule.id().as_str())));
    }
}

/// One MQL contact's scores explained: the combined lead score from its parts, then each
/// part by group, by rule, fit, and its latest changes.
fn explain_one(program: &Program, store: &MemoryStore, funnel: &Funnel, at: Timestamp) -> Result<()> {
    let scorer = program.scorer().ok_or("the rule set has no scores")?;
    let position = |id: &str| scorer.models().iter().position(|m| m.id().as_str() == id);
    let lead = position(MQL_SCORE).ok_or("no lead score model")?;
    // The MQL with the highest lead score now (ties: the smallest id), for the richest
    // explanation.
    let value = |id: &ContactId| {
        let state = &store.get(id)?.state;
        scorer.value(state.scores()?, lead, at)
    };
    let best = funnel
        .mql
        .keys()
        .filter_map(|id| Some((id, value(id)?)))
        .max_by(|a, b| a.1.total_cmp(&b.1).then(b.0.cmp(a.0)));
    let Some((id, lead_value)) = best else {
        println!("\nno contact reached MQL: nothing to explain");
        return Ok(());
    };
    let stored = store.get(id).ok_or("explained contact not stored")?;
    let state = &stored.state;
    let scores = state.scores().ok_or("no scores")?;

    println!();
    println!("score explanation: contact {id} on {}", day_of(at));
    let (first, mql) = funnel.first.get(id).zip(funnel.mql.get(id)).ok_or("explained contact not tracked")?;
    println!(
        "  first event {}, MQL {} ({:.1} days later)",
        first,
        mql,
        (mql.unix_seconds() - first.unix_seconds()) as f64 / DAY as f64
    );
    let segments: Vec<&str> = state.segments().collect();
    let tags: Vec<&str> = state.tags().collect();
    println!(
        "  stage {}, owner {}, segments [{}], tags [{}]",
        state.stage().unwrap_or("-"),
        state.owner().unwrap_or("-"),
        segments.join(", "),
        tags.join(", ")
    );
    // The combined score's weights are in the document; the compiled model keeps them
    // private.
    let def: RuleSetDef = serde_json::from_str(workload::RULES_JSON)?;
    let combine = def
        .scoring
        .as_ref()
        .and_then(|s| s.models.iter().find(|m| m.id == MQL_SCORE))
        .and_then(|m| m.combine.clone())
        .unwrap_or_default();
    let parts: Vec<String> = combine
        .iter()
        .map(|(part, weight)| {
            let v = position(part).and_then(|m| scorer.value(scores, m, at)).unwrap_or(f64::NAN);
            format!("{weight} x {part} {v:.1}")
        })
        .collect();
    println!("  {MQL_SCORE} {lead_value:.1} = {}", parts.join(" + "));
    for part in combine.keys() {
        let explanation = position(part).and_then(|m| scorer.explain(scores, m, at));
        let Some(e) = explanation else { continue };
        println!("  {} {:.1}", e.score, e.value);
        if e.groups.len() > 1 || e.groups.iter().any(|(_, v)| *v != 0.0) {
            let groups: Vec<String> = e.groups.iter().map(|(g, v)| format!("{g} {v:.1}")).collect();
            println!("    groups: {}", groups.join(", "));
        }
        if !e.rules.is_empty() {
            let rules: Vec<String> = e.rules.iter().map(|(r, p)| format!("{r} {p:+.1}")).collect();
            print_wrapped("    by rule (decayed): ", &rules);
        }
        // Caps can clip a total after the points were recorded: show what the rules
        // (and the `adjust_score` pseudo-rule) do not account for.
        let unexplained =
            e.groups.iter().map(|(_, v)| v).sum::<f64>() - e.rules.iter().map(|(_, p)| p).sum::<f64>();
        if !e.rules.is_empty() && unexplained.abs() >= 0.05 {
            println!("    not itemised: {unexplained:+.1} (caps)");
        }
        if e.fit != 0.0 {
            println!("    fit rules holding: {:+.1}", e.fit);
        }
        let skipped = e.ledger.len().saturating_sub(LEDGER_SHOWN);
        if !e.ledger.is_empty() {
            let more = if skipped > 0 { format!(", {skipped} earlier not shown") } else { String::new() };
            println!("    latest changes (points as awarded, after caps{more}):");
        }
        for entry in &e.ledger[skipped..] {
            let cause = entry.event.as_ref().map_or("attributes".to_string(), |e| format!("event {e}"));
            println!("      {}  {:<22} {:>+6.1}  {cause}", entry.at, entry.rule.as_str(), entry.delta);
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------
// CDNOW

/// The rule set for the CDNOW replay: a purchase scores 10 points and a bigger basket a
/// few more, halving every 90 days; about four recent purchases make a VIP; 60 days
/// without a purchase bring one win-back email per quiet spell.
const CDNOW_RULES: &str = r#"{
  "version": 1,
  "name": "cdnow-retention",
  "schema": {
    "events": {"purchase": {"cds": "int", "amount": "double"}},
    "scores": ["engagement"]
  },
  "segments": [
    {"id": "vip", "description": "Buys often and recently.", "when": "score.engagement >= 40.0"}
  ],
  "rules": [
    {"id": "vip-welcome", "on": {"segment": "vip"}, "repeat": "once",
     "actions": [{"type": "send", "channel": "email", "template": "vip-welcome"},
                 {"type": "add_tag", "tag": "vip"}]},
    {"id": "vip-lapsed", "on": {"segment": "vip", "direction": "exit"},
     "actions": [{"type": "add_to_list", "list": "lapsed-vips"}]},
    {"id": "win-back", "on": {"inactive": "purchase", "for": "60d"},
     "actions": [{"type": "send", "channel": "email", "template": "win-back-60d"}]}
  ],
  "scoring": {"models": [{
    "id": "engagement", "cap": 100, "decay": {"half_life": "90d"},
    "rules": [
      {"id": "purchase", "on": "purchase", "points": 10},
      {"id": "basket-50", "on": "purchase", "when": "event.amount >= 50.0", "points": 3},
      {"id": "basket-100", "on": "purchase", "when": "event.amount >= 100.0", "points": 5}
    ],
    "bands": [{"name": "lapsed", "from": 0}, {"name": "active", "from": 10}, {"name": "loyal", "from": 40}]
  }]}
}"#;

/// One row of `CDNOW_master.txt`.
struct Purchase<'a> {
    line: usize,
    customer: &'a str,
    /// `YYYYMMDD`.
    date: u32,
    cds: i64,
    amount: f64,
}

/// Rows `customer_id date number_of_cds dollar_value` (whitespace-separated, one header
/// line); `CDNOW_sample.txt` has a second id column, skipped.
fn parse_cdnow(text: &str) -> Result<Vec<Purchase<'_>>> {
    let mut rows = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let cols: Vec<&str> = line.split_whitespace().collect();
        if cols.is_empty() || cols[0] == "customer_id" {
            continue;
        }
        let bad = || format!("line {}: expected `customer_id date number_of_cds dollar_value`", n + 1);
        let (customer, date, cds, amount) = match cols[..] {
            [id, date, cds, amount] | [id, _, date, cds, amount] => (id, date, cds, amount),
            _ => return Err(bad().into()),
        };
        rows.push(Purchase {
            line: n + 1,
            customer,
            date: date.parse().map_err(|_| bad())?,
            cds: cds.parse().map_err(|_| bad())?,
            amount: amount.parse().map_err(|_| bad())?,
        });
    }
    Ok(rows)
}

fn midnight(date: u32) -> Result<Timestamp> {
    Ok(Timestamp::from_ymd_hms((date / 10_000) as i32, date / 100 % 100, date % 100, 0, 0, 0)?)
}

fn cdnow(path: &Path, options: &Options) -> Result<()> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) => {
            println!(
                "The CDNOW data is not available ({}: {e}), so there is nothing to replay. It is real \
                 data kept outside the repository (see shared/data/README.md): pass its path after \
                 `--cdnow`, or place it at ../shared/data/cdnow/CDNOW_master.txt.",
                path.display()
            );
            return Ok(());
        }
    };
    let mut rows = parse_cdnow(&text)?;
    // The file is ordered by customer; the runtime needs time order (same-day purchases
    // keep the file's order).
    rows.sort_by_key(|r| (r.date, r.line));
    let (Some(first), Some(last)) = (rows.first(), rows.last()) else {
        return Err(format!("{}: no purchases", path.display()).into());
    };
    let (start, end) =
        (midnight(first.date)?, Timestamp::from_unix(midnight(last.date)?.unix_seconds() + DAY, 0)?);

    let program = Arc::new(Program::from_json(CDNOW_RULES).map_err(|e| e.render())?);
    let schema = program.schema();
    let mut events = Vec::with_capacity(rows.len());
    for r in &rows {
        let event = schema
            .event(format!("p{}", r.line), r.customer, "purchase", midnight(r.date)?)?
            .set("cds", r.cds)?
            .set("amount", r.amount)?
            .build();
        events.push(event);
    }
    let customers = rows.iter().map(|r| r.customer).collect::<std::collections::HashSet<_>>().len();
    println!(
        "CDNOW: {} purchases by {} customers, {} to {}, replayed to {} ({})",
        thousands(events.len() as u64),
        thousands(customers as u64),
        day_of(start),
        day_of(midnight(last.date)?),
        day_of(end),
        path.display()
    );

    let engine = Arc::new(Engine::new(program.clone()));
    with_host(options, "cdnow", engine, start, |runtime| run_cdnow(runtime, schema, &events, end))
}

fn run_cdnow(
    runtime: &mut dyn Host,
    schema: &nurture::Schema,
    events: &[Event],
    end: Timestamp,
) -> Result<()> {
    let started = Instant::now();
    replay(runtime, events, |id| Ok(schema.contact(id.clone()).build()), |_, _| {})?;
    runtime.advance_to(end)?;
    runtime.finish()?;
    let elapsed = started.elapsed().as_secs_f64();
    let store = runtime.snapshot()?;

    println!();
    print_run(runtime, &store, elapsed)?;
    print_effects(runtime.tally());
    let tally = runtime.tally();
    let vips = store.iter().filter(|s| s.state.in_segment("vip")).count();
    println!();
    println!(
        "VIPs                 {:>10} at the end; {} customers were VIPs at some point ({} entries, {} exits)",
        thousands(vips as u64),
        thousands(tally.fired("vip-welcome")),
        thousands(tally.count("segments", "+vip")),
        thousands(tally.count("segments", "-vip"))
    );
    println!(
        "win-back emails      {:>10} (60 days without a purchase, once per quiet spell)",
        thousands(tally.fired("win-back"))
    );
    Ok(())
}

// ---------------------------------------------------------------------------------------
// Formatting

/// `1234567` as `1,234,567`.
fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// The date part of an instant, `YYYY-MM-DD`.
fn day_of(t: Timestamp) -> String {
    t.to_string().chars().take(10).collect()
}

/// The `q` quantile of sorted values (nearest rank).
fn quantile(sorted: &[f64], q: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * q).round() as usize;
    sorted.get(i).copied().unwrap_or(f64::NAN)
}

/// `cells` joined by two spaces after `lead`, wrapped at 100 columns under it.
fn print_wrapped(lead: &str, cells: &[String]) {
    let indent = " ".repeat(lead.len());
    let mut line = lead.to_string();
    let mut empty = true;
    for cell in cells {
        if !empty && line.len() + 2 + cell.len() > 100 {
            println!("{line}");
            line = indent.clone();
            empty = true;
        }
        if !empty {
            line.push_str("  ");
        }
        line.push_str(cell);
        empty = false;
    }
    println!("{line}");
}
