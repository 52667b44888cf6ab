//! Partition leases in a key-value bucket: expiry, renewal by compare-and-swap, and
//! worker heartbeats.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use async_nats::jetstream::kv;
use bytes::Bytes;
use futures_util::TryStreamExt;
use serde::{Deserialize, Serialize};

use crate::Error;

#[derive(Serialize, Deserialize)]
struct Held {
    owner: String,
    /// Wall-clock expiry, Unix milliseconds.
    expires_ms: u64,
}

fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

/// A held lease on one partition. The holder may write for the partition only while
/// [`Lease::valid`]; every renewal is a compare-and-swap on `revision`, so a holder whose
/// lease was taken over finds out at its next renewal (fencing by revision).
#[derive(Clone, Debug)]
pub struct Lease {
    /// The partition.
    pub partition: u32,
    /// The lease entry's revision as this holder last wrote it.
    pub revision: u64,
    /// When it expires by this process's clock (from the start of the request that
    /// wrote it, so never later than the expiry others see).
    pub expires: Instant,
}

impl Lease {
    /// Whether the holder may still write: the lease expires no sooner than `margin` from
    /// now.
    pub fn valid(&self, margin: Duration) -> bool {
        Instant::now() + margin < self.expires
    }
}

/// The lease bucket as one worker sees it.
#[derive(Clone, Debug)]
pub struct Leases {
    kv: kv::Store,
    worker: String,
    ttl: Duration,
}

impl Leases {
    /// Leases held as `worker` (a name unique among live workers) for `ttl` at a time.
    pub fn new(kv: kv::Store, worker: impl Into<String>, ttl: Duration) -> Leases {
        Leases { kv, worker: worker.into(), ttl }
    }

    /// The worker's name.
    pub fn worker(&self) -> &str {
        &self.worker
    }

    fn value(&self, expires_ms: u64) -> Result<Bytes, Error> {
        let held = Held { owner: self.worker.clone(), expires_ms };
        serde_json::to_vec(&held).map(Bytes::from).map_err(|e| Error::BadInput(e.to_string()))
    }

    /// Takes the partition's lease if it is free, released or expired; `None` when
    /// someone else holds it (or won the race for it).
    ///
    /// # Errors
    ///
    /// [`Error::Nats`] when the server fails.
    pub async fn try_acquire(&self, partition: u32) -> Result<Option<Lease>, Error> {
        let key = format!("p.{partition}");
        let started = Instant::now();
        let entry = self.kv.entry(key.as_str()).await.map_err(Error::nats)?;
        let value = self.value(now_ms() + self.ttl.as_millis() as u64)?;
        let written = match entry {
            Some(e) if e.operation == kv::Operation::Put => {
                let held: Option<Held> = serde_json::from_slice(&e.value).ok();
                if held.is_some_and(|h| h.expires_ms > now_ms()) {
                    return Ok(None);
                }
                self.kv.update(key.as_str(), value, e.revision).await.map_err(|e| match e.kind() {
                    kv::UpdateErrorKind::WrongLastRevision => None,
                    _ => Some(Error::nats(e)),
                })
            }
            _ => self.kv.create(key.as_str(), value).await.map_err(|e| match e.kind() {
                kv::CreateErrorKind::AlreadyExists => None,
                _ => Some(Error::nats(e)),
            }),
        };
        match written {
            Ok(revision) => Ok(Some(Lease { partition, revision, expires: started + self.ttl })),
            Err(None) => Ok(None),
            Err(Some(e)) => Err(e),
        }
    }

    /// Extends a held lease by the time to live.
    ///
    /// # Errors
    ///
    /// [`Error::LeaseLost`] when someone else wrote the lease since (it was taken over),
    /// [`Error::Nats`] when the server fails (the lease may still be held: try again
    /// before it expires).
    pub async fn renew(&self, lease: &mut Lease) -> Result<(), Error> {
        let started = Instant::now();
        let value = self.value(now_ms() + self.ttl.as_millis() as u64)?;
        match self.kv.update(format!("p.{}", lease.partition), value, lease.revision).await {
            Ok(revision) => {
                lease.revision = revision;
                lease.expires = started + self.ttl;
                Ok(())
            }
            Err(e) if e.kind() == kv::UpdateErrorKind::WrongLastRevision => {
                Err(Error::LeaseLost(lease.partition))
            }
            Err(e) => Err(Error::nats(e)),
        }
    }

    /// Gives a lease up at once (marks it expired), so another worker can take it without
    /// waiting for the expiry.
    ///
    /// # Errors
    ///
    /// As [`Leases::renew`].
    pub async fn release(&self, lease: Lease) -> Result<(), Error> {
        let value = self.value(0)?;
        match self.kv.update(format!("p.{}", lease.partition), value, lease.revision).await {
            Ok(_) => Ok(()),
            Err(e) if e.kind() == kv::UpdateErrorKind::WrongLastRevision => {
                Err(Error::LeaseLost(lease.partition))
            }
            Err(e) => Err(Error::nats(e)),
        }
    }

    /// Says this worker is alive (until one time to live from now).
    ///
    /// # Errors
    ///
    /// [`Error::Nats`].
    pub async fn heartbeat(&self) -> Result<(), Error> {
        let value = self.value(now_ms() + self.ttl.as_millis() as u64)?;
        self.kv.put(format!("w.{}", self.worker), value).await.map_err(Error::nats)?;
        Ok(())
    }

    /// Removes this worker's heartbeat (at a clean exit).
    ///
    /// # Errors
    ///
    /// [`Error::Nats`].
    pub async fn leave(&self) -> Result<(), Error> {
        self.kv.delete(format!("w.{}", self.worker)).await.map_err(Error::nats)
    }

    /// How many workers have a current heartbeat (this one included once it has beaten).
    ///
    /// # Errors
    ///
    /// [`Error::Nats`].
    pub async fn live_workers(&self) -> Result<usize, Error> {
        let keys: Vec<String> = match self.kv.keys().await {
            Ok(keys) => keys.try_collect().await.map_err(Error::nats)?,
            Err(e) => return Err(Error::nats(e)),
        };
        let now = now_ms();
        let mut live = 0;
        for key in keys.iter().filter(|k| k.starts_with("w.")) {
            if let Some(value) = self.kv.get(key.as_str()).await.map_err(Error::nats)? {
                if serde_json::from_slice::<Held>(&value).is_ok_and(|h| h.expires_ms > now) {
                    live += 1;
                }
            }
        }
        Ok(live)
    }

    /// Who holds each partition's lease now (`None`: free or expired), for monitoring.
    ///
    /// # Errors
    ///
    /// [`Error::Nats`].
    pub async fn holders(&self, partitions: u32) -> Result<Vec<Option<String>>, Error> {
        let now = now_ms();
        let mut holders = Vec::with_capacity(partitions as usize);
        for p in 0..partitions {
            let value = self.kv.get(format!("p.{p}")).await.map_err(Error::nats)?;
            let held = value.and_then(|v| serde_json::from_slice::<Held>(&v).ok());
            holders.push(held.filter(|h| h.expires_ms > now).map(|h| h.owner));
        }
        Ok(holders)
    }
}
