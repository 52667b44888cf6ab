//! Runs the [`nurture`] engine on NATS JetStream: many worker processes share a fixed
//! number of partitions, each partition owned by one live worker at a time through a
//! lease, with exactly-once effects through failover.
//!
//! The pieces, all on one JetStream server or cluster (see [`Names`] for what is
//! created):
//!
//! - **ingest**: inputs ([`Input`]: events, and clock ticks) are published to a stream on
//!   subjects `<prefix>.in.<partition>`, the partition being
//!   [`shard_of`](nurture::engine::shard_of)`(contact, P)`, so one contact's inputs are in
//!   one ordered sequence;
//! - **state**: each contact's attributes and [`ContactState`](nurture::engine::ContactState)
//!   live in a key-value bucket, with the input sequence last applied and the next
//!   wake-up, written with compare-and-swap on the entry's revision ([`KvStore`]; a
//!   blocking [`ContactStore`](nurture::host::ContactStore) adapter is [`BlockingKvStore`]);
//! - **effects**: published to `<prefix>.fx.<partition>` with the effect's idempotency key
//!   as `Nats-Msg-Id`, so that the server drops a re-publish after a crash (within the
//!   stream's duplicate window);
//! - **timers**: a contact's next wake-up is stored with its state, so whoever takes a
//!   partition over reloads its timers with its states ([`KvStore::load_partition`]);
//! - **leases**: [`Leases`], in a second bucket, with expiry, renewal and fencing by
//!   revision; [`Worker`] runs the partitions it holds.
//!
//! # The order of writes in one step, and what a crash does
//!
//! For each input, in partition order: the wake-ups due by the input's instant are
//! handled first (each a step of its own), then the input. A step (1) publishes its
//! effects and waits for the server's acknowledgements, (2) writes the contact's entry
//! (state, input sequence, next wake-up) with compare-and-swap, and (3) now and then the
//! partition's checkpoint (the last input fully handled) is written. A crash
//!
//! - before (1) completes: nothing is stored; the input is handled again from the
//!   checkpoint, giving the same effects with the same keys;
//! - between (1) and (2): the effects are in the stream, the state is not; the input is
//!   handled again, the effects are published again and dropped by the server as
//!   duplicates (the duplicate window must outlast lease expiry plus replay);
//! - between (2) and (3): the entry records the input sequence it applied, so the input,
//!   read again from the older checkpoint, is skipped for that contact.
//!
//! Effects therefore reach the effects stream exactly once, but may be published before
//! the state that produced them is durable: a consumer of the effects stream may see an
//! effect whose state write is then retried. Both are deterministic functions of the
//! inputs, so the retried step produces the same state.
//!
//! # Time
//!
//! Workers run on event time: a partition's clock is the latest instant among its
//! inputs, and a contact's wake-ups are handled at their own instants before the
//! contact's next later input, exactly as [`nurture::host::Runtime`] does on one machine.
//! A host with quiet partitions publishes [`Input::Tick`]s (for example every minute of
//! wall-clock time) so that wake-ups come without events; [`Input::End`] is a tick that
//! also marks the partition as done (for batch replays and tests).

#![warn(missing_docs)]

mod error;
mod lease;
mod names;
pub mod server;
mod store;
mod wire;
mod worker;

pub use error::Error;
pub use lease::{Lease, Leases};
pub use names::Names;
pub use store::{partition_key, BlockingKvStore, KvStore, Loaded, Record};
pub use wire::{headers, Input};
pub use worker::{Worker, WorkerConfig};
