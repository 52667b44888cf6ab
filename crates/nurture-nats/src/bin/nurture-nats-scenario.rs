//! The scale-out scenario: a real `nats-server` on loopback, worker processes, the
//! quickstart workload, faults (a worker SIGKILLed, restarted; the server SIGKILLed and
//! restarted), and a comparison with an uninterrupted in-memory run of the same stream.
//!
//! `nurture-nats-scenario [--contacts N] [--days N] [--seed N] [--partitions P]
//! [--workers N] [--runs all|throughput|faults|kill] [--rate EVENTS_PER_SEC]`
//!
//! Prints one line per run, then the summary JSON as the last line. Exits 1 when a run
//! lost, duplicated or added an effect or ended with a state unlike the reference; 3
//! (after saying why) when no `nats-server` is available.

#[path = "../../../../examples/common/workload.rs"]
mod workload;

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use async_nats::jetstream::{self, consumer};
use async_nats::HeaderMap;
use bytes::Bytes;
use futures_util::StreamExt;
use nurture::engine::Engine;
use nurture::host::{MemoryStore, RecordingDelivery, Runtime};
use nurture::{ContactId, Program, Timestamp};
use nurture_nats::server::{self, NatsServer};
use nurture_nats::{headers, Input, KvStore, Leases, Names};

const DAY: i64 = 86_400;

/// Every process this scenario started (servers and workers), reported at the end so
/// that a test can check none is left running.
static STARTED: std::sync::Mutex<Vec<u32>> = std::sync::Mutex::new(Vec::new());

fn note_started(pid: Option<u32>) {
    if let (Some(pid), Ok(mut pids)) = (pid, STARTED.lock()) {
        pids.push(pid);
    }
}

type Result<T, E = String> = std::result::Result<T, E>;

#[derive(Clone, Debug)]
struct Options {
    contacts: usize,
    days: i64,
    seed: u64,
    partitions: u32,
    workers: usize,
    runs: String,
    rate: Option<f64>,
}

impl Options {
    fn parse() -> Result<Options> {
        let mut o = Options {
            contacts: 400,
            days: 30,
            seed: 7,
            partitions: 12,
            workers: 3,
            runs: "all".into(),
            rate: None,
        };
        let mut args = std::env::args().skip(1);
        while let Some(flag) = args.next() {
            let value = args.next().ok_or_else(|| format!("{flag} needs a value"))?;
            let bad = |e: &dyn std::fmt::Display| format!("{flag}: {e}");
            match flag.as_str() {
                "--contacts" => o.contacts = value.parse().map_err(|e| bad(&e))?,
                "--days" => o.days = value.parse().map_err(|e| bad(&e))?,
                "--seed" => o.seed = value.parse().map_err(|e| bad(&e))?,
                "--partitions" => o.partitions = value.parse().map_err(|e| bad(&e))?,
                "--workers" => o.workers = value.parse().map_err(|e| bad(&e))?,
                "--runs" => o.runs = value,
                "--rate" => o.rate = Some(value.parse().map_err(|e| bad(&e))?),
                _ => return Err(format!("unknown argument `{flag}`")),
            }
        }
        if o.partitions as usize <= o.workers {
            return Err(format!("--partitions ({}) must exceed --workers ({})", o.partitions, o.workers));
        }
        Ok(o)
    }
}

/// The stream, prepared once: inputs per partition and the reference run's results.
struct Prepared {
    names: Names,
    rules_path: PathBuf,
    /// (partition, message id, payload), in publishing order; the `End`s last.
    inputs: Vec<(u32, String, Vec<u8>)>,
    events: usize,
    expected: BTreeMap<String, u32>,
    reference: MemoryStore,
    program: Arc<Program>,
}

