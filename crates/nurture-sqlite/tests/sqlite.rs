//! The SQLite store and host: conformance, restarts, the outbox, queries, migrations,
//! a full disk and damaged files.

use std::path::PathBuf;
use std::sync::Arc;

use nurture::engine::{Effect, EffectKind, Engine, Status};
use nurture::host::{conformance, Delivery, DeliveryError, MemoryStore, RecordingDelivery, Runtime};
use nurture::{Program, Timestamp};
use nurture_sqlite::{Error, HostOptions, OutboxStatus, RetryPolicy, SqliteHost, SqliteStore, MIGRATIONS};

const RULES: &str = r#"{"version": 1,
  "schema": {
    "contact": {"plan": "string"},
    "events": {"visit": {"url": "string"}, "signup": {}},
    "scores": ["engagement"]
  },
  "segments": [{"id": "engaged", "when": "score.engagement >= 10.0"}],
  "rules": [
    {"id": "welcome", "on": "signup",
     "actions": [{"type": "send", "channel": "email", "template": "welcome"}]},
    {"id": "call-me", "on": "signup",
     "actions": [{"type": "notify_owner", "message": "call them", "needs_approval": true}]},
    {"id": "nudge", "on": {"inactive": "visit", "for": "3d"},
     "actions": [{"type": "send", "channel": "email", "template": "nudge"}]}
  ],
  "scoring": {"models": [{"id": "engagement", "decay": {"half_life": "7d"},
    "rules": [{"id": "visit", "on": "visit", "points": 4}]}]}
}"#;

fn engine() -> Arc<Engine> {
    Arc::new(Engine::new(Arc::new(Program::from_json(RULES).expect("the test rule set compiles"))))
}

fn start() -> Timestamp {
    Timestamp::from_unix(1_767_225_600, 0).expect("in range")
}

fn at(hours: i64) -> Timestamp {
    Timestamp::from_unix(1_767_225_600 + hours * 3_600, 0).expect("in range")
}

/// A fresh directory per test.
fn dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("nurture-sqlite-test-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir
}

fn options() -> HostOptions {
    HostOptions::default().with_group_size(8)
}

/// Events for `contacts` contacts over `hours` hours: visits, and a signup each.
fn events(engine: &Engine, contacts: usize, hours: i64) -> Vec<nurture::Event> {
    let schema = engine.program().schema();
    let mut out = Vec::new();
    for h in 0..hours {
        for c in 0..contacts {
            if (h as usize + c) % 3 == 0 {
                let e = schema.event(format!("v{h}-{c}"), format!("c{c}"), "visit", at(h)).unwrap();
                out.push(e.set("url", "/pricing").unwrap().build());
            }
            if h as usize == c {
                out.push(schema.event(format!("s{c}"), format!("c{c}"), "signup", at(h)).unwrap().build());
            }
        }
    }
    out
}

/// Runs `events` through the in-memory runtime (the reference) and returns it.
fn reference(
    engine: &Arc<Engine>,
    events: &[nurture::Event],
    end: Timestamp,
) -> Runtime<MemoryStore, RecordingDelivery> {
    let mut runtime = Runtime::new(engine.clone(), MemoryStore::new(), RecordingDelivery::default(), start());
    let schema = engine.program().schema();
    for e in events {
        if runtime.store().get(e.contact()).is_none() {
            runtime.advance_to(e.at()).unwrap();
            runtime
                .add_contact(schema.contact(e.contact().clone()).set("plan", "pro").unwrap().build())
                .unwrap();
        }
        let _ = runtime.ingest(e).unwrap();
    }
    runtime.advance_to(end).unwrap();
    runtime
}

/// Feeds `events[host.cursor()..]` to the host, `end` at the last.
fn feed<D: Delivery>(
    host: &mut SqliteHost<D>,
    events: &[nurture::Event],
    end: Timestamp,
) -> Result<(), Error> {
    let schema = host.engine().program().schema().clone();
    let from = host.cursor() as usize;
    for (i, e) in events.iter().enumerate().skip(from) {
        if !host.contains(e.contact())? {
            host.advance_to(e.at())?;
            host.add_contact(schema.contact(e.contact().clone()).set("plan", "pro").unwrap().build())?;
        }
        let _ = host.ingest(e)?;
        host.set_cursor(i as u64 + 1);
    }
    host.advance_to(end)?;
    host.flush()
}

