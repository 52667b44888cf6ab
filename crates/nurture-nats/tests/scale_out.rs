//! The scale-out scenario on a small stream: three worker processes, a worker SIGKILLed
//! mid-stream, a worker SIGKILLed and restarted, the server SIGKILLed and restarted; each
//! compared with an uninterrupted in-memory run. Skipped, saying so, without a server.

mod common;

use std::process::Command;

#[test]
fn worker_and_server_failures_lose_nothing_and_duplicate_nothing() {
    if common::server_or_skip("scale-out scenario").is_none() {
        return;
    }
    let out = Command::new(env!("CARGO_BIN_EXE_nurture-nats-scenario"))
        .args(["--contacts", "80", "--days", "20", "--partitions", "8", "--runs", "faults", "--rate", "400"])
        .output()
        .expect("the scenario runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "scenario failed:\n{stdout}\n{stderr}");
    let last = stdout.lines().last().expect("a summary line");
    let summary: serde_json::Value = serde_json::from_str(last).expect("the summary is JSON");
    assert_eq!(summary["workers"], 3);
    assert_eq!(summary["partitions"], 8);
    assert_eq!(summary["killed"], 4, "{last}");
    assert_eq!(summary["lost"], 0, "{last}");
    assert_eq!(summary["duplicates"], 0, "{last}");
    assert_eq!(summary["states_equal"], true, "{last}");
    assert_eq!(summary["effects_unique"], summary["effects_expected"], "{last}");
    assert!(summary["effects_expected"].as_u64().is_some_and(|n| n > 50), "{last}");
    // Nothing left running: every server and worker the scenario started is gone.
    let pids =
        stdout.lines().find_map(|l| l.strip_prefix("processes started (all stopped): ")).expect("pids");
    let pids: Vec<u32> = serde_json::from_str(pids).expect("a list of pids");
    // Four fault runs: at least 3 workers and a server each, one worker restarted and
    // the server restarted once.
    assert!(pids.len() >= 4 * 4 + 2, "{pids:?}");
    for pid in pids {
        let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
        let cmdline = String::from_utf8_lossy(&cmdline);
        assert!(
            !cmdline.contains("nats-server") && !cmdline.contains("nurture-nats-worker"),
            "{pid} still runs: {cmdline}"
        );
    }
    let runs = stdout.lines().filter(|l| l.contains("SIGKILLed")).count();
    assert_eq!(runs, 3, "{stdout}");
    // The crash between a step's effects and its state write: the successor publishes
    // those effects again and the server drops them.
    let crash = stdout.lines().find(|l| l.contains("crashed between effects and state")).expect("the run");
    assert!(!crash.contains("re-publishes dropped 0"), "{crash}");
}
