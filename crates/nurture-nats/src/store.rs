//! Contacts in a JetStream key-value bucket, with compare-and-swap on revisions.

use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::{self, consumer, kv};
use bytes::Bytes;
use futures_util::StreamExt;
use nurture::engine::{ContactState, Engine};
use nurture::host::{ContactStore, StoreError, StoredContact, Versioned};
use nurture::{Contact, ContactId, Program, Timestamp};
use serde::{Deserialize, Serialize};

use crate::{Error, Names};

/// One contact's entry: attributes, engine state, the input sequence last applied to it,
/// its next wake-up and a version counted from 1 (what
/// [`ContactStore`](nurture::host::ContactStore) reports).
#[derive(Clone, Debug, PartialEq)]
pub struct Record {
    /// The contact's attributes.
    pub contact: Contact,
    /// The engine's state.
    pub state: ContactState,
    /// The input stream sequence of the last input applied (0: none).
    pub seq: u64,
    /// When the contact next needs a wake-up.
    pub wake: Option<Timestamp>,
    /// Incremented by every write.
    pub version: u64,
}

/// A record and the revision it was read at (for compare-and-swap).
#[derive(Clone, Debug, PartialEq)]
pub struct Loaded {
    /// The record.
    pub record: Record,
    /// The bucket's revision of it.
    pub revision: u64,
}

#[derive(Serialize, Deserialize)]
struct Wire {
    contact: serde_json::Value,
    state: ContactState,
    seq: u64,
    wake: Option<Timestamp>,
    version: u64,
}

/// Reads a stored record. Attributes are kept by field name; a record written under a
/// program whose contact fields differ (the state records them) may hold fields this
/// schema no longer declares, or declares with another type: those are dropped, as
/// [`Engine::adopt_contact`](nurture::engine::Engine::adopt_contact) drops them. Under the
/// same fields every attribute must fit, or the record is corrupt.
fn decode_record(schema: &nurture::Schema, key: &str, bytes: &[u8]) -> Result<Record, Error> {
    let corrupt = |message: String| Error::Corrupt { key: key.to_string(), message };
    let mut wire: Wire = serde_json::from_slice(bytes).map_err(|e| corrupt(e.to_string()))?;
    let fields = schema.contact_fields();
    let recorded = wire.state.fields();
    let same_fields = recorded.is_empty()
        || (recorded.len() == fields.len()
            && recorded.iter().map(String::as_str).eq(fields.iter().map(|(n, _)| n)));
    if !same_fields {
        if let Some(attributes) =
            wire.contact.get_mut("attributes").and_then(serde_json::Value::as_object_mut)
        {
            let types: std::collections::HashMap<&str, &nurture::Type> = fields.iter().collect();
            attributes.retain(|name, value| {
                let fits = |ty: &&nurture::Type| {
                    nurture::Value::from_json(value, ty).is_some_and(|v| !matches!(v, nurture::Value::Null))
                };
                types.get(name.as_str()).is_some_and(fits)
            });
        }
    }
    let contact = schema.contact_from_json(&wire.contact).map_err(|e| corrupt(e.to_string()))?;
    Ok(Record { contact, state: wire.state, seq: wire.seq, wake: wire.wake, version: wire.version })
}

/// The key of a contact's entry: `c.<partition>.<id>`, with every byte of the id other
/// than ASCII letters, digits, `-` and `_` written as `=XX` (so any id makes a valid key
/// and two ids never share one).
///
/// ```
/// use nurture_nats::{partition_key, Names};
/// let names = Names::new("n", 4)?;
/// let p = names.partition_of("a.b c");
/// assert_eq!(partition_key(&names, "a.b c"), format!("c.{p}.a=2Eb=20c"));
/// assert_ne!(partition_key(&names, "a=2E"), partition_key(&names, "a."));
/// # Ok::<(), nurture_nats::Error>(())
/// ```
pub fn partition_key(names: &Names, contact: &str) -> String {
    let mut key = format!("c.{}.", names.partition_of(contact));
    if contact.is_empty() {
        key.push('=');
    }
    for b in contact.bytes() {
        if b.is_ascii_alphanumeric() || b == b'-' || b == b'_' {
            key.push(b as char);
        } else {
            key.push_str(&format!("={b:02X}"));
        }
    }
    key
}