fn keys(effects: &[Effect]) -> Vec<String> {
    let mut keys: Vec<String> = effects.iter().map(|e| e.key.to_string()).collect();
    keys.sort();
    keys
}

#[test]
fn sqlite_store_passes_the_conformance_suite_in_memory_and_on_disk() {
    let passed = conformance::run(|engine| {
        SqliteStore::open_in_memory(engine.program().schema_arc().clone()).unwrap()
    });
    assert_eq!(passed, Ok(conformance::CHECKS.to_vec()));
    let d = dir("conformance");
    let mut n = 0;
    let passed = conformance::run(|engine| {
        n += 1;
        SqliteStore::open(d.join(format!("store-{n}.db")), engine.program().schema_arc().clone()).unwrap()
    });
    assert_eq!(passed, Ok(conformance::CHECKS.to_vec()));
}

#[test]
fn host_matches_the_in_memory_runtime_and_restarts_between_every_group() {
    let engine = engine();
    let events = events(&engine, 12, 24 * 6);
    let end = at(24 * 8);
    let runtime = reference(&engine, &events, end);
    let d = dir("restarts");
    let path = d.join("host.db");
    let mut delivered = Vec::new();
    // Reopen the database every 50 inputs, as a host restarted by its supervisor.
    loop {
        let mut host =
            SqliteHost::open(&path, engine.clone(), RecordingDelivery::default(), start(), options())
                .unwrap();
        let from = host.cursor() as usize;
        let until = (from + 50).min(events.len());
        feed(&mut host, &events[..until], if until == events.len() { end } else { events[until - 1].at() })
            .unwrap();
        delivered.extend(host.delivery().delivered.iter().cloned());
        if until == events.len() {
            break;
        }
    }
    // Every ready effect once, the held one not at all.
    assert_eq!(keys(&delivered), keys(&runtime.delivery().delivered));
    let mut store = SqliteStore::open(&path, engine.program().schema_arc().clone()).unwrap();
    for reference in runtime.store().iter() {
        let stored = nurture::host::ContactStore::load(&mut store, reference.contact.id()).unwrap().unwrap();
        assert_eq!(&stored.value, reference, "contact {}", reference.contact.id());
    }
    // Queries without reading state blobs.
    let members = store.segment_members("engaged").unwrap();
    let expected: Vec<_> = runtime
        .store()
        .iter()
        .filter(|s| s.state.in_segment("engaged"))
        .map(|s| s.contact.id().clone())
        .collect();
    assert_eq!(members.len(), expected.len());
    assert!(!members.is_empty());
    assert_eq!(store.segment_sizes().unwrap(), vec![("engaged".to_string(), expected.len() as u64)]);
    let scores = store.scores(&"c3".into()).unwrap();
    assert_eq!(scores.len(), 1);
    let state = &runtime.store().get(&"c3".into()).unwrap().state;
    let value =
        engine.program().scorer().unwrap().value(state.scores().unwrap(), 0, state.last_change()).unwrap();
    assert_eq!(
        (scores[0].score.as_str(), scores[0].value, scores[0].as_of),
        ("engagement", value, state.last_change())
    );
    let top = store.top_scores("engagement", 3).unwrap();
    assert_eq!(top.len(), 3);
    assert!(top[0].1 >= top[2].1);
    let held = store.effects_by_status(OutboxStatus::Held, 100).unwrap();
    assert_eq!(held.len(), 12, "one notify_owner per signup awaits approval");
    assert!(held.iter().all(|e| e.effect.status == Status::PendingApproval));
    let due = store.due_before(at(24 * 60), 1_000).unwrap();
    assert_eq!(due.len(), store.contact_count().unwrap() as usize);
    assert!(due.windows(2).all(|w| w[0].1 <= w[1].1));
    std::fs::remove_dir_all(d).unwrap();
}

