//! Shared by the tests: a server when one is installed, and a small program.
#![allow(dead_code)]

use std::path::PathBuf;

use nurture_nats::server::{self, NatsServer};

/// A program with an event rule and an inactivity rule (so wake-ups matter).
pub const RULES: &str = r#"{"version": 1,
  "schema": {"contact": {"plan": "string"},
             "events": {"signup": {}, "visit": {"url": "string"}}},
  "rules": [
    {"id": "welcome", "on": "signup",
     "actions": [{"type": "send", "channel": "email", "template": "welcome"}]},
    {"id": "pricing", "on": "visit", "when": "event.url == '/pricing'",
     "actions": [{"type": "add_tag", "tag": "pricing"}]},
    {"id": "quiet", "on": {"inactive": "*", "for": "2d"},
     "actions": [{"type": "send", "channel": "email", "template": "we-miss-you"}]}
  ]}"#;

/// The server binary, or `None` after printing plainly why the test is skipped.
pub fn server_or_skip(test: &str) -> Option<PathBuf> {
    match server::find() {
        Ok(path) => Some(path),
        Err(reason) => {
            // Written to the process's stderr directly, past the test harness's capture,
            // so that a skip shows in a plain `cargo test`.
            use std::io::Write;
            let _ = writeln!(std::io::stderr(), "SKIPPED {test}: {reason}");
            None
        }
    }
}

/// A server in a temporary directory (both dropped together: the server is killed first).
pub struct Running {
    pub server: NatsServer,
    pub dir: tempfile::TempDir,
}

pub fn start(binary: &std::path::Path) -> Running {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let server = NatsServer::start(binary, &dir.path().join("store")).expect("nats-server starts");
    Running { server, dir }
}
