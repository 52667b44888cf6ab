//! The `nurture-lab` command line.

use std::path::PathBuf;
use std::process::ExitCode;

use nurture_lab::fit::cross_validate;
use nurture_lab::metrics::Target;
use nurture_lab::scorecard::{Dataset, FitOptions};
use nurture_lab::table::Table;
use nurture_lab::{report, LabError};

const USAGE: &str = "usage:
  nurture-lab fit --csv PATH --label COLUMN --positive VALUE [--sep CHAR] [--drop COL,COL,...]
                  [--missing VALUE,...] [--folds K] [--seed N] [--target-precision P | --target-recall R]
                  [--no-interactions] --out DIR [--json]
  nurture-lab lint FILE...";

/// Command-line flags: `--name value` pairs and bare switches.
struct Args {
    pairs: Vec<(String, Option<String>)>,
    positional: Vec<String>,
}

impl Args {
    fn parse(raw: &[String], switches: &[&str]) -> Result<Args, LabError> {
        let mut pairs = Vec::new();
        let mut positional = Vec::new();
        let mut it = raw.iter();
        while let Some(a) = it.next() {
            if let Some(name) = a.strip_prefix("--") {
                if switches.contains(&name) {
                    pairs.push((name.to_string(), None));
                } else {
                    let v = it
                        .next()
                        .ok_or_else(|| LabError::Input(format!("--{name} needs a value\n{USAGE}")))?;
                    pairs.push((name.to_string(), Some(v.clone())));
                }
            } else {
                positional.push(a.clone());
            }
        }
        Ok(Args { pairs, positional })
    }

    fn get(&self, name: &str) -> Option<&str> {
        self.pairs.iter().rev().find(|(n, _)| n == name).and_then(|(_, v)| v.as_deref())
    }

    fn has(&self, name: &str) -> bool {
        self.pairs.iter().any(|(n, _)| n == name)
    }

    fn need(&self, name: &str) -> Result<&str, LabError> {
        self.get(name).ok_or_else(|| LabError::Input(format!("--{name} is required\n{USAGE}")))
    }

    fn check(&self, known: &[&str]) -> Result<(), LabError> {
        for (n, _) in &self.pairs {
            if !known.contains(&n.as_str()) {
                return Err(LabError::Input(format!("unknown option --{n}\n{USAGE}")));
            }
        }
        Ok(())
    }

    fn number<T: std::str::FromStr>(&self, name: &str, default: T) -> Result<T, LabError> {
        match self.get(name) {
            None => Ok(default),
            Some(v) => {
                v.parse().map_err(|_| LabError::Input(format!("--{name}: `{v}` is not a valid number")))
            }
        }
    }
}

fn list(v: Option<&str>) -> Vec<String> {
    v.map(|s| s.split(',').map(|x| x.trim().to_string()).filter(|x| !x.is_empty()).collect())
        .unwrap_or_default()
}

fn sep(v: Option<&str>) -> Result<u8, LabError> {
    match v {
        None => Ok(b','),
        Some("\\t" | "tab") => Ok(b'\t'),
        Some(s) if s.len() == 1 => Ok(s.as_bytes()[0]),
        Some(s) => Err(LabError::Input(format!("--sep takes one ASCII character, not `{s}`"))),
    }
}

