//! Crash test: a child process runs the quickstart's B2B funnel through [`SqliteHost`]
//! while this process kills it with SIGKILL at random (seeded) instants, restarting it
//! each time until the stream is consumed. The child's delivery appends every attempt
//! to a file (one `write` per attempt, which a killed process cannot undo). At the end,
//! the delivered effects and every contact's final state are compared with an
//! uninterrupted in-memory run of the same stream ([`nurture::host::Runtime`] over a
//! [`MemoryStore`]).
//!
//! ```text
//! cargo run --release -p nurture-sqlite --example crash_test -- [--json] [--kills N]
//!     [--contacts N] [--days N] [--seed N] [--max-delay-ms N] [--dir PATH]
//! ```
//!
//! The last line of stdout with `--json`:
//! `{"kills": N, "effects_expected": N, "effects_delivered_unique": N, "lost": 0,
//! "unexpected": 0, "states_equal": true}`. The exit status is 1 when anything was lost
//! or unexpected, a state differs, or fewer kills than asked for happened.

#[path = "../../../examples/common/workload.rs"]
mod workload;

use std::collections::{BTreeMap, HashMap};
use std::error::Error;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use nurture::engine::{Effect, Engine};
use nurture::host::{ContactStore, Delivery, DeliveryError, MemoryStore, RecordingDelivery, Runtime};
use nurture::{Contact, ContactId, Event, Program, Timestamp};
use nurture_sqlite::{Durability, HostOptions, SqliteHost, SqliteStore};

type Result<T> = std::result::Result<T, Box<dyn Error>>;

const DAY: i64 = 86_400;

#[derive(Clone, Debug)]
struct Options {
    json: bool,
    child: bool,
    kills: u32,
    contacts: usize,
    days: i64,
    seed: u64,
    max_delay_ms: u64,
    group: usize,
    dir: PathBuf,
}

fn parse() -> std::result::Result<Options, String> {
    let mut o = Options {
        json: false,
        child: false,
        kills: 60,
        contacts: 1_500,
        days: 90,
        seed: 7,
        max_delay_ms: 0,
        group: 64,
        dir: std::env::temp_dir().join(format!("nurture-crash-test-{}", std::process::id())),
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = |name: &str| args.next().ok_or_else(|| format!("`{name}` needs a value"));
        let number =
            |name: &str, v: String| v.parse::<u64>().map_err(|_| format!("`{name} {v}`: not a whole number"));
        match arg.as_str() {
            "--json" => o.json = true,
            "--child" => o.child = true,
            "--kills" => o.kills = number(&arg, value(&arg)?)? as u32,
            "--contacts" => o.contacts = number(&arg, value(&arg)?)?.max(1) as usize,
            "--days" => o.days = number(&arg, value(&arg)?)?.clamp(1, 3_650) as i64,
            "--seed" => o.seed = number(&arg, value(&arg)?)?,
            "--max-delay-ms" => o.max_delay_ms = number(&arg, value(&arg)?)?,
            "--group" => o.group = number(&arg, value(&arg)?)?.max(1) as usize,
            "--dir" => o.dir = PathBuf::from(value(&arg)?),
            _ => return Err(format!("unknown argument `{arg}`")),
        }
    }
    Ok(o)
}

fn main() {
    let options = match parse() {
        Ok(o) => o,
        Err(message) => {
            eprintln!("crash_test: {message}");
            std::process::exit(2);
        }
    };
    let result = if options.child { child(&options) } else { parent(&options) };
    match result {
        Ok(true) => {}
        Ok(false) => std::process::exit(1),
        Err(e) => {
            eprintln!("crash_test: {e}");
            std::process::exit(2);
        }
    }
}

/// The stream both runs consume.
struct Stream {
    engine: Arc<Engine>,
    contacts: Vec<Contact>,
    events: Vec<Event>,
    start: Timestamp,
    end: Timestamp,
}

fn stream(o: &Options) -> Result<Stream> {
    let program = Arc::new(Program::from_json(workload::RULES_JSON).map_err(|e| e.render())?);
    let engine = Arc::new(Engine::new(program.clone()));
    let schema = program.schema();
    let mut rng = workload::Rng::new(o.seed);
    let contacts = workload::contacts(schema, o.contacts, &mut rng);
    let events = workload::funnel_events(schema, o.contacts, o.days, &mut rng);
    let start = workload::start();
    let end = Timestamp::from_unix(start.unix_seconds() + o.days * DAY, 0)?;
    Ok(Stream { engine, contacts, events, start, end })
}

