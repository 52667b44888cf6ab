//! The key-value store, leases and the server features they rest on, against a real
//! `nats-server` (skipped, saying so, when none is installed).

mod common;

use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream;
use bytes::Bytes;
use nurture::engine::Engine;
use nurture::host::{ContactStore, MemoryStore, RecordingDelivery, Runtime, StoreError, StoredContact};
use nurture::{ContactId, Program, Timestamp};
use nurture_nats::{BlockingKvStore, Error, KvStore, Leases, Names};

fn engine() -> Arc<Engine> {
    Arc::new(Engine::new(Arc::new(Program::from_json(common::RULES).expect("the test program compiles"))))
}

fn t(secs: i64) -> Timestamp {
    Timestamp::from_unix(1_767_225_600 + secs, 0).expect("in range")
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread().enable_all().build().expect("a runtime")
}

#[test]
fn the_server_refuses_stale_compare_and_swap_and_drops_duplicate_message_ids() {
    let Some(bin) = common::server_or_skip("server features") else { return };
    let running = common::start(&bin);
    rt().block_on(async {
        let js = jetstream::new(async_nats::connect(running.server.url()).await.expect("connects"));
        let names = Names::new("t", 4).expect("names");
        names.setup(&js, Duration::from_secs(60), 1).await.expect("setup");
        names.setup(&js, Duration::from_secs(60), 1).await.expect("setup is idempotent");
        let kv = js.get_key_value(names.state_bucket()).await.expect("bucket");
        let r1 = kv.create("k", Bytes::from_static(b"1")).await.expect("create");
        assert!(kv.create("k", Bytes::from_static(b"x")).await.is_err(), "create of an existing key");
        let r2 = kv.update("k", Bytes::from_static(b"2"), r1).await.expect("update at the current revision");
        let stale = kv.update("k", Bytes::from_static(b"3"), r1).await;
        assert!(stale.is_err(), "update at a stale revision must be refused");
        assert_eq!(kv.get("k").await.expect("get").as_deref(), Some(&b"2"[..]));
        assert!(r2 > r1);
        let mut h = async_nats::HeaderMap::new();
        h.insert("Nats-Msg-Id", "key-1");
        let first =
            js.publish_with_headers(names.effect_subject(0), h.clone(), "a".into()).await.expect("publish");
        let first = first.await.expect("ack");
        let again = js.publish_with_headers(names.effect_subject(0), h, "a".into()).await.expect("publish");
        let again = again.await.expect("ack");
        assert!(!first.duplicate);
        assert!(again.duplicate, "a re-published message id is reported as a duplicate");
        let info =
            js.get_stream(names.effects_stream()).await.expect("stream").get_info().await.expect("info");
        assert_eq!(info.state.messages, 1);
    });
}

#[test]
fn blocking_store_passes_the_store_conformance_suite() {
    let Some(bin) = common::server_or_skip("store conformance") else { return };
    let running = common::start(&bin);
    let url = running.server.url();
    let mut n = 0;
    // One fresh deployment (its own prefix, so its own empty bucket) per check.
    let passed = nurture::host::conformance::run(|engine| {
        n += 1;
        let names = Names::new(&format!("conf{n}"), 4).expect("names");
        BlockingKvStore::connect(&url, names, engine.clone()).expect("connects")
    });
    assert_eq!(passed, Ok(nurture::host::conformance::CHECKS.to_vec()));
}

#[test]
fn blocking_store_versions_conflicts_and_missing_contacts() {
    let Some(bin) = common::server_or_skip("blocking store") else { return };
    let running = common::start(&bin);
    let engine = engine();
    let names = Names::new("t", 8).expect("names");
    let mut store = BlockingKvStore::connect(&running.server.url(), names, engine.clone()).expect("connects");
    let schema = engine.program().schema();
    let id = ContactId::from("c.1 with spaces/ü");
    assert_eq!(store.load(&id).expect("load"), None, "a missing contact");
    let contact = schema.contact(id.clone()).set("plan", "pro").expect("field").build();
    let state = engine.new_state(&contact, t(0));
    let stored = StoredContact { contact: contact.clone(), state: state.clone() };
    assert_eq!(store.save(&id, stored.clone(), None).expect("first save"), 1);
    let conflict = store.save(&id, stored.clone(), None).expect_err("the contact exists");
    assert!(
        matches!(&conflict, StoreError::Conflict { contact, expected: None, found: Some(1) } if contact == &id),
        "{conflict:?}"
    );
    assert_eq!(store.save(&id, stored.clone(), Some(1)).expect("second save"), 2);
    let stale = store.save(&id, stored.clone(), Some(1)).expect_err("a stale version");
    assert!(matches!(stale, StoreError::Conflict { found: Some(2), .. }), "{stale:?}");
    let loaded = store.load(&id).expect("load").expect("stored");
    assert_eq!(loaded.version, 2);
    assert_eq!(loaded.value, stored);
    // `modify` (the trait's default) saves when asked, and not otherwise.
    assert_eq!(store.modify(&id, &mut |_| false).expect("modify"), Some(false));
    assert_eq!(store.load(&id).expect("load").expect("stored").version, 2);
    assert_eq!(store.modify(&ContactId::from("nobody"), &mut |_| true).expect("modify"), None);
    // Ids that differ only in characters the key encodes stay apart.
    let other = ContactId::from("c=2E1 with spaces/ü");
    assert_eq!(store.load(&other).expect("load"), None);
}