/// Contacts, partition checkpoints and end markers in the state bucket (async).
#[derive(Clone, Debug)]
pub struct KvStore {
    js: jetstream::Context,
    kv: kv::Store,
    names: Names,
    program: Arc<Program>,
}

impl KvStore {
    /// Opens the state bucket (created by [`Names::setup`]).
    ///
    /// # Errors
    ///
    /// [`Error::Nats`] when the bucket is missing or the server fails.
    pub async fn open(js: jetstream::Context, names: Names, program: Arc<Program>) -> Result<KvStore, Error> {
        let kv = js.get_key_value(names.state_bucket()).await.map_err(Error::nats)?;
        Ok(KvStore { js, kv, names, program })
    }

    /// The names.
    pub fn names(&self) -> &Names {
        &self.names
    }

    fn encode(&self, record: &Record) -> Result<Bytes, Error> {
        let contact = self
            .program
            .schema()
            .contact_to_json(&record.contact)
            .map_err(|e| Error::BadInput(e.to_string()))?;
        let wire = Wire {
            contact,
            state: record.state.clone(),
            seq: record.seq,
            wake: record.wake,
            version: record.version,
        };
        serde_json::to_vec(&wire).map(Bytes::from).map_err(|e| Error::BadInput(e.to_string()))
    }

    fn decode(&self, key: &str, bytes: &[u8]) -> Result<Record, Error> {
        decode_record(self.program.schema(), key, bytes)
    }

    /// A contact's record, if stored.
    ///
    /// # Errors
    ///
    /// [`Error::Nats`], or [`Error::Corrupt`] for an entry that does not decode.
    pub async fn load(&self, id: &str) -> Result<Option<Loaded>, Error> {
        let key = partition_key(&self.names, id);
        let entry = self.kv.entry(key.as_str()).await.map_err(Error::nats)?;
        match entry {
            Some(e) if e.operation == kv::Operation::Put => {
                Ok(Some(Loaded { record: self.decode(&key, &e.value)?, revision: e.revision }))
            }
            _ => Ok(None),
        }
    }

    /// Writes a record if the stored revision is still `expected` (`None`: not stored)
    /// and returns the new revision.
    ///
    /// # Errors
    ///
    /// [`Error::Conflict`] when the revision differs (nothing is written), else
    /// [`Error::Nats`].
    pub async fn save(&self, record: &Record, expected: Option<u64>) -> Result<u64, Error> {
        let key = partition_key(&self.names, record.contact.id().as_str());
        let value = self.encode(record)?;
        self.put_cas(&key, value, expected).await
    }

    async fn put_cas(&self, key: &str, value: Bytes, expected: Option<u64>) -> Result<u64, Error> {
        let conflict = || Error::Conflict { key: key.to_string(), expected };
        match expected {
            None => self.kv.create(key, value).await.map_err(|e| match e.kind() {
                kv::CreateErrorKind::AlreadyExists => conflict(),
                _ => Error::nats(e),
            }),
            Some(revision) => self.kv.update(key, value, revision).await.map_err(|e| match e.kind() {
                kv::UpdateErrorKind::WrongLastRevision => conflict(),
                _ => Error::nats(e),
            }),
        }
    }

    /// Every contact of a partition with its revision (what a worker taking the partition
    /// over reloads: states and timers).
    ///
    /// # Errors
    ///
    /// [`Error::Nats`], or [`Error::Corrupt`] for an entry that does not decode.
    pub async fn load_partition(&self, partition: u32) -> Result<Vec<Loaded>, Error> {
        let bucket = self.names.state_bucket();
        let stream = self.js.get_stream(format!("KV_{bucket}")).await.map_err(Error::nats)?;
        let prefix = format!("$KV.{bucket}.");
        let mut consumer = stream
            .create_consumer(consumer::pull::Config {
                filter_subject: format!("{prefix}c.{partition}.>"),
                deliver_policy: consumer::DeliverPolicy::LastPerSubject,
                ack_policy: consumer::AckPolicy::None,
                inactive_threshold: Duration::from_secs(60),
                ..Default::default()
            })
            .await
            .map_err(Error::nats)?;
        let pending = consumer.info().await.map_err(Error::nats)?.num_pending;
        let mut loaded = Vec::with_capacity(pending as usize);
        if pending > 0 {
            let mut messages = consumer.messages().await.map_err(Error::nats)?;
            let mut seen = 0;
            while seen < pending {
                let Some(message) = messages.next().await else {
                    return Err(Error::Nats("the partition's entries stopped coming".into()));
                };
                let message = message.map_err(Error::nats)?;
                seen += 1;
                let revision = message.info().map_err(Error::nats)?.stream_sequence;
                let deleted = message
                    .headers
                    .as_ref()
                    .and_then(|h| h.get("KV-Operation"))
                    .is_some_and(|op| op.as_str() != "PUT");
                if deleted {
                    continue;
                }
                let key = message.subject.as_str().strip_prefix(&prefix).unwrap_or(message.subject.as_str());
                loaded.push(Loaded { record: self.decode(key, &message.payload)?, revision });
            }
        }
        let name = consumer.cached_info().name.clone();
        // The consumer also goes away by itself after its inactive threshold.
        let _ = stream.delete_consumer(&name).await;
        Ok(loaded)
    }

