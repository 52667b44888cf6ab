//! One conformance suite for [`ContactStore`] implementations: what every store must do,
//! checked the same way for the in-memory store, the SQLite store and the stores to come.
//!
//! A store crate runs it from a test, with a closure that makes a fresh, empty store
//! for the suite's engine (a store that keeps contacts as JSON reads them back with the
//! program's schema; one that indexes wake-ups asks the engine):
//!
//! ```
//! use nurture::host::{conformance, MemoryStore};
//!
//! let passed = conformance::run(|_engine| MemoryStore::new())?;
//! assert_eq!(passed.len(), conformance::CHECKS.len());
//! # Ok::<(), conformance::Failure>(())
//! ```
//!
//! The checks ([`CHECKS`]):
//!
//! - **missing**: a contact never saved loads as `None`, `modify` returns `None` and
//!   does not call the change, and a save expecting a version conflicts (found `None`).
//! - **versions**: the first save (expecting `None`) returns version 1, each later save
//!   one more; `load` returns the value and version saved, unchanged.
//! - **create race**: a second save expecting `None` conflicts and leaves the first.
//! - **lost race**: two writers load version *n*; the first save wins, the second gets
//!   [`StoreError::Conflict`] with `expected` *n* and `found` *n + 1*, and the stored
//!   value is the winner's.
//! - **modify**: a change returning `true` is saved with the version incremented; one
//!   returning `false` leaves value and version as they were.
//! - **isolation**: contacts are independent: saving one changes no other, and ids that
//!   differ only in case, by a trailing space or by Unicode normalisation are distinct.
//! - **large state**: a contact with a 1 MiB attribute and a state with hundreds of tags
//!   and a full duplicate window round-trips exactly.
//! - **exact values**: doubles (including the shortest and the longest decimal forms),
//!   timestamps with nanoseconds, and the decayed scores inside a state round-trip bit
//!   for bit, so that a restarted host decides exactly as an uninterrupted one.
//! - **many contacts**: 500 contacts saved and updated in an interleaved order load back
//!   with the right values and versions.

use std::sync::Arc;

use crate::engine::{Engine, EngineScratch};
use crate::host::store::{ContactStore, StoreError, StoredContact, Versioned};
use crate::id::ContactId;
use crate::program::Program;
use crate::schema::Schema;
use crate::time::Timestamp;

/// The names of the checks [`run`] performs, in order.
pub const CHECKS: &[&str] = &[
    "missing",
    "versions",
    "create race",
    "lost race",
    "modify",
    "isolation",
    "large state",
    "exact values",
    "many contacts",
];

/// A check the store failed: its name and what went wrong.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("store conformance check `{check}` failed: {message}")]
pub struct Failure {
    /// The check, one of [`CHECKS`].
    pub check: &'static str,
    /// What was expected and what the store did.
    pub message: String,
}

/// The suite's rule set: a decaying score (so states hold doubles that must round-trip
/// exactly), many tag rules (for a large state) and a few attributes of every kind.
fn program() -> Program {
    let mut tags = String::new();
    for i in 0..300 {
        tags.push_str(&format!(
            r#",{{"id": "tag-{i}", "on": "visit", "actions": [{{"type": "add_tag", "tag": "tag-number-{i:04}"}}]}}"#
        ));
    }
    let json = format!(
        r#"{{"version": 1,
  "schema": {{
    "contact": {{"name": "string", "size": "int", "ratio": "double", "since": "timestamp", "vip": "bool"}},
    "events": {{"visit": {{"weight": "double"}}}},
    "scores": ["engagement"]
  }},
  "rules": [{{"id": "hello", "on": "visit", "actions": [{{"type": "send", "channel": "email", "template": "hello"}}]}}{tags}],
  "scoring": {{"models": [{{"id": "engagement", "decay": {{"half_life": "7d"}},
    "rules": [{{"id": "visit", "on": "visit", "points": 3.3}}]}}]}}
}}"#
    );
    // The document is fixed and checked by this crate's tests.
    Program::from_json(&json).expect("the conformance rule set compiles")
}

/// Everything one run shares.
struct Fixture {
    engine: Arc<Engine>,
    start: Timestamp,
}

impl Fixture {
    fn schema(&self) -> &Schema {
        self.engine.program().schema()
    }

    /// A contact with a few attributes, its state created at the start.
    fn stored(&self, id: &str, name: &str) -> Result<StoredContact, String> {
        let contact = self
            .schema()
            .contact(id)
            .set("name", name)
            .and_then(|b| b.set("size", 42))
            .map_err(|e| e.to_string())?
            .build();
        let state = self.engine.new_state(&contact, self.start);
        Ok(StoredContact { contact, state })
    }

