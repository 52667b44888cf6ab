//! A durable single-node host for [nurture] on SQLite: contacts and their engine states,
//! a timer table and a transactional outbox in one database file, so that a host that is
//! killed at any instant resumes from the file alone, loses nothing and delivers every
//! effect at least once (exactly once where the receiver honours the idempotency key).
//!
//! ```
//! use std::sync::Arc;
//! use nurture::engine::Engine;
//! use nurture::host::RecordingDelivery;
//! use nurture::{Program, Timestamp};
//! use nurture_sqlite::{HostOptions, SqliteHost};
//!
//! let program = Program::from_json(r#"{"version": 1,
//!   "schema": {"events": {"signup": {}}},
//!   "rules": [{"id": "welcome", "on": "signup",
//!              "actions": [{"type": "send", "channel": "email", "template": "welcome"}]}]}"#)?;
//! let start = Timestamp::from_unix(1_767_225_600, 0)?;
//! let engine = Arc::new(Engine::new(Arc::new(program)));
//! let dir = std::env::temp_dir().join(format!("nurture-sqlite-doc-{}", std::process::id()));
//! std::fs::create_dir_all(&dir)?;
//! let path = dir.join("host.db");
//! # let _ = std::fs::remove_file(&path);
//! let mut host = SqliteHost::open(&path, engine.clone(), RecordingDelivery::default(), start,
//!                                 HostOptions::default())?;
//! let schema = engine.program().schema();
//! host.add_contact(schema.contact("c1").build())?;
//! host.ingest(&schema.event("e1", "c1", "signup", start)?.build())?;
//! host.flush()?; // commits the group and delivers from the outbox
//! assert_eq!(host.delivery().delivered.len(), 1);
//! drop(host);
//!
//! // A restart resumes from the file: the contact and its state are there, and the
//! // welcome email is not sent again.
//! let mut host = SqliteHost::open(&path, engine.clone(), RecordingDelivery::default(), start,
//!                                 HostOptions::default())?;
//! host.ingest(&schema.event("e1", "c1", "signup", start)?.build())?; // redelivered event
//! host.flush()?;
//! assert!(host.delivery().delivered.is_empty());
//! assert_eq!(host.store().contact_count()?, 1);
//! # drop(host); std::fs::remove_dir_all(&dir)?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! The pieces:
//!
//! - [`SqliteStore`]: the database. It implements [`nurture::host::ContactStore`] (and
//!   passes [`nurture::host::conformance`]), applies [migrations](MIGRATIONS) on open,
//!   and answers the queries a host needs without reading state blobs: segment members
//!   and sizes, contacts due before an instant, effects by status, a contact's scores.
//! - [`SqliteHost`]: the driver. Each step (an event, a wake-up, a new contact, an
//!   approval) writes the contact's state, its wake-up and its effects in the same
//!   transaction; many steps share one transaction ([group commit](HostOptions)); after
//!   each commit the outbox is delivered, with retries and backoff.
//!
//! `docs/integration.md` (section "A durable host on SQLite") describes the tables, what
//! one step commits, what a crash at each point does, and how to back up.
//!
//! [nurture]: https://docs.rs/nurture
#![warn(missing_docs)]

mod error;
mod host;
mod migrations;
mod store;

pub use error::Error;
pub use host::{Durability, HostOptions, HostStats, RetryPolicy, SqliteHost, WakeFailure};
pub use migrations::{Migration, MIGRATIONS};
pub use store::{OutboxEntry, OutboxStatus, SqliteStore, StoredScore};