#[test]
fn the_core_runtime_on_the_kv_store_matches_the_memory_store_and_large_states_round_trip() {
    let Some(bin) = common::server_or_skip("runtime on the kv store") else { return };
    let running = common::start(&bin);
    let engine = engine();
    let names = Names::new("t", 8).expect("names");
    let kv =
        BlockingKvStore::connect(&running.server.url(), names.clone(), engine.clone()).expect("connects");
    let mut on_kv = Runtime::new(engine.clone(), kv, RecordingDelivery::default(), t(0));
    let mut in_memory = Runtime::new(engine.clone(), MemoryStore::new(), RecordingDelivery::default(), t(0));
    let schema = engine.program().schema();
    for c in 0..5 {
        let contact = schema.contact(format!("c{c}")).set("plan", "pro").expect("field").build();
        on_kv.add_contact(contact.clone()).expect("add");
        in_memory.add_contact(contact).expect("add");
    }
    // Hundreds of events on one contact: a large state (a full duplicate window).
    for i in 0..300i64 {
        let contact = if i % 2 == 0 { "c0".to_string() } else { format!("c{}", i % 5) };
        let ty = if i % 50 == 0 { "signup" } else { "visit" };
        let mut event = schema.event(format!("e{i}"), contact.as_str(), ty, t(i * 3_600)).expect("event");
        if ty == "visit" {
            event = event.set("url", if i % 3 == 0 { "/pricing" } else { "/" }).expect("property");
        }
        let event = event.build();
        let a = on_kv.ingest(&event).expect("ingest on kv");
        let b = in_memory.ingest(&event).expect("ingest in memory");
        assert_eq!(a, b);
    }
    on_kv.advance_to(t(300 * 3_600 + 10 * 86_400)).expect("advance");
    in_memory.advance_to(t(300 * 3_600 + 10 * 86_400)).expect("advance");
    assert_eq!(on_kv.delivery().delivered, in_memory.delivery().delivered);
    assert!(on_kv.delivery().delivered.len() > 5);
    let mut total = 0;
    for p in 0..names.partitions() {
        for loaded in on_kv.store().load_partition(p).expect("load partition") {
            assert_eq!(names.partition_of(loaded.record.contact.id().as_str()), p);
            let reference = in_memory.store().get(loaded.record.contact.id()).expect("in the reference");
            assert_eq!(&loaded.record.state, &reference.state);
            assert_eq!(&loaded.record.contact, &reference.contact);
            total += 1;
        }
    }
    assert_eq!(total, 5);
}

#[test]
fn leases_expire_renew_fence_and_release() {
    let Some(bin) = common::server_or_skip("leases") else { return };
    let running = common::start(&bin);
    rt().block_on(async {
        let js = jetstream::new(async_nats::connect(running.server.url()).await.expect("connects"));
        let names = Names::new("t", 4).expect("names");
        names.setup(&js, Duration::from_secs(60), 1).await.expect("setup");
        let kv = js.get_key_value(names.lease_bucket()).await.expect("bucket");
        let ttl = Duration::from_millis(600);
        let a = Leases::new(kv.clone(), "a", ttl);
        let b = Leases::new(kv, "b", ttl);
        let mut held = a.try_acquire(1).await.expect("acquire").expect("a free partition");
        assert!(held.valid(Duration::from_millis(100)));
        assert!(b.try_acquire(1).await.expect("acquire").is_none(), "held by a");
        a.renew(&mut held).await.expect("renewal by the holder");
        tokio::time::sleep(ttl + Duration::from_millis(200)).await;
        assert!(!held.valid(Duration::ZERO), "expired by the holder's clock too");
        let taken = b.try_acquire(1).await.expect("acquire").expect("an expired lease is taken over");
        // The old holder is fenced: its renewal is refused.
        assert!(matches!(a.renew(&mut held).await, Err(Error::LeaseLost(1))));
        assert_eq!(a.holders(4).await.expect("holders")[1].as_deref(), Some("b"));
        b.release(taken).await.expect("release");
        assert!(a.try_acquire(1).await.expect("acquire").is_some(), "a released lease is free at once");
        a.heartbeat().await.expect("heartbeat");
        b.heartbeat().await.expect("heartbeat");
        assert_eq!(a.live_workers().await.expect("count"), 2);
        b.leave().await.expect("leave");
        assert_eq!(a.live_workers().await.expect("count"), 1);
    });
}

#[test]
fn a_store_without_its_bucket_is_a_clear_error() {
    let Some(bin) = common::server_or_skip("missing bucket") else { return };
    let running = common::start(&bin);
    rt().block_on(async {
        let js = jetstream::new(async_nats::connect(running.server.url()).await.expect("connects"));
        let names = Names::new("never-set-up", 4).expect("names");
        let program = engine().program().clone();
        let err = KvStore::open(js, names, program).await.expect_err("no bucket");
        assert!(matches!(err, Error::Nats(_)), "{err}");
    });
}