#[test]
fn approvals_and_rejections_go_through_the_outbox() {
    let engine = engine();
    let d = dir("approvals");
    let mut host =
        SqliteHost::open(d.join("host.db"), engine.clone(), RecordingDelivery::default(), start(), options())
            .unwrap();
    let schema = engine.program().schema();
    for c in ["a", "b"] {
        host.add_contact(schema.contact(c).build()).unwrap();
        let _ = host.ingest(&schema.event(format!("s-{c}"), c, "signup", at(1)).unwrap().build()).unwrap();
    }
    host.flush().unwrap();
    assert_eq!(host.delivery().delivered.len(), 2, "the welcome emails");
    let held = host.store().effects_by_status(OutboxStatus::Held, 10).unwrap();
    assert_eq!(held.len(), 2);
    drop(host);
    // After a restart the held effects are still there.
    let mut host =
        SqliteHost::open(d.join("host.db"), engine.clone(), RecordingDelivery::default(), start(), options())
            .unwrap();
    let (a, b) = (&held[0].effect, &held[1].effect);
    assert!(host.approve(&a.contact, a.key).unwrap());
    assert!(!host.approve(&a.contact, a.key).unwrap(), "approved once");
    assert!(host.reject(&b.contact, b.key, "not a fit").unwrap());
    host.flush().unwrap();
    assert_eq!(host.delivery().delivered.len(), 1);
    assert_eq!(host.delivery().delivered[0].key, a.key);
    assert!(matches!(host.delivery().delivered[0].kind, EffectKind::Action { .. }));
    let rejected = host.store().effects_by_status(OutboxStatus::Rejected, 10).unwrap();
    assert_eq!(rejected.len(), 1);
    assert_eq!(rejected[0].last_error.as_deref(), Some("not a fit"));
    assert!(host.contact(&b.contact).unwrap().unwrap().state.pending().is_empty());
    drop(host);
    std::fs::remove_dir_all(d).unwrap();
}

/// Fails the first `failures` attempts of every effect.
#[derive(Default)]
struct Flaky {
    failures: u32,
    attempts: std::collections::HashMap<u128, u32>,
    delivered: Vec<Effect>,
}

impl Delivery for Flaky {
    fn deliver(&mut self, effect: &Effect) -> Result<(), DeliveryError> {
        let n = self.attempts.entry(effect.key.0).or_default();
        *n += 1;
        if *n <= self.failures {
            return Err(DeliveryError { message: format!("mailer down (attempt {n})") });
        }
        self.delivered.push(effect.clone());
        Ok(())
    }
}

#[test]
fn failed_deliveries_are_retried_with_backoff_and_given_up_with_a_reason() {
    let engine = engine();
    let schema = engine.program().schema();
    let retry = RetryPolicy {
        max_attempts: 3,
        first_backoff: std::time::Duration::from_secs(10),
        max_backoff: std::time::Duration::from_secs(15),
    };
    assert_eq!(retry.backoff(1).as_secs(), 10);
    assert_eq!(retry.backoff(2).as_secs(), 15, "capped");
    let store = SqliteStore::open_in_memory(engine.program().schema_arc().clone()).unwrap();
    let opts = options().with_retry(retry).with_deliver_on_commit(false);
    let mut host = SqliteHost::with_store(
        store,
        engine.clone(),
        Flaky { failures: 2, ..Flaky::default() },
        start(),
        opts,
    )
    .unwrap();
    host.add_contact(schema.contact("a").build()).unwrap();
    let _ = host.ingest(&schema.event("s", "a", "signup", at(1)).unwrap().build()).unwrap();
    let t = 1_000_000;
    assert_eq!(host.deliver_pending_at(t).unwrap(), 0, "first attempt fails");
    assert_eq!(host.deliver_pending_at(t + 9_999).unwrap(), 0, "not due before the backoff");
    assert_eq!(host.delivery().attempts.values().sum::<u32>(), 1);
    let pending = host.store().effects_by_status(OutboxStatus::Pending, 10).unwrap();
    assert_eq!(pending[0].attempts, 1);
    assert_eq!(pending[0].last_error.as_deref(), Some("delivery failed: mailer down (attempt 1)"));
    assert_eq!(host.deliver_pending_at(t + 10_000).unwrap(), 0, "second attempt fails");
    assert_eq!(host.deliver_pending_at(t + 10_000 + 15_000).unwrap(), 1, "third attempt succeeds");
    assert_eq!(host.delivery().delivered.len(), 1);

    // With one attempt fewer the effect is given up, kept with its reason, and can be
    // put back.
    let store = SqliteStore::open_in_memory(engine.program().schema_arc().clone()).unwrap();
    let retry = RetryPolicy { max_attempts: 2, ..retry };
    let opts = options().with_retry(retry).with_deliver_on_commit(false);
    let mut host = SqliteHost::with_store(
        store,
        engine.clone(),
        Flaky { failures: 2, ..Flaky::default() },
        start(),
        opts,
    )
    .unwrap();
    host.add_contact(schema.contact("a").build()).unwrap();
    let _ = host.ingest(&schema.event("s", "a", "signup", at(1)).unwrap().build()).unwrap();
    host.deliver_pending_at(t).unwrap();
    host.deliver_pending_at(t + 100_000).unwrap();
    let dead = host.store().effects_by_status(OutboxStatus::Dead, 10).unwrap();
    assert_eq!(dead.len(), 1);
    assert_eq!(
        dead[0].last_error.as_deref(),
        Some("gave up after 2 attempts: delivery failed: mailer down (attempt 2)")
    );
    assert_eq!(host.deliver_pending_at(t + 1_000_000).unwrap(), 0, "dead effects are not retried");
    assert!(host.retry_dead(dead[0].effect.key).unwrap());
    assert_eq!(host.deliver_pending_at(t + 1_000_000).unwrap(), 1);
    assert_eq!(host.stats().dead, 1);
}