    /// A partition's checkpoint: the input sequence up to which every input is handled,
    /// and the entry's revision.
    ///
    /// # Errors
    ///
    /// [`Error::Nats`] or [`Error::Corrupt`].
    pub async fn checkpoint(&self, partition: u32) -> Result<Option<(u64, u64)>, Error> {
        self.get_u64(&format!("o.{partition}")).await
    }

    /// Writes a partition's checkpoint with compare-and-swap.
    ///
    /// # Errors
    ///
    /// [`Error::Conflict`] when someone else wrote it, else [`Error::Nats`].
    pub async fn save_checkpoint(
        &self,
        partition: u32,
        seq: u64,
        expected: Option<u64>,
    ) -> Result<u64, Error> {
        self.put_cas(&format!("o.{partition}"), Bytes::from(seq.to_string()), expected).await
    }

    /// The input sequence of the [`Input::End`](crate::Input::End) a partition last
    /// finished, if any.
    ///
    /// # Errors
    ///
    /// [`Error::Nats`] or [`Error::Corrupt`].
    pub async fn done(&self, partition: u32) -> Result<Option<u64>, Error> {
        Ok(self.get_u64(&format!("done.{partition}")).await?.map(|(seq, _)| seq))
    }

    pub(crate) async fn mark_done(&self, partition: u32, seq: u64) -> Result<(), Error> {
        self.kv.put(format!("done.{partition}"), Bytes::from(seq.to_string())).await.map_err(Error::nats)?;
        Ok(())
    }

    async fn get_u64(&self, key: &str) -> Result<Option<(u64, u64)>, Error> {
        match self.kv.entry(key).await.map_err(Error::nats)? {
            Some(e) if e.operation == kv::Operation::Put => {
                let text = std::str::from_utf8(&e.value).unwrap_or("");
                let n = text.parse::<u64>().map_err(|_| Error::Corrupt {
                    key: key.to_string(),
                    message: format!("not a number: {text:?}"),
                })?;
                Ok(Some((n, e.revision)))
            }
            _ => Ok(None),
        }
    }
}

/// A blocking [`ContactStore`] over [`KvStore`], for the core's
/// [`Runtime`](nurture::host::Runtime) and the store conformance suite. It runs its own
/// Tokio runtime (one thread), so it must not be used from inside an async context.
/// Versions count writes from 1; a save compares the stored version and then writes
/// with compare-and-swap on the revision it read, so a concurrent writer in between
/// makes it fail with a conflict. The next wake-up stored for the worker's timers is
/// computed with [`Engine::wake_after`] at the state's last change.
pub struct BlockingKvStore {
    runtime: tokio::runtime::Runtime,
    store: KvStore,
    engine: Arc<Engine>,
}

impl BlockingKvStore {
    /// Connects to `url`, creates the deployment's streams and buckets if needed
    /// ([`Names::setup`], one replica) and opens the state bucket.
    ///
    /// # Errors
    ///
    /// [`Error::Nats`] when the server cannot be reached or refuses.
    pub fn connect(url: &str, names: Names, engine: Arc<Engine>) -> Result<BlockingKvStore, Error> {
        let runtime =
            tokio::runtime::Builder::new_current_thread().enable_all().build().map_err(Error::nats)?;
        let program = engine.program().clone();
        let store = runtime.block_on(async {
            let client = async_nats::connect(url).await.map_err(Error::nats)?;
            let js = jetstream::new(client);
            names.setup(&js, Duration::from_secs(120), 1).await?;
            KvStore::open(js, names, program).await
        })?;
        Ok(BlockingKvStore { runtime, store, engine })
    }