    /// `stored` after `visits` events an hour apart (scores, tags, duplicate window).
    fn visited(&self, id: &str, visits: usize) -> Result<StoredContact, String> {
        let mut stored = self.stored(id, "visitor")?;
        let mut scratch = EngineScratch::default();
        for i in 0..visits {
            let at = Timestamp::from_unix(self.start.unix_seconds() + 3_600 * i as i64, 123_456_789)
                .map_err(|e| e.to_string())?;
            let event = self
                .schema()
                .event(format!("{id}-e{i}"), id, "visit", at)
                .and_then(|b| b.set("weight", 0.1 * i as f64))
                .map_err(|e| e.to_string())?
                .build();
            let _ = self
                .engine
                .handle_event(&mut stored.state, &stored.contact, &event, &mut scratch)
                .map_err(|e| e.to_string())?;
        }
        Ok(stored)
    }
}

type Check<S> = fn(&Fixture, &mut S) -> Result<(), String>;

/// Runs every check in [`CHECKS`] on stores made by `fresh` (one fresh, empty store
/// per check, for the engine given), and returns the names of the checks passed.
///
/// # Errors
///
/// The first [`Failure`]: the check's name and what the store did wrong (a store error
/// where none was expected included).
pub fn run<S: ContactStore>(mut fresh: impl FnMut(&Arc<Engine>) -> S) -> Result<Vec<&'static str>, Failure> {
    let engine = Arc::new(Engine::new(Arc::new(program())));
    let start = Timestamp::from_unix(1_767_225_600, 0)
        .map_err(|e| Failure { check: "setup", message: e.to_string() })?;
    let fixture = Fixture { engine, start };
    let checks: [Check<S>; 9] = [
        missing,
        versions,
        create_race,
        lost_race,
        modify,
        isolation,
        large_state,
        exact_values,
        many_contacts,
    ];
    let mut passed = Vec::new();
    for (name, check) in CHECKS.iter().zip(checks) {
        let mut store = fresh(&fixture.engine);
        check(&fixture, &mut store).map_err(|message| Failure { check: name, message })?;
        passed.push(*name);
    }
    Ok(passed)
}

fn id(s: &str) -> ContactId {
    ContactId::from(s)
}

fn load<S: ContactStore>(store: &mut S, contact: &str) -> Result<Option<Versioned<StoredContact>>, String> {
    store.load(&id(contact)).map_err(|e| format!("load `{contact}`: unexpected error: {e}"))
}

fn expect_stored<S: ContactStore>(
    store: &mut S,
    contact: &str,
    value: &StoredContact,
    version: u64,
) -> Result<(), String> {
    match load(store, contact)? {
        Some(found) if found.version != version => {
            Err(format!("`{contact}`: expected version {version}, loaded {}", found.version))
        }
        Some(found) if &found.value != value => {
            Err(format!("`{contact}`: the loaded value differs from the one saved (version {version})"))
        }
        Some(_) => Ok(()),
        None => Err(format!("`{contact}`: saved at version {version} but loads as missing")),
    }
}

fn expect_conflict(
    result: Result<u64, StoreError>,
    what: &str,
    expected: Option<u64>,
    found: Option<u64>,
) -> Result<(), String> {
    match result {
        Err(StoreError::Conflict { expected: e, found: f, .. }) if e == expected && f == found => Ok(()),
        Err(StoreError::Conflict { expected: e, found: f, .. }) => Err(format!(
            "{what}: conflict reported expected {e:?} found {f:?}, should be {expected:?} and {found:?}"
        )),
        Err(other) => Err(format!("{what}: expected a conflict, got the error `{other}`")),
        Ok(v) => Err(format!("{what}: expected a conflict, the save succeeded with version {v}")),
    }
}

fn save<S: ContactStore>(
    store: &mut S,
    contact: &str,
    value: StoredContact,
    expected: Option<u64>,
) -> Result<u64, String> {
    store
        .save(&id(contact), value, expected)
        .map_err(|e| format!("save `{contact}` expecting {expected:?}: unexpected error: {e}"))
}

fn missing<S: ContactStore>(f: &Fixture, store: &mut S) -> Result<(), String> {
    if load(store, "nobody")?.is_some() {
        return Err("a contact never saved loads as present".into());
    }
    let mut called = false;
    let modified = store
        .modify(&id("nobody"), &mut |_| {
            called = true;
            true
        })
        .map_err(|e| format!("modify a missing contact: unexpected error: {e}"))?;
    if modified.is_some() || called {
        return Err(format!("modify of a missing contact returned {modified:?} (called: {called})"));
    }
    let result = store.save(&id("nobody"), f.stored("nobody", "x")?, Some(1));
    expect_conflict(result, "save of a missing contact expecting version 1", Some(1), None)?;
    if load(store, "nobody")?.is_some() {
        return Err("a refused save stored the contact".into());
    }
    Ok(())
}