#[test]
fn a_full_disk_gives_a_clear_error_and_loses_nothing_committed() {
    let engine = engine();
    let events = events(&engine, 40, 24 * 4);
    let end = at(24 * 6);
    let runtime = reference(&engine, &events, end);
    let d = dir("full");
    let path = d.join("host.db");
    let mut delivered = Vec::new();
    let mut full = 0;
    loop {
        let store = SqliteStore::open(&path, engine.program().schema_arc().clone()).unwrap();
        let mut host =
            SqliteHost::with_store(store, engine.clone(), RecordingDelivery::default(), start(), options())
                .unwrap();
        // A page limit a little above the current size: the disk fills up soon.
        let pages = host.store().size_bytes().unwrap() / 4096 + 12;
        host.store_mut().set_max_page_count(pages).unwrap();
        let committed = host.cursor();
        let result = feed(&mut host, &events, end);
        delivered.extend(host.delivery().delivered.iter().cloned());
        match result {
            Ok(()) => break,
            Err(e @ Error::DiskFull(_)) => {
                full += 1;
                let message = e.to_string();
                assert!(message.contains("the database is full"), "{message}");
                assert!(message.contains("nothing committed was lost"), "{message}");
                assert!(host.cursor() >= committed, "the cursor never goes back past a commit");
            }
            Err(e) => panic!("unexpected error: {e}"),
        }
        assert!(full < 500, "no progress");
    }
    assert!(full >= 3, "the disk filled up {full} times");
    // Nothing lost, nothing twice: the same effects and states as without a full disk.
    let mut got = keys(&delivered);
    got.dedup();
    assert_eq!(got, keys(&runtime.delivery().delivered));
    let mut store = SqliteStore::open(&path, engine.program().schema_arc().clone()).unwrap();
    for reference in runtime.store().iter() {
        let stored = nurture::host::ContactStore::load(&mut store, reference.contact.id()).unwrap().unwrap();
        assert_eq!(&stored.value, reference);
    }
    std::fs::remove_dir_all(d).unwrap();
}

#[test]
fn a_newer_database_is_refused_and_left_unchanged() {
    let engine = engine();
    let d = dir("newer");
    let path = d.join("host.db");
    let store = SqliteStore::open(&path, engine.program().schema_arc().clone()).unwrap();
    assert_eq!(store.schema_version().unwrap(), MIGRATIONS.last().unwrap().version);
    drop(store);
    let conn = rusqlite::Connection::open(&path).unwrap();
    conn.execute("INSERT INTO schema_migrations (version, name) VALUES (99, 'from the future')", []).unwrap();
    drop(conn);
    let err = SqliteStore::open(&path, engine.program().schema_arc().clone()).unwrap_err();
    assert!(matches!(err, Error::TooNew { found: 99, .. }), "{err}");
    assert!(err.to_string().contains("newer than this code"), "{err}");
    let conn = rusqlite::Connection::open(&path).unwrap();
    let n: u32 = conn.query_row("SELECT count(*) FROM schema_migrations", [], |r| r.get(0)).unwrap();
    assert_eq!(n, 2);
    std::fs::remove_dir_all(d).unwrap();
}

