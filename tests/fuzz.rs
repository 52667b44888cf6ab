//! The fuzz targets on stable: replays the seed corpus (`fuzz/corpus/TARGET/`) and then
//! mutates it with a fixed-seed generator for a while. With nightly and cargo-fuzz,
//! `cargo fuzz run TARGET` explores the same targets with coverage guidance
//! (`fuzz/README.md`); `scripts/fuzz-smoke` runs whichever is available.
//!
//! `NURTURE_FUZZ_SECONDS` (default 1) is the mutation time per target and
//! `NURTURE_FUZZ_SEED` (default 1) the generator's seed: the inputs tried depend only on
//! the seed, the time only says how many of them. A failing input is written to
//! `fuzz/artifacts/TARGET/` and named in the failure, to replay with
//! `NURTURE_FUZZ_REPLAY=path cargo test --test fuzz`.

#[allow(dead_code)]
#[path = "../fuzz/src/lib.rs"]
mod targets;

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// A small, fixed-seed generator (xorshift64*): no dependency, the same on every machine.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            0
        } else {
            (self.next() % n as u64) as usize
        }
    }
}

/// Tokens that make mutations of documents and expressions reach past the parser.
const DICTIONARY: &[&str] = &[
    "{",
    "}",
    "[",
    "]",
    "\"",
    ":",
    ",",
    "(",
    ")",
    ".",
    "'",
    " && ",
    " || ",
    " in ",
    "==",
    ">=",
    "!",
    "-",
    "+",
    "9223372036854775807",
    "-9223372036854775808",
    "1e308",
    "NaN",
    "0.0",
    "null",
    "true",
    "\"max\"",
    "\"window\"",
    "\"repeat\"",
    "\"when\"",
    "\"on\"",
    "\"segments\"",
    "\"counters\"",
    "\"scoring\"",
    "size(",
    ".all(x, ",
    ".map(x, ",
    ".matches(",
    "timestamp(",
    "duration(",
    "now",
    "contact.",
    "event.",
    "score.",
    "counter.",
    "segment.",
    "has(",
    "\"7d\"",
    "\"-1d\"",
    "\"4294967295\"",
    "\u{0}",
    "\u{fffd}",
    "\\u0000",
];

fn mutate(rng: &mut Rng, input: &[u8], corpus: &[Vec<u8>]) -> Vec<u8> {
    let mut out = input.to_vec();
    for _ in 0..1 + rng.below(4) {
        let at = rng.below(out.len() + 1);
        match rng.below(7) {
            0 if !out.is_empty() => {
                let i = rng.below(out.len());
                out[i] = rng.next() as u8;
            }
            1 if !out.is_empty() => {
                let end = (at + 1 + rng.below(16)).min(out.len());
                out.drain(at.min(out.len())..end.max(at.min(out.len())));
            }
            2 => {
                let token = DICTIONARY[rng.below(DICTIONARY.len())].as_bytes();
                out.splice(at..at, token.iter().copied());
            }
            3 if !out.is_empty() => {
                // Duplicate a slice: repetition finds size-dependent costs.
                let start = rng.below(out.len());
                let end = (start + 1 + rng.below(64)).min(out.len());
                let slice = out[start..end].to_vec();
                out.splice(at..at, slice);
            }
            4 if !corpus.is_empty() => {
                // Splice in part of another input.
                let other = &corpus[rng.below(corpus.len())];
                if !other.is_empty() {
                    let start = rng.below(other.len());
                    let end = (start + 1 + rng.below(128)).min(other.len());
                    out.splice(at..at, other[start..end].iter().copied());
                }
            }
            5 => {
                let digits = rng.next().to_string();
                out.splice(at..at, digits.bytes());
            }
            _ => out.push(rng.next() as u8),
        }
    }
    out.truncate(64 << 10);
    out
}

fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz")
}

fn corpus(target: &str) -> Vec<Vec<u8>> {
    let dir = fuzz_dir().join("corpus").join(target);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    files.iter().map(|p| std::fs::read(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))).collect()
}

/// Runs `run` on `input`; on a panic, saves the input and fails naming it.
fn run_one(target: &str, run: fn(&[u8]), input: &[u8]) {
    if catch_unwind(AssertUnwindSafe(|| run(input))).is_err() {
        let dir = fuzz_dir().join("artifacts").join(target);
        let _ = std::fs::create_dir_all(&dir);
        let hash = input
            .iter()
            .fold(0xcbf2_9ce4_8422_2325u64, |h, b| (h ^ u64::from(*b)).wrapping_mul(0x100_0000_01b3));
        let path = dir.join(format!("crash-{hash:016x}"));
        let _ = std::fs::write(&path, input);
        panic!("fuzz target `{target}` failed on an input saved as {}", path.display());
    }
}

fn env_number(name: &str, default: u64) -> u64 {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn fuzz(target: &str, run: fn(&[u8])) {
    if let Ok(path) = std::env::var("NURTURE_FUZZ_REPLAY") {
        if path.contains(target) {
            run(&std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}")));
        }
        return;
    }
    let seeds = corpus(target);
    assert!(!seeds.is_empty(), "no seed corpus for `{target}`");
    for seed in &seeds {
        run_one(target, run, seed);
    }
    let budget = Duration::from_secs(env_number("NURTURE_FUZZ_SECONDS", 1));
    let mut rng = Rng(env_number("NURTURE_FUZZ_SEED", 1).max(1));
    let started = Instant::now();
    let mut pool = seeds.clone();
    let mut tried = 0u64;
    while started.elapsed() < budget {
        let base = pool[rng.below(pool.len())].clone();
        let input = mutate(&mut rng, &base, &seeds);
        run_one(target, run, &input);
        tried += 1;
        // Keep some mutants as bases, so mutations compound (bounded pool).
        if pool.len() < 256 && rng.below(8) == 0 {
            pool.push(input);
        }
    }
    eprintln!("fuzz `{target}`: {} seeds and {tried} mutants, no failure", seeds.len());
}

#[test]
fn documents() {
    fuzz("documents", targets::documents);
}

#[test]
fn expressions() {
    fuzz("expressions", targets::expressions);
}

#[test]
fn events() {
    fuzz("events", targets::events);
}

#[test]
fn snapshots() {
    fuzz("snapshots", targets::snapshots);
}

#[test]
fn mutations_depend_only_on_the_seed() {
    let seeds = vec![b"{\"version\": 1}".to_vec()];
    let run = |seed| {
        let mut rng = Rng(seed);
        (0..50).map(|_| mutate(&mut rng, &seeds[0], &seeds)).collect::<Vec<_>>()
    };
    assert_eq!(run(7), run(7));
    assert_ne!(run(7), run(8));
}