fn lookup<'a>(contacts: &'a [Contact], id: &ContactId) -> Result<&'a Contact> {
    let index = id.as_str().strip_prefix('c').and_then(|n| n.parse::<usize>().ok());
    Ok(index.and_then(|i| contacts.get(i)).ok_or_else(|| format!("no contact `{id}`"))?)
}

// ---------------------------------------------------------------------------------------
// The child: the stream through the SQLite host, from the committed cursor on.

/// Appends `key<TAB>effect JSON` per delivery attempt, one `write` each.
struct FileSink(std::fs::File);

impl Delivery for FileSink {
    fn deliver(&mut self, effect: &Effect) -> std::result::Result<(), DeliveryError> {
        let json = serde_json::to_string(effect).map_err(|e| DeliveryError { message: e.to_string() })?;
        let line = format!("{}\t{json}\n", effect.key);
        self.0.write_all(line.as_bytes()).map_err(|e| DeliveryError { message: e.to_string() })
    }
}

fn child(o: &Options) -> Result<bool> {
    let s = stream(o)?;
    let sink = std::fs::OpenOptions::new().create(true).append(true).open(o.dir.join("deliveries.log"))?;
    let options = HostOptions::default()
        .with_group_size(o.group)
        .with_max_latency(Duration::from_millis(20))
        .with_durability(Durability::Normal);
    let mut host =
        SqliteHost::open(o.dir.join("host.db"), s.engine.clone(), FileSink(sink), s.start, options)?;
    // Ready: the parent starts its random delay now.
    println!("ready {}", host.cursor());
    std::io::stdout().flush()?;
    let from = host.cursor() as usize;
    for (i, event) in s.events.iter().enumerate().skip(from) {
        if !host.contains(event.contact())? {
            host.advance_to(event.at())?;
            host.add_contact(lookup(&s.contacts, event.contact())?.clone())?;
        }
        let _ = host.ingest(event)?;
        host.set_cursor(i as u64 + 1);
    }
    host.advance_to(s.end)?;
    host.flush()?;
    let pending = host.deliver_pending()?;
    println!("done {} {pending}", host.cursor());
    Ok(true)
}

// ---------------------------------------------------------------------------------------
// The parent: the reference run, the kills, the comparison.

/// SplitMix64 for the kill instants.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
}