#[test]
fn damaged_files_and_rows_give_clear_errors() {
    let engine = engine();
    let d = dir("damaged");
    let path = d.join("not-a-db");
    std::fs::write(&path, vec![b'x'; 8192]).unwrap();
    let err = SqliteStore::open(&path, engine.program().schema_arc().clone()).unwrap_err();
    assert!(matches!(err, Error::Corrupt(_)), "{err}");
    assert!(err.to_string().contains("not a nurture-sqlite database"), "{err}");

    let path = d.join("host.db");
    let mut host =
        SqliteHost::open(&path, engine.clone(), RecordingDelivery::default(), start(), options()).unwrap();
    let schema = engine.program().schema();
    host.add_contact(schema.contact("a").build()).unwrap();
    host.add_contact(schema.contact("b").build()).unwrap();
    host.flush().unwrap();
    drop(host);
    let conn = rusqlite::Connection::open(&path).unwrap();
    conn.execute("UPDATE contacts SET state = X'7b7b' WHERE id = 'a'", []).unwrap();
    drop(conn);
    let mut host =
        SqliteHost::open(&path, engine.clone(), RecordingDelivery::default(), start(), options()).unwrap();
    let err = host.ingest(&schema.event("e1", "a", "visit", at(1)).unwrap().build()).unwrap_err();
    assert!(matches!(err, Error::BadRow { what: "state", .. }), "{err}");
    assert!(err.to_string().starts_with("contact `a`: the stored state cannot be read"), "{err}");
    // The other contacts go on; the error did not roll back their committed work.
    let _ = host.ingest(&schema.event("e2", "b", "visit", at(1)).unwrap().build()).unwrap();
    host.flush().unwrap();
    assert_eq!(host.contact(&"b".into()).unwrap().unwrap().state.last_change(), at(1));
    let err = host.ingest(&schema.event("e3", "nobody", "visit", at(2)).unwrap().build()).unwrap_err();
    assert_eq!(err.to_string(), "no contact `nobody`; add it first");
    drop(host);
    std::fs::remove_dir_all(d).unwrap();
}

#[test]
fn a_backup_is_a_database_of_its_own() {
    let engine = engine();
    let d = dir("backup");
    let mut host =
        SqliteHost::open(d.join("host.db"), engine.clone(), RecordingDelivery::default(), start(), options())
            .unwrap();
    let events = events(&engine, 5, 24);
    feed(&mut host, &events, at(24)).unwrap();
    host.store().backup_to(d.join("backup.db")).unwrap();
    let copy = SqliteStore::open(d.join("backup.db"), engine.program().schema_arc().clone()).unwrap();
    assert_eq!(copy.contact_count().unwrap(), 5);
    assert_eq!(copy.outbox_counts().unwrap(), host.store().outbox_counts().unwrap());
    drop(host);
    std::fs::remove_dir_all(d).unwrap();
}

/// The child of the I/O error test: feeds the stream until the database fails, and
/// reports the error and the committed cursor on stdout.
fn io_child(dir: &str) {
    let engine = engine();
    let events = events(&engine, 40, 24 * 4);
    let path = PathBuf::from(dir).join("host.db");
    let mut host =
        SqliteHost::open(&path, engine.clone(), RecordingDelivery::default(), start(), options()).unwrap();
    match feed(&mut host, &events, at(24 * 6)) {
        Ok(()) => println!("IOCHILD finished"),
        Err(e) => println!("IOCHILD error cursor={} {e}", host.cursor()),
    }
}