fn fit(raw: &[String]) -> Result<(), LabError> {
    let args = Args::parse(raw, &["json", "no-interactions"])?;
    args.check(&[
        "csv",
        "label",
        "positive",
        "sep",
        "drop",
        "missing",
        "folds",
        "seed",
        "out",
        "json",
        "target-precision",
        "target-recall",
        "no-interactions",
        "pdo",
        "base",
        "l2",
    ])?;
    if let Some(p) = args.positional.first() {
        return Err(LabError::Input(format!("unexpected argument `{p}`\n{USAGE}")));
    }
    let csv = PathBuf::from(args.need("csv")?);
    let label = args.need("label")?;
    let positive = args.need("positive")?;
    let out = PathBuf::from(args.need("out")?);
    let folds: usize = args.number("folds", 5)?;
    if folds < 2 {
        return Err(LabError::Input("--folds must be at least 2".into()));
    }
    let seed: u64 = args.number("seed", 1)?;
    let target = match (args.get("target-precision"), args.get("target-recall")) {
        (Some(_), Some(_)) => {
            return Err(LabError::Input("give --target-precision or --target-recall, not both".into()))
        }
        (_, Some(_)) => Target::Recall(args.number("target-recall", 0.8)?),
        _ => Target::Precision(args.number("target-precision", 0.8)?),
    };
    let mut options = FitOptions::default();
    options.pdo = args.number("pdo", options.pdo)?;
    options.base = args.number("base", options.base)?;
    options.lambda = args.number("l2", options.lambda)?;
    if args.has("no-interactions") {
        options.max_interactions = 0;
    }
    let table = Table::read(&csv, sep(args.get("sep"))?, &list(args.get("missing")))?;
    let data = Dataset::from_table(&table, label, positive, &list(args.get("drop")))?;
    let name =
        csv.file_stem().map_or("scorecard".to_string(), |s| format!("{}-scorecard", s.to_string_lossy()));
    let result = cross_validate(&data, folds, seed, &options, target, &name)?;
    let command = std::iter::once("nurture-lab fit".to_string())
        .chain(raw.iter().cloned())
        .collect::<Vec<_>>()
        .join(" ");
    report::write_fit(&out, &data, &result, &command)?;
    let (cv, cv_std) = result.cv_auc();
    let positives = data.labels.iter().filter(|&&l| l).count();
    println!(
        "fitted {} rows ({} positive), {} features, {} rules; cross-validated AUC of the exported scorecard {cv:.4} ± {cv_std:.4} over {folds} folds",
        data.rows(),
        positives,
        result.card.features.len(),
        result.card.rule_count()
    );
    println!("wrote {}", out.join("model.json").display());
    if args.has("json") {
        // The contract's exact shape: these keys, in this order, `": "` and `", "` separators.
        let line = format!(
            "{{\"rows\": {}, \"positives\": {}, \"features\": {}, \"rules\": {}, \"cv_auc\": {}, \"cv_auc_std\": {}, \"mql_threshold\": {}, \"precision\": {}, \"recall\": {}}}",
            data.rows(),
            positives,
            result.card.features.len(),
            result.card.rule_count(),
            num(cv),
            num(cv_std),
            num(result.mql.threshold),
            num(result.mql.precision()),
            num(result.mql.recall()),
        );
        println!("{line}");
    }
    Ok(())
}

/// A JSON number rounded to 4 decimals (`null` when not finite).
fn num(x: f64) -> String {
    if x.is_finite() {
        serde_json::Value::from((x * 10_000.0).round() / 10_000.0).to_string()
    } else {
        "null".into()
    }
}

/// `lint FILE...`: 0 without findings, 1 with findings, 2 when a file cannot be read
/// or compiled.
fn lint(files: &[String]) -> ExitCode {
    if files.is_empty() {
        eprintln!("error: lint needs at least one rule-set file\n{USAGE}");
        return ExitCode::from(2);
    }
    let (mut findings, mut unreadable) = (0usize, 0usize);
    for file in files {
        let text = match std::fs::read_to_string(file) {
            Ok(t) => t,
            Err(e) => {
                eprintln!("error: {file}: {e}");
                unreadable += 1;
                continue;
            }
        };
        let compiled = if file.ends_with(".toml") {
            nurture::Program::from_toml(&text)
        } else {
            nurture::Program::from_json(&text)
        };
        match compiled {
            Ok(program) => {
                for f in program.lint() {
                    println!("{file}: {}", f.render());
                    findings += 1;
                }
            }
            Err(e) => {
                eprintln!("error: {file} does not compile:\n{}", e.render());
                unreadable += 1;
            }
        }
    }
    println!("{findings} finding(s) in {} file(s)", files.len());
    if unreadable > 0 {
        ExitCode::from(2)
    } else if findings > 0 {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    }
}

fn main() -> ExitCode {
    let raw: Vec<String> = std::env::args().skip(1).collect();
    let Some((command, rest)) = raw.split_first() else {
        eprintln!("{USAGE}");
        return ExitCode::from(2);
    };
    let result = match command.as_str() {
        "fit" => fit(rest),
        "lint" => return lint(rest),
        "-h" | "--help" | "help" => {
            println!("{USAGE}");
            Ok(())
        }
        other => Err(LabError::Input(format!("unknown command `{other}`\n{USAGE}"))),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(2)
        }
    }
}