fn prepare(o: &Options, dir: &Path) -> Result<Prepared> {
    let program = Arc::new(Program::from_json(workload::RULES_JSON).map_err(|e| e.render())?);
    let rules_path = dir.join("rules.json");
    std::fs::write(&rules_path, workload::RULES_JSON).map_err(|e| e.to_string())?;
    let engine = Arc::new(Engine::new(program.clone()));
    let schema = program.schema();
    let mut rng = workload::Rng::new(o.seed);
    let contacts = workload::contacts(schema, o.contacts, &mut rng);
    let events = workload::funnel_events(schema, o.contacts, o.days, &mut rng);
    let start = workload::start();
    let end = Timestamp::from_unix(start.unix_seconds() + o.days * DAY, 0).map_err(|e| e.to_string())?;
    let lookup = |id: &ContactId| {
        let i = id.as_str().strip_prefix('c').and_then(|n| n.parse::<usize>().ok());
        i.and_then(|i| contacts.get(i)).cloned().ok_or_else(|| format!("no contact `{id}`"))
    };
    // The reference: the core runtime, one process, in memory, as the quickstart runs it.
    let mut runtime = Runtime::new(engine, MemoryStore::new(), RecordingDelivery::default(), start);
    let names = Names::new("nurture", o.partitions).map_err(|e| e.to_string())?;
    let mut inputs = Vec::with_capacity(events.len() + o.partitions as usize);
    for event in &events {
        let first = runtime.store().get(event.contact()).is_none();
        let contact = if first { Some(lookup(event.contact())?) } else { None };
        if let Some(contact) = &contact {
            runtime.advance_to(event.at()).map_err(|e| e.to_string())?;
            runtime.add_contact(contact.clone()).map_err(|e| e.to_string())?;
        }
        let _ = runtime.ingest(event).map_err(|e| e.to_string())?;
        let payload = Input::encode_event(schema, event, contact.as_ref()).map_err(|e| e.to_string())?;
        inputs.push((names.partition_of(event.contact().as_str()), format!("e-{}", event.id()), payload));
    }
    runtime.advance_to(end).map_err(|e| e.to_string())?;
    for p in 0..o.partitions {
        let payload = Input::End { at: end }.to_bytes().map_err(|e| e.to_string())?;
        inputs.push((p, format!("end-{p}"), payload));
    }
    let mut expected = BTreeMap::new();
    for effect in &runtime.delivery().delivered {
        *expected.entry(effect.key.to_string()).or_insert(0) += 1;
    }
    let reference = runtime.store().clone();
    Ok(Prepared { names, rules_path, inputs, events: events.len(), expected, reference, program })
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Fault {
    None,
    KillWorker,
    KillAndRestartWorker,
    RestartServer,
    /// Worker 0 aborts itself between a step's effects and its state write.
    CrashBetweenWrites,
}

struct RunResult {
    name: String,
    workers: usize,
    seconds: f64,
    events_per_sec: f64,
    effects_unique: usize,
    effects_total: usize,
    lost: usize,
    unexpected: usize,
    duplicates: usize,
    states_equal: bool,
    killed: usize,
    /// Effects the workers published again after a failure and the server dropped.
    republished: u64,
    latencies_ms: Vec<f64>,
}

struct Workers {
    binary: PathBuf,
    rules: PathBuf,
    url: String,
    partitions: u32,
    log_dir: PathBuf,
    children: Vec<Option<Child>>,
    started: usize,
}

impl Workers {
    fn spawn(&mut self, slot: usize) -> Result<()> {
        self.spawn_with(slot, &[])
    }

    fn spawn_with(&mut self, slot: usize, extra: &[String]) -> Result<()> {
        self.started += 1;
        let log = std::fs::File::create(self.log_dir.join(format!("worker-{slot}-{}.log", self.started)))
            .map_err(|e| e.to_string())?;
        let child = Command::new(&self.binary)
            .args(["--url", &self.url, "--partitions", &self.partitions.to_string()])
            .args(["--worker", &format!("w{slot}-{}", self.started), "--rules"])
            .arg(&self.rules)
            .args(extra)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .map_err(|e| format!("starting {}: {e}", self.binary.display()))?;
        note_started(Some(child.id()));
        if slot < self.children.len() {
            self.children[slot] = Some(child);
        } else {
            self.children.push(Some(child));
        }
        Ok(())
    }

    fn kill(&mut self, slot: usize) {
        if let Some(mut child) = self.children.get_mut(slot).and_then(Option::take) {
            let _ = child.kill(); // SIGKILL
            let _ = child.wait();
        }
    }

    /// How many workers ended by a signal before being stopped.
    fn crashed(&mut self) -> usize {
        use std::os::unix::process::ExitStatusExt;
        let mut crashed = 0;
        for child in self.children.iter_mut().flatten() {
            if child.try_wait().ok().flatten().is_some_and(|s| s.signal().is_some()) {
                crashed += 1;
            }
        }
        crashed
    }

    /// SIGTERM (a clean stop), then SIGKILL after 5 s.
    fn stop_all(&mut self) {
        for child in self.children.iter_mut().flatten() {
            if matches!(child.try_wait(), Ok(None)) {
                let _ = Command::new("kill")
                    .args(["-TERM", &child.id().to_string()])
                    .stderr(Stdio::null())
                    .status();
            }
        }
        let deadline = Instant::now() + Duration::from_secs(5);
        for slot in 0..self.children.len() {
            if let Some(child) = self.children[slot].as_mut() {
                while Instant::now() < deadline && matches!(child.try_wait(), Ok(None)) {
                    std::thread::sleep(Duration::from_millis(20));
                }
            }
            self.kill(slot);
        }
    }
}

impl Drop for Workers {
    fn drop(&mut self) {
        for slot in 0..self.children.len() {
            self.kill(slot);
        }
    }
}

fn unix_nanos() -> i128 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_nanos() as i128)
}