#[test]
fn an_io_error_gives_a_clear_error_and_loses_nothing_committed() {
    const NAME: &str = "an_io_error_gives_a_clear_error_and_loses_nothing_committed";
    if let Ok(dir) = std::env::var("NURTURE_SQLITE_IO_CHILD") {
        io_child(&dir);
        return;
    }
    let engine = engine();
    let events = events(&engine, 40, 24 * 4);
    let end = at(24 * 6);
    let runtime = reference(&engine, &events, end);
    let d = dir("io");
    // A real operating-system error: the child may not write files beyond 1 MiB
    // (RLIMIT_FSIZE; SIGXFSZ ignored, so writes fail with EFBIG).
    let exe = std::env::current_exe().unwrap();
    let out = std::process::Command::new("bash")
        .arg("-c")
        .arg(r#"trap '' XFSZ; ulimit -f 1024; exec "$0" "$@""#)
        .arg(&exe)
        .args(["--exact", NAME, "--nocapture", "--test-threads", "1"])
        .env("NURTURE_SQLITE_IO_CHILD", &d)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let line = stdout
        .lines()
        .find_map(|l| l.find("IOCHILD").map(|i| &l[i..]))
        .unwrap_or_else(|| panic!("child said: {stdout}"));
    assert!(line.contains("IOCHILD error"), "{line}");
    assert!(line.contains("i/o error on the database"), "{line}");
    assert!(line.contains("nothing committed was lost"), "{line}");
    let cursor: usize =
        line.split("cursor=").nth(1).and_then(|r| r.split(' ').next()).unwrap().parse().unwrap();
    assert!(cursor > 0 && cursor < events.len(), "the child failed part way ({cursor} of {})", events.len());
    // Reopened without the limit, the host resumes at the committed cursor and ends
    // exactly as an uninterrupted run.
    let path = d.join("host.db");
    let mut host =
        SqliteHost::open(&path, engine.clone(), RecordingDelivery::default(), start(), options()).unwrap();
    assert_eq!(host.cursor() as usize, cursor, "what was committed is there");
    feed(&mut host, &events, end).unwrap();
    drop(host);
    let mut store = SqliteStore::open(&path, engine.program().schema_arc().clone()).unwrap();
    for reference in runtime.store().iter() {
        let stored = nurture::host::ContactStore::load(&mut store, reference.contact.id()).unwrap().unwrap();
        assert_eq!(&stored.value, reference);
    }
    let delivered = store.outbox_counts().unwrap();
    let ready = runtime.delivery().delivered.len() as u64;
    assert!(delivered.contains(&(OutboxStatus::Delivered, ready)), "{delivered:?} vs {ready}");
    std::fs::remove_dir_all(d).unwrap();
}

#[test]
fn a_new_program_adopts_stored_states_and_schedules_its_timed_rules() {
    let engine = engine();
    let d = dir("adopt");
    let path = d.join("host.db");
    let events = events(&engine, 4, 12);
    let mut host =
        SqliteHost::open(&path, engine.clone(), RecordingDelivery::default(), start(), options()).unwrap();
    feed(&mut host, &events, at(12)).unwrap();
    drop(host);
    // The new program adds a score model (the stored states no longer fit) and a rule
    // started by a day without visits.
    let rules = RULES
        .replace(r#""scores": ["engagement"]"#, r#""scores": ["engagement", "loyalty"]"#)
        .replace(
            r#""rules": [
    {"id": "welcome""#,
            r#""rules": [
    {"id": "check-in", "on": {"inactive": "visit", "for": "1d"},
     "actions": [{"type": "send", "channel": "email", "template": "check-in"}]},
    {"id": "welcome""#,
        )
        .replace(
            r#""rules": [{"id": "visit", "on": "visit", "points": 4}]}]"#,
            r#""rules": [{"id": "visit", "on": "visit", "points": 4}]},
              {"id": "loyalty", "rules": [{"id": "signed-up", "on": "signup", "points": 1}]}]"#,
        );
    assert_ne!(rules, RULES);
    let engine2 =
        Arc::new(Engine::new(Arc::new(Program::from_json(&rules).expect("the new rule set compiles"))));
    let mut host =
        SqliteHost::open(&path, engine.clone(), RecordingDelivery::default(), start(), options()).unwrap();
    assert_eq!(host.clock(), at(12), "the clock was committed");
    host.replace_engine(engine2.clone());
    assert_eq!(host.reschedule_all().unwrap(), 4);
    host.advance_to(at(48)).unwrap();
    host.flush().unwrap();
    let check_ins = host
        .delivery()
        .delivered
        .iter()
        .filter(|e| matches!(&e.kind, EffectKind::Action { rule, .. } if rule.as_str() == "check-in"))
        .count();
    assert_eq!(check_ins, 4, "every contact went a day without visits");
    for c in 0..4 {
        let id = format!("c{c}").into();
        let stored = host.contact(&id).unwrap().unwrap();
        assert!(engine2.fits(&stored.state), "c{c} adopted");
        let scores: Vec<String> = host.store().scores(&id).unwrap().into_iter().map(|s| s.score).collect();
        assert_eq!(scores, ["engagement", "loyalty"]);
    }
    drop(host);
    std::fs::remove_dir_all(d).unwrap();
}

#[test]
fn events_far_ahead_are_refused_and_a_failing_wake_up_is_dropped_for_the_others() {
    let d = dir("far-ahead");
    let path = d.join("host.db");
    let engine = engine();
    let schema = engine.program().schema().clone();
    let options = HostOptions::default().with_group_size(1);
    let mut host =
        SqliteHost::open(&path, engine.clone(), RecordingDelivery::default(), start(), options).unwrap();
    for id in ["a", "b", "c"] {
        host.add_contact(schema.contact(id).build()).unwrap();
        let visit = schema.event(format!("v-{id}"), id, "visit", at(1)).unwrap().set("url", "/").unwrap();
        let _ = host.ingest(&visit.build()).unwrap();
    }
    // Dated 2500: refused, the clock and every contact untouched.
    let far = Timestamp::parse("2500-01-01T00:00:00Z").unwrap();
    let error = host.ingest(&schema.event("x", "a", "signup", far).unwrap().build()).unwrap_err();
    assert!(matches!(error, Error::TooFarAhead { .. }), "{error}");
    assert_eq!(host.clock(), at(1));
    // `a`'s state row is damaged behind the host's back: its nudge (3 days after its
    // visit) fails; the others' go on, and later events are taken.
    let conn = rusqlite::Connection::open(&path).unwrap();
    conn.execute("UPDATE contacts SET state = CAST('{}' AS BLOB) WHERE id = 'a'", []).unwrap();
    let handled = host.advance_to(at(80)).unwrap();
    assert_eq!(handled, 2);
    let failures = host.take_wake_failures();
    assert_eq!(failures.len(), 1);
    assert_eq!(failures[0].contact.as_str(), "a");
    assert_eq!(host.stats().dropped_wakeups, 1);
    let visit = schema.event("v2", "b", "visit", at(81)).unwrap().set("url", "/").unwrap().build();
    let _ = host.ingest(&visit).expect("another contact's failed wake-up does not fail this event");
    host.flush().unwrap();
    let nudges = host
        .delivery()
        .delivered
        .iter()
        .filter(|e| matches!(&e.kind, EffectKind::Action { rule, .. } if rule.as_str() == "nudge"))
        .count();
    assert_eq!(nudges, 2);
}

#[test]
fn a_removed_contact_field_is_dropped_when_contacts_are_read() {
    let d = dir("removed-field");
    let engine = engine();
    let schema = engine.program().schema().clone();
    let mut host =
        SqliteHost::open(d.join("host.db"), engine, RecordingDelivery::default(), start(), options())
            .unwrap();
    host.add_contact(schema.contact("a").set("plan", "pro").unwrap().build()).unwrap();
    // The next program has no `plan`, and a new field sorted before it.
    let without = RULES.replace(r#""contact": {"plan": "string"}"#, r#""contact": {"age": "int"}"#);
    let next = Arc::new(Engine::new(Arc::new(Program::from_json(&without).unwrap())));
    host.replace_engine(next.clone());
    let visit = next.program().schema().event("v1", "a", "visit", at(1)).unwrap().set("url", "/").unwrap();
    let _ = host.ingest(&visit.build()).expect("the contact still loads");
    let stored = host.contact(&nurture::ContactId::from("a")).unwrap().unwrap();
    assert_eq!(
        next.program().schema().contact_to_json(&stored.contact).unwrap()["attributes"],
        serde_json::json!({})
    );
}