fn versions<S: ContactStore>(f: &Fixture, store: &mut S) -> Result<(), String> {
    let first = f.stored("c1", "first")?;
    let v = save(store, "c1", first.clone(), None)?;
    if v != 1 {
        return Err(format!("the first save returned version {v}, not 1"));
    }
    expect_stored(store, "c1", &first, 1)?;
    for n in 2..=5u64 {
        let value = f.visited("c1", n as usize)?;
        let v = save(store, "c1", value.clone(), Some(n - 1))?;
        if v != n {
            return Err(format!("save number {n} returned version {v}"));
        }
        expect_stored(store, "c1", &value, n)?;
    }
    Ok(())
}

fn create_race<S: ContactStore>(f: &Fixture, store: &mut S) -> Result<(), String> {
    let winner = f.stored("c1", "winner")?;
    save(store, "c1", winner.clone(), None)?;
    let result = store.save(&id("c1"), f.stored("c1", "loser")?, None);
    expect_conflict(result, "a second create", None, Some(1))?;
    expect_stored(store, "c1", &winner, 1)
}

fn lost_race<S: ContactStore>(f: &Fixture, store: &mut S) -> Result<(), String> {
    save(store, "c1", f.stored("c1", "original")?, None)?;
    save(store, "c1", f.stored("c1", "second")?, Some(1))?;
    let a = load(store, "c1")?.ok_or("saved contact missing")?;
    let b = load(store, "c1")?.ok_or("saved contact missing")?;
    if a.version != 2 || b.version != 2 {
        return Err(format!("two loads returned versions {} and {}, not 2", a.version, b.version));
    }
    let mut mine = a.value;
    mine.state = f.visited("c1", 2)?.state;
    let mut theirs = b.value;
    theirs.state = f.visited("c1", 3)?.state;
    let v = save(store, "c1", mine.clone(), Some(2))?;
    if v != 3 {
        return Err(format!("the winning save returned version {v}, not 3"));
    }
    let result = store.save(&id("c1"), theirs, Some(2));
    expect_conflict(result, "the losing save", Some(2), Some(3))?;
    expect_stored(store, "c1", &mine, 3)?;
    // The loser reloads and succeeds.
    let reloaded = load(store, "c1")?.ok_or("saved contact missing")?;
    let v = save(store, "c1", reloaded.value, Some(reloaded.version))?;
    if v != 4 {
        return Err(format!("the retried save returned version {v}, not 4"));
    }
    Ok(())
}

fn modify<S: ContactStore>(f: &Fixture, store: &mut S) -> Result<(), String> {
    let original = f.stored("c1", "original")?;
    save(store, "c1", original.clone(), None)?;
    let replacement = f.visited("c1", 4)?;
    let changed = store
        .modify(&id("c1"), &mut |stored| {
            *stored = replacement.clone();
            true
        })
        .map_err(|e| format!("modify: unexpected error: {e}"))?;
    if changed != Some(true) {
        return Err(format!("a change returning true gave {changed:?}, not Some(true)"));
    }
    expect_stored(store, "c1", &replacement, 2)?;
    let mut seen = None;
    let unchanged = store
        .modify(&id("c1"), &mut |stored| {
            seen = Some(stored.clone());
            false
        })
        .map_err(|e| format!("modify: unexpected error: {e}"))?;
    if unchanged != Some(false) {
        return Err(format!("a change returning false gave {unchanged:?}, not Some(false)"));
    }
    if seen.as_ref() != Some(&replacement) {
        return Err("modify handed the change another value than the one stored".into());
    }
    expect_stored(store, "c1", &replacement, 2)
}

fn isolation<S: ContactStore>(f: &Fixture, store: &mut S) -> Result<(), String> {
    let ids = ["c1", "C1", "c1 ", "caf\u{e9}", "cafe\u{301}", "c'1\"; --", ""];
    for (i, contact) in ids.iter().enumerate() {
        save(store, contact, f.stored(contact, &format!("contact {i}"))?, None)?;
    }
    let updated = f.visited("c1", 2)?;
    save(store, "c1", updated.clone(), Some(1))?;
    expect_stored(store, "c1", &updated, 2)?;
    for (i, contact) in ids.iter().enumerate().skip(1) {
        expect_stored(store, contact, &f.stored(contact, &format!("contact {i}"))?, 1)?;
    }
    Ok(())
}

