//! One worker in-process against a real `nats-server` (skipped, saying so, when none is
//! installed): effects, wake-ups on ticks, dead letters for bad input, clean release.

mod common;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_nats::jetstream::{self, consumer};
use futures_util::StreamExt;
use nurture::engine::Engine;
use nurture::{Program, Timestamp};
use nurture_nats::{headers, Input, KvStore, Leases, Names, Worker, WorkerConfig};

fn t(secs: i64) -> Timestamp {
    Timestamp::from_unix(1_767_225_600 + secs, 0).expect("in range")
}

async fn publish(js: &jetstream::Context, subject: String, id: &str, payload: Vec<u8>) -> u64 {
    let mut h = async_nats::HeaderMap::new();
    h.insert(headers::MSG_ID, id);
    let ack = js.publish_with_headers(subject, h, payload.into()).await.expect("publish");
    ack.await.expect("ack").sequence
}

/// Every message of a stream: (headers by name, payload).
async fn read_all(js: &jetstream::Context, stream: &str) -> Vec<(HashMap<String, String>, Vec<u8>)> {
    let mut stream = js.get_stream(stream).await.expect("stream");
    let count = stream.info().await.expect("info").state.messages;
    let mut out = Vec::new();
    if count == 0 {
        return out;
    }
    let reader = stream.create_consumer(consumer::pull::OrderedConfig::default()).await.expect("consumer");
    let mut messages = reader.messages().await.expect("messages");
    for _ in 0..count {
        let m = messages.next().await.expect("a message").expect("a message");
        let mut h = HashMap::new();
        if let Some(headers) = &m.headers {
            for (name, values) in headers.iter() {
                h.insert(name.to_string(), values.first().map(|v| v.to_string()).unwrap_or_default());
            }
        }
        out.push((h, m.payload.to_vec()));
    }
    out
}

#[test]
fn a_worker_turns_inputs_into_effects_wakes_contacts_and_dead_letters_bad_input() {
    let Some(bin) = common::server_or_skip("worker") else { return };
    let running = common::start(&bin);
    let runtime =
        tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("rt");
    runtime.block_on(async {
        let url = running.server.url();
        let js = jetstream::new(async_nats::connect(url.as_str()).await.expect("connects"));
        let names = Names::new("w", 4).expect("names");
        names.setup(&js, Duration::from_secs(60), 1).await.expect("setup");
        let program = Arc::new(Program::from_json(common::RULES).expect("compiles"));
        let engine = Arc::new(Engine::new(program.clone()));
        let schema = program.schema();

        let mut config = WorkerConfig::new(url.as_str(), names.clone(), "solo");
        config.renew_every = Duration::from_millis(100);
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let worker = tokio::spawn(Worker::new(config, engine.clone()).run(async {
            let _ = stopped.await;
        }));

        let c1 = schema.contact("c1").set("plan", "pro").expect("field").build();
        let p1 = names.partition_of("c1");
        let signup = schema.event("e1", "c1", "signup", t(0)).expect("event").build();
        let visit = schema
            .event("e2", "c1", "visit", t(3_600))
            .expect("event")
            .set("url", "/pricing")
            .expect("p")
            .build();
        let stranger = schema.event("e3", "c9", "signup", t(3_700)).expect("event").build();
        let subject = names.input_subject(p1);
        publish(&js, subject.clone(), "i1", Input::encode_event(schema, &signup, Some(&c1)).expect("encode"))
            .await;
        publish(&js, subject.clone(), "i2", b"{not json".to_vec()).await;
        publish(&js, subject.clone(), "i3", Input::encode_event(schema, &visit, None).expect("encode")).await;
        let p9 = names.partition_of("c9");
        publish(&js, names.input_subject(p9), "i4", Input::encode_event(schema, &stranger, None).expect("e"))
            .await;
        // Two quiet days after the visit: the inactivity rule's wake-up comes with a tick.
        let tick = Input::Tick { at: t(3_600 + 2 * 86_400) }.to_bytes().expect("tick");
        publish(&js, subject.clone(), "i5", tick).await;
        let mut ends = Vec::new();
        for p in 0..names.partitions() {
            let end = Input::End { at: t(10 * 86_400) }.to_bytes().expect("end");
            ends.push(publish(&js, names.input_subject(p), &format!("end-{p}"), end).await);
        }
        let store = KvStore::open(js.clone(), names.clone(), program.clone()).await.expect("store");
        let deadline = Instant::now() + Duration::from_secs(30);
        for p in 0..names.partitions() {
            loop {
                if store.done(p).await.expect("done").is_some_and(|s| s >= ends[p as usize]) {
                    break;
                }
                assert!(Instant::now() < deadline, "partition {p} did not finish");
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }

        let effects = read_all(&js, &names.effects_stream()).await;
        let templates: Vec<String> = effects
            .iter()
            .map(|(_, payload)| {
                let json: serde_json::Value = serde_json::from_slice(payload).expect("an effect");
                json["kind"]["action"]["template"].as_str().unwrap_or("").to_string()
            })
            .collect();
        assert!(templates.iter().any(|t| t == "welcome"), "{templates:?}");
        assert!(templates.iter().any(|t| t == "we-miss-you"), "{templates:?}");
        for (h, payload) in &effects {
            let json: serde_json::Value = serde_json::from_slice(payload).expect("an effect");
            assert_eq!(h.get(headers::MSG_ID).map(String::as_str), json["key"].as_str(), "msg id = key");
            assert_eq!(h.get(headers::CONTACT).map(String::as_str), Some("c1"));
        }
        let loaded = store.load("c1").await.expect("load").expect("stored");
        assert!(loaded.record.state.has_tag("pricing"));
        assert!(loaded.record.seq > 0);

        let dead = read_all(&js, &names.dead_stream()).await;
        let reasons: Vec<&str> =
            dead.iter().filter_map(|(h, _)| h.get(headers::ERROR).map(String::as_str)).collect();
        assert_eq!(reasons.len(), 2, "{reasons:?}");
        assert!(reasons.iter().any(|r| r.contains("not an input")), "{reasons:?}");
        assert!(reasons.iter().any(|r| r.contains("not stored")), "{reasons:?}");
        assert!(dead.iter().any(|(_, payload)| payload == b"{not json"), "the bad input is kept as it was");

        let _ = stop.send(());
        worker.await.expect("joins").expect("a clean stop");
        let observer = Leases::new(
            js.get_key_value(names.lease_bucket()).await.expect("bucket"),
            "obs",
            Duration::from_secs(1),
        );
        assert!(observer.holders(4).await.expect("holders").iter().all(Option::is_none), "leases released");
        assert_eq!(observer.live_workers().await.expect("count"), 0);
    });
}