    /// The async store underneath (its connection is served by this adapter's runtime).
    pub fn store(&self) -> &KvStore {
        &self.store
    }

    /// [`KvStore::load_partition`], blocking.
    ///
    /// # Errors
    ///
    /// As [`KvStore::load_partition`].
    pub fn load_partition(&self, partition: u32) -> Result<Vec<Loaded>, Error> {
        self.runtime.block_on(self.store.load_partition(partition))
    }
}

fn backend(e: Error) -> StoreError {
    StoreError::backend(e.to_string())
}

impl ContactStore for BlockingKvStore {
    fn load(&mut self, id: &ContactId) -> Result<Option<Versioned<StoredContact>>, StoreError> {
        let loaded = self.runtime.block_on(self.store.load(id.as_str())).map_err(backend)?;
        Ok(loaded.map(|l| Versioned {
            version: l.record.version,
            value: StoredContact { contact: l.record.contact, state: l.record.state },
        }))
    }

    fn save(
        &mut self,
        id: &ContactId,
        value: StoredContact,
        expected: Option<u64>,
    ) -> Result<u64, StoreError> {
        if value.contact.id() != id {
            return Err(StoreError::backend(format!(
                "saving contact `{}` under the id `{}`",
                value.contact.id(),
                id
            )));
        }
        let current = self.runtime.block_on(self.store.load(id.as_str())).map_err(backend)?;
        let found = current.as_ref().map(|l| l.record.version);
        if found != expected {
            return Err(StoreError::Conflict { contact: id.clone(), expected, found });
        }
        let wake = self.engine.wake_after(&value.state, &value.contact, value.state.last_change());
        let record = Record {
            contact: value.contact,
            state: value.state,
            seq: current.as_ref().map_or(0, |l| l.record.seq),
            wake,
            version: found.map_or(1, |v| v + 1),
        };
        let version = record.version;
        match self.runtime.block_on(self.store.save(&record, current.map(|l| l.revision))) {
            Ok(_) => Ok(version),
            Err(Error::Conflict { .. }) => {
                let found = self.runtime.block_on(self.store.load(id.as_str())).map_err(backend)?;
                Err(StoreError::Conflict {
                    contact: id.clone(),
                    expected,
                    found: found.map(|l| l.record.version),
                })
            }
            Err(e) => Err(backend(e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use nurture::engine::Engine;
    use nurture::{Program, Timestamp, Value};

    use super::*;

    fn engine(contact: &str) -> Engine {
        let doc = format!(r#"{{"version": 1, "schema": {{"contact": {contact}}}}}"#);
        Engine::new(Arc::new(Program::from_json(&doc).unwrap()))
    }

    fn stored(engine: &Engine, contact: serde_json::Value) -> Vec<u8> {
        let schema = engine.program().schema();
        let contact = schema.contact_from_json(&contact).unwrap();
        let state = engine.new_state(&contact, Timestamp::from_unix(1_767_225_600, 0).unwrap());
        let wire = Wire {
            contact: schema.contact_to_json(&contact).unwrap(),
            state,
            seq: 1,
            wake: None,
            version: 1,
        };
        serde_json::to_vec(&wire).unwrap()
    }

    #[test]
    fn a_record_of_another_program_drops_the_fields_it_no_longer_has() {
        let old = engine(r#"{"plan": "string", "seats": "int", "region": "string"}"#);
        let bytes = stored(
            &old,
            serde_json::json!({"id": "c1", "attributes": {"plan": "pro", "seats": 5, "region": "eu"}}),
        );
        // `seats` removed, `region` now an int: both dropped, `plan` kept by name.
        let new = engine(r#"{"plan": "string", "region": "int"}"#);
        let record = decode_record(new.program().schema(), "k", &bytes).unwrap();
        let schema = new.program().schema();
        assert_eq!(schema.attribute(&record.contact, "plan"), Some(&Value::from("pro")));
        assert_eq!(schema.attribute(&record.contact, "region"), None);
        // Under the same program every attribute must fit: a tampered one is corrupt.
        let tampered = String::from_utf8(bytes).unwrap().replace("\"seats\":5", "\"seats\":\"five\"");
        let error = decode_record(old.program().schema(), "k", tampered.as_bytes()).unwrap_err();
        assert!(matches!(error, Error::Corrupt { .. }), "{error:?}");
    }
}
