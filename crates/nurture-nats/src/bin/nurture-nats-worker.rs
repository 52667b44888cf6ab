//! A worker process: `nurture-nats-worker --url URL --partitions P --worker NAME --rules FILE`
//! runs its share of the partitions until SIGTERM or SIGINT, then releases its leases.

use std::sync::Arc;
use std::time::Duration;

use nurture::engine::Engine;
use nurture::Program;
use nurture_nats::{Names, Worker, WorkerConfig};

const USAGE: &str = "usage: nurture-nats-worker --url URL --partitions P --worker NAME --rules FILE \
                     [--prefix PREFIX] [--lease-ms MS] [--crash-after-effects N]";

fn main() {
    if let Err(message) = run() {
        eprintln!("nurture-nats-worker: {message}");
        std::process::exit(1);
    }
}

fn run() -> Result<(), String> {
    let mut url = None;
    let mut partitions = None;
    let mut worker = None;
    let mut rules = None;
    let mut prefix = "nurture".to_string();
    let mut lease_ms = 3000u64;
    let mut crash_after_effects = None;
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let mut value = || args.next().ok_or_else(|| format!("{flag} needs a value\n{USAGE}"));
        match flag.as_str() {
            "--url" => url = Some(value()?),
            "--partitions" => {
                partitions = Some(value()?.parse::<u32>().map_err(|e| format!("--partitions: {e}"))?)
            }
            "--worker" => worker = Some(value()?),
            "--rules" => rules = Some(value()?),
            "--prefix" => prefix = value()?,
            "--lease-ms" => lease_ms = value()?.parse().map_err(|e| format!("--lease-ms: {e}"))?,
            // Fault injection for crash tests (see `WorkerConfig::crash_after_effects`).
            "--crash-after-effects" => {
                crash_after_effects =
                    Some(value()?.parse().map_err(|e| format!("--crash-after-effects: {e}"))?)
            }
            _ => return Err(format!("unknown argument `{flag}`\n{USAGE}")),
        }
    }
    let (Some(url), Some(partitions), Some(worker), Some(rules)) = (url, partitions, worker, rules) else {
        return Err(USAGE.to_string());
    };
    let text = std::fs::read_to_string(&rules).map_err(|e| format!("{rules}: {e}"))?;
    let program = Program::from_json(&text).map_err(|e| format!("{rules}: {}", e.render()))?;
    let engine = Arc::new(Engine::new(Arc::new(program)));
    let names = Names::new(&prefix, partitions).map_err(|e| e.to_string())?;
    let mut config = WorkerConfig::new(url, names, worker);
    config.lease_ttl = Duration::from_millis(lease_ms);
    config.renew_every = Duration::from_millis((lease_ms / 6).max(50));
    config.safety_margin = Duration::from_millis(lease_ms / 3);
    config.crash_after_effects = crash_after_effects;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    runtime.block_on(async {
        let shutdown = async {
            let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(_) => return std::future::pending().await,
            };
            tokio::select! {
                _ = term.recv() => {}
                _ = tokio::signal::ctrl_c() => {}
            }
        };
        Worker::new(config, engine).run(shutdown).await.map_err(|e| e.to_string())
    })
}