fn large_state<S: ContactStore>(f: &Fixture, store: &mut S) -> Result<(), String> {
    // 100 visits: every tag rule fires, the duplicate window fills up.
    let mut large = f.visited("big", 100)?;
    if large.state.tags().count() < 300 {
        return Err("setup: the large state did not get its tags".into());
    }
    let text = "\u{1F600}abc".repeat(1 << 18); // 7 bytes x 2^18 = 1.75 MiB
    large.contact = f
        .schema()
        .contact("big")
        .set("name", text)
        .and_then(|b| b.set("size", i64::MAX))
        .map_err(|e| e.to_string())?
        .build();
    save(store, "big", large.clone(), None)?;
    expect_stored(store, "big", &large, 1)?;
    let v = save(store, "big", large.clone(), Some(1))?;
    if v != 2 {
        return Err(format!("resaving the large contact returned version {v}"));
    }
    expect_stored(store, "big", &large, 2)
}

fn exact_values<S: ContactStore>(f: &Fixture, store: &mut S) -> Result<(), String> {
    let ratios = [0.1, 1.0 / 3.0, f64::MIN_POSITIVE, 5e-324, f64::MAX, -0.0, 123_456_789.987_654_3];
    for (i, ratio) in ratios.iter().enumerate() {
        let contact_id = format!("r{i}");
        let since = Timestamp::from_unix(1_767_225_600 + i as i64, 999_999_999 - i as u32)
            .map_err(|e| e.to_string())?;
        let mut stored = f.visited(&contact_id, 7)?;
        stored.contact = f
            .schema()
            .contact(contact_id.as_str())
            .set("ratio", *ratio)
            .and_then(|b| b.set("since", since))
            .and_then(|b| b.set("vip", i % 2 == 0))
            .map_err(|e| e.to_string())?
            .build();
        save(store, &contact_id, stored.clone(), None)?;
        let loaded = load(store, &contact_id)?.ok_or("saved contact missing")?;
        let (a, b) = (
            f.schema().attribute(&loaded.value.contact, "ratio"),
            f.schema().attribute(&stored.contact, "ratio"),
        );
        let bits = |v: Option<&crate::value::Value>| match v {
            Some(crate::value::Value::Double(d)) => Some(d.to_bits()),
            _ => None,
        };
        if bits(a) != bits(b) {
            return Err(format!("the double {ratio:e} came back as {a:?}"));
        }
        if loaded.value != stored {
            return Err(format!("`{contact_id}` did not round-trip exactly"));
        }
        // The decayed score read from the loaded state is the same, bit for bit.
        let later = Timestamp::from_unix(1_767_225_600 + 10 * 86_400, 1).map_err(|e| e.to_string())?;
        let score = |s: &StoredContact| {
            let scorer = f.engine.program().scorer()?;
            scorer.value(s.state.scores()?, 0, later).map(f64::to_bits)
        };
        if score(&loaded.value) != score(&stored) || score(&stored).is_none() {
            return Err(format!("`{contact_id}`: the decayed score differs after loading"));
        }
    }
    Ok(())
}

fn many_contacts<S: ContactStore>(f: &Fixture, store: &mut S) -> Result<(), String> {
    const N: usize = 500;
    let base: Vec<StoredContact> =
        (0..N).map(|i| f.stored(&format!("m{i}"), &format!("n{i}"))).collect::<Result<_, _>>()?;
    // Saved in a scattered order, then every third updated twice.
    for k in 0..N {
        let i = (k * 7919) % N;
        save(store, &format!("m{i}"), base[i].clone(), None)?;
    }
    let updated = f.visited("m0", 1)?.state;
    for i in (0..N).step_by(3) {
        let contact = format!("m{i}");
        for expected in 1..=2 {
            let mut value = base[i].clone();
            if expected == 2 {
                // The state belongs to another contact id; the store must not care.
                value.state = updated.clone();
            }
            save(store, &contact, value, Some(expected))?;
        }
    }
    for (i, value) in base.iter().enumerate() {
        let contact = format!("m{i}");
        if i % 3 == 0 {
            let mut value = value.clone();
            value.state = updated.clone();
            expect_stored(store, &contact, &value, 3)?;
        } else {
            expect_stored(store, &contact, value, 1)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::host::MemoryStore;

    /// A store that forgets versions: the suite must catch it.
    #[derive(Default)]
    struct Forgetful(MemoryStore);

    impl ContactStore for Forgetful {
        fn load(&mut self, id: &ContactId) -> Result<Option<Versioned<StoredContact>>, StoreError> {
            self.0.load(id)
        }
        fn save(&mut self, id: &ContactId, value: StoredContact, _: Option<u64>) -> Result<u64, StoreError> {
            let found = self.0.load(id)?.map(|v| v.version);
            self.0.save(id, value, found)
        }
    }

    #[test]
    fn the_memory_store_passes_and_a_store_without_compare_and_swap_fails() {
        assert_eq!(run(|_| MemoryStore::new()), Ok(CHECKS.to_vec()));
        let failure = run(|_| Forgetful::default()).unwrap_err();
        assert_eq!(failure.check, "missing");
        assert!(failure.to_string().contains("expected a conflict"), "{failure}");
    }
}