async fn connect(url: &str) -> Result<jetstream::Context> {
    let client = async_nats::ConnectOptions::new()
        .retry_on_initial_connect()
        .max_reconnects(None)
        .connect(url)
        .await
        .map_err(|e| e.to_string())?;
    Ok(jetstream::new(client))
}

/// Publishes one input and waits for its acknowledgement, retrying (same message id,
/// so a retry of a stored message is dropped) for up to 60 s.
async fn publish_one(js: &jetstream::Context, names: &Names, input: &(u32, String, Vec<u8>)) -> Result<u64> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let mut h = HeaderMap::new();
        h.insert(headers::MSG_ID, input.1.as_str());
        h.insert(headers::PUBLISHED, unix_nanos().to_string().as_str());
        let sent =
            js.publish_with_headers(names.input_subject(input.0), h, Bytes::from(input.2.clone())).await;
        let acked = match sent {
            Ok(ack) => ack.await.map_err(|e| e.to_string()),
            Err(e) => Err(e.to_string()),
        };
        match acked {
            Ok(ack) => return Ok(ack.sequence),
            Err(e) if Instant::now() > deadline => return Err(format!("publishing {}: {e}", input.1)),
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
}

/// Waits until every partition is held and the workers hold a fair share each (the first
/// worker up takes everything, then hands partitions back as the others join), so that
/// measurements do not include the start-up rebalancing.
async fn wait_for_leases(leases: &Leases, partitions: u32, workers: usize, timeout: Duration) -> Result<()> {
    let deadline = Instant::now() + timeout;
    let fair = (partitions as usize).div_ceil(workers);
    loop {
        let holders = leases.holders(partitions).await.map_err(|e| e.to_string())?;
        let mut per: HashMap<&str, usize> = HashMap::new();
        for h in holders.iter().flatten() {
            *per.entry(h.as_str()).or_insert(0) += 1;
        }
        let balanced = per.len() == workers && per.values().all(|&n| n <= fair);
        if holders.iter().all(Option::is_some) && balanced {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(format!("partitions still without a worker after {timeout:?}: {holders:?}"));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn run_one(
    o: &Options,
    prep: &Prepared,
    server_bin: &Path,
    workers: usize,
    fault: Fault,
    rate: Option<f64>,
) -> Result<RunResult> {
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let mut server = NatsServer::start(server_bin, &dir.path().join("store")).map_err(|e| e.to_string())?;
    note_started(server.pid());
    let js = connect(&server.url()).await?;
    let names = &prep.names;
    names.setup(&js, Duration::from_secs(600), 1).await.map_err(|e| e.to_string())?;
    let worker_bin = std::env::current_exe()
        .map_err(|e| e.to_string())?
        .with_file_name(format!("nurture-nats-worker{}", std::env::consts::EXE_SUFFIX));
    let mut procs = Workers {
        binary: worker_bin,
        rules: prep.rules_path.clone(),
        url: server.url(),
        partitions: o.partitions,
        log_dir: dir.path().to_path_buf(),
        children: Vec::new(),
        started: 0,
    };
    for slot in 0..workers {
        if slot == 0 && fault == Fault::CrashBetweenWrites {
            // Early in worker 0's share of the steps with effects (it may hold fewer
            // partitions than the others).
            let steps = (prep.expected.len() / (workers * 8)).max(1);
            procs.spawn_with(slot, &["--crash-after-effects".into(), steps.to_string()])?;
        } else {
            procs.spawn(slot)?;
        }
    }
    let lease_kv = js.get_key_value(names.lease_bucket()).await.map_err(|e| e.to_string())?;
    let observer = Leases::new(lease_kv, "scenario", Duration::from_secs(3));
    wait_for_leases(&observer, o.partitions, workers, Duration::from_secs(30)).await?;

    let started = Instant::now();
    let mut killed = 0;
    let kill_at = prep.inputs.len() * 2 / 5;
    let mut restart_at: Option<Instant> = None;
    let mut end_seqs = vec![0u64; o.partitions as usize];
    match rate {
        None => {
            // As fast as the server takes them, acknowledgements awaited in windows.
            for chunk in prep.inputs.chunks(512) {
                let mut acks = Vec::with_capacity(chunk.len());
                for input in chunk {
                    let mut h = HeaderMap::new();
                    h.insert(headers::MSG_ID, input.1.as_str());
                    h.insert(headers::PUBLISHED, unix_nanos().to_string().as_str());
                    let ack = js
                        .publish_with_headers(names.input_subject(input.0), h, Bytes::from(input.2.clone()))
                        .await
                        .map_err(|e| e.to_string())?;
                    acks.push((input, ack));
                }
                for (input, ack) in acks {
                    let ack = ack.await.map_err(|e| e.to_string())?;
                    if input.1.starts_with("end-") {
                        end_seqs[input.0 as usize] = ack.sequence;
                    }
                }
            }
        }
        Some(rate) => {
            // One at a time (so that a server restart cannot reorder a partition), paced.
            for (i, input) in prep.inputs.iter().enumerate() {
                let due = started + Duration::from_secs_f64(i as f64 / rate);
                if let Some(wait) = due.checked_duration_since(Instant::now()) {
                    tokio::time::sleep(wait).await;
                }
                if i == kill_at {
                    match fault {
                        Fault::None | Fault::CrashBetweenWrites => {}
                        Fault::KillWorker | Fault::KillAndRestartWorker => {
                            procs.kill(0);
                            killed += 1;
                            if fault == Fault::KillAndRestartWorker {
                                restart_at = Some(Instant::now() + Duration::from_secs(2));
                            }
                        }
                        Fault::RestartServer => {
                            server.kill();
                            killed += 1;
                            tokio::time::sleep(Duration::from_secs(1)).await;
                            server.restart().map_err(|e| e.to_string())?;
                            note_started(server.pid());
                        }
                    }
                }
                if restart_at.is_some_and(|t| Instant::now() >= t) {
                    restart_at = None;
                    procs.spawn(0)?;
                }
                let seq = publish_one(&js, names, input).await?;
                if input.1.starts_with("end-") {
                    end_seqs[input.0 as usize] = seq;
                }
            }
            if let Some(t) = restart_at.take() {
                if let Some(wait) = t.checked_duration_since(Instant::now()) {
                    tokio::time::sleep(wait).await;
                }
                procs.spawn(0)?;
            }
        }
    }
    // Done when every partition has finished its End.
    let store =
        KvStore::open(js.clone(), names.clone(), prep.program.clone()).await.map_err(|e| e.to_string())?;
    let deadline = Instant::now() + Duration::from_secs(180);
    let mut last_progress = String::new();
    loop {
        let mut pending = 0;
        for p in 0..o.partitions {
            match store.done(p).await {
                Ok(Some(seq)) if seq >= end_seqs[p as usize] => {}
                Ok(_) => pending += 1,
                Err(e) => {
                    last_progress = e.to_string();
                    pending += 1;
                }
            }
        }
        if pending == 0 {
            break;
        }
        if Instant::now() > deadline {
            return Err(format!(
                "{pending} partitions unfinished after 180 s ({last_progress}); worker logs in {}",
                dir.keep().display()
            ));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let seconds = started.elapsed().as_secs_f64();
    if fault == Fault::CrashBetweenWrites {
        killed += procs.crashed();
    }
    procs.stop_all();
    let mut republished = 0;
    for entry in std::fs::read_dir(dir.path()).map_err(|e| e.to_string())?.flatten() {
        let text = std::fs::read_to_string(entry.path()).unwrap_or_default();
        for line in text.lines() {
            if let Some((_, n)) = line.split_once("re-publishes dropped by the server as duplicates: ") {
                republished += n.trim().parse::<u64>().unwrap_or(0);
            }
        }
    }

    // The effects stream.
    let fx = js.get_stream(names.effects_stream()).await.map_err(|e| e.to_string())?;
    let count = fx.get_info().await.map_err(|e| e.to_string())?.state.messages;
    let mut seen: HashMap<String, u32> = HashMap::new();
    let mut latencies_ms = Vec::new();
    if count > 0 {
        let reader = fx
            .create_consumer(consumer::pull::OrderedConfig {
                deliver_policy: consumer::DeliverPolicy::All,
                ..Default::default()
            })
            .await
            .map_err(|e| e.to_string())?;
        let mut messages = reader.messages().await.map_err(|e| e.to_string())?;
        for _ in 0..count {
            let m = tokio::time::timeout(Duration::from_secs(30), messages.next())
                .await
                .map_err(|_| "reading the effects stream timed out".to_string())?
                .ok_or("the effects stream ended early")?
                .map_err(|e| e.to_string())?;
            let h = m.headers.as_ref();
            let key = h.and_then(|h| h.get(headers::MSG_ID)).map(|v| v.to_string()).unwrap_or_default();
            *seen.entry(key).or_insert(0) += 1;
            let published =
                h.and_then(|h| h.get(headers::PUBLISHED)).and_then(|v| v.as_str().parse::<i128>().ok());
            if let (Some(published), Ok(info)) = (published, m.info()) {
                let stored = info.published.unix_timestamp_nanos();
                latencies_ms.push((stored - published) as f64 / 1e6);
            }
        }
    }
    let lost = prep.expected.keys().filter(|k| !seen.contains_key(*k)).count();
    let unexpected = seen.keys().filter(|k| !prep.expected.contains_key(*k)).count();
    let duplicates = seen.values().map(|&n| n as usize - 1).sum::<usize>();
    // The states.
    let mut states = 0;
    let mut states_equal = true;
    for p in 0..o.partitions {
        for loaded in store.load_partition(p).await.map_err(|e| e.to_string())? {
            states += 1;
            let r = &loaded.record;
            let equal = prep
                .reference
                .get(r.contact.id())
                .is_some_and(|s| s.state == r.state && s.contact == r.contact);
            if !equal && states_equal {
                eprintln!("contact `{}` differs from the reference", r.contact.id());
            }
            states_equal &= equal;
        }
    }
    states_equal &= states == prep.reference.len();
    let dead = js.get_stream(names.dead_stream()).await.map_err(|e| e.to_string())?;
    let dead = dead.get_info().await.map_err(|e| e.to_string())?.state.messages;
    if dead > 0 {
        eprintln!("{dead} inputs went to the dead-letter stream");
    }
    drop(server);
    let name = match fault {
        Fault::None if rate.is_none() => format!("throughput, {workers} worker(s)"),
        Fault::None => format!("paced at {:.0}/s, {workers} workers", rate.unwrap_or(0.0)),
        Fault::KillWorker => "a worker SIGKILLed mid-stream".into(),
        Fault::KillAndRestartWorker => "a worker SIGKILLed mid-stream and restarted".into(),
        Fault::RestartServer => "nats-server SIGKILLed mid-stream and restarted".into(),
        Fault::CrashBetweenWrites => "a worker crashed between effects and state".into(),
    };
    Ok(RunResult {
        name,
        workers,
        seconds,
        events_per_sec: prep.events as f64 / seconds,
        effects_unique: seen.len(),
        effects_total: seen.values().map(|&n| n as usize).sum(),
        lost,
        unexpected,
        duplicates,
        states_equal,
        killed,
        republished,
        latencies_ms,
    })
}

fn quantile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    sorted[((sorted.len() - 1) as f64 * q).round() as usize]
}

fn main() {
    let o = match Options::parse() {
        Ok(o) => o,
        Err(message) => {
            eprintln!("nurture-nats-scenario: {message}");
            std::process::exit(2);
        }
    };
    let server_bin = match server::find() {
        Ok(path) => path,
        Err(reason) => {
            eprintln!("nurture-nats-scenario: {reason}");
            std::process::exit(3);
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("nurture-nats-scenario: {e}");
            std::process::exit(1);
        }
    };
    match runtime.block_on(scenario(&o, &server_bin)) {
        Ok(true) => {}
        Ok(false) => std::process::exit(1),
        Err(message) => {
            eprintln!("nurture-nats-scenario: {message}");
            std::process::exit(1);
        }
    }
}

async fn scenario(o: &Options, server_bin: &Path) -> Result<bool> {
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let prep = prepare(o, dir.path())?;
    let expected: usize = prep.expected.len();
    println!(
        "{} contacts, {} events, {} partitions; reference run: {} effects ({} distinct keys); server {}",
        o.contacts,
        prep.events,
        o.partitions,
        prep.expected.values().sum::<u32>(),
        expected,
        server_bin.display()
    );
    let mut results = Vec::new();
    let mut per_workers = BTreeMap::new();
    let throughput = matches!(o.runs.as_str(), "all" | "throughput");
    let faults = matches!(o.runs.as_str(), "all" | "faults" | "kill");
    if throughput {
        for n in 1..=o.workers {
            let r = run_one(o, &prep, server_bin, n, Fault::None, None).await?;
            per_workers.insert(n, r.events_per_sec);
            report(&r);
            results.push(r);
        }
    }
    let rate =
        o.rate.unwrap_or_else(|| per_workers.get(&o.workers).map_or(500.0, |tp| (tp * 0.5).min(2000.0)));
    let mut latency = Vec::new();
    let mut exercised = true;
    if throughput {
        let r = run_one(o, &prep, server_bin, o.workers, Fault::None, Some(rate)).await?;
        latency = r.latencies_ms.clone();
        report(&r);
        results.push(r);
    }
    if faults {
        let which: &[Fault] = if o.runs == "kill" {
            &[Fault::KillWorker]
        } else {
            &[Fault::KillWorker, Fault::KillAndRestartWorker, Fault::RestartServer, Fault::CrashBetweenWrites]
        };
        for &fault in which {
            let r = run_one(o, &prep, server_bin, o.workers, fault, Some(rate)).await?;
            if fault == Fault::CrashBetweenWrites && (r.killed != 1 || r.republished == 0) {
                // The crash did not come, or its effects were not published again.
                println!("the crash between effects and state was not exercised");
                exercised = false;
            }
            if latency.is_empty() {
                latency = r.latencies_ms.clone();
            }
            report(&r);
            results.push(r);
        }
    }
    latency.sort_by(f64::total_cmp);
    let p50 = quantile(&latency, 0.5);
    let p99 = quantile(&latency, 0.99);
    println!("event-to-effect latency over {} effects: p50 {p50:.2} ms, p99 {p99:.2} ms", latency.len());
    let lost: usize = results.iter().map(|r| r.lost).sum();
    let unexpected: usize = results.iter().map(|r| r.unexpected).sum();
    let duplicates: usize = results.iter().map(|r| r.duplicates).sum();
    let states_equal = results.iter().all(|r| r.states_equal);
    let killed: usize = results.iter().map(|r| r.killed).sum();
    // The effects of the fault runs (all runs must agree).
    let unique = results.iter().map(|r| r.effects_unique).min().unwrap_or(0);
    let pids = STARTED.lock().map(|p| p.clone()).unwrap_or_default();
    println!("processes started (all stopped): {pids:?}");
    let eps: Vec<String> = per_workers.iter().map(|(n, v)| format!("\"{n}\": {v:.0}")).collect();
    let ok = lost == 0 && unexpected == 0 && duplicates == 0 && states_equal && exercised;
    println!(
        "{{\"workers\": {}, \"partitions\": {}, \"events\": {}, \"killed\": {killed}, \"effects_expected\": {expected}, \"effects_unique\": {unique}, \"lost\": {lost}, \"duplicates\": {duplicates}, \"states_equal\": {}, \"events_per_sec\": {{{}}}, \"p99_event_to_effect_ms\": {:.2}}}",
        o.workers,
        o.partitions,
        prep.events,
        states_equal && unexpected == 0,
        eps.join(", "),
        p99
    );
    Ok(ok)
}

fn report(r: &RunResult) {
    println!(
        "{:<48} workers {} | {:>6.1} s | {:>7.0} events/s | effects {} ({} distinct) | lost {} | unexpected {} | duplicates {} | states equal {} | kills {} | re-publishes dropped {}",
        r.name,
        r.workers,
        r.seconds,
        r.events_per_sec,
        r.effects_total,
        r.effects_unique,
        r.lost,
        r.unexpected,
        r.duplicates,
        r.states_equal,
        r.killed,
        r.republished
    );
}
