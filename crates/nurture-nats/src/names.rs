//! The streams, subjects and buckets of one deployment, and creating them.

use std::time::Duration;

use async_nats::jetstream::{self, kv, stream};

use crate::Error;

/// Names of a deployment's streams, subjects and buckets, from a prefix and the
/// partition count `P` (fixed for the deployment's life: changing it moves contacts
/// between partitions).
///
/// ```
/// use nurture_nats::Names;
/// let names = Names::new("nurture", 8)?;
/// assert_eq!(names.input_subject(3), "nurture.in.3");
/// assert_eq!(names.effects_stream(), "NURTURE_FX");
/// assert!(Names::new("no spaces", 8).is_err());
/// # Ok::<(), nurture_nats::Error>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Names {
    prefix: String,
    partitions: u32,
}

impl Names {
    /// Names under `prefix` (letters, digits, `-` and `_`) for `partitions` partitions.
    ///
    /// # Errors
    ///
    /// [`Error::BadInput`] for an empty or ill-formed prefix or zero partitions.
    pub fn new(prefix: &str, partitions: u32) -> Result<Names, Error> {
        let ok =
            !prefix.is_empty() && prefix.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
        if !ok {
            return Err(Error::BadInput(format!("prefix `{prefix}`: use letters, digits, `-` and `_` only")));
        }
        if partitions == 0 {
            return Err(Error::BadInput("at least one partition is needed".into()));
        }
        Ok(Names { prefix: prefix.to_string(), partitions })
    }

    /// The prefix.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// The partition count `P`.
    pub fn partitions(&self) -> u32 {
        self.partitions
    }

    /// The partition of a contact: [`shard_of`](nurture::engine::shard_of)`(id, P)`.
    pub fn partition_of(&self, contact: &str) -> u32 {
        nurture::engine::shard_of(contact, self.partitions)
    }

    fn upper(&self) -> String {
        self.prefix.to_ascii_uppercase().replace('-', "_")
    }

    /// The input stream (`<PREFIX>_IN`).
    pub fn input_stream(&self) -> String {
        format!("{}_IN", self.upper())
    }

    /// The effects stream (`<PREFIX>_FX`).
    pub fn effects_stream(&self) -> String {
        format!("{}_FX", self.upper())
    }

    /// The dead-letter stream (`<PREFIX>_DEAD`): inputs that could not be used, with the
    /// reason in the `Nurture-Error` header.
    pub fn dead_stream(&self) -> String {
        format!("{}_DEAD", self.upper())
    }

    /// The state bucket (`<prefix>-state`).
    pub fn state_bucket(&self) -> String {
        format!("{}-state", self.prefix)
    }

    /// The lease bucket (`<prefix>-leases`).
    pub fn lease_bucket(&self) -> String {
        format!("{}-leases", self.prefix)
    }

    /// The subject a partition's inputs are published on.
    pub fn input_subject(&self, partition: u32) -> String {
        format!("{}.in.{partition}", self.prefix)
    }

    /// The subject a partition's effects are published on.
    pub fn effect_subject(&self, partition: u32) -> String {
        format!("{}.fx.{partition}", self.prefix)
    }

    /// The subject a partition's dead letters are published on.
    pub fn dead_subject(&self, partition: u32) -> String {
        format!("{}.dead.{partition}", self.prefix)
    }

    /// Creates the streams and buckets if they do not exist (idempotent). `duplicate_window`
    /// is how long the effects and input streams remember message ids: it must outlast the
    /// longest time between a publish and its re-publish after a crash (lease expiry plus
    /// replay from the checkpoint). `replicas` is the replication factor (1 on one server,
    /// 3 on a production cluster).
    ///
    /// # Errors
    ///
    /// [`Error::Nats`] when the server refuses.
    pub async fn setup(
        &self,
        js: &jetstream::Context,
        duplicate_window: Duration,
        replicas: usize,
    ) -> Result<(), Error> {
        let streams = [
            (self.input_stream(), format!("{}.in.*", self.prefix)),
            (self.effects_stream(), format!("{}.fx.*", self.prefix)),
            (self.dead_stream(), format!("{}.dead.*", self.prefix)),
        ];
        for (name, subject) in streams {
            js.get_or_create_stream(stream::Config {
                name,
                subjects: vec![subject],
                storage: stream::StorageType::File,
                duplicate_window,
                num_replicas: replicas,
                ..Default::default()
            })
            .await
            .map_err(Error::nats)?;
        }
        for bucket in [self.state_bucket(), self.lease_bucket()] {
            if js.get_key_value(&bucket).await.is_err() {
                js.create_key_value(kv::Config {
                    bucket,
                    history: 1,
                    storage: stream::StorageType::File,
                    num_replicas: replicas,
                    ..Default::default()
                })
                .await
                .map_err(Error::nats)?;
            }
        }
        Ok(())
    }
}