fn parent(o: &Options) -> Result<bool> {
    let s = stream(o)?;
    eprintln!(
        "crash test: {} contacts, {} events over {} days (seed {}); at least {} kills",
        s.contacts.len(),
        s.events.len(),
        o.days,
        o.seed,
        o.kills
    );

    // The uninterrupted in-memory run, as the quickstart does it.
    let started = Instant::now();
    let mut runtime =
        Runtime::new(s.engine.clone(), MemoryStore::new(), RecordingDelivery::default(), s.start);
    for event in &s.events {
        if runtime.store().get(event.contact()).is_none() {
            runtime.advance_to(event.at())?;
            runtime.add_contact(lookup(&s.contacts, event.contact())?.clone())?;
        }
        let _ = runtime.ingest(event)?;
    }
    runtime.advance_to(s.end)?;
    let reference_time = started.elapsed();
    let mut expected: HashMap<String, String> = HashMap::new();
    for effect in &runtime.delivery().delivered {
        expected.insert(effect.key.to_string(), serde_json::to_string(effect)?);
    }
    eprintln!(
        "reference run: {} steps, {} effects in {:.2?}",
        runtime.stats().events + runtime.stats().timeouts,
        expected.len(),
        reference_time
    );

    // The killed runs.
    std::fs::create_dir_all(&o.dir)?;
    for f in ["host.db", "host.db-wal", "host.db-shm", "deliveries.log"] {
        let _ = std::fs::remove_file(o.dir.join(f));
    }
    // Kill instants uniform in [1, max] ms after the child is ready: by default about a
    // hundredth of the time the stream takes the host (roughly 20x the in-memory run).
    let max_delay = if o.max_delay_ms > 0 {
        o.max_delay_ms
    } else {
        ((reference_time.as_millis() as u64 * 20) / u64::from(o.kills.max(1))).clamp(5, 2_000)
    };
    let mut rng = Rng(o.seed ^ 0x5eed);
    let exe = std::env::current_exe()?;
    let (mut kills, mut runs) = (0u32, 0u32);
    let started = Instant::now();
    loop {
        runs += 1;
        let mut child = Command::new(&exe)
            .args(["--child", "--contacts", &o.contacts.to_string(), "--days", &o.days.to_string()])
            .args(["--seed", &o.seed.to_string(), "--group", &o.group.to_string()])
            .arg("--dir")
            .arg(&o.dir)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()?;
        let stdout = child.stdout.take().ok_or("no child stdout")?;
        let mut lines = BufReader::new(stdout).lines();
        let ready = lines.next().transpose()?.unwrap_or_default();
        if !ready.starts_with("ready") {
            let status = child.wait()?;
            return Err(format!("the child did not start ({status}): `{ready}`").into());
        }
        // Keep killing until enough kills happened; then let the last run finish.
        let delay = if kills < o.kills { 1 + rng.next() % max_delay } else { u64::MAX };
        let deadline = Instant::now() + Duration::from_millis(delay.min(3_600_000));
        let finished = loop {
            if let Some(status) = child.try_wait()? {
                break Some(status);
            }
            if Instant::now() >= deadline {
                break None;
            }
            std::thread::sleep(Duration::from_micros(200));
        };
        match finished {
            Some(status) if status.success() => {
                let rest: Vec<String> = lines.collect::<std::result::Result<_, _>>()?;
                eprintln!("run {runs}: finished ({})", rest.join(" "));
                break;
            }
            Some(status) => return Err(format!("run {runs}: the child failed: {status}").into()),
            None => {
                child.kill()?; // SIGKILL
                child.wait()?;
                kills += 1;
                if kills % 10 == 0 {
                    eprintln!("  {kills} kills ({} s)", started.elapsed().as_secs());
                }
            }
        }
    }
    eprintln!("{kills} kills in {runs} runs, {:.1} s", started.elapsed().as_secs_f64());

    // Deliveries: every attempt, de-duplicated by key.
    let log = std::fs::read_to_string(o.dir.join("deliveries.log"))?;
    let mut delivered: BTreeMap<String, String> = BTreeMap::new();
    let (mut attempts, mut conflicting) = (0u64, 0u64);
    for line in log.lines() {
        let Some((key, json)) = line.split_once('\t') else {
            return Err(format!("a damaged delivery record: `{line}`").into());
        };
        attempts += 1;
        if let Some(previous) = delivered.insert(key.to_string(), json.to_string()) {
            if previous != json {
                conflicting += 1;
            }
        }
    }
    let lost = expected.keys().filter(|k| !delivered.contains_key(*k)).count();
    let unexpected =
        delivered.iter().filter(|(k, json)| expected.get(*k) != Some(json)).count() as u64 + conflicting;

    // States: the database alone, read as a fresh process would.
    let mut store = SqliteStore::open(o.dir.join("host.db"), s.engine.program().schema_arc().clone())?;
    let mut differing = Vec::new();
    for reference in runtime.store().iter() {
        let id = reference.contact.id();
        match store.load(id)? {
            Some(stored) if &stored.value == reference => {}
            _ => differing.push(id.clone()),
        }
    }
    let stored = store.contact_count()?;
    let states_equal = differing.is_empty() && stored == runtime.store().len() as u64;
    eprintln!(
        "{} delivery attempts, {} unique keys ({} redelivered after kills); {} of {} states equal",
        attempts,
        delivered.len(),
        attempts - delivered.len() as u64,
        runtime.store().len() - differing.len(),
        runtime.store().len()
    );
    if let Some(id) = differing.first() {
        eprintln!("first differing contact: {id}");
    }
    let ok = lost == 0 && unexpected == 0 && states_equal && kills >= o.kills;
    if !o.json {
        println!(
            "kills {kills}, effects expected {}, delivered (unique) {}, lost {lost}, unexpected {unexpected}, states equal {states_equal}",
            expected.len(),
            delivered.len()
        );
    }
    println!(
        "{{\"kills\": {kills}, \"effects_expected\": {}, \"effects_delivered_unique\": {}, \"lost\": {lost}, \"unexpected\": {unexpected}, \"states_equal\": {states_equal}}}",
        expected.len(),
        delivered.len()
    );
    cleanup(&o.dir, ok);
    Ok(ok)
}

/// Removes the work directory after a passing run; keeps it for inspection otherwise.
fn cleanup(dir: &Path, ok: bool) {
    if ok {
        let _ = std::fs::remove_dir_all(dir);
    } else {
        eprintln!("kept {} for inspection", dir.display());
    }
}
